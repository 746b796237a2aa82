"""The two worker processes of ``bench/pubsub.py``: ``rx`` (subscriber, responder) and ``tx`` (publisher, initiator).

A worker lives for the whole run and executes the commands the parent sends on
its pipe, one task at a time. Each process keeps one instance of each engine for
the whole run: a hardpoint :class:`~hardpoint.CycloneTransport` (SDK contenders),
a Cyclone DDS domain and participant of its own (raw cyclonedds-python), and a
zenoh session; every task opens its own readers and writers and closes them.

Contenders (``kind``):

``sdk_event`` / ``sdk_state`` / ``sdk_stream``
    hardpoint's public API only: ``Bus(transport, module=..., provides=None,
    requires=None)`` (a tool bus), ``bus.publisher(T).publish(msg)`` with the
    default batch policy, ``bus.subscribe(T, callback)``.
``raw``
    plain cyclonedds-python, what issue 2 calls "raw cyclonedds-python": its
    public API only, no hardpoint code (hardpoint's packaged ``loopback.xml``
    is read as data, for the same configuration). An ``IdlStruct``
    envelope with the same members as hardpoint's (key, source, epoch, seq,
    count, stamp_ns, interface, schema_id, payload); the payload is declared
    ``sequence[uint8]`` (cyclonedds-python cannot build an XTypes type object
    for a ``bytes`` member) and read and written as ``bytes`` through the
    library's own ``BytesMachine`` (same wire format; a list of 65536 ints
    would be a straw man). A new envelope per message through
    ``DataWriter.write`` (the library's serializer); the receiver waits on a
    ``WaitSet`` and takes up to :data:`TAKE_MAX` samples at a time with
    ``DataReader.take``.
``raw_shim``
    the same envelope, QoS and loops, but encoded, written, taken and decoded
    through the private-API shim hardpoint's own transport uses
    (``hardpoint._dds._bytes``: a struct-built XCDR1 sample written with
    ``dds_write`` through ctypes, ``ddspy_take``, struct decoding): hardpoint's
    transport minus the Bus, a stricter baseline than the issue's.

``zenoh``
    zenoh-python, peer mode, multicast and gossip scouting off, listening and
    connecting on ``tcp/127.0.0.1:<port>`` only; ``put`` of the serialized
    message, ``FromString`` in the subscriber callback.

Both raw contenders: one DDS sample per message; hardpoint's packaged
``loopback.xml``; reliable, keep-all, the same resource limits (1024 samples)
as the SDK's event class; the receiver's loop runs on its own thread like the
SDK's dispatch thread, and a ping-pong responder writes its reply from that loop.

Every contender serializes the message on each publish and parses it on each
receive; the receiver counts messages in the same callback.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from multiprocessing.connection import Connection
from typing import Any

import _pubsub_messages as messages
from google.protobuf.message import Message

#: The raw contenders: their kinds, and their topics (``bench/<kind>/<name>``).
RAW_KINDS = ("raw", "raw_shim")
RAW_TOPIC = "data"
RAW_PING = "ping"
RAW_PONG = "pong"
#: Keys of the zenoh contender.
ZENOH_KEY = "bench/data"
ZENOH_PING = "bench/ping"
ZENOH_PONG = "bench/pong"
#: Samples the raw receiver takes at a time (the SDK's transport takes 256 too).
TAKE_MAX = 256
#: Raw reliable resource limit (the SDK's event class uses max(history depth, 1024)).
RAW_MAX_SAMPLES = 1024


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped for want of socket receive buffer, host-wide (a diagnostic; 0 if unknown)."""
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return 0


class Counter:
    """Counts received messages and remembers the marker of the first one."""

    __slots__ = ("first", "got", "marker", "n")

    def __init__(self, marker: str) -> None:
        self.n = 0
        self.first: int | None = None
        self.marker = marker
        self.got = threading.Event()

    def on_msg(self, msg: Message) -> None:
        self.n += 1
        if self.first is None:
            self.first = getattr(msg, self.marker)
            self.got.set()


