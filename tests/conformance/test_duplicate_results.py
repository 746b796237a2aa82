"""Exactly one result per accepted task, judged directly (CF-TASK-005), with whole reasons in the evidence (CF-EV-007).

The broken variant ``broken_resend`` is the reference geofence, except that it sends every
``TaskResult`` a second time, unasked, ``resend_after_s`` (its configuration) later. Before
CF-TASK-005 it was caught at 5 s only because another check happened to wait long enough, and passed
every task check at 8 s. Each run below is the real CLI, ``hardpoint conformance check broken_resend
--only checks_tasks --config ... --sign-key ... --json``; every delay inside the watch window must
fail CF-TASK-002 (the task outcomes) naming the duplicate, its delay and CF-TASK-005, and the signed
evidence must carry that reason whole: it is on the failure's second line, which the evidence used to
cut off.

Bounded in CI: two delays (0.5 s and the 8 s that used to pass). ``-m slow``: every delay, up to one
second before the end of the watch window (11 s with today's contracts).
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

from hardpoint_runtime.conformance._tasking import ALLOWANCE_S, WATCH_DEADLINES

pytestmark = pytest.mark.integration

#: The duplicate watch of today's contracts (1 s request and cancel deadlines): 10 x 1 s + 1 s.
WATCH_S = WATCH_DEADLINES * 1.0 + ALLOWANCE_S
#: One run of the task checks on a loaded 2-core machine (about a minute alone).
RUN_TIMEOUT_S = 600
BOUNDED_DELAYS = (0.5, 8.0)
#: Every delay: at once, the 5 s that was caught by luck, the 8 s that passed, one second before the end.
ALL_DELAYS = (0.5, 5.0, 8.0, WATCH_S - 1.0)
RESULT_CHECK = "test_accepted_tasks_end_with_one_result"


def _run(delay_s: float, root: Path, key: Path) -> tuple[int, dict[str, Any], Path, str]:
    work = root / f"resend-{delay_s:g}"
    work.mkdir(parents=True)
    config = work / "config.toml"
    config.write_text(f"[config]\nresend_after_s = {delay_s}\n", encoding="utf-8")
    report = work / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime.cli", "conformance", "check", "broken_resend", "--json",
         "--only", "checks_tasks", "--config", str(config), "--report", str(report), "--sign-key", str(key)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        summary = {}
    return proc.returncode, summary, report, proc.stderr[-3000:]


def _runs(delays: tuple[float, ...], root: Path, key: Path) -> dict[float, tuple[int, dict[str, Any], Path, str]]:
    with ThreadPoolExecutor(max_workers=len(delays)) as pool:
        futures = {d: pool.submit(_run, d, root, key) for d in delays}
        return {d: f.result() for d, f in futures.items()}


@pytest.fixture(scope="module")
def bounded_runs(
    tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]
) -> dict[float, tuple[int, dict[str, Any], Path, str]]:
    return _runs(BOUNDED_DELAYS, tmp_path_factory.mktemp("resend-bounded"), keys[0])


@pytest.fixture(scope="module")
def all_runs(
    tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]
) -> dict[float, tuple[int, dict[str, Any], Path, str]]:
    return _runs(ALL_DELAYS, tmp_path_factory.mktemp("resend-all"), keys[0])


def _signed_checks(report: Path) -> dict[str, dict[str, Any]]:
    """The checks of the signed evidence (the DSSE payload's in-toto predicate), by name."""
    envelope = json.loads((report / "evidence.dsse.json").read_text(encoding="utf-8"))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return {c["check"]: c for c in statement["predicate"]["checks"]}


def _assert_duplicate_named(delay_s: float, run: tuple[int, dict[str, Any], Path, str]) -> None:
    code, summary, report, stderr = run
    assert summary, f"resend after {delay_s} s: no JSON result (exit {code}):\n{stderr}"
    checks = {c["check"]: c for c in summary["checks"]}
    assert code == 1, f"resend after {delay_s} s: exit {code}: {json.dumps(checks, indent=1)[:3000]}"
    assert checks["test_requests_acknowledged_within_deadline"]["outcome"] == "passed"  # acks are fine
    result = checks[RESULT_CHECK]
    assert result["outcome"] == "failed", f"resend after {delay_s} s passed CF-TASK-002: {result}"
    assert "CF-TASK-002" in result["requirements"]
    message = result["message"]
    first, _, rest = message.partition("\n")
    assert first.startswith("Failed: CF-TASK-002 module 'broken_resend', task outcomes:"), message
    # The duplicate is named on the following lines: its task, its delay, the rule.
    duplicate = next((line for line in rest.splitlines() if "duplicate TaskResult" in line), "")
    assert duplicate, f"resend after {delay_s} s: the duplicate is not named:\n{message}"
    measured = float(duplicate.split(" s after the first", 1)[0].rsplit(" ", 1)[-1])
    assert delay_s - 0.5 < measured < delay_s + 1.5, duplicate
    assert "CF-TASK-005" in duplicate
    assert duplicate.lstrip().startswith("task 'cf-")
    # Whole in every piece of evidence (CF-EV-007): the JSON result, the report, the signed statement.
    bound = json.loads((report / "hardpoint-result.json").read_text(encoding="utf-8"))
    assert duplicate in {c["check"]: c for c in bound["checks"]}[RESULT_CHECK]["message"]
    assert duplicate.strip() in (report / "report.md").read_text(encoding="utf-8")
    signed = _signed_checks(report)[RESULT_CHECK]
    assert signed["outcome"] == "failed"
    assert duplicate in signed["message"]


@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
@pytest.mark.parametrize("delay_s", BOUNDED_DELAYS)
def test_a_result_resent_unasked_fails_the_task_checks(
    delay_s: float, bounded_runs: dict[float, tuple[int, dict[str, Any], Path, str]]
) -> None:
    _assert_duplicate_named(delay_s, bounded_runs[delay_s])


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
@pytest.mark.parametrize("delay_s", ALL_DELAYS)
def test_a_result_resent_unasked_fails_whenever_it_comes_within_the_window(
    delay_s: float, all_runs: dict[float, tuple[int, dict[str, Any], Path, str]]
) -> None:
    _assert_duplicate_named(delay_s, all_runs[delay_s])
    # The other checks that watch (cancels, sequences) see the duplicates of their own tasks too.
    checks = {c["check"]: c for c in all_runs[delay_s][1]["checks"]}
    watching = {"test_cancellation_honoured": "CF-TASK-003", "test_request_cancel_sequences": "CF-TASK-004"}
    for name, requirement in watching.items():
        assert checks[name]["outcome"] == "failed", f"{name} after {delay_s} s: {checks[name]}"
        assert requirement in checks[name]["message"]
        assert "duplicate TaskResult" in checks[name]["message"]
