"""The patrol scenario end to end against its ground truth (issue 4, acceptance 2).

The whole ``builtin:patrol`` chain of ``examples/patrol/platform.toml`` (simulated GNSS, radar and EO/IR; nav,
radar, eoir, fusion, geofence with the scenario's zones and the 30 m margin) runs for the scenario's 60 s on the
in-memory bus's manual clock, and its fused tracks and alerts are judged against the scenario's truth. Two more
runs fuse one sensor only (the other sensor module is not started; same seeds, so the remaining sensor's
detections are the same) to show what the fusion of both gains. ``pytest -s`` prints the figures.

Stated bounds, for this run (the scenario's seed; measured values in the printed table, the bounds leave a
margin of about 1.5x over them), and in the last test for other seeds:

* accuracy: horizontal RMS error of the published fused samples, each against the truth at its time of
  validity, after a 5 s warm-up from the track's first sample: <= 15 m for surface targets, <= 30 m for the
  aircraft (radar only until the EO/IR sees it at about 40 s: the radar's 1 deg elevation noise at 1500 m
  height shows as about 30 m of horizontal error per detection). Over other seeds: 20 m for the surface
  targets within 5 km, 30 m for loiter-1 at 8 km and for the aircraft. What differs most between seeds is the
  navigation's heading error (0.1 deg 1-sigma, correlated over 30 s; 0.05 deg RMS in this run, 0.17 deg in
  seed 10, the worst of 20), shared by both sensors, so fusion cannot reduce it: 14 m across the line of sight
  at 8 km;
* better than either sensor alone, RMS over the same windows (both sensors see the target; 5 s after the
  later of that and each run's first sample of the target): fused < radar alone for every target; fused < EO/IR
  alone for every surface target, and over all targets together <= 0.9x; for the aircraft fused <= 1.05x EO/IR
  alone. Why not strictly better there: per detection the radar's horizontal error on the aircraft is ~30 m
  along the line of sight (its elevation noise projected) and ~45 m across it, the EO/IR's ~30 m and ~7 m, and
  the EO/IR looks five times as often: the radar adds about a sixth of the along-range information and nothing
  across, a gain of a few percent at best, less than what 30 samples in 14 s can resolve. How robust the
  per-target claim is: over 20 seeds (100 target-runs) fused < EO/IR alone in 93, the other 7 within 1.05x
  (loiter-1, air-1, and cargo-1 once); over all targets together 0.79-0.95x in every seed (asserted, <= 0.95x,
  for three other seeds in the last test). The EO/IR is the better sensor here (5 Hz, 0.05 deg); what fusion
  adds is the radar's range at 1 Hz;
* continuity: one fused track id per target for all of its visible life (no break, no swap at the cargo/ferry
  crossing or the over-flight): a share >= 95 % of its samples on its target, covered (a measured sample at most
  1.5 s old: not coasting) for >= 90 % of the time from its confirmation to the end; confirmed within 3 s of
  becoming visible (M = 3 hits of the 1 Hz radar); no false confirmed track lasting more than 3 s;
* geofence: alerts for exactly the (zone, target) pairs of ``Scenario.zone_events()`` (cargo-1 and ferry-1 in
  the anchorage, fast-1 in the platform zone; not air-1, over the anchorage above its ceiling, nor loiter-1),
  one episode each, exactly one RAISED and (for those that leave) one CLEARED; the alert's time (the fused
  sample's time of validity) within 15 m / speed of the truth (entry; for the clear: the time the truth is
  30 m out, the hysteresis margin), plus up to 0.5 s late (the geofence sees the picture at 2 Hz), and the
  alert published at most 0.75 s after that time (the age of a fused state when published).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from _patrol import (
    MARGIN_M,
    MEASURED,
    Evaluation,
    PatrolRun,
    alert_episodes,
    coverage,
    evaluate,
    intersect,
    patrol,
    run_patrol,
    shift,
    speed_at,
    truth_clear_time,
    visibility,
)

from hardpoint.alert.v1 import alert_pb2
from hardpoint.track.v1 import track_pb2

WARM_UP_S = 5.0
SURFACE_BOUND_M = 15.0
AIR_BOUND_M = 30.0
CONFIRM_WITHIN_S = 3.0
COVERAGE_MIN = 0.90
SHARE_MIN = 0.95
FALSE_TRACK_MAX_S = 3.0
AGGREGATE_RATIO_MAX = 0.9  #: fused / EO/IR alone, all targets together
AIR_RATIO_MAX = 1.05  #: fused / EO/IR alone for the aircraft
POSITION_TOL_M = 15.0  #: for alert times: the surface accuracy bound, as a time at the target's speed
PICTURE_PERIOD_S = 0.5  #: the geofence sees the fused picture at 2 Hz: a crossing shows up to one period late
#: Age of a fused sample's state when published: an EO/IR revisit (0.2 s), its latency (0.15 s), the fusion's
#: hold (at most 0.2 s) and work tick (0.05 s); every alerting target is in the EO/IR's view, with margin.
PUBLICATION_LAG_MAX_S = 0.75


@dataclass
class Runs:
    fused: Evaluation
    radar: Evaluation
    eoir: Evaluation

    @property
    def run(self) -> PatrolRun:
        return self.fused.run

    @property
    def targets(self) -> list[str]:
        return [t.id for t in self.run.sc.targets]

    def classification(self, target: str) -> str:
        return next(t.classification for t in self.run.sc.targets if t.id == target)

    def bound(self, target: str) -> float:
        return AIR_BOUND_M if self.classification(target) == "AIRCRAFT" else SURFACE_BOUND_M

    def visible_from(self, target: str) -> float:
        sc = self.run.sc
        return min(w[0] for s in self.run.sensors for w in visibility(sc, s, target))

    def accuracy_window(self, target: str) -> list[tuple[float, float]]:
        first = self.fused.tracks_of(target)[0].first_s
        return [(first + WARM_UP_S, math.inf)]

    def comparison_windows(self, target: str) -> list[tuple[float, float]]:
        """Where both sensors see the target, from 5 s after the later of that and each run's first sample."""
        sc = self.run.sc
        both = intersect(visibility(sc, "radar", target), visibility(sc, "eoir", target))
        firsts = [ev.tracks_of(target)[0].first_s for ev in (self.fused, self.radar, self.eoir)]
        return shift(intersect(both, [(max(firsts), math.inf)]), WARM_UP_S)


