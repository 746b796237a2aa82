"""Test rig shared by test_sim, test_nav, test_radar and test_eoir.

A rig is one in-memory bus with the ``nav`` module on a simulated GNSS
receiver and, optionally, a sensor module on a simulated sensor, all on the
transport's manual clock with scenario time zero at the transport's start.
It also holds the statistics the accuracy tests use: errors against the
truth, normalised by the published covariance (NEES), with bounds derived
from the sample count.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardpoint import Bus, ModuleHost, SampleInfo
from hardpoint.nav.v1 import nav_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_nav import Nav
from hardpoint_sim import (
    Scenario,
    SimDetectionSensor,
    SimGnss,
    TargetTruth,
    scenario_from_dict,
    sim_detections,
    sim_gnss,
)
from hardpoint_sim.geodesy import ned_between

SCENARIO_FILE = Path(__file__).with_name("sim_test_scenario.toml")


def scenario_data() -> dict[str, Any]:
    """The unit-test scenario as a mutable dict."""
    return tomllib.loads(SCENARIO_FILE.read_text())


def make_scenario(data: Mapping[str, Any] | None = None, **top: Any) -> Scenario:
    """The unit-test scenario (or ``data``) with top-level keys replaced."""
    d = copy.deepcopy(dict(data) if data is not None else scenario_data())
    d.update(top)
    return scenario_from_dict(d, origin="test scenario")


def stationary(heading_deg: float = 0.0, **top: Any) -> dict[str, Any]:
    """Scenario data with the own platform still at the start, heading ``heading_deg``, no targets."""
    d = scenario_data()
    d["own"] = {"heading_deg": heading_deg}
    d["targets"] = []
    d.update(top)
    return d


class Rig:
    """Nav (and a sensor module) on one in-memory bus with simulated adapters."""

    def __init__(
        self,
        sc: Scenario,
        *,
        sensor: str | None = None,
        module: Any = None,
        adapter: str = "",
        module_config: Mapping[str, Any] | None = None,
        gnss: Mapping[str, Any] | None = None,
        nav_config: Mapping[str, Any] | None = None,
        with_nav: bool = True,
    ) -> None:
        self.sc = sc
        self.t = InMemoryTransport()
        start = self.t.now_ns()
        self.start_ns = start
        self.gnss: SimGnss = sim_gnss(scenario=sc, clock=self.t.now_ns, start_ns=start, **dict(gnss or {}))
        self.nav = ModuleHost(Nav(), self.t, config=dict(nav_config or {}), adapters={"gnss": self.gnss})
        self.with_nav = with_nav
        listener = Bus(self.t, module="listener")
        self.nav_sub = listener.subscribe(nav_pb2.NavState, with_info=True)
        self.track_sub = listener.subscribe(track_pb2.SensorTrack, with_info=True)
        self.sensor: SimDetectionSensor | None = None
        self.host: ModuleHost | None = None
        if sensor is not None:
            self.sensor = sim_detections(scenario=sc, sensor=sensor, clock=self.t.now_ns, start_ns=start)
            self.host = ModuleHost(module, self.t, config=dict(module_config or {}), adapters={adapter: self.sensor})
        self.navs: list[tuple[nav_pb2.NavState, SampleInfo]] = []
        self.tracks: list[tuple[track_pb2.SensorTrack, SampleInfo, int]] = []  # + bus time at receipt

    def start(self) -> Rig:
        if self.with_nav:
            self.nav.configure()
            self.nav.activate()
        if self.host is not None:
            self.host.configure()
            self.host.activate()
        return self

    def run(self, seconds: float, step_s: float = 0.05) -> Rig:
        """Advance the clock, collecting what was published (with the bus time it arrived)."""
        n = round(seconds / step_s)
        for _ in range(n):
            self.t.advance(step_s)
            self.navs.extend(self.nav_sub.take())
            now = self.t.now_ns()
            self.tracks.extend((m, i, now) for m, i in self.track_sub.take())
        return self

    def t_s(self, time_ns: int) -> float:
        """Scenario time of a bus time."""
        return (time_ns - self.start_ns) / 1e9

    def measurements(self) -> list[track_pb2.SensorTrack]:
        """Published NEW and UPDATED samples (one per detection)."""
        keep = (track_pb2.TRACK_LIFECYCLE_NEW, track_pb2.TRACK_LIFECYCLE_UPDATED)
        return [m for m, _, _ in self.tracks if m.lifecycle in keep]

    def truth_of(self, msg: track_pb2.SensorTrack) -> tuple[str, TargetTruth] | None:
        """The target a published sample came from (by the simulator's truth log), and its truth then."""
        assert self.sensor is not None
        if not hasattr(self, "_truth_index"):
            self._truth_index: dict[tuple[int, str], str | None] = {}
        if not self._truth_index or (msg.measurement_time_ns, msg.track_id) not in self._truth_index:
            for det, target in self.sensor.truth_log:
                if det.sensor_track_id:
                    self._truth_index[(det.time_ns, det.sensor_track_id)] = target
        target = self._truth_index.get((msg.measurement_time_ns, msg.track_id))
        if target is None:
            return None
        truth = self.sc.target_at(target, self.t_s(msg.measurement_time_ns))
        assert truth is not None
        return target, truth


# -- statistics ---------------------------------------------------------------------


def cov3(upper: Any) -> list[list[float]]:
    a, b, c, d, e, f = upper
    return [[a, b, c], [b, d, e], [c, e, f]]


def inv2(m: list[list[float]]) -> list[list[float]]:
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    return [[m[1][1] / det, -m[0][1] / det], [-m[1][0] / det, m[0][0] / det]]


def inv3(m: list[list[float]]) -> list[list[float]]:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return [
        [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
        [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
        [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
    ]


def quad(v: list[float], m: list[list[float]]) -> float:
    return sum(v[i] * m[i][j] * v[j] for i in range(len(v)) for j in range(len(v)))


@dataclass
class Error:
    """One published geo position against the truth."""

    target: str
    north: float
    east: float
    down: float
    nees2: float  #: horizontal NEES, chi-square with 2 degrees of freedom if the covariance is right
    nees3: float
    range_m: float  #: from the platform, as published

    @property
    def horizontal(self) -> float:
        return math.hypot(self.north, self.east)


def geo_error(msg: track_pb2.SensorTrack, target: str, truth: TargetTruth) -> Error:
    """Error of the published geo position, NED at the truth, with the published covariance's NEES."""
    p = msg.position
    e = ned_between((truth.lat, truth.lon, truth.height_m), (p.latitude_deg, p.longitude_deg, p.height_hae_m))
    c = cov3(msg.covariance.upper_triangle)
    v = [e.x, e.y, e.z]
    rel = msg.relative_position
    return Error(
        target,
        e.x,
        e.y,
        e.z,
        quad(v[:2], inv2([row[:2] for row in c[:2]])),
        quad(v, inv3(c)),
        math.sqrt(rel.north_m**2 + rel.east_m**2 + rel.down_m**2),
    )


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def chi2_mean_bounds(dof: int, n: int, k: float = 4.0) -> tuple[float, float]:
    """``k``-sigma bounds of the mean of ``n`` independent chi-square(dof) values."""
    half = k * math.sqrt(2.0 * dof / n)
    return dof - half, dof + half


def binomial_bounds(p: float, n: int, k: float = 4.0) -> tuple[float, float]:
    """``k``-sigma bounds of a proportion estimated from ``n`` trials."""
    half = k * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


@dataclass
class Accuracy:
    """Errors of every published measurement of real targets, with what the configuration predicts."""

    errors: list[Error]
    predicted_h: list[float]  #: horizontal 1-sigma (radial RMS) predicted from the configured noise, per sample
    published_h: list[float]  #: the same from the published covariance

    @property
    def n(self) -> int:
        return len(self.errors)

    def rms_h(self, target: str | None = None) -> float:
        es = [e for e in self.errors if target is None or e.target == target]
        return math.sqrt(mean([e.horizontal**2 for e in es]))

    def line(self, name: str) -> str:
        predicted = math.sqrt(mean([p * p for p in self.predicted_h]))
        nees2, nees3 = mean([e.nees2 for e in self.errors]), mean([e.nees3 for e in self.errors])
        return (
            f"{name}: {self.n} samples, horizontal RMS {self.rms_h():.1f} m (predicted {predicted:.1f} m), "
            f"mean NEES {nees2:.2f} (2D) {nees3:.2f} (3D)"
        )


def accuracy(rig: Rig, *, sensor: str, range_std_m: float | None = None) -> Accuracy:
    """Measure the geo errors of ``rig``'s published measurements and predict them from the scenario's noise.

    Prediction of the horizontal error: range noise along the line of sight (times cos elevation),
    ``range * sqrt(bearing_std^2 + heading_std^2)`` across it, elevation noise along it (times range *
    sin elevation), and the navigation's per-axis position noise on both axes.
    """
    spec = rig.sc.sensors[sensor]
    gnss = rig.gnss.spec
    sig_r = spec.range_std_m if range_std_m is None else range_std_m
    assert sig_r is not None
    sig_az = math.hypot(math.radians(spec.bearing_std_deg), math.radians(gnss.heading_std_deg))
    sig_el = math.radians(spec.elevation_std_deg)
    errors, predicted, published = [], [], []
    for msg in rig.measurements():
        truth = rig.truth_of(msg)
        if truth is None:
            continue
        e = geo_error(msg, *truth)
        errors.append(e)
        rel = msg.relative_position
        horiz = math.hypot(rel.north_m, rel.east_m)
        el = math.atan2(-rel.down_m, horiz)
        along = math.hypot(sig_r * math.cos(el), e.range_m * math.sin(el) * sig_el)
        across = e.range_m * math.cos(el) * sig_az
        predicted.append(math.sqrt(along**2 + across**2 + 2 * gnss.position_std_m**2))
        c = cov3(msg.covariance.upper_triangle)
        published.append(math.sqrt(c[0][0] + c[1][1]))
    return Accuracy(errors, predicted, published)


def sensor_chain(
    t: InMemoryTransport,
    sc: Scenario,
    *,
    sensors: tuple[str, ...] = ("radar", "eoir"),
    gnss: Mapping[str, Any] | None = None,
    start: bool = True,
) -> dict[str, ModuleHost]:
    """``nav`` and one sensor module per scenario sensor name (``radar`` -> hardpoint-mod-radar, anything whose
    scenario kind is ``eoir`` -> hardpoint-mod-eoir under that name's adapter) on ``t``, all on simulated adapters
    with scenario time zero at ``t``'s current time; configured and activated unless ``start`` is false.

    For the fusion and geofence tests: feed their module the SensorTracks of this chain.
    """
    from hardpoint_mod_eoir import Eoir
    from hardpoint_mod_radar import Radar

    start_ns = t.now_ns()
    hosts = {
        "nav": ModuleHost(
            Nav(),
            t,
            adapters={"gnss": sim_gnss(scenario=sc, clock=t.now_ns, start_ns=start_ns, **dict(gnss or {}))},
        )
    }
    for name in sensors:
        kind = sc.sensors[name].kind
        module: Any = Radar() if kind == "radar" else Eoir()
        adapter = sim_detections(scenario=sc, sensor=name, clock=t.now_ns, start_ns=start_ns)
        hosts[name] = ModuleHost(
            module, t, config={"sensor_id": name}, adapters={module.adapter: adapter}, health_period_s=None
        )
    if start:
        for host in hosts.values():
            host.configure()
            host.activate()
    return hosts
