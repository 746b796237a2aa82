"""What a batching publisher writes, byte for byte: the batch wire format, written in one copy.

The publisher hands a batch to the transport as parts (``FrameWriter.write_parts``:
each message after its item prefix); the Cyclone writer joins them straight into the
envelope. These tests pin the frames down against the format receivers of every
version decode (``hardpoint.core.v1.Batch``: tag and varint length before each message).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hardpoint import BatchPolicy, Bus, Channel, CycloneTransport, QosClass, TransportError
from hardpoint._batch import item_prefix
from hardpoint._dds import _bytes
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint_runtime.conformance._harness import free_domain_id, release_domain_id

ALERT = "hardpoint.alert.v1.Alert"
WAIT_S = 10.0


def alert(i: int, text_len: int) -> alert_pb2.Alert:
    return alert_pb2.Alert(alert_id=f"a{i}", text="x" * text_len)


#: Text lengths whose messages take 1-byte and 2-byte varint lengths, changing from one message to the next.
LENGTHS = (10, 10, 300, 10, 5000, 5000, 120, 130)


def test_batch_frame_holds_each_message_after_its_item_prefix() -> None:
    transport = InMemoryTransport()
    bus = Bus(transport, module="talker")
    pub = bus.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=1000, idle_gap_s=60.0))
    # Written at once (the writer was idle), then batched.
    pub.publish(alert(0, 1), time_of_validity_ns=5)
    messages = [alert(i + 1, n) for i, n in enumerate(LENGTHS)]
    pub.publish(messages[0], time_of_validity_ns=1234)
    for m in messages[1:]:
        pub.publish(m)
    pub.flush()
    frames = transport.written[interface_topic(bus)]
    assert [(f.seq, f.count) for f in frames] == [(1, 1), (2, len(messages))]
    data = [m.SerializeToString() for m in messages]
    assert frames[1].payload == b"".join(item_prefix(len(d)) + d for d in data)
    assert frames[1].stamp_ns == 1234  # a frame carries its first message's time of validity
    assert frames[0].payload == alert(0, 1).SerializeToString()
    assert pub.counters.published == 1 + len(messages)
    assert pub.counters.frames == 2


def test_a_flushed_batch_of_one_is_the_message_alone() -> None:
    transport = InMemoryTransport()
    bus = Bus(transport, module="talker")
    pub = bus.publisher(alert_pb2.Alert, batch=BatchPolicy(idle_gap_s=60.0))
    pub.publish(alert(0, 3))  # idle: alone
    pub.publish(alert(1, 300))  # batched
    pub.flush()
    pub.flush()  # nothing more
    frames = transport.written[interface_topic(bus)]
    assert [(f.seq, f.count, f.payload) for f in frames] == [
        (1, 1, alert(0, 3).SerializeToString()),
        (2, 1, alert(1, 300).SerializeToString()),
    ]


def test_batches_split_at_max_messages_and_max_bytes() -> None:
    transport = InMemoryTransport()
    bus = Bus(transport, module="talker")
    received: list[alert_pb2.Alert] = []
    Bus(transport, module="listener").subscribe(alert_pb2.Alert, received.append)
    pub = bus.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=3, max_bytes=2000, idle_gap_s=60.0))
    sent = [alert(i, n) for i, n in enumerate((1, 1, 1, 1, 1, 1500, 600, 1, 1))]
    for m in sent:
        pub.publish(m)
    pub.flush()
    counts = [f.count for f in transport.written[interface_topic(bus)]]
    # alone (idle); 3 (max_messages); 1500 + 1 + 600 B reach max_bytes after 3 anyway; then 2 flushed
    assert counts == [1, 3, 3, 2]
    assert received == sent


def interface_topic(bus: Bus) -> str:
    (pub,) = bus._publishers.values()
    return pub.spec.topic


# -- the Cyclone writer: one copy into the envelope ---------------------------------------


def test_encode_parts_is_encode_of_the_joined_parts() -> None:
    enc = _bytes.EnvelopeEncoder(source="talker", epoch=7, interface=ALERT, schema_id="sha256:00")
    for parts in ([b"\n\x01", b"a"], [b"\n\x03", b"abc", b"\n\x02", b"de"], [b"x" * 70000, b"", b"yz"]):
        size = sum(map(len, parts))
        assert enc.encode_parts("k", 9, 3, 11, parts, size=size) == enc.encode("k", 9, 3, 11, b"".join(parts))


def test_encode_parts_refuses_a_wrong_size() -> None:
    enc = _bytes.EnvelopeEncoder(source="talker", epoch=7, interface=ALERT, schema_id="sha256:00")
    with pytest.raises(ValueError, match="3 bytes, not 4"):
        enc.encode_parts("", 1, 2, 0, [b"\n\x01", b"a"], size=4)


@pytest.fixture(scope="module")
def transport() -> Iterator[CycloneTransport]:
    """A transport on a domain id no other test on this machine holds (the shared lock folder)."""
    domain_id = free_domain_id()
    try:
        t = CycloneTransport(domain_id=domain_id)
        try:
            yield t
        finally:
            t.close()
    finally:
        release_domain_id(domain_id)


def test_write_parts_with_a_wrong_size_is_a_transport_error_naming_the_topic(transport: CycloneTransport) -> None:
    channel = Channel(
        topic="hp/test/batch_frames/bad_size",
        qos=QosClass.STREAM,
        keyed=False,
        history_depth=1,
        interface=ALERT,
        schema_id="sha256:00",
        source="talker",
    )
    writer = transport.open_writer(channel)
    try:
        with pytest.raises(TransportError, match=r"hp/test/batch_frames/bad_size.*3 bytes, not 5"):
            writer.write_parts("", 1, 2, 0, [b"\n\x01", b"a"], size=5)
    finally:
        writer.close()


def test_batches_of_mixed_sizes_cross_cyclone_intact(transport: CycloneTransport) -> None:
    """Batches written in one copy decode, on a real DDS reader, into the messages and sequence numbers sent."""
    talker = Bus(transport, module="talker")
    listener = Bus(transport, module="listener")
    received = listener.subscribe(alert_pb2.Alert, queue_depth=10_000)
    pub = talker.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=64, idle_gap_s=60.0))
    deadline = time.monotonic() + WAIT_S
    while received.get(timeout=0.05) is None:  # discovery
        assert time.monotonic() < deadline, "the reader never matched the writer"
        pub.publish(alert(-1, 0))
        pub.flush()
    pub.flush()
    time.sleep(0.2)
    received.take()
    sent = [alert(i, LENGTHS[i % len(LENGTHS)]) for i in range(500)]
    for m in sent:
        pub.publish(m)
    pub.flush()
    got: list[alert_pb2.Alert] = []
    while len(got) < len(sent) and time.monotonic() < deadline:
        m = received.get(timeout=0.1)
        if m is not None and m.alert_id != "a-1":
            got.append(m)
    assert got == sent
    counters = listener.counters()[f"sub:{ALERT}"]
    assert counters["lost"] == 0
    assert counters["undecodable"] == 0
    talker.close()
    listener.close()
