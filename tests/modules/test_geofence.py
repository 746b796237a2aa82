"""The geofence module on the in-memory transport: alerts per episode, hysteresis, tasking, configuration."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.any_pb2 import Any as AnyMessage

from hardpoint import Bus, ModuleHost, State
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_geofence import GeofenceModule, ZoneConfig, zone_from_proto
from hardpoint_mod_geofence._geometry import circle

# A keep-out square about 1.1 km (north-south) by 0.72 km (east-west); its west edge is longitude 0.
SQUARE = [[50.0, 0.0], [50.01, 0.0], [50.01, 0.01], [50.0, 0.01]]
HARBOUR = {"zone_id": "harbour", "name": "HARBOUR", "kind": "keep_out", "severity": "caution", "polygon": SQUARE}
LAT = 50.005  # the square's middle latitude
M_PER_DEG_LON = math.radians(1) * 6_378_137.0 / math.sqrt(1 - 0.00669437999014 * math.sin(math.radians(LAT)) ** 2)
M_PER_DEG_LON *= math.cos(math.radians(LAT))


def east_of_west_edge(metres: float) -> float:
    """Longitude of the point ``metres`` east of the square's west edge, at LAT (negative: west, outside)."""
    return metres / M_PER_DEG_LON


class Rig:
    """A geofence on an in-memory bus, and a probe that feeds it and watches what it says."""

    def __init__(self, config: dict[str, Any], *, activate: bool = True) -> None:
        self.t = InMemoryTransport()
        self.module = GeofenceModule()
        self.host = ModuleHost(self.module, self.t, config=config, health_period_s=None)
        self.probe = Bus(self.t, module="console")  # a tool bus: publishes and subscribes anything
        self.alerts = self.probe.subscribe(alert_pb2.Alert)
        self.acks = self.probe.subscribe(tasking_pb2.TaskAck)
        self.results = self.probe.subscribe(tasking_pb2.TaskResult)
        self.zones: list[alert_pb2.Zone] = []
        self.probe.subscribe(alert_pb2.Zone, self.zones.append)
        self.host.configure()
        if activate:
            assert self.host.activate() is State.ACTIVE

    def track(self, lat: float, lon: float, *, tid: str = "T-1", lifecycle: int = 2, height: float = 0.0) -> None:
        self.probe.publish(
            track_pb2.FusedTrack(
                track_id=tid,
                lifecycle=lifecycle,  # type: ignore[arg-type]
                position=geo_pb2.GeoPosition(latitude_deg=lat, longitude_deg=lon, height_hae_m=height),
                last_update_time_ns=self.t.now_ns(),
            )
        )

    def request(self, task_id: str, parameters: Any | None, **fields: Any) -> None:
        req = tasking_pb2.TaskRequest(task_id=task_id, requester="console", target="geofence", **fields)
        if parameters is not None:
            if isinstance(parameters, AnyMessage):
                req.parameters.CopyFrom(parameters)
            else:
                req.parameters.Pack(parameters)
        self.probe.publish(req)

    def cancel(self, task_id: str, requester: str = "console") -> None:
        self.probe.publish(tasking_pb2.TaskCancel(task_id=task_id, requester=requester, target="geofence"))


def states(alerts: list[alert_pb2.Alert]) -> list[str]:
    return [alert_pb2.AlertState.Name(a.state) for a in alerts]


def walk(rig: Rig, metres: list[float], *, step_s: float = 0.5, tid: str = "T-1") -> None:
    for m in metres:
        rig.track(LAT, east_of_west_edge(m), tid=tid)
        rig.t.advance(step_s)


def test_entering_and_leaving_raises_once_and_clears_once() -> None:
    rig = Rig({"zones": [HARBOUR], "margin_m": 30})
    walk(rig, [-400, -200, -50, 20, 200, 360, 500, 700, 760, 900, 1200])
    alerts = rig.alerts.take()
    assert states(alerts) == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]
    raised, cleared = alerts
    assert raised.alert_id == cleared.alert_id
    assert raised.alert_id.startswith("geofence/harbour/T-1/")
    assert raised.category == alert_pb2.ALERT_CATEGORY_GEOFENCE_INTRUSION
    assert raised.severity == alert_pb2.ALERT_SEVERITY_CAUTION
    assert (raised.zone_id, raised.track_id) == ("harbour", "T-1")
    assert "T-1" in raised.text
    assert "HARBOUR" in raised.text
    assert "entered" in raised.text
    assert "left" in cleared.text
    assert raised.raised_time_ns > 0
    assert raised.cleared_time_ns == 0
    assert cleared.cleared_time_ns > cleared.raised_time_ns == raised.raised_time_ns
    assert raised.position.longitude_deg == pytest.approx(east_of_west_edge(20))