def payload_for(kind: str, size: int) -> messages.Payload:
    if kind == "sdk_state":
        return messages.state(size)
    if kind in ("sdk_stream", "zenoh"):
        return messages.stream(size)
    return messages.event(size)


# -- engines, one of each per process ------------------------------------------------


class Engines:
    def __init__(self, cfg: dict[str, Any], name: str) -> None:
        self.cfg = cfg
        self.name = name
        self._transport: Any = None
        self._raw: Any = None
        self._zenoh: Any = None

    @property
    def transport(self) -> Any:
        if self._transport is None:
            from hardpoint import CycloneTransport

            self._transport = CycloneTransport(domain_id=self.cfg["sdk_domain"])
        return self._transport

    @property
    def raw(self) -> RawDds:
        if self._raw is None:
            self._raw = RawDds(self.cfg["raw_domain"])
        return self._raw

    @property
    def zenoh(self) -> Any:
        if self._zenoh is None:
            import zenoh

            conf = zenoh.Config()
            conf.insert_json5("mode", '"peer"')
            conf.insert_json5("scouting/multicast/enabled", "false")
            conf.insert_json5("scouting/gossip/enabled", "false")
            ports = self.cfg["zenoh_ports"]
            conf.insert_json5("listen/endpoints", json.dumps([f"tcp/127.0.0.1:{ports[self.name]}"]))
            if self.name == "tx":
                conf.insert_json5("connect/endpoints", json.dumps([f"tcp/127.0.0.1:{ports['rx']}"]))
            self._zenoh = zenoh.open(conf)
        return self._zenoh

    def bus(self) -> Any:
        from hardpoint import Bus

        return Bus(self.transport, module=f"bench-{self.name}", provides=None, requires=None)

    def close(self) -> None:
        if self._zenoh is not None:
            self._zenoh.close()
        if self._raw is not None:
            self._raw.close()
        if self._transport is not None:
            self._transport.close()


class RawDds:
    """A Cyclone DDS domain (hardpoint's loopback configuration) and participant, no hardpoint Bus.

    The two raw contenders share the domain, participant and QoS, but each has
    its own envelope type and topics, so neither sees the other's type machinery.
    """

    def __init__(self, domain_id: int) -> None:
        from cyclonedds.core import Policy, Qos
        from cyclonedds.domain import Domain, DomainParticipant
        from cyclonedds.util import duration

        # The packaged file is read as data: the configuration the SDK's transport runs on.
        xml = resources.files("hardpoint._dds").joinpath("loopback.xml").read_text(encoding="utf-8")
        self.domain = Domain(domain_id, xml)
        self.participant = DomainParticipant(domain_id)
        reliable = Policy.Reliability.Reliable(max_blocking_time=duration(seconds=10))
        limits = Policy.ResourceLimits(
            max_samples=RAW_MAX_SAMPLES, max_instances=-1, max_samples_per_instance=RAW_MAX_SAMPLES
        )
        self.writer_qos = Qos(
            reliable,
            Policy.Durability.Volatile,
            Policy.History.KeepAll,
            limits,
            Policy.DataRepresentation(use_cdrv0_representation=True),
        )
        self.reader_qos = self.writer_qos
        self._envelopes: dict[str, Any] = {}
        self._topics: dict[str, Any] = {}

    def envelope(self, kind: str) -> Any:
        """The envelope type of contender ``kind`` (``raw`` or ``raw_shim``), built on first use."""
        if kind not in self._envelopes:
            cls = envelope_type(f"bench::{kind.title().replace('_', '')}Envelope")
            if kind == "raw_shim":
                from hardpoint._dds import _bytes

                _bytes.use_bytes(cls, "payload")
            else:
                bytes_member(cls, "payload")
            self._envelopes[kind] = cls
        return self._envelopes[kind]

    def topic(self, kind: str, name: str) -> Any:
        from cyclonedds.topic import Topic

        full = f"bench/{kind}/{name}"
        if full not in self._topics:
            self._topics[full] = Topic(self.participant, full, self.envelope(kind))
        return self._topics[full]

    def close(self) -> None:
        for t in self._topics.values():
            t.__del__()
        self.participant.__del__()
        self.domain.__del__()


