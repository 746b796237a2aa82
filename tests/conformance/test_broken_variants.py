"""Acceptance 2: each deliberately broken variant fails with the right check and requirement ID named.

The variants are the distribution ``tests/fixtures/broken_variants`` (entry points ``broken_<what>``),
each a reference module that breaks one rule. Every variant is checked as a supplier's module is: as
a wheel (``wheelkit.variant_wheel``: the variant's package and its one entry point), through the real
CLI, ``hardpoint conformance check hardpoint_broken_<what>-1.0.0-py3-none-any.whl --json --sign-key
KEY``, all of them in parallel processes, once per module; each row below then asserts the exit code,
the exact set of failing checks, and that each expected check names its requirement ID (in its marker
and in its message), in the JSON summary and in the signed evidence (issue 12: checked by entry-point
name, the wheel path of the interoperability checks was never exercised).

Two forms. CI runs the bounded one: each variant with ``--only`` the check modules its fault is in
(the rule it breaks and the consequences within those modules; about a third of a full run). The
full form (``-m slow``) runs every check module on every variant and pins every consequence,
whichever module it shows in.

To add a variant: add its entry point to ``tests/fixtures/broken_variants/pyproject.toml`` and one
``Variant(...)`` row to ``VARIANTS``. (``broken_resend``, whose fault depends on its configured delay, has
its own test: ``test_duplicate_results.py``.)
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from wheelkit import variant_wheel

pytestmark = pytest.mark.integration

NAV = "hardpoint.nav.v1.NavState"
#: One ``hardpoint conformance check`` run may take this long on a loaded 2-core machine.
RUN_TIMEOUT_S = 600
#: Variants checked at the same time (each is mostly waiting for bus observation windows).
PARALLEL = 6


@dataclass(frozen=True)
class Variant:
    """A broken variant and what the suite must say about it."""

    name: str
    #: The failing checks this variant exists for, each with the requirement ID it must name.
    fails: Mapping[str, str]
    #: The check modules the bounded form runs (``--only``): those of the checks in ``fails``.
    only: tuple[str, ...] = ("checks_contract",)
    #: Other checks that fail as a direct consequence of the same fault (each with the reason it must).
    consequences: Mapping[str, str] = field(default_factory=dict)


VARIANTS = [
    Variant(
        "broken_qos",
        {f"test_qos[{NAV}]": "IF-NAV-STATE-QOS"},
        # A volatile writer does not match the transient-local readers of the platform's consumers.
        consequences={
            "test_interop_as_provider": "CF-IOP-002",
            "test_sample_schema_ids_match_platform": "CF-SCHEMA-003",
        },
    ),
    Variant("broken_rate", {f"test_rate[{NAV}]": "IF-NAV-STATE-RATE"}),
    Variant("broken_key", {f"test_key[{NAV}]": "IF-NAV-STATE-KEY"}),
    Variant("broken_undeclared", {"test_no_undeclared_publication": "SDK-BUS-001"}),
    Variant(
        "broken_lifecycle",
        only=("checks_lifecycle",),
        fails={
            "test_every_valid_transition_reaches_its_state": "CF-LC-001",
            # It cannot be made INACTIVE, so it keeps publishing when told to stop.
            "test_publishes_only_while_active": "CF-LC-005",
        },
    ),
    Variant(
        "broken_field",
        {f"test_field_constraints[{NAV}]": "IF-NAV-STATE-FIELD-POSITION.LATITUDE_DEG"},
        # Positions 100 degrees off make the sensors' geo-referenced tracks wrong end to end.
        consequences={"test_interop_as_provider": "CF-IOP-002"},
    ),
    Variant(
        "broken_schema",
        # Built against a vendored nav.proto whose fix_quality is a string: FIELD_WIRE_COMPATIBLE_TYPE.
        {"test_announced_schemas_wire_compatible": "CF-SCHEMA-002"},
        only=("checks_schema",),
        # Its samples carry the vendored schema id: every platform reader drops them, and decoded with the
        # platform's schema the string field 6 is no FixQuality (it reads as the zero value).
        consequences={
            "test_sample_schema_ids_match_platform": "CF-SCHEMA-003",
            f"test_header[{NAV}]": "IF-ENV-SCHEMA",
            f"test_field_constraints[{NAV}]": "IF-NAV-STATE-FIELD-FIX_QUALITY",
            "test_interop_as_provider": "CF-IOP-002",
        },
    ),
    # Fusion whose process exits on a NaN relative position (legal, never sent by real sensors): only the
    # robustness check's boundary inputs reach it; the next checks run on a fresh worker.
    Variant("broken_boundary", {"test_valid_and_boundary_inputs": "CF-ROB-001"}, only=("checks_robustness",)),
    # Fusion whose callback raises on a 4096-character sensor id: the SDK catches it, the process lives, and the
    # robustness check still fails (module code failed on an input).
    Variant("broken_raises", {"test_valid_and_boundary_inputs": "CF-ROB-001"}, only=("checks_robustness",)),
    # Nav whose every position is 1 km north of the platform: valid NavState, wrong end to end. Only the
    # interoperability matrix can tell (the sensors' geo-referenced tracks miss every target).
    Variant("broken_interop", {"test_interop_as_provider": "CF-IOP-002"}, only=("checks_interop",)),
    Variant(
        "broken_unanswered",
        only=("checks_tasks",),
        fails={"test_requests_acknowledged_within_deadline": "CF-TASK-001"},
        # A nav that declares task handling and answers nothing: no request is acked, so no task is
        # accepted or ends, no cancel is answered, in any sequence.
        consequences={
            "test_accepted_tasks_end_with_one_result": "CF-TASK-002",
            "test_cancellation_honoured": "CF-TASK-003",
            "test_request_cancel_sequences": "CF-TASK-004",
        },
    ),
]


Result = tuple[int, dict[str, Any], str, Path]


def _check(variant: Variant, work: Path, key: Path, *, bounded: bool) -> Result:
    only = [arg for module in variant.only for arg in ("--only", module)] if bounded else []
    work.mkdir(parents=True)
    wheel = variant_wheel(work, variant.name)
    report = work / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime.cli", "conformance", "check", str(wheel), "--json",
         "--report", str(report), "--sign-key", str(key), *only],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result = {}
    return proc.returncode, result, proc.stderr[-3000:], report


def _check_all(root: Path, key: Path, *, bounded: bool) -> dict[str, Result]:
    """Every variant's (exit code, JSON result, stderr tail, report dir), checked in parallel processes."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        runs = {v.name: pool.submit(_check, v, root / v.name, key, bounded=bounded) for v in VARIANTS}
        return {name: run.result() for name, run in runs.items()}