def test_a_track_that_stays_outside_raises_nothing() -> None:
    rig = Rig({"zones": [HARBOUR]})
    for i in range(20):  # along the north edge, 100 m outside it
        rig.track(50.01 + 100 / 111_200, -0.002 + i * 0.001)
        rig.t.advance(0.5)
    assert rig.alerts.take() == []


def test_each_episode_has_its_own_alert_id() -> None:
    rig = Rig({"zones": [HARBOUR], "margin_m": 10})
    walk(rig, [-100, 100, -100, 100, -100])
    alerts = rig.alerts.take()
    assert states(alerts) == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"] * 2
    assert alerts[0].alert_id == alerts[1].alert_id != alerts[2].alert_id == alerts[3].alert_id


def test_hysteresis_a_track_on_the_border_does_not_chatter() -> None:
    rig = Rig({"zones": [HARBOUR], "margin_m": 50})
    walk(rig, [5, -5, 5, -5, -30, 5, -45, 3])  # never more than 50 m back out
    assert states(rig.alerts.take()) == ["ALERT_STATE_RAISED"]
    walk(rig, [-60])  # clearly out
    assert states(rig.alerts.take()) == ["ALERT_STATE_CLEARED"]
    # Without a margin the same path chatters: that is what the margin is for.
    rig0 = Rig({"zones": [HARBOUR], "margin_m": 0})
    walk(rig0, [5, -5, 5, -5, -30, 5, -45, 3])
    assert len(rig0.alerts.take()) == 7  # raised at 5, cleared at -5, ...: every crossing


def test_dropped_track_clears_its_alert() -> None:
    rig = Rig({"zones": [HARBOUR]})
    walk(rig, [-100, 100])
    rig.track(LAT, east_of_west_edge(150), lifecycle=track_pb2.TRACK_LIFECYCLE_DROPPED)
    alerts = rig.alerts.take()
    assert states(alerts) == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]
    assert "dropped" in alerts[1].text
    rig.t.advance(5)  # and nothing more: no stale clear for a track already gone
    assert rig.alerts.take() == []


def test_stale_track_clears_after_the_fused_track_deadline() -> None:
    rig = Rig({"zones": [HARBOUR]})
    walk(rig, [100], step_s=0.0)
    assert states(rig.alerts.take()) == ["ALERT_STATE_RAISED"]
    rig.t.advance(1.4)  # the FusedTrack deadline is 1500 ms
    assert rig.alerts.take() == []
    rig.t.advance(0.3)
    cleared = rig.alerts.take()
    assert states(cleared) == ["ALERT_STATE_CLEARED"]
    assert "stale" in cleared[0].text


def test_keep_in_zone_raises_when_the_track_leaves() -> None:
    patrol = {"zone_id": "patrol", "kind": "KEEP_IN", "circle": {"lat": LAT, "lon": 0.0, "radius_m": 1000}}
    rig = Rig({"zones": [patrol], "margin_m": 20})
    walk(rig, [0, 900, 1010, 1100, 990, 970])
    alerts = rig.alerts.take()
    assert states(alerts) == ["ALERT_STATE_RAISED", "ALERT_STATE_CLEARED"]
    assert "left keep-in zone" in alerts[0].text
    assert alerts[0].severity == alert_pb2.ALERT_SEVERITY_WARNING  # the default


