"""CycloneTransport on real Cyclone DDS (loopback, one process): delivery per QoS class, timers, close, schemas."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest

from hardpoint import (
    Bus,
    Channel,
    CycloneTransport,
    Frame,
    FrameWriter,
    QosClass,
    SchemaRecord,
    TransportError,
    interface_spec,
)
from hardpoint._contracts import file_descriptor_set
from hardpoint._dds import _bytes
from hardpoint.alert.v1 import alert_pb2
from hardpoint_runtime.conformance._harness import free_domain_id

#: Domains no other test on this machine uses while this process lives (the shared lock folder); the
#: second one is for the tests that need a domain configured differently.
DOMAIN = free_domain_id()
OTHER_DOMAIN = free_domain_id()
WAIT_S = 5.0


class Collector:
    """A ``deliver`` callback that records frames and the threads it ran on."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.threads: set[threading.Thread] = set()
        self.on_dispatch: list[bool] = []
        self.transport: CycloneTransport | None = None
        self._cond = threading.Condition()

    def __call__(self, frames: Sequence[Frame]) -> None:
        with self._cond:
            self.frames.extend(frames)
            self.threads.add(threading.current_thread())
            if self.transport is not None:
                self.on_dispatch.append(self.transport.on_dispatch_thread())
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Frame]], bool], timeout: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.frames), timeout)

    def seqs(self) -> list[int]:
        with self._cond:
            return [f.seq for f in self.frames if f.seq > 0]


def channel(qos: QosClass, *, keyed: bool = False, depth: int = 16, topic: str | None = None) -> Channel:
    return Channel(
        topic=topic or f"hp/test/{uuid.uuid4().hex[:12]}",
        qos=qos,
        keyed=keyed,
        history_depth=depth,
        interface="hardpoint.test.v1.Thing",
        schema_id="0123456789abcdef",
        source="test-module",
        epoch=7,
    )


def matched(writer: FrameWriter, collector: Collector, key: str = "") -> None:
    """Write probe frames (seq 0) until the reader gets one: discovery is done."""
    deadline = time.monotonic() + WAIT_S
    while not collector.wait_for(bool, timeout=0.02):
        assert time.monotonic() < deadline, "reader never matched the writer"
        writer.write(key, 0, 1, 0, b"probe")


@pytest.fixture
def transport() -> Iterator[CycloneTransport]:
    t = CycloneTransport(domain_id=DOMAIN)
    yield t
    t.close()


@pytest.fixture
def other() -> Iterator[CycloneTransport]:
    """A second transport on the same domain, as another module would have."""
    t = CycloneTransport(domain_id=DOMAIN)
    yield t
    t.close()


# -- delivery -------------------------------------------------------------------------


def test_reliable_event_frames_arrive_complete_and_in_order(
    transport: CycloneTransport, other: CycloneTransport
) -> None:
    ch = channel(QosClass.EVENT, depth=64)
    got = Collector()
    other.open_reader(ch, got)
    writer = transport.open_writer(ch)
    matched(writer, got)
    for seq in range(1, 5001):
        writer.write("", seq, 1, 1_000 + seq, seq.to_bytes(4, "little"))
    assert got.wait_for(lambda frames: frames[-1].seq == 5000)
    assert got.seqs() == list(range(1, 5001))
    last = got.frames[-1]
    assert last.stamp_ns == 6_000
    assert last.payload == (5000).to_bytes(4, "little")


@pytest.mark.parametrize("qos", list(QosClass))
def test_every_qos_class_delivers_frames_with_the_channel_header(
    transport: CycloneTransport, other: CycloneTransport, qos: QosClass
) -> None:
    ch = channel(qos, keyed=qos is QosClass.STATE, depth=16)
    got = Collector()
    other.open_reader(ch, got)
    writer = transport.open_writer(ch)
    key = "platform-ü" if ch.keyed else ""
    matched(writer, got, key)
    for seq in range(1, 11):
        writer.write(key, seq, 3, seq * 10, bytes([seq]) * 100)
    assert got.wait_for(lambda frames: frames[-1].seq == 10)
    seqs = got.seqs()
    assert seqs == sorted(seqs)
    if qos in (QosClass.EVENT, QosClass.COMMAND, QosClass.STATE):  # reliable, history deep enough
        assert seqs == list(range(1, 11))
    frame = got.frames[-1]
    assert (frame.key, frame.source, frame.epoch, frame.count) == (key, "test-module", 7, 3)
    assert (frame.interface, frame.schema_id, frame.stamp_ns) == ("hardpoint.test.v1.Thing", "0123456789abcdef", 100)
    assert type(frame.payload) is bytes
    assert frame.payload == bytes([10]) * 100


