"""The Cyclone DDS implementation of :class:`hardpoint.Transport`.

One transport is one DomainParticipant and one *dispatch thread*. The thread
waits on a DDS WaitSet holding a read condition per reader and a guard
condition (woken for new timers and close), takes samples in batches from the
readers whose condition triggered, hands them to each reader's ``deliver`` and
runs the timers, one callback at a time, as the transport seam requires. ``WaitSet.wait`` is a ctypes call into
``libddsc``, which releases the GIL while it blocks, so the waiting thread
costs nothing; writes release it too (see :mod:`hardpoint._dds._bytes`).

The domain is created from an explicit configuration (by default the packaged
``loopback.xml``: interface ``lo``, multicast off, unicast peer 127.0.0.1), never
from the process environment. Transports of one process on the same domain id
share the domain, so they must use the same configuration.
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Generic, TypeVar, cast

from cyclonedds.core import (
    DDSException,
    Entity,
    GuardCondition,
    InstanceState,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from hardpoint._dds import _bytes, _qos
from hardpoint._dds._envelope import Envelope, KeyedEnvelope, Schema
from hardpoint._errors import TransportError
from hardpoint._schemas import SchemaRefusal, check_schema_record
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

__all__ = ["BATCH_SIZE", "SCHEMA_TOPIC", "CycloneTransport"]

_log = logging.getLogger("hardpoint.dds")

#: Topic of the schema announcements.
SCHEMA_TOPIC: Final = "hp/schemas"
#: Most samples taken from one reader (and handed to one ``deliver`` call) at a time.
BATCH_SIZE: Final = 256
#: Samples at least this large (bytes, serialized) are decoded and delivered a few at a time.
_CHUNK_SAMPLE_BYTES: Final = 16 * 1024
#: About how many bytes of such samples make one delivery.
_CHUNK_BYTES: Final = 256 * 1024
#: Malformed samples of a reader logged one by one; after that, every thousandth.
_MALFORMED_LOGGED: Final = 10
#: Longest the dispatch thread sleeps without a reason to wake, in nanoseconds.
_IDLE_WAIT_NS: Final = 1_000_000_000
#: Read condition mask: any sample, whatever its sample, view and instance state.
_ANY_STATE: Final = SampleState.Any | ViewState.Any | InstanceState.Any
#: Longest wait at close for retired writers still delivering (Cyclone's writer linger is 1 s by default).
_LINGER_JOIN_S: Final = 5.0
#: Most schema records kept from the bus (distinct schema ids); more are refused (SDK-SCHEMA-RX-007).
MAX_SCHEMAS: Final = 1024
#: How many of the last refused schema announcements are kept for :meth:`CycloneTransport.last_refused_schemas`.
_RECENT_REFUSALS: Final = 16

S = TypeVar("S")


def _default_config() -> str:
    return resources.files("hardpoint._dds").joinpath("loopback.xml").read_text(encoding="utf-8")


def _resolve_config(config: str | None) -> str:
    """XML text or a URI for ``dds_create_domain``; a plain path to a file becomes a ``file://`` URI."""
    if config is None:
        return _default_config()
    text = config.strip()
    if not text.startswith("<") and "://" not in text and os.path.isfile(text):
        return "file://" + os.path.abspath(text)
    return text


def _delete(entity: Entity | None) -> None:
    """Delete a DDS entity now (cyclonedds-python otherwise deletes it when the object is collected)."""
    if entity is not None:
        entity.__del__()


def _dds_error(what: str, error: BaseException) -> TransportError:
    return TransportError(f"{what}: {error}")


# -- domains -----------------------------------------------------------------------


@dataclass(slots=True)
class _DomainUse:
    domain: Domain
    config: str
    users: int


_domains: dict[int, _DomainUse] = {}
_domains_lock = threading.Lock()


def _acquire_domain(domain_id: int, config: str) -> None:
    with _domains_lock:
        use = _domains.get(domain_id)
        if use is not None:
            if use.config != config:
                raise TransportError(
                    f"DDS domain {domain_id} is already in use in this process with another configuration; "
                    "transports of one process on one domain id must share the configuration"
                )
            use.users += 1
            return
        try:
            domain = Domain(domain_id, config)
        except (DDSException, UnicodeError) as e:
            raise TransportError(
                f"cannot create DDS domain {domain_id} (invalid configuration, or the domain was already "
                f"created in this process outside hardpoint): {e}"
            ) from e
        _domains[domain_id] = _DomainUse(domain, config, 1)