def test_height_band_counts() -> None:
    airspace = {**HARBOUR, "floor_hae_m": 0.0, "ceiling_hae_m": 500.0}
    rig = Rig({"zones": [airspace], "margin_m": 20})
    rig.track(LAT, east_of_west_edge(300), height=800)  # above the ceiling
    rig.t.advance(0.5)
    assert rig.alerts.take() == []
    rig.track(LAT, east_of_west_edge(300), height=450)
    rig.t.advance(0.5)
    rig.track(LAT, east_of_west_edge(300), height=510)  # 10 m above: inside the margin, still raised
    rig.t.advance(0.5)
    assert states(rig.alerts.take()) == ["ALERT_STATE_RAISED"]
    rig.track(LAT, east_of_west_edge(300), height=530)
    assert states(rig.alerts.take()) == ["ALERT_STATE_CLEARED"]


def test_several_tracks_and_zones_are_independent() -> None:
    second = {**HARBOUR, "zone_id": "pier", "name": "", "polygon": [[50.004, 0.004], [50.006, 0.004], [50.005, 0.006]]}
    rig = Rig({"zones": [HARBOUR, second]})
    rig.track(50.005, 0.0049, tid="A")  # inside both
    rig.track(50.002, 0.002, tid="B")  # inside the harbour only
    alerts = rig.alerts.take()
    assert sorted((a.zone_id, a.track_id) for a in alerts) == [("harbour", "A"), ("harbour", "B"), ("pier", "A")]
    assert len({a.alert_id for a in alerts}) == 3


def test_zones_are_published_when_the_module_activates() -> None:
    rig = Rig({"zones": [HARBOUR]}, activate=False)
    assert rig.zones == []  # nothing is published before activation
    rig.host.activate()
    (zone,) = rig.zones
    assert zone.zone_id == "harbour"
    assert zone.active
    assert zone.kind == alert_pb2.ZONE_KIND_KEEP_OUT
    assert [(v.latitude_deg, v.longitude_deg) for v in zone.polygon.vertices] == [tuple(v) for v in SQUARE]


def test_cleanup_and_configure_again_does_not_double_anything() -> None:
    rig = Rig({"zones": [HARBOUR]})
    rig.host.deactivate()
    rig.host.cleanup()
    rig.host.configure()
    rig.host.activate()
    rig.track(LAT, east_of_west_edge(100))
    assert states(rig.alerts.take()) == ["ALERT_STATE_RAISED"]
    rig.request("again", zone_msg())
    assert len(rig.acks.take()) == 1


def test_tracks_received_while_inactive_are_ignored() -> None:
    rig = Rig({"zones": [HARBOUR]}, activate=False)
    rig.track(LAT, east_of_west_edge(100))
    rig.host.activate()
    assert rig.alerts.take() == []


# -- tasking ---------------------------------------------------------------------


def zone_msg(zone_id: str = "box", **kw: Any) -> alert_pb2.Zone:
    cfg = ZoneConfig.model_validate({"zone_id": zone_id, "polygon": SQUARE, **kw})
    return cfg.to_proto()


def test_add_zone_task_accepted_succeeds_publishes_zone_and_alerts_a_track_already_inside() -> None:
    rig = Rig({"zones": []})
    rig.track(LAT, east_of_west_edge(300), tid="T-9")
    rig.zones.clear()
    rig.request("task-1", zone_msg("box", name="BOX", severity="advisory"), correlation_id="op-7")
    (ack,) = rig.acks.take()  # at once, well within the request's deadline
    assert ack.status == tasking_pb2.TASK_ACK_STATUS_ACCEPTED
    assert (ack.task_id, ack.correlation_id, ack.requester, ack.responder) == ("task-1", "op-7", "console", "geofence")
    rig.t.advance(0.1)
    (result,) = rig.results.take()
    assert result.status == tasking_pb2.TASK_STATUS_SUCCEEDED
    assert (result.task_id, result.correlation_id, result.responder) == ("task-1", "op-7", "geofence")
    assert "added" in result.text
    (zone,) = rig.zones
    assert zone.zone_id == "box"
    assert zone.active
    (alert,) = rig.alerts.take()
    assert (alert.zone_id, alert.track_id, alert.state) == ("box", "T-9", alert_pb2.ALERT_STATE_RAISED)
    assert alert.severity == alert_pb2.ALERT_SEVERITY_ADVISORY


