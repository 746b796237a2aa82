"""The protobuf messages every contender of ``bench/pubsub.py`` carries.

Each message is built once per size and serialized to *exactly* that many bytes
(80, 1024 or 65536) by padding one free-text field, so every contender moves
the same bytes:

* events (SDK event, raw cyclonedds-python): ``hardpoint.alert.v1.Alert``,
  padded ``text``; the pong of the round trip is an ``AlertAck`` of the same
  size (padded ``comment``);
* state (SDK state): ``hardpoint.core.v1.ModuleHealth``, padded ``reason``,
  :data:`STATE_KEYS` distinct keys (``module``) in turn;
* streams (SDK stream, zenoh): ``hardpoint.track.v1.SensorTrack``, padded
  ``platform_id``.

Every message type has a *marker* field (an integer). Data messages carry a
fixed value in it; the probes a sender emits before the measurement carry their
index, so the receiver learns from the first message it gets how many probes
were sent before it matched (see ``bench/pubsub.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2, health_pb2
from hardpoint.track.v1 import track_pb2

#: Distinct instance keys the state sender cycles through.
STATE_KEYS = 8
#: Marker value of every data message (a realistic nanosecond time stamp); probes carry 1, 2, 3, ...
DATA_MARK = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class Payload:
    """What one contender sends at one size."""

    type: type[Message]
    #: Data messages, sent in turn (one for event and stream, one per key for state).
    messages: tuple[Message, ...]
    #: Integer field carrying :data:`DATA_MARK` or the probe index.
    marker: str

    def probe(self, index: int) -> Message:
        msg = self.type()
        msg.CopyFrom(self.messages[0])
        setattr(msg, self.marker, index)
        return msg


def _pad(msg: Message, field: str, size: int) -> Message:
    """Set ``field`` (a string) so that ``msg`` serializes to exactly ``size`` bytes."""
    setattr(msg, field, "")
    base = msg.ByteSize()
    n = max(0, size - base - 2)
    for _ in range(8):  # the length prefix grows by a byte at 128 and 16384 bytes
        setattr(msg, field, "x" * n)
        diff = size - msg.ByteSize()
        if diff == 0:
            return msg
        n += diff
        if n < 0:
            break
    raise ValueError(f"cannot pad {type(msg).__name__}.{field} to {size} bytes")


def _alert(size: int) -> alert_pb2.Alert:
    msg = alert_pb2.Alert(
        alert_id="bench/1",
        state=alert_pb2.ALERT_STATE_RAISED,
        severity=alert_pb2.ALERT_SEVERITY_CAUTION,
        category=alert_pb2.ALERT_CATEGORY_THREAT,
        track_id="T-17",
        raised_time_ns=DATA_MARK,
    )
    return _pad(msg, "text", size)  # type: ignore[return-value]


def _ack(size: int) -> alert_pb2.AlertAck:
    msg = alert_pb2.AlertAck(alert_id="bench/1", acknowledged_by="bench", acknowledged_time_ns=DATA_MARK)
    return _pad(msg, "comment", size)  # type: ignore[return-value]


def _health(size: int, key: int) -> health_pb2.ModuleHealth:
    msg = health_pb2.ModuleHealth(
        module=f"module-{key}",
        lifecycle_state=health_pb2.LIFECYCLE_STATE_ACTIVE,
        status=health_pb2.HEALTH_STATUS_OK,
        uptime_ms=DATA_MARK,
    )
    return _pad(msg, "reason", size)  # type: ignore[return-value]


def _track(size: int) -> track_pb2.SensorTrack:
    msg = track_pb2.SensorTrack(
        sensor_id="radar-1",
        track_id="T-17",
        measurement_time_ns=DATA_MARK,
        lifecycle=track_pb2.TRACK_LIFECYCLE_UPDATED,
        relative_position=geo_pb2.PositionNed(north_m=1200.5, east_m=-300.25, down_m=-10.0),
    )
    return _pad(msg, "platform_id", size)  # type: ignore[return-value]


def event(size: int) -> Payload:
    return Payload(alert_pb2.Alert, (_alert(size),), "raised_time_ns")


def pong(size: int) -> Message:
    return _ack(size)


def state(size: int) -> Payload:
    return Payload(health_pb2.ModuleHealth, tuple(_health(size, k) for k in range(STATE_KEYS)), "uptime_ms")


def stream(size: int) -> Payload:
    return Payload(track_pb2.SensorTrack, (_track(size),), "measurement_time_ns")


def check_sizes(sizes: list[int]) -> dict[str, Any]:
    """Serialized sizes of every message (all equal to the requested size)."""
    out: dict[str, Any] = {}
    for size in sizes:
        for name, payload in (("event", event(size)), ("state", state(size)), ("stream", stream(size))):
            for m in payload.messages:
                assert m.ByteSize() == size, (name, size, m.ByteSize())
        assert pong(size).ByteSize() == size
        out[str(size)] = size
    return out