def _release_domain(domain_id: int) -> None:
    with _domains_lock:
        use = _domains.get(domain_id)
        if use is None:
            return
        use.users -= 1
        if use.users == 0:
            del _domains[domain_id]
            _delete(use.domain)


# -- writers and readers -----------------------------------------------------------


#: A received envelope, a :class:`hardpoint.Frame`. A named tuple because the decoder makes it from its
#: tuple of fields with ``tuple.__new__`` (:data:`_make_frame`), without a Python call per sample; not a
#: ``typing.NamedTuple``, whose ``count`` field type checkers see clash with ``tuple.count``.
_DdsFrame: Any = collections.namedtuple(
    "_DdsFrame", ("key", "source", "epoch", "seq", "count", "stamp_ns", "interface", "schema_id", "payload", "writer")
)
_make_frame = cast(Callable[[_bytes.Fields], Frame], functools.partial(tuple.__new__, _DdsFrame))


class _Writer(FrameWriter):
    __slots__ = ("_closed", "_encode", "_encode_parts", "_entity", "_ref", "_transport", "topic")

    def __init__(self, transport: CycloneTransport, channel: Channel, entity: DataWriter[Any]) -> None:
        self._transport = transport
        self.topic = channel.topic
        self._entity: DataWriter[Any] | None = entity
        self._ref: int = entity._ref
        encoder = _bytes.EnvelopeEncoder(
            source=channel.source, epoch=channel.epoch, interface=channel.interface, schema_id=channel.schema_id
        )
        self._encode = encoder.encode
        self._encode_parts = encoder.encode_parts
        self._closed = False

    def write(self, key: str, seq: int, count: int, stamp_ns: int, payload: bytes) -> None:
        if self._closed:
            raise TransportError(f"write on a closed writer of topic {self.topic}")
        try:
            data = self._encode(key, seq, count, stamp_ns, payload)
        except (struct.error, UnicodeError, TypeError) as e:
            raise TransportError(f"cannot encode a frame for topic {self.topic}: {e}") from e
        rc = _bytes.write(self._ref, data)
        if rc < 0:
            self._failed(rc)

    def write_parts(self, key: str, seq: int, count: int, stamp_ns: int, parts: Sequence[bytes], *, size: int) -> None:
        """One copy of a batch: its parts are joined straight into the envelope."""
        if self._closed:
            raise TransportError(f"write on a closed writer of topic {self.topic}")
        try:
            data = self._encode_parts(key, seq, count, stamp_ns, parts, size=size)
        except (struct.error, ValueError, TypeError) as e:
            raise TransportError(f"cannot encode a frame for topic {self.topic}: {e}") from e
        rc = _bytes.write(self._ref, data)
        if rc < 0:
            self._failed(rc)

    def _failed(self, rc: int) -> None:
        cause = DDSException(rc, f"dds_write on topic {self.topic}")
        if self._closed or self._transport.closed:
            raise TransportError(f"write on topic {self.topic} after its writer or transport was closed") from cause
        if rc == DDSException.DDS_RETCODE_TIMEOUT:
            hint = ""
            if self._transport.on_dispatch_thread():
                hint = (
                    "; it was written from a callback, on the dispatch thread, which is the thread that "
                    "would drain a full reader of this process"
                )
            raise TransportError(
                f"write on topic {self.topic} timed out after {_qos.MAX_BLOCKING_S:g} s of flow control: "
                f"a reliable reader is not keeping up{hint}"
            ) from cause
        raise TransportError(f"write on topic {self.topic} failed: {cause}") from cause

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._forget_writer(self)
        entity, self._entity = self._entity, None
        _delete(entity)

    def retire(self) -> None:
        """Close in the background: deleting a reliable writer blocks until its readers acknowledged it (linger)."""
        if self._closed:
            return
        self._closed = True
        self._transport._forget_writer(self)
        entity, self._entity = self._entity, None
        if entity is not None:
            self._transport._delete_later(entity, self.topic)


