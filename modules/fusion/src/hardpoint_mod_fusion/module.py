"""The fusion module: the tracker core on the bus.

It subscribes to ``hardpoint.track.v1.SensorTrack`` and publishes
``hardpoint.track.v1.FusedTrack`` (IF-TRACK-FUSED). Everything it does runs on
the bus's dispatch thread (subscription callback and one work timer), so it
needs no locks:

- **receive**: each geo-referenced sensor track sample (lifecycle NEW, UPDATED
  or unspecified) becomes a :class:`~hardpoint_mod_fusion.tracker.Measurement`
  in a per-sensor buffer. COASTING and DROPPED samples are not measurements
  (a coasting sample is the sensor's own prediction) and are only counted;
  samples without a geo position, and samples stamped further in the future
  than ``max_future_s``, are refused and counted.
- **work timer** (every ``process_period_s``): a sensor's buffer goes to
  :meth:`Tracker.process <hardpoint_mod_fusion.tracker.Tracker.process>` once
  the sensor has been quiet for ``scan_settle_s`` (so a scan that arrived as two
  bus samples stays one scan) or ``max_hold_s`` after its first sample. Then
  the module publishes: DROPPED for each track the tracker dropped (once; then
  the track is forgotten), NEW at once for each confirmed track, the current
  state at once for a reclassified track, and every live track when its last
  publication is ``1 / publish_rate_hz`` old: UPDATED if a measurement was fused
  since its last publication, else COASTING.
- **time**: the tracker runs on measurement time. The module's "now" for
  deletion is the newest measurement time plus the bus-clock time elapsed since
  it arrived, so that a replayed recording is fused exactly like the live run.
- **health**: degraded while no sensor track has arrived for
  ``input_timeout_s``; ok again on the next one.

On deactivation every published track is published DROPPED and the picture is
cleared; on re-activation track ids continue with a new prefix.
"""

from __future__ import annotations

from typing import Final

from hardpoint import Manifest, ModuleContext, Publisher, Subscription, hookimpl
from hardpoint.core.v1 import geo_pb2
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_fusion.config import FusionConfig
from hardpoint_mod_fusion.tracker import Measurement, Tracker, TrackState

__all__ = ["FusionModule"]

SENSOR_TRACK: Final = "hardpoint.track.v1.SensorTrack"
FUSED_TRACK: Final = "hardpoint.track.v1.FusedTrack"

_NOT_MEASUREMENTS: Final = frozenset({track_pb2.TRACK_LIFECYCLE_COASTING, track_pb2.TRACK_LIFECYCLE_DROPPED})
_NO_INPUT: Final = "no sensor tracks received for more than {:g} s"


