"""The fusion module on the in-memory transport: NEW then UPDATED at 2 Hz, COASTING, DROPPED once, health."""

from __future__ import annotations

import importlib.metadata as md
import itertools
import math
from typing import Any

import numpy as np
import pytest

from hardpoint import Bus, ModuleHost, SampleInfo, State
from hardpoint.core.v1 import geo_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_fusion import FusionModule, LocalFrame

FRAME = LocalFrame(54.17, 11.70)
NS = 1_000_000_000
NEW, UPDATED, COASTING, DROPPED = (
    track_pb2.TRACK_LIFECYCLE_NEW,
    track_pb2.TRACK_LIFECYCLE_UPDATED,
    track_pb2.TRACK_LIFECYCLE_COASTING,
    track_pb2.TRACK_LIFECYCLE_DROPPED,
)


class Rig:
    """The fusion module on an in-memory bus, a probe that plays sensors and records what fusion says."""

    def __init__(self, config: dict[str, Any] | None = None, *, activate: bool = True) -> None:
        self.t = InMemoryTransport()
        self.module = FusionModule()
        self.host = ModuleHost(
            self.module, self.t, config={"track_id_prefix": "F", **(config or {})}, health_period_s=None
        )
        self.probe = Bus(self.t, module="sensors")
        self.out: list[tuple[track_pb2.FusedTrack, SampleInfo, float]] = []
        self.probe.subscribe(track_pb2.FusedTrack, lambda m, i: self.out.append((m, i, self.now_s())), with_info=True)
        self.start_ns = self.t.now_ns()
        self.host.configure()
        if activate:
            assert self.host.activate() is State.ACTIVE

    def now_s(self) -> float:
        return (self.t.now_ns() - self.start_ns) / NS

    def detect(
        self,
        n: float,
        e: float,
        *,
        sensor: str = "radar",
        tid: str = "r1",
        lifecycle: int = UPDATED,
        time_ns: int | None = None,
        std: float = 10.0,
        cls: int = 0,
        conf: float = 0.0,
        geo: bool = True,
    ) -> None:
        lat, lon, _ = FRAME.to_geo(n, e)
        v = std * std
        msg = track_pb2.SensorTrack(
            sensor_id=sensor,
            track_id=tid,
            measurement_time_ns=self.t.now_ns() if time_ns is None else time_ns,
            lifecycle=lifecycle,  # type: ignore[arg-type]
            classification=cls,  # type: ignore[arg-type]
            classification_confidence=conf,
        )
        if geo:
            msg.position.CopyFrom(geo_pb2.GeoPosition(latitude_deg=lat, longitude_deg=lon, height_hae_m=0.0))
            msg.covariance.upper_triangle.extend([v, 0.0, 0.0, v, 0.0, 4.0])
        self.probe.publish(msg)

    def follow(
        self, seconds: float, *, start_n: float = 3000.0, vn: float = 10.0, rate_hz: float = 10.0, **kw: Any
    ) -> None:
        """A target moving north at ``vn`` m/s, detected at ``rate_hz`` for ``seconds``."""
        for _ in range(round(seconds * rate_hz)):
            self.detect(start_n + vn * self.now_s(), 0.0, **kw)
            self.t.advance(1.0 / rate_hz)

    def samples(self, lifecycle: int | None = None) -> list[tuple[track_pb2.FusedTrack, SampleInfo, float]]:
        return [s for s in self.out if lifecycle is None or s[0].lifecycle == lifecycle]


