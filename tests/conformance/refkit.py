"""Reference-module wheels and certified runs, shared by the conformance tests (fixtures in conftest.py).

Acceptance 1 of the conformance issue (every reference module passes in certified mode; the
report and the signed evidence are produced and verify) and the evidence CLI tests read the same
runs, so each certified run (a minute or more on 2 cores) happens once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: Reference modules: the distributions under modules/ that declare an entry point in hardpoint.modules.
REFERENCE_MODULES = sorted(
    d.name for d in (REPO / "modules").iterdir() if '"hardpoint.modules"' in (d / "pyproject.toml").read_text()
)
#: Certified runs at once: each mostly waits (rate windows, discovery), on its own DDS domain.
PARALLEL_RUNS = 6
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Run:
    """One ``hardpoint conformance check WHEEL --certified --sign-key ... --json`` run."""

    wheel: Path
    report: Path
    exit_code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        try:
            parsed: dict[str, Any] = json.loads(self.stdout)
        except json.JSONDecodeError:
            return {}
        return parsed


def build_reference_wheel(name: str, work: Path) -> Path:
    """A real wheel of ``modules/<name>``, built from a copy (so the source tree gets no build/ directory)."""
    shutil.copytree(REPO / "modules" / name, work / name, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"), str(work / name)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = (work / "dist").glob(f"hardpoint_mod_{name}-*.whl")
    return wheel


def certify(wheel: Path, report: Path, key: Path) -> Run:
    hardpoint = Path(sys.executable).with_name("hardpoint")
    command = [str(hardpoint), "conformance", "check", str(wheel), "--certified", "--json",
               "--report", str(report), "--sign-key", str(key)]  # fmt: skip
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    return Run(wheel, report, proc.returncode, proc.stdout, proc.stderr)
