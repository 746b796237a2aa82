"""The SDK bus on the in-memory transport: typed pub/sub, header checks, counters, batching."""

from __future__ import annotations

from typing import Any

import pytest

from hardpoint import (
    BatchPolicy,
    Bus,
    ContractError,
    QosError,
    SampleInfo,
    UndeclaredInterfaceError,
    interface_spec,
)
from hardpoint._batch import item_prefix
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2, header_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.testing import InMemoryTransport, MemoryFrame
from hardpoint.track.v1 import track_pb2

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"
TRACK = "hardpoint.track.v1.SensorTrack"


def nav(platform: str = "p1", lat: float = 1.0) -> nav_pb2.NavState:
    return nav_pb2.NavState(platform_id=platform, position=geo_pb2.GeoPosition(latitude_deg=lat))


def alert(i: int) -> alert_pb2.Alert:
    return alert_pb2.Alert(alert_id=f"a{i}", text=f"alert {i}")


@pytest.fixture
def transport() -> InMemoryTransport:
    return InMemoryTransport()


def buses(t: InMemoryTransport) -> tuple[Bus, Bus]:
    pub = Bus(t, module="talker", provides=[NAV, ALERT, TRACK], requires=[])
    sub = Bus(t, module="listener", provides=[], requires=[NAV, ALERT, TRACK])
    return pub, sub


def test_event_messages_arrive_in_order_with_header(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    got: list[tuple[Any, SampleInfo]] = []
    sub_bus.subscribe(alert_pb2.Alert, lambda m, i: got.append((m, i)), with_info=True)
    pub = pub_bus.publisher(alert_pb2.Alert)
    for i in range(500):
        pub.publish(alert(i))
    pub.flush()
    assert [m.alert_id for m, _ in got] == [f"a{i}" for i in range(500)]
    assert [i.seq for _, i in got] == list(range(1, 501))
    info = got[0][1]
    assert info.source == "talker"
    assert info.interface == ALERT
    assert info.schema_id == interface_spec(alert_pb2.Alert).schema_id
    header = info.to_proto()
    assert isinstance(header, header_pb2.Header)
    assert header.sequence == 1
    assert header.source == "talker"


def test_batching_groups_a_burst_and_loses_nothing(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub = sub_bus.subscribe(alert_pb2.Alert)
    pub = pub_bus.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=50, idle_gap_s=60.0))
    for i in range(1000):
        pub.publish(alert(i))
    pub.flush()
    assert [m.alert_id for m in sub.take()] == [f"a{i}" for i in range(1000)]
    assert pub.counters.published == 1000
    # the first message goes alone (writer idle), then full batches of 50
    assert pub.counters.frames < 1000 / 10
    assert sub.counters.lost == 0
    assert sub.counters.delivered == 1000


def test_batch_tail_is_flushed_by_the_timer(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub = sub_bus.subscribe(alert_pb2.Alert)
    pub = pub_bus.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=50, max_delay_s=0.002, idle_gap_s=60.0))
    for i in range(3):
        pub.publish(alert(i))
    assert len(sub.take()) == 1  # the first went at once, two wait
    transport.advance(0.003)
    assert [m.alert_id for m in sub.take()] == ["a1", "a2"]


