"""The interoperability matrix (issue 6): every reference provider with every reference consumer, end to end.

The full matrix runs every reference module in real runtime workers on one private Cyclone DDS domain
(loopback) on the interoperability scenario and judges each provider x consumer cell by its end result
(``hardpoint_runtime.conformance._interop``). ``pytest -s`` prints the matrix. A real module that does not
interoperate (``beacon-track``: SensorTracks with no position, not of the scenario's targets) fails its
cells, naming the pair, the interface and why. The planning and judging rules are unit-tested on
hand-made observations, each with a case that must fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hardpoint
from hardpoint_runtime.conformance._harness import HarnessError
from hardpoint_runtime.conformance._interop import (
    ALERT_WITHIN_S,
    GATE_M,
    REFERENCE_MODULES,
    SCENARIO_TOML,
    Cell,
    Matrix,
    Observations,
    Party,
    Plan,
    Truth,
    judge,
    matrix_markdown,
    matrix_text,
    plan_for,
    plan_full,
    run_interop,
)

NAV = "hardpoint.nav.v1.NavState"
TRACK = "hardpoint.track.v1.SensorTrack"
FUSED = "hardpoint.track.v1.FusedTrack"
ALERT = "hardpoint.alert.v1.Alert"
ZONE = "hardpoint.alert.v1.Zone"

REFS = [
    Party("nav", (NAV,)),
    Party("radar", (TRACK,), requires=(NAV,)),
    Party("eoir", (TRACK,), requires=(NAV,)),
    Party("fusion", (FUSED,), requires=(TRACK,)),
    Party("geofence", (ALERT, ZONE), requires=(FUSED,)),
    Party("recorder", (), observer=True),
]
INTERFACES = (NAV, TRACK, FUSED, ALERT, ZONE)


# --------------------------------------------------------------------------- the full matrix, for real


@pytest.fixture(scope="module")
def full_matrix(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    return run_interop(None, tmp_path_factory.mktemp("interop-full"))


@pytest.mark.integration
def test_full_matrix_every_applicable_cell_passes(full_matrix: Matrix, tmp_path: Path) -> None:
    print(f"\n{matrix_text(full_matrix)}\n(scenario {full_matrix.scenario_s:.1f} s, wall {full_matrix.wall_s:.1f} s)")
    assert full_matrix.members
    assert set(full_matrix.members) == set(REFERENCE_MODULES)
    failures = [f"{c.provider} -> {c.consumer} {c.interface}: {c.detail}" for c in full_matrix.failures()]
    assert not failures, "\n".join(failures)
    # Every pairing the manifests make is a cell (nothing silently left out) ...
    pairs = {(c.provider, c.consumer, c.interface) for c in full_matrix.cells}
    expected = {
        ("nav", "radar", NAV),
        ("nav", "eoir", NAV),
        ("radar", "fusion", TRACK),
        ("eoir", "fusion", TRACK),
        ("fusion", "geofence", FUSED),
    } | {(p, "recorder", i) for p, provides in [("nav", NAV), ("radar", TRACK), ("eoir", TRACK), ("fusion", FUSED)]
         for i in [provides]}  # fmt: skip
    assert expected <= pairs
    # ... and only the task answers nobody asked for are not applicable: every data interface was exercised.
    specs = hardpoint.all_interfaces()
    not_applicable = {c.interface for c in full_matrix.cells if c.verdict == "n/a"}
    assert all(specs[i].nominal_rate_hz == 0 for i in not_applicable)
    assert {ALERT, ZONE} <= {c.interface for c in full_matrix.cells if c.verdict == "pass"}
    # The evidence files: JSON with every cell, Markdown with rows providers and columns consumers.
    js, md = full_matrix.write(tmp_path)
    assert '"verdict": "pass"' in js.read_text()
    text = md.read_text()
    assert "| provider \\ consumer | radar | eoir | fusion | geofence | recorder |" in text
    assert "| **nav** | pass NavState | pass NavState | - | - | pass NavState |" in text


# --------------------------------------------------------------------------- a module that does not interoperate


@pytest.mark.integration
def test_beacon_track_fails_its_cells_naming_pair_and_cause(tmp_path: Path) -> None:
    """``beacon-track`` provides SensorTrack (fed nav) but reports nothing geo-referenced on any target."""
    t0 = time.monotonic()
    matrix = run_interop("beacon-track", tmp_path, until_s=5.0)
    by_pair = {(c.provider, c.consumer, c.interface): c for c in matrix.cells}
    assert set(matrix.members) == {"beacon-track", "nav", "fusion", "recorder"}  # radar/eoir replaced
    as_consumer = by_pair["nav", "beacon-track", NAV]
    assert as_consumer.verdict == "fail"
    assert "beacon-track published no geo-referenced SensorTrack" in as_consumer.detail
    to_fusion = by_pair["beacon-track", "fusion", TRACK]
    assert to_fusion.verdict == "fail"
    assert "beacon-track reported no scenario target" in to_fusion.detail
    assert by_pair["beacon-track", "recorder", TRACK].verdict == "pass"  # the recording does hold it
    assert not matrix.ok
    assert time.monotonic() - t0 < 60  # bounded: it does not wait past until_s for a pass that never comes


def test_unknown_module_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="no module named 'no-such-module'"):
        run_interop("no-such-module", tmp_path)


# --------------------------------------------------------------------------- the check, through the plugin


@pytest.mark.integration
def test_check_writes_the_matrix_into_the_report_and_result(tmp_path: Path) -> None:
    """``checks_interop`` for ``nav``, certified: both pass; the matrix lands in the report dir and the result."""
    report = tmp_path / "report"
    report.mkdir()
    stale = {"subject": "someone-else", "cells": []}
    (report / "interop-matrix.json").write_text(json.dumps(stale))  # a previous run's matrix must not survive
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path),
         "--hardpoint-module", "nav", "--hardpoint-certified", "--hardpoint-report", str(report),
         "--pyargs", "hardpoint_runtime.conformance.checks_interop", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    matrix = json.loads((report / "interop-matrix.json").read_text())
    assert matrix["subject"] == "nav"
    assert matrix["verdict"] == "pass"
    assert {(c["provider"], c["consumer"]) for c in matrix["cells"]} == {
        ("nav", "radar"),
        ("nav", "eoir"),
        ("nav", "recorder"),
    }
    assert "| **nav** | pass NavState | pass NavState | pass NavState |" in (report / "interop-matrix.md").read_text()
    result = json.loads((report / "hardpoint-result.json").read_text())
    assert result["interop"] == matrix
    assert {v["test"].rsplit("::", 1)[-1]: v["outcome"] for v in result["verdicts"]} == {
        "test_interop_as_consumer": "passed",  # nav consumes nothing: passed with a "not applicable" note
        "test_interop_as_provider": "passed",
    }


# --------------------------------------------------------------------------- planning


def _members(plan: Plan) -> list[str]:
    return [p.name for p in plan.members]


def test_plan_for_a_sensor_feeds_it_nav_and_pairs_it_with_fusion_and_recorder() -> None:
    plan = plan_for(Party("acme-radar", (TRACK,), requires=(NAV,)), REFS, INTERFACES)
    assert set(_members(plan)) == {"acme-radar", "nav", "fusion", "recorder"}  # radar, eoir: replaced
    assert _members(plan).index("nav") < _members(plan).index("acme-radar") < _members(plan).index("fusion")
    assert set(plan.pairs) == {
        ("nav", "acme-radar", NAV),
        ("acme-radar", "fusion", TRACK),
        ("acme-radar", "recorder", TRACK),
    }


def test_plan_for_a_fusion_replacement_feeds_it_every_reference_sensor() -> None:
    plan = plan_for(Party("acme-fusion", (FUSED,), requires=(TRACK,)), REFS, INTERFACES)
    assert "fusion" not in _members(plan)
    assert {"radar", "eoir", "nav", "geofence", "recorder"} <= set(_members(plan))
    assert {("radar", "acme-fusion", TRACK), ("eoir", "acme-fusion", TRACK)} <= set(plan.pairs)
    assert ("acme-fusion", "geofence", FUSED) in plan.pairs


def test_plan_for_the_recorder_pairs_it_with_every_provider() -> None:
    plan = plan_for(REFS[-1], REFS, INTERFACES)
    assert {p for p, c, _ in plan.pairs if c == "recorder"} == {"nav", "radar", "eoir", "fusion", "geofence"}
    assert _members(plan)[-1] == "recorder"


def test_plan_full_has_no_self_pairs_and_every_consumer() -> None:
    plan = plan_full(REFS)
    assert all(p != c for p, c, _ in plan.pairs)
    assert ("fusion", "geofence", FUSED) in plan.pairs
    assert ("geofence", "recorder", ZONE) in plan.pairs


# --------------------------------------------------------------------------- judging, on hand-made observations


class _Scenario:
    """The interop scenario's truth, loaded for real."""

    def __init__(self, tmp: Path) -> None:
        from hardpoint_sim import load_scenario

        path = tmp / "s.toml"
        path.write_text(SCENARIO_TOML)
        self.sc = load_scenario(path)


