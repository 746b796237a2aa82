"""A writer that is not the SDK attacks an SDK subscriber in another process.

Acceptance 4 of issue 2. The writer is plain ``cyclonedds`` code in this test
process: its own ``DomainParticipant``, ``Topic`` and ``DataWriter``, with the
envelope type declared here (same IDL typename and members as the SDK's, no
SDK code) and the QoS of an EVENT topic. Hypothesis drives what it writes:
valid messages and batches interleaved with garbage payloads, wrong schema ids,
wrong interface names, replayed and skipped sequence numbers, out-of-range
counts, batches whose size disagrees with their count, writer restarts (new
epoch) and a key set on a keyless topic.

The expected outcome of every sequence comes from :class:`Oracle`, a pure model
of the documented receive rules (IF-ENV-RX-ORDER: interface, schema id, count,
sequence, payload), using the same protobuf parser as the subscriber, so a
random payload that happens to parse is a good message on both sides. The SDK
subscriber (``_procs/node.py``) is one long-lived process per test; every
Hypothesis example uses a fresh ``source`` so the sequence tracks of earlier
examples never matter, and ends with a fence sample so the test knows when the
subscriber has processed everything before comparing.

:func:`test_envelopes_below_the_idl_type` goes below the IDL type: it writes
serialized samples that no IDL serializer would produce (big-endian CDR,
strings that are not UTF-8).
"""

# No ``from __future__ import annotations``: cyclonedds resolves the IDL member
# annotations at run time in this module's namespace.
import ctypes
import itertools
import struct
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from _procs.harness import Dds, Node, wait_until
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import int64, sequence, uint8, uint32, uint64
from cyclonedds.internal import DDS
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardpoint import interface_spec
from hardpoint._bus import MAX_BATCH
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import header_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SPEC = interface_spec(alert_pb2.Alert)
ALERT = SPEC.name
WAIT_S = 10.0
COUNTERS = ("delivered", "undecodable", "wrong_interface", "schema_mismatch", "duplicates", "lost", "callback_errors")


@dataclass
class HostileEnvelope(IdlStruct, typename="hardpoint::bus::Envelope"):
    """The bus envelope as any DDS program can declare it (IF-ENV-HEADER); not the SDK's class."""

    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    payload: sequence[uint8]


@dataclass(frozen=True)
class Sent:
    """One sample the hostile writer sends."""

    kind: str
    key: str
    source: str
    epoch: int
    seq: int
    count: int
    stamp_ns: int
    interface: str
    schema_id: str
    payload: bytes


# -- the oracle --------------------------------------------------------------------