def test_late_joining_state_reader_gets_the_last_frame_of_every_key(
    transport: CycloneTransport, other: CycloneTransport
) -> None:
    ch = channel(QosClass.STATE, keyed=True, depth=1)
    writer = transport.open_writer(ch)
    for seq in range(1, 4):
        for key in ("a", "b", "c"):
            writer.write(key, seq, 1, seq, f"{key}{seq}".encode())
    got = Collector()
    other.open_reader(ch, got)
    assert got.wait_for(lambda frames: len(frames) >= 3)
    time.sleep(0.2)  # nothing else may follow
    assert sorted((f.key, f.seq, f.payload) for f in got.frames) == [(k, 3, f"{k}3".encode()) for k in "abc"]


def test_best_effort_stream_keeps_the_newest_frames(transport: CycloneTransport, other: CycloneTransport) -> None:
    ch = channel(QosClass.STREAM, depth=4)
    got = Collector()
    other.open_reader(ch, got)
    writer = transport.open_writer(ch)
    matched(writer, got)
    for seq in range(1, 201):
        writer.write("", seq, 1, seq, b"s" * 64)
    assert got.wait_for(lambda frames: frames[-1].seq == 200)
    seqs = got.seqs()
    assert seqs == sorted(set(seqs))
    assert 200 in seqs


def test_large_frames(transport: CycloneTransport, other: CycloneTransport) -> None:
    ch = channel(QosClass.EVENT)
    got = Collector()
    other.open_reader(ch, got)
    writer = transport.open_writer(ch)
    matched(writer, got)
    payloads = [os.urandom(65536) for _ in range(20)]
    for seq, payload in enumerate(payloads, start=1):
        writer.write("", seq, 1, seq, payload)
    assert got.wait_for(lambda frames: frames[-1].seq == 20)
    assert [f.payload for f in got.frames if f.seq > 0] == payloads


def test_closed_reader_gets_nothing_more(transport: CycloneTransport) -> None:
    ch = channel(QosClass.EVENT)
    got = Collector()
    reader = transport.open_reader(ch, got)
    writer = transport.open_writer(ch)
    matched(writer, got)
    reader.close()
    reader.close()
    count = len(got.frames)
    for seq in range(1, 50):
        writer.write("", seq, 1, seq, b"x")
    time.sleep(0.2)
    assert len(got.frames) == count


def test_header_that_does_not_fit_the_envelope_is_refused_at_open(transport: CycloneTransport) -> None:
    ch = channel(QosClass.EVENT)
    bad = Channel(ch.topic, ch.qos, ch.keyed, ch.history_depth, ch.interface, ch.schema_id, ch.source, epoch=2**32)
    with pytest.raises(TransportError, match=ch.topic):
        transport.open_writer(bad)
    transport.open_writer(ch).write("", 1, 1, 0, b"")
    with pytest.raises(TransportError, match=ch.topic):
        transport.open_writer(ch).write("", -1, 1, 0, b"")


def test_keyed_and_keyless_use_of_one_topic_is_refused(transport: CycloneTransport) -> None:
    ch = channel(QosClass.STATE, keyed=True)
    transport.open_writer(ch)
    with pytest.raises(TransportError, match=ch.topic):
        transport.open_reader(channel(QosClass.EVENT, topic=ch.topic), Collector())


def test_malformed_sample_is_dropped_and_counted(transport: CycloneTransport, caplog: pytest.LogCaptureFixture) -> None:
    ch = channel(QosClass.EVENT)
    got = Collector()
    transport.open_reader(ch, got)
    writer = transport.open_writer(ch)
    matched(writer, got)
    encoder = _bytes.EnvelopeEncoder(source="abc", epoch=1, interface=ch.interface, schema_id=ch.schema_id)
    bad = encoder.encode("", 1, 1, 0, b"x").replace(b"abc\x00", b"\xff\xfe\xfd\x00")  # not UTF-8
    with caplog.at_level(logging.WARNING, logger="hardpoint.dds"):
        assert _bytes.write(writer._ref, bad) == 0  # type: ignore[attr-defined]
        writer.write("", 2, 1, 0, b"good")
        assert got.wait_for(lambda frames: frames[-1].seq == 2)
    assert got.seqs() == [2]
    assert "malformed" in caplog.text
    assert ch.topic in caplog.text