def envelope_type(typename: str) -> Any:
    """An ``IdlStruct`` with the same members, in the same order, as hardpoint's envelope (no type shared with it)."""
    from dataclasses import dataclass as idl_dataclass

    from cyclonedds.idl import IdlStruct
    from cyclonedds.idl.types import int64, sequence, uint8, uint32, uint64

    members = {
        "key": str,
        "source": str,
        "epoch": uint32,
        "seq": uint64,
        "count": uint32,
        "stamp_ns": int64,
        "interface": str,
        "schema_id": str,
        # Declared as a sequence because the library cannot build a type object for ``bytes``.
        "payload": sequence[uint8],
    }

    def body(ns: dict[str, Any]) -> None:
        ns["__annotations__"] = members

    name = typename.rsplit("::", maxsplit=1)[-1]
    return idl_dataclass(types.new_class(name, (IdlStruct,), {"typename": typename}, body))


def bytes_member(cls: Any, member: str) -> None:
    """Make ``member`` of ``cls`` (declared ``sequence[uint8]``) read and write ``bytes``.

    The plain contender's way of doing what a cyclonedds-python user does for a
    binary payload: the library's own ``BytesMachine`` (what it uses for a
    ``bytes`` member; the same wire format as ``sequence<uint8>``) replaces the
    member's machine in both of the type's serializers. The type object still
    says ``sequence<uint8>``.
    """
    from cyclonedds.idl._machinery import BytesMachine, PlainCdrV2SequenceOfPrimitiveMachine

    idl = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        current = machine.members_machines[member]
        if not isinstance(current, PlainCdrV2SequenceOfPrimitiveMachine) or current.code != "B":
            raise RuntimeError(f"cyclonedds changed: {cls.__name__}.{member} is not serialized as sequence<uint8>")
        machine.members_machines[member] = BytesMachine(current.max_length)


# -- raw contender building blocks ---------------------------------------------------

#: The envelope fields every raw message carries besides seq, stamp and payload.
RAW_SOURCE = "bench-raw"
RAW_INTERFACE = "bench.Raw"
RAW_SCHEMA_ID = "0123456789abcdef"


class RawWriter:
    """Writes one message per DDS sample on topic ``bench/<kind>/<name>``."""

    def __init__(self, raw: RawDds, kind: str, name: str) -> None:
        from cyclonedds.pub import DataWriter

        self._entity = DataWriter(raw.participant, raw.topic(kind, name), raw.writer_qos)
        if kind == "raw":
            self.publish = plain_publisher(self._entity, raw.envelope(kind))
        elif kind == "raw_shim":
            self.publish = shim_publisher(self._entity)
        else:
            raise ValueError(kind)

    def close(self) -> None:
        self._entity.__del__()


def plain_publisher(writer: Any, envelope: Any) -> Callable[[Message], None]:
    """cyclonedds-python's public API: a new envelope per message, ``DataWriter.write``."""
    write = writer.write
    time_ns = time.time_ns
    epoch = os.getpid()
    seq = 0

    def publish(msg: Message) -> None:
        nonlocal seq
        seq += 1
        write(
            envelope(
                key="",
                source=RAW_SOURCE,
                epoch=epoch,
                seq=seq,
                count=1,
                stamp_ns=time_ns(),
                interface=RAW_INTERFACE,
                schema_id=RAW_SCHEMA_ID,
                payload=msg.SerializeToString(),
            )
        )

    return publish


def shim_publisher(writer: Any) -> Callable[[Message], None]:
    """hardpoint's private shim: a struct-built XCDR1 sample, ``dds_write`` through ctypes."""
    from hardpoint._dds import _bytes

    ref = writer._ref
    encode = _bytes.EnvelopeEncoder(
        source=RAW_SOURCE, epoch=os.getpid(), interface=RAW_INTERFACE, schema_id=RAW_SCHEMA_ID
    ).encode
    write = _bytes.write
    time_ns = time.time_ns
    seq = 0

    def publish(msg: Message) -> None:
        nonlocal seq
        seq += 1
        rc = write(ref, encode("", seq, 1, time_ns(), msg.SerializeToString()))
        if rc < 0:
            raise RuntimeError(f"dds_write failed: {rc}")

    return publish


