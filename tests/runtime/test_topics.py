"""The daemon's topic monitor (``hardpoint topics``) with forged schema announcements and hostile frames.

The monitor runs on the in-memory transport, whose ``announce_schema`` keeps any
record as it is: what a transport that did not check would hand over. Its timer
callbacks run inside ``advance``, so anything raised out of a scan fails the test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hardpoint import Bus, Channel, Frame, FrameReader, SchemaRecord, TransportError, all_interfaces
from hardpoint.alert.v1 import alert_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.testing import InMemoryTransport, MemoryFrame
from hardpoint_runtime._topics import MAX_PUBLISHERS, MAX_SOURCE_CHARS, SCAN_PERIOD_S, TopicMonitor, _TopicStats

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"


def genuine(interface: str) -> SchemaRecord:
    """The record the SDK announces for ``interface``."""
    t = InMemoryTransport()
    Bus(t, module="probe", provides=[interface]).publisher(all_interfaces()[interface].message_type)
    (record,) = t.schemas()
    return record


def forged() -> list[SchemaRecord]:
    """What broke the scan before: an unknown QoS name, an empty topic; and the announcements' own topic."""
    alert = genuine(ALERT)
    return [
        dataclasses.replace(alert, schema_id="00000000000000b1", qos="BOGUS"),
        dataclasses.replace(alert, schema_id="00000000000000b2", topic=""),
        dataclasses.replace(alert, schema_id="00000000000000b3", topic="hp/schemas"),
        dataclasses.replace(genuine(NAV), schema_id="00000000000000b4", descriptor_set=b"\xff garbage"),
    ]


def topics(monitor: TopicMonitor) -> list[str]:
    return [t.topic for t in monitor.snapshot()]


def test_a_forged_record_does_not_stop_the_scan_from_finding_a_real_topic() -> None:
    """SDK-SCHEMA-RX-008: each record is checked before use; a bad one is counted and logged once, the scan goes on."""
    t = InMemoryTransport()
    monitor = TopicMonitor(t)
    first, *rest = forged()
    t.announce_schema(first)
    t.advance(0.0)  # the first scan: only the forged record
    assert topics(monitor) == []
    assert monitor.refused() == {"bad_qos": 1}
    for record in rest:  # announced before the real topic: the same scan meets them first
        t.announce_schema(record)
    nav = Bus(t, module="nav", provides=[NAV])
    publisher = nav.publisher(nav_pb2.NavState)  # announces the genuine record after the forged ones
    t.advance(SCAN_PERIOD_S)
    assert topics(monitor) == ["hp/nav/v1/state"]
    assert monitor.refused() == {"bad_qos": 1, "bad_topic": 2, "bad_descriptor": 1}
    publisher.publish(nav_pb2.NavState(platform_id="p1"))
    assert monitor.snapshot()[0].publishers == ("nav",)
    t.advance(5 * SCAN_PERIOD_S)  # later scans: every record was looked at once
    assert monitor.refused() == {"bad_qos": 1, "bad_topic": 2, "bad_descriptor": 1}
    monitor.close()


class UnopenableTopic(InMemoryTransport):
    """A transport on which one topic cannot be read (as when a topic is open with another type)."""

    def open_reader(self, channel: Channel, deliver: Callable[[Sequence[Frame]], None]) -> FrameReader:
        if channel.topic == "hp/alert/v1/alert":
            raise TransportError(f"cannot create topic {channel.topic}")
        return super().open_reader(channel, deliver)


def test_a_topic_that_cannot_be_read_is_counted_and_the_scan_goes_on() -> None:
    """SDK-SCHEMA-RX-008: a valid record whose topic cannot be opened is counted as ``unusable``."""
    t = UnopenableTopic()
    monitor = TopicMonitor(t)
    t.announce_schema(genuine(ALERT))
    t.announce_schema(genuine(NAV))
    t.advance(0.0)
    t.advance(3 * SCAN_PERIOD_S)
    assert topics(monitor) == ["hp/nav/v1/state"]
    assert monitor.refused() == {"unusable": 1}
    monitor.close()


class BrokenSchemas(InMemoryTransport):
    def schemas(self) -> list[SchemaRecord]:
        raise TransportError("the transport is gone")


def test_nothing_raises_out_of_the_scan_timer() -> None:
    """SDK-SCHEMA-RX-008: a failing transport is logged; the timer callback returns."""
    t = BrokenSchemas()
    monitor = TopicMonitor(t)
    t.advance(3 * SCAN_PERIOD_S)
    assert monitor.snapshot() == []
    monitor.close()


def frame(**changes: Any) -> MemoryFrame:
    base = MemoryFrame("", "talker", 1, 1, 1, 0, NAV, "0123456789abcdef", b"")
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("frames", "messages", "publishers"),
    [
        ([None, object(), 42, "frame"], 0, 0),
        # Refused frames name no publisher (RT-BUS-ID-005): only admitted frames' sources are listed.
        ([frame(count=-1), frame(count=2**63), frame(count="3"), frame(count=None), frame(count=0)], 0, 0),
        ([frame(source=b"bytes"), frame(source=None), frame(source="")], 3, 0),
        ([frame(source="x" * 100_000)], 1, 1),
    ],
    ids=["not-frames", "bad-counts", "bad-sources", "huge-source"],
)
def test_frame_content_never_makes_the_callback_raise(frames: list[Any], messages: int, publishers: int) -> None:
    """SDK-SCHEMA-RX-008: anyone can write on a topic; counting never fails and counts no impossible message."""
    stats = _TopicStats("hp/nav/v1/state", NAV, "STATE", 10.0)
    stats.on_frames(frames)
    assert sum(c for _, c in stats.arrivals) == messages
    assert all(isinstance(p, str) and 0 < len(p) <= MAX_SOURCE_CHARS for p in stats.publishers)
    assert len(stats.publishers) == publishers


def test_publishers_are_bounded_and_the_latest_are_kept() -> None:
    """SDK-SCHEMA-RX-008: a writer inventing sources cannot grow the list without bound or hide a live publisher."""
    stats = _TopicStats("hp/nav/v1/state", NAV, "STATE", 10.0)
    for i in range(10 * MAX_PUBLISHERS):
        stats.on_frames([frame(source=f"fake-{i}"), frame(source="nav", count=2)])
    assert len(stats.publishers) == MAX_PUBLISHERS
    assert "nav" in stats.publishers
    assert sum(c for _, c in stats.arrivals) == 2 * 10 * MAX_PUBLISHERS + 10 * MAX_PUBLISHERS


def test_the_monitor_reads_alert_frames_of_a_real_module() -> None:
    """The unchanged path: a genuine announcement leads to a reader, and its frames name the publisher."""
    t = InMemoryTransport()
    monitor = TopicMonitor(t)
    bus = Bus(t, module="geofence", provides=[ALERT])
    bus.publisher(alert_pb2.Alert)
    t.advance(0.0)
    bus.publish(alert_pb2.Alert(alert_id="a1"))
    t.advance(0.01)
    (info,) = monitor.snapshot()
    assert (info.topic, info.interface, info.qos, info.publishers) == (
        "hp/alert/v1/alert",
        ALERT,
        "EVENT",
        ("geofence",),
    )
    assert monitor.refused() == {}
    monitor.close()
