"""Typed publish and subscribe on top of a :class:`~hardpoint.Transport`.

Publishers fill the envelope header (source, epoch, sequence, time of validity,
interface, schema id) and batch event and stream messages; subscriptions check
every frame, count what is wrong, and hand module code only good messages.
The order of the receive checks is normative (``IF-ENV-*`` in spec/):
wrong interface, wrong schema id, malformed count, duplicate or replayed
sequence, then undecodable payload; sequence gaps are counted as loss.

Staged publishing (``SDK-BUS-STAGED-*``): a bus made with a ``write_prefix``
writes every sample to ``write_prefix + topic`` (a new module version on
probation beside the active one, :data:`STAGED_PREFIX`) and reads the normal
topics; :meth:`Bus.retarget_writers` moves every writer to another prefix
without losing or repeating a sample.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from hardpoint._batch import batch_type, item_prefix
from hardpoint._contracts import InterfaceSpec, QosClass, file_descriptor_set, interface_spec
from hardpoint._errors import HardpointError, QosError, TransportError, UndeclaredInterfaceError
from hardpoint._identity import Intruder, Roster, SourceBinding
from hardpoint._transport import Channel, Frame, FrameReader, FrameWriter, SchemaRecord, Transport

__all__ = [
    "STAGED_PREFIX",
    "BatchPolicy",
    "Bus",
    "Publisher",
    "PublisherCounters",
    "SampleInfo",
    "Subscription",
    "SubscriptionCounters",
]

_log = logging.getLogger("hardpoint.bus")

M = TypeVar("M", bound=Message)

#: Largest ``count`` a frame may claim; more is treated as malformed.
MAX_BATCH: Final = 4096
#: Writers tracked per subscription for sequence checks; the oldest is forgotten past this.
MAX_TRACKED_WRITERS: Final = 4096
#: Topic prefix of a staged module's writers: ``hp-staged/`` + the contract topic (SDK-BUS-STAGED-001).
STAGED_PREFIX: Final = "hp-staged/"
#: What a topic prefix may contain: characters every DDS implementation accepts in a topic name.
_PREFIX_CHARS: Final = re.compile(r"[A-Za-z0-9_./-]*")
#: Lengths whose item prefix is remembered; past this, prefixes of new lengths are made each time.
_ITEM_PREFIXES_MAX: Final = 4096
_get_ident: Final = threading.get_ident


class _ItemPrefixes(dict[int, bytes]):
    """Batch item prefixes by message length, made once per length (an interface has few message sizes).

    Indexing makes a missing prefix (``__missing__``): one lookup, no ``get``-or-make per message.
    """

    def __missing__(self, length: int) -> bytes:
        prefix = item_prefix(length)
        if len(self) < _ITEM_PREFIXES_MAX:
            self[length] = prefix
        return prefix


_ITEM_PREFIXES: Final = _ItemPrefixes()


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How event and stream publishers group messages into one bus sample.

    A message published when the writer has been idle for ``idle_gap_s`` is
    written at once (no added latency); messages that follow closer than that
    are grouped until ``max_messages`` or ``max_bytes`` is reached, or at the
    latest ``max_delay_s`` after the first of them. Messages published from a
    subscription callback are grouped until that delivery returns: replies to
    one batch of received samples travel together, and none waits for
    ``max_delay_s``.
    """

    max_messages: int = 256
    max_bytes: int = 48 * 1024  # bytes; stays below DDS fragmenting into many pieces
    max_delay_s: float = 0.002  # seconds
    idle_gap_s: float = 0.0001  # seconds


#: The default policy; ``None`` as a publisher's ``batch`` disables batching.
DEFAULT_BATCH: Final = BatchPolicy()


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """Header of a received message (the envelope fields)."""

    source: str
    epoch: int
    seq: int
    stamp_ns: int
    interface: str
    schema_id: str
    key: str
    #: GUID of the DDS writer that sent it, as the transport knows it ("" when the transport cannot tell).
    writer: str = ""
    #: GUID of that writer's participant (its process), same form.
    participant: str = ""

    def to_proto(self) -> Message:
        """The header as a ``hardpoint.core.v1.Header`` message."""
        from hardpoint.core.v1 import header_pb2

        return header_pb2.Header(
            source=self.source,
            epoch=self.epoch,
            sequence=self.seq,
            time_of_validity_ns=self.stamp_ns,
            interface=self.interface,
            schema_id=self.schema_id,
            key=self.key,
        )


