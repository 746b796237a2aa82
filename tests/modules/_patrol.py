"""The patrol chain on one in-memory bus, and its evaluation against the scenario's ground truth.

Shared by test_patrol_scenario (accuracy, continuity, geofence) and test_replay_fusion (record, replay, compare).

A run is the whole ``builtin:patrol`` platform of ``examples/patrol/platform.toml`` on the in-memory
transport's manual clock: simulated GNSS, radar and EO/IR adapters, ``nav``, ``radar``, ``eoir`` (any of the
two sensors may be left out), ``fusion`` (``track_id_prefix = "F"`` for reproducible ids), ``geofence`` with
the scenario's zones and the example's 30 m margin, optionally ``recorder``. Scenario time zero is the
transport's start; every sensor draws from the scenario's seed (its own streams per sensor), so runs with and
without a sensor see the same detections of the other one.

Evaluation: each published fused sample is matched to the nearest true target in 3D (the aircraft flies over
ferry-1 at 1500 m; the height keeps them apart) at the sample's time of validity (``last_update_time_ns``,
which is also the envelope stamp); a track is "of" the target its samples match most often.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from _simrig import sensor_chain

from hardpoint import Bus, ModuleHost, State
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_fusion import FusionModule
from hardpoint_mod_geofence import GeofenceModule
from hardpoint_mod_recorder import RecorderModule
from hardpoint_sim import Scenario, load_scenario, scenario_from_dict
from hardpoint_sim.geodesy import ned_between

NS = 1_000_000_000
MARGIN_M = 30.0  #: the geofence margin of examples/patrol/platform.toml
FUSION_CONFIG: dict[str, Any] = {"track_id_prefix": "F"}  #: otherwise the defaults, as in the example
MEASURED = (track_pb2.TRACK_LIFECYCLE_NEW, track_pb2.TRACK_LIFECYCLE_UPDATED)


def patrol(seed: int | None = None) -> Scenario:
    """``builtin:patrol``, or the same with another seed (every sensor's and the GNSS's draws change)."""
    if seed is None:
        return load_scenario("builtin:patrol")
    data = tomllib.loads((resources.files("hardpoint_sim") / "scenarios" / "patrol.toml").read_text())
    return scenario_from_dict({**data, "seed": seed}, origin=f"builtin:patrol, seed {seed}")


def geofence_config(sc: Scenario) -> dict[str, Any]:
    """The scenario's zones, handed to the geofence as they are, with the example's margin."""
    return {"zones": [z.model_dump(exclude_none=True) for z in sc.zones], "margin_m": MARGIN_M}


@dataclass
class Sample:
    """One published FusedTrack sample."""

    msg: track_pb2.FusedTrack
    t_s: float  #: time of validity (the state's last update), scenario time
    bus_s: float  #: when it was published, scenario time

    @property
    def track_id(self) -> str:
        return self.msg.track_id

    @property
    def lifecycle(self) -> int:
        return int(self.msg.lifecycle)


@dataclass
class AlertSample:
    msg: alert_pb2.Alert
    bus_s: float

    @property
    def raised(self) -> bool:
        return self.msg.state == alert_pb2.ALERT_STATE_RAISED


@dataclass
class PatrolRun:
    """What one run of the chain published."""

    sc: Scenario
    sensors: tuple[str, ...]
    transport: InMemoryTransport
    start_ns: int
    hosts: dict[str, ModuleHost]
    fused: list[Sample] = field(default_factory=list)
    alerts: list[AlertSample] = field(default_factory=list)
    recording: Path | None = None

    def t_s(self, time_ns: int) -> float:
        return (time_ns - self.start_ns) / NS


def attach_listeners(run: PatrolRun) -> None:
    """Collect every FusedTrack and Alert published on ``run``'s bus."""
    t = run.transport
    listener = Bus(t, module="listener")

    def on_fused(msg: track_pb2.FusedTrack, info: Any) -> None:
        assert info.stamp_ns == msg.last_update_time_ns or msg.lifecycle == track_pb2.TRACK_LIFECYCLE_DROPPED
        run.fused.append(Sample(msg, run.t_s(msg.last_update_time_ns), run.t_s(t.now_ns())))

    listener.subscribe(track_pb2.FusedTrack, on_fused, with_info=True)
    listener.subscribe(alert_pb2.Alert, lambda m: run.alerts.append(AlertSample(m, run.t_s(t.now_ns()))))