def aggregate(ev: Evaluation, runs: Runs) -> float:
    total, n = 0.0, 0
    for target in runs.targets:
        rms, k = ev.rms(target, runs.comparison_windows(target))
        total += rms * rms * k
        n += k
    return math.sqrt(total / n)


def report(runs: Runs) -> None:
    end = runs.run.sc.duration_s
    print("\npatrol scenario, 60 s on the in-memory bus; times in scenario seconds")
    print("1. fused tracks against the truth (RMS: horizontal, after a 5 s warm-up; cover: not coasting)")
    print(
        f"  {'target':9s} {'class':14s} {'track':6s} {'visible':>7s} {'confirmed':>9s} {'cover':>7s} {'share':>7s} "
        f"{'RMS':>6s} {'max':>6s} {'n':>4s} {'bound':>6s}"
    )
    for target in runs.targets:
        lives = runs.fused.tracks_of(target)
        ids = ",".join(life.track_id for life in lives)
        confirmed = lives[0].published_s if lives else math.nan
        cover = coverage(runs.fused, target, confirmed, end, gap_s=1.5)
        share = min((life.share for life in lives), default=0.0)
        ((a, _),) = runs.accuracy_window(target)
        rms, n = runs.fused.rms(target, [(a, math.inf)])
        worst = max((h for t, h in runs.fused.errors.get(target, []) if t >= a), default=math.nan)
        print(
            f"  {target:9s} {runs.classification(target):14s} {ids:6s} {runs.visible_from(target):6.1f}s "
            f"{confirmed:8.1f}s {cover:7.1%} {share:7.1%} {rms:5.1f}m {worst:5.1f}m {n:4d} {runs.bound(target):5.0f}m"
        )
    for name, ev in (("fused", runs.fused), ("radar only", runs.radar), ("EO/IR only", runs.eoir)):
        false = [x for x in ev.lives.values() if not x.target]
        print(f"  {name}: {len(ev.lives)} confirmed tracks, {len(false)} false")
    print("2. fused against one sensor alone: horizontal RMS over the same window")
    print(f"  {'target':9s} {'fused':>6s} {'radar':>6s} {'EO/IR':>6s} {'f/r':>5s} {'f/e':>5s} {'n':>4s}  window")
    for target in runs.targets:
        win = runs.comparison_windows(target)
        (f, nf), (r, _), (e, _) = (ev.rms(target, win) for ev in (runs.fused, runs.radar, runs.eoir))
        span = " ".join(f"[{a:.1f},{min(b, end):.1f})" for a, b in win)
        print(f"  {target:9s} {f:5.1f}m {r:5.1f}m {e:5.1f}m {f / r:5.2f} {f / e:5.2f} {nf:4d}  {span}")
    f, r, e = (aggregate(ev, runs) for ev in (runs.fused, runs.radar, runs.eoir))
    print(f"  {'all':9s} {f:5.1f}m {r:5.1f}m {e:5.1f}m {f / r:5.2f} {f / e:5.2f}")
    print("3. geofence alerts (data: the alert's time, the fused sample's time of validity; bus: published)")
    print(
        f"  {'zone':10s} {'target':8s} {'track':5s} {'truth in':>8s} {'data':>6s} {'bus':>6s}   "
        f"{'30 m out':>8s} {'data':>6s} {'bus':>6s}"
    )
    for ep in alert_rows(runs):
        print(
            f"  {ep.zone:10s} {ep.target:8s} {ep.track:5s} {ep.truth_in:8.2f} {ep.raised_data:6.2f} "
            f"{ep.raised_bus:6.2f}   {ep.truth_clear:8.2f} {ep.cleared_data:6.2f} {ep.cleared_bus:6.2f}"
        )


