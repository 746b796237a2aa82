"""What the daemon refuses from the bus and how it says so (RT-BUS-ID-002, -003, -005), without sockets.

The topic monitor runs on the in-memory transport, whose ``peer()`` is another
participant with writers of its own: a real module and an impersonator.
"""

from __future__ import annotations

from typing import Any

from hardpoint import Bus, Channel, Roster, interface_spec
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint_runtime._daemon import MAX_COUNTER, Daemon, _Module
from hardpoint_runtime._intrusion import EVENT_INTERVAL_S, IntrusionLog
from hardpoint_runtime._topics import SCAN_PERIOD_S, TopicMonitor

SPEC = interface_spec(alert_pb2.Alert)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_events_name_the_writer_first_time_then_at_most_every_interval() -> None:
    events: list[dict[str, str]] = []
    clock = Clock()
    log = IntrusionLog(events.append, clock)
    for _ in range(500):  # a flood
        log.note(SPEC.name, "impersonation", "a" * 32, "b" * 32, "geofence", "c" * 32)
    assert len(events) == 1
    assert events[0]["writer"] == "a" * 32
    assert events[0]["count"] == "1"
    clock.now += EVENT_INTERVAL_S
    log.note(SPEC.name, "impersonation", "a" * 32, "b" * 32, "geofence", "c" * 32)
    assert len(events) == 2
    assert events[1]["count"] == "500"
    assert events[1]["total"] == "501"
    log.note(SPEC.name, "duplicates", "d" * 32, "e" * 32, "radar", "")  # another writer: its own first event
    assert len(events) == 3
    (top, other) = log.snapshot()
    assert top.writer == "a" * 32
    assert top.count == 501
    assert other.kind == "duplicates"
    assert log.totals(SPEC.name) == {"impersonation": 501, "duplicates": 1}


def _writer(transport: Any, source: str) -> Any:
    return transport.open_writer(
        Channel(
            topic=SPEC.topic, qos=SPEC.qos, keyed=False, history_depth=SPEC.history_depth,
            interface=SPEC.name, schema_id=SPEC.schema_id, source=source, epoch=1,
        )
    )  # fmt: skip


def test_topic_monitor_refuses_impersonators_and_replays_and_names_them() -> None:
    """RT-BUS-ID-005: publishers and rates come from admitted frames; refusals by kind, with the writer's GUID."""
    t = InMemoryTransport()
    events: list[dict[str, str]] = []
    daemon_bus = Bus(t, module="hardpointd.main")
    monitor = TopicMonitor(t, IntrusionLog(events.append), daemon_bus)
    real_module = t.peer()
    Bus(real_module, module="geofence", provides=[SPEC.name]).publisher(alert_pb2.Alert)  # announces the topic
    t.advance(SCAN_PERIOD_S)
    real = _writer(real_module, "geofence")
    hostile = t.peer()
    forger = _writer(hostile, "geofence")
    payload = alert_pb2.Alert(alert_id="a").SerializeToString()
    real.write("", 1, 1, 0, payload)
    forger.write("", 5, 1, 0, payload)  # impersonation
    real.write("", 2, 1, 0, payload)
    real.write("", 2, 1, 0, payload)  # a duplicate from the real writer itself
    stranger = _writer(hostile, "ghost")  # its own name: admitted, then replays itself
    stranger.write("", 9, 1, 0, payload)
    stranger.write("", 3, 1, 0, payload)
    (info,) = monitor.snapshot()
    assert info.publishers == ("geofence", "ghost")
    assert info.refused == {"impersonation": 1, "duplicates": 2}
    by_kind = {(i.kind, i.claimed_source): i for i in info.intrusions}
    imp = by_kind["impersonation", "geofence"]
    assert imp.participant == hostile.participant
    assert len(imp.writer) == 32
    assert imp.holder != imp.writer
    assert {e["kind"] for e in events} == {"impersonation", "duplicates"}
    # With the daemon's roster naming geofence's participant, a stranger is refused even when first.
    daemon_bus.set_roster(Roster({"geofence": [real_module.participant]}))
    late = _writer(t.peer(), "geofence")
    late.write("", 1, 1, 0, payload)
    (info,) = monitor.snapshot()
    assert info.refused["impersonation"] == 2


def _daemon_with(m: _Module) -> Any:
    daemon = Daemon.__new__(Daemon)  # only what _plausible uses: the intrusion log
    daemon.intrusions = IntrusionLog(lambda detail: None)
    daemon.modules = {m.name: m}
    return daemon


def test_counters_must_be_bounded_and_monotonic_per_worker() -> None:
    """RT-BUS-ID-002: a worker's counters never go down and never reach 2**53; a new worker starts afresh."""
    m = _Module("nav", "main", True)
    d = _daemon_with(m)
    assert Daemon._plausible(d, m, "p1", {"sub:x.delivered": 10})
    m.counters, m.counters_from = {"sub:x.delivered": 10}, "p1"
    assert not Daemon._plausible(d, m, "p1", {"sub:x.delivered": 9})
    assert not Daemon._plausible(d, m, "p1", {"sub:x.delivered": MAX_COUNTER})
    assert not Daemon._plausible(d, m, "p1", {"sub:x.delivered": -1})
    assert Daemon._plausible(d, m, "p2", {"sub:x.delivered": 0})  # a restarted worker counts from zero
    (record,) = d.intrusions.snapshot()
    assert record.kind == "implausible"
    assert record.count == 3