class RawReader:
    """Waits on a WaitSet, takes up to :data:`TAKE_MAX` samples, parses each payload, calls ``on_msg``.

    :meth:`start` runs the loop on its own thread (like the SDK's dispatch thread).
    """

    def __init__(
        self, raw: RawDds, kind: str, name: str, msg_type: type[Message], on_msg: Callable[[Message], None]
    ) -> None:
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.sub import DataReader

        self._entity = DataReader(raw.participant, raw.topic(kind, name), raw.reader_qos)
        self._waitset = WaitSet(raw.participant)
        self._condition = ReadCondition(self._entity, SampleState.Any | ViewState.Any | InstanceState.Any)
        self._waitset.attach(self._condition)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        if kind == "raw":
            self.drain = plain_drainer(self._entity, msg_type, on_msg)
        elif kind == "raw_shim":
            self.drain = shim_drainer(self._entity, raw.envelope(kind), msg_type, on_msg)
        else:
            raise ValueError(kind)

    def poll(self, timeout_ns: int) -> None:
        self._waitset.wait(timeout_ns)
        self.drain()

    def start(self) -> None:
        def run() -> None:
            try:
                while not self._stop:
                    self.poll(100_000_000)
            except BaseException as e:  # reported by close(), so that the task fails instead of counting short
                self._failure = e

        self._thread = threading.Thread(target=run, name="raw-reader", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join()
        self._waitset.detach(self._condition)
        self._condition.__del__()
        self._waitset.__del__()
        self._entity.__del__()
        if self._failure is not None:
            raise RuntimeError("the raw reader's receive loop failed") from self._failure


def plain_drainer(reader: Any, msg_type: type[Message], on_msg: Callable[[Message], None]) -> Callable[[], None]:
    """cyclonedds-python's public API: ``DataReader.take(N)``, deserialized envelopes.

    A take also returns the key-only ``InvalidSample`` that says a writer went away; it carries no message.
    """
    take = reader.take
    parse = msg_type.FromString

    def drain() -> None:
        while True:
            samples = take(TAKE_MAX)
            for s in samples:
                if s.sample_info.valid_data:
                    on_msg(parse(s.payload))
            if len(samples) < TAKE_MAX:
                return

    return drain


def shim_drainer(
    reader: Any, envelope: Any, msg_type: type[Message], on_msg: Callable[[Message], None]
) -> Callable[[], None]:
    """hardpoint's private shim: ``ddspy_take`` and its struct decoder."""
    from hardpoint._dds import _bytes

    ref = reader._ref
    take = _bytes.take
    parse = msg_type.FromString
    decode = _bytes.make_decoder(tuple, envelope.deserialize)

    def drain() -> None:
        while True:
            taken = take(ref, TAKE_MAX)
            if isinstance(taken, int):
                raise RuntimeError(f"dds_take failed: {taken}")
            for data, info in taken:
                if info.valid_data:
                    on_msg(parse(decode(data, 0)[8]))
            if len(taken) < TAKE_MAX:
                return

    return drain


# -- throughput ----------------------------------------------------------------------


@dataclass
class Receiver:
    counter: Counter
    close: Callable[[], None]
    counters: Callable[[], dict[str, int]] = dict


def open_receiver(eng: Engines, kind: str, payload: messages.Payload) -> Receiver:
    counter = Counter(payload.marker)
    if kind.startswith("sdk_"):
        bus = eng.bus()
        depth = eng.cfg.get("stream_history") if kind == "sdk_stream" else None
        sub = bus.subscribe(payload.type, counter.on_msg, history_depth=depth)
        return Receiver(counter, bus.close, sub.counters.as_dict)
    if kind in RAW_KINDS:
        reader = RawReader(eng.raw, kind, RAW_TOPIC, payload.type, counter.on_msg)
        reader.start()
        return Receiver(counter, reader.close)
    if kind == "zenoh":
        parse = payload.type.FromString
        on_msg = counter.on_msg

        def on_sample(sample: Any) -> None:
            on_msg(parse(sample.payload.to_bytes()))

        sub = eng.zenoh.declare_subscriber(ZENOH_KEY, on_sample)
        return Receiver(counter, sub.undeclare)
    raise ValueError(kind)


@dataclass
class Sender:
    publish: Callable[[Message], None]
    flush: Callable[[], None]
    close: Callable[[], None]


def open_sender(eng: Engines, kind: str, payload: messages.Payload) -> Sender:
    if kind.startswith("sdk_"):
        bus = eng.bus()
        pub = bus.publisher(payload.type)
        return Sender(pub.publish, bus.flush, bus.close)
    if kind in RAW_KINDS:
        writer = RawWriter(eng.raw, kind, RAW_TOPIC)
        return Sender(writer.publish, lambda: None, writer.close)
    if kind == "zenoh":
        zpub = eng.zenoh.declare_publisher(ZENOH_KEY)
        put = zpub.put

        def publish(msg: Message) -> None:
            put(msg.SerializeToString())

        return Sender(publish, lambda: None, zpub.undeclare)
    raise ValueError(kind)


def probe_until_go(conn: Connection, sender: Sender, payload: messages.Payload) -> int:
    """Publish probe 1, 2, ... every 10 ms until the parent says go; returns how many were sent."""
    n = 0
    while True:
        n += 1
        sender.publish(payload.probe(n))
        sender.flush()
        if conn.poll(0.01):
            cmd = conn.recv()
            assert cmd[0] == "go", cmd
            return n


def blast(sender: Sender, payload: messages.Payload, seconds: float) -> dict[str, float]:
    """Publish data messages as fast as possible for ``seconds``: how many, and the process's CPU time per message.

    The CPU time is that of the whole process (every thread: the SDK's dispatch thread, the DDS and zenoh threads).
    """
    chunk = list(payload.messages) * max(1, 64 // len(payload.messages))
    if payload.messages[0].ByteSize() > 16384:
        chunk = chunk[: max(len(payload.messages), 8)]
    publish = sender.publish
    clock = time.perf_counter
    cpu0 = time.process_time()
    start = clock()
    end = start + seconds
    n = 0
    while clock() < end:
        for m in chunk:
            publish(m)
        n += len(chunk)
    sender.flush()
    cpu = time.process_time() - cpu0
    return {"blasted": n, "tx_cpu_us_per_msg": cpu / n * 1e6, "tx_cpu_load": cpu / (clock() - start)}


def measure(counter: Counter, warmup: float, window: float) -> dict[str, float]:
    time.sleep(warmup)
    c0, t0, cpu0 = counter.n, time.perf_counter(), time.process_time()
    time.sleep(window)
    c1, t1, cpu1 = counter.n, time.perf_counter(), time.process_time()
    n = c1 - c0
    return {
        "msgs_per_s": n / (t1 - t0),
        "window_s": t1 - t0,
        "in_window": n,
        "rx_cpu_us_per_msg": (cpu1 - cpu0) / max(n, 1) * 1e6,
        "rx_cpu_load": (cpu1 - cpu0) / (t1 - t0),
    }


def drain(counter: Counter, expected: int | None, timeout: float) -> None:
    """Wait until ``expected`` messages arrived (reliable) or nothing arrived for 0.3 s."""
    deadline = time.perf_counter() + timeout
    last, quiet_since = counter.n, time.perf_counter()
    while time.perf_counter() < deadline:
        if expected is not None and counter.n >= expected:
            return
        time.sleep(0.01)
        if counter.n != last:
            last, quiet_since = counter.n, time.perf_counter()
            continue
        # Best effort: done once quiet. Reliable: nothing has moved for 3 s, so report what is missing.
        if time.perf_counter() - quiet_since > (0.3 if expected is None else 3.0):
            return


# -- latency (ping-pong) ---------------------------------------------------------------


def open_responder(eng: Engines, kind: str, size: int) -> Callable[[], None]:
    ping = messages.event(size)
    pong = messages.pong(size)
    if kind == "sdk_event":
        bus = eng.bus()
        pub = bus.publisher(type(pong))
        publish = pub.publish

        def echo(_msg: Message) -> None:
            publish(pong)

        bus.subscribe(ping.type, echo)
        return bus.close
    if kind in RAW_KINDS:
        # The reply is written from the reader's receive loop, as the SDK's dispatch thread does.
        writer = RawWriter(eng.raw, kind, RAW_PONG)
        wpublish = writer.publish

        def echo_raw(_msg: Message) -> None:
            wpublish(pong)

        reader = RawReader(eng.raw, kind, RAW_PING, ping.type, echo_raw)
        reader.start()

        def close() -> None:
            reader.close()
            writer.close()

        return close
    if kind == "zenoh":
        session = eng.zenoh
        zpub = session.declare_publisher(ZENOH_PONG)
        put = zpub.put
        parse = ping.type.FromString

        closing = threading.Event()

        def on_ping(sample: Any) -> None:
            parse(sample.payload.to_bytes())
            if not closing.is_set():
                put(pong.SerializeToString())

        sub = session.declare_subscriber(ZENOH_PING, on_ping)

        def zclose() -> None:
            closing.set()
            sub.undeclare()
            undeclare_when_free(zpub)

        return zclose
    raise ValueError(kind)


def undeclare_when_free(zpub: Any) -> None:
    """Undeclare a zenoh publisher; a stray callback still in ``put`` holds it a moment ("Already borrowed")."""
    for _ in range(200):
        try:
            zpub.undeclare()
            return
        except RuntimeError as e:
            if "Already borrowed" not in str(e):
                raise
            time.sleep(0.005)
    zpub.undeclare()


class PingState:
    """Callback-driven ping-pong: each pong records a round trip and sends the next ping."""

    def __init__(self, publish: Callable[[Message], None], ping: Message, total: int) -> None:
        self.publish = publish
        self.ping = ping
        self.total = total
        self.running = False
        self.matched = threading.Event()
        self.done = threading.Event()
        self.rtts: list[int] = []
        self.t_sent = 0

    def on_pong(self, _msg: Message) -> None:
        t = time.perf_counter_ns()
        if not self.running:
            self.matched.set()
            return
        self.rtts.append(t - self.t_sent)
        if len(self.rtts) >= self.total:
            self.running = False
            self.done.set()
            return
        self.t_sent = time.perf_counter_ns()
        self.publish(self.ping)

    def run(self, timeout: float) -> list[int]:
        """Probe until the responder answers, let stray pongs pass, then run the chain."""
        deadline = time.monotonic() + 10
        while not self.matched.wait(0.02):
            if time.monotonic() > deadline:
                raise RuntimeError("no pong within 10 s: the responder never matched")
            self.publish(self.ping)
        time.sleep(0.1)  # pongs of earlier probes still in flight arrive while not running
        self.running = True
        self.t_sent = time.perf_counter_ns()
        self.publish(self.ping)
        if not self.done.wait(timeout):
            raise RuntimeError(f"ping-pong stalled after {len(self.rtts)} of {self.total} round trips")
        return self.rtts


def ping_pong(eng: Engines, kind: str, size: int, total: int, timeout: float) -> list[int]:
    ping = messages.event(size).messages[0]
    pong_type = type(messages.pong(size))
    if kind == "sdk_event":
        bus = eng.bus()
        pub = bus.publisher(type(ping))
        state = PingState(pub.publish, ping, total)
        bus.subscribe(pong_type, state.on_pong)
        try:
            return state.run(timeout)
        finally:
            bus.close()
    if kind in RAW_KINDS:
        writer = RawWriter(eng.raw, kind, RAW_PING)
        state = PingState(writer.publish, ping, total)
        reader = RawReader(eng.raw, kind, RAW_PONG, pong_type, state.on_pong)
        reader.start()
        try:
            return state.run(timeout)
        finally:
            reader.close()
            writer.close()
    if kind == "zenoh":
        session = eng.zenoh
        zpub = session.declare_publisher(ZENOH_PING)
        put = zpub.put

        def publish(msg: Message) -> None:
            put(msg.SerializeToString())

        state = PingState(publish, ping, total)
        parse = pong_type.FromString

        def on_pong(sample: Any) -> None:
            state.on_pong(parse(sample.payload.to_bytes()))

        sub = session.declare_subscriber(ZENOH_PONG, on_pong)
        try:
            return state.run(timeout)
        finally:
            sub.undeclare()
            undeclare_when_free(zpub)
    raise ValueError(kind)


# -- command loop ----------------------------------------------------------------------


class Worker:
    """The state of one worker process between commands; ``cmd_<name>`` executes command ``name``."""

    def __init__(self, conn: Connection, name: str, cfg: dict[str, Any]) -> None:
        self.conn = conn
        self.eng = Engines(cfg, name)
        self.receiver: Receiver | None = None
        self.sender: Sender | None = None
        self.payload: messages.Payload | None = None
        self.responder: Callable[[], None] | None = None
        self.udp_errors = 0

    def cmd_warm(self, kinds: list[str]) -> None:
        """Open the engines the run needs before the first task."""
        if any(k.startswith("sdk_") for k in kinds):
            self.eng.transport  # noqa: B018
        if any(k.startswith("raw") for k in kinds):
            self.eng.raw  # noqa: B018
        if "zenoh" in kinds:
            self.eng.zenoh  # noqa: B018

    def cmd_rx_open(self, kind: str, size: int) -> None:
        self.payload = payload_for(kind, size)
        self.receiver = open_receiver(self.eng, kind, self.payload)
        self.udp_errors = udp_rcvbuf_errors()

    def _receiver(self) -> Receiver:
        if self.receiver is None:
            raise RuntimeError("no receiver open")
        return self.receiver

    def cmd_rx_wait_first(self, timeout: float) -> None:
        if not self._receiver().counter.got.wait(timeout):
            raise RuntimeError(f"nothing received within {timeout} s: the sender never matched")

    def cmd_rx_measure(self, warmup: float, window: float) -> dict[str, float]:
        return measure(self._receiver().counter, warmup, window)

    def cmd_rx_drain(self, sent: int, reliable: bool, timeout: float) -> dict[str, Any]:
        receiver = self._receiver()
        c = receiver.counter
        expected = sent - ((c.first or 1) - 1)  # probes sent before the first one received never reached us
        drain(c, expected if reliable else None, timeout)
        return {
            "received": c.n,
            "expected": expected,
            "lost": expected - c.n,
            "sdk": receiver.counters(),
            "udp_rcvbuf_errors": udp_rcvbuf_errors() - self.udp_errors,
        }

    def cmd_rx_close(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
        self.receiver = None

    def cmd_tx_open(self, kind: str, size: int) -> None:
        self.payload = payload_for(kind, size)
        self.sender = open_sender(self.eng, kind, self.payload)

    def cmd_tx_probe(self, seconds: float) -> dict[str, Any]:
        """Probe until the parent's ``go``, then publish for ``seconds``."""
        if self.sender is None or self.payload is None:
            raise RuntimeError("no sender open")
        probes = probe_until_go(self.conn, self.sender, self.payload)
        stats = blast(self.sender, self.payload, seconds)
        return {"sent": probes + stats["blasted"], "probes": probes, **stats}

    def cmd_tx_close(self) -> None:
        if self.sender is not None:
            self.sender.close()
        self.sender = None

    def cmd_pong_open(self, kind: str, size: int) -> None:
        self.responder = open_responder(self.eng, kind, size)

    def cmd_pong_close(self) -> None:
        if self.responder is not None:
            self.responder()
        self.responder = None

    def cmd_ping(self, kind: str, size: int, total: int, timeout: float) -> list[int]:
        return ping_pong(self.eng, kind, size, total, timeout)


def serve(conn: Connection, name: str, cfg: dict[str, Any]) -> None:
    """Execute the parent's commands until ``quit``; every reply is ``("ok", value)`` or ``("error", text)``."""
    worker = Worker(conn, name, cfg)
    try:
        while True:
            cmd, *args = conn.recv()
            if cmd == "quit":
                conn.send(("ok", None))
                return
            try:
                method = getattr(worker, f"cmd_{cmd}", None)
                if method is None:
                    raise ValueError(f"unknown command {cmd!r}")
                conn.send(("ok", method(*args)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        worker.eng.close()
