"""hardpoint-mod-nav on the in-memory bus with the simulated GNSS receiver and the manual clock."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from _simrig import Rig, make_scenario, scenario_data

from hardpoint import ModuleHost, State
from hardpoint.adapters import GnssFix
from hardpoint.nav.v1 import nav_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint_mod_nav import Nav
from hardpoint_sim.geodesy import ned_between


def test_publishes_ten_states_per_second_with_the_fields_of_the_fix() -> None:
    sc = make_scenario()
    rig = Rig(sc).start().run(10.0)
    assert len(rig.navs) == 100  # 10 Hz, deterministically
    assert rig.nav.health_status == "ok"
    spec = sc.gnss
    for msg, info in rig.navs:
        assert msg.platform_id == "own"
        assert info.key == "own"
        assert msg.fix_quality == nav_pb2.FIX_QUALITY_3D
        assert msg.satellites_used == spec.satellites
        assert msg.accuracy.horizontal_position_std_m == pytest.approx(math.sqrt(2) * spec.position_std_m)
        assert msg.accuracy.vertical_position_std_m == spec.height_std_m
        assert msg.accuracy.velocity_std_mps == spec.velocity_std_mps
        assert msg.accuracy.heading_std_rad == pytest.approx(math.radians(spec.heading_std_deg))
        # time of validity = the solution's epoch, at or before publication
        t = rig.t_s(info.stamp_ns)
        assert round(t * 10) == pytest.approx(t * 10, abs=1e-6)
        truth = sc.platform_at(t)
        err = ned_between((truth.lat, truth.lon, 0.0), (msg.position.latitude_deg, msg.position.longitude_deg, 0.0))
        assert math.hypot(err.x, err.y) < 5 * msg.accuracy.horizontal_position_std_m
        assert abs(msg.position.height_hae_m) < 5 * spec.height_std_m
        assert msg.velocity.north_mps == pytest.approx(truth.north_mps, abs=5 * spec.velocity_std_mps)
        assert msg.velocity.east_mps == pytest.approx(truth.east_mps, abs=5 * spec.velocity_std_mps)
        yaw_err = math.atan2(
            math.sin(msg.attitude.yaw_rad - truth.yaw_rad), math.cos(msg.attitude.yaw_rad - truth.yaw_rad)
        )
        assert abs(yaw_err) < 5 * msg.accuracy.heading_std_rad
        assert -math.pi <= msg.attitude.yaw_rad <= math.pi
    stamps = [i.stamp_ns for _, i in rig.navs]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 100


def test_platform_id_and_rate_from_configuration() -> None:
    rig = Rig(make_scenario(), nav_config={"platform_id": "frigate-7", "rate_hz": 5.0}).start().run(4.0)
    assert len(rig.navs) == 20
    assert {m.platform_id for m, _ in rig.navs} == {"frigate-7"}


def test_invalid_configuration_fails_configure_with_the_field() -> None:
    rig = Rig(make_scenario(), nav_config={"rate_hz": 0, "colour": "red"})
    assert rig.nav.configure() is State.UNCONFIGURED  # error processing, recovered
    text = str(rig.nav.last_error)
    assert "module 'nav': invalid configuration" in text
    assert "rate_hz: " in text
    assert "colour: Extra inputs" in text


def test_an_adapter_that_is_no_receiver_is_refused() -> None:
    host = ModuleHost(Nav(), InMemoryTransport(), adapters={"gnss": object()})
    host.configure()
    assert "adapter 'gnss' must be a GnssReceiver, not object" in str(host.last_error)


def test_no_fix_degrades_health_and_keeps_publishing_fix_none() -> None:
    d = scenario_data()
    d["gnss"]["outages"] = [[2.0, 4.0]]
    rig = Rig(make_scenario(d)).start()
    rig.run(1.9)
    assert rig.nav.health_status == "ok"
    last_good = rig.navs[-1][0].position
    rig.run(1.0)
    assert rig.nav.health_status == "degraded"
    assert rig.nav.health_reason == "GNSS receiver reports no fix"
    lost = [m for m, i in rig.navs if 2.0 <= rig.t_s(i.stamp_ns) < 4.0]
    assert len(lost) == 10  # still 10 Hz: 2.0 .. 2.9
    for m in lost:
        assert m.fix_quality == nav_pb2.FIX_QUALITY_NONE
        assert not m.HasField("accuracy")
        assert m.position.latitude_deg == pytest.approx(last_good.latitude_deg, abs=1e-4)
    rig.run(1.5)
    assert rig.nav.health_status == "ok"
    assert rig.navs[-1][0].fix_quality == nav_pb2.FIX_QUALITY_3D


class StubReceiver:
    """A receiver whose answer the test sets."""

    def __init__(self) -> None:
        self.fix: GnssFix | None = None
        self.error: Exception | None = None

    def read(self) -> GnssFix | None:
        if self.error is not None:
            raise self.error
        return self.fix


def _stub_rig() -> tuple[InMemoryTransport, ModuleHost, StubReceiver, Any]:
    from hardpoint import Bus

    t = InMemoryTransport()
    rx = StubReceiver()
    host = ModuleHost(Nav(), t, adapters={"gnss": rx})
    sub = Bus(t, module="listener").subscribe(nav_pb2.NavState)
    host.configure()
    host.activate()
    return t, host, rx, sub


def _fix(time_ns: int, **kw: Any) -> GnssFix:
    base = GnssFix(
        time_ns=time_ns, latitude_deg=50.0, longitude_deg=-4.0, height_m=10.0, north_mps=1.0, east_mps=2.0,
        down_mps=0.0, roll_rad=0.01, pitch_rad=-0.02, yaw_rad=3.5, horizontal_std_m=2.0, vertical_std_m=4.0,
        velocity_std_mps=0.1, heading_std_rad=0.01, fix="rtk_fixed", satellites=300,
    )  # fmt: skip
    return replace(base, **kw)


def test_receiver_without_a_solution_yet_degrades() -> None:
    t, host, rx, sub = _stub_rig()
    t.advance(0.35)
    msgs = sub.take()
    assert len(msgs) == 3
    assert all(m.fix_quality == nav_pb2.FIX_QUALITY_NONE and m.platform_id == "own" for m in msgs)
    assert (host.health_status, host.health_reason) == ("degraded", "no solution from the GNSS receiver yet")
    rx.fix = _fix(t.now_ns())
    t.advance(0.1)
    (m,) = sub.take()
    assert host.health_status == "ok"
    assert m.fix_quality == nav_pb2.FIX_QUALITY_RTK_FIXED
    assert m.satellites_used == 255  # clamped to the contract
    assert m.attitude.yaw_rad == pytest.approx(3.5 - 2 * math.pi)  # wrapped into [-pi, pi]
    assert (m.attitude.roll_rad, m.attitude.pitch_rad) == pytest.approx((0.01, -0.02))


def test_stale_unaided_and_failing_receivers() -> None:
    t, host, rx, sub = _stub_rig()
    rx.fix = _fix(t.now_ns())
    t.advance(1.05)
    assert host.health_status == "ok"
    t.advance(0.1)  # the fix is now 1.1 s old
    assert (host.health_status, host.health_reason) == ("degraded", "last GNSS solution is 1.1 s old")
    assert sub.take()[-1].fix_quality == nav_pb2.FIX_QUALITY_NONE
    rx.fix = _fix(t.now_ns(), fix="dead_reckoning")
    t.advance(0.1)
    assert host.health_status == "degraded"
    assert "unaided navigation (dead_reckoning)" in host.health_reason
    assert sub.take()[-1].fix_quality == nav_pb2.FIX_QUALITY_DEAD_RECKONING
    rx.error = OSError("serial port gone")
    t.advance(0.1)
    assert host.state is State.ACTIVE
    assert host.health_reason == "GNSS receiver read failed: OSError: serial port gone"
    last = sub.take()[-1]
    assert last.fix_quality == nav_pb2.FIX_QUALITY_NONE
    assert last.position.latitude_deg == 50.0  # last good position


def test_reactivation_does_not_double_the_rate() -> None:
    rig = Rig(make_scenario()).start().run(1.0)
    rig.nav.deactivate()
    rig.run(1.0)
    rig.nav.activate()
    rig.run(1.0)
    assert len(rig.navs) == 20
