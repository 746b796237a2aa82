"""Staged publishing on the in-memory transport (SDK-BUS-STAGED-*).

A bus with a ``write_prefix`` writes to ``prefix + topic`` and reads the normal
topics; ``retarget_writers`` moves every writer without losing a message,
repeating one, or breaking the sequence numbering.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from hardpoint import (
    STAGED_PREFIX,
    BatchPolicy,
    Bus,
    Channel,
    FrameWriter,
    Manifest,
    ModuleContext,
    ModuleHost,
    SampleInfo,
    TransportError,
    hookimpl,
    interface_spec,
)
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import health_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.testing import InMemoryTransport

ALERT = "hardpoint.alert.v1.Alert"
NAV = "hardpoint.nav.v1.NavState"
ALERT_TOPIC = interface_spec(alert_pb2.Alert).topic
NAV_TOPIC = interface_spec(nav_pb2.NavState).topic
HEALTH_TOPIC = interface_spec(health_pb2.ModuleHealth).topic
#: A policy that holds messages in the batch until flushed (the writer is never "idle").
HOLD = BatchPolicy(max_messages=1000, idle_gap_s=60.0, max_delay_s=5.0)


class RecordingTransport(InMemoryTransport):
    """In-memory transport that remembers every writer it opened and refuses topics starting with ``refuse``."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[tuple[str, FrameWriter]] = []
        self.refuse: str | None = None

    def open_writer(self, channel: Channel) -> FrameWriter:
        if self.refuse is not None and channel.topic.startswith(self.refuse):
            raise TransportError(f"cannot create a writer on topic {channel.topic}: refused by the test")
        writer = super().open_writer(channel)
        self.opened.append((channel.topic, writer))
        return writer


class Recorder:
    """A subscription callback that keeps (alert id, info)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, SampleInfo]] = []

    def __call__(self, msg: Any, info: SampleInfo) -> None:
        self.items.append((msg.alert_id, info))

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.items]

    @property
    def seqs(self) -> list[int]:
        return [info.seq for _, info in self.items]


def alert(i: int) -> alert_pb2.Alert:
    return alert_pb2.Alert(alert_id=str(i), text=f"alert {i}")


def ids(first: int, last: int) -> list[str]:
    return [str(i) for i in range(first, last + 1)]


@pytest.fixture
def t() -> RecordingTransport:
    return RecordingTransport()


def watchers(t: InMemoryTransport) -> tuple[Recorder, Recorder, Any, Any]:
    """A recorder on the normal alert topic and one on the staged topic, and their subscriptions."""
    bus = Bus(t, module="watcher")
    normal, staged = Recorder(), Recorder()
    sub_n = bus.subscribe(alert_pb2.Alert, normal, with_info=True)
    sub_s = bus.subscribe(alert_pb2.Alert, staged, with_info=True, topic_prefix=STAGED_PREFIX)
    return normal, staged, sub_n, sub_s


def test_staged_prefix_is_public() -> None:
    assert STAGED_PREFIX == "hp-staged/"


def test_staged_writes_go_to_the_prefixed_topic_only(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-001: every sample goes to prefix + topic; a reader of the normal topic sees nothing."""
    normal, staged, sub_n, _ = watchers(t)
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    assert bus.write_prefix == STAGED_PREFIX
    pub = bus.publisher(alert_pb2.Alert, batch=None)
    for i in range(1, 21):
        pub.publish(alert(i))
    assert normal.items == []
    assert sub_n.counters.as_dict() == dict.fromkeys(sub_n.counters.as_dict(), 0)
    assert staged.ids == ids(1, 20)
    assert staged.seqs == list(range(1, 21))
    assert len(t.written[STAGED_PREFIX + ALERT_TOPIC]) == 20
    assert ALERT_TOPIC not in t.written