class FusionModule:
    """Multi-sensor track fusion: ``SensorTrack`` in, ``FusedTrack`` out. See the module docstring."""

    manifest = Manifest(
        name="fusion",
        version="0.1.0",
        supplier="hardpoint reference modules",
        provides=(FUSED_TRACK,),
        requires=(SENSOR_TRACK,),
        description="Fuses sensor tracks into one picture: Kalman filter per track, chi-square gating, GNN, M-of-N",
    )

    def __init__(self) -> None:
        self.config = FusionConfig()
        #: The tracker core while the module is active, else ``None``.
        self.tracker: Tracker | None = None
        #: Sensor track samples received but not used, by reason.
        self.refused: dict[str, int] = {"not_measurement": 0, "no_position": 0, "future": 0, "inactive": 0}
        self._ctx: ModuleContext | None = None
        self._pub: Publisher[track_pb2.FusedTrack] | None = None
        self._sub: Subscription[track_pb2.SensorTrack] | None = None
        self._reset()

    def _reset(self) -> None:
        self._buffers: dict[str, list[Measurement]] = {}
        self._first_arrival: dict[str, int] = {}
        self._last_arrival: dict[str, int] = {}
        #: track id -> (bus time of its last publication, update_count then)
        self._published: dict[str, tuple[int, int]] = {}
        self._newest_ns: int | None = None
        self._offset_ns = 0
        self._last_input_ns = 0
        self._degraded = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.config = FusionConfig.load(ctx.config)
        self._ctx = ctx
        self._pub = ctx.bus.publisher(track_pb2.FusedTrack)
        if self._sub is None:  # the bus keeps it across cleanup and configure; it ignores input while inactive
            self._sub = ctx.bus.subscribe(track_pb2.SensorTrack, self._on_sensor_track)
        ctx.every(self.config.process_period_s, self._tick)  # timers end with cleanup: made anew

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> None:
        prefix = self.config.track_id_prefix
        if prefix is None:
            prefix = f"F{_base36(ctx.now_ns() // 1_000_000)}-"
        self._reset()
        self._last_input_ns = ctx.now_ns()
        self.tracker = Tracker(self.config, id_prefix=prefix)

    @hookimpl
    def on_deactivate(self, ctx: ModuleContext) -> None:
        if self.tracker is not None:
            for state in self.tracker.tracks():
                if state.track_id in self._published:
                    self._publish(state, track_pb2.TRACK_LIFECYCLE_DROPPED, self._data_now(ctx.now_ns()))
            s = self.tracker.stats
            ctx.log.info("fusion stopped: %s; refused samples %s", s, self.refused)
        if self._degraded:
            ctx.set_health("ok")  # the judgement was about input while active
        self.tracker = None
        self._reset()

    @hookimpl
    def on_cleanup(self, ctx: ModuleContext) -> None:
        self.tracker = None
        self._reset()

    # -- input ----------------------------------------------------------------------------------------------

    def _on_sensor_track(self, msg: track_pb2.SensorTrack) -> None:
        ctx = self._ctx
        if self.tracker is None or ctx is None:
            self.refused["inactive"] += 1
            return
        now = ctx.now_ns()
        self._last_input_ns = now
        if msg.lifecycle in _NOT_MEASUREMENTS:
            self.refused["not_measurement"] += 1
            return
        if not msg.HasField("position"):
            self.refused["no_position"] += 1
            return
        t = msg.measurement_time_ns
        if t > now + int(self.config.max_future_s * 1e9):
            self.refused["future"] += 1
            return
        pos = msg.position
        cov = tuple(msg.covariance.upper_triangle)
        m = Measurement(
            sensor_id=msg.sensor_id,
            track_id=msg.track_id,
            time_ns=t,
            latitude_deg=pos.latitude_deg,
            longitude_deg=pos.longitude_deg,
            height_m=pos.height_hae_m,
            covariance=cov or None,
            classification=int(msg.classification),
            classification_confidence=msg.classification_confidence,
            identity=int(msg.identity),
        )
        buf = self._buffers.setdefault(msg.sensor_id, [])
        if not buf:
            self._first_arrival[msg.sensor_id] = now
        buf.append(m)
        self._last_arrival[msg.sensor_id] = now
        if self._newest_ns is None or t > self._newest_ns:
            self._newest_ns = t
            self._offset_ns = now - t

    def _data_now(self, bus_now: int) -> int | None:
        """Measurement time now: the newest measurement time plus the bus time since it arrived."""
        return None if self._newest_ns is None else bus_now - self._offset_ns

    # -- work -----------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        ctx, tracker = self._ctx, self.tracker
        if ctx is None or tracker is None:
            return
        now = ctx.now_ns()
        batch = self._settled(now)
        data_now = self._data_now(now)
        if data_now is not None:
            events = tracker.process(batch, data_now)
            for dropped in events.dropped:
                if dropped.state.track_id in self._published:
                    self._publish(dropped.state, track_pb2.TRACK_LIFECYCLE_DROPPED, data_now)
                    ctx.log.debug("track %s dropped: %s", dropped.state.track_id, dropped.reason)
            for track_id in events.reclassified:
                state = tracker.track(track_id)
                if state is not None and track_id in self._published:
                    self._publish(state)
            # New tracks at once; the others when their last publication is one period old (within half a tick).
            due = int(1e9 / self.config.publish_rate_hz - self.config.process_period_s * 0.5e9)
            for state in tracker.tracks():
                last = self._published.get(state.track_id)
                if last is None:
                    self._publish(state, track_pb2.TRACK_LIFECYCLE_NEW)
                elif now - last[0] >= due:
                    self._publish(state)
        self._watch_input(ctx, now)

    def _settled(self, now: int) -> list[Measurement]:
        """Take the buffered measurements of every sensor that is quiet or has waited long enough."""
        settle, hold = int(self.config.scan_settle_s * 1e9), int(self.config.max_hold_s * 1e9)
        batch: list[Measurement] = []
        for sensor, buf in self._buffers.items():
            if buf and (now - self._last_arrival[sensor] >= settle or now - self._first_arrival[sensor] >= hold):
                batch.extend(buf)
                buf.clear()
        return batch

    def _publish(
        self,
        state: TrackState,
        lifecycle: track_pb2.TrackLifecycle.ValueType | None = None,
        stamp_ns: int | None = None,
    ) -> None:
        """Publish ``state``; lifecycle by default UPDATED if fused since the last publication, else COASTING."""
        assert self._pub is not None
        assert self._ctx is not None
        last = self._published.get(state.track_id)
        if lifecycle is None:
            updated = last is None or state.update_count > last[1]
            lifecycle = track_pb2.TRACK_LIFECYCLE_UPDATED if updated else track_pb2.TRACK_LIFECYCLE_COASTING
        self._pub.publish(
            fused_track_message(state, lifecycle),
            time_of_validity_ns=stamp_ns if stamp_ns is not None else state.last_update_ns,
        )
        if lifecycle == track_pb2.TRACK_LIFECYCLE_DROPPED:
            self._published.pop(state.track_id, None)
        else:
            self._published[state.track_id] = (self._ctx.now_ns(), state.update_count)

    def _watch_input(self, ctx: ModuleContext, now: int) -> None:
        silent = now - self._last_input_ns > self.config.input_timeout_s * 1e9
        if silent and not self._degraded:
            self._degraded = True
            ctx.set_health("degraded", _NO_INPUT.format(self.config.input_timeout_s))
        elif not silent and self._degraded:
            self._degraded = False
            ctx.set_health("ok")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


def fused_track_message(state: TrackState, lifecycle: track_pb2.TrackLifecycle.ValueType) -> track_pb2.FusedTrack:
    """The ``FusedTrack`` message of a tracker snapshot."""
    return track_pb2.FusedTrack(
        track_id=state.track_id,
        lifecycle=lifecycle,
        position=geo_pb2.GeoPosition(
            latitude_deg=state.latitude_deg, longitude_deg=state.longitude_deg, height_hae_m=state.height_m
        ),
        velocity=geo_pb2.VelocityNed(north_mps=state.velocity_north_mps, east_mps=state.velocity_east_mps),
        covariance=geo_pb2.Covariance(upper_triangle=state.covariance),
        classification=track_pb2.Classification.ValueType(state.classification),
        classification_confidence=state.classification_confidence,
        identity=track_pb2.StandardIdentity.ValueType(state.identity),
        confidence=state.confidence,
        sources=[
            track_pb2.TrackSource(
                sensor_id=s.sensor_id, track_id=s.track_id, last_measurement_time_ns=s.last_measurement_time_ns
            )
            for s in state.sources
        ],
        first_update_time_ns=state.first_update_ns,
        last_update_time_ns=state.last_update_ns,
        update_count=state.update_count,
    )