def start_fusion_and_geofence(t: InMemoryTransport, sc: Scenario) -> dict[str, ModuleHost]:
    hosts = {
        "fusion": ModuleHost(FusionModule(), t, config=dict(FUSION_CONFIG), health_period_s=None),
        "geofence": ModuleHost(GeofenceModule(), t, config=geofence_config(sc), health_period_s=None),
    }
    for host in hosts.values():
        assert host.configure() is State.INACTIVE, host.last_error
        assert host.activate() is State.ACTIVE, host.last_error
    return hosts


def run_patrol(
    sensors: tuple[str, ...] = ("radar", "eoir"),
    *,
    record: Path | None = None,
    seconds: float | None = None,
    step_s: float = 0.1,
    scenario: Scenario | None = None,
) -> PatrolRun:
    """Run the chain (with ``sensors`` only) for the scenario's duration (or ``seconds``) and collect its output.

    With ``record``, a recorder (all interfaces) writes that MCAP file, finished at the end of the run.
    ``scenario``: another scenario than ``builtin:patrol`` (for instance with another seed).
    """
    sc = patrol() if scenario is None else scenario
    t = InMemoryTransport()
    run = PatrolRun(sc, sensors, t, t.now_ns(), {})
    attach_listeners(run)
    if record is not None:
        rec = ModuleHost(RecorderModule(), t, config={"path": str(record), "overwrite": True}, health_period_s=None)
        assert rec.configure() is State.INACTIVE, rec.last_error
        assert rec.activate() is State.ACTIVE, rec.last_error
        run.hosts["recorder"] = rec
    run.hosts.update(start_fusion_and_geofence(t, sc))
    run.hosts.update(sensor_chain(t, sc, sensors=sensors))
    n = round((sc.duration_s if seconds is None else seconds) / step_s)
    for _ in range(n):
        t.advance(step_s)
    if record is not None:
        assert run.hosts["recorder"].deactivate() is State.INACTIVE
        assert record.exists()
        run.recording = record
    return run


# -- ground truth ----------------------------------------------------------------------------------------


def ned_error(sc: Scenario, target: str, t_s: float, msg: track_pb2.FusedTrack) -> tuple[float, float, float] | None:
    """North, east, down error of ``msg``'s position against ``target``'s truth at ``t_s`` (None: not there)."""
    truth = sc.target_at(target, t_s)
    if truth is None:
        return None
    p = msg.position
    e = ned_between((truth.lat, truth.lon, truth.height_m), (p.latitude_deg, p.longitude_deg, p.height_hae_m))
    return e.x, e.y, e.z


def nearest_target(sc: Scenario, s: Sample) -> tuple[str, float]:
    """The true target nearest (3D) to a sample's position at its time of validity, and the 3D distance."""
    best = ("", math.inf)
    for target in sc.targets_at(s.t_s):
        err = ned_error(sc, target, s.t_s, s.msg)
        assert err is not None
        d = math.sqrt(err[0] ** 2 + err[1] ** 2 + err[2] ** 2)
        if d < best[1]:
            best = (target, d)
    return best


@dataclass
class TrackLife:
    """One fused track id: what it was of, and when."""

    track_id: str
    target: str  #: the target its samples match most often ("" if none)
    share: float  #: the fraction of its samples that match it
    first_s: float  #: time of validity of its first sample (NEW)
    last_s: float  #: time of validity of its last measured sample
    published_s: float  #: bus time of its first publication
    dropped: bool
    samples: list[Sample]
    max_distance_m: float  #: largest distance to its target's truth over its measured samples

    @property
    def duration_s(self) -> float:
        return self.last_s - self.first_s