@dataclass
class AlertRow:
    zone: str
    target: str
    track: str
    states: list[int]
    truth_in: float
    truth_clear: float  #: nan: still inside at the end
    raised_data: float
    raised_bus: float
    cleared_data: float
    cleared_bus: float
    speed_in: float
    speed_clear: float


def alert_rows(runs: Runs) -> list[AlertRow]:
    run, sc = runs.run, runs.run.sc
    events = sc.zone_events()
    rows = []
    for alert_id, samples in alert_episodes(run.alerts).items():
        first = samples[0].msg
        target = runs.fused.lives[first.track_id].target
        truth_in = next(
            (e.t_s for e in events if (e.target_id, e.zone_id, e.entered) == (target, first.zone_id, True)), math.nan
        )
        left = next(
            (e.t_s for e in events if (e.target_id, e.zone_id, e.entered) == (target, first.zone_id, False)), None
        )
        truth_clear = math.nan if left is None else truth_clear_time(sc, first.zone_id, target, left, MARGIN_M)
        cleared = [s for s in samples if s.msg.state == alert_pb2.ALERT_STATE_CLEARED]
        rows.append(
            AlertRow(
                first.zone_id,
                target,
                first.track_id,
                [int(s.msg.state) for s in samples],
                truth_in,
                truth_clear,
                run.t_s(first.raised_time_ns),
                samples[0].bus_s,
                run.t_s(cleared[0].msg.cleared_time_ns) if cleared else math.nan,
                cleared[0].bus_s if cleared else math.nan,
                speed_at(sc, target, truth_in) if not math.isnan(truth_in) else math.nan,
                speed_at(sc, target, truth_clear) if not math.isnan(truth_clear) else math.nan,
            )
        )
        assert alert_id.startswith(f"geofence/{first.zone_id}/{first.track_id}/")
    return sorted(rows, key=lambda r: r.truth_in)


