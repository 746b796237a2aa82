"""Small valid wheels for the conformance CLI tests, written directly (no build step: milliseconds, not seconds).

A wheel here is what ``installer`` accepts: the files, ``METADATA``, ``WHEEL``,
``entry_points.txt`` and a ``RECORD`` with the sha256 and size of each file.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(
    directory: Path, *, distribution: str, version: str, entry_points: Mapping[str, str], files: Mapping[str, bytes]
) -> Path:
    """``<distribution>-<version>-py3-none-any.whl`` in ``directory``: ``files`` and hardpoint.modules entry points."""
    info = f"{distribution}-{version}.dist-info"
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    members = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: wheelkit\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[hardpoint.modules]\n{lines}".encode(),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in members.items())
    record += f"{info}/RECORD,,\n"
    wheel = directory / f"{distribution}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{info}/RECORD", record)
    return wheel


def nav_copy_wheel(directory: Path, *, distribution: str = "navcopy", version: str = "1.0.0") -> Path:
    """A wheel of the reference module nav's source as it is in the tree, under another distribution name."""
    source = REPO / "modules" / "nav" / "src"
    files = {
        str(path.relative_to(source)): path.read_bytes()
        for path in sorted(source.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path)
    }
    return write_wheel(
        directory,
        distribution=distribution,
        version=version,
        entry_points={"nav": "hardpoint_mod_nav:Nav"},
        files=files,
    )


VARIANTS_SRC = REPO / "tests" / "fixtures" / "broken_variants"


def variant_wheel(directory: Path, name: str, *, version: str = "1.0.0") -> Path:
    """A wheel of one broken variant (``tests/fixtures/broken_variants``): its package and its one entry point.

    The distribution is ``hardpoint-<name>`` (``broken_interop`` -> ``hardpoint_broken_interop-1.0.0-...whl``);
    the entry point is the one ``pyproject.toml`` declares for ``name``, so the wheel is checked exactly as a
    supplier's wheel is: installed into a private directory and hosted from there.
    """
    import tomllib

    project = tomllib.loads((VARIANTS_SRC / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    value = project["entry-points"]["hardpoint.modules"][name]
    source = VARIANTS_SRC / "src"
    files = {
        str(path.relative_to(source)): path.read_bytes()
        for path in sorted((source / "hardpoint_broken_variants").rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return write_wheel(
        directory, distribution=f"hardpoint_{name}", version=version, entry_points={name: value}, files=files
    )