@pytest.fixture(scope="module")
def bounded_results(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Result]:
    return _check_all(tmp_path_factory.mktemp("variants-bounded"), keys[0], bounded=True)


@pytest.fixture(scope="module")
def full_results(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Result]:
    return _check_all(tmp_path_factory.mktemp("variants"), keys[0], bounded=False)


def _signed_checks(report: Path) -> dict[str, dict[str, Any]]:
    """The checks of the signed evidence (the DSSE payload's in-toto predicate), by name."""
    envelope = json.loads((report / "evidence.dsse.json").read_text(encoding="utf-8"))
    return {c["check"]: c for c in json.loads(base64.b64decode(envelope["payload"]))["predicate"]["checks"]}


def _assert_fails_as_expected(variant: Variant, run: Result, *, full: bool) -> None:
    code, result, stderr, report = run
    assert result, f"{variant.name}: no JSON result (exit {code}):\n{stderr}"
    checks = {c["check"]: c for c in result["checks"]}
    failing = {name for name, c in checks.items() if c["outcome"] != "passed"}
    summary = {name: checks[name].get("message", "")[:300] for name in sorted(failing)}
    assert code == 1, f"{variant.name}: exit {code}, verdict {result['verdict']}"
    assert result["verdict"] == "fail"
    assert set(variant.fails) <= set(checks), f"{variant.name}: the checks it exists for did not run: {sorted(checks)}"
    if full:  # every check module ran: so did every consequence
        assert set(variant.consequences) <= set(checks), f"{variant.name}: consequences did not run: {sorted(checks)}"
    # Every consequence among the checks that ran, and nothing else.
    consequences = {name: req for name, req in variant.consequences.items() if name in checks}
    assert failing == set(variant.fails) | set(consequences), json.dumps(summary, indent=1)
    for name, requirement in {**variant.fails, **consequences}.items():
        check = checks[name]
        assert check["outcome"] == "failed", f"{name}: {check['outcome']} (an error is not a verdict): {check}"
        assert requirement in check["requirements"], f"{name} does not cite {requirement}: {check['requirements']}"
        assert requirement in check.get("message", ""), f"{name}: message does not name {requirement}: {check}"
    # The signed evidence says the same, reasons whole (CF-EV-007).
    assert result["subject"]["kind"] == "wheel"
    signed = _signed_checks(report)
    for name, requirement in {**variant.fails, **consequences}.items():
        assert signed[name]["outcome"] == "failed"
        assert requirement in signed[name]["requirements"]
        assert signed[name]["message"] == checks[name]["message"]
    if full:  # the variant broke one rule: every other check ran and passed (none skipped)
        assert len(checks) - len(failing) >= 10


@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_fails_with_the_right_check_and_requirement(
    variant: Variant, bounded_results: dict[str, Result]
) -> None:
    """The bounded form: only the check modules the fault is in (``--only``)."""
    _assert_fails_as_expected(variant, bounded_results[variant.name], full=False)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_fails_with_the_right_check_and_every_consequence(
    variant: Variant, full_results: dict[str, Result]
) -> None:
    """The full form: every check module, so every consequence is pinned wherever it shows."""
    _assert_fails_as_expected(variant, full_results[variant.name], full=True)
