"""What a check judged (CF-JDG): judged N items, not applicable, or nothing; certified mode refuses nothing.

Every check records how many items it judged (cells, samples, keys, writers, ...) or why it does not
apply (decided from the manifest or the contract). A check that passed having judged nothing fails in
certified mode, naming itself and what was missing; in a relaxed run it passes, flagged. The real case:
``broken_unanswered`` declares that it provides ``TaskAck`` and never publishes one, so the contract
checks of ``TaskAck`` (key, header, field constraints) have no sample to judge. They used to pass as "not
applicable"; a certified run now fails them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardpoint.conformance.plugin import JUDGED, NOT_APPLICABLE, judgement

pytest_plugins = ["pytester"]

ACK = "hardpoint.tasking.v1.TaskAck"


# --------------------------------------------------------------------------- the rule (pure)


def test_judgement_counts_items_and_tells_not_applicable_from_nothing() -> None:
    assert judgement([(JUDGED, "12 samples of X"), (JUDGED, "0 writers"), ("note", "n")]) == (
        "judged",
        "12 samples of X",
    )
    assert judgement([(NOT_APPLICABLE, "the module provides no interface")]) == (
        "not applicable",
        "the module provides no interface",
    )
    # Zero counts are what was missing; a reason given besides does not make it judged.
    assert judgement([(JUDGED, "0 samples of X"), (JUDGED, "0 cells")]) == ("nothing", "no samples of X; no cells")
    assert judgement([("note", "something")]) == ("nothing", "the check recorded nothing it judged")
    assert judgement([(JUDGED, "3 cells"), (NOT_APPLICABLE, "partly")])[0] == "judged"


# --------------------------------------------------------------------------- through the plugin

_CHECKS = """
import pytest

from hardpoint.conformance.plugin import judged, not_applicable


@pytest.mark.hardpoint("CF-X-001")
def test_judged_some(record_property):
    judged(record_property, 3, "cells")


@pytest.mark.hardpoint("CF-X-002")
def test_not_applicable(request):
    not_applicable(request, "the module provides no interface")


@pytest.mark.hardpoint("CF-X-003")
def test_judged_zero(record_property):
    judged(record_property, 0, "samples of hardpoint.tasking.v1.TaskAck")


@pytest.mark.hardpoint("CF-X-004")
def test_silent():
    pass


def test_not_a_hardpoint_check():
    pass
"""


def _verdicts(report: Path) -> dict[str, dict[str, object]]:
    data = json.loads((report / "hardpoint-result.json").read_text(encoding="utf-8"))
    return {v["test"].rsplit("::", 1)[-1]: v for v in data["verdicts"]}


def test_a_relaxed_run_passes_a_check_that_judged_nothing_and_flags_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks=_CHECKS)
    report = pytester.path / "relaxed"
    result = pytester.runpytest_subprocess("--hardpoint-module", "nav", "--hardpoint-report", str(report))
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*hardpoint: checks that judged nothing*", "PASSED (judged nothing) *test_silent*"])
    verdicts = _verdicts(report)
    assert verdicts["test_judged_some"]["judged"] == "3 cells"
    assert verdicts["test_not_applicable"]["judged"] == "not applicable: the module provides no interface"
    assert verdicts["test_judged_zero"]["judged"] == f"nothing: no samples of {ACK}"
    assert verdicts["test_silent"]["judged"] == "nothing: the check recorded nothing it judged"
    assert all(v["outcome"] == "passed" for v in verdicts.values())


def test_certified_mode_fails_a_check_that_judged_nothing_naming_it_and_what_was_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_checks=_CHECKS)
    report = pytester.path / "certified"
    result = pytester.runpytest_subprocess(
        "--hardpoint-module", "nav", "--hardpoint-certified", "--hardpoint-report", str(report)
    )
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            f"*CF-JDG-002 hardpoint certified mode: test_checks.py::test_judged_zero judged nothing "
            f"(no samples of {ACK}): a check that judged nothing cannot pass a certified run*",
            "*CF-JDG-002 hardpoint certified mode: test_checks.py::test_silent judged nothing "
            "(the check recorded nothing it judged)*",
        ]
    )
    verdicts = _verdicts(report)
    assert {name for name, v in verdicts.items() if v["outcome"] == "failed"} == {"test_judged_zero", "test_silent"}
    assert f"judged nothing (no samples of {ACK})" in str(verdicts["test_judged_zero"]["reason"])


# --------------------------------------------------------------------------- the real case


@pytest.mark.integration
def test_a_module_that_never_publishes_what_it_provides_cannot_pass_certified(
    pytester: pytest.Pytester,
) -> None:
    """``broken_unanswered`` provides TaskAck and never sends one: its TaskAck contract checks judge no sample."""
    report = pytester.path / "report"
    args = ("--hardpoint-module", "broken_unanswered", "--hardpoint-report", str(report), "-p", "no:cacheprovider")
    checks = ("--pyargs", "hardpoint_runtime.conformance.checks_contract")
    certified = pytester.runpytest_subprocess(*args, "--hardpoint-certified", *checks, timeout=300)
    verdicts = _verdicts(report)
    vacuous = {f"test_{kind}[{ACK}]" for kind in ("key", "header", "field_constraints")}
    failed = {name for name, v in verdicts.items() if v["outcome"] == "failed"}
    assert failed == vacuous, certified.stdout.str()[-3000:]
    for name in vacuous:
        reason = str(verdicts[name]["reason"])
        assert reason.startswith("CF-JDG-002 hardpoint certified mode: ")
        assert f"judged nothing (no samples of {ACK})" in reason or f"judged nothing (no messages of {ACK})" in reason
    # Its NavState, and the TaskAck writer's QoS, were judged: those pass.
    nav = "hardpoint.nav.v1.NavState"
    assert verdicts[f"test_field_constraints[{nav}]"]["outcome"] == "passed"
    assert str(verdicts[f"test_field_constraints[{nav}]"]["judged"]).endswith(f"messages of {nav}")
    assert verdicts[f"test_qos[{ACK}]"]["judged"] == f"1 writers of {ACK} on hp/tasking/v1/ack"
    assert str(verdicts[f"test_rate[{ACK}]"]["judged"]).startswith("not applicable: ")  # aperiodic: by contract