def test_replacing_a_zone_keeps_the_episode_and_updates_its_severity() -> None:
    rig = Rig({"zones": [HARBOUR]})
    rig.track(LAT, east_of_west_edge(300))
    (raised,) = rig.alerts.take()
    rig.request("t", zone_msg("harbour", name="HARBOUR", severity="warning"))
    rig.t.advance(0.1)
    assert rig.results.take()[0].text.endswith("replaced")
    (updated,) = rig.alerts.take()
    assert updated.alert_id == raised.alert_id
    assert updated.state == alert_pb2.ALERT_STATE_RAISED
    assert updated.severity == alert_pb2.ALERT_SEVERITY_WARNING


def test_remove_zone_task_retires_the_zone_and_clears_its_alerts() -> None:
    rig = Rig({"zones": [HARBOUR]})
    rig.track(LAT, east_of_west_edge(300))
    assert states(rig.alerts.take()) == ["ALERT_STATE_RAISED"]
    rig.zones.clear()
    rig.request("rm-1", alert_pb2.Zone(zone_id="harbour", active=False))
    assert rig.acks.take()[0].status == tasking_pb2.TASK_ACK_STATUS_ACCEPTED
    rig.t.advance(0.1)
    (result,) = rig.results.take()
    assert result.status == tasking_pb2.TASK_STATUS_SUCCEEDED
    (zone,) = rig.zones
    assert zone.zone_id == "harbour"
    assert not zone.active
    assert len(zone.polygon.vertices) == 4
    (cleared,) = rig.alerts.take()
    assert cleared.state == alert_pb2.ALERT_STATE_CLEARED
    assert "removed" in cleared.text
    rig.track(LAT, east_of_west_edge(310))
    assert rig.alerts.take() == []  # the zone is gone


def test_removing_an_unknown_zone_fails() -> None:
    rig = Rig({"zones": [HARBOUR]})
    rig.request("rm-2", alert_pb2.Zone(zone_id="nowhere", active=False))
    rig.t.advance(0.1)
    assert rig.acks.take()[0].status == tasking_pb2.TASK_ACK_STATUS_ACCEPTED
    (result,) = rig.results.take()
    assert result.status == tasking_pb2.TASK_STATUS_FAILED
    assert "nowhere" in result.text


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        (None, "parameters missing"),
        (track_pb2.FusedTrack(track_id="x"), "unknown task type 'type.googleapis.com/hardpoint.track.v1.FusedTrack'"),
        (zone_msg("bad", polygon=[[50.0, 0.0], [50.01, 0.01], [50.01, 0.0], [50.0, 0.01]]), "edges 0-1 and 2-3 cross"),
        (alert_pb2.Zone(zone_id="open", kind=alert_pb2.ZONE_KIND_KEEP_OUT, active=True), "exactly one of polygon"),
        (alert_pb2.Zone(kind=alert_pb2.ZONE_KIND_KEEP_OUT, active=False), "zone_id is required"),
        (AnyMessage(type_url="type.googleapis.com/hardpoint.alert.v1.Zone", value=b"\xff\xff"), "do not decode"),
    ],
)
def test_invalid_parameters_are_rejected_with_a_reason(parameters: Any, reason: str) -> None:
    rig = Rig({"zones": []})
    rig.request("bad-1", parameters)
    (ack,) = rig.acks.take()
    assert ack.status == tasking_pb2.TASK_ACK_STATUS_REJECTED
    assert reason in ack.reason
    rig.t.advance(0.5)
    assert rig.results.take() == []  # no result follows a rejection


def test_request_past_its_deadline_is_answered_expired() -> None:
    rig = Rig({"zones": []})
    rig.request("late", zone_msg(), deadline_time_ns=rig.t.now_ns() - 1_000_000)
    assert rig.acks.take()[0].status == tasking_pb2.TASK_ACK_STATUS_ACCEPTED
    (result,) = rig.results.take()
    assert result.status == tasking_pb2.TASK_STATUS_EXPIRED
    # A deadline that passes while the task is pending also expires it.
    rig.request("soon", zone_msg(), deadline_time_ns=rig.t.now_ns() + 10_000_000)
    rig.t.advance(0.1)
    assert [r.status for r in rig.results.take()] == [tasking_pb2.TASK_STATUS_EXPIRED]
    assert rig.zones == []  # never applied


