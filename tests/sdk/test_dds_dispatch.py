"""The DDS transport's dispatch loop: it takes only from readers whose read condition triggered.

The waitset reports the conditions that triggered by the attach argument each was
attached with (``_bytes.waitset_wait``); the buffer it reports into grows with the
number of readers. Real Cyclone DDS on loopback, one process, a DDS domain held
by a lock file for this module.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from hardpoint import Channel, CycloneTransport, Frame, FrameWriter, QosClass
from hardpoint_runtime.conformance._harness import free_domain_id, release_domain_id

WAIT_S = 10.0
#: Sequence numbers of the frames a test counts (probes before them have smaller ones).
BURST = 1000


@pytest.fixture(scope="module")
def domain() -> Iterator[int]:
    """A domain id no other test on this machine holds (the shared lock folder)."""
    domain_id = free_domain_id()
    try:
        yield domain_id
    finally:
        release_domain_id(domain_id)


@pytest.fixture
def pair(domain: int) -> Iterator[tuple[CycloneTransport, CycloneTransport]]:
    """A reading and a writing transport (two participants, as two modules would have)."""
    reading, writing = CycloneTransport(domain_id=domain), CycloneTransport(domain_id=domain)
    yield reading, writing
    writing.close()
    reading.close()


class Seen:
    """Counts the frames delivered to one reader: all of them, and those of the burst (seq >= 1000)."""

    def __init__(self) -> None:
        self.n = 0
        self.burst = 0
        self._cond = threading.Condition()

    def __call__(self, frames: Sequence[Frame]) -> None:
        with self._cond:
            self.n += len(frames)
            self.burst += sum(1 for f in frames if f.seq >= BURST)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.n >= n, timeout)

    def wait_burst(self, n: int, timeout: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.burst >= n, timeout)


def event_channel() -> Channel:
    return Channel(
        topic=f"hp/test/dispatch/{uuid.uuid4().hex[:12]}",
        qos=QosClass.EVENT,
        keyed=False,
        history_depth=16,
        interface="hardpoint.test.v1.Thing",
        schema_id="0123456789abcdef",
        source="test-module",
        epoch=3,
    )


def write_until_seen(writer: FrameWriter, seen: Seen) -> None:
    """Write frames until the reader has one (discovery takes a moment)."""
    deadline = time.monotonic() + WAIT_S
    seq = 0
    while not seen.wait(1, timeout=0.02):
        assert time.monotonic() < deadline, "the reader never got a frame"
        seq += 1
        writer.write("", seq, 1, 0, b"probe")


def test_every_reader_is_served_when_there_are_more_readers_than_the_first_buffer_holds(
    pair: tuple[CycloneTransport, CycloneTransport],
) -> None:
    reading, writing = pair
    channels = [event_channel() for _ in range(20)]
    seen = [Seen() for _ in channels]
    for ch, s in zip(channels, seen, strict=True):
        reading.open_reader(ch, s)
    writers = [writing.open_writer(ch) for ch in channels]
    for w, s in zip(writers, seen, strict=True):
        write_until_seen(w, s)
    # Now all at once: every reader triggers in the same wait, and each is taken from.
    for w in writers:
        for seq in range(BURST, BURST + 10):
            w.write("", seq, 1, 0, b"x")
    assert all(s.wait_burst(10) for s in seen), [s.burst for s in seen]
    # room in the waitset's report for every attached condition: 20 readers, hp/schemas, the guard
    assert len(reading._triggered) >= 22


def test_readers_without_samples_are_not_taken_from(pair: tuple[CycloneTransport, CycloneTransport]) -> None:
    reading, writing = pair
    busy_ch, idle_ch = event_channel(), event_channel()
    busy_seen, idle_seen = Seen(), Seen()
    busy = reading.open_reader(busy_ch, busy_seen)
    idle = reading.open_reader(idle_ch, idle_seen)
    takes = {"busy": 0, "idle": 0}

    def counting(name: str, reader: Any) -> None:
        take = reader.take_batch

        def counted() -> Any:
            takes[name] += 1
            return take()

        reader.take_batch = counted  # the dispatch loop calls it through the instance

    counting("busy", busy)
    counting("idle", idle)
    writer = writing.open_writer(busy_ch)
    idle_writer = writing.open_writer(idle_ch)  # matched, but it never writes
    write_until_seen(writer, busy_seen)
    for seq in range(BURST, BURST + 50):
        writer.write("", seq, 1, 0, b"x")
        time.sleep(0.001)  # separate wake-ups, each of which used to take from every reader
    assert busy_seen.wait_burst(50)
    assert takes["busy"] >= 1
    assert takes["idle"] == 0
    assert idle_seen.n == 0
    idle_writer.close()


def test_large_samples_of_one_take_are_delivered_a_few_at_a_time_in_order(
    pair: tuple[CycloneTransport, CycloneTransport],
) -> None:
    """64 KiB frames that wait in the reader are taken together but decoded and delivered about 256 KiB at a time."""
    reading, writing = pair
    ch = event_channel()
    sizes: list[int] = []
    seqs: list[int] = []
    hold = threading.Event()
    cond = threading.Condition()

    def deliver(frames: Sequence[Frame]) -> None:
        hold.wait(WAIT_S)  # the first delivery waits, so that the rest pile up in the reader
        with cond:
            burst = [f.seq for f in frames if f.seq >= BURST]
            if burst:
                sizes.append(len(burst))
                seqs.extend(burst)
            cond.notify_all()

    reading.open_reader(ch, deliver)
    writer = writing.open_writer(ch)
    probe = Seen()
    writing.open_reader(ch, probe)  # on the other transport, whose dispatch thread is not held
    write_until_seen(writer, probe)
    payload = bytes(64 * 1024)
    for seq in range(BURST, BURST + 40):
        writer.write("", seq, 1, 0, payload)
    assert probe.wait_burst(40)
    time.sleep(0.2)  # and in the held reader's history (reliable, same host)
    hold.set()
    with cond:
        assert cond.wait_for(lambda: len(seqs) >= 40, WAIT_S), seqs
    assert seqs == list(range(BURST, BURST + 40))
    assert max(sizes) <= 4  # 256 KiB of 64 KiB samples
    assert len(sizes) >= 10