class _Reader(FrameReader, Generic[S]):
    """A reader and its read condition; ``decode`` turns a serialized sample into what ``deliver`` gets.

    ``decode(data, writer)`` also gets the publication handle of the writer that
    sent the sample (from its sample info), which frames carry as ``writer``.
    """

    def __init__(
        self,
        transport: CycloneTransport,
        topic: str,
        entity: DataReader[Any],
        decode: Callable[[bytes, int], S],
        deliver: Callable[[Sequence[S]], None],
        *,
        placeholder: Callable[[int], S] | None = None,
    ) -> None:
        self._transport = transport
        self.topic = topic
        self.entity: DataReader[Any] | None = entity
        self.ref: int = entity._ref
        self._take = _bytes.taker(self.ref, BATCH_SIZE)
        self.condition: ReadCondition | None = ReadCondition(entity, _ANY_STATE)
        #: Handle of the read condition: what the waitset reports when it triggers.
        self.x: int = self.condition._ref
        self.decode = decode
        self.deliver = deliver
        self.closed = False
        #: Samples dropped because they could not be decoded.
        self.malformed = 0
        #: Makes what is delivered, with the sender's handle, in place of each sample that cannot be
        #: decoded, so the SDK counts it (an envelope with count 0 is undecodable, IF-ENV-RX-COUNT).
        self.placeholder = placeholder

    def writer_identity(self, writer: int) -> WriterIdentity | None:
        """The matched writer ``writer``'s GUIDs, from DDS discovery; ``None`` once it is gone."""
        entity = self.entity
        if entity is None or writer == 0:
            return None
        try:
            endpoint = entity.get_matched_publication_data(writer)
        except DDSException:  # not matched (any more): the writer or its participant is gone
            return None
        if endpoint is None:
            return None
        return WriterIdentity(endpoint.key.hex, endpoint.participant_key.hex)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._transport._forget_reader(self)

    def release(self) -> None:
        condition, self.condition = self.condition, None
        entity, self.entity = self.entity, None
        _delete(condition)
        _delete(entity)

    def take_batch(self) -> Iterator[list[S]]:
        """Decoded valid samples of one take (at most :data:`BATCH_SIZE`), in deliveries.

        Small samples make one delivery. Large ones (at least :data:`_CHUNK_SAMPLE_BYTES`) are
        decoded and delivered a few at a time, about :data:`_CHUNK_BYTES` each: decoding a whole
        take first would hold a copy of every payload at once (16 MiB for 256 samples of 64 KiB)
        and parse each long after it was copied, out of the CPU caches.
        """
        taken = self._take()
        if isinstance(taken, int):
            if not self.closed:
                _log.error("take from topic %s failed: %s", self.topic, DDSException(taken, "dds_take"))
            return
        if not taken:
            return
        size = len(taken[0][0])
        if size < _CHUNK_SAMPLE_BYTES or len(taken) == 1:
            yield self._decode_all(taken)
            return
        step = max(1, _CHUNK_BYTES // size)
        for i in range(0, len(taken), step):  # each decoded when the one before has been delivered
            yield self._decode_all(taken[i : i + step])

    def _decode_all(self, taken: list[tuple[bytes, Any]]) -> list[S]:
        decode = self.decode
        try:
            return [decode(data, info.publication_handle) for data, info in taken if info.valid_data]
        except Exception as e:  # malformed input; the library's fallback decoder raises anything
            _log.debug("malformed sample on topic %s (%s); decoding one by one", self.topic, e)
        return self._decode_each(taken)

    def _decode_each(self, taken: list[tuple[bytes, Any]]) -> list[S]:
        out: list[S] = []
        for data, info in taken:
            if not info.valid_data:
                continue
            try:
                out.append(self.decode(data, info.publication_handle))
            except Exception as e:  # malformed input; the library's fallback decoder raises anything
                self.malformed += 1
                # Anyone can write on a topic: a flood of garbage must not flood the log (the count says it all).
                if self.malformed <= _MALFORMED_LOGGED or self.malformed % 1000 == 0:
                    _log.warning("dropped malformed sample %d on topic %s: %s", self.malformed, self.topic, e)
                if self.placeholder is not None:
                    out.append(self.placeholder(info.publication_handle))
        return out


@dataclass(frozen=True, slots=True)
class _MalformedFrame:
    """Stands for an envelope that could not be decoded at all."""

    interface: str
    schema_id: str
    key: str = ""
    source: str = ""
    epoch: int = 0
    seq: int = 0
    count: int = 0
    stamp_ns: int = 0
    payload: bytes = b""
    writer: int = 0


class _Timer(Timer):
    __slots__ = ("callback", "cancelled", "period_ns")

    def __init__(self, callback: Callable[[], None], period_ns: int | None) -> None:
        self.callback = callback
        self.period_ns = period_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


# -- the transport -----------------------------------------------------------------


class CycloneTransport(Transport):
    """The bus on Eclipse Cyclone DDS.

    :param domain_id: DDS domain; platforms (and test runs) that must not see
        each other use different ids (0 to 232 with the default port mapping).
    :param config: Cyclone DDS configuration: XML text, a ``file://`` URI or a
        path to a file. ``None`` uses the packaged ``loopback.xml``, which keeps
        all traffic on the loopback interface. ``CYCLONEDDS_URI`` is not read.
    :raises TransportError: the domain cannot be created (for example an
        invalid configuration, or the same domain id already in use in this
        process with another configuration).
    """

    def __init__(self, *, domain_id: int = 0, config: str | None = None) -> None:
        self.domain_id = domain_id
        self._config = _resolve_config(config)
        self._lock = threading.RLock()
        self._closed = False
        self._woken = False
        self._topics: dict[str, tuple[Topic[Any], type[Any]]] = {}
        self._writers: set[_Writer] = set()
        self._readers: list[_Reader[Any]] = []
        #: Readers by the attach argument of their read condition (see :meth:`_run`).
        self._by_x: dict[int, _Reader[Any]] = {}
        #: Where the waitset reports the attach arguments of triggered conditions; room for all of them.
        self._triggered: Any = _bytes.triggered_buffer(8)
        self._timers: list[tuple[int, int, _Timer]] = []
        self._order = itertools.count()
        self._schemas: dict[str, SchemaRecord] = {}
        #: Schema announcements from the bus not used, by reason, and the last few (SDK-SCHEMA-RX-006).
        self._refused: collections.Counter[str] = collections.Counter()
        self._recent_refused: collections.deque[SchemaRefusal] = collections.deque(maxlen=_RECENT_REFUSALS)
        self._schema_reader: _Reader[Schema] | None = None
        self._schema_writer: DataWriter[Schema] | None = None
        #: Threads deleting retired writers (each waits for its readers' acknowledgements).
        self._lingering: set[threading.Thread] = set()
        _acquire_domain(domain_id, self._config)
        try:
            self._participant = DomainParticipant(domain_id)
            self._waitset = WaitSet(self._participant)
            self._guard = GuardCondition(self._participant)
            self._attach(self._guard._ref)
            self._open_schema_reader()
        except DDSException as e:
            self._delete_entities()
            _release_domain(domain_id)
            raise _dds_error(f"cannot join DDS domain {domain_id}", e) from e
        self._thread = threading.Thread(target=self._run, name=f"hardpoint-dds-{domain_id}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<CycloneTransport domain {self.domain_id}, {state}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def participant(self) -> str:
        """This transport's participant GUID (32 hex digits): what its writers' identities name."""
        return str(self._participant.guid.hex)

    def on_dispatch_thread(self) -> bool:
        """True when called from this transport's dispatch thread (inside a ``deliver`` or timer callback)."""
        return threading.current_thread() is self._thread

    # -- Transport ------------------------------------------------------------

    def open_writer(self, channel: Channel) -> FrameWriter:
        with self._lock:
            self._check_open()
            topic = self._topic(channel.topic, KeyedEnvelope if channel.keyed else Envelope)
            try:
                entity: DataWriter[Any] = DataWriter(self._participant, topic, _qos.writer_qos(channel))
            except DDSException as e:
                raise _dds_error(f"cannot create a writer on topic {channel.topic}", e) from e
            try:
                writer = _Writer(self, channel, entity)
            except (struct.error, UnicodeError) as e:
                _delete(entity)
                raise TransportError(f"cannot write on topic {channel.topic} with header {channel}: {e}") from e
            self._writers.add(writer)
        return writer

    def open_reader(self, channel: Channel, deliver: Callable[[Sequence[Frame]], None]) -> FrameReader:
        qos = _qos.reader_qos(channel)

        # An envelope too broken to decode reaches the subscription as this empty frame (count 0),
        # which it counts as undecodable instead of the sample vanishing unseen.
        def broken(writer: int) -> Frame:
            return _MalformedFrame(interface=channel.interface, schema_id=channel.schema_id, writer=writer)

        if channel.keyed:
            keyed: Callable[[bytes, int], Frame] = _bytes.make_decoder(_make_frame, KeyedEnvelope.deserialize)
            return self._open_reader(channel.topic, KeyedEnvelope, qos, keyed, deliver, placeholder=broken)
        keyless: Callable[[bytes, int], Frame] = _bytes.make_decoder(_make_frame, Envelope.deserialize)
        return self._open_reader(channel.topic, Envelope, qos, keyless, deliver, placeholder=broken)

    def call_later(self, delay_s: float, callback: Callable[[], None], *, period_s: float | None = None) -> Timer:
        timer = _Timer(callback, None if period_s is None else max(1, int(period_s * 1e9)))
        due = time.monotonic_ns() + max(0, int(delay_s * 1e9))
        with self._lock:
            if self._closed:  # as in memory: a timer of a closed transport never fires
                return timer
            first = not self._timers or due < self._timers[0][0]
            heapq.heappush(self._timers, (due, next(self._order), timer))
        if first and not self.on_dispatch_thread():
            self._wake()
        return timer

    #: The wall clock (``time.time_ns``), as a builtin: the receive path reads it per message.
    now_ns = staticmethod(time.time_ns)

    def announce_schema(self, record: SchemaRecord) -> None:
        sample = Schema(record.schema_id, record.interface, record.topic, record.qos, record.descriptor_set)
        with self._lock:
            self._check_open()
            try:
                if self._schema_writer is None:
                    topic = self._topic(SCHEMA_TOPIC, Schema)
                    self._schema_writer = DataWriter(self._participant, topic, _qos.schema_qos(writer=True))
                self._schema_writer.write(sample)
            except DDSException as e:
                raise _dds_error(f"cannot announce schema {record.schema_id} on topic {SCHEMA_TOPIC}", e) from e
            self._schemas[record.schema_id] = record

    def schemas(self) -> list[SchemaRecord]:
        """Own announcements and the valid ones from the bus, the first for each schema id (SDK-SCHEMA-RX-006)."""
        with self._lock:
            return list(self._schemas.values())

    def refused_schemas(self) -> dict[str, int]:
        """How many schema announcements from the bus were not used, by reason (SDK-SCHEMA-RX-006).

        Reasons are those of :func:`hardpoint.check_schema_record`, plus ``conflict`` (another
        record than the one kept for its schema id), ``capacity`` (:data:`MAX_SCHEMAS` kept
        already) and ``undecodable`` (a sample that is not a schema announcement at all).
        """
        with self._lock:
            counts = dict(self._refused)
            reader = self._schema_reader
        if reader is not None and reader.malformed:
            counts["undecodable"] = reader.malformed
        return counts

    def last_refused_schemas(self) -> list[SchemaRefusal]:
        """The last few refused announcements (oldest first): reason, detail, schema id, interface, topic."""
        with self._lock:
            return list(self._recent_refused)

    def close(self) -> None:
        """Stop the dispatch thread, then delete every DDS entity of this transport; idempotent.

        Called from a callback (on the dispatch thread), it returns at once and
        the thread cleans up when the callback returns.
        """
        with self._lock:
            first = not self._closed
            self._closed = True
        if first:
            self._wake()
        if not self.on_dispatch_thread():
            self._thread.join()

    # -- internals: entities --------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"the DDS transport of domain {self.domain_id} is closed")

    def _topic(self, name: str, cls: type[Any]) -> Topic[Any]:
        found = self._topics.get(name)
        if found is not None:
            topic, existing = found
            if existing is not cls:
                raise TransportError(
                    f"topic {name} is already open with type {existing.__idl_typename__}, not {cls.__idl_typename__}"
                    " (one interface is keyed in one place and keyless in another?)"
                )
            return topic
        try:
            topic = Topic(self._participant, name, cls)
        except DDSException as e:
            raise _dds_error(f"cannot create topic {name}", e) from e
        self._topics[name] = (topic, cls)
        return topic

    def _open_reader(
        self,
        topic_name: str,
        cls: type[Any],
        qos: Any,
        decode: Callable[[bytes, int], S],
        deliver: Callable[[Sequence[S]], None],
        *,
        placeholder: Callable[[int], S] | None = None,
    ) -> _Reader[S]:
        with self._lock:
            self._check_open()
            topic = self._topic(topic_name, cls)
            try:
                entity: DataReader[Any] = DataReader(self._participant, topic, qos)
                reader = _Reader(self, topic_name, entity, decode, deliver, placeholder=placeholder)
                self._by_x[reader.x] = reader  # known before the waitset can report it
                self._attach(reader.x)
            except DDSException as e:
                raise _dds_error(f"cannot create a reader on topic {topic_name}", e) from e
            self._readers.append(reader)
        return reader

    def _attach(self, handle: int) -> None:
        """Attach a condition to the waitset, reported by its handle; under ``self._lock`` (or before the thread)."""
        if len(self._by_x) + 1 > len(self._triggered):
            self._triggered = _bytes.triggered_buffer(2 * (len(self._by_x) + 1))
        rc = _bytes.waitset_attach(self._waitset._ref, handle, handle)
        if rc < 0:
            raise DDSException(rc, "dds_waitset_attach")

    def _open_schema_reader(self) -> None:
        def decode(data: bytes, writer: int) -> Schema:
            del writer
            return Schema.deserialize(data)

        qos = _qos.schema_qos(writer=False)
        self._schema_reader = self._open_reader(SCHEMA_TOPIC, Schema, qos, decode, self._on_schemas)

    def _on_schemas(self, samples: Sequence[Schema]) -> None:
        """Keep the valid announcements, the first for each schema id; count the others (SDK-SCHEMA-RX-006)."""
        for s in samples:
            record = SchemaRecord(
                interface=s.interface,
                schema_id=s.schema_id,
                topic=s.topic,
                qos=s.qos,
                descriptor_set=bytes(s.descriptor_set),
            )
            with self._lock:
                if self._schemas.get(record.schema_id) == record:
                    continue  # the same announcement again (our own, or a late joiner's replay)
            # Checked without the lock: parsing a descriptor set takes a while.
            refusal = check_schema_record(record)
            with self._lock:
                held = self._schemas.get(record.schema_id)
                if refusal is None:
                    if held is None and len(self._schemas) < MAX_SCHEMAS:
                        self._schemas[record.schema_id] = record
                        continue
                    if held == record:
                        continue
                    reason, detail = (
                        ("capacity", f"{MAX_SCHEMAS} schemas are kept already")
                        if held is None
                        else ("conflict", "another record is kept for this schema id (the first valid one)")
                    )
                    refusal = SchemaRefusal(reason, detail, record.schema_id, record.interface, record.topic)
                self._refused[refusal.reason] += 1
                self._recent_refused.append(refusal)
                first = self._refused[refusal.reason] == 1
            # At warning level once per reason: a hostile writer must not be able to flood the log.
            _log.log(logging.WARNING if first else logging.DEBUG, "refused a schema announcement: %s", refusal)

    def _forget_writer(self, writer: _Writer) -> None:
        with self._lock:
            self._writers.discard(writer)

    def _delete_later(self, entity: DataWriter[Any], topic: str) -> None:
        """Delete a retired writer on a thread of its own; the transport's close waits for it."""
        with self._lock:
            if not self._closed:
                thread = threading.Thread(
                    target=self._linger, args=(entity,), name=f"hardpoint-dds-retire {topic}", daemon=True
                )
                self._lingering.add(thread)
                thread.start()
                return
        _delete(entity)  # closing anyway: the participant goes, and the writer with it

    def _linger(self, entity: DataWriter[Any]) -> None:
        try:
            _delete(entity)
        except Exception:  # pragma: no cover - deleting our own writer; nothing to do but say so
            _log.exception("deleting a retired writer failed")
        finally:
            with self._lock:
                self._lingering.discard(threading.current_thread())

    def _forget_reader(self, reader: _Reader[Any]) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)
            self._by_x.pop(reader.x, None)
            if reader.condition is not None and not self._closed:
                rc = _bytes.waitset_detach(self._waitset._ref, reader.x)
                if rc < 0:  # pragma: no cover - the condition is ours and attached
                    _log.warning(
                        "detaching the reader of topic %s failed: %s", reader.topic, DDSException(rc, "detach")
                    )
            reader.release()

    def _delete_entities(self) -> None:
        with self._lock:
            waitset: WaitSet | None = getattr(self, "_waitset", None)
            if waitset is not None:
                _delete(waitset)
                waitset.attached = []  # or its finalizer detaches them again from a deleted handle
            readers, self._readers = self._readers, []
            self._by_x.clear()
            writers, self._writers = list(self._writers), set()
            for reader in readers:
                reader.closed = True
                reader.release()
            for writer in writers:
                writer.close()
            schema_writer, self._schema_writer = self._schema_writer, None
            _delete(schema_writer)
            for topic, _ in self._topics.values():
                _delete(topic)
            self._topics.clear()
            for name in ("_guard", "_participant"):
                _delete(getattr(self, name, None))

    # -- internals: dispatch thread -------------------------------------------

    def _wake(self) -> None:
        with self._lock:
            if self._woken:
                return
            self._woken = True
            try:
                self._guard.set(True)
            except DDSException as e:  # pragma: no cover - the guard lives as long as the transport
                _log.error("cannot wake the dispatch thread of domain %s: %s", self.domain_id, e)

    def _reset_wake(self) -> None:
        with self._lock:
            if self._woken:
                self._woken = False
                self._guard.set(False)

    def _run(self) -> None:
        """Run due timers, wait, deliver what the triggered readers hold; until closed.

        The waitset says which read conditions triggered, so an iteration takes
        only from readers with samples (a reader left with more than one batch
        stays triggered, and the next wait returns at once), and the locks are
        taken only when there are timers or a wake-up to reset.
        """
        try:
            waitset = self._waitset._ref
            by_x = self._by_x
            while not self._closed:
                if self._timers:  # read without the lock: a timer added meanwhile wakes the wait
                    self._run_due_timers()
                triggered = _bytes.waitset_wait(waitset, self._triggered, self._next_wait_ns())
                if isinstance(triggered, int):
                    raise DDSException(triggered, "dds_waitset_wait")
                if self._woken:
                    self._reset_wake()
                for x in triggered:
                    reader = by_x.get(x)
                    if reader is None or reader.closed:
                        continue
                    for frames in reader.take_batch():
                        if frames and not reader.closed:
                            try:
                                reader.deliver(frames)
                            except Exception:
                                _log.exception("a deliver callback for topic %s raised", reader.topic)
                    if self.closed:  # a callback may have closed the transport
                        break
        except Exception:  # pragma: no cover - a bug in the loop itself; callbacks are guarded
            _log.exception("the dispatch thread of DDS domain %s failed", self.domain_id)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._timers.clear()
            lingering = list(self._lingering)
        for thread in lingering:  # let retired writers finish delivering before the participant goes
            thread.join(_LINGER_JOIN_S)
        self._delete_entities()
        _release_domain(self.domain_id)

    def _next_wait_ns(self) -> int:
        """Nanoseconds until the next timer is due, at most the idle wait."""
        if not self._timers:
            return _IDLE_WAIT_NS
        with self._lock:
            if not self._timers:
                return _IDLE_WAIT_NS
            return max(0, min(self._timers[0][0] - time.monotonic_ns(), _IDLE_WAIT_NS))

    def _run_due_timers(self) -> None:
        """Run every timer that is due, in deadline order."""
        while not self._closed:
            with self._lock:
                if not self._timers:
                    return
                due, _, timer = self._timers[0]
                now = time.monotonic_ns()
                if due > now:
                    return
                heapq.heappop(self._timers)
                if timer.cancelled:
                    continue
                if timer.period_ns is not None:
                    # Fixed rate; if the thread fell more than a period behind, skip the missed ticks.
                    next_due = due + timer.period_ns
                    if next_due <= now:
                        next_due = now + timer.period_ns
                    heapq.heappush(self._timers, (next_due, next(self._order), timer))
            try:
                timer.callback()
            except Exception:
                _log.exception("a timer callback raised")
