"""In-memory transport: the bus for unit tests, with a manual clock.

It implements the same :class:`~hardpoint.Transport` seam as Cyclone DDS and
keeps the QoS promises that matter to module code: state interfaces keep the
last frame per key for late joiners, every other frame reaches each reader
that exists when it is written, in order. Time only moves when the test calls
:meth:`InMemoryTransport.advance`, so timers are deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from hardpoint._contracts import QosClass
from hardpoint._errors import TransportError
from hardpoint._transport import (
    Channel,
    Frame,
    FrameReader,
    FrameWriter,
    SchemaRecord,
    Timer,
    Transport,
    WriterIdentity,
)

__all__ = ["InMemoryTransport", "MemoryFrame"]

#: Where the manual clock starts: 2023-11-14T22:13:20Z, in nanoseconds.
DEFAULT_START_NS: Final = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class MemoryFrame:
    """A frame as the in-memory transport carries it; also used to inject raw frames."""

    key: str
    source: str
    epoch: int
    seq: int
    count: int
    stamp_ns: int
    interface: str
    schema_id: str
    payload: bytes
    #: Handle of the writer that sent it; 0 (the default for injected frames): unknown, not checked.
    writer: int = 0


class _Reader(FrameReader):
    def __init__(self, transport: InMemoryTransport, topic: str, deliver: Callable[[Sequence[Frame]], None]) -> None:
        self.transport = transport
        self.topic = topic
        self.deliver = deliver
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.transport._remove_reader(self)

    def writer_identity(self, writer: int) -> WriterIdentity | None:
        return self.transport._live_writers.get(writer)


class _Writer(FrameWriter):
    def __init__(self, transport: InMemoryTransport, channel: Channel, participant: str) -> None:
        self.transport = transport
        self.channel = channel
        self.closed = False
        self.handle = next(transport._handles)
        self.identity = WriterIdentity(uuid.uuid4().hex, participant)
        transport._live_writers[self.handle] = self.identity

    def write(self, key: str, seq: int, count: int, stamp_ns: int, payload: bytes) -> None:
        if self.closed:
            raise TransportError(f"write on closed writer of topic {self.channel.topic}")
        c = self.channel
        self.transport.inject(
            c.topic,
            MemoryFrame(key, c.source, c.epoch, seq, count, stamp_ns, c.interface, c.schema_id, payload, self.handle),
        )

    def close(self) -> None:
        self.closed = True
        self.transport._live_writers.pop(self.handle, None)


class _Timer(Timer):
    def __init__(self, callback: Callable[[], None], period_ns: int | None) -> None:
        self.callback = callback
        self.period_ns = period_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class InMemoryTransport(Transport):
    """A deterministic bus in one process.

    Frames are delivered as soon as they are written (re-entrant writes from a
    callback are queued and delivered after it returns). Timers run only from
    :meth:`advance`.
    """

    def __init__(self, *, start_ns: int = DEFAULT_START_NS) -> None:
        self._now = start_ns
        self._lock = threading.RLock()
        self._readers: dict[str, list[_Reader]] = {}
        self._retained: dict[str, dict[str, Frame]] = {}
        self._state_topics: set[str] = set()
        self._pending: deque[tuple[_Reader, Frame]] = deque()
        self._draining = False
        self._timers: list[tuple[int, int, _Timer]] = []
        self._order = itertools.count()
        self._schemas: dict[str, SchemaRecord] = {}
        self._closed = False
        self._participant = uuid.uuid4().hex
        self._handles = itertools.count(1)
        #: Identities of the writers not yet closed, by handle (what DDS discovery knows).
        self._live_writers: dict[int, WriterIdentity] = {}
        #: Every frame written, by topic, for assertions in tests.
        self.written: dict[str, list[Frame]] = {}

    # -- Transport ------------------------------------------------------------

    def open_writer(self, channel: Channel) -> FrameWriter:
        return self._open_writer(channel, self._participant)

    def _open_writer(self, channel: Channel, participant: str) -> FrameWriter:
        self._check_open()
        if channel.qos is QosClass.STATE:
            self._state_topics.add(channel.topic)
        return _Writer(self, channel, participant)

    @property
    def participant(self) -> str:
        return self._participant

    def open_reader(self, channel: Channel, deliver: Callable[[Sequence[Frame]], None]) -> FrameReader:
        self._check_open()
        reader = _Reader(self, channel.topic, deliver)
        with self._lock:
            self._readers.setdefault(channel.topic, []).append(reader)
            if channel.qos is QosClass.STATE:
                self._state_topics.add(channel.topic)
                for frame in self._retained.get(channel.topic, {}).values():
                    self._pending.append((reader, frame))
        self._drain()
        return reader

    def call_later(self, delay_s: float, callback: Callable[[], None], *, period_s: float | None = None) -> Timer:
        timer = _Timer(callback, None if period_s is None else max(1, int(period_s * 1e9)))
        with self._lock:
            heapq.heappush(self._timers, (self._now + int(delay_s * 1e9), next(self._order), timer))
        return timer

    def now_ns(self) -> int:
        return self._now

    def announce_schema(self, record: SchemaRecord) -> None:
        self._schemas[record.schema_id] = record

    def schemas(self) -> list[SchemaRecord]:
        return list(self._schemas.values())

    def close(self) -> None:
        self._closed = True
        self._readers.clear()
        self._timers.clear()
        self._pending.clear()

    # -- test controls ----------------------------------------------------------

    def peer(self) -> Transport:
        """Another participant on this bus (another process, on DDS): same topics, clock and timers.

        Its writers have identities of their own, so tests can put a second
        module, or an impersonator, beside the first. Closing it closes its writers.
        """
        return _Peer(self)

    def inject(self, topic: str, frame: Frame) -> None:
        """Put ``frame`` on ``topic`` as if a writer had sent it (raw, unchecked)."""
        self._check_open()
        with self._lock:
            self.written.setdefault(topic, []).append(frame)
            if topic in self._state_topics:
                self._retained.setdefault(topic, {})[frame.key] = frame
            for reader in self._readers.get(topic, ()):
                self._pending.append((reader, frame))
        self._drain()

    def advance(self, seconds: float) -> None:
        """Move the clock forward, running every timer that falls due, in time order."""
        end = self._now + int(seconds * 1e9)
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > end:
                    break
                due, _, timer = heapq.heappop(self._timers)
                self._now = max(self._now, due)
                if timer.cancelled:
                    continue
                if timer.period_ns is not None:
                    heapq.heappush(self._timers, (due + timer.period_ns, next(self._order), timer))
            timer.callback()
            self._drain()
        self._now = end

    # -- internals --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("in-memory transport is closed")

    def _remove_reader(self, reader: _Reader) -> None:
        with self._lock:
            readers = self._readers.get(reader.topic, [])
            if reader in readers:
                readers.remove(reader)

    def _drain(self) -> None:
        with self._lock:
            if self._draining:
                return
            self._draining = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    reader, frame = self._pending.popleft()
                if not reader.closed:
                    reader.deliver((frame,))
        finally:
            with self._lock:
                self._draining = False


class _Peer(Transport):
    """A second participant on an :class:`InMemoryTransport`'s bus (:meth:`InMemoryTransport.peer`)."""

    def __init__(self, bus: InMemoryTransport) -> None:
        self._bus = bus
        self._participant = uuid.uuid4().hex
        self._writers: list[FrameWriter] = []

    def open_writer(self, channel: Channel) -> FrameWriter:
        writer = self._bus._open_writer(channel, self._participant)
        self._writers.append(writer)
        return writer

    def open_reader(self, channel: Channel, deliver: Callable[[Sequence[Frame]], None]) -> FrameReader:
        return self._bus.open_reader(channel, deliver)

    def call_later(self, delay_s: float, callback: Callable[[], None], *, period_s: float | None = None) -> Timer:
        return self._bus.call_later(delay_s, callback, period_s=period_s)

    def now_ns(self) -> int:
        return self._bus.now_ns()

    def announce_schema(self, record: SchemaRecord) -> None:
        self._bus.announce_schema(record)

    def schemas(self) -> list[SchemaRecord]:
        return self._bus.schemas()

    @property
    def participant(self) -> str:
        return self._participant

    def close(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.close()