@pytest.fixture(scope="module")
def runs() -> Runs:
    r = Runs(
        evaluate(run_patrol(("radar", "eoir"))),
        evaluate(run_patrol(("radar",))),
        evaluate(run_patrol(("eoir",))),
    )
    report(r)
    return r


def test_every_target_has_a_fused_track_within_the_stated_error(runs: Runs) -> None:
    assert {life.target for life in runs.fused.lives.values()} >= set(runs.targets)
    for target in runs.targets:
        rms, n = runs.fused.rms(target, runs.accuracy_window(target))
        assert n >= 60, target  # 2 Hz over >= 30 s (air-1 is published at 2 Hz from 2 s on)
        assert rms <= runs.bound(target), (target, rms)
    # every measured sample after the warm-up, not only the RMS: within 4x the bound
    for life in runs.fused.lives.values():
        start = life.first_s + WARM_UP_S
        worst = max(
            (h for t, h in runs.fused.errors[life.target] if t >= start),
            default=0.0,
        )
        assert worst <= 4 * runs.bound(life.target), (life.track_id, life.target, worst)


def test_fused_is_better_than_either_sensor_alone(runs: Runs) -> None:
    for target in runs.targets:
        win = runs.comparison_windows(target)
        assert win, target
        (fused, n), (radar, nr), (eoir, ne) = (ev.rms(target, win) for ev in (runs.fused, runs.radar, runs.eoir))
        assert min(n, nr, ne) >= 10, (target, n, nr, ne)  # radar alone: 1 Hz
        assert fused < radar, (target, fused, radar)
        if runs.classification(target) == "AIRCRAFT":
            assert fused <= AIR_RATIO_MAX * eoir, (target, fused, eoir)
        else:
            assert fused < eoir, (target, fused, eoir)
    fused, radar, eoir = (aggregate(ev, runs) for ev in (runs.fused, runs.radar, runs.eoir))
    assert fused <= AGGREGATE_RATIO_MAX * eoir, (fused, eoir)
    assert fused <= AGGREGATE_RATIO_MAX * radar, (fused, radar)


def test_track_continuity(runs: Runs) -> None:
    end = runs.run.sc.duration_s
    for target in runs.targets:
        lives = runs.fused.tracks_of(target)
        assert len(lives) == 1, (target, [x.track_id for x in lives])  # no break: one id for all its life
        (life,) = lives
        assert life.share >= SHARE_MIN, (target, life.share)  # no swap
        assert not life.dropped
        assert life.published_s - runs.visible_from(target) <= CONFIRM_WITHIN_S, (target, life.published_s)
        assert coverage(runs.fused, target, life.published_s, end, gap_s=1.5) >= COVERAGE_MIN, target
        assert life.last_s >= end - 1.0  # followed to the end
    false = [life for life in runs.fused.lives.values() if not life.target]
    assert all(life.duration_s <= FALSE_TRACK_MAX_S for life in false), [(x.track_id, x.duration_s) for x in false]
    # every published lifecycle sequence is NEW, then UPDATED/COASTING, then (if at all) one DROPPED
    for life in runs.fused.lives.values():
        lcs = [s.lifecycle for s in life.samples]
        assert lcs[0] == track_pb2.TRACK_LIFECYCLE_NEW
        assert track_pb2.TRACK_LIFECYCLE_NEW not in lcs[1:]
        assert track_pb2.TRACK_LIFECYCLE_DROPPED not in lcs[:-1]
        assert sum(1 for lc in lcs if lc in MEASURED) >= 0.5 * len(lcs)


