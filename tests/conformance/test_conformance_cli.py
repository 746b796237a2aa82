"""``hardpoint conformance check``: the checks run in a pytest subprocess, the evidence written to ``--report``.

The set of checks grows as check modules are added; these tests pin the static
manifest checks (:data:`STATIC_CHECKS`) and require every other check to carry
requirement IDs and to agree between the JUnit XML, the JSON result and the report.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from refkit import Run
from typer.testing import CliRunner, Result
from wheelkit import nav_copy_wheel

from hardpoint_runtime.cli import app

runner = CliRunner()
#: The static checks of hardpoint.conformance.checks_manifest and their requirement IDs.
STATIC_CHECKS = {
    "test_manifest_valid": ["SDK-LC-001"],
    "test_provided_interfaces_in_interface_set": ["RT-RES-011"],
    "test_required_interfaces_in_interface_set": ["RT-RES-004", "RT-RES-011"],
}


def check(*args: str | Path) -> Result:
    return runner.invoke(app, ["conformance", "check", *map(str, args)])


def _junit(path: Path) -> dict[str, str]:
    """Outcome of each JUnit test case, by name."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[case.get("name", "")] = "failed" if failed else "skipped" if skipped else "passed"
    return outcomes


def _result(path: Path) -> dict[str, str]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {v["test"].rsplit("::", 1)[-1]: v["outcome"] for v in data["verdicts"]}


def test_reference_nav_passes_certified_and_the_evidence_agrees(reference_runs: dict[str, Run]) -> None:
    """The certified run of the nav wheel (shared with acceptance 1, ``conftest.py``): JUnit, JSON and report agree."""
    run = reference_runs["nav"]
    assert run.exit_code == 0, (run.stdout, run.stderr)
    report = run.report
    junit, data, markdown = report / "junit.xml", report / "hardpoint-result.json", report / "report.md"
    assert junit.is_file()
    assert data.is_file()
    assert markdown.is_file()
    outcomes = _junit(junit)
    assert outcomes.keys() >= STATIC_CHECKS.keys()
    assert set(outcomes.values()) == {"passed"}
    assert _result(data) == outcomes
    bound = json.loads(data.read_text(encoding="utf-8"))
    assert bound["certified"] is True
    assert all(entry["requirements"] for entry in bound["checks"]), bound["checks"]
    text = markdown.read_text(encoding="utf-8")
    assert f"- Module: `{run.wheel}`" in text
    assert "Verdict: **PASS**" in text
    assert "certified" in text
    assert f"- Wheel: `{run.wheel.name}` sha256 `" in text
    for entry in bound["checks"]:
        assert f"| `{entry['check']}` | {', '.join(entry['requirements'])} | passed |" in text
    for name, requirements in STATIC_CHECKS.items():
        assert f"| `{name}` | {', '.join(requirements)} | passed |" in text


def test_an_installed_module_is_named_as_its_distribution(tmp_path: Path) -> None:
    """Checking an installed module (no wheel) binds the result to its distribution, and says it is no wheel."""
    result = check("nav", "--only", "checks_manifest", "--report", tmp_path)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout.startswith("nav: PASS\n")
    assert "installed: hardpoint-mod-nav==1.0.0 (RECORD sha256 " in result.stdout
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Installed distribution: `installed:hardpoint-mod-nav==1.0.0`" in text
    assert "cannot pass the evidence gate" in text


def test_needs_nav2_fails_naming_the_interface(tmp_path: Path) -> None:
    report = tmp_path / "evidence"
    result = check("needs-nav2", "--report", report, "--only", "checks_manifest")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout.startswith("needs-nav2: FAIL")
    assert "hardpoint.nav.v2.NavState" in result.stdout

    assert _junit(report / "junit.xml")["test_required_interfaces_in_interface_set"] == "failed"
    assert _result(report / "hardpoint-result.json")["test_required_interfaces_in_interface_set"] == "failed"
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "Verdict: **FAIL**" in text
    assert "| `test_required_interfaces_in_interface_set` | RT-RES-004, RT-RES-011 | failed |" in text
    assert "requires hardpoint.nav.v2.NavState: incompatible major" in text
    assert "hardpoint.nav.v1.NavState" in text


