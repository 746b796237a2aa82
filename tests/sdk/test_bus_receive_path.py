"""The subscription's one-message path and the lone-reply path against the normative checks (in-memory transport).

``Subscription._on_frames`` takes a short path for a frame of one message of the
right interface and schema that carries the next sequence number of a writer it
has seen; every other frame goes through the general checks. These tests feed
random mixes of good and bad frames and compare what is delivered and counted
with :func:`reference`, an independent model of the checks in their normative
order (IF-ENV-*): wrong interface, wrong schema id, malformed count, duplicate or
replayed sequence, undecodable payload; gaps count as lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from hardpoint import BatchPolicy, Bus, interface_spec
from hardpoint._batch import item_prefix
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import header_pb2
from hardpoint.testing import InMemoryTransport, MemoryFrame

SPEC = interface_spec(alert_pb2.Alert)
COUNTED = ("delivered", "undecodable", "wrong_interface", "schema_mismatch", "duplicates", "lost")


def payload_of(ids: list[str]) -> bytes:
    """One serialized Alert, or a batch of them (wire-identical to a ``{repeated Alert items}``)."""
    items = [alert_pb2.Alert(alert_id=i).SerializeToString() for i in ids]
    if len(items) == 1:
        return items[0]
    return b"".join(item_prefix(len(d)) + d for d in items)


@dataclass(frozen=True)
class Plan:
    """How to make one frame: which writer, which sequence step, and what is wrong with it (if anything)."""

    writer: int
    step: int  # added to the writer's last sequence number (1: the next one; 0: a duplicate; <0: a replay)
    count: int
    flaw: str


WRITERS = [("radar", 1, ""), ("radar", 2, ""), ("eoir", 1, ""), ("radar", 1, "k1")]
flaws = st.sampled_from(["none"] * 6 + ["interface", "schema", "garbage", "short_batch"])
plans = st.builds(
    Plan,
    writer=st.integers(0, len(WRITERS) - 1),
    step=st.sampled_from([1, 1, 1, 1, 1, 2, 5, 0, -1, -3]),
    count=st.sampled_from([1, 1, 1, 1, 2, 3, 0, 5000]),
    flaw=flaws,
)


def frames_of(plan_list: list[Plan]) -> list[MemoryFrame]:
    """Frames as hostile or sloppy writers would send them; sequence numbers start at 1 per writer."""
    last: dict[int, int] = {}
    out: list[MemoryFrame] = []
    for n, p in enumerate(plan_list):
        source, epoch, key = WRITERS[p.writer]
        seq = max(0, last.get(p.writer, 0) + p.step)
        ids = [f"m{n}.{i}" for i in range(max(p.count, 1))][:4]
        payload = payload_of(ids)
        if p.flaw == "garbage":
            payload = b"\xff\xff\xff"
        elif p.flaw == "short_batch":
            payload = payload_of(ids[:-1] or ["only"]) if p.count > 1 else payload
        out.append(
            MemoryFrame(
                key=key,
                source=source,
                epoch=epoch,
                seq=seq,
                count=p.count,
                stamp_ns=n,
                interface="hardpoint.nav.v1.NavState" if p.flaw == "interface" else SPEC.name,
                schema_id="0" * 16 if p.flaw == "schema" else SPEC.schema_id,
                payload=payload,
            )
        )
        last[p.writer] = max(last.get(p.writer, 0), seq + max(p.count, 1) - 1)
    return out


def reference(frames: list[MemoryFrame]) -> tuple[list[tuple[str, int]], Counter[str]]:
    """The normative checks, written out plainly: (alert id, sequence number) delivered, and the counters."""
    seqs: dict[tuple[str, int, str], int] = {}
    counts: Counter[str] = Counter()
    delivered: list[tuple[str, int]] = []
    for f in frames:
        if f.interface != SPEC.name:
            counts["wrong_interface"] += f.count if 1 <= f.count <= 4096 else 1  # SDK-BUS-ID-007
            continue
        if f.schema_id != SPEC.schema_id:
            counts["schema_mismatch"] += f.count if 1 <= f.count <= 4096 else 1
            continue
        if not 1 <= f.count <= 4096:
            counts["undecodable"] += 1
            continue
        track = (f.source, f.epoch, f.key)
        last = seqs.get(track)
        if last is not None and f.seq <= last:
            counts["duplicates"] += f.count
            continue
        if last is not None and f.seq > last + 1:
            counts["lost"] += f.seq - last - 1
        seqs[track] = f.seq + f.count - 1
        try:
            if f.count == 1:
                ids = [alert_pb2.Alert.FromString(f.payload).alert_id]
            else:
                ids = [alert_pb2.Alert.FromString(i).alert_id for i in header_pb2.Batch.FromString(f.payload).items]
        except DecodeError:
            counts["undecodable"] += f.count
            continue
        if len(ids) != f.count:
            counts["undecodable"] += f.count
            continue
        delivered += [(i, f.seq + n) for n, i in enumerate(ids)]
        counts["delivered"] += len(ids)
    return delivered, counts


def run(frames: list[MemoryFrame], style: str) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """Inject ``frames`` one delivery at a time into a subscription of the given style.

    The plain callback gets no header, so its sequence numbers are reported as -1.
    """
    transport = InMemoryTransport()
    bus = Bus(transport, module="listener", provides=[], requires=[SPEC.name])
    got: list[tuple[str, int]] = []
    if style == "callback":
        sub = bus.subscribe(alert_pb2.Alert, lambda m: got.append((m.alert_id, -1)))
    elif style == "info":
        sub = bus.subscribe(alert_pb2.Alert, lambda m, info: got.append((m.alert_id, info.seq)), with_info=True)
    else:
        sub = bus.subscribe(alert_pb2.Alert, with_info=True, queue_depth=100_000)
    for f in frames:
        transport.inject(SPEC.topic, f)
    if style == "queue":
        got = [(m.alert_id, info.seq) for m, info in sub.take()]
    counters = sub.counters.as_dict()
    return got, {k: counters[k] for k in COUNTED}


@settings(max_examples=150, deadline=None, database=None)
@given(plan_list=st.lists(plans, min_size=1, max_size=40), style=st.sampled_from(["callback", "info", "queue"]))
def test_one_message_path_delivers_and_counts_as_the_normative_checks(plan_list: list[Plan], style: str) -> None:
    frames = frames_of(plan_list)
    want, want_counts = reference(frames)
    got, counts = run(frames, style)
    if style == "callback":
        want = [(i, -1) for i, _ in want]
    assert got == want
    assert counts == {k: want_counts[k] for k in COUNTED}


def test_one_message_frames_count_duplicates_gaps_and_bad_payloads() -> None:
    """The cases the short path must hand to the general checks, one by one (count == 1 throughout)."""
    transport = InMemoryTransport()
    bus = Bus(transport, module="listener", provides=[], requires=[SPEC.name])
    got: list[str] = []
    sub = bus.subscribe(alert_pb2.Alert, lambda m: got.append(m.alert_id))

    def send(seq: int, alert_id: str, *, source: str = "radar", epoch: int = 1, payload: bytes | None = None) -> None:
        body = payload if payload is not None else payload_of([alert_id])
        transport.inject(SPEC.topic, MemoryFrame("", source, epoch, seq, 1, 0, SPEC.name, SPEC.schema_id, body))

    send(1, "a1")  # first of a writer: the general checks
    send(2, "a2")  # the short path
    send(2, "dup")  # duplicate
    send(1, "replay")  # replay
    send(5, "a5")  # a gap of 2
    send(6, "bad", payload=b"\xff\xff")  # undecodable, but its number is used up
    send(7, "a7")  # next after the bad one: the short path again
    send(1, "b1", epoch=2)  # a new epoch is a new writer
    send(2, "b2", epoch=2)
    c = sub.counters
    assert got == ["a1", "a2", "a5", "a7", "b1", "b2"]
    assert (c.delivered, c.duplicates, c.lost, c.undecodable) == (6, 2, 2, 1)


def test_lone_reply_is_written_as_is_and_two_replies_as_one_batch() -> None:
    """In a delivery, one reply goes out as a one-message frame; two go out as one batch frame of both."""
    transport = InMemoryTransport()
    asker, answerer = Bus(transport, module="asker"), Bus(transport, module="answerer")
    acks = asker.subscribe(alert_pb2.AlertAck)
    ack_pub = answerer.publisher(alert_pb2.AlertAck, batch=BatchPolicy(idle_gap_s=60.0))
    long_comment = "x" * 300  # a serialized size above 127: the item prefix has two length bytes

    def answer(m: alert_pb2.Alert) -> None:
        replies = 1 if m.alert_id == "one" else 2
        for n in range(replies):
            ack_pub.publish(alert_pb2.AlertAck(alert_id=f"{m.alert_id}.{n}", comment=long_comment))

    answerer.subscribe(alert_pb2.Alert, answer)
    pub = asker.publisher(alert_pb2.Alert, batch=None)
    pub.publish(alert_pb2.Alert(alert_id="one"))
    pub.publish(alert_pb2.Alert(alert_id="two"))
    assert [a.alert_id for a in acks.take()] == ["one.0", "two.0", "two.1"]
    lone, batch = transport.written[interface_spec(alert_pb2.AlertAck).topic]
    assert (lone.seq, lone.count) == (1, 1)
    assert lone.payload == alert_pb2.AlertAck(alert_id="one.0", comment=long_comment).SerializeToString()
    assert (batch.seq, batch.count) == (2, 2)
    items = [alert_pb2.AlertAck.FromString(i).alert_id for i in header_pb2.Batch.FromString(batch.payload).items]
    assert items == ["two.0", "two.1"]