class Oracle:
    """What an SDK subscriber must do with each sample, from the documented rules alone."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.delivered: list[str] = []  # deterministic serializations, hex
        self._last: dict[tuple[str, int, str], int] = {}

    def receive(self, s: Sent) -> None:
        c = self.counters
        # IF-ENV-RX-INTERFACE, then IF-ENV-RX-SCHEMA: a frame of `count` messages counts as that many (at least 1).
        if s.interface != ALERT:
            c["wrong_interface"] += max(s.count, 1)
            return
        if s.schema_id != SPEC.schema_id:
            c["schema_mismatch"] += max(s.count, 1)
            return
        # IF-ENV-RX-DECODE, count out of range (IF-ENV-BATCH: at least 1; the SDK's bound is MAX_BATCH):
        # one malformed sample.
        if not 1 <= s.count <= MAX_BATCH:
            c["undecodable"] += 1
            return
        # IF-ENV-RX-DUP and IF-ENV-RX-GAP, per (source, epoch, key) (IF-ENV-EPOCH).
        track = (s.source, s.epoch, s.key)
        last = self._last.get(track)
        if last is not None:
            if s.seq <= last:
                c["duplicates"] += s.count
                return
            c["lost"] += s.seq - last - 1
        self._last[track] = s.seq + s.count - 1
        # IF-ENV-RX-DECODE, payload: one message, or a hardpoint.core.v1.Batch of exactly `count` messages.
        try:
            if s.count == 1:
                messages = [alert_pb2.Alert.FromString(s.payload)]
            else:
                items = header_pb2.Batch.FromString(s.payload).items
                if len(items) != s.count:
                    raise ValueError("batch size differs from count")
                messages = [alert_pb2.Alert.FromString(item) for item in items]
        except Exception:
            c["undecodable"] += s.count
            return
        c["delivered"] += len(messages)
        self.delivered.extend(m.SerializeToString(deterministic=True).hex() for m in messages)


# -- what the hostile writer sends -----------------------------------------------------

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
#: Text for IDL strings: no NUL (a CDR string ends at its NUL) and no surrogates.
IDL_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=24)
OTHER_INTERFACES = st.sampled_from(
    ["hardpoint.alert.v1.AlertAck", "hardpoint.alert.v2.Alert", "hardpoint.alert.v1.alert", "", ALERT + " "]
) | IDL_TEXT.filter(lambda t: t != ALERT)
OTHER_SCHEMAS = (
    st.sampled_from(
        [interface_spec(alert_pb2.AlertAck).schema_id, SPEC.schema_id.upper(), SPEC.schema_id[:-1] + "0", ""]
    )
    | IDL_TEXT
)
KINDS = ("good", "good", "good", "garbage", "garbage", "wrong_schema", "wrong_interface", "bad_count",
         "miscount", "restart", "rekey")  # fmt: skip

_alert_ids = itertools.count()


@st.composite
def good_alerts(draw: Any, n: int) -> list[alert_pb2.Alert]:
    return [
        alert_pb2.Alert(
            alert_id=f"good-{next(_alert_ids)}",
            state=draw(st.sampled_from(alert_pb2.AlertState.values())),
            severity=draw(st.sampled_from(alert_pb2.AlertSeverity.values())),
            category=alert_pb2.ALERT_CATEGORY_SYSTEM,
            text=draw(TEXT),
            raised_time_ns=draw(st.integers(1, 2**63 - 1)),
        )
        for _ in range(n)
    ]


def batch(messages: list[alert_pb2.Alert]) -> bytes:
    return header_pb2.Batch(items=[m.SerializeToString() for m in messages]).SerializeToString()


@st.composite
def hostile_run(draw: Any) -> list[Sent]:  # noqa: PLR0912 - one branch per kind of sample
    """A sequence of samples from one misbehaving writer (``source`` is filled in per example)."""
    out: list[Sent] = []
    epoch = draw(st.integers(0, 2**32 - 1))
    key = ""
    wseq = draw(st.sampled_from([1, 1, 1, 1000, 2**40]))  # the writer's next sequence number
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(KINDS))
        if kind == "restart":
            epoch, wseq = draw(st.integers(0, 2**32 - 1)), 1
            continue
        if kind == "rekey":
            key = draw(st.sampled_from(["", "k", "other"]))
            continue
        interface, schema_id = ALERT, SPEC.schema_id
        if kind == "good":
            count = draw(st.integers(1, 4))
            msgs = draw(good_alerts(count))
            payload = msgs[0].SerializeToString() if count == 1 else batch(msgs)
        elif kind == "garbage":
            count = draw(st.sampled_from([1, 1, 1, 2, 3]))
            payload = draw(st.binary(max_size=48))
        elif kind == "miscount":
            n = draw(st.integers(2, 4))
            count = draw(st.integers(1, 6).filter(lambda c, n=n: c != n))
            payload = batch(draw(good_alerts(n)))
        else:
            count = 1
            payload = draw(good_alerts(1))[0].SerializeToString()
            if kind == "wrong_schema":
                schema_id = draw(OTHER_SCHEMAS.filter(lambda s: s != SPEC.schema_id))
            elif kind == "wrong_interface":
                interface = draw(OTHER_INTERFACES)
                count = draw(st.integers(0, 3))
            elif kind == "bad_count":
                count = draw(st.sampled_from([0, MAX_BATCH + 1, 2**32 - 1]) | st.integers(MAX_BATCH + 1, 2**32 - 1))
        mode = draw(st.sampled_from(["next", "next", "next", "next", "replay", "skip"]))
        if mode == "replay" and wseq > 1:
            seq = draw(st.integers(max(0, wseq - 6), wseq - 1))
        elif mode == "skip":
            seq = wseq + draw(st.integers(1, 5) | st.just(2**32))
        else:
            seq = wseq
        if mode != "replay" and 1 <= count <= MAX_BATCH:
            wseq = seq + count
        stamp = draw(st.integers(-(2**63), 2**63 - 1))
        out.append(Sent(kind, key, "", epoch, seq, count, stamp, interface, schema_id, payload))
    return out


# -- the writer ------------------------------------------------------------------------


def event_qos(representation: str) -> Qos:
    """The QoS of an EVENT topic (hardpoint/_dds/_qos.py), declared independently, in one data representation."""
    rep = (
        Policy.DataRepresentation(use_cdrv0_representation=True)
        if representation == "xcdr1"
        else Policy.DataRepresentation(use_xcdrv2_representation=True)
    )
    return Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=1)),
        Policy.Durability.Volatile,
        Policy.History.KeepAll,
        Policy.ResourceLimits(max_samples=1024, max_instances=-1, max_samples_per_instance=1024),
        Policy.Liveliness.Automatic(lease_duration=duration(infinite=True)),
        rep,
    )


class HostileWriter:
    def __init__(self, writer: DataWriter[HostileEnvelope]) -> None:
        self._writer = writer
        self.sent: list[Sent] = []

    def write(self, s: Sent) -> None:
        self._writer.write(
            HostileEnvelope(
                s.key, s.source, s.epoch, s.seq, s.count, s.stamp_ns, s.interface, s.schema_id, list(s.payload)
            )
        )
        self.sent.append(s)


@contextmanager
def hostile_writer(dds: Dds, representation: str) -> Iterator[HostileWriter]:
    domain = Domain(dds.domain_id, dds.config)
    participant = DomainParticipant(dds.domain_id)
    topic = Topic(participant, SPEC.topic, HostileEnvelope)
    writer = DataWriter(participant, topic, event_qos(representation))
    try:
        yield HostileWriter(writer)
    finally:
        for entity in (writer, topic, participant, domain):
            entity.__del__()  # delete the DDS entities now, not at garbage collection


def valid(source: str, seq: int, alert_id: str) -> Sent:
    msg = alert_pb2.Alert(alert_id=alert_id, text="valid", raised_time_ns=time.time_ns())
    return Sent("good", "", source, 1, seq, 1, time.time_ns(), ALERT, SPEC.schema_id, msg.SerializeToString())


def delivered_until(listener: Node, alert_id: str) -> list[dict[str, Any]]:
    """Items the listener delivers from now on, up to and including the one with ``alert_id``."""
    got: list[dict[str, Any]] = []

    def arrived() -> bool:
        got.extend(listener.new_items("alert"))
        return any(i["id"] == alert_id for i in got)

    wait_until(arrived, WAIT_S, f"{alert_id} at the SDK subscriber")
    assert got[-1]["id"] == alert_id, "nothing may follow the last sample written"
    return got


def sync(writer: HostileWriter, listener: Node) -> None:
    """Match both ways: write until one sample arrives, then a last one, so nothing of this stays in flight."""
    k = itertools.count(1)
    wait_until(
        lambda: writer.write(valid("sync", next(k), "sync")) or listener.new_items("alert"),
        WAIT_S,
        "the hostile writer and the SDK subscriber to match",
        interval=0.05,
    )
    writer.write(valid("sync", next(k), "synced"))
    delivered_until(listener, "synced")


def test_oracle_follows_the_receive_order() -> None:
    """The oracle itself: the first failed check decides (IF-ENV-RX-ORDER), duplicates use the sequence track."""
    payload = alert_pb2.Alert(alert_id="a").SerializeToString()
    o = Oracle()
    base = Sent("good", "", "s", 1, 5, 1, 0, ALERT, SPEC.schema_id, payload)
    o.receive(replace(base, interface="x", schema_id="y", count=0))  # interface first, at least 1
    o.receive(replace(base, schema_id="y", count=3))  # schema next, as `count` messages
    o.receive(replace(base, count=0, seq=1))  # count next; the sequence is not consumed
    o.receive(base)  # first of its track: delivered, no loss
    o.receive(replace(base, seq=5, payload=b"\xff"))  # a replay is a duplicate before it is undecodable
    o.receive(replace(base, seq=8, count=2, payload=batch([alert_pb2.Alert()])))  # gap of 2, then a short batch
    o.receive(replace(base, seq=10))
    assert o.counters == Counter(wrong_interface=1, schema_mismatch=3, undecodable=3, delivered=2, duplicates=1, lost=2)


@pytest.mark.parametrize("representation", ["xcdr1", "xcdr2"])
def test_sdk_subscriber_survives_a_hostile_writer(spawn: Any, dds: Dds, representation: str) -> None:
    """The subscriber keeps running, delivers exactly the good messages in order, and counts the rest exactly.

    IF-ENV-RX-ORDER, IF-ENV-RX-INTERFACE, IF-ENV-RX-SCHEMA, IF-ENV-RX-DECODE,
    IF-ENV-RX-DUP, IF-ENV-RX-GAP, IF-ENV-RX-COUNTERS, IF-ENV-BATCH,
    IF-ENV-EPOCH. Run once with the writer sending XCDR1 (what the SDK writes)
    and once XCDR2 (which another DDS program may send; the SDK reader accepts both).
    """
    listener = spawn.node("listener", requires=(ALERT,))
    listener.wait_ready()
    listener.call("subscribe", iface=ALERT, record="hex")
    with hostile_writer(dds, representation) as writer:
        sync(writer, listener)
        baseline = listener.counters()["alert"]
        expected_total: Counter[str] = Counter()
        examples = itertools.count()

        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(run=hostile_run())
        def attack(run: list[Sent]) -> None:
            i = next(examples)
            frames = [replace(s, source=f"hostile-{i}") for s in run]
            oracle = Oracle()
            for s in frames:
                oracle.receive(s)
            before = listener.counters()["alert"]
            for s in frames:
                writer.write(s)
            fence = valid(f"fence-{i}", 1, f"fence-{i}")  # a fresh track: always delivered
            writer.write(fence)
            oracle.receive(fence)
            got = delivered_until(listener, fence.source)
            after = listener.counters()["alert"]
            assert [g["hex"] for g in got] == oracle.delivered
            assert {k: after[k] - before[k] for k in COUNTERS} == {k: oracle.counters[k] for k in COUNTERS}
            expected_total.update(oracle.counters)

        attack()

        # Still alive and still delivering; every counter is the sum of what the examples sent.
        assert listener.alive()
        writer.write(valid("after", 1, "after"))
        delivered_until(listener, "after")
        expected_total["delivered"] += 1
        final = listener.counters()["alert"]
        assert {k: final[k] - baseline[k] for k in COUNTERS} == {k: expected_total[k] for k in COUNTERS}
        sent_kinds = Counter(s.kind for s in writer.sent)
        assert sent_kinds["garbage"], f"Hypothesis sent too little variety: {sent_kinds}"
        assert sent_kinds["good"], f"Hypothesis sent too little variety: {sent_kinds}"
    stderr = listener.stderr_text()
    assert "Traceback" not in stderr, stderr[-4000:]


# -- below the IDL type: raw serialized samples ---------------------------------------------


_dds_write = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p)(("dds_write", DDS._dll_handle))


def write_raw(writer: HostileWriter, data: bytes) -> None:
    """Write an already serialized sample, bypassing the Python serializer.

    ``dds_write`` of a cyclonedds-python writer takes the library's sample
    container ``{void *data; size_t size}`` holding the serialized sample
    (cyclonedds 11.0.1); Cyclone DDS checks the CDR structure on receipt, not
    the contents of strings.
    """
    buffer = ctypes.create_string_buffer(data, len(data))
    rc = _dds_write(writer._writer._ref, struct.pack("PN", ctypes.addressof(buffer), len(data)))
    assert rc == 0, f"dds_write returned {rc}"


def big_endian(s: Sent) -> bytes:
    """``s`` as XCDR1 big endian (another DDS implementation on another CPU may send that)."""
    out = bytearray()

    def align(n: int) -> None:
        out.extend(bytes(-len(out) % n))

    def string(v: str) -> None:
        align(4)
        data = v.encode() + b"\0"
        out.extend(struct.pack(">I", len(data)) + data)

    string(s.key)
    string(s.source)
    align(4)
    out.extend(struct.pack(">I", s.epoch))
    align(8)
    out.extend(struct.pack(">QI", s.seq, s.count))
    align(8)
    out.extend(struct.pack(">q", s.stamp_ns))
    string(s.interface)
    string(s.schema_id)
    align(4)
    out.extend(struct.pack(">I", len(s.payload)) + s.payload)
    align(4)
    return b"\x00\x00\x00\x00" + bytes(out)


def not_utf8(s: Sent, marker: str) -> bytes:
    """``s`` serialized by the library, with the string ``marker`` in it made invalid UTF-8 (same length)."""
    data = bytes(
        HostileEnvelope(
            s.key, s.source, s.epoch, s.seq, s.count, s.stamp_ns, s.interface, s.schema_id, list(s.payload)
        ).serialize()
    )
    at = data.index(marker.encode())
    return data[:at] + b"\xff\xfe" + data[at + 2 :]


def test_envelopes_below_the_idl_type(spawn: Any, dds: Dds) -> None:
    """Raw samples: big endian is decoded; strings that are not UTF-8 are refused and counted, never lost silently.

    IF-ENV-HEADER: any DDS program may send the envelope, in either byte
    order. IF-ENV-RX-COUNTERS: a sample the subscriber cannot read must still
    show in its counters (here: in any of the refusal counters), so that the
    counters match what was sent.
    """
    listener = spawn.node("listener", requires=(ALERT,))
    listener.wait_ready()
    listener.call("subscribe", iface=ALERT, record="hex")
    with hostile_writer(dds, "xcdr1") as writer:
        sync(writer, listener)
        before = listener.counters()["alert"]
        write_raw(writer, big_endian(valid("big-endian", 1, "big-endian")))
        write_raw(writer, not_utf8(valid("bad-source", 1, "x"), "bad-source"))
        write_raw(writer, not_utf8(replace(valid("s", 1, "x"), key="bad-key"), "bad-key"))
        write_raw(writer, not_utf8(valid("s", 2, "x"), "hardpoint.alert"))
        writer.write(valid("fence", 1, "fence"))
        got = delivered_until(listener, "fence")
        after = listener.counters()["alert"]
    assert [g["id"] for g in got] == ["big-endian", "fence"]
    assert listener.alive()
    delta = {k: after[k] - before[k] for k in COUNTERS}
    refused = delta["undecodable"] + delta["wrong_interface"] + delta["schema_mismatch"] + delta["duplicates"]
    assert refused == 3, (
        f"3 envelopes whose strings are not UTF-8 were sent; the subscriber counted {delta} "
        f"(its log: {listener.stderr_text()[-600:]!r})"
    )