def test_json_output(tmp_path: Path) -> None:
    result = check("needs-nav2", "--report", tmp_path, "--json", "--only", "checks_manifest")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    summary = json.loads(result.stdout)
    assert summary["module"] == "needs-nav2"
    assert summary["verdict"] == "fail"
    assert {c["check"]: c["requirements"] for c in summary["checks"]} == STATIC_CHECKS
    failed = [c for c in summary["checks"] if c["outcome"] != "passed"]
    assert [c["check"] for c in failed] == ["test_required_interfaces_in_interface_set"]
    assert "hardpoint.nav.v2.NavState" in failed[0]["message"]
    assert summary["check_modules"] == ["hardpoint.conformance.checks_manifest"]
    assert summary["subject"]["kind"] == "installed"
    assert summary["report"]["junit"] == str((tmp_path / "junit.xml").resolve())


def test_unknown_module_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = check("no-such-module", "--report", tmp_path / "evidence")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "hardpoint: error: no module named 'no-such-module' in entry-point group hardpoint.modules"
    )
    assert "nav" in result.stderr  # the installed modules are listed
    assert not (tmp_path / "evidence").exists()


def test_missing_wheel_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = check(tmp_path / "absent-1.0-py3-none-any.whl")
    assert result.exit_code == 1
    assert result.stderr.startswith("hardpoint: error: no wheel file ")


def test_a_wheel_passes_and_the_result_binds_its_digest(tmp_path: Path) -> None:
    wheel = nav_copy_wheel(tmp_path)
    result = check(wheel, "--report", tmp_path / "evidence", "--only", "hardpoint.conformance.checks_manifest")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert f"wheel: {wheel.name} sha256 {digest}" in result.stdout
    assert _result(tmp_path / "evidence" / "hardpoint-result.json") == dict.fromkeys(STATIC_CHECKS, "passed")
    bound = json.loads((tmp_path / "evidence" / "hardpoint-result.json").read_text(encoding="utf-8"))
    assert bound["subject"] == {"kind": "wheel", "name": wheel.name, "sha256": digest}
    assert bound["module"] == "nav"
    assert f"- Wheel: `{wheel.name}` sha256 `{digest}`" in (tmp_path / "evidence" / "report.md").read_text()
    assert not (tmp_path / "evidence" / "evidence.dsse.json").exists()  # unsigned unless --sign-key


def test_only_selects_check_modules_and_is_refused_in_certified_mode(tmp_path: Path) -> None:
    refused = check("nav", "--certified", "--only", "checks_manifest", "--report", tmp_path / "a")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("hardpoint: error: --only cannot be used with --certified")
    unknown = check("nav", "--only", "checks_nothing", "--report", tmp_path / "b")
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("hardpoint: error: no check module checks_nothing (available: ")
    assert "hardpoint.conformance.checks_manifest" in unknown.stderr
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()
    ran = check("nav", "--only", "checks_manifest", "--report", tmp_path / "c")
    assert ran.exit_code == 0, (ran.stdout, ran.stderr)
    text = (tmp_path / "c" / "report.md").read_text(encoding="utf-8")
    assert "- Check modules: `hardpoint.conformance.checks_manifest`\n" in text
    assert "Mode: relaxed" in text


# --------------------------------------------------------------------------- whole reasons (CF-EV-007)


def test_a_reason_is_kept_whole_up_to_its_bound_and_cut_with_a_marker() -> None:
    from hardpoint_runtime._conformance_cli import MAX_REASON_BYTES, bound_reason

    short = "Failed: CF-TASK-003 module 'x', cancels:\n  task 'a': no TaskResult within 1 s of a cancel"
    assert bound_reason(short) == short
    long = "Failed: CF-X first line\n" + "\n".join(f"  problem {i}: é" for i in range(2000))
    cut = bound_reason(long)
    kept, marker = cut.rsplit("\n", 1)
    assert len(kept.encode("utf-8")) <= MAX_REASON_BYTES
    assert long.startswith(kept)
    size = len(long.encode())
    assert marker == f"[... cut: the reason has {size} bytes, the first {MAX_REASON_BYTES} are kept; see pytest.log]"