@pytest.fixture
def truth(tmp_path: Path) -> Truth:
    return Truth(_Scenario(tmp_path).sc, start_ns=1_000_000_000_000)


def _at(truth: Truth, target: str, t_s: float, north_m: float = 0.0) -> tuple[int, float, float]:
    tt = truth.scenario.target_at(target, t_s)
    return truth.start_ns + int(t_s * 1e9), tt.lat + north_m / 111_320.0, tt.lon


def _sensor_obs(truth: Truth, offset_m: float) -> Observations:
    obs = Observations()
    for k in range(10):
        for target in ("vessel-1", "intruder-1"):
            t_ns, lat, lon = _at(truth, target, 1.0 + k * 0.5, offset_m)
            obs.sensor_tracks.append(("radar", "radar", target, t_ns, lat, lon))
            obs.fused.append(("fusion", f"F-{target}", t_ns, lat, lon, frozenset({"radar"})))
    obs.published |= {(NAV, "nav"), (TRACK, "radar"), (FUSED, "fusion")}
    counters = {f"sub:{i}.delivered": 10 for i in (NAV, TRACK, FUSED)}
    obs.counters = {"radar": dict(counters), "fusion": dict(counters), "geofence": dict(counters)}
    return obs


PLAN = plan_full(REFS[:5])


