"""The transport seam: what the SDK needs from a bus, and nothing more.

The SDK (publishers, subscriptions, header checks, batching) is transport
independent. A transport moves *frames* (the bus envelope: header fields plus
an opaque protobuf payload) between writers and readers of a topic, runs
timers, and keeps the schema announcements. Two implementations exist: Cyclone
DDS (:mod:`hardpoint._dds`) and the in-memory one for unit tests
(:class:`hardpoint.testing.InMemoryTransport`).

Threading contract: a transport calls every reader's ``deliver`` callback and
every timer callback from *one* dispatch thread, one at a time, so module code
never runs concurrently with itself. ``FrameWriter.write`` may be called from
any thread.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hardpoint._contracts import QosClass

__all__ = [
    "Channel",
    "Frame",
    "FrameReader",
    "FrameWriter",
    "SchemaRecord",
    "Timer",
    "Transport",
    "WriterIdentity",
]


class Frame(Protocol):
    """One bus sample as a reader sees it (the envelope).

    ``payload`` holds one serialized message when ``count == 1``, otherwise a
    serialized ``hardpoint.core.v1.Batch`` of ``count`` messages whose
    sequence numbers are ``seq .. seq + count - 1``.
    """

    @property
    def key(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def epoch(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def stamp_ns(self) -> int: ...
    @property
    def interface(self) -> str: ...
    @property
    def schema_id(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def writer(self) -> int:
        """The transport's handle of the writer that sent this frame (its DDS publication handle); 0: unknown.

        Unlike ``source``, which the sample claims, this is what the transport
        itself knows: the SDK binds each claimed source to it (SDK-BUS-ID-*).
        """
        ...


@dataclass(frozen=True, slots=True)
class Channel:
    """What a transport needs to open a writer or reader on one topic."""

    topic: str
    qos: QosClass
    #: True when the transport keeps one instance per ``Frame.key``.
    keyed: bool
    #: Samples kept per instance (state, stream) or in all (event, command).
    history_depth: int
    #: Full interface name and schema identity stamped on every written frame.
    interface: str
    schema_id: str
    #: Module name stamped as ``source`` on every written frame.
    source: str = ""
    #: Writer incarnation stamped as ``epoch``; readers track sequences per (source, epoch).
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class SchemaRecord:
    """A schema announcement: enough for a tool with no generated code to decode a topic."""

    interface: str
    schema_id: str
    topic: str
    qos: str
    #: Serialized ``google.protobuf.FileDescriptorSet`` of the interface and its imports.
    descriptor_set: bytes


@dataclass(frozen=True, slots=True)
class WriterIdentity:
    """Who a writer is, as the transport knows it (DDS discovery), never as its samples claim."""

    #: The writer's GUID, 32 lowercase hex digits (``uuid.UUID.hex``).
    guid: str
    #: The GUID of the participant (process, on DDS) the writer belongs to, same form.
    participant: str


class FrameWriter(abc.ABC):
    """Writes frames on one topic; the header fields fixed per writer come from its Channel."""

    @abc.abstractmethod
    def write(self, key: str, seq: int, count: int, stamp_ns: int, payload: bytes) -> None:
        """Send one frame. Reliable channels may block for flow control."""

    def write_parts(self, key: str, seq: int, count: int, stamp_ns: int, parts: Sequence[bytes], *, size: int) -> None:
        """:meth:`write` with ``b"".join(parts)`` (``size`` bytes) as the payload; a transport may copy them once."""
        self.write(key, seq, count, stamp_ns, b"".join(parts))

    @abc.abstractmethod
    def close(self) -> None:
        """Release the writer; further writes are an error."""

    def retire(self) -> None:
        """Like :meth:`close`, but without making the caller wait for what the writer sent to be delivered.

        Further writes are an error at once; frames already written still reach
        their reliable readers. Used when a writer is replaced by another one
        (``Bus.retarget_writers``) on the dispatch thread, which must not stall.
        """
        self.close()


class FrameReader(abc.ABC):
    """A reader on one topic; frames reach the ``deliver`` callback given at open."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop delivery and release the reader."""

    def writer_identity(self, writer: int) -> WriterIdentity | None:
        """The identity of the writer with handle ``writer`` (a ``Frame.writer``) while it is alive.

        ``None`` when that writer is gone (deleted, or its participant lost) or
        unknown: a transport that cannot tell writers apart returns ``None``
        for everything and stamps ``writer`` 0 on its frames.
        """
        del writer
        return None


class Timer(abc.ABC):
    """A periodic or one-shot callback on the dispatch thread."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the timer; a callback already running completes."""


class Transport(abc.ABC):
    """The seam between the SDK and a bus implementation."""

    @abc.abstractmethod
    def open_writer(self, channel: Channel) -> FrameWriter:
        """Create a writer for ``channel``."""

    @abc.abstractmethod
    def open_reader(self, channel: Channel, deliver: Callable[[Sequence[Frame]], None]) -> FrameReader:
        """Create a reader; ``deliver`` gets batches of frames on the dispatch thread."""

    @abc.abstractmethod
    def call_later(self, delay_s: float, callback: Callable[[], None], *, period_s: float | None = None) -> Timer:
        """Run ``callback`` on the dispatch thread after ``delay_s``, then every ``period_s`` if given."""

    @abc.abstractmethod
    def now_ns(self) -> int:
        """Current time of this transport's clock, in nanoseconds since the epoch."""

    @abc.abstractmethod
    def announce_schema(self, record: SchemaRecord) -> None:
        """Make ``record`` available on the bus for as long as this transport lives."""

    @abc.abstractmethod
    def schemas(self) -> list[SchemaRecord]:
        """Schema announcements currently known on the bus (own and discovered)."""

    @property
    def participant(self) -> str:
        """This transport's own participant GUID (the ``participant`` of its writers' identities); "" if none."""
        return ""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the dispatch thread and release everything; idempotent."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