@dataclass(slots=True)
class PublisherCounters:
    """What one publisher has sent."""

    published: int = 0  #: messages accepted by ``publish``
    frames: int = 0  #: bus samples written (a batch is one)
    suppressed: int = 0  #: messages dropped because the module was not active

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class SubscriptionCounters:
    """What one subscription has received, and what it refused and why."""

    delivered: int = 0  #: messages handed to module code
    undecodable: int = 0  #: messages whose payload did not parse (or a malformed batch)
    wrong_interface: int = 0  #: messages whose interface name differs from the subscription's
    schema_mismatch: int = 0  #: messages whose schema id differs from the local schema
    duplicates: int = 0  #: messages whose sequence number was already seen from that writer
    impersonation: int = 0  #: messages from a writer claiming a source bound to another writer (SDK-BUS-ID-002)
    lost: int = 0  #: sequence numbers skipped by a writer (gaps)
    callback_errors: int = 0  #: messages whose callback raised

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def rejected(self) -> int:
        """All messages refused before reaching module code."""
        return self.undecodable + self.wrong_interface + self.schema_mismatch + self.duplicates + self.impersonation


def _key_function(spec: InterfaceSpec) -> Callable[[Message], str] | None:
    if not spec.keyed:
        return None
    names = spec.key
    if len(names) == 1:
        (name,) = names
        return lambda msg: str(getattr(msg, name))
    return lambda msg: "/".join(str(getattr(msg, n)) for n in names)


