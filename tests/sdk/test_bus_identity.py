"""Writer identity comes from the transport, not from the payload (SDK-BUS-ID-001..005).

Issue 11, acceptance 2, on the in-memory transport (whose ``peer()`` is a
second participant with writers of its own, as another process is on DDS),
and the same rules on real Cyclone DDS on loopback, where the identity is the
DDS writer's GUID from discovery.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hardpoint import Bus, Channel, CycloneTransport, FrameWriter, Roster, SampleInfo, Transport, interface_spec
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint_runtime.conformance._harness import free_domain_id, release_domain_id

SPEC = interface_spec(alert_pb2.Alert)


def raw_writer(transport: Transport, *, source: str, epoch: int = 7) -> FrameWriter:
    """A writer that stamps whatever header it is given: what a hostile participant has."""
    return transport.open_writer(
        Channel(
            topic=SPEC.topic, qos=SPEC.qos, keyed=False, history_depth=SPEC.history_depth,
            interface=SPEC.name, schema_id=SPEC.schema_id, source=source, epoch=epoch,
        )
    )  # fmt: skip


def alert(n: int) -> bytes:
    return alert_pb2.Alert(alert_id=f"a{n}").SerializeToString()


class Received:
    def __init__(self) -> None:
        self.items: list[tuple[str, SampleInfo]] = []

    def __call__(self, msg: alert_pb2.Alert, info: SampleInfo) -> None:
        self.items.append((msg.alert_id, info))

    @property
    def ids(self) -> list[str]:
        return [i for i, _ in self.items]


@pytest.fixture
def bus() -> InMemoryTransport:
    return InMemoryTransport()


def test_forged_high_sequence_from_another_writer_does_not_suppress_the_real_one(bus: InMemoryTransport) -> None:
    """SDK-BUS-ID-001: sequence numbers are tracked per writer; a forged 2**64-1 touches only its own writer."""
    got = Received()
    sub = Bus(bus, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
    real = raw_writer(bus, source="geofence")
    attacker = raw_writer(bus.peer(), source="geofence")  # same source, same epoch, another participant
    real.write("", 1, 1, 0, alert(1))
    attacker.write("", 2**64 - 1, 1, 0, alert(666))
    real.write("", 2, 1, 0, alert(2))
    real.write("", 3, 1, 0, alert(3))
    assert got.ids == ["a1", "a2", "a3"]
    assert sub.counters.delivered == 3
    assert sub.counters.duplicates == 0
    assert sub.counters.lost == 0
    assert sub.counters.impersonation == 1


def test_impersonating_writer_is_refused_counted_and_named(bus: InMemoryTransport) -> None:
    """SDK-BUS-ID-002: a second live writer claiming a bound source is refused; both writers are named."""
    got = Received()
    sub = Bus(bus, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
    real = raw_writer(bus, source="geofence")
    peer = bus.peer()
    attacker = raw_writer(peer, source="geofence", epoch=99)
    real.write("", 1, 1, 0, alert(1))
    for seq in (1, 2, 3):  # a plausible stream of its own, under the real module's name
        attacker.write("", seq, 1, 0, alert(100 + seq))
    real.write("", 2, 1, 0, alert(2))
    assert got.ids == ["a1", "a2"]
    assert sub.counters.impersonation == 3
    assert sub.counters.rejected == 3
    (intruder,) = sub.intruders()
    real_info = got.items[0][1]
    assert intruder.claimed == "geofence"
    assert intruder.count == 3
    assert intruder.participant == peer.participant
    assert intruder.holder == real_info.writer  # the writer that owns the source
    assert intruder.writer
    assert intruder.writer != real_info.writer
    assert real_info.participant == bus.participant


def test_a_writer_restarted_under_the_same_source_is_accepted(bus: InMemoryTransport) -> None:
    """SDK-BUS-ID-003: the old writer is gone (closed: gone from discovery), so the new one takes the source over."""
    got = Received()
    sub = Bus(bus, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
    first = Bus(bus.peer(), module="geofence", provides=[SPEC.name])
    first.publish(alert_pb2.Alert(alert_id="before"))
    first.close()
    second = Bus(bus.peer(), module="geofence", provides=[SPEC.name])  # a new process: new epoch, new writer
    second.publish(alert_pb2.Alert(alert_id="after"))
    assert got.ids == ["before", "after"]
    assert got.items[0][1].epoch != got.items[1][1].epoch
    assert sub.counters.impersonation == 0
    assert sub.counters.lost == 0


def test_a_new_epoch_of_the_same_writer_is_a_new_stream(bus: InMemoryTransport) -> None:
    """A publisher incarnation (epoch) restarts its numbering: accepted, no loss or duplicate counted."""
    got = Received()
    sub = Bus(bus, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
    a = raw_writer(bus, source="geofence", epoch=1)
    a.write("", 5, 1, 0, alert(5))
    b = raw_writer(bus, source="geofence", epoch=2)  # same participant (roster-free: first owner is a)
    a.close()
    b.write("", 1, 1, 0, alert(1))
    assert got.ids == ["a5", "a1"]
    assert sub.counters.rejected == 0


def test_per_writer_loss_accounting_is_exact_under_interleaving(bus: InMemoryTransport) -> None:
    """SDK-BUS-ID-001: gaps are counted per writer, whatever another writer (even a forger) does meanwhile."""
    got = Received()
    sub = Bus(bus, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
    w1 = raw_writer(bus, source="radar")
    w2 = raw_writer(bus.peer(), source="eoir")
    forger = raw_writer(bus.peer(), source="radar")
    sent = 0
    for seq in range(1, 61):
        if seq % 7 != 0:  # w1 skips every 7th number: 8 lost
            w1.write("", seq, 1, 0, alert(seq))
            sent += 1
        if seq % 5 != 0:  # w2 skips every 5th: 11 lost (60, its last, is not followed by anything)
            w2.write("", seq, 1, 0, alert(1000 + seq))
            sent += 1
        forger.write("", 1000 - seq, 1, 0, alert(9999))  # replays and jumps under radar's name
    w1.write("", 61, 3, 0, _batch(61, 3))  # a batch of three, right after the last number
    sent += 3
    assert sub.counters.lost == 8 + 11
    assert sub.counters.duplicates == 0
    assert sub.counters.impersonation == 60
    assert sub.counters.delivered == sent


def _batch(first: int, n: int) -> bytes:
    from hardpoint._batch import batch_type

    batch = batch_type(alert_pb2.Alert)()
    for i in range(n):
        batch.items.add().CopyFrom(alert_pb2.Alert(alert_id=f"a{first + i}"))  # type: ignore[attr-defined]
    return bytes(batch.SerializeToString())


def test_roster_admits_only_the_listed_participants(bus: InMemoryTransport) -> None:
    """SDK-BUS-ID-004: a source named by the roster is admitted from its participants only, first or not."""
    got = Received()
    listener = Bus(bus, module="listener")
    sub = listener.subscribe(alert_pb2.Alert, got, with_info=True)
    old, new, stranger = bus.peer(), bus.peer(), bus.peer()
    listener.set_roster(Roster({"geofence": [old.participant, new.participant]}))
    raw_writer(stranger, source="geofence").write("", 1, 1, 0, alert(666))  # first, but not listed
    raw_writer(old, source="geofence", epoch=1).write("", 1, 1, 0, alert(1))
    raw_writer(new, source="geofence", epoch=2).write("", 1, 1, 0, alert(2))  # an update: both are the module's
    assert got.ids == ["a1", "a2"]
    assert sub.counters.impersonation == 1
    (intruder,) = sub.intruders()
    assert intruder.participant == stranger.participant
    assert intruder.holder.startswith("roster:")
    assert old.participant in intruder.holder


def test_roster_change_judges_writers_again(bus: InMemoryTransport) -> None:
    """A writer bound before the roster named its source is judged again under the roster."""
    got = Received()
    listener = Bus(bus, module="listener")
    sub = listener.subscribe(alert_pb2.Alert, got, with_info=True)
    early, real = bus.peer(), bus.peer()
    squatter = raw_writer(early, source="nav")
    squatter.write("", 1, 1, 0, alert(1))  # nobody claimed nav yet: trust on first use
    listener.set_roster(Roster({"nav": [real.participant]}))
    squatter.write("", 2, 1, 0, alert(2))
    raw_writer(real, source="nav").write("", 1, 1, 0, alert(3))
    assert got.ids == ["a1", "a3"]
    assert sub.counters.impersonation == 1


def test_frames_of_unknown_writers_are_admitted_unchecked(bus: InMemoryTransport) -> None:
    """Writer 0 (a transport that cannot tell writers apart, or an injected frame) is not judged."""
    from hardpoint.testing import MemoryFrame

    got = Received()
    Bus(bus, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
    for source in ("a", "b"):
        bus.inject(SPEC.topic, MemoryFrame("", source, 1, 1, 1, 0, SPEC.name, SPEC.schema_id, alert(1)))
    assert got.ids == ["a1", "a1"]
    assert got.items[0][1].writer == ""


# -- the same on Cyclone DDS ---------------------------------------------------------


@pytest.fixture
def domain() -> Iterator[int]:
    domain_id = free_domain_id()
    try:
        yield domain_id
    finally:
        release_domain_id(domain_id)


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_impersonation_on_cyclone_names_the_dds_writer(domain: int) -> None:
    """On DDS the identity is the writer's GUID from discovery; the real writer's loss accounting is untouched."""
    listener_t = CycloneTransport(domain_id=domain)
    real_t = CycloneTransport(domain_id=domain)
    hostile_t = CycloneTransport(domain_id=domain)
    try:
        got = Received()
        sub = Bus(listener_t, module="listener").subscribe(alert_pb2.Alert, got, with_info=True)
        real = raw_writer(real_t, source="geofence", epoch=1)
        hostile = raw_writer(hostile_t, source="geofence", epoch=1)
        time.sleep(1.0)  # discovery
        real.write("", 1, 1, 0, alert(1))
        assert wait_for(lambda: got.ids == ["a1"])
        hostile.write("", 2**64 - 1, 1, 0, alert(666))
        hostile.write("", 2, 1, 0, alert(667))
        for seq in (2, 3):
            real.write("", seq, 1, 0, alert(seq))
        assert wait_for(lambda: got.ids == ["a1", "a2", "a3"]), got.ids
        assert wait_for(lambda: sub.counters.impersonation == 2)
        assert sub.counters.lost == 0
        assert sub.counters.duplicates == 0
        (intruder,) = sub.intruders()
        assert intruder.participant == hostile_t.participant
        assert got.items[0][1].participant == real_t.participant
        assert intruder.holder == got.items[0][1].writer
        assert len(intruder.writer) == 32
        assert intruder.writer != intruder.holder
        # The real writer goes away (deleted: gone from discovery): the next claimant takes geofence over.
        real.close()
        time.sleep(0.5)  # the deletion reaches the listener's discovery
        hostile.write("", 3, 1, 0, alert(3000))
        assert wait_for(lambda: got.ids[-1:] == ["a3000"]), got.ids
    finally:
        for t in (hostile_t, real_t, listener_t):
            t.close()


def test_disposes_and_unregisters_by_a_stranger_change_nothing(domain: int) -> None:
    """SDK-BUS-ID-006: a stranger disposing and unregistering the real instance of a state interface.

    The module keeps receiving the real writer's samples, nothing is delivered for the disposes, and a
    reader that joins afterwards still gets the real writer's last value (its transient-local history).
    """
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    from hardpoint._dds import _qos
    from hardpoint._dds._envelope import KeyedEnvelope
    from hardpoint.nav.v1 import nav_pb2

    nav = interface_spec(nav_pb2.NavState)
    listener_t = CycloneTransport(domain_id=domain)
    real_t = CycloneTransport(domain_id=domain)
    hostile_t = CycloneTransport(domain_id=domain)
    late_t: CycloneTransport | None = None
    try:
        got: list[str] = []
        listener = Bus(listener_t, module="listener")
        sub = listener.subscribe(nav_pb2.NavState, lambda m: got.append(m.platform_id))
        pub = Bus(real_t, module="nav", provides=[nav.name]).publisher(nav_pb2.NavState)
        pub.publish(nav_pb2.NavState(platform_id="p1"))
        assert wait_for(lambda: got == ["p1"])
        # The stranger: plain cyclonedds on the same topic and type, the real instance's key.
        channel = Channel(
            topic=nav.topic, qos=nav.qos, keyed=True, history_depth=nav.history_depth,
            interface=nav.name, schema_id=nav.schema_id,
        )  # fmt: skip
        topic = Topic(hostile_t._participant, nav.topic, KeyedEnvelope)
        hostile = DataWriter(hostile_t._participant, topic, _qos.writer_qos(channel))
        instance = KeyedEnvelope("p1", "nav", 1, 1, 1, 0, nav.name, nav.schema_id, b"")
        time.sleep(1.0)  # discovery
        for _ in range(5):
            hostile.dispose(instance)
            hostile.unregister_instance(instance)
        time.sleep(0.5)
        pub.publish(nav_pb2.NavState(platform_id="p1"))
        assert wait_for(lambda: got == ["p1", "p1"]), got
        assert sub.counters.rejected == 0
        late_t = CycloneTransport(domain_id=domain)
        late: list[str] = []
        Bus(late_t, module="late").subscribe(nav_pb2.NavState, lambda m: late.append(m.platform_id))
        assert wait_for(lambda: late == ["p1"]), late
    finally:
        for t in (late_t, hostile_t, real_t, listener_t):
            if t is not None:
                t.close()


def test_a_forged_count_does_not_inflate_the_refusal_counters(bus: InMemoryTransport) -> None:
    """SDK-BUS-ID-007: a refused frame claiming 2**32 messages counts as one."""
    from hardpoint.testing import MemoryFrame

    sub = Bus(bus, module="listener").subscribe(alert_pb2.Alert, lambda _m: None)
    bus.inject(SPEC.topic, MemoryFrame("", "x", 1, 1, 2**32, 0, "hardpoint.bogus.v1.X", SPEC.schema_id, b""))
    bus.inject(SPEC.topic, MemoryFrame("", "x", 1, 1, 2**32, 0, SPEC.name, "ffffffffffffffff", b""))
    bus.inject(SPEC.topic, MemoryFrame("", "x", 1, 1, 3, 0, SPEC.name, "ffffffffffffffff", b""))
    assert sub.counters.wrong_interface == 1
    assert sub.counters.schema_mismatch == 1 + 3