def test_geofence_alerts_exactly_for_the_targets_that_enter_and_clears_when_they_leave(runs: Runs) -> None:
    sc = runs.run.sc
    events = sc.zone_events()
    entries = {(e.zone_id, e.target_id) for e in events if e.entered}
    assert entries == {("anchorage", "cargo-1"), ("anchorage", "ferry-1"), ("platform", "fast-1")}
    rows = alert_rows(runs)
    assert sorted((r.zone, r.target) for r in rows) == sorted(entries)  # one episode per entry, no other alert
    raised, cleared = alert_pb2.ALERT_STATE_RAISED, alert_pb2.ALERT_STATE_CLEARED
    for r in rows:
        if math.isnan(r.truth_clear):  # ferry-1: still inside at the end
            assert r.states == [raised], r
        else:
            assert r.states == [raised, cleared], r
            tol = POSITION_TOL_M / r.speed_clear
            assert -tol <= r.cleared_data - r.truth_clear <= tol + PICTURE_PERIOD_S, r
            assert 0.0 <= r.cleared_bus - r.cleared_data <= PUBLICATION_LAG_MAX_S, r
        tol = POSITION_TOL_M / r.speed_in
        assert -tol <= r.raised_data - r.truth_in <= tol + PICTURE_PERIOD_S, r
        assert 0.0 <= r.raised_bus - r.raised_data <= PUBLICATION_LAG_MAX_S, r
    alerted = {r.target for r in rows}
    assert "air-1" not in alerted  # over the anchorage, above its ceiling
    assert "loiter-1" not in alerted


def test_the_chain_is_deterministic(runs: Runs) -> None:
    again = run_patrol(("radar", "eoir"))
    first = runs.run
    assert [(s.msg.SerializeToString(), s.bus_s) for s in again.fused] == [
        (s.msg.SerializeToString(), s.bus_s) for s in first.fused
    ]
    assert [a.msg.SerializeToString() for a in again.alerts] == [a.msg.SerializeToString() for a in first.alerts]


#: Other seeds: every sensor's and the GNSS's draws change. Bounds that held over 20 seeds (1-19 and the
#: scenario's own; worst RMS 15.5, 15.5, 15.5, 25.9 and 27.1 m, in this order); see the module docstring.
SEEDS = (1, 2, 3)
SEED_BOUNDS_M = {"cargo-1": 20.0, "ferry-1": 20.0, "fast-1": 20.0, "loiter-1": 30.0, "air-1": 30.0}
SEED_AGGREGATE_RATIO_MAX = 0.95  #: fused / EO/IR alone, all targets together: 0.79-0.95 over the 20 seeds


@pytest.mark.parametrize("seed", SEEDS)
def test_other_seeds_keep_the_picture_within_seed_robust_bounds(seed: int) -> None:
    sc = patrol(seed)
    r = Runs(*(evaluate(run_patrol(s, scenario=sc)) for s in (("radar", "eoir"), ("radar",), ("eoir",))))
    line = [f"seed {seed}:"]
    for target in r.targets:
        lives = r.fused.tracks_of(target)
        assert len(lives) == 1, (target, [x.track_id for x in lives])
        assert lives[0].share >= SHARE_MIN, target
        rms, _ = r.fused.rms(target, r.accuracy_window(target))
        win = r.comparison_windows(target)
        fused, radar = r.fused.rms(target, win)[0], r.radar.rms(target, win)[0]
        line.append(f"{target} {rms:.1f} m (f/r {fused / radar:.2f})")
        assert rms <= SEED_BOUNDS_M[target], (target, rms)
        assert fused < radar, (target, fused, radar)
    false = [life for life in r.fused.lives.values() if not life.target]
    assert all(life.duration_s <= FALSE_TRACK_MAX_S for life in false), [(x.track_id, x.duration_s) for x in false]
    fused, eoir = aggregate(r.fused, r), aggregate(r.eoir, r)
    line.append(f"all f/e {fused / eoir:.2f}")
    print(" ".join(line))
    assert fused <= SEED_AGGREGATE_RATIO_MAX * eoir, (fused, eoir)
    rows = alert_rows(r)
    assert sorted((x.zone, x.target) for x in rows) == [
        ("anchorage", "cargo-1"),
        ("anchorage", "ferry-1"),
        ("platform", "fast-1"),
    ]
    raised, cleared = alert_pb2.ALERT_STATE_RAISED, alert_pb2.ALERT_STATE_CLEARED
    for x in rows:
        assert x.states == ([raised] if x.target == "ferry-1" else [raised, cleared]), x