def _cells(truth: Truth, obs: Observations, until_s: float = 20.0) -> dict[tuple[str, str], Cell]:
    return {(c.provider, c.consumer): c for c in judge(PLAN, obs, truth, hardpoint.all_interfaces(), until_s=until_s)}


def test_judge_passes_tracks_on_the_targets(truth: Truth) -> None:
    cells = _cells(truth, _sensor_obs(truth, offset_m=20.0))
    assert cells["nav", "radar"].verdict == "pass"
    assert cells["radar", "fusion"].verdict == "pass"


def test_judge_fails_tracks_off_the_targets(truth: Truth) -> None:
    cells = _cells(truth, _sensor_obs(truth, offset_m=GATE_M + 200.0))
    assert cells["nav", "radar"].verdict == "fail"
    assert "geo-referencing with this NavState is off" in cells["nav", "radar"].detail
    assert cells["radar", "fusion"].verdict == "fail"


def test_judge_fails_a_consumer_that_refused_samples(truth: Truth) -> None:
    obs = _sensor_obs(truth, offset_m=0.0)
    obs.counters["fusion"][f"sub:{TRACK}.schema_mismatch"] = 4
    cell = _cells(truth, obs)["radar", "fusion"]
    assert cell.verdict == "fail"
    assert "4 schema_mismatch" in cell.detail


