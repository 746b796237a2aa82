"""hardpoint-sim: scenario loading, ground truth, geodesy, and the simulated GNSS and sensors.

Statistical checks use a fixed seed and bounds of 4 standard deviations of
the estimator, derived from the configured noise and the sample count.
"""

from __future__ import annotations

import importlib.metadata as md
import math
import pathlib
import statistics
from typing import Any

import pytest
from _simrig import SCENARIO_FILE, binomial_bounds, make_scenario, scenario_data, stationary

from hardpoint.adapters import DetectionSensor, GnssReceiver
from hardpoint_sim import (
    START_ENV,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    scenario_from_dict,
    sim_detections,
    sim_gnss,
)
from hardpoint_sim.geodesy import LocalMap, ecef_to_geodetic, geodetic_to_ecef, ned_between, offset_by_ned

T0 = 1_700_000_000 * 10**9


class Clock:
    """A manual clock (ns), like the in-memory transport's."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


# -- geodesy ------------------------------------------------------------------------


@pytest.mark.parametrize("lat", [0.0, 45.0, 54.17, -33.9, 80.0])
def test_ned_round_trip_is_exact(lat: float) -> None:
    ref = (lat, 11.7, 25.0)
    for ned in [(20_000.0, 0.0, 0.0), (0.0, 20_000.0, 0.0), (-14_000.0, 14_000.0, -1500.0), (100_000.0, 50.0, 3.0)]:
        p = offset_by_ned(ref, ned)
        back = ned_between(ref, p)
        assert max(abs(a - b) for a, b in zip(back, ned, strict=True)) < 1e-3  # < 1 mm at up to 100 km
    x, y, z = geodetic_to_ecef(lat, -3.0, 123.0)
    lat2, lon2, h2 = ecef_to_geodetic(x, y, z)
    assert (abs(lat2 - lat), abs(lon2 + 3.0), abs(h2 - 123.0)) < (1e-11, 1e-11, 1e-6)


def test_surface_point_20_km_away_is_below_the_tangent_plane() -> None:
    m = LocalMap(54.0, 10.0)
    lat, lon = m.to_geo(20_000.0, 0.0)
    v = ned_between((54.0, 10.0, 0.0), (lat, lon, 0.0))
    assert v.z == pytest.approx(20_000.0**2 / (2 * 6.39e6), rel=0.01)  # 31 m: earth curvature


def test_flat_map_round_trip_and_scale() -> None:
    m = LocalMap(54.17, 11.7)
    for n, e in [(0.0, 0.0), (5000.0, -3000.0), (-20_000.0, 20_000.0)]:
        assert m.to_map(*m.to_geo(n, e)) == pytest.approx((n, e), abs=1e-6)
    # map distance vs exact distance: under 0.2 % within 10 km (documented)
    lat, lon = m.to_geo(7000.0, 7000.0)
    v = ned_between((54.17, 11.7, 0.0), (lat, lon, 0.0))
    assert math.hypot(v.x, v.y) == pytest.approx(math.hypot(7000.0, 7000.0), rel=0.002)


# -- scenario files -----------------------------------------------------------------------


def test_builtin_and_test_scenarios_load() -> None:
    assert "patrol" in builtin_scenarios()
    patrol = load_scenario("builtin:patrol")
    assert patrol.duration_s <= 60
    assert {t.id for t in patrol.targets} == {"cargo-1", "ferry-1", "fast-1", "loiter-1", "air-1"}
    assert set(patrol.sensors) == {"radar", "eoir"}
    assert {z.zone_id for z in patrol.zones} == {"platform", "anchorage"}
    unit = load_scenario(SCENARIO_FILE)
    assert unit.sensors["eoir_passive"].bearing_only
    assert unit.targets[1].classification == "SURFACE_VESSEL"  # case and prefix normalised


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d["targets"][0]["velocity"].update(speed_mps=-1), "targets.0.velocity.speed_mps", "greater"),
        (lambda d: d["sensors"]["radar"].update(colour="red"), "sensors.radar.colour", "Extra inputs"),
        (lambda d: d["targets"][0].pop("velocity"), "targets.0", "exactly one of route, velocity, orbit"),
        (lambda d: d["targets"][0].update(classification="SUBMARINE"), "targets.0.classification", "SUBSURFACE"),
        (lambda d: d["zones"][0].update(circle={"lat": 1, "lon": 2, "radius_m": 3}), "zones.0", "exactly one"),
        (lambda d: d["own"]["route"][0].update(speed_mps=0), "own.route.0.leg.speed_mps", "greater"),
        (lambda d: d.pop("duration_s"), "duration_s", "required"),
        (lambda d: d["targets"].append(dict(d["targets"][0])), "<root>", "target id used twice: north"),
    ],
)
def test_invalid_scenarios_name_the_field(change: Any, field: str, message: str) -> None:
    d = scenario_data()
    change(d)
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(d, origin="unit.toml")
    text = str(e.value)
    assert text.startswith("unit.toml: invalid scenario: ")
    assert f"{field}: " in text
    assert message in text


def test_file_errors_name_the_file(tmp_path: Any) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("duration_s = = 3\n")
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML: .*line 1"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match=r"missing\.toml: cannot read scenario"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match=r"no such built-in scenario .*patrol"):
        load_scenario("builtin:nope")
    bad.write_text(SCENARIO_FILE.read_text().replace("duration_s = 40.0", "duration_s = -1"))
    with pytest.raises(ScenarioError, match=r"bad\.toml: invalid scenario: duration_s: "):
        load_scenario(bad)


# -- truth ----------------------------------------------------------------------------------


def _local(sc: Scenario, lat: float, lon: float) -> tuple[float, float]:
    v = ned_between((sc.start.lat, sc.start.lon, 0.0), (lat, lon, 0.0))
    return v.x, v.y


def test_own_truth_is_continuous_and_follows_the_route() -> None:
    sc = make_scenario()
    dt = 0.01
    speed, turn = 6.0, math.radians(5.0)
    prev = sc.platform_at(0.0)
    assert (prev.lat, prev.lon) == pytest.approx((sc.start.lat, sc.start.lon), abs=1e-12)
    for k in range(1, 12_000):
        t = k * dt
        p = sc.platform_at(t)
        step = ned_between((prev.lat, prev.lon, 0.0), (p.lat, p.lon, 0.0))
        assert math.hypot(step.x, step.y) == pytest.approx(speed * dt, rel=2e-3)  # no jumps, constant speed
        assert math.hypot(p.north_mps, p.east_mps) == pytest.approx(speed, rel=2e-3)
        # velocity is the derivative of position
        assert (step.x / dt, step.y / dt) == pytest.approx((p.north_mps, p.east_mps), abs=0.02)
        assert abs(wrap(p.yaw_rad - prev.yaw_rad)) <= turn * dt * 1.01  # yaw turns at the turn rate at most
        prev = p
    # north for 300 m (less the rounded corner), then east
    n, e = _local(sc, *sc.platform_at(20.0)[:2])
    assert (n, e) == pytest.approx((120.0, 0.0), abs=0.5)
    assert sc.platform_at(20.0).yaw_rad == pytest.approx(0.0, abs=1e-9)
    n, e = _local(sc, *sc.platform_at(80.0)[:2])
    assert n == pytest.approx(300.0, abs=1.0)
    assert sc.platform_at(80.0).yaw_rad == pytest.approx(math.pi / 2, abs=1e-9)
    # the corner is rounded with radius speed / turn rate: it passes inside the waypoint by R (sqrt 2 - 1)
    radius = speed / turn
    closest = min(
        math.hypot(*(a - b for a, b in zip(_local(sc, *sc.platform_at(k / 10)[:2]), (300.0, 0.0), strict=True)))
        for k in range(400, 600)
    )
    assert closest == pytest.approx(radius * (math.sqrt(2) - 1), rel=0.01)


def test_after_end_continue_and_stop() -> None:
    d = scenario_data()
    d["own"] = {"route": [{"heading_deg": 45.0, "speed_mps": 5.0, "duration_s": 10.0}]}
    sc = make_scenario(d)
    p = sc.platform_at(30.0)
    assert _local(sc, p.lat, p.lon) == pytest.approx((150 / math.sqrt(2), 150 / math.sqrt(2)), rel=2e-3)
    d["own"]["after_end"] = "stop"
    sc = make_scenario(d)
    p = sc.platform_at(30.0)
    assert _local(sc, p.lat, p.lon) == pytest.approx((50 / math.sqrt(2), 50 / math.sqrt(2)), rel=2e-3)
    assert (p.north_mps, p.east_mps, p.yaw_rad) == pytest.approx((0.0, 0.0, math.pi / 4))


def test_targets_exist_between_start_and_end_and_move_as_scripted() -> None:
    sc = make_scenario()
    assert set(sc.targets_at(0.0)) == {"north", "north-east"}
    assert set(sc.targets_at(5.0)) == {"north", "north-east", "drone"}
    assert "drone" not in sc.targets_at(25.0)
    north = [sc.targets_at(t)["north"] for t in (0.0, 10.0)]
    step = ned_between((north[0].lat, north[0].lon, 0.0), (north[1].lat, north[1].lon, 0.0))
    assert (step.x, step.y) == pytest.approx((0.0, -50.0), abs=0.1)
    assert (north[0].vn, north[0].ve) == pytest.approx((0.0, -5.0), abs=5e-3)  # map scale 3 km north: 0.06 %
    assert north[0].classification == "SURFACE_VESSEL"
    drone = [sc.targets_at(t)["drone"] for t in (5.0, 10.0, 15.0, 24.9)]
    for d in drone:  # on its orbit, at its height, at its speed
        v = ned_between((50.015, -3.97, 0.0), (d.lat, d.lon, 0.0))
        assert math.hypot(v.x, v.y) == pytest.approx(400.0, rel=2e-3)
        assert math.hypot(d.vn, d.ve) == pytest.approx(20.0, rel=2e-3)
        assert d.height_m == 300.0
    with pytest.raises(KeyError):
        sc.target_at("nobody", 0.0)


def test_zone_events_of_the_patrol_scenario() -> None:
    """The truth the geofence tests and the demo rely on."""
    sc = load_scenario("builtin:patrol")
    events = [(e.t_s, e.target_id, e.zone_id, e.entered) for e in sc.zone_events()]
    assert events == [
        (9.6, "cargo-1", "anchorage", True),
        (17.0, "fast-1", "platform", True),
        (31.9, "ferry-1", "anchorage", True),
        (41.05, "fast-1", "platform", False),
        (52.35, "cargo-1", "anchorage", False),
    ]
    # the aircraft flies over the anchorage above its ceiling
    anchorage = next(z for z in sc.zones if z.zone_id == "anchorage")
    air = sc.target_at("air-1", 45.0)
    assert air is not None
    assert anchorage.contains(air.lat, air.lon)
    assert not anchorage.contains(air.lat, air.lon, air.height_m)


def test_zones_contain_and_convert_to_proto() -> None:
    sc = make_scenario()
    box, ring = sc.zones
    assert box.contains(50.022, -3.957)
    assert not box.contains(50.022, -3.96)
    assert ring.contains(50.015, -3.97 + 0.0083)  # ~595 m east of the centre
    assert not ring.contains(50.015, -3.97 + 0.0085)  # ~609 m
    assert not ring.contains(50.015, -3.97, height_m=300.0)  # above the ceiling
    z = ring.to_proto()
    assert (z.zone_id, z.WhichOneof("shape"), z.circle.radius_m, z.ceiling_hae_m) == ("ring", "circle", 600.0, 100.0)
    assert z.kind == 1
    assert z.active
    assert not z.HasField("floor_hae_m")
    p = box.to_proto()
    assert next((v.latitude_deg, v.longitude_deg) for v in p.polygon.vertices) == (50.0203, -3.9592)
    assert len(p.polygon.vertices) == 4
    events = [(e.target_id, e.zone_id, e.entered) for e in sc.zone_events(until_s=60.0)]
    assert events == [("north-east", "box", True), ("north-east", "box", False)]


# -- adapters: entry points and protocols ------------------------------------------------


def test_adapters_are_registered_and_implement_the_protocols() -> None:
    eps = {ep.name: ep for ep in md.entry_points(group="hardpoint.adapters")}
    clock = Clock()
    gnss = eps["sim-gnss"].load()(scenario=str(SCENARIO_FILE), clock=clock)
    radar = eps["sim-detections"].load()(scenario=str(SCENARIO_FILE), sensor="radar", clock=clock, sensor_id="r1")
    assert isinstance(gnss, GnssReceiver)
    assert isinstance(radar, DetectionSensor)
    assert radar.sensor_id == "r1"
    with pytest.raises(ValueError, match=r"no sensor 'sonar' .*eoir, eoir_passive, radar"):
        sim_detections(scenario=SCENARIO_FILE, sensor="sonar")
    with pytest.raises(ValueError, match="sim-gnss: invalid configuration: position_std_m"):
        sim_gnss(scenario=SCENARIO_FILE, position_std_m=-1)
    with pytest.raises(ValueError, match="sim-gnss: invalid configuration: jitter: Extra inputs"):
        sim_gnss(scenario=SCENARIO_FILE, jitter=1)


def test_time_zero_from_config_environment_or_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    sc = make_scenario()
    clock = Clock()
    monkeypatch.delenv(START_ENV, raising=False)
    clock.advance(3.0)
    first_use = sim_gnss(scenario=sc, clock=clock)
    assert first_use.read() is not None
    assert first_use.time.start_ns == clock.now
    monkeypatch.setenv(START_ENV, str(T0))
    from_env = sim_gnss(scenario=sc, clock=clock)
    assert from_env.time.start_ns == T0
    explicit = sim_gnss(scenario=sc, clock=clock, start_ns=T0 + 10**9)
    assert explicit.time.start_ns == T0 + 10**9
    monkeypatch.setenv(START_ENV, "soon")
    with pytest.raises(ValueError, match=START_ENV):
        sim_gnss(scenario=sc, clock=clock)


# -- GNSS -----------------------------------------------------------------------------------


def _gnss_errors(sc: Scenario, n: int, **config: Any) -> tuple[list[float], list[float], list[float], list[float]]:
    clock = Clock()
    gnss = sim_gnss(scenario=sc, clock=clock, start_ns=T0, **config)
    en, ee, eh, ey = [], [], [], []
    for _ in range(n):
        fix = gnss.read()
        assert fix is not None
        truth = sc.platform_at((fix.time_ns - T0) / 1e9)
        v = ned_between((truth.lat, truth.lon, 0.0), (fix.latitude_deg, fix.longitude_deg, fix.height_m))
        en.append(v.x)
        ee.append(v.y)
        eh.append(-v.z)
        ey.append(wrap(fix.yaw_rad - truth.yaw_rad))
        clock.advance(0.1)
    return en, ee, eh, ey


def test_gnss_white_noise_statistics() -> None:
    sc = make_scenario()
    n = 4000
    en, ee, eh, ey = _gnss_errors(sc, n, correlation_time_s=0.0)
    spec = sc.gnss
    for errors, sigma in [
        (en, spec.position_std_m),
        (ee, spec.position_std_m),
        (eh, spec.height_std_m),
        (ey, math.radians(spec.heading_std_deg)),
    ]:
        assert abs(statistics.fmean(errors)) < 4 * sigma / math.sqrt(n)
        assert abs(statistics.pstdev(errors) / sigma - 1) < 4 / math.sqrt(2 * n)  # std of a sample std


def test_gnss_correlated_noise_keeps_its_variance_and_time_constant() -> None:
    sc = make_scenario()
    tau, n = 2.0, 6000  # 600 s: 300 time constants
    en, ee, _, _ = _gnss_errors(sc, n, correlation_time_s=tau)
    sigma = sc.gnss.position_std_m
    for e in (en, ee):
        # effective sample count of a Gauss-Markov process: T / (2 tau)
        n_eff = n * 0.1 / (2 * tau)
        assert abs(statistics.pstdev(e) / sigma - 1) < 4 / math.sqrt(2 * n_eff)
        lag = round(tau / 0.1)
        rho = sum(a * b for a, b in zip(e, e[lag:], strict=False)) / sum(a * a for a in e)
        assert rho == pytest.approx(math.exp(-1), abs=4 / math.sqrt(n_eff))


def test_gnss_fix_fields_rate_and_outage() -> None:
    d = scenario_data()
    d["gnss"].update(outages=[[2.0, 3.0]], rate_hz=5.0)
    sc = make_scenario(d)
    clock = Clock()
    gnss = sim_gnss(scenario=sc, clock=clock, start_ns=T0 + 10**9)
    assert gnss.read() is None  # before time zero
    clock.advance(1.0)
    times = []
    for k in range(200):
        if k:
            clock.advance(0.01)
        fix = gnss.read()
        assert fix is not None
        times.append(fix.time_ns)
    assert len(set(times)) == 10  # 2 s at 5 Hz
    assert all(0 <= (t - T0 - 10**9) % (2 * 10**8) < 1 for t in times)
    assert fix.fix == "3d"
    assert fix.satellites == sc.gnss.satellites
    assert fix.horizontal_std_m == pytest.approx(math.sqrt(2) * sc.gnss.position_std_m)  # radial
    assert fix.heading_std_rad == pytest.approx(math.radians(sc.gnss.heading_std_deg))
    held = (fix.latitude_deg, fix.longitude_deg)
    clock.advance(0.01)  # t = 2.0: outage
    out = gnss.read()
    assert out is not None
    assert out.fix == "none"
    assert out.satellites == 0
    assert math.isnan(out.horizontal_std_m)
    assert (out.latitude_deg, out.longitude_deg) == held
    clock.advance(1.0)
    back = gnss.read()
    assert back is not None
    assert back.fix == "3d"


def test_gnss_is_deterministic_for_a_seed_whatever_the_read_pattern() -> None:
    sc = make_scenario()
    a, b, c = Clock(), Clock(), Clock()
    ga = sim_gnss(scenario=sc, clock=a, start_ns=T0)
    gb = sim_gnss(scenario=sc, clock=b, start_ns=T0)
    gc = sim_gnss(scenario=sc, clock=c, start_ns=T0, seed=99)
    fa = []
    for _ in range(50):
        fa.append(ga.read())
        a.advance(0.1)
    b.advance(4.9)
    c.advance(4.9)
    assert gb.read() == fa[-1]  # read once after 4.9 s: the same fix as read every epoch
    assert gc.read() != fa[-1]


# -- detections -----------------------------------------------------------------------------------


def _sensor(
    d: dict[str, Any], target: dict[str, Any] | list[dict[str, Any]], **sensor: Any
) -> tuple[Scenario, Any, Clock]:
    targets = target if isinstance(target, list) else [target]
    d = dict(d, targets=targets)
    spec = {
        "kind": "radar",
        "max_range_m": 12_000.0,
        "update_rate_hz": 10.0,
        "range_std_m": 0.0,
        "bearing_std_deg": 0.0,
        "detection_probability": 1.0,
        **sensor,
    }
    d["sensors"] = {"s": spec}
    sc = make_scenario(d)
    clock = Clock()
    return sc, sim_detections(scenario=sc, sensor="s", clock=clock, start_ns=T0), clock


def _ahead(sc_data: dict[str, Any], north: float, east: float = 0.0, **target: Any) -> dict[str, Any]:
    m = LocalMap(sc_data["start"][0], sc_data["start"][1])
    lat, lon = m.to_geo(north, east)
    return {"id": "x", "start": [lat, lon], "velocity": {"course_deg": 0.0, "speed_mps": 0.0}, **target}


def _collect(sensor: Any, clock: Clock, seconds: float, step: float = 0.1) -> list[Any]:
    out = []
    for _ in range(round(seconds / step)):
        clock.advance(step)
        out.extend(sensor.poll())
    return out


def test_a_target_dead_ahead_at_5_km() -> None:
    d = stationary(heading_deg=0.0)
    _, radar, clock = _sensor(d, _ahead(d, 5000.0))
    dets = _collect(radar, clock, 1.0)
    assert len(dets) == 11  # scans at 0.0, 0.1, ... 1.0
    for det in dets:
        assert det.bearing_rad == pytest.approx(0.0, abs=1e-6)
        assert det.range_m == pytest.approx(5000.0, abs=0.05)  # the flat map: 4 ppm
        assert det.elevation_rad == pytest.approx(-5000.0 / (2 * 6.39e6), abs=1e-5)  # curvature: just below level
        assert det.sensor_track_id == "t0.0"  # first seen in scan 0, target 0
    # the same target from a platform heading east is on the port beam
    d = stationary(heading_deg=90.0)
    _, radar, clock = _sensor(d, _ahead(d, 5000.0))
    det = _collect(radar, clock, 0.2)[0]
    assert det.bearing_rad == pytest.approx(-math.pi / 2, abs=1e-6)


def test_noise_statistics_of_range_bearing_and_elevation() -> None:
    d = stationary(heading_deg=30.0)
    sig_r, sig_b, sig_e = 15.0, 0.5, 1.0
    _, radar, clock = _sensor(d, _ahead(d, 5000.0), range_std_m=sig_r, bearing_std_deg=sig_b, elevation_std_deg=sig_e)
    dets = _collect(radar, clock, 300.0, step=1.0)
    n = len(dets)
    assert n == 3001
    for values, truth, sigma in [
        ([x.range_m for x in dets], 5000.0, sig_r),
        ([x.bearing_rad for x in dets], math.radians(-30.0), math.radians(sig_b)),
        ([x.elevation_rad for x in dets], -5000.0 / (2 * 6.39e6), math.radians(sig_e)),
    ]:
        assert abs(statistics.fmean(values) - truth) < 4 * sigma / math.sqrt(n) + 1e-5
        assert abs(statistics.pstdev(values) / sigma - 1) < 4 / math.sqrt(2 * n)
    assert dets[0].range_std_m == sig_r
    assert dets[0].bearing_std_rad == pytest.approx(math.radians(sig_b))


def test_field_of_view_mount_and_range_limits() -> None:
    d = stationary(heading_deg=0.0)
    # boresight 90 degrees right of the bow, 60 degree field of view: bearings 60..120 are seen
    fov = {"mount_yaw_deg": 90.0, "fov_deg": 60.0, "max_range_m": 8000.0, "min_range_m": 100.0}
    targets = [
        _ahead(d, 3000 * math.cos(math.radians(b)), 3000 * math.sin(math.radians(b)), id=f"b{b}")
        for b in (0, 55, 65, 90, 115, 125, 180, -90)
    ] + [
        _ahead(d, 0.0, 7900.0, id="near-limit"),
        _ahead(d, 0.0, 8100.0, id="beyond"),
        _ahead(d, 0.0, 90.0, id="too-close"),
    ]
    _, eoir, clock = _sensor(d, targets, kind="eoir", **fov)
    dets = _collect(eoir, clock, 1.0)
    seen = {t for _, t in eoir.truth_log}
    assert seen == {"b65", "b90", "b115", "near-limit"}
    for det in dets:  # bearings are reported from the bow, not from the boresight
        assert math.radians(60) <= det.bearing_rad <= math.radians(120)


def test_elevation_limits_and_an_aircraft() -> None:
    d = stationary()
    targets = [_ahead(d, 3000.0, id="low", height_m=500.0), _ahead(d, 1000.0, 200.0, id="high", height_m=2000.0)]
    _, radar, clock = _sensor(d, targets, max_elevation_deg=25.0)
    dets = _collect(radar, clock, 0.5)
    assert {t for _, t in radar.truth_log} == {"low"}
    # 500 m up, less the 0.7 m the surface 3 km away is below the level plane
    assert dets[0].elevation_rad == pytest.approx(math.atan2(500.0 - 3000.0**2 / (2 * 6.39e6), 3000.0), abs=5e-5)


def test_detection_probability_and_false_alarm_rate() -> None:
    d = stationary()
    pd, fa = 0.7, 2.0
    fov = {"mount_yaw_deg": -45.0, "fov_deg": 60.0, "min_range_m": 500.0, "max_range_m": 9000.0}
    _, radar, clock = _sensor(d, _ahead(d, 3000.0, -3000.0), detection_probability=pd, false_alarms_per_scan=fa, **fov)
    scans = 3000
    dets = _collect(radar, clock, scans / 10, step=1.0)
    hits = [t for _, t in radar.truth_log if t is not None]
    false = [det for det, t in radar.truth_log if t is None]
    lo, hi = binomial_bounds(pd, scans)
    assert lo <= len(hits) / scans <= hi
    assert abs(len(false) / scans - fa) < 4 * math.sqrt(fa / scans)  # Poisson
    assert len(dets) == len(hits) + len(false)
    for det in false:  # uniform in the field of view and the range interval
        assert math.radians(-75) <= det.bearing_rad <= math.radians(-15)
        assert 500.0 <= det.range_m <= 9000.0
        assert det.sensor_track_id == ""
        assert det.classification == ""
    n = len(false)
    # uniform: mean at the centre, variance width^2 / 12
    assert abs(statistics.fmean(d.bearing_rad for d in false) - math.radians(-45)) < 4 * math.radians(60) / math.sqrt(
        12 * n
    )
    assert abs(statistics.fmean(d.range_m for d in false) - 4750.0) < 4 * 8500 / math.sqrt(12 * n)


def test_latency_delays_availability() -> None:
    d = stationary()
    _, radar, clock = _sensor(d, _ahead(d, 2000.0), update_rate_hz=1.0, latency_s=0.3)
    clock.advance(0.29)
    assert radar.poll() == []  # scan 0 (t = 0) is not available before 0.3 s
    clock.advance(0.01)
    (det,) = radar.poll()
    assert det.time_ns == T0
    clock.advance(0.99)
    assert radar.poll() == []
    clock.advance(0.01)
    (det,) = radar.poll()
    assert det.time_ns == T0 + 10**9


def test_track_ids_are_stable_and_renewed_after_a_gap() -> None:
    d = stationary()
    # a target circling the platform in 60 s is in a 60 degree field of view for 10 s of each turn
    circling = {
        "id": "c",
        "orbit": {
            "lat": d["start"][0],
            "lon": d["start"][1],
            "radius_m": 2000.0,
            "speed_mps": 2 * math.pi * 2000 / 60,
            "start_bearing_deg": -40.0,
        },
    }
    steady = _ahead(d, 4000.0, id="steady")
    _, eoir, clock = _sensor(d, [circling, steady], kind="eoir", fov_deg=60.0)
    _collect(eoir, clock, 130.0, step=0.5)
    ids: dict[str, list[str]] = {}
    for det, target in eoir.truth_log:
        ids.setdefault(str(target), [])
        if not ids[str(target)] or ids[str(target)][-1] != det.sensor_track_id:
            ids[str(target)].append(det.sensor_track_id)
    assert ids["steady"] == ["t0.1"]  # target 1, first seen in scan 0
    # three passes of target 0 through the field of view (entering at 1.67 s, 61.67 s, 121.67 s; 10 scans/s)
    assert ids["c"] == ["t17.0", "t617.0", "t1217.0"]


def test_classification_hints() -> None:
    d = stationary()
    _, eoir, clock = _sensor(d, _ahead(d, 3000.0, classification="AIRCRAFT"), kind="eoir", classification_accuracy=0.8)
    dets = _collect(eoir, clock, 200.0, step=1.0)
    right = sum(det.classification == "AIRCRAFT" for det in dets)
    assert right + sum(det.classification == "UNKNOWN" for det in dets) == len(dets)
    lo, hi = binomial_bounds(0.8, len(dets))
    assert lo <= right / len(dets) <= hi
    assert {det.classification_confidence for det in dets} == {0.8}


def test_bearing_only_sensor_reports_no_range() -> None:
    sc = make_scenario()
    clock = Clock()
    eoir = sim_detections(scenario=sc, sensor="eoir_passive", clock=clock, start_ns=T0)
    dets = _collect(eoir, clock, 5.0)
    assert dets
    assert all(math.isnan(det.range_m) and math.isnan(det.range_std_m) for det in dets)
    assert all(det.bearing_std_rad == pytest.approx(math.radians(0.05)) for det in dets)


def test_detections_are_deterministic_whatever_the_poll_pattern() -> None:
    sc = make_scenario()
    a, b = Clock(), Clock()
    ra = sim_detections(scenario=sc, sensor="radar", clock=a, start_ns=T0)
    rb = sim_detections(scenario=sc, sensor="radar", clock=b, start_ns=T0)
    rc = sim_detections(scenario=sc, sensor="radar", clock=b, start_ns=T0, seed=1)
    fine = _collect(ra, a, 4.0, step=0.05)
    b.advance(4.0)
    coarse = rb.poll()
    assert fine == coarse
    assert rc.poll() != coarse


def test_backlog_is_bounded() -> None:
    sc = make_scenario()
    clock = Clock()
    radar = sim_detections(scenario=sc, sensor="radar", clock=clock, start_ns=T0, max_backlog_s=2.0)
    clock.advance(60.0)
    dets = radar.poll()
    assert dets
    assert min(d.time_ns for d in dets) >= clock.now - round(2.1 * 1e9)


def test_start_file_holds_the_scenario_until_it_exists(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo starts the scenario once every module is up, by writing the start file."""
    from hardpoint_sim._clock import START_FILE_ENV, ScenarioClock

    now = [1_000_000_000_000]
    start_file = tmp_path / "start"
    monkeypatch.setenv(START_FILE_ENV, str(start_file))
    clock = ScenarioClock(None, lambda: now[0])
    clock.now_ns()
    assert clock.start_ns > now[0] * 1000  # not started: time zero is far away
    start_file.write_text(str(now[0] + 5))
    assert clock.start_ns == now[0] + 5
    start_file.write_text("999")  # read once, then fixed
    assert clock.start_ns == now[0] + 5
