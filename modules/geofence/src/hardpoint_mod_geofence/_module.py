"""The geofence module: see the package docstring for how it is written and why."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import DecodeError

from hardpoint import Manifest, ModuleContext, Publisher, SampleInfo, hookimpl, interface_spec
from hardpoint.alert.v1 import alert_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_geofence._zones import KEEP_OUT, Zone, ZoneError, parse_config, zone_from_proto

__all__ = ["GeofenceModule"]

VERSION: Final = "0.1.0"

#: Tasks remembered for repeated requests and cancels; the oldest ended ones are forgotten past this.
MAX_REMEMBERED_TASKS: Final = 1024

_ZONE_TYPE: Final = alert_pb2.Zone.DESCRIPTOR.full_name
_DROPPED: Final = track_pb2.TRACK_LIFECYCLE_DROPPED

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Track:
    message: track_pb2.FusedTrack
    received_ns: int


@dataclass(slots=True)
class _Task:
    request: tasking_pb2.TaskRequest
    ack: tasking_pb2.TaskAck
    #: The zone to add, replace (active) or remove (not active); None when rejected.
    zone: alert_pb2.Zone | None
    order: int
    result: tasking_pb2.TaskResult | None = field(default=None)

    @property
    def pending(self) -> bool:
        return self.zone is not None and self.result is None


class GeofenceModule:
    """Geofence zones on WGS84: alerts for fused tracks entering keep-out or leaving keep-in zones."""

    manifest = Manifest(
        name="geofence",
        version=VERSION,
        supplier="hardpoint project",
        provides=(
            "hardpoint.alert.v1.Alert",
            "hardpoint.alert.v1.Zone",
            "hardpoint.tasking.v1.TaskAck",
            "hardpoint.tasking.v1.TaskResult",
        ),
        requires=("hardpoint.track.v1.FusedTrack",),
        # Tasking is optional: the geofence runs on its configured zones when no operator is on the bus.
        uses=(
            "hardpoint.tasking.v1.TaskRequest",
            "hardpoint.tasking.v1.TaskCancel",
            "hardpoint.alert.v1.AlertAck",
        ),
        description="Raises and clears geofence alerts for fused tracks; zones from configuration and tasking",
    )

    def __init__(self) -> None:
        self._subscribed = False
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self._zones: dict[str, Zone] = {}
        self._tracks: dict[str, _Track] = {}
        #: The RAISED alert of every open episode, by (zone_id, track_id).
        self._episodes: dict[tuple[str, str], alert_pb2.Alert] = {}
        self._tasks: OrderedDict[str, _Task] = OrderedDict()
        self._task_order = 0
        self._margin_m = 0.0
        self._stale_ns = 0

    # -- lifecycle ----------------------------------------------------------------

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        config, zones = parse_config(ctx.config)  # raises ConfigError: the host reports it
        self._reset()
        self._ctx = ctx
        self._name = ctx.name
        self._zones = {z.zone_id: z for z in zones}
        self._margin_m = config.margin_m
        deadline_ms = interface_spec(track_pb2.FusedTrack).deadline_ms
        self._stale_ns = int((config.stale_after_s or deadline_ms / 1000) * 1e9)
        # Low-rate decisions: each goes out alone, at once (no batching delay).
        self._alerts: Publisher[alert_pb2.Alert] = ctx.bus.publisher(alert_pb2.Alert, batch=None)
        self._zone_pub: Publisher[alert_pb2.Zone] = ctx.bus.publisher(alert_pb2.Zone, batch=None)
        self._acks: Publisher[tasking_pb2.TaskAck] = ctx.bus.publisher(tasking_pb2.TaskAck, batch=None)
        self._results: Publisher[tasking_pb2.TaskResult] = ctx.bus.publisher(tasking_pb2.TaskResult, batch=None)
        if not self._subscribed:
            # Once per instance: the host's bus outlives cleanup and re-configure, and a second
            # subscription would deliver everything twice. Callbacks check _active instead.
            ctx.bus.subscribe(track_pb2.FusedTrack, self._on_track, with_info=True)
            ctx.bus.subscribe(tasking_pb2.TaskRequest, self._on_request)
            ctx.bus.subscribe(tasking_pb2.TaskCancel, self._on_cancel)
            self._subscribed = True
        # Made once here: timers fire only while the module is active.
        ctx.every(config.tick_s, self._tick)
        ctx.log.info("geofence configured: %d zone(s), margin %.1f m", len(zones), self._margin_m)

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> None:
        self._active = True
        for zone in self._zones.values():
            self._zone_pub.publish(zone.message)

    @hookimpl
    def on_deactivate(self, ctx: ModuleContext) -> None:
        # Open alerts stay raised (the condition is not known to have ended); on the next
        # activation, tracks not heard from since are stale and their alerts clear.
        self._active = False

    @hookimpl
    def on_cleanup(self, ctx: ModuleContext) -> None:
        self._reset()

    # -- tracks -------------------------------------------------------------------

    def _on_track(self, track: track_pb2.FusedTrack, info: SampleInfo) -> None:
        if not self._active or not track.track_id:
            return
        tid = track.track_id
        if track.lifecycle == _DROPPED:
            self._tracks.pop(tid, None)
            self._clear_track(tid, _data_time(track, info, self._ctx.now_ns()), "was dropped")
            return
        self._tracks[tid] = _Track(track, self._ctx.now_ns())
        for zone in self._zones.values():
            self._evaluate(zone, track, _data_time(track, info, self._ctx.now_ns()))

    def _evaluate(self, zone: Zone, track: track_pb2.FusedTrack, time_ns: int) -> None:
        """Apply the hysteresis rule to one (zone, track) pair.

        Raise as soon as the track is on the wrong side of the boundary (violation >= 0);
        clear only when it is back at least ``margin_m`` on the right side.
        """
        if not track.HasField("position"):
            return
        p = track.position
        violation = zone.violation(p.latitude_deg, p.longitude_deg, p.height_hae_m)
        key = (zone.zone_id, track.track_id)
        open_alert = self._episodes.get(key)
        if open_alert is None and violation >= 0:
            verb = "entered keep-out zone" if zone.kind == KEEP_OUT else "left keep-in zone"
            alert = alert_pb2.Alert(
                alert_id=f"{self._name}/{zone.zone_id}/{track.track_id}/{time_ns}",
                state=alert_pb2.ALERT_STATE_RAISED,
                severity=zone.severity,
                category=alert_pb2.ALERT_CATEGORY_GEOFENCE_INTRUSION,
                text=f"Track {track.track_id} {verb} {zone.label}",
                track_id=track.track_id,
                zone_id=zone.zone_id,
                position=p,
                raised_time_ns=time_ns,
            )
            self._episodes[key] = alert
            self._alerts.publish(alert, time_of_validity_ns=time_ns)
        elif open_alert is not None and violation < -self._margin_m:
            verb = "left keep-out zone" if zone.kind == KEEP_OUT else "is back inside keep-in zone"
            self._clear(key, time_ns, f"Track {track.track_id} {verb} {zone.label}")
        elif open_alert is not None and open_alert.severity != zone.severity:
            # The zone was replaced with another severity: same alert, updated view.
            open_alert.severity = zone.severity
            self._alerts.publish(open_alert, time_of_validity_ns=time_ns)

    def _clear(self, key: tuple[str, str], time_ns: int, text: str) -> None:
        alert = self._episodes.pop(key)
        alert.state = alert_pb2.ALERT_STATE_CLEARED
        alert.cleared_time_ns = max(time_ns, alert.raised_time_ns)
        alert.text = text
        self._alerts.publish(alert, time_of_validity_ns=alert.cleared_time_ns)

    def _clear_track(self, track_id: str, time_ns: int, why: str) -> None:
        for key in [k for k in self._episodes if k[1] == track_id]:
            self._clear(key, time_ns, f"Track {track_id} {why} (zone {self._zone_label(key[0])})")

    def _zone_label(self, zone_id: str) -> str:
        zone = self._zones.get(zone_id)
        return zone.label if zone is not None else zone_id

    def _tick(self) -> None:
        now = self._ctx.now_ns()
        for tid in [t for t, tr in self._tracks.items() if now - tr.received_ns > self._stale_ns]:
            del self._tracks[tid]
            self._clear_track(tid, now, f"is stale (no update for {self._stale_ns / 1e9:g} s)")
        self._run_pending(now)

    # -- tasking ------------------------------------------------------------------

    def _on_request(self, request: tasking_pb2.TaskRequest) -> None:
        if not self._active or request.target != self._name or not request.task_id:
            return
        known = self._tasks.get(request.task_id)
        if known is not None:
            # The same task again (the requester missed our answer): answer again, never run twice.
            self._acks.publish(known.ack)
            if known.result is not None:
                self._results.publish(known.result)
            return
        zone, reason = _parse_parameters(request.parameters if request.HasField("parameters") else None)
        status = tasking_pb2.TASK_ACK_STATUS_REJECTED if zone is None else tasking_pb2.TASK_ACK_STATUS_ACCEPTED
        ack = tasking_pb2.TaskAck(
            task_id=request.task_id,
            correlation_id=request.correlation_id,
            requester=request.requester,
            responder=self._name,
            status=status,
            reason=reason,
        )
        self._task_order += 1
        task = _Task(request, ack, zone, self._task_order)
        self._remember(task)
        self._acks.publish(ack)
        now = self._ctx.now_ns()
        if zone is not None and request.deadline_time_ns and now >= request.deadline_time_ns:
            late = (now - request.deadline_time_ns) / 1e6
            self._finish(task, tasking_pb2.TASK_STATUS_EXPIRED, f"deadline passed {late:.0f} ms before the request")

    def _on_cancel(self, cancel: tasking_pb2.TaskCancel) -> None:
        if not self._active or cancel.target != self._name or not cancel.task_id:
            return
        task = self._tasks.get(cancel.task_id)
        why = f": {cancel.reason}" if cancel.reason else ""
        if task is None:
            # Unknown (perhaps the request is still on its way): answer CANCELLED and remember it,
            # so that the request, if it comes, is answered with this result and not run.
            request = tasking_pb2.TaskRequest(task_id=cancel.task_id, requester=cancel.requester, target=cancel.target)
            ack = tasking_pb2.TaskAck(
                task_id=cancel.task_id,
                requester=cancel.requester,
                responder=self._name,
                status=tasking_pb2.TASK_ACK_STATUS_ACCEPTED,
                reason="cancelled before the request arrived",
            )
            self._task_order += 1
            task = _Task(request, ack, alert_pb2.Zone(), self._task_order)
            self._remember(task)
            self._finish(task, tasking_pb2.TASK_STATUS_CANCELLED, f"cancelled before the request arrived{why}")
        elif cancel.requester != task.request.requester:
            _log.warning(
                "ignoring cancel of task %s from %r: only its requester %r may cancel it",
                cancel.task_id,
                cancel.requester,
                task.request.requester,
            )
        elif task.zone is None:
            self._acks.publish(task.ack)  # rejected: no result follows a rejection; repeat the answer
        elif task.pending:
            self._finish(task, tasking_pb2.TASK_STATUS_CANCELLED, f"cancelled before it was applied{why}")
        elif task.result is not None:
            self._results.publish(task.result)  # already ended: the result it reached

    def _run_pending(self, now: int) -> None:
        """Apply accepted zone tasks: highest precedence first, then in order of arrival."""
        pending = sorted((t for t in self._tasks.values() if t.pending), key=lambda t: (-t.request.priority, t.order))
        for task in pending:
            if task.request.deadline_time_ns and now >= task.request.deadline_time_ns:
                self._finish(task, tasking_pb2.TASK_STATUS_EXPIRED, "deadline passed before the zone was applied")
                continue
            assert task.zone is not None
            status, text = self._apply(task.zone, now)
            self._finish(task, status, text)

    def _apply(self, message: alert_pb2.Zone, now: int) -> tuple[tasking_pb2.TaskStatus.ValueType, str]:
        zid = message.zone_id
        if not message.active:
            old = self._zones.pop(zid, None)
            if old is None:
                return tasking_pb2.TASK_STATUS_FAILED, f"no zone {zid!r} to remove"
            for key in [k for k in self._episodes if k[0] == zid]:
                self._clear(key, now, f"Track {key[1]}: zone {old.label} was removed")
            retired = alert_pb2.Zone()
            retired.CopyFrom(old.message)
            retired.active = False
            self._zone_pub.publish(retired)
            return tasking_pb2.TASK_STATUS_SUCCEEDED, f"zone {old.label} removed"
        try:
            zone = zone_from_proto(message)
        except ZoneError as e:  # validated at acceptance; kept for safety
            return tasking_pb2.TASK_STATUS_FAILED, str(e)
        replaced = zid in self._zones
        self._zones[zid] = zone
        self._zone_pub.publish(zone.message)
        for track in self._tracks.values():
            self._evaluate(zone, track.message, now)
        return tasking_pb2.TASK_STATUS_SUCCEEDED, f"zone {zone.label} {'replaced' if replaced else 'added'}"

    def _finish(self, task: _Task, status: tasking_pb2.TaskStatus.ValueType, text: str) -> None:
        r = task.request
        task.result = tasking_pb2.TaskResult(
            task_id=r.task_id,
            correlation_id=r.correlation_id,
            requester=r.requester,
            responder=self._name,
            status=status,
            text=text,
        )
        self._results.publish(task.result)

    def _remember(self, task: _Task) -> None:
        self._tasks[task.request.task_id] = task
        while len(self._tasks) > MAX_REMEMBERED_TASKS:
            oldest = next((tid for tid, t in self._tasks.items() if not t.pending), None)
            if oldest is None:
                break
            del self._tasks[oldest]


def _parse_parameters(parameters: AnyMessage | None) -> tuple[alert_pb2.Zone | None, str]:
    """The zone a request carries, or None and the reason it is rejected."""
    usage = f"geofence takes a {_ZONE_TYPE} (active=true adds or replaces the zone, active=false removes it)"
    zone = alert_pb2.Zone()
    if parameters is None or not parameters.type_url:
        return None, f"parameters missing: {usage}"
    if not parameters.Is(alert_pb2.Zone.DESCRIPTOR):
        return None, f"unknown task type {parameters.type_url!r}: {usage}"
    try:
        parameters.Unpack(zone)
    except DecodeError:
        return None, f"parameters do not decode as {_ZONE_TYPE}"
    try:
        if zone.active:
            zone_from_proto(zone)
        elif not zone.zone_id:
            raise ZoneError("zone: zone_id is required")
    except ZoneError as e:
        return None, f"invalid zone: {e}"
    return zone, ""


def _data_time(track: track_pb2.FusedTrack, info: SampleInfo, now: int) -> int:
    """When a track sample is valid: its last update, else the envelope's time of validity, else now."""
    return track.last_update_time_ns or info.stamp_ns or now