def test_new_then_updated_at_2hz_then_coasting_and_dropped_once() -> None:
    rig = Rig()
    rig.follow(6.0)
    ids = {m.track_id for m, _, _ in rig.out}
    assert ids == {"F1"}
    lifecycles = [m.lifecycle for m, _, _ in rig.out]
    assert lifecycles[0] == NEW
    assert set(lifecycles[1:]) == {UPDATED}
    first_at = rig.out[0][2]
    assert 0.2 <= first_at <= 0.35  # at once after the third scan (M = 3), within a work tick
    # 2 Hz: one sample per 0.5 s after the first
    times = [when for _, _, when in rig.out]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == pytest.approx(0.5, abs=0.051) for g in gaps)
    assert len(times) == pytest.approx((6.0 - first_at) / 0.5 + 1, abs=1)

    msg, info, _ = rig.out[-1]
    assert info.stamp_ns == msg.last_update_time_ns  # time of validity: the state's time
    assert msg.update_count >= 55
    assert msg.first_update_time_ns == rig.start_ns
    truth_n = 3000.0 + 10.0 * (msg.last_update_time_ns - rig.start_ns) / NS
    n, e, _ = FRAME.to_ned(msg.position.latitude_deg, msg.position.longitude_deg)
    assert math.hypot(n - truth_n, e) < 10.0
    assert msg.velocity.north_mps == pytest.approx(10.0, abs=1.5)
    assert len(msg.covariance.upper_triangle) == 21
    assert [(s.sensor_id, s.track_id) for s in msg.sources] == [("radar", "r1")]
    assert 0.9 < msg.confidence <= 1.0

    # input stops: COASTING at 2 Hz, DROPPED once delete_after_s (5 s) after the last update, then nothing
    rig.out.clear()
    rig.t.advance(12.0)
    lifecycles = [m.lifecycle for m, _, _ in rig.out]
    # the first may still carry updates fused since the last sample
    assert lifecycles[1:-1] == [COASTING] * (len(lifecycles) - 2)
    assert lifecycles[0] in {UPDATED, COASTING}
    assert lifecycles[-1] == DROPPED
    dropped, _, dropped_at = rig.out[-1]
    last_update = (dropped.last_update_time_ns - rig.start_ns) / NS
    assert last_update == pytest.approx(5.9)  # the last detection
    assert dropped_at == pytest.approx(last_update + 5.0, abs=0.06)
    assert len(rig.out) == pytest.approx(5.0 / 0.5 + 1, abs=1)
    assert rig.samples(DROPPED)[0][0].track_id == "F1"


def test_health_degraded_without_input_and_ok_again() -> None:
    rig = Rig({"input_timeout_s": 2.0})
    rig.t.advance(1.9)
    assert rig.host.health_status == "ok"
    rig.t.advance(0.2)
    assert (rig.host.health_status, rig.host.health_reason) == (
        "degraded",
        "no sensor tracks received for more than 2 s",
    )
    rig.follow(0.5)
    assert rig.host.health_status == "ok"
    rig.t.advance(2.5)
    assert rig.host.health_status == "degraded"
    rig.host.deactivate()
    assert rig.host.health_status == "ok"


def test_sensor_samples_that_are_not_measurements_are_refused() -> None:
    rig = Rig()
    for k in range(5):
        rig.detect(3000.0, 0.0, lifecycle=COASTING, tid=f"c{k}")  # the sensor's prediction, not a measurement
        rig.detect(3000.0, 0.0, lifecycle=DROPPED, tid=f"x{k}")
        rig.detect(3000.0, 0.0, geo=False, tid=f"g{k}")  # relative only: fusion needs geo-referenced tracks
        rig.detect(3000.0, 0.0, time_ns=rig.t.now_ns() + 60 * NS, tid=f"f{k}")  # a minute ahead of the clock
        rig.t.advance(0.1)
    rig.t.advance(1.0)
    assert rig.out == []
    assert rig.module.refused == {"not_measurement": 10, "no_position": 5, "future": 5, "inactive": 0}
    assert rig.module.tracker is not None
    assert rig.module.tracker.stats.measurements == 0


def test_two_sensors_fuse_into_one_track_with_both_sources() -> None:
    rig = Rig()
    for k in range(30):
        rig.detect(4000.0 + 5.0 * rig.now_s(), 100.0, sensor="radar", tid="r7", std=30.0)
        rig.t.advance(0.05)
        rig.detect(4000.0 + 5.0 * rig.now_s(), 100.0, sensor="eoir", tid=f"e{k}", std=5.0)
        rig.t.advance(0.05)
    rig.t.advance(0.6)
    assert {m.track_id for m, _, _ in rig.out} == {"F1"}
    last = rig.out[-1][0]
    assert sorted(s.sensor_id for s in last.sources) == ["eoir", "radar"]
    assert last.update_count == 60  # every measurement of both sensors went into the one track