class Publisher(Generic[M]):
    """Publishes messages of one interface. Made by :meth:`Bus.publisher`."""

    def __init__(
        self,
        bus: Bus,
        spec: InterfaceSpec,
        writer: FrameWriter,
        batch: BatchPolicy | None,
        *,
        channel: Channel | None = None,
        standby: FrameWriter | None = None,
    ) -> None:
        self._bus = bus
        self.spec = spec
        self._type = spec.message_type
        self._writer = writer
        #: The channel on the contract topic (no prefix); its epoch stays across retargets.
        self._channel = channel
        #: Idle writer on the contract topic, opened with a prefixed one so that promote finds it discovered.
        self._standby = standby
        self._key_of = _key_function(spec)
        self._key_seq: dict[str, int] = {}
        self._seq = 0
        self._lock = threading.Lock()
        #: Keyed interfaces are never batched: each message is its own sample of its instance.
        batched = spec.qos in (QosClass.EVENT, QosClass.STREAM) and self._key_of is None
        self._batch = batch if batched else None
        self._now_ns = bus.transport.now_ns
        #: The type's own serializer, called with the message: no bound method made per message.
        self._serialize: Callable[[Message], bytes] = spec.message_type.SerializeToString
        #: The next frame's parts: each waiting message after its batch item prefix (joined, they are a
        #: ``hardpoint.core.v1.Batch``; a lone message is written without its prefix).
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._max_parts = 2 * batch.max_messages if batch is not None else 0
        #: Length of the last message and its item prefix: messages of an interface are often of one size.
        self._item_len = -1
        self._item_prefix = b""
        self._buf_stamp = 0
        self._armed = False
        self._last_write_ns = 0
        self._closed = False
        self._flush_queued = False
        #: Counts of what this publisher has sent.
        self.counters = PublisherCounters()

    def publish(self, message: M, *, time_of_validity_ns: int | None = None) -> None:
        """Send ``message``; the SDK fills the header.

        :param time_of_validity_ns: when the content was true; defaults to now.
        :raises TypeError: ``message`` is not of this publisher's interface type.
        """
        if type(message) is not self._type:
            raise TypeError(f"publisher of {self.spec.name} got a {type(message).__name__}")
        bus = self._bus
        if not bus.active:
            self.counters.suppressed += 1
            return
        data = self._serialize(message)
        self.counters.published += 1
        policy = self._batch
        if policy is None:
            self._publish_alone(message, data, time_of_validity_ns)
            return
        # The batched path is written out here rather than in a helper because it runs once per
        # message: a Python call, a bound method or a clock read per message shows in a stream's
        # msgs/s (bench/README.md, "Stream publish path").
        delivering = bus._delivering  # None outside a delivery: no thread id to fetch then
        in_delivery = delivering is not None and delivering == _get_ident()
        lock = self._lock
        lock.acquire()  # not ``with``: it makes and calls bound __enter__/__exit__ methods per message
        try:
            buf = self._buf
            size = len(data)
            if buf:
                self._buf_bytes += size
            elif in_delivery or time.monotonic_ns() - self._last_write_ns <= policy.idle_gap_s * 1e9:
                # A frame carries the time stamp of its first message; the clock is read for it only.
                self._buf_stamp = time_of_validity_ns if time_of_validity_ns is not None else self._now_ns()
                self._buf_bytes = size
            else:  # idle: written at once
                self._seq += 1
                stamp = time_of_validity_ns if time_of_validity_ns is not None else self._now_ns()
                self._write("", self._seq, 1, stamp, data)
                self._last_write_ns = time.monotonic_ns()
                return
            if size != self._item_len:
                self._item_len = size
                self._item_prefix = _ITEM_PREFIXES[size]
            buf.append(self._item_prefix)
            buf.append(data)
            if len(buf) >= self._max_parts or self._buf_bytes >= policy.max_bytes:
                self._flush_locked()
            elif in_delivery:
                if not self._flush_queued:  # written when the delivery returns (Subscription._on_frames)
                    self._flush_queued = True
                    bus._after_delivery.append(self)
            elif not self._armed:
                self._armed = True
                bus.transport.call_later(policy.max_delay_s, self._timer_flush)
        finally:
            lock.release()

    def _publish_alone(self, message: M, data: bytes, time_of_validity_ns: int | None) -> None:
        """An unbatched message (keyed interfaces, or no batch policy): one frame each."""
        stamp = time_of_validity_ns if time_of_validity_ns is not None else self._now_ns()
        if self._key_of is not None:
            self._write_keyed(self._key_of(message), stamp, data)
            return
        with self._lock:
            self._seq += 1
            self._write("", self._seq, 1, stamp, data)

    def flush(self) -> None:
        """Write whatever is waiting in the batch now."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush and release the writer."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True
            standby, self._standby = self._standby, None
        self._writer.close()
        if standby is not None:
            standby.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    # -- retargeting (Bus.retarget_writers) ------------------------------------

    def _open_on(self, prefix: str) -> FrameWriter:
        """A writer on ``prefix`` + the contract topic: the standby when it is that, else a new one."""
        if self._channel is None:
            raise TransportError(f"publisher of {self.spec.name} was made without a channel and cannot move")
        if prefix == "" and self._standby is not None:
            return self._standby
        return self._bus.transport.open_writer(replace(self._channel, topic=prefix + self._channel.topic))

    def _discard(self, writer: FrameWriter) -> None:
        """Undo :meth:`_open_on` (another publisher failed to move): close it unless it is the standby."""
        if writer is not self._standby:
            writer.close()

    def _swap_writer(self, writer: FrameWriter) -> tuple[FrameWriter, BaseException | None]:
        """Flush what is batched to the current writer, then write to ``writer``; returns the old writer.

        Every write happens under ``self._lock``, so each message goes to exactly one of
        the two writers, and the sequence numbers (and the epoch) simply continue.
        """
        with self._lock:
            if self._closed:
                return writer, None
            error: BaseException | None = None
            try:
                self._flush_locked()
            except HardpointError as e:  # the batch is gone either way; the move must still happen
                error = e
            old, self._writer = self._writer, writer
            if writer is self._standby:
                self._standby = None
        return old, error

    def _write(self, key: str, seq: int, count: int, stamp: int, payload: bytes) -> None:
        self._writer.write(key, seq, count, stamp, payload)
        self.counters.frames += 1

    def _write_keyed(self, key: str, stamp: int, data: bytes) -> None:
        with self._lock:
            seq = self._key_seq.get(key, 0) + 1
            self._key_seq[key] = seq
            self._write(key, seq, 1, stamp, data)

    def _delivery_flush(self) -> None:
        with self._lock:
            self._flush_queued = False
            if not self._closed:
                self._flush_locked()

    def _timer_flush(self) -> None:
        with self._lock:
            self._armed = False
            if not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        parts = self._buf
        n = len(parts) >> 1
        if n == 0:
            return
        first = self._seq + 1
        self._seq += n
        # The batch is gone from here on, whether the write succeeds or not.
        self._buf = []
        data_bytes, self._buf_bytes = self._buf_bytes, 0
        if n == 1:
            self._writer.write("", first, 1, self._buf_stamp, parts[1])
        else:  # the parts go to the transport unjoined: it copies them once, into the envelope
            # The payload's length: the messages' and their prefixes' (one join of the short prefixes
            # costs less than a len() per part).
            size = data_bytes + len(b"".join(parts[::2]))
            self._writer.write_parts("", first, n, self._buf_stamp, parts, size=size)
        self.counters.frames += 1
        self._last_write_ns = time.monotonic_ns()


class Subscription(Generic[M]):
    """Receives messages of one interface. Made by :meth:`Bus.subscribe`.

    With a callback, every good message is passed to it on the transport's
    dispatch thread. Without one, messages wait in a bounded queue for
    :meth:`take` or :meth:`get` (the oldest is dropped when it is full).
    """

    def __init__(
        self,
        bus: Bus,
        spec: InterfaceSpec,
        callback: Callable[..., object] | None,
        with_info: bool,
        queue_depth: int,
    ) -> None:
        self._bus = bus
        self.spec = spec
        self._type = spec.message_type
        self._batch_type = batch_type(spec.message_type)
        self._callback = callback
        self._with_info = with_info
        # For the one-message path of _on_frames.
        self._name = spec.name
        self._schema_id = spec.schema_id
        self._parse = spec.message_type.FromString
        self._now_ns = bus.transport.now_ns
        self._plain_callback = callback if callback is not None and not with_info else None
        #: Last sequence number per (writer handle, source, epoch, key): a writer's numbers never touch another's.
        self._seqs: dict[tuple[int, str, int, str], int] = {}
        #: Which writer may speak for which source on this topic (set when the reader is attached).
        self._binding: SourceBinding | None = None
        self._queue: deque[Any] = deque(maxlen=queue_depth)
        self._ready = threading.Condition()
        self._reader: FrameReader | None = None
        #: Transport clock (ns) at the last good frame; 0 before the first.
        self.last_received_ns = 0
        #: Counts of what this subscription received and refused.
        self.counters = SubscriptionCounters()

    def _attach(self, reader: FrameReader) -> None:
        self._reader = reader
        name = self.spec.name
        bus = self._bus
        self._binding = SourceBinding(
            reader.writer_identity,
            lambda source: bus._roster.allowed(name, source),
            lambda record, n: bus._report_intrusion(name, record, n),
        )

    def _reset_identities(self) -> None:
        """The roster changed: judge every writer again on its next frame (Bus.set_roster)."""
        self._seqs = {}
        if self._binding is not None:
            self._binding.reset()

    def intruders(self) -> list[Intruder]:
        """Writers refused for claiming a source bound to another writer, most refused first."""
        return [] if self._binding is None else self._binding.snapshot()

    def close(self) -> None:
        """Stop receiving."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._bus._forget(self)

    # -- pull style ---------------------------------------------------------

    def take(self) -> list[Any]:
        """All queued messages (or ``(message, info)`` pairs), oldest first."""
        with self._ready:
            items = list(self._queue)
            self._queue.clear()
        return items

    def get(self, timeout: float | None = None) -> Any:
        """The oldest queued message, waiting up to ``timeout`` seconds; ``None`` on time-out."""
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._queue), timeout):
                return None
            return self._queue.popleft()

    # -- receive path (dispatch thread) --------------------------------------

    def _on_frames(self, frames: Sequence[Frame]) -> None:
        bus = self._bus
        bus._delivering = _get_ident()
        try:
            for frame in frames:
                # The common frame: one message, the right interface and schema, and the next sequence
                # number of a writer already seen. It passes every check of _check (in the same order,
                # with nothing to count), so only the parse is left; any other frame goes to _check.
                if frame.count == 1 and frame.interface == self._name and frame.schema_id == self._schema_id:
                    track = (frame.writer, frame.source, frame.epoch, frame.key)
                    seq = frame.seq
                    if self._seqs.get(track, -2) == seq - 1:
                        self._seqs[track] = seq
                        try:
                            message = self._parse(frame.payload)
                        except DecodeError:
                            self.counters.undecodable += 1
                            continue
                        self.last_received_ns = self._now_ns()
                        callback = self._plain_callback
                        if callback is None:
                            self._dispatch(frame, (message,))
                            continue
                        try:
                            callback(message)
                        except Exception as e:  # module code must not take the bus down
                            self.counters.callback_errors += 1
                            bus._report_callback_error(self._name, e)
                        else:
                            self.counters.delivered += 1
                        continue
                messages = self._check(frame)
                if messages:
                    self.last_received_ns = self._now_ns()
                    self._dispatch(frame, messages)
        finally:
            bus._delivering = None
            if bus._after_delivery:
                bus._flush_after_delivery()

    def silent_for(self) -> float:
        """Seconds since the last good message (transport clock); 0.0 before the first (nothing to miss)."""
        if not self.last_received_ns:
            return 0.0
        return (self._bus.transport.now_ns() - self.last_received_ns) / 1e9

    def _check(self, frame: Frame) -> Sequence[Any] | None:  # noqa: PLR0911 - one exit per normative check
        c = self.counters
        count = frame.count
        # A refused frame counts as the messages it claims only when it could hold them: a forged
        # count of 2**32 must not make one sample look like billions (SDK-BUS-ID-007).
        claimed = count if 0 < count <= MAX_BATCH else 1
        if frame.interface != self.spec.name:
            c.wrong_interface += claimed
            return None
        if frame.schema_id != self.spec.schema_id:
            c.schema_mismatch += claimed
            return None
        if count < 1 or count > MAX_BATCH:
            c.undecodable += 1
            return None
        binding = self._binding
        if binding is not None and not binding.admit(frame.writer, frame.source, count):
            c.impersonation += count
            return None
        if not self._sequence_ok(frame, count):
            return None
        try:
            if count == 1:
                return (self._type.FromString(frame.payload),)
            items: Sequence[Any] = self._batch_type.FromString(frame.payload).items  # type: ignore[attr-defined]
        except DecodeError:
            c.undecodable += count
            return None
        if len(items) != count:
            c.undecodable += count
            return None
        return items

    def _sequence_ok(self, frame: Frame, count: int) -> bool:
        track = (frame.writer, frame.source, frame.epoch, frame.key)
        seqs = self._seqs
        last = seqs.get(track)
        seq = frame.seq
        if last is not None:
            if seq <= last:
                self.counters.duplicates += count
                return False
            if seq > last + 1:
                self.counters.lost += seq - last - 1
        elif len(seqs) >= MAX_TRACKED_WRITERS:
            del seqs[next(iter(seqs))]
        seqs[track] = seq + count - 1
        return True

    def _dispatch(self, frame: Frame, messages: Sequence[Any]) -> None:
        c = self.counters
        callback = self._callback
        if self._with_info:
            base = frame.seq
            ident = None if self._binding is None or not frame.writer else self._binding.identity(frame.writer)
            guid, participant = (ident.guid, ident.participant) if ident is not None else ("", "")
            pairs = [
                (
                    m,
                    SampleInfo(
                        frame.source, frame.epoch, base + i, frame.stamp_ns, frame.interface, frame.schema_id,
                        frame.key, guid, participant,
                    ),
                )
                for i, m in enumerate(messages)
            ]  # fmt: skip
            items: Sequence[Any] = pairs
        else:
            items = messages
        if callback is None:
            with self._ready:
                self._queue.extend(items)
                self._ready.notify_all()
            c.delivered += len(items)
            return
        with_info = self._with_info
        for item in items:
            try:
                if with_info:
                    callback(*item)
                else:
                    callback(item)
            except Exception as e:  # module code must not take the bus down
                c.callback_errors += 1
                self._bus._report_callback_error(self.spec.name, e)
            else:
                c.delivered += 1


