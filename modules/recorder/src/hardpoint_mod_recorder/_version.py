"""Version of the recorder module (kept in step with pyproject.toml)."""

from typing import Final

VERSION: Final = "0.1.0"