@dataclass
class Evaluation:
    """A run judged against the truth."""

    run: PatrolRun
    lives: dict[str, TrackLife]
    #: target -> [(time of validity, horizontal error)] of the measured samples of its tracks, one per state
    errors: dict[str, list[tuple[float, float]]]

    def tracks_of(self, target: str) -> list[TrackLife]:
        return sorted((life for life in self.lives.values() if life.target == target), key=lambda x: x.first_s)

    def rms(self, target: str, windows: Iterable[tuple[float, float]] | None = None) -> tuple[float, int]:
        """Horizontal RMS error of ``target``'s measured samples whose time of validity is in ``windows``."""
        ws = list(windows) if windows is not None else [(-math.inf, math.inf)]
        es = [h for t, h in self.errors.get(target, []) if any(a <= t < b for a, b in ws)]
        if not es:
            return math.nan, 0
        return math.sqrt(sum(h * h for h in es) / len(es)), len(es)


#: A sample further than this from every truth is of no target (a false track). Samples are matched to the
#: nearest truth, so targets closer to each other than this (cargo-1 and ferry-1 pass at 148 m; air-1 passes
#: 1500 m over ferry-1) are still told apart.
MATCH_M = 300.0


def evaluate(run: PatrolRun) -> Evaluation:
    sc = run.sc
    by_id: dict[str, list[Sample]] = defaultdict(list)
    for s in run.fused:
        by_id[s.track_id].append(s)
    lives: dict[str, TrackLife] = {}
    errors: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tid, samples in by_id.items():
        measured = [s for s in samples if s.lifecycle in MEASURED]
        votes: Counter[str] = Counter()
        for s in measured:
            target, d = nearest_target(sc, s)
            votes[target if d <= MATCH_M else ""] += 1
        target, n = votes.most_common(1)[0] if votes else ("", 0)
        dists = []
        seen: set[int] = set()
        for s in measured:
            if s.msg.update_count in seen:  # a reclassification republishes the same state
                continue
            seen.add(s.msg.update_count)
            if target:
                err = ned_error(sc, target, s.t_s, s.msg)
                if err is None:
                    continue
                dists.append(math.sqrt(err[0] ** 2 + err[1] ** 2 + err[2] ** 2))
                errors[target].append((s.t_s, math.hypot(err[0], err[1])))
        lives[tid] = TrackLife(
            tid,
            target,
            n / len(measured) if measured else 0.0,
            samples[0].t_s,
            measured[-1].t_s if measured else samples[0].t_s,
            samples[0].bus_s,
            samples[-1].lifecycle == track_pb2.TRACK_LIFECYCLE_DROPPED,
            samples,
            max(dists, default=math.nan),
        )
    for es in errors.values():
        es.sort()
    return Evaluation(run, lives, dict(errors))


def coverage(ev: Evaluation, target: str, since_s: float, until_s: float, *, gap_s: float = 1.0) -> float:
    """Fraction of ``[since_s, until_s)`` in which the target's *main* track (the one that covers most of it)
    had a measured sample at most ``gap_s`` before: the time one fused id followed the target."""
    best = 0.0
    for life in ev.tracks_of(target):
        times = sorted({s.t_s for s in life.samples if s.lifecycle in MEASURED})
        covered = 0.0
        for a, b in zip(times, [*times[1:], math.inf], strict=True):
            lo, hi = max(a, since_s), min(b, a + gap_s, until_s)
            covered += max(0.0, hi - lo)
        best = max(best, covered / (until_s - since_s))
    return best


_VISIBILITY: dict[tuple[int, str, str], tuple[Scenario, list[tuple[float, float]]]] = {}


def visibility(sc: Scenario, sensor: str, target: str, *, step_s: float = 0.1) -> list[tuple[float, float]]:
    """Windows of scenario time (over the scenario's duration) when ``sensor`` can see ``target`` (geometry only)."""
    key = (id(sc), sensor, target)
    if key not in _VISIBILITY:  # the scenario is kept with its windows, so its id is not reused meanwhile
        _VISIBILITY[key] = (sc, _windows(sc, sensor, target, step_s))
    return list(_VISIBILITY[key][1])