class Bus:
    """A module's view of the platform bus: typed publishers and subscriptions.

    :param transport: where frames go (Cyclone DDS, or in-memory in unit tests).
    :param module: module name stamped as the source of every sample.
    :param provides: interfaces this module may publish; ``None`` allows all
        (tools such as recorders and benchmarks, never modules).
    :param requires: interfaces this module may subscribe to; ``None`` allows all.
    :param uses: further interfaces it may subscribe to (optional inputs); ``"*"`` allows all.
    :param write_prefix: every publisher writes to ``write_prefix`` + the contract topic
        (:data:`STAGED_PREFIX` for a module on probation); subscriptions read the
        contract topics. With a prefix, each publisher also holds an idle writer on
        the contract topic, so that :meth:`retarget_writers` to ``""`` switches to
        a writer the readers have long discovered (SDK-BUS-STAGED-003).
    :raises ValueError: ``write_prefix`` has characters a topic name cannot have.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        module: str,
        provides: Iterable[str] | None = None,
        requires: Iterable[str] | None = None,
        uses: Iterable[str] = (),
        write_prefix: str = "",
    ) -> None:
        _check_prefix(module, write_prefix)
        self.transport = transport
        self.module = module
        self._write_prefix = write_prefix
        #: Serialises making publishers and moving them (retarget may come from any thread).
        self._writers_lock = threading.RLock()
        self._provides = None if provides is None else frozenset(provides)
        may_read = None if requires is None else frozenset(requires) | frozenset(uses)
        self._requires = None if may_read is None or "*" in may_read else may_read
        self._publishers: dict[type[Message], Publisher[Any]] = {}
        self._subscriptions: list[Subscription[Any]] = []
        self._announced: set[str] = set()
        self._error_handler: Callable[[str, BaseException], None] | None = None
        #: Ident of the thread inside a subscription's delivery (the transport's dispatch thread), else None.
        self._delivering: int | None = None
        #: Publishers holding messages published during the current delivery.
        self._after_delivery: list[Publisher[Any]] = []
        #: Publishing is allowed only while this is true (the module is active).
        self.active = True
        #: Participants allowed to write as each module the local daemon supervises (SDK-BUS-ID-004).
        self._roster = Roster()
        self._intrusion_handler: Callable[[str, Intruder, int], None] | None = None
        self._roster_generation = 0

    # -- publishing -----------------------------------------------------------

    def publisher(
        self, message_type: type[M], *, batch: BatchPolicy | None = DEFAULT_BATCH, history_depth: int | None = None
    ) -> Publisher[M]:
        """A publisher of ``message_type``; one per type and bus, made on first call.

        :param batch: batching of event and stream messages; ``None`` sends each alone.
        :param history_depth: deeper history than the contract's (never shallower).
        :raises UndeclaredInterfaceError: the module does not provide this interface.
        :raises ContractError: the type is not an interface.
        """
        existing = self._publishers.get(message_type)
        if existing is not None:
            return existing
        spec = interface_spec(message_type)
        if self._provides is not None and spec.name not in self._provides:
            raise UndeclaredInterfaceError(module=self.module, interface=spec.name, direction="provides")
        channel = self._channel(spec, history_depth)
        with self._writers_lock:
            existing = self._publishers.get(message_type)
            if existing is not None:
                return existing
            prefix = self._write_prefix
            writer = self.transport.open_writer(replace(channel, topic=prefix + channel.topic))
            standby: FrameWriter | None = None
            if prefix:
                try:
                    standby = self.transport.open_writer(channel)
                except BaseException:
                    writer.close()
                    raise
            self._announce(spec)
            pub: Publisher[M] = Publisher(self, spec, writer, batch, channel=channel, standby=standby)
            self._publishers[message_type] = pub
        return pub

    @property
    def write_prefix(self) -> str:
        """The prefix every publisher of this bus writes under now (``""``: the contract topics)."""
        return self._write_prefix

    def retarget_writers(self, prefix: str) -> None:
        """Move every publisher to ``prefix`` + its contract topic (``""``: promote a staged module).

        Each publisher flushes its waiting batch to the old writer, switches to
        the new one and closes the old (which still delivers what it holds to
        its reliable readers). A message published before the switch goes to
        the old topic, one published after it to the new one; none goes to
        both, none is lost, and the sequence numbers and epoch continue, so a
        reader that moves with the writer sees one stream. Safe from any
        thread; publishers made later use ``prefix`` too.

        :raises ValueError: ``prefix`` has characters a topic name cannot have.
        :raises TransportError: a new writer cannot be opened (every publisher
            then stays where it was), or a batch could not be flushed at the
            switch (every publisher has moved).
        """
        _check_prefix(self.module, prefix)
        with self._writers_lock:
            if prefix == self._write_prefix:
                return
            moving = [pub for pub in self._publishers.values() if not pub.closed]
            targets = self._open_targets(moving, prefix)
            self._write_prefix = prefix
            swapped = [pub._swap_writer(writer) for pub, writer in zip(moving, targets, strict=True)]
        failed = self._close_retired(moving, swapped)
        if failed is not None:
            pub, error = failed
            raise TransportError(
                f"module {self.module}: moving the writer of {pub.spec.name} to topic "
                f"{prefix + pub.spec.topic}: its waiting batch could not be written: {error}"
            ) from error

    def _open_targets(self, moving: list[Publisher[Any]], prefix: str) -> list[FrameWriter]:
        """Open every new writer before moving any, so that a failure leaves all publishers where they were."""
        targets: list[FrameWriter] = []
        for pub in moving:
            try:
                targets.append(pub._open_on(prefix))
            except HardpointError as e:
                for done, writer in zip(moving, targets, strict=False):
                    done._discard(writer)
                raise TransportError(
                    f"module {self.module}: cannot move the writer of {pub.spec.name} to topic "
                    f"{prefix + pub.spec.topic} (every writer stays on prefix {self._write_prefix!r}): {e}"
                ) from e
        return targets

    def _close_retired(
        self, moving: list[Publisher[Any]], swapped: list[tuple[FrameWriter, BaseException | None]]
    ) -> tuple[Publisher[Any], BaseException] | None:
        """Retire the writers the publishers left; the first flush error, if any, with its publisher.

        Retired, not closed: closing a reliable DDS writer waits until its readers
        acknowledged everything (about 0.2 s across processes), and the caller is
        usually the dispatch thread, which must go on delivering and publishing.
        """
        failed: tuple[Publisher[Any], BaseException] | None = None
        for pub, (old, error) in zip(moving, swapped, strict=True):
            try:
                old.retire()
            except HardpointError as e:  # the move is done; a writer that fails to close is only logged
                _log.warning("module %s: closing the old writer of %s failed: %s", self.module, pub.spec.name, e)
            if error is not None and failed is None:
                failed = (pub, error)
        return failed

    def publish(self, message: Message, *, time_of_validity_ns: int | None = None) -> None:
        """Publish ``message`` through the publisher of its type (made on first use)."""
        pub = self._publishers.get(type(message)) or self.publisher(type(message))
        pub.publish(message, time_of_validity_ns=time_of_validity_ns)

    # -- subscribing ----------------------------------------------------------

    def subscribe(
        self,
        message_type: type[M],
        callback: Callable[..., object] | None = None,
        *,
        with_info: bool = False,
        queue_depth: int = 1024,
        history_depth: int | None = None,
        topic_prefix: str = "",
    ) -> Subscription[M]:
        """Subscribe to ``message_type``.

        :param callback: called as ``callback(msg)``, or ``callback(msg, info)``
            with ``with_info``; without a callback, use :meth:`Subscription.take`.
        :param topic_prefix: read ``topic_prefix`` + the contract topic instead,
            e.g. :data:`STAGED_PREFIX` to watch a staged module (the daemon's
            health gate); the checks are the same.
        :raises UndeclaredInterfaceError: the module does not require this interface.
        :raises ValueError: ``topic_prefix`` has characters a topic name cannot have.
        """
        spec = interface_spec(message_type)
        if self._requires is not None and spec.name not in self._requires:
            raise UndeclaredInterfaceError(module=self.module, interface=spec.name, direction="requires")
        _check_prefix(self.module, topic_prefix)
        channel = self._channel(spec, history_depth)
        if topic_prefix:
            channel = replace(channel, topic=topic_prefix + channel.topic)
        sub: Subscription[M] = Subscription(self, spec, callback, with_info, queue_depth)
        sub._attach(self.transport.open_reader(channel, sub._on_frames))
        self._subscriptions.append(sub)
        return sub

    # -- writer identity --------------------------------------------------------

    def set_roster(self, roster: Roster) -> None:
        """Say who may write as each module of the platform (SDK-BUS-ID-004); replaces the previous roster.

        A source the roster names is admitted only from a writer of one of its
        participants; on an interface the platform's modules provide, a source
        that is no module of the platform is refused; any other source is bound
        to its first live writer. Every subscription judges each writer again
        from its next frame on. The daemon pushes its roster to each module.
        """
        self._roster = roster
        self._roster_generation += 1
        for sub in list(self._subscriptions):
            sub._reset_identities()

    @property
    def roster(self) -> Roster:
        """The roster in force (empty: every source is bound to its first live writer)."""
        return self._roster

    @property
    def roster_generation(self) -> int:
        """How many times :meth:`set_roster` was called: readers outside this bus judge writers again when it moves."""
        return self._roster_generation

    def on_intrusion(self, handler: Callable[[str, Intruder, int], None] | None) -> None:
        """Have ``handler(interface, intruder, count)`` called on the dispatch thread for each refused impersonation.

        The intruder record names the refused writer, the source it claimed and
        who that source is bound to; ``count`` is the messages refused this time.
        """
        self._intrusion_handler = handler

    def _report_intrusion(self, interface: str, record: Intruder, count: int) -> None:
        handler = self._intrusion_handler
        if handler is None:
            return
        try:
            handler(interface, record, count)
        except Exception:  # a reporting failure must not stop the dispatch thread
            _log.exception("module %s: the intrusion handler raised", self.module)

    # -- counters and errors --------------------------------------------------

    @property
    def subscriptions(self) -> tuple[Subscription[Any], ...]:
        """Every open subscription of this bus."""
        return tuple(self._subscriptions)

    def counters(self) -> dict[str, dict[str, int]]:
        """Counters of every publisher and subscription, by ``"pub:<interface>"`` / ``"sub:<interface>"``."""
        out: dict[str, dict[str, int]] = {}
        for pub in self._publishers.values():
            out[f"pub:{pub.spec.name}"] = pub.counters.as_dict()
        for sub in self._subscriptions:
            name = f"sub:{sub.spec.name}"
            merged = out.setdefault(name, dict.fromkeys(SubscriptionCounters.__slots__, 0))
            for k, v in sub.counters.as_dict().items():
                merged[k] += v
        return out

    def on_callback_error(self, handler: Callable[[str, BaseException], None] | None) -> None:
        """Have ``handler(interface, error)`` called when a subscription callback raises."""
        self._error_handler = handler

    def _forget(self, sub: Subscription[Any]) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def _report_callback_error(self, interface: str, error: BaseException) -> None:
        _log.error("module %s: callback for %s raised %r", self.module, interface, error)
        if self._error_handler is not None:
            self._error_handler(interface, error)

    def _flush_after_delivery(self) -> None:
        pending, self._after_delivery = self._after_delivery, []
        for pub in pending:
            try:
                pub._delivery_flush()
            except Exception as e:  # a failed write (flow control time-out) must not stop the dispatch thread
                self._report_callback_error(pub.spec.name, e)

    def flush(self) -> None:
        """Write every waiting batch now."""
        for pub in self._publishers.values():
            pub.flush()

    def close(self) -> None:
        """Flush and close every publisher and subscription (not the transport)."""
        with self._writers_lock:
            publishers = list(self._publishers.values())
        for pub in publishers:
            pub.close()
        for sub in list(self._subscriptions):
            sub.close()
        self._publishers.clear()
        self._subscriptions.clear()

    # -- internals ------------------------------------------------------------

    def _channel(self, spec: InterfaceSpec, history_depth: int | None) -> Channel:
        depth = spec.history_depth
        if history_depth is not None:
            if history_depth < depth:
                raise QosError(
                    f"interface {spec.name}: history depth {history_depth} is below the contract's {depth}",
                    interface=spec.name,
                )
            depth = history_depth
        return Channel(
            topic=spec.topic,
            qos=spec.qos,
            keyed=spec.keyed,
            history_depth=depth,
            interface=spec.name,
            schema_id=spec.schema_id,
            source=self.module,
            epoch=int.from_bytes(os.urandom(4), "little"),
        )

    def _announce(self, spec: InterfaceSpec) -> None:
        if spec.name in self._announced:
            return
        self._announced.add(spec.name)
        self.transport.announce_schema(
            SchemaRecord(
                interface=spec.name,
                schema_id=spec.schema_id,
                topic=spec.topic,
                qos=spec.qos.name,
                descriptor_set=file_descriptor_set(spec.message_type.DESCRIPTOR),
            )
        )


def _check_prefix(module: str, prefix: str) -> None:
    if not _PREFIX_CHARS.fullmatch(prefix):
        raise ValueError(
            f"module {module}: topic prefix {prefix!r} may only contain letters, digits and '_', '.', '/', '-'"
        )
