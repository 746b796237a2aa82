"""Interoperability is judged for a wheel as for an installed module (CF-IOP-004), every cell of the subject.

Before CF-IOP-004 the matrix's subject was what ``hardpoint conformance check`` was given (for a wheel,
its path) while the cells carry the module's name, so no cell was the subject's and CF-IOP-001/002 passed
as "not applicable" for every wheel, even when the matrix written beside them said "fail". Two wheels go
through the real CLI here, ``check WHEEL --only checks_interop --sign-key ... --json``:

* ``broken_interop`` (a broken variant, written as a wheel by ``wheelkit``): the reference nav, except that
  every position is 1 km north of the platform. Every field is valid, so only the matrix can tell: the
  reference radar and EO/IR geo-reference their tracks with it and put every target 1 km off. It must fail
  CF-IOP-002 naming those cells, in the signed evidence too.
* A fresh ``hardpoint new module`` NavState scaffold, built with its own packaging (``python -m build``):
  it must pass with every cell of its row judged (radar, eoir, recorder), none "not applicable". (The
  scaffold used to simulate a platform sailing from a configured start, 1 km from the one its consumers'
  sensors were on; it now reads the platform's GNSS receiver, the ``gnss`` adapter.)

The full certified run of the scaffold's wheel is the supplier's guide test (``test_supplier_guide.py``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from wheelkit import variant_wheel

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 600
NAV = "hardpoint.nav.v1.NavState"


def _check(wheel: Path, report: Path, key: Path) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime.cli", "conformance", "check", str(wheel), "--json",
         "--only", "checks_interop", "--report", str(report), "--sign-key", str(key)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        summary = {}
    return proc.returncode, summary, proc.stderr[-3000:]


def scaffold_wheel(work: Path) -> Path:
    """``hardpoint new module acme_nav`` (default: provides NavState), built into a wheel with its own packaging."""
    hardpoint = Path(sys.executable).with_name("hardpoint")
    subprocess.run(
        [str(hardpoint), "new", "module", "acme_nav", "--supplier", "acme", "--dir", str(work / "acme_nav")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"),
         str(work / "acme_nav")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("acme_nav-*.whl")
    return wheel


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]
) -> dict[str, tuple[Path, Path, int, dict[str, Any], str]]:
    """(wheel, report, exit code, JSON summary, stderr tail) of both wheels, checked in parallel."""
    root = tmp_path_factory.mktemp("wheel-interop")
    wheels = {"broken_interop": variant_wheel(root, "broken_interop"), "acme_nav": scaffold_wheel(root / "scaffold")}
    with ThreadPoolExecutor(max_workers=len(wheels)) as pool:
        futures = {name: pool.submit(_check, w, root / f"report-{name}", keys[0]) for name, w in wheels.items()}
        return {name: (wheels[name], root / f"report-{name}", *f.result()) for name, f in futures.items()}


def _signed(report: Path) -> dict[str, Any]:
    envelope = json.loads((report / "evidence.dsse.json").read_text(encoding="utf-8"))
    predicate: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    return predicate


def _interop(report: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report / "hardpoint-result.json").read_text(encoding="utf-8"))["interop"]
    return data


@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
def test_an_interop_fault_fails_as_a_wheel_naming_cf_iop(
    runs: dict[str, tuple[Path, Path, int, dict[str, Any], str]],
) -> None:
    wheel, report, code, summary, stderr = runs["broken_interop"]
    assert summary, f"no JSON result (exit {code}):\n{stderr}"
    checks = {c["check"]: c for c in summary["checks"]}
    assert code == 1
    assert summary["verdict"] == "fail"
    provider = checks["test_interop_as_provider"]
    assert provider["outcome"] == "failed"
    assert "CF-IOP-002" in provider["requirements"]
    message = provider["message"]
    assert message.startswith("Failed: CF-IOP-002 module 'broken_interop' as provider: ")
    for consumer in ("radar", "eoir"):
        assert f"broken_interop -> {consumer} ({NAV}): only " in message
    assert "geo-referencing with this NavState is off" in message
    # It consumes nothing: not applicable, decided from the manifests.
    assert checks["test_interop_as_consumer"]["outcome"] == "passed"
    assert checks["test_interop_as_consumer"]["judged"].startswith("not applicable: ")
    # The matrix names the module, and the wheel it was given as; every cell of its row was judged.
    interop = _interop(report)
    assert interop["subject"] == "broken_interop"
    assert interop["target"] == str(wheel)
    row = {c["consumer"]: c["verdict"] for c in interop["cells"] if c["provider"] == "broken_interop"}
    assert row == {"radar": "fail", "eoir": "fail", "recorder": "pass"}
    # The signed evidence names the check, the requirement and the cells.
    signed = {c["check"]: c for c in _signed(report)["checks"]}
    assert signed["test_interop_as_provider"]["outcome"] == "failed"
    assert "CF-IOP-002" in signed["test_interop_as_provider"]["requirements"]
    assert signed["test_interop_as_provider"]["message"] == message


@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
def test_a_fresh_scaffold_wheel_passes_with_every_interop_cell_judged(
    runs: dict[str, tuple[Path, Path, int, dict[str, Any], str]],
) -> None:
    wheel, report, code, summary, stderr = runs["acme_nav"]
    assert summary, f"no JSON result (exit {code}):\n{stderr}"
    checks = {c["check"]: c for c in summary["checks"]}
    failing = {n: c.get("message") for n, c in checks.items() if c["outcome"] != "passed"}
    assert code == 0, json.dumps(failing, indent=1)
    interop = _interop(report)
    assert interop["subject"] == "acme_nav"
    assert interop["target"] == str(wheel)
    row = {c["consumer"]: (c["verdict"], c["detail"]) for c in interop["cells"] if c["provider"] == "acme_nav"}
    assert set(row) == {"radar", "eoir", "recorder"}
    assert {verdict for verdict, _ in row.values()} == {"pass"}, row
    for consumer in ("radar", "eoir"):
        assert "positions on targets" in row[consumer][1]  # geo-referenced on the scenario's targets
    assert checks["test_interop_as_provider"]["judged"] == "3 cells with acme_nav as provider"
    assert checks["test_interop_as_consumer"]["judged"].startswith("not applicable: ")
    assert _signed(report)["verdict"] == "pass"
