"""The conformance pytest plugin: inert where unused, manifest checks, certified mode (issue 6, point 4).

Every run is a pytest subprocess (``pytester.runpytest_subprocess``), so what it
imports and creates is its own and the plugin is loaded from its ``pytest11``
entry point exactly as in a supplier's project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

#: Never loaded by the plugin where it is unused (issue 6, acceptance point 4); protobuf and pydantic are not
#: needed by it either (hardpoint and hardpoint.conformance load their names lazily).
HEAVY = ("cyclonedds", "grpc", "google.protobuf", "pydantic", "hardpoint._dds", "hardpoint_runtime")
CHECKS = ("--pyargs", "hardpoint.conformance.checks_manifest")

_REPORT_HEAVY_MODULES = """
import sys
import zipfile

HEAVY = {heavy!r}


def pytest_terminal_summary(terminalreporter):
    loaded = sorted(m for m in sys.modules if m.startswith(HEAVY))
    terminalreporter.write_line(f"HEAVY-MODULES={{loaded}}")
    terminalreporter.write_line(f"PLUGIN-LOADED={{'hardpoint.conformance.plugin' in sys.modules}}")
"""


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _pytest_own(path: str) -> bool:
    """Files pytest itself makes: its cache and bytecode."""
    parts = path.split(os.sep)
    return parts[0] == ".pytest_cache" or "__pycache__" in parts


def test_plugin_is_registered_from_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*hardpoint conformance checks*", "*--hardpoint-module=ENTRYPOINT_NAME_OR_WHEEL*"])
    assert "--hardpoint-report=DIR" in result.stdout.str()
    assert "--hardpoint-certified" in result.stdout.str()


def test_unused_plugin_creates_nothing_and_loads_no_dds(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project is a subdirectory: pytester keeps its stdout/stderr files and --basetemp beside it.
    project = pytester.mkdir("project")
    (project / "conftest.py").write_text(_REPORT_HEAVY_MODULES.format(heavy=HEAVY), encoding="utf-8")
    (project / "test_trivial.py").write_text("def test_one():\n    assert 1 + 1 == 2\n", encoding="utf-8")
    monkeypatch.chdir(project)
    before = _tree(project)

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["HEAVY-MODULES=[[][]]", "PLUGIN-LOADED=True"])
    created = {p for p in _tree(project) - before if not _pytest_own(p)}
    assert created == set()


def _imported_by_plugin() -> list[str]:
    """Every module ``import hardpoint.conformance.plugin`` loads (``-X importtime``; the time is not asserted)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import hardpoint.conformance.plugin"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    return [line.rsplit("|", 1)[-1].strip() for line in out.splitlines() if line.startswith("import time:")]


def test_plugin_import_loads_nothing_heavy() -> None:
    loaded = _imported_by_plugin()
    assert "hardpoint.conformance.plugin" in loaded
    assert [m for m in loaded if m.startswith(HEAVY)] == []


def test_manifest_checks_pass_for_reference_nav(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--hardpoint-module", "nav", "--hardpoint-certified", "-v", *CHECKS)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_manifest_valid PASSED*",
            "*test_provided_interfaces_in_interface_set PASSED*",
            "*test_required_interfaces_in_interface_set PASSED*",
        ]
    )


def test_manifest_checks_fail_naming_the_interface_and_available_majors(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--hardpoint-module", "needs-nav2", *CHECKS)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RT-RES-004 module 'needs-nav2': requires hardpoint.nav.v2.NavState: incompatible major;"
            " the platform interface set has major 1 (hardpoint.nav.v1.NavState)*",
            "FAILED *test_required_interfaces_in_interface_set*",
        ]
    )


def test_unknown_module_is_named(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--hardpoint-module", "no-such-module", *CHECKS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*no module named 'no-such-module' in entry-point group hardpoint.modules*"])


def test_checks_skip_without_a_module(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*CHECKS)
    result.assert_outcomes(skipped=3)


_SKIPPING = """
import pytest


@pytest.mark.hardpoint("SDK-LC-002")
def test_skipped_check():
    pytest.skip("not implemented yet")


def test_ordinary_skip():
    pytest.skip("not a hardpoint check")
"""


def test_certified_mode_turns_a_skip_into_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=_SKIPPING)

    relaxed = pytester.runpytest_subprocess("--hardpoint-module", "nav")
    relaxed.assert_outcomes(skipped=2)

    certified = pytester.runpytest_subprocess("--hardpoint-module", "nav", "--hardpoint-certified")
    certified.assert_outcomes(failed=1, skipped=1)
    certified.stdout.fnmatch_lines(
        [
            "*hardpoint certified mode forbids skips: test_checks.py::test_skipped_check was skipped*"
            "not implemented yet*",
            "*hardpoint certified: skips are forbidden*",
        ]
    )


def test_report_lists_verdicts_with_requirement_ids(pytester: pytest.Pytester) -> None:
    report = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "--hardpoint-module", "needs-nav2", "--hardpoint-report", str(report), *CHECKS
    )
    result.assert_outcomes(passed=2, failed=1)
    data = json.loads((report / "hardpoint-result.json").read_text(encoding="utf-8"))
    assert data["module"] == "needs-nav2"
    verdicts = {v["test"].rsplit("::", 1)[-1]: v for v in data["verdicts"]}
    assert verdicts["test_required_interfaces_in_interface_set"]["outcome"] == "failed"
    assert verdicts["test_required_interfaces_in_interface_set"]["requirements"] == ["RT-RES-004", "RT-RES-011"]
    assert verdicts["test_manifest_valid"] == {
        "test": verdicts["test_manifest_valid"]["test"],
        "requirements": ["SDK-LC-001"],
        "phase": "call",
        "outcome": "passed",
        "judged": "1 manifest",
    }
    # A failure carries its whole reason (CF-EV-007).
    failed = verdicts["test_required_interfaces_in_interface_set"]
    assert str(failed["reason"]).startswith("Failed: RT-RES-004 module 'needs-nav2': requires hardpoint.nav.v2")


_WHEEL_MODULE = """
from hardpoint import Manifest


class Wheeled:
    manifest = Manifest(
        name="wheeled", version="1.0.0", supplier="tests", requires=("hardpoint.nav.v1.NavState",)
    )
"""


def test_checks_run_on_a_wheel(pytester: pytest.Pytester) -> None:
    wheel = pytester.path / "wheeled-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("hardpoint_wheeled/__init__.py", _WHEEL_MODULE)
        zf.writestr("wheeled-1.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: wheeled\nVersion: 1.0.0\n")
        zf.writestr(
            "wheeled-1.0.0.dist-info/entry_points.txt", "[hardpoint.modules]\nwheeled = hardpoint_wheeled:Wheeled\n"
        )
    result = pytester.runpytest_subprocess("--hardpoint-module", str(wheel), "--hardpoint-certified", *CHECKS)
    result.assert_outcomes(passed=3)