def test_unbatched_publisher_sends_each_message_alone(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub_bus.subscribe(alert_pb2.Alert)
    pub = pub_bus.publisher(alert_pb2.Alert, batch=None)
    for i in range(10):
        pub.publish(alert(i))
    assert pub.counters.frames == 10


def test_state_late_joiner_gets_last_value_per_key(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    pub = pub_bus.publisher(nav_pb2.NavState)
    for i in range(5):
        pub.publish(nav("p1", lat=i))
        pub.publish(nav("p2", lat=10 + i))
    sub = sub_bus.subscribe(nav_pb2.NavState)
    got = {m.platform_id: m.position.latitude_deg for m in sub.take()}
    assert got == {"p1": 4.0, "p2": 14.0}
    assert sub.counters.lost == 0


def test_state_sequences_are_per_key(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub = sub_bus.subscribe(nav_pb2.NavState, with_info=True)
    pub = pub_bus.publisher(nav_pb2.NavState)
    for _ in range(3):
        pub.publish(nav("p1"))
        pub.publish(nav("p2"))
    seqs = [(m.platform_id, i.seq, i.key) for m, i in sub.take()]
    assert seqs == [
        ("p1", 1, "p1"),
        ("p2", 1, "p2"),
        ("p1", 2, "p1"),
        ("p2", 2, "p2"),
        ("p1", 3, "p1"),
        ("p2", 3, "p2"),
    ]


def test_publishing_an_undeclared_interface_names_module_and_interface(transport: InMemoryTransport) -> None:
    bus = Bus(transport, module="nav", provides=[NAV], requires=[])
    with pytest.raises(UndeclaredInterfaceError) as info:
        bus.publisher(alert_pb2.Alert)
    assert info.value.module == "nav"
    assert info.value.interface == ALERT
    assert "'nav'" in str(info.value)
    assert ALERT in str(info.value)
    with pytest.raises(UndeclaredInterfaceError):
        bus.publish(alert(1))
    with pytest.raises(UndeclaredInterfaceError) as sub_info:
        bus.subscribe(nav_pb2.NavState)
    assert sub_info.value.direction == "requires"


def test_publish_of_wrong_type_is_a_type_error(transport: InMemoryTransport) -> None:
    pub_bus, _ = buses(transport)
    pub = pub_bus.publisher(alert_pb2.Alert)
    with pytest.raises(TypeError, match="NavState"):
        pub.publish(nav())  # type: ignore[arg-type]


def test_non_interface_type_is_refused(transport: InMemoryTransport) -> None:
    bus = Bus(transport, module="tool")
    with pytest.raises(ContractError, match=r"hardpoint\.core\.v1\.GeoPosition is not an interface"):
        bus.publisher(geo_pb2.GeoPosition)


def test_history_override_may_only_deepen(transport: InMemoryTransport) -> None:
    bus = Bus(transport, module="tool")
    depth = interface_spec(alert_pb2.Alert).history_depth
    bus.subscribe(alert_pb2.Alert, history_depth=depth * 2)
    with pytest.raises(QosError, match="below the contract"):
        bus.subscribe(alert_pb2.Alert, history_depth=depth - 1)


def test_inactive_bus_suppresses_and_counts(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub = sub_bus.subscribe(alert_pb2.Alert)
    pub = pub_bus.publisher(alert_pb2.Alert)
    pub_bus.active = False
    pub.publish(alert(1))
    assert pub.counters.suppressed == 1
    assert sub.take() == []


def test_callback_errors_are_counted_and_do_not_stop_delivery(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    seen: list[str] = []
    errors: list[tuple[str, BaseException]] = []

    def callback(m: Any) -> None:
        if m.alert_id == "a1":
            raise RuntimeError("boom")
        seen.append(m.alert_id)

    sub_bus.on_callback_error(lambda iface, e: errors.append((iface, e)))
    sub = sub_bus.subscribe(alert_pb2.Alert, callback)
    pub = pub_bus.publisher(alert_pb2.Alert, batch=None)
    for i in range(3):
        pub.publish(alert(i))
    assert seen == ["a0", "a2"]
    assert sub.counters.callback_errors == 1
    assert errors[0][0] == ALERT
    assert isinstance(errors[0][1], RuntimeError)


# -- hostile frames ------------------------------------------------------------------


def frame(spec_of: type[Any], **kw: Any) -> MemoryFrame:
    spec = interface_spec(spec_of)
    base: dict[str, Any] = {
        "key": "",
        "source": "raw",
        "epoch": 7,
        "seq": 1,
        "count": 1,
        "stamp_ns": 1,
        "interface": spec.name,
        "schema_id": spec.schema_id,
        "payload": alert(0).SerializeToString(),
    }
    base.update(kw)
    return MemoryFrame(**base)


def test_bad_frames_are_counted_by_cause_and_never_delivered(transport: InMemoryTransport) -> None:
    _, sub_bus = buses(transport)
    sub = sub_bus.subscribe(alert_pb2.Alert)
    topic = interface_spec(alert_pb2.Alert).topic
    inject = transport.inject
    inject(topic, frame(alert_pb2.Alert, seq=1))  # good
    inject(topic, frame(alert_pb2.Alert, seq=2, interface=NAV))  # wrong interface
    inject(topic, frame(alert_pb2.Alert, seq=2, schema_id="0" * 16))  # wrong schema
    inject(topic, frame(alert_pb2.Alert, seq=1))  # replayed
    inject(topic, frame(alert_pb2.Alert, seq=2, payload=b"\xff\xff\xff"))  # undecodable
    inject(topic, frame(alert_pb2.Alert, seq=5))  # good after a gap of 2 (3, 4)
    inject(topic, frame(alert_pb2.Alert, seq=6, count=0))  # malformed count
    batch = b"".join(item_prefix(len(d)) + d for d in (alert(8).SerializeToString(), alert(9).SerializeToString()))
    inject(topic, frame(alert_pb2.Alert, seq=7, count=3, payload=batch))  # count says 3, holds 2
    inject(topic, frame(alert_pb2.Alert, seq=10, count=2, payload=batch))  # good batch
    got = [m.alert_id for m in sub.take()]
    assert got == ["a0", "a0", "a8", "a9"]
    c = sub.counters
    assert (c.wrong_interface, c.schema_mismatch, c.duplicates) == (1, 1, 1)
    assert c.undecodable == 1 + 1 + 3
    # 3 and 4 were never sent; 6 came in a frame too malformed to trust its sequence
    assert c.lost == 3
    assert c.delivered == 4
    assert c.rejected == 1 + 1 + 1 + 5


def test_bus_counters_aggregate_publishers_and_subscriptions(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub_bus.subscribe(alert_pb2.Alert)
    sub_bus.subscribe(alert_pb2.Alert)
    pub_bus.publish(alert(1))
    assert pub_bus.counters()[f"pub:{ALERT}"]["published"] == 1
    assert sub_bus.counters()[f"sub:{ALERT}"]["delivered"] == 2


def test_schemas_are_announced_once_per_interface(transport: InMemoryTransport) -> None:
    pub_bus, _ = buses(transport)
    pub_bus.publisher(alert_pb2.Alert)
    pub_bus.publisher(nav_pb2.NavState)
    names = sorted(r.interface for r in transport.schemas())
    assert names == [ALERT, NAV]
    record = next(r for r in transport.schemas() if r.interface == NAV)
    assert record.topic == "hp/nav/v1/state"
    assert record.qos == "STATE"


def test_queue_get_waits_and_times_out(transport: InMemoryTransport) -> None:
    pub_bus, sub_bus = buses(transport)
    sub = sub_bus.subscribe(track_pb2.SensorTrack)
    assert sub.get(timeout=0.01) is None
    pub_bus.publish(track_pb2.SensorTrack(sensor_id="radar", track_id="t3"))
    pub_bus.flush()
    msg = sub.get(timeout=1)
    assert msg is not None
    assert msg.track_id == "t3"


def test_uses_allows_optional_inputs_and_star_allows_all(transport: InMemoryTransport) -> None:
    bus = Bus(transport, module="geofence", provides=[], requires=[NAV], uses=[ALERT])
    bus.subscribe(alert_pb2.Alert)
    with pytest.raises(UndeclaredInterfaceError):
        bus.subscribe(track_pb2.SensorTrack)
    recorder = Bus(transport, module="recorder", provides=[], requires=[], uses=["*"])
    recorder.subscribe(track_pb2.SensorTrack)


def test_closed_subscription_leaves_the_bus(transport: InMemoryTransport) -> None:
    _, sub_bus = buses(transport)
    sub = sub_bus.subscribe(alert_pb2.Alert)
    assert sub in sub_bus.subscriptions
    sub.close()
    assert sub not in sub_bus.subscriptions


def test_replies_published_in_a_callback_are_written_when_the_delivery_returns() -> None:
    """SDK-BUS-003: a reply never waits for the batch timer (request/response latency)."""
    transport = InMemoryTransport()
    asker, answerer = Bus(transport, module="asker"), Bus(transport, module="answerer")
    acks = asker.subscribe(alert_pb2.AlertAck)
    ack_pub = answerer.publisher(alert_pb2.AlertAck, batch=BatchPolicy(max_delay_s=0.002, idle_gap_s=60.0))
    answerer.subscribe(alert_pb2.Alert, lambda m: ack_pub.publish(alert_pb2.AlertAck(alert_id=m.alert_id)))
    pub = asker.publisher(alert_pb2.Alert, batch=None)
    pub.publish(alert_pb2.Alert(alert_id="a1"))
    pub.publish(alert_pb2.Alert(alert_id="a2"))
    assert [a.alert_id for a in acks.take()] == ["a1", "a2"]  # the clock never moved: no timer ran
    assert ack_pub.counters.frames == 2