def test_summaries_keep_every_line_of_a_reason() -> None:
    """The plugin's reason wins over JUnit's message (pytest shortens that one to its first lines)."""
    from hardpoint_runtime._conformance_cli import _markdown, _summarise

    reason = "Failed: CF-TASK-003 module 'x', cancels:\n  task 'a': duplicate TaskResult\n  task 'b': late"
    plugin = {
        "module": "x",
        "verdicts": [
            {"test": "::test_c", "requirements": ["CF-TASK-003"], "phase": "call", "outcome": "failed",
             "judged": "3 tasks cancelled", "reason": reason},
        ],
    }  # fmt: skip
    shortened = {"test_c": "Failed: CF-TASK-003 module 'x', cancels:\n[+2 more lines; full report in element text]"}
    summary = _summarise(plugin, shortened, 1)
    (check,) = summary["checks"]
    assert check["message"] == reason
    assert check["judged"] == "3 tasks cancelled"
    summary.update(check_modules=["m"])
    text = _markdown(summary)
    assert "  task 'a': duplicate TaskResult" in text
    assert "  task 'b': late" in text
    assert "| `test_c` | CF-TASK-003 | failed | 3 tasks cancelled |" in text


# --------------------------------------------------------------------------- progress (CF-EV-014)


def test_progress_on_stderr_leaves_json_on_stdout_alone(tmp_path: Path) -> None:
    result = check("nav", "--only", "checks_manifest", "--report", tmp_path, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["verdict"] == "pass"  # stdout is the JSON and nothing else
    at = r"\[\d+:\d\d\] "  # the time since the run began
    assert re.fullmatch(
        f"{at}3 checks in 1 check modules: checks_manifest\n"
        f"{at}checks_manifest: started \\(3 checks\\)\n"
        f"{at}checks_manifest: 3 passed in \\d+ s\n"
        f"{at}checks done: 3 passed\n",
        result.stderr,
    ), result.stderr


def test_progress_says_which_check_is_still_running_and_for_how_long() -> None:
    from hardpoint_runtime._conformance_cli import Progress

    now = [100.0]
    said: list[str] = []
    progress = Progress(said.append, every_s=30.0, clock=lambda: now[0])
    contract = "hardpoint_runtime.conformance.checks_contract"
    progress.feed({"event": "collected", "checks": [{"nodeid": "::a", "module": contract}] * 2})
    now[0] += 2
    progress.feed({"event": "start", "nodeid": "::test_rate[x]", "module": contract})
    now[0] += 29
    progress.tick()
    assert said[-1] == "[0:02] checks_contract: started (2 checks)"  # nothing new for 29 s: quiet
    now[0] += 1
    progress.tick()
    assert said[-1] == "[0:32] checks_contract: still running after 30 s (test_rate[x])"
    progress.feed({"event": "result", "nodeid": "::test_rate[x]", "module": contract, "phase": "call",
                   "outcome": "failed"})  # fmt: skip
    progress.feed({"event": "start", "nodeid": "::test_qos[x]", "module": contract})
    progress.feed({"event": "result", "nodeid": "::test_qos[x]", "module": contract, "phase": "call",
                   "outcome": "passed"})  # fmt: skip
    now[0] += 5
    progress.feed({"event": "start", "nodeid": "::test_x", "module": "hardpoint_runtime.conformance.checks_tasks"})
    assert said[-2:] == ["[0:37] checks_contract: 1 failed, 1 passed in 35 s", "[0:37] checks_tasks: started"]
    progress.finish()
    assert said[-2:] == ["[0:37] checks_tasks: no result in 0 s", "[0:37] checks done: 1 failed, 1 passed"]


def test_a_reason_the_plugin_cut_is_not_cut_again() -> None:
    from hardpoint.conformance.plugin import MAX_REASON_BYTES
    from hardpoint.conformance.plugin import bound_reason as plugin_bound
    from hardpoint_runtime._conformance_cli import _summarise

    reason = plugin_bound("Failed: CF-X\n" + "x" * (2 * MAX_REASON_BYTES))
    plugin = {"verdicts": [{"test": "::t", "requirements": ["CF-X"], "phase": "call", "outcome": "failed",
                            "reason": reason}]}  # fmt: skip
    (check,) = _summarise(plugin, {}, 1)["checks"]
    assert check["message"] == reason
    assert check["message"].count("[... cut: ") == 1