def test_cancel_of_a_pending_task_answers_cancelled_and_nothing_is_applied() -> None:
    rig = Rig({"zones": []})
    rig.request("t-5", zone_msg())
    rig.cancel("t-5", requester="someone-else")  # ignored: only the requester may cancel
    assert rig.results.take() == []
    rig.cancel("t-5")
    (result,) = rig.results.take()
    assert result.status == tasking_pb2.TASK_STATUS_CANCELLED
    rig.t.advance(0.5)
    assert rig.results.take() == []
    assert rig.zones == []
    # Cancelling an ended task answers the result it reached.
    rig.request("t-6", zone_msg())
    rig.t.advance(0.1)
    assert [r.status for r in rig.results.take()] == [tasking_pb2.TASK_STATUS_SUCCEEDED]
    rig.cancel("t-6")
    assert [r.status for r in rig.results.take()] == [tasking_pb2.TASK_STATUS_SUCCEEDED]


def test_cancel_of_an_unknown_task_answers_cancelled_and_the_late_request_is_not_run() -> None:
    rig = Rig({"zones": []})
    rig.cancel("ghost")
    assert [r.status for r in rig.results.take()] == [tasking_pb2.TASK_STATUS_CANCELLED]
    rig.request("ghost", zone_msg())
    rig.t.advance(0.1)
    assert [r.status for r in rig.results.take()] == [tasking_pb2.TASK_STATUS_CANCELLED]
    assert rig.zones == []


def test_a_repeated_request_is_answered_again_and_run_once() -> None:
    rig = Rig({"zones": []})
    rig.request("twice", zone_msg())
    rig.request("twice", zone_msg())
    assert len(rig.acks.take()) == 2
    rig.t.advance(0.1)
    rig.request("twice", zone_msg())
    assert len(rig.acks.take()) == 1
    assert [r.status for r in rig.results.take()] == [tasking_pb2.TASK_STATUS_SUCCEEDED] * 2
    assert len(rig.zones) == 1  # applied once


def test_requests_for_other_modules_are_ignored() -> None:
    rig = Rig({"zones": []})
    rig.probe.publish(tasking_pb2.TaskRequest(task_id="x", requester="console", target="fusion"))
    rig.t.advance(0.1)
    assert rig.acks.take() == []
    assert rig.results.take() == []


def test_pending_tasks_run_highest_priority_first() -> None:
    rig = Rig({"zones": []})
    rig.request("routine", zone_msg("z", name="ROUTINE"), priority=tasking_pb2.TASK_PRIORITY_ROUTINE)
    rig.request("flash", zone_msg("z", name="FLASH"), priority=tasking_pb2.TASK_PRIORITY_FLASH)
    rig.t.advance(0.1)
    assert [r.task_id for r in rig.results.take()] == ["flash", "routine"]
    assert [z.name for z in rig.zones] == ["FLASH", "ROUTINE"]


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"zones": [{"zone_id": "a", "polygon": SQUARE, "circle": {"lat": 0, "lon": 0, "radius_m": 5}}]},
            "exactly one",
        ),
        ({"zones": [{"zone_id": "a"}]}, "zones.0: Value error, exactly one of polygon and circle"),
        (
            {"zones": [{**HARBOUR, "polygon": [*SQUARE, SQUARE[0]]}]},
            "zones.0: zone 'harbour': polygon: the last vertex",
        ),
        ({"zones": [{**HARBOUR, "polygon": [[50.0, 0.0], [0.0, 50.0], [1, 1]]}]}, "check they are not swapped"),
        ({"zones": [{**HARBOUR, "kind": "keep_away"}]}, "zones.0.kind"),
        ({"zones": [{**HARBOUR, "polygon": [[95.0, 0.0], [50, 0], [50, 1]]}]}, "latitude 95.0 is outside"),
        ({"zones": [HARBOUR, HARBOUR]}, "zone_id 'harbour' is used twice"),
        ({"zones": [{**HARBOUR, "floor_hae_m": 100, "ceiling_hae_m": 50}]}, "floor_hae_m (100.0) must be below"),
        ({"zones": [], "margin_m": -1}, "margin_m: Input should be greater than or equal to 0"),
        ({"zones": [], "radius": 5}, "radius: Extra inputs are not permitted"),
    ],
)
def test_invalid_configuration_is_refused_with_a_clear_error(config: dict[str, Any], message: str) -> None:
    t = InMemoryTransport()
    host = ModuleHost(GeofenceModule(), t, config=config, health_period_s=None)
    assert host.configure() is State.UNCONFIGURED  # error processing recovered to UNCONFIGURED
    assert host.last_error is not None
    text = str(host.last_error)
    assert text.startswith("geofence configuration is invalid")
    assert message in text