def test_schema_announcement_names_the_contract_topic(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-001: the schema announcement is the same staged or not."""
    Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX).publisher(alert_pb2.Alert)
    (record,) = t.schemas()
    assert record.topic == ALERT_TOPIC
    assert record.schema_id == interface_spec(alert_pb2.Alert).schema_id


def test_retarget_makes_one_continuous_stream(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-002: after the move the normal topic gets every later message, numbering continues."""
    normal, staged, sub_n, sub_s = watchers(t)
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    pub = bus.publisher(alert_pb2.Alert, batch=None)
    for i in range(1, 101):
        pub.publish(alert(i))
    assert normal.items == []
    bus.retarget_writers("")
    assert bus.write_prefix == ""
    for i in range(101, 201):
        pub.publish(alert(i))
    assert staged.ids == ids(1, 100)
    assert normal.ids == ids(101, 200)
    assert normal.seqs == list(range(101, 201))
    # one writer incarnation across the move: a reader following it sees one stream
    assert {info.epoch for _, info in staged.items + normal.items} == {staged.items[0][1].epoch}
    for sub in (sub_n, sub_s):
        assert sub.counters.lost == 0
        assert sub.counters.duplicates == 0
    assert pub.counters.published == 200


def test_one_reader_of_both_topics_sees_each_batched_message_once(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-002: with batching, staged then normal delivery together is 1..N, once each, in order."""
    follower = Bus(t, module="follower")
    got: list[tuple[str, int]] = []

    def record(msg: alert_pb2.Alert, info: SampleInfo) -> None:
        got.append((msg.alert_id, info.seq))

    subs = [
        follower.subscribe(alert_pb2.Alert, record, with_info=True, topic_prefix=STAGED_PREFIX),
        follower.subscribe(alert_pb2.Alert, record, with_info=True),
    ]
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    pub = bus.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=16, idle_gap_s=60.0, max_delay_s=5.0))
    for i in range(1, 51):  # 1 alone, then three batches of 16, one message left waiting
        pub.publish(alert(i))
    assert len(got) == 49
    bus.retarget_writers("")
    for i in range(51, 81):
        pub.publish(alert(i))
    pub.flush()
    assert got == [(str(i), i) for i in range(1, 81)]
    assert pub.counters.frames < 80 / 4  # it did batch
    for sub in subs:
        assert sub.counters.lost == 0
        assert sub.counters.duplicates == 0


def test_batch_pending_at_retarget_is_delivered_exactly_once(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-002: a waiting batch goes to the old topic at the move, and its timer sends nothing again."""
    normal, staged, sub_n, sub_s = watchers(t)
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    pub = bus.publisher(alert_pb2.Alert, batch=HOLD)
    for i in range(1, 11):
        pub.publish(alert(i))
    assert staged.ids == ["1"]  # the first went alone (idle writer); nine wait for the timer
    bus.retarget_writers("")
    assert staged.ids == ids(1, 10)
    assert normal.ids == []
    for i in range(11, 16):
        pub.publish(alert(i))
    t.advance(10.0)  # both batch timers fire: the one armed before the move finds nothing to send
    assert staged.ids == ids(1, 10)
    assert normal.ids == ids(11, 15)
    assert normal.seqs == list(range(11, 16))
    assert pub.counters.published == 15
    assert sub_n.counters.duplicates == sub_s.counters.duplicates == 0
    assert sub_n.counters.lost == sub_s.counters.lost == 0


def test_retarget_inside_a_delivery_flushes_replies_once(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-002: replies batched in a callback, then a move in the same callback: each sent once."""
    normal, staged, _, _ = watchers(t)
    bus = Bus(t, module="talker", provides=[ALERT], requires=[NAV], write_prefix=STAGED_PREFIX)
    pub = bus.publisher(alert_pb2.Alert)

    def on_nav(msg: nav_pb2.NavState) -> None:
        for i in range(1, 6):
            pub.publish(alert(i))  # grouped until the delivery returns
        bus.retarget_writers("")
        pub.publish(alert(6))

    bus.subscribe(nav_pb2.NavState, on_nav)
    Bus(t, module="nav", provides=[NAV]).publish(nav_pb2.NavState(platform_id="p"))
    assert staged.ids == ids(1, 5)
    assert normal.ids == ["6"]
    assert normal.seqs == [6]


def test_keyed_publisher_keeps_per_key_numbering(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-002: state interfaces continue their per-key sequence on the new topic."""
    bus = Bus(t, module="nav", provides=[NAV], write_prefix=STAGED_PREFIX)
    reader = Bus(t, module="reader")
    got: list[tuple[str, int]] = []
    reader.subscribe(nav_pb2.NavState, lambda m, i: got.append((i.key, i.seq)), with_info=True)
    for p in ("a", "b", "a"):
        bus.publish(nav_pb2.NavState(platform_id=p))
    bus.retarget_writers("")
    for p in ("a", "b"):
        bus.publish(nav_pb2.NavState(platform_id=p))
    assert got == [("a", 3), ("b", 2)]


def test_retarget_while_another_thread_publishes(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-002: a move from another thread splits a live stream in two, nothing lost or repeated."""
    normal, staged, sub_n, sub_s = watchers(t)
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    pub = bus.publisher(alert_pb2.Alert, batch=BatchPolicy(max_messages=7, idle_gap_s=60.0, max_delay_s=60.0))
    started, moved = threading.Event(), threading.Event()
    published: list[int] = []

    def run() -> None:
        i, after = 0, 0
        while after < 1000:  # publish until the move, then 1000 more
            i += 1
            pub.publish(alert(i))
            if i == 1000:
                started.set()
            if moved.is_set():
                after += 1
        pub.flush()
        published.append(i)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(30)
    bus.retarget_writers("")
    moved.set()
    thread.join(60)
    assert not thread.is_alive()
    (total,) = published
    split = len(staged.ids)
    assert 1000 <= split < total  # the move happened in the middle of the stream
    assert staged.ids == ids(1, split)
    assert normal.ids == ids(split + 1, total)
    assert sub_n.counters.lost == sub_s.counters.lost == 0
    assert sub_n.counters.duplicates == sub_s.counters.duplicates == 0


def test_standby_writer_is_used_for_the_move_and_everything_is_closed(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-003: the contract-topic writer is opened with the publisher; the move opens nothing."""
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    bus.publisher(alert_pb2.Alert)
    assert [topic for topic, _ in t.opened] == [STAGED_PREFIX + ALERT_TOPIC, ALERT_TOPIC]
    bus.retarget_writers("")
    assert len(t.opened) == 2
    staged_writer, normal_writer = (w for _, w in t.opened)
    assert staged_writer.closed is True
    assert normal_writer.closed is False
    bus.close()
    assert normal_writer.closed is True


def test_unstaged_bus_opens_one_writer_per_publisher(t: RecordingTransport) -> None:
    Bus(t, module="talker", provides=[ALERT]).publisher(alert_pb2.Alert)
    assert [topic for topic, _ in t.opened] == [ALERT_TOPIC]


def test_close_while_staged_closes_the_standby(t: RecordingTransport) -> None:
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    bus.publisher(alert_pb2.Alert)
    bus.close()
    assert [w.closed for _, w in t.opened] == [True, True]


def test_publishers_made_after_the_move_use_the_new_prefix(t: RecordingTransport) -> None:
    bus = Bus(t, module="talker", provides=[ALERT, NAV], write_prefix=STAGED_PREFIX)
    bus.publisher(alert_pb2.Alert)
    bus.retarget_writers("")
    bus.publish(nav_pb2.NavState(platform_id="p"))
    assert NAV_TOPIC in t.written
    assert STAGED_PREFIX + NAV_TOPIC not in t.written


def test_retarget_to_the_current_prefix_does_nothing(t: RecordingTransport) -> None:
    bus = Bus(t, module="talker", provides=[ALERT], write_prefix=STAGED_PREFIX)
    bus.publisher(alert_pb2.Alert)
    bus.retarget_writers(STAGED_PREFIX)
    assert len(t.opened) == 2
    assert all(not w.closed for _, w in t.opened)


def test_a_writer_that_cannot_open_leaves_every_publisher_where_it_was(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-005: the error names module, interface and topic; nothing has moved."""
    _, staged, _, _ = watchers(t)
    bus = Bus(t, module="talker", provides=[ALERT, NAV], write_prefix=STAGED_PREFIX)
    alerts = bus.publisher(alert_pb2.Alert, batch=None)
    bus.publisher(nav_pb2.NavState)
    t.refuse = "hp-other/hp/nav"  # the second publisher's writer fails to open
    with pytest.raises(TransportError) as info:
        bus.retarget_writers("hp-other/")
    text = str(info.value)
    assert "module talker" in text
    assert NAV in text
    assert "hp-other/" + NAV_TOPIC in text
    assert "refused by the test" in text
    assert bus.write_prefix == STAGED_PREFIX
    opened_for_move = [w for topic, w in t.opened if topic.startswith("hp-other/")]
    assert [w.closed for w in opened_for_move] == [True]  # the alert writer opened for it is closed
    alerts.publish(alert(1))
    assert staged.ids == ["1"]  # still publishing where it was
    t.refuse = None
    bus.retarget_writers("")  # and the move can be done afterwards
    assert bus.write_prefix == ""


@pytest.mark.parametrize("prefix", ["hp staged/", "hp*/", "x\n"])
def test_invalid_prefix_is_refused_with_the_cause(t: RecordingTransport, prefix: str) -> None:
    """SDK-BUS-STAGED-005: a prefix a topic name cannot carry is refused before anything opens."""
    with pytest.raises(ValueError, match=r"module talker: topic prefix .* may only contain"):
        Bus(t, module="talker", provides=[ALERT], write_prefix=prefix)
    bus = Bus(t, module="talker", provides=[ALERT])
    bus.publisher(alert_pb2.Alert)
    with pytest.raises(ValueError, match="topic prefix"):
        bus.retarget_writers(prefix)
    with pytest.raises(ValueError, match="topic prefix"):
        bus.subscribe(alert_pb2.Alert, topic_prefix=prefix)
    assert bus.write_prefix == ""
    assert len(t.opened) == 1


# -- ModuleHost -----------------------------------------------------------------------


class Relay:
    """Reads NavState and publishes one alert per NavState received, and one per timer tick."""

    manifest = Manifest(name="relay", version="2.0", supplier="tests", provides=(ALERT,), requires=(NAV,))

    def __init__(self) -> None:
        self.n = 0
        self.nav_seen = 0

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.pub = ctx.bus.publisher(alert_pb2.Alert, batch=None)
        ctx.bus.subscribe(nav_pb2.NavState, self.on_nav)
        ctx.every(0.1, self.tick)

    def on_nav(self, msg: nav_pb2.NavState) -> None:
        self.nav_seen += 1
        self.tick()

    def tick(self) -> None:
        self.n += 1
        self.pub.publish(alert(self.n))


def health_watchers(t: InMemoryTransport) -> tuple[list[Any], list[Any]]:
    bus = Bus(t, module="daemon")
    normal: list[Any] = []
    staged: list[Any] = []
    bus.subscribe(health_pb2.ModuleHealth, normal.append)
    bus.subscribe(health_pb2.ModuleHealth, staged.append, topic_prefix=STAGED_PREFIX)
    return normal, staged


def test_staged_host_reads_normal_topics_and_writes_staged_ones(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-004: a staged module gets its inputs, and its output and heartbeat stay off the normal topics."""
    normal, staged, _, _ = watchers(t)
    beats_n, beats_s = health_watchers(t)
    module = Relay()
    host = ModuleHost(module, t, write_prefix=STAGED_PREFIX, health_period_s=1.0)
    assert host.staged
    host.configure()
    host.activate()
    Bus(t, module="nav", provides=[NAV]).publish(nav_pb2.NavState(platform_id="p"))
    t.advance(1.0)
    assert module.nav_seen == 1
    assert staged.ids == ids(1, module.n)
    assert module.n == 11  # one per NavState, ten ticks
    assert normal.items == []
    assert beats_n == []
    assert [b.module for b in beats_s][-1] == "relay"
    assert len(beats_s) >= 3  # first beat, configure, activate, a period


def test_promote_moves_output_and_heartbeat(t: RecordingTransport) -> None:
    """SDK-BUS-STAGED-004: promote moves every writer, heartbeat included, and beats at once on the normal topic."""
    normal, staged, sub_n, _ = watchers(t)
    beats_n, beats_s = health_watchers(t)
    module = Relay()
    host = ModuleHost(module, t, write_prefix=STAGED_PREFIX, health_period_s=1.0)
    host.configure()
    host.activate()
    t.advance(0.55)
    before = module.n
    staged_beats = len(beats_s)
    host.promote()
    assert not host.staged
    assert len(beats_n) == 1  # at once, not at the next period
    assert beats_n[0].lifecycle_state == health_pb2.LIFECYCLE_STATE_ACTIVE
    t.advance(1.0)
    assert len(beats_s) == staged_beats
    assert len(beats_n) == 2
    assert staged.ids == ids(1, before)
    assert normal.ids == ids(before + 1, module.n)
    assert module.n == before + 10
    assert sub_n.counters.lost == 0
    host.promote()  # not staged any more: nothing happens
    assert len(beats_n) == 2


def test_promote_of_an_unstaged_host_does_nothing(t: RecordingTransport) -> None:
    beats_n, _ = health_watchers(t)
    host = ModuleHost(Relay(), t, health_period_s=1.0)
    t.advance(0.0)
    host.configure()
    opened = len(t.opened)
    beats = len(beats_n)
    host.promote()
    assert not host.staged
    assert len(t.opened) == opened
    assert len(beats_n) == beats


def test_host_refuses_an_invalid_prefix(t: RecordingTransport) -> None:
    with pytest.raises(ValueError, match="module relay: topic prefix 'bad prefix/'"):
        ModuleHost(Relay(), t, write_prefix="bad prefix/")