def test_judge_alert_pending_then_overdue_then_raised(truth: Truth) -> None:
    entry = next(e for e in truth.entries(30.0) if e.target_id == "intruder-1")
    obs = _sensor_obs(truth, offset_m=0.0)
    for k in range(20):  # the fused track follows the intruder through its entry
        t_ns, lat, lon = _at(truth, "intruder-1", entry.t_s - 2 + k * 0.5)
        obs.fused.append(("fusion", "F-intruder-1", t_ns, lat, lon, frozenset({"radar"})))
    before = _cells(truth, obs, until_s=entry.t_s - 1)["fusion", "geofence"]
    assert before.verdict == "fail"
    assert before.detail.startswith("not judged")
    overdue = _cells(truth, obs, until_s=entry.t_s + ALERT_WITHIN_S + 1)["fusion", "geofence"]
    assert overdue.verdict == "fail"
    assert "raised no alert" in overdue.detail
    raised_ns = truth.start_ns + int((entry.t_s + 1.0) * 1e9)
    obs.alerts.append(("geofence", entry.zone_id, "F-intruder-1", raised_ns))
    assert _cells(truth, obs, until_s=entry.t_s + ALERT_WITHIN_S + 1)["fusion", "geofence"].verdict == "pass"


def test_judge_recording_and_aperiodic(truth: Truth) -> None:
    plan = plan_full(REFS)
    obs = _sensor_obs(truth, offset_m=0.0)
    obs.recorded = {(NAV, "nav")}
    cells = {(c.provider, c.consumer, c.interface): c for c in judge(plan, obs, truth, hardpoint.all_interfaces(),
                                                                        until_s=10.0)}  # fmt: skip
    assert cells["nav", "recorder", NAV].verdict == "pass"
    assert cells["radar", "recorder", TRACK].verdict == "fail"
    assert "the recording has no" in cells["radar", "recorder", TRACK].detail
    assert cells["geofence", "recorder", ALERT].verdict == "n/a"  # aperiodic, never published
    assert cells["geofence", "recorder", ZONE].verdict == "n/a"


def test_judge_periodic_interface_never_published_fails(truth: Truth) -> None:
    obs = _sensor_obs(truth, offset_m=0.0)
    obs.published.discard((NAV, "nav"))
    cell = _cells(truth, obs)["nav", "radar"]
    assert cell.verdict == "fail"
    assert "nav published no hardpoint.nav.v1.NavState" in cell.detail


def test_markdown_rows_providers_columns_consumers() -> None:
    cells = (
        Cell("nav", "radar", NAV, "pass", "ok"),
        Cell("radar", "fusion", TRACK, "fail", "bad"),
        Cell("radar", "recorder", TRACK, "n/a", "none"),
    )
    m = Matrix(None, ("nav", "radar", "fusion", "recorder"), cells, 1.0, 1.0)
    text = matrix_markdown(m)
    assert "| provider \\ consumer | radar | fusion | recorder |" in text
    assert "| **radar** | - | fail SensorTrack | n/a SensorTrack |" in text
    assert "Verdict: **FAIL**" in text
    assert not m.ok
    assert m.failures() == [cells[1]]


def test_only_a_geofence_is_held_to_the_incursion_alerts(truth: Truth) -> None:
    """A module that alerts on tracks but keeps no zones (``alerter``) is judged on delivery alone."""
    alerter = Party("alerter", (ALERT,), requires=(FUSED,))
    plan = plan_for(alerter, REFS, INTERFACES)
    assert "geofence" not in _members(plan)  # replaced: it provides Alert too
    obs = _sensor_obs(truth, offset_m=0.0)
    obs.counters["alerter"] = {f"sub:{FUSED}.delivered": 5}
    cells = {(c.provider, c.consumer): c for c in judge(plan, obs, truth, hardpoint.all_interfaces(), until_s=20.0)}
    assert cells["fusion", "alerter"].verdict == "pass"
    assert "delivered to alerter" in cells["fusion", "alerter"].detail
    obs.counters["alerter"] = {f"sub:{FUSED}.delivered": 5, f"sub:{FUSED}.undecodable": 2}
    cells = {(c.provider, c.consumer): c for c in judge(plan, obs, truth, hardpoint.all_interfaces(), until_s=20.0)}
    assert cells["fusion", "alerter"].verdict == "fail"
