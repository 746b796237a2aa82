"""hardpoint-mod-radar on the in-memory bus: nav on the simulated GNSS, the radar on the simulated radar.

Accuracy bounds come from the configured noise: every published geo
position is within 5 sigma (predicted from range, bearing, heading and GNSS
noise) of the truth, the published covariance is the predicted one, and the
mean NEES is within 4 standard deviations of its chi-square expectation.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from _simrig import Rig, accuracy, chi2_mean_bounds, make_scenario, mean, scenario_data, stationary

from hardpoint import ModuleHost, State
from hardpoint.testing import InMemoryTransport
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_radar import Radar
from hardpoint_sim.geodesy import LocalMap

NEW, UPDATED, COASTING, DROPPED = (
    track_pb2.TRACK_LIFECYCLE_NEW,
    track_pb2.TRACK_LIFECYCLE_UPDATED,
    track_pb2.TRACK_LIFECYCLE_COASTING,
    track_pb2.TRACK_LIFECYCLE_DROPPED,
)


def radar_rig(sc: Any = None, **kw: Any) -> Rig:
    return Rig(sc if sc is not None else make_scenario(), sensor="radar", module=Radar(), adapter="radar", **kw)


def test_a_target_dead_ahead_at_5_km() -> None:
    d = stationary(heading_deg=0.0)
    lat, lon = LocalMap(*d["start"]).to_geo(5000.0, 0.0)
    d["targets"] = [{"id": "x", "start": [lat, lon], "velocity": {"course_deg": 0.0, "speed_mps": 0.0}}]
    d["sensors"]["radar"].update(range_std_m=0.0, bearing_std_deg=0.0, elevation_std_deg=0.0, false_alarms_per_scan=0.0)
    d["sensors"]["radar"]["detection_probability"] = 1.0
    rig = radar_rig(
        make_scenario(d),
        gnss={"position_std_m": 0.0, "height_std_m": 0.0, "heading_std_deg": 0.0, "velocity_std_mps": 0.0},
    ).start()
    rig.run(3.0)
    ms = rig.measurements()
    assert len(ms) == 6  # 2 Hz scans at 0.0 .. 2.5 (latency 0.1 s)
    for m in ms:
        assert (m.sensor_id, m.track_id, m.platform_id) == ("radar", "t0.0", "own")  # first seen in scan 0, target 0
        assert (m.relative_position.north_m, m.relative_position.east_m) == pytest.approx((5000.0, 0.0), abs=0.05)
        assert m.relative_position.down_m == pytest.approx(5000.0**2 / (2 * 6.39e6), abs=0.05)  # curvature
        assert (m.position.latitude_deg, m.position.longitude_deg) == pytest.approx((lat, lon), abs=1e-8)
        assert m.position.height_hae_m == pytest.approx(0.0, abs=0.01)
        assert len(m.covariance.upper_triangle) == 6
        assert len(m.relative_covariance.upper_triangle) == 6
        assert not m.HasField("velocity")
        assert not m.HasField("relative_velocity")
    # the measurement time is the scan's, and the envelope's time of validity is the same
    assert [rig.t_s(m.measurement_time_ns) for m in ms] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    stamps = [i.stamp_ns for m, i, _ in rig.tracks if m.lifecycle in (NEW, UPDATED)]
    assert stamps == [m.measurement_time_ns for m in ms]
    assert rig.host is not None
    assert rig.host.health_status == "ok"


def test_geo_positions_are_within_the_configured_noise_of_the_truth() -> None:
    rig = radar_rig().start().run(40.0)
    acc = accuracy(rig, sensor="radar")
    print(acc.line("radar, unit scenario"))
    assert acc.n > 150
    assert {e.target for e in acc.errors} == {"north", "north-east", "drone"}
    for e, pred, pub in zip(acc.errors, acc.predicted_h, acc.published_h, strict=True):
        assert e.horizontal < 5 * pred
        assert pub == pytest.approx(pred, rel=0.02)  # the published covariance is what the noise implies
    lo, hi = chi2_mean_bounds(2, acc.n)
    assert lo < mean([e.nees2 for e in acc.errors]) < hi
    lo, hi = chi2_mean_bounds(3, acc.n)
    assert lo < mean([e.nees3 for e in acc.errors]) < hi


def test_navigation_samples_between_measurements_are_propagated() -> None:
    # GNSS at 3 Hz: the nearest navigation sample is up to 0.17 s (1 m of own motion) from a scan
    rig = radar_rig(gnss={"rate_hz": 3.0}).start().run(40.0)
    acc = accuracy(rig, sensor="radar")
    assert acc.n > 150
    lo, hi = chi2_mean_bounds(2, acc.n)
    assert lo < mean([e.nees2 for e in acc.errors]) < hi


def test_lifecycle_new_updated_coasting_dropped() -> None:
    rig = radar_rig().start().run(40.0)
    by_id: dict[str, list[tuple[track_pb2.SensorTrack, int]]] = {}
    for m, _, rx in rig.tracks:
        by_id.setdefault(m.track_id, []).append((m, rx))
    sensor_tracks = {k: v for k, v in by_id.items() if k.startswith("t")}
    one_offs = {k: v for k, v in by_id.items() if k.startswith("d")}
    assert len(sensor_tracks) == 3  # north, north-east, drone
    assert len(one_offs) == pytest.approx(80, abs=4 * math.sqrt(80))  # 1 false alarm per scan, 2 Hz, 40 s
    for samples in one_offs.values():
        assert [m.lifecycle for m, _ in samples] == [NEW]
        assert rig.truth_of(samples[0][0]) is None
    for _track_id, samples in sensor_tracks.items():
        kinds = [m.lifecycle for m, _ in samples]
        assert kinds[0] == NEW
        assert NEW not in kinds[1:]
        assert UPDATED in kinds
        assert COASTING in kinds
        # published at least once per contract deadline (1000 ms) while alive
        gaps = [(b - a) / 1e9 for (_, a), (_, b) in itertools.pairwise(samples)]
        assert max(gaps) <= 1.0
        for (prev, _), (m, _) in itertools.pairwise(samples):
            if m.lifecycle in (COASTING, DROPPED):  # no new measurement: the previous content again
                assert (m.measurement_time_ns, m.position) == (prev.measurement_time_ns, prev.position)
        target = rig.truth_of(samples[0][0])
        assert target is not None
        if target[0] == "drone":  # ends at 25 s: dropped 3.5 s after its last detection, then silent
            assert kinds[-1] == DROPPED
            assert kinds.count(DROPPED) == 1
            last_measured = max(rx for m, rx in samples if m.lifecycle in (NEW, UPDATED))
            assert rig.t_s(last_measured) < 25.0 + 0.1 + 0.1  # last scan before 25 s, latency, polling
            assert 3.5 <= (samples[-1][1] - last_measured) / 1e9 <= 3.5 + 0.1 + 0.05
        else:
            assert DROPPED not in kinds


def test_sensor_and_platform_ids_from_configuration() -> None:
    rig = radar_rig(
        module_config={"sensor_id": "radar-mast", "platform_id": "frigate-7"},
        nav_config={"platform_id": "frigate-7"},
    )
    rig.start().run(3.0)
    ms = rig.measurements()
    assert ms
    assert {(m.sensor_id, m.platform_id) for m in ms} == {("radar-mast", "frigate-7")}


def test_without_navigation_detections_are_dropped_and_health_degrades() -> None:
    rig = radar_rig(with_nav=False).start().run(3.0)
    host = rig.host
    assert host is not None
    assert rig.tracks == []
    assert host.health_status == "degraded"
    assert "no NavState of platform 'own' with a fix within 0.5 s" in host.health_reason
    rig.nav.configure()
    rig.nav.activate()
    rig.run(2.0)
    assert rig.measurements()
    assert host.health_status == "ok"


def test_navigation_of_another_platform_is_not_used() -> None:
    rig = radar_rig(nav_config={"platform_id": "other"}).start().run(3.0)
    assert rig.tracks == []
    assert rig.host is not None
    assert rig.host.health_status == "degraded"


def test_navigation_without_a_fix_is_not_used() -> None:
    d = scenario_data()
    d["gnss"]["outages"] = [[5.0, 10.0]]
    rig = radar_rig(make_scenario(d)).start().run(9.0)
    host = rig.host
    assert host is not None
    measured = [rig.t_s(m.measurement_time_ns) for m in rig.measurements()]
    assert max(measured) < 5.5  # a scan at 5.0 can use the last good sample (4.9 s) within 0.5 s
    assert host.health_status == "degraded"
    rig.run(3.0)
    assert host.health_status == "ok"


def test_configuration_and_adapter_are_checked() -> None:
    rig = radar_rig(module_config={"drop_after_s": -1, "range": 3})
    host = rig.host
    assert host is not None
    assert host.configure() is State.UNCONFIGURED
    assert "module 'radar': invalid configuration: drop_after_s: " in str(host.last_error)
    assert "range: Extra inputs" in str(host.last_error)
    bare = ModuleHost(Radar(), InMemoryTransport(), adapters={})
    bare.configure()
    assert "adapter 'radar' must be a DetectionSensor, not NoneType" in str(bare.last_error)


def test_a_failing_sensor_degrades_without_crashing() -> None:
    class Broken:
        sensor_id = "broken"

        def poll(self) -> list[Any]:
            raise OSError("link down")

    t = InMemoryTransport()
    host = ModuleHost(Radar(), t, adapters={"radar": Broken()})
    host.configure()
    host.activate()
    t.advance(0.5)
    assert host.state is State.ACTIVE
    assert (host.health_status, host.health_reason) == ("degraded", "sensor poll failed: OSError: link down")


def test_reactivation_does_not_poll_twice() -> None:
    rig = radar_rig()
    host, sensor = rig.host, rig.sensor
    assert host is not None
    assert sensor is not None
    polls = []

    class Counting:
        sensor_id = sensor.sensor_id

        def poll(self) -> list[Any]:
            polls.append(rig.t.now_ns())
            return sensor.poll()

    host.ctx.adapters = {"radar": Counting()}
    rig.start().run(2.0)
    host.deactivate()
    rig.run(2.0)
    host.activate()
    rig.run(2.0)
    assert len(polls) == 40  # 10 Hz for the 4 active seconds, not 20 Hz after re-activation
    # the scans of the inactive seconds come late but are published, each once
    ms = rig.measurements()
    assert len(ms) == len({(m.track_id, m.measurement_time_ns) for m in ms})
    assert {round(rig.t_s(m.measurement_time_ns) * 2) / 2 for m in ms if m.track_id.startswith("t")} == {
        k / 2 for k in range(12)
    }


def test_radar_and_eoir_on_one_bus_with_one_nav() -> None:
    from _simrig import sensor_chain

    from hardpoint import Bus
    from hardpoint_sim import load_scenario

    t = InMemoryTransport()
    sub = Bus(t, module="listener").subscribe(track_pb2.SensorTrack)
    hosts = sensor_chain(t, load_scenario("builtin:patrol"))
    t.advance(10.0)
    msgs = sub.take()
    assert {m.sensor_id for m in msgs} == {"radar", "eoir"}
    assert all(h.health_status == "ok" for h in hosts.values())
    assert {h.state for h in hosts.values()} == {State.ACTIVE}