# -- geometry accuracy ----------------------------------------------------------------


def vincenty_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance on WGS84 (Vincenty's inverse formula; sub-millimetre away from antipodes)."""
    a, f = 6_378_137.0, 1 / 298.257223563
    b = a * (1 - f)
    u1, u2 = math.atan((1 - f) * math.tan(math.radians(lat1))), math.atan((1 - f) * math.tan(math.radians(lat2)))
    lon = lam = math.radians(lon2 - lon1)
    for _ in range(200):
        sl, cl = math.sin(lam), math.cos(lam)
        sin_s = math.hypot(math.cos(u2) * sl, math.cos(u1) * math.sin(u2) - math.sin(u1) * math.cos(u2) * cl)
        cos_s = math.sin(u1) * math.sin(u2) + math.cos(u1) * math.cos(u2) * cl
        sigma = math.atan2(sin_s, cos_s)
        sin_a = math.cos(u1) * math.cos(u2) * sl / sin_s
        cos2a = 1 - sin_a**2
        c2sm = cos_s - 2 * math.sin(u1) * math.sin(u2) / cos2a if cos2a else 0.0
        c = f / 16 * cos2a * (4 + f * (4 - 3 * cos2a))
        prev, lam = lam, lon + (1 - c) * f * sin_a * (sigma + c * sin_s * (c2sm + c * cos_s * (-1 + 2 * c2sm**2)))
        if abs(lam - prev) < 1e-13:
            break
    usq = cos2a * (a * a - b * b) / (b * b)
    big_a = 1 + usq / 16384 * (4096 + usq * (-768 + usq * (320 - 175 * usq)))
    big_b = usq / 1024 * (256 + usq * (-128 + usq * (74 - 47 * usq)))
    ds = (
        big_b
        * sin_s
        * (
            c2sm
            + big_b / 4 * (cos_s * (-1 + 2 * c2sm**2) - big_b / 6 * c2sm * (-3 + 4 * sin_s**2) * (-3 + 4 * c2sm**2))
        )
    )
    return b * big_a * (sigma - ds)


def offsets(lat: float, lon: float, max_m: float, n: int, seed: int) -> Iterator[tuple[float, float]]:
    rng = random.Random(seed)
    for _ in range(n):
        d, bearing = rng.uniform(0.1, 1) * max_m, rng.uniform(0, 2 * math.pi)
        dlat = d * math.cos(bearing) / 111_000
        yield lat + dlat, lon + d * math.sin(bearing) / (111_000 * math.cos(math.radians(lat + dlat)))


@pytest.mark.parametrize(("lat", "lon"), [(50.0, -1.0), (0.0, 179.9), (-33.9, 18.4), (78.2, 15.6)])
def test_local_plane_distance_error_is_as_documented(lat: float, lon: float) -> None:
    c = circle(lat, lon, 100_000)
    for reach, tolerance in ((10_000, 0.1), (50_000, 1.0), (100_000, 5.0)):
        for plat, raw_lon in offsets(lat, lon, reach, 50, seed=int(lat * 10 + reach)):
            plon = (raw_lon + 180) % 360 - 180
            plane = c.radius_m - c.signed_distance(plat, plon)
            assert abs(plane - vincenty_m(lat, lon, plat, plon)) < tolerance


def test_points_far_away_are_never_inside() -> None:
    zone = zone_from_proto(ZoneConfig.model_validate(HARBOUR).to_proto())
    for lat, lon in [(-50.005, 180.0), (-50.005, -179.995), (0.0, 90.0), (89.0, 0.0), (50.005, 10.0)]:
        assert zone.depth(lat, lon, 0.0) < -100_000