def test_bus_over_dds(transport: CycloneTransport, other: CycloneTransport) -> None:
    from hardpoint.alert.v1 import alert_pb2
    from hardpoint.nav.v1 import nav_pb2

    talker = Bus(transport, module=f"talker-{uuid.uuid4().hex[:6]}")
    listener = Bus(other, module="listener")
    alerts = listener.subscribe(alert_pb2.Alert)
    navs = listener.subscribe(nav_pb2.NavState)
    pub = talker.publisher(alert_pb2.Alert)
    deadline = time.monotonic() + WAIT_S
    while not alerts.get(timeout=0.02):  # discovery
        assert time.monotonic() < deadline
        pub.publish(alert_pb2.Alert(alert_id="probe"))
    alerts.take()
    for i in range(1000):  # batched by the publisher; flushed by a timer on the dispatch thread
        pub.publish(alert_pb2.Alert(alert_id=f"a{i}"))
    talker.publish(nav_pb2.NavState(platform_id="p1"))
    received: list[str] = []
    while len(received) < 1000 and time.monotonic() < deadline:
        msg = alerts.get(timeout=0.1)
        if msg is not None and msg.alert_id != "probe":
            received.append(msg.alert_id)
    assert received == [f"a{i}" for i in range(1000)]
    assert navs.get(timeout=WAIT_S).platform_id == "p1"
    assert listener.counters()["sub:hardpoint.alert.v1.Alert"]["lost"] == 0
    talker.close()
    listener.close()


# -- flow control -----------------------------------------------------------------------


def test_blocked_reliable_write_times_out_with_transport_error_and_does_not_freeze_the_process(
    transport: CycloneTransport, other: CycloneTransport
) -> None:
    ch = channel(QosClass.EVENT, depth=64)
    release = threading.Event()
    started = threading.Event()

    def stuck(frames: Sequence[Frame]) -> None:  # a module callback that hangs
        started.set()
        release.wait(10)

    other.open_reader(ch, stuck)
    writer = transport.open_writer(ch)
    ticks: list[int] = []
    transport.call_later(0.0, lambda: ticks.append(1), period_s=0.01)
    ticks_before_last_write = 0

    def write_until_blocked() -> None:
        nonlocal ticks_before_last_write
        for seq in range(1, 5000):  # the reader holds at most 1024 frames plus the batch it is stuck on
            ticks_before_last_write = len(ticks)
            writer.write("", seq, 1, seq, b"e" * 100)
            if seq == 1:
                assert started.wait(WAIT_S)

    try:
        with pytest.raises(TransportError, match=f"{ch.topic}.*timed out") as error:
            write_until_blocked()
        ticks_while_blocked = len(ticks) - ticks_before_last_write
    finally:
        release.set()
    assert isinstance(error.value.__cause__, Exception)
    # The blocked write (1 s) released the GIL: the timer kept running on the dispatch thread.
    assert ticks_while_blocked >= 10


# -- timers ---------------------------------------------------------------------------


