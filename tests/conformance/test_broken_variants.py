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

To add a variant: add its entry point to ``tests/fixtures/broken_variants/pyproject.toml``, one
``Variant(...)`` row to ``VARIANTS`` and one row to the table of ``spec/conformance.md`` (CF-VAR), which lists
every variant of both fixture distributions and the faults the suite cannot catch (its known gaps).
(``broken_resend``, whose fault depends on its configured delay, has its own test: ``test_duplicate_results.py``.)
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
TRACK = "hardpoint.track.v1.SensorTrack"
FUSED = "hardpoint.track.v1.FusedTrack"
CF_LC_006 = "test_transitions_answered_in_time_with_heartbeats"
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
    # on_activate blocks 20 s. No lifecycle check waits for it (CF-LC-006): each that activates fails in seconds.
    Variant(
        "broken_slow_hook",
        {CF_LC_006: "CF-LC-006"},
        only=("checks_lifecycle",),
        consequences={
            "test_every_valid_transition_reaches_its_state": "CF-LC-006",
            "test_every_invalid_transition_is_refused_with_the_state_unchanged": "CF-LC-006",
            "test_restart_reaches_active_again": "CF-LC-006",
            "test_publishes_only_while_active": "CF-LC-006",
        },
    ),
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
    # Issue 12, part B2: faults no check saw before, and more a careless or hostile supplier could ship.
    # 7 NavState samples at once every 700 ms: 10 Hz on average, gaps of 700 ms (deadline 500 ms; 750 ms passed).
    Variant("broken_bursty", {f"test_rate[{NAV}]": "IF-NAV-STATE-DEADLINE"}),
    # Publishes for 4.5 s after activation, then nothing, heartbeat ACTIVE and ok: the rate it kept was right.
    Variant("broken_goes_silent", {f"test_rate[{NAV}]": "IF-NAV-STATE-LIVE"}),
    # A new platform_id (key) on every sample: unbounded instances, no key kept up; no sensor finds its platform.
    Variant(
        "broken_key_churn",
        {f"test_rate[{NAV}]": "IF-NAV-STATE-LIVE"},
        consequences={"test_interop_as_provider": "CF-IOP-002"},
    ),
    # One NavState in 40 with a NaN heading accuracy.
    Variant("broken_nan_rare", {f"test_field_constraints[{NAV}]": "IF-NAV-STATE-FIELD-ACCURACY.HEADING_STD_RAD"}),
    # Its NavState writer is EVENT (volatile) for 2 s after activation, then STATE again: gone before the check.
    Variant("broken_qos_switch", {f"test_qos[{NAV}]": "IF-NAV-STATE-QOS"}),
    # A schema id of zeros on every NavState, the payload right.
    Variant(
        "broken_schema_id",
        {f"test_header[{NAV}]": "IF-ENV-SCHEMA", "test_sample_schema_ids_match_platform": "CF-SCHEMA-003"},
        only=("checks_contract", "checks_schema"),
        # Every platform reader drops its samples (IF-ENV-RX-SCHEMA): the sensors get no navigation.
        consequences={"test_interop_as_provider": "CF-IOP-002"},
    ),
    # Also writes NavState on hp-staged/, where a nav update on probation is judged.
    Variant("broken_staged_write", {"test_no_undeclared_publication": "CF-BUS-004"}),
    # Reads FusedTrack, which it neither requires nor uses.
    Variant("broken_eavesdrop", {"test_no_undeclared_subscription": "CF-BUS-008"}),
    # A second participant of its worker, made 2 s after activation with plain Cyclone DDS, writes Alerts.
    Variant("broken_late_participant", {"test_no_undeclared_publication": "CF-BUS-004"}),
    # A child process it starts 2 s after activation joins the bus and writes Alerts.
    Variant("broken_child_participant", {"test_no_undeclared_publication": "CF-BUS-004"}),
    # A radar whose SensorTracks claim to be from nav, its feeder: judged as its own samples all the same.
    Variant(
        "broken_impersonate",
        {f"test_header[{TRACK}]": "IF-ENV-SOURCE"},
        # The matrix knows a provider's output by its source: no cell of its row or column has its tracks (and
        # on a platform, every reader refuses them once nav is bound, SDK-BUS-ID-002).
        consequences={"test_interop_as_consumer": "CF-IOP-001", "test_interop_as_provider": "CF-IOP-002"},
    ),
    # The reference radar (2 Hz per track) without its declared rate: below the nominal 10 Hz - 50 %.
    Variant("broken_slow_radar", {f"test_rate[{TRACK}]": "IF-TRACK-SENSOR-RATE"}),
    # Fusion publishing every fused track 10 times: 20 Hz per track on a reliable state topic (at most 2.4 Hz).
    Variant("broken_flood", {f"test_rate[{FUSED}]": "IF-TRACK-FUSED-RATE"}),
    # Turns its heartbeat off once configured: no heartbeat while ACTIVE, none after a restart.
    Variant(
        "broken_no_heartbeat",
        {CF_LC_006: "CF-LC-006"},
        only=("checks_lifecycle",),
        consequences={"test_restart_reaches_active_again": "CF-LC-004"},
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
