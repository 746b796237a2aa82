"""hardpoint-mod-eoir on the in-memory bus: nav on the simulated GNSS, the module on the simulated EO/IR tracker.

Bounds come from the configured noise (see test_radar). The EO/IR sensor of
the unit scenario looks 20 degrees right of the bow with a 60 degree field of
view and has a laser rangefinder; ``eoir_passive`` is the same without it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from _simrig import Rig, accuracy, chi2_mean_bounds, cov3, make_scenario, mean

from hardpoint.track.v1 import track_pb2
from hardpoint_mod_eoir import Eoir
from hardpoint_sim import load_scenario
from hardpoint_sim.geodesy import ned_between


def eoir_rig(sensor: str = "eoir", **kw: Any) -> Rig:
    sc = kw.pop("sc", None) or make_scenario()
    return Rig(sc, sensor=sensor, module=Eoir(), adapter="eoir", **kw)


def _azimuth(rel: Any) -> float:
    return math.atan2(rel.east_m, rel.north_m)


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))


def test_geo_positions_are_within_the_configured_noise_of_the_truth() -> None:
    rig = eoir_rig().start().run(40.0)
    acc = accuracy(rig, sensor="eoir")
    print(acc.line("eoir, unit scenario"))
    assert acc.n > 150  # mostly "north": the others are near the edge of the field of view
    for e, pred, pub in zip(acc.errors, acc.predicted_h, acc.published_h, strict=True):
        assert e.horizontal < 5 * pred
        assert pub == pytest.approx(pred, rel=0.02)
    lo, hi = chi2_mean_bounds(2, acc.n)
    assert lo < mean([e.nees2 for e in acc.errors]) < hi
    lo, hi = chi2_mean_bounds(3, acc.n)
    assert lo < mean([e.nees3 for e in acc.errors]) < hi
    assert rig.host is not None
    assert rig.host.health_status == "ok"


def test_only_the_field_of_view_is_reported_and_classification_is_mapped() -> None:
    rig = eoir_rig().start().run(40.0)
    spec = rig.sc.sensors["eoir"]
    ms = rig.measurements()
    assert {m.sensor_id for m in ms} == {"eoir"}
    real = [m for m in ms if m.track_id.startswith("t")]
    for m in ms:
        own = rig.sc.platform_at(rig.t_s(m.measurement_time_ns))
        off_boresight = _wrap(_azimuth(m.relative_position) - own.yaw_rad - math.radians(spec.mount_yaw_deg))
        assert abs(off_boresight) <= math.radians(spec.fov_deg / 2 + 1.0)  # plus a few sigma of heading noise
    kinds = {track_pb2.Classification.Name(m.classification) for m in real}
    assert kinds <= {"CLASSIFICATION_SURFACE_VESSEL", "CLASSIFICATION_UNCREWED_AIRCRAFT", "CLASSIFICATION_UNKNOWN"}
    right = 0
    for m in real:
        truth = rig.truth_of(m)
        assert truth is not None
        name = track_pb2.Classification.Name(m.classification).removeprefix("CLASSIFICATION_")
        assert name in (truth[1].classification, "UNKNOWN")
        right += name == truth[1].classification
        assert m.classification_confidence == pytest.approx(0.9)
    assert right / len(real) == pytest.approx(0.9, abs=4 * math.sqrt(0.09 / len(real)))
    # false alarms carry no classification
    assert all(m.classification == track_pb2.CLASSIFICATION_UNSPECIFIED for m in ms if m.track_id.startswith("d"))


def test_latency_and_polling() -> None:
    rig = eoir_rig().start().run(10.0)
    delays = [
        (rx - m.measurement_time_ns) / 1e9 for m, _, rx in rig.tracks if m.lifecycle == track_pb2.TRACK_LIFECYCLE_NEW
    ]
    assert delays
    # available 0.15 s after the measurement, polled at 20 Hz, collected every 0.05 s by the rig
    assert all(0.15 - 1e-9 <= d <= 0.15 + 0.05 + 0.05 + 1e-9 for d in delays)


def test_bearing_only_detections_are_placed_on_the_line_of_sight() -> None:
    rig = eoir_rig("eoir_passive", module_config={"bearing_only_range_m": 4000.0, "bearing_only_range_std_m": 3000.0})
    rig.start().run(30.0)
    spec = rig.sc.sensors["eoir_passive"]
    sig_az = math.hypot(math.radians(spec.bearing_std_deg), math.radians(rig.gnss.spec.heading_std_deg))
    ms = [m for m in rig.measurements() if rig.truth_of(m) is not None]
    assert len(ms) > 120
    normalised = []
    for m in ms:
        rel = m.relative_position
        assert math.sqrt(rel.north_m**2 + rel.east_m**2 + rel.down_m**2) == pytest.approx(4000.0)
        # the largest axis of the covariance is the line of sight, with the configured range deviation
        c = cov3(m.relative_covariance.upper_triangle)
        az = _azimuth(rel)
        los = (rel.north_m / 4000.0, rel.east_m / 4000.0, rel.down_m / 4000.0)
        across_az = (-math.sin(az), math.cos(az), 0.0)
        along = sum(los[i] * c[i][j] * los[j] for i in range(3) for j in range(3))
        across = sum(across_az[i] * c[i][j] * across_az[j] for i in range(3) for j in range(3))
        assert math.sqrt(along) == pytest.approx(3000.0, rel=1e-3)
        # the azimuth deviation is recoverable: cross-range deviation / horizontal range
        assert math.sqrt(across) / math.hypot(rel.north_m, rel.east_m) == pytest.approx(sig_az, rel=1e-3)
        # the measured azimuth is the true one within the configured noise
        _target, truth = rig.truth_of(m)  # type: ignore[misc]
        own = rig.sc.platform_at(rig.t_s(m.measurement_time_ns))
        v = ned_between((own.lat, own.lon, 0.0), (truth.lat, truth.lon, truth.height_m))
        normalised.append(_wrap(az - math.atan2(v.y, v.x)) / sig_az)
    n = len(normalised)
    assert max(abs(x) for x in normalised) < 5
    assert abs(mean(normalised)) < 4 / math.sqrt(n)
    assert mean([x * x for x in normalised]) == pytest.approx(1.0, abs=4 * math.sqrt(2 / n))


def test_patrol_scenario_accuracy_of_both_sensors() -> None:
    """The built-in demo scenario: figures for the fusion author (run with -s to see them)."""
    from hardpoint_mod_radar import Radar

    sc = load_scenario("builtin:patrol")
    radar = Rig(sc, sensor="radar", module=Radar(), adapter="radar").start().run(60.0)
    eoir = Rig(sc, sensor="eoir", module=Eoir(), adapter="eoir").start().run(60.0)
    for name, rig in (("radar", radar), ("eoir", eoir)):
        acc = accuracy(rig, sensor=name)
        print(acc.line(f"patrol {name}"))
        for target in sorted({e.target for e in acc.errors}):
            es = [e for e in acc.errors if e.target == target]
            at = mean([e.range_m for e in es])
            print(f"  {target:9s} {len(es):4d} samples at {at:6.0f} m: RMS {acc.rms_h(target):5.1f} m")
        for e, pred in zip(acc.errors, acc.predicted_h, strict=True):
            assert e.horizontal < 5 * pred
        # GNSS errors are correlated over 30 s here: a looser bound on the mean NEES
        assert 1.0 < mean([e.nees2 for e in acc.errors]) < 3.0
    seen = {e.target for e in accuracy(eoir, sensor="eoir").errors}
    assert seen == {"cargo-1", "ferry-1", "fast-1", "loiter-1", "air-1"}