def test_timers_run_on_the_dispatch_thread_only(transport: CycloneTransport) -> None:
    threads: list[threading.Thread] = []
    on_dispatch: list[bool] = []
    done = threading.Event()
    periodic_calls: list[int] = []

    def record() -> None:
        threads.append(threading.current_thread())
        on_dispatch.append(transport.on_dispatch_thread())

    def one_shot() -> None:
        record()
        done.set()

    def tick() -> None:
        record()
        periodic_calls.append(1)

    periodic = transport.call_later(0.01, tick, period_s=0.01)
    transport.call_later(0.05, one_shot)
    got = Collector()
    got.transport = transport
    ch = channel(QosClass.EVENT)
    transport.open_reader(ch, got)
    matched(transport.open_writer(ch), got)
    assert done.wait(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while len(periodic_calls) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    periodic.cancel()
    time.sleep(0.05)
    count = len(periodic_calls)
    time.sleep(0.1)
    assert len(periodic_calls) == count  # cancelled
    assert len(set(threads) | got.threads) == 1
    assert all(on_dispatch)
    assert all(got.on_dispatch)
    assert threads[0] is not threading.main_thread()
    assert threads[0].name.startswith("hardpoint-dds-")


def test_call_later_from_another_thread_wakes_the_dispatch_thread(transport: CycloneTransport) -> None:
    fired = threading.Event()
    time.sleep(0.05)  # let the dispatch thread go to sleep on its wait set
    caller = threading.Thread(target=lambda: transport.call_later(0.01, fired.set))
    caller.start()
    caller.join()
    assert fired.wait(WAIT_S)
    cancelled = threading.Event()
    transport.call_later(0.05, cancelled.set).cancel()
    assert not cancelled.wait(0.2)


def test_callback_exceptions_are_logged_and_the_dispatch_thread_survives(
    transport: CycloneTransport, caplog: pytest.LogCaptureFixture
) -> None:
    ch = channel(QosClass.EVENT)
    got = Collector()
    calls: list[int] = []

    def deliver(frames: Sequence[Frame]) -> None:
        got(frames)
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("module bug in deliver")

    def bad_timer() -> None:
        raise RuntimeError("module bug in timer")

    with caplog.at_level(logging.ERROR, logger="hardpoint.dds"):
        transport.open_reader(ch, deliver)
        writer = transport.open_writer(ch)
        matched(writer, got)
        transport.call_later(0.0, bad_timer)
        fired = threading.Event()
        transport.call_later(0.02, fired.set)
        assert fired.wait(WAIT_S)
        writer.write("", 1, 1, 0, b"after")
        assert got.wait_for(lambda frames: frames[-1].seq == 1)
    assert "module bug in deliver" in caplog.text
    assert "module bug in timer" in caplog.text
    assert ch.topic in caplog.text


# -- close ------------------------------------------------------------------------------


def dispatch_thread(t: CycloneTransport) -> threading.Thread:
    found: list[threading.Thread] = []
    ran = threading.Event()

    def record() -> None:
        found.append(threading.current_thread())
        ran.set()

    t.call_later(0.0, record)
    assert ran.wait(WAIT_S)
    return found[0]


def test_close_is_idempotent_joins_the_thread_and_refuses_further_use() -> None:
    t = CycloneTransport(domain_id=DOMAIN)
    ch = channel(QosClass.EVENT)
    writer = t.open_writer(ch)
    thread = dispatch_thread(t)
    t.close()
    assert not thread.is_alive()
    t.close()
    assert t.closed
    with pytest.raises(TransportError, match=ch.topic):
        writer.write("", 1, 1, 0, b"late")
    with pytest.raises(TransportError, match="closed"):
        t.open_writer(ch)
    with pytest.raises(TransportError, match="closed"):
        t.open_reader(ch, Collector())
    with pytest.raises(TransportError, match="closed"):
        t.announce_schema(SchemaRecord("i", "s", "t", "EVENT", b""))
    fired = threading.Event()
    t.call_later(0.0, fired.set)  # as in memory: accepted, never run
    assert not fired.wait(0.05)


def test_close_from_a_callback() -> None:
    t = CycloneTransport(domain_id=DOMAIN)
    thread = dispatch_thread(t)
    t.call_later(0.0, t.close)
    thread.join(WAIT_S)
    assert not thread.is_alive()
    assert t.closed


def test_writer_close() -> None:
    t = CycloneTransport(domain_id=DOMAIN)
    with t:
        ch = channel(QosClass.STATE, keyed=True)
        writer = t.open_writer(ch)
        writer.close()
        writer.close()
        with pytest.raises(TransportError, match=ch.topic):
            writer.write("k", 1, 1, 0, b"")
        t.open_writer(ch).write("k", 1, 1, 0, b"")  # the topic is still usable


# -- schemas ----------------------------------------------------------------------------


def test_schemas_are_announced_and_discovered_by_a_late_joiner(transport: CycloneTransport) -> None:
    # A genuine record: a late joiner keeps only records that pass the checks (SDK-SCHEMA-RX-006).
    spec = interface_spec(alert_pb2.Alert)
    record = SchemaRecord(
        interface=spec.name,
        schema_id=spec.schema_id,
        topic=spec.topic,
        qos=spec.qos.name,
        descriptor_set=file_descriptor_set(spec.message_type.DESCRIPTOR),
    )
    transport.announce_schema(record)
    assert record in transport.schemas()
    late = CycloneTransport(domain_id=DOMAIN)
    try:
        deadline = time.monotonic() + WAIT_S
        while record not in late.schemas():
            assert time.monotonic() < deadline, "the late joiner never got the schema"
            time.sleep(0.02)
    finally:
        late.close()


# -- configuration ----------------------------------------------------------------------


def test_invalid_configuration_is_a_transport_error() -> None:
    bad = '<CycloneDDS><Domain id="any"><General><NoSuchSetting/></General></Domain></CycloneDDS>'
    with pytest.raises(TransportError, match=f"domain {OTHER_DOMAIN}"):
        CycloneTransport(domain_id=OTHER_DOMAIN, config=bad)


def test_one_domain_one_configuration_per_process(transport: CycloneTransport) -> None:
    from importlib import resources

    path = str(resources.files("hardpoint._dds").joinpath("loopback.xml"))
    with pytest.raises(TransportError, match="another configuration"):
        CycloneTransport(domain_id=DOMAIN, config=path)
    t = CycloneTransport(domain_id=OTHER_DOMAIN, config=path)  # a path is accepted
    with t:
        assert not t.closed


def test_process_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLONEDDS_URI", '<CycloneDDS><Domain id="any"><Broken/></Domain></CycloneDDS>')
    t = CycloneTransport(domain_id=OTHER_DOMAIN)
    with t:
        assert not t.closed