def test_reclassification_is_published_at_once() -> None:
    rig = Rig()
    rig.follow(1.0, cls=track_pb2.CLASSIFICATION_SURFACE_VESSEL, conf=0.6)
    assert rig.out[-1][0].classification == track_pb2.CLASSIFICATION_SURFACE_VESSEL
    n_before = len(rig.out)
    t_last = rig.out[-1][2]
    rig.t.advance(0.1)  # well before the next periodic sample
    rig.detect(
        3000.0 + 10.0 * rig.now_s(), 0.0, sensor="eoir", tid="e1", cls=track_pb2.CLASSIFICATION_AIRCRAFT, conf=0.9
    )
    rig.t.advance(0.05)
    assert len(rig.out) == n_before + 1
    msg, _, when = rig.out[-1]
    assert when == pytest.approx(rig.now_s())
    assert when - t_last < 0.5  # before the periodic sample was due
    assert (msg.classification, msg.lifecycle) == (track_pb2.CLASSIFICATION_AIRCRAFT, UPDATED)
    assert msg.classification_confidence == pytest.approx(0.9)


def test_runs_on_measurement_time_for_replays() -> None:
    """Samples stamped an hour ago (a replayed recording) fuse as if live: nothing is dropped for being old."""
    rig = Rig()
    offset = 3600 * NS
    for _ in range(20):
        rig.detect(3000.0 + 10.0 * rig.now_s(), 0.0, time_ns=rig.t.now_ns() - offset)
        rig.t.advance(0.1)
    assert [m.lifecycle for m, _, _ in rig.out][:2] == [NEW, UPDATED]
    assert rig.out[-1][0].last_update_time_ns < rig.start_ns - offset + 2 * NS
    rig.out.clear()
    rig.t.advance(4.5)
    assert rig.samples(DROPPED) == []
    rig.t.advance(1.0)
    assert len(rig.samples(DROPPED)) == 1


def test_deactivate_drops_every_published_track_and_reactivation_starts_afresh() -> None:
    rig = Rig()
    rig.follow(1.0)
    rig.follow(1.0, start_n=-2000.0, tid="r2")
    assert rig.host.deactivate() is State.INACTIVE
    dropped = rig.samples(DROPPED)
    assert sorted(m.track_id for m, _, _ in dropped) == ["F1", "F2"]
    rig.out.clear()
    rig.detect(3000.0, 0.0)
    rig.t.advance(2.0)
    assert rig.out == []  # inactive: nothing fused, nothing published
    assert rig.module.refused["inactive"] == 1
    assert rig.host.activate() is State.ACTIVE
    rig.follow(1.0)
    assert {m.track_id for m, _, _ in rig.out} == {"F1"}  # a configured prefix: ids restart


def test_default_track_ids_carry_the_activation_time() -> None:
    rig = Rig({"track_id_prefix": None})
    rig.follow(1.0)
    assert rig.out[0][0].track_id == f"F{np.base_repr(rig.start_ns // 1_000_000, 36).lower()}-1"


def test_invalid_configuration_fails_configure() -> None:
    t = InMemoryTransport()
    host = ModuleHost(FusionModule(), t, config={"confirm_hits": 9}, health_period_s=None)
    assert host.configure() is State.UNCONFIGURED
    assert isinstance(host.last_error, ValueError)
    assert "confirm_hits (9) exceeds confirm_window (5)" in str(host.last_error)


def test_entry_point_and_manifest() -> None:
    (ep,) = [e for e in md.entry_points(group="hardpoint.modules") if e.name == "fusion"]
    module = ep.load()()
    assert isinstance(module, FusionModule)
    m = ModuleHost.manifest_of(module)
    assert (m.name, m.provides, m.requires) == (
        "fusion",
        ("hardpoint.track.v1.FusedTrack",),
        ("hardpoint.track.v1.SensorTrack",),
    )


def test_cleanup_and_configure_again_fuses_once() -> None:
    rig = Rig()
    assert rig.host.deactivate() is State.INACTIVE
    assert rig.host.cleanup() is State.UNCONFIGURED
    assert rig.host.configure() is State.INACTIVE
    assert rig.host.activate() is State.ACTIVE
    rig.out.clear()
    rig.follow(2.0)
    assert rig.module.tracker is not None
    assert rig.module.tracker.stats.measurements == 20  # one subscription, one work timer
    assert [m.lifecycle for m, _, _ in rig.out][:2] == [NEW, UPDATED]
    times = [when for _, _, when in rig.out]
    assert all(b - a == pytest.approx(0.5, abs=0.051) for a, b in itertools.pairwise(times))