def _windows(sc: Scenario, sensor: str, target: str, step_s: float) -> list[tuple[float, float]]:
    windows: list[tuple[float, float]] = []
    start: float | None = None
    n = round(sc.duration_s / step_s)
    for k in range(n + 1):
        t = k * step_s
        seen = _visible(sc, sensor, target, t)
        if seen and start is None:
            start = t
        elif not seen and start is not None:
            windows.append((start, t))
            start = None
    if start is not None:
        windows.append((start, sc.duration_s))
    return windows


def _visible(sc: Scenario, sensor: str, target: str, t_s: float) -> bool:
    """The simulator's visibility rule: range, elevation and bearing off the boresight."""
    spec = sc.sensors[sensor]
    truth = sc.target_at(target, t_s)
    if truth is None:
        return False
    own = sc.platform_at(t_s)
    v = ned_between((own.lat, own.lon, sc.own.height_m), (truth.lat, truth.lon, truth.height_m))
    horiz = math.hypot(v.x, v.y)
    rng = math.sqrt(horiz**2 + v.z**2)
    el = math.degrees(math.atan2(-v.z, horiz))
    off = math.degrees(math.atan2(v.y, v.x) - own.yaw_rad) - spec.mount_yaw_deg
    off = (off + 180.0) % 360.0 - 180.0
    return (
        spec.min_range_m <= rng <= spec.max_range_m
        and spec.min_elevation_deg <= el <= spec.max_elevation_deg
        and abs(off) <= spec.fov_deg / 2
    )


def intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if lo < hi:
                out.append((lo, hi))
    return out


def shift(windows: list[tuple[float, float]], start_by: float) -> list[tuple[float, float]]:
    """Each window with its start moved later by ``start_by`` (a filter's warm-up), empty ones dropped."""
    return [(a + start_by, b) for a, b in windows if a + start_by < b]


def alert_episodes(alerts: list[AlertSample]) -> dict[str, list[AlertSample]]:
    """Alert samples grouped by alert id (one episode each), in order."""
    out: dict[str, list[AlertSample]] = defaultdict(list)
    for a in alerts:
        out[a.msg.alert_id].append(a)
    return dict(out)


# -- zones -------------------------------------------------------------------------------------------------


def _ring(lat: float, lon: float, radius_m: float, n: int = 72) -> list[tuple[float, float]]:
    """Points ``radius_m`` around (lat, lon) (spherical offsets: cm-accurate at these distances)."""
    r_earth = 6_371_008.8
    out = []
    for k in range(n):
        a = 2 * math.pi * k / n
        dlat = radius_m * math.cos(a) / r_earth
        dlon = radius_m * math.sin(a) / (r_earth * math.cos(math.radians(lat)))
        out.append((lat + math.degrees(dlat), lon + math.degrees(dlon)))
    return out


def clear_of(sc: Scenario, zone_id: str, target: str, t_s: float, margin_m: float) -> bool:
    """Whether ``target`` is at least ``margin_m`` outside the zone at ``t_s`` (horizontally: the ring of
    that radius around it is outside, sampled every 5 degrees; the surface targets this is used for have no
    height band to think of)."""
    zone = next(z for z in sc.zones if z.zone_id == zone_id)
    truth = sc.target_at(target, t_s)
    assert truth is not None
    if zone.contains(truth.lat, truth.lon, truth.height_m):
        return False
    return not any(zone.contains(la, lo, truth.height_m) for la, lo in _ring(truth.lat, truth.lon, margin_m))


def truth_clear_time(sc: Scenario, zone_id: str, target: str, left_s: float, margin_m: float) -> float:
    """First time from ``left_s`` on (a truth exit) at which the target is ``margin_m`` clear of the zone:
    when a geofence with that hysteresis margin should clear, had it the truth."""
    t = left_s
    while not clear_of(sc, zone_id, target, t, margin_m):
        t = round(t + 0.05, 9)
        assert t < left_s + 60.0
    return t


def speed_at(sc: Scenario, target: str, t_s: float) -> float:
    truth = sc.target_at(target, t_s)
    assert truth is not None
    return math.hypot(truth.vn, truth.ve)
