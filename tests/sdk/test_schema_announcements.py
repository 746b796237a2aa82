"""Schema announcements from the bus are checked before use (SDK-SCHEMA-RX-*).

The first part checks :func:`hardpoint.check_schema_record` on its own: every record
the SDK announces is accepted, and each refusal reason is shown with a real forged
record (a genuine record of the interface set with one thing changed). The second
part runs real Cyclone DDS on loopback: a plain ``cyclonedds`` writer in this process
(its own participant, the ``Schema`` IDL type declared here, no SDK code) writes
forged announcements on ``hp/schemas``, and the SDK transport keeps the genuine
record and counts each refusal.
"""

# No ``from __future__ import annotations``: cyclonedds resolves the IDL member
# annotations at run time in this module's namespace.
import ctypes
import dataclasses
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import keylist
from cyclonedds.idl.types import sequence, uint8
from cyclonedds.internal import DDS
from cyclonedds.pub import DataWriter
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from google.protobuf import descriptor_pb2, descriptor_pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hardpoint
from hardpoint import Bus, CycloneTransport, SchemaRecord, SchemaRefusal, check_schema_record
from hardpoint._contracts import _schema_id
from hardpoint._schemas import MAX_DESCRIPTOR_SET_BYTES, REASONS, STAGED_PREFIX
from hardpoint.testing import InMemoryTransport

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"
WAIT_S = 10.0


def sdk_records() -> dict[str, SchemaRecord]:
    """The record the SDK announces for every interface of the set, by interface (taken from a bus)."""
    transport = InMemoryTransport()
    specs = hardpoint.all_interfaces()
    bus = Bus(transport, module="every-interface", provides=list(specs))
    for spec in specs.values():
        bus.publisher(spec.message_type)
    return {r.interface: r for r in transport.schemas()}


GENUINE = sdk_records()


def fds_of(record: SchemaRecord) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(record.descriptor_set)


def with_fds(record: SchemaRecord, fds: descriptor_pb2.FileDescriptorSet) -> SchemaRecord:
    return dataclasses.replace(record, descriptor_set=fds.SerializeToString())


def edited(
    record: SchemaRecord, message: str, edit: Callable[[descriptor_pb2.DescriptorProto], object]
) -> SchemaRecord:
    """``record`` with ``edit`` applied to the top-level message ``message`` (full name) of its descriptor set."""
    fds = fds_of(record)
    for file in fds.file:
        for m in file.message_type:
            if f"{file.package}.{m.name}" == message:
                edit(m)
                return with_fds(record, fds)
    raise AssertionError(f"{message} is not in the set")


def add_field(m: descriptor_pb2.DescriptorProto) -> None:
    m.field.add(name="forged", number=999, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)


def forged_nav() -> SchemaRecord:
    """The genuine NavState schema id with a descriptor whose NavState has one more field."""
    return edited(GENUINE[NAV], NAV, add_field)


def equivalent_nav() -> SchemaRecord:
    """Another descriptor set with the same NavState wire shape (one more unrelated message): valid, different."""
    fds = fds_of(GENUINE[NAV])
    nav_file = next(f for f in fds.file if f.name == "hardpoint/nav/v1/nav.proto")
    nav_file.message_type.add(name="Forged")
    return with_fds(GENUINE[NAV], fds)


def third_party() -> SchemaRecord:
    """An interface no one here knows (another supplier's), announced correctly."""
    header = next(f for f in fds_of(GENUINE[NAV]).file if f.name == "hardpoint/core/v1/header.proto")
    blip = descriptor_pb2.FileDescriptorProto(name="acme/radar/v1/blip.proto", package="acme.radar.v1", syntax="proto3")
    message = blip.message_type.add(name="Blip")
    message.field.add(name="range_m", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE)
    fds = descriptor_pb2.FileDescriptorSet(file=[header, blip])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(header)
    pool.Add(blip)
    schema_id = _schema_id(pool.FindMessageTypeByName("acme.radar.v1.Blip"))
    return SchemaRecord("acme.radar.v1.Blip", schema_id, "hp/radar/v1/blip", "EVENT", fds.SerializeToString())


def reason(record: SchemaRecord) -> str:
    refusal = check_schema_record(record)
    return "" if refusal is None else refusal.reason


# -- the check on its own ----------------------------------------------------------------


@pytest.mark.parametrize("interface", sorted(hardpoint.all_interfaces()))
def test_every_sdk_announcement_is_accepted(interface: str) -> None:
    """SDK-SCHEMA-RX-001..005: the record the SDK announces for each interface of the set passes every check."""
    record = GENUINE[interface]
    assert check_schema_record(record) is None
    assert check_schema_record(dataclasses.replace(record, topic=STAGED_PREFIX + record.topic)) is None


def test_the_staged_prefix_is_the_sdks() -> None:
    assert STAGED_PREFIX == hardpoint.STAGED_PREFIX


def test_an_unknown_interface_announced_correctly_is_accepted() -> None:
    """SDK-SCHEMA-RX-003: an interface of another supplier is checked on what it carries alone."""
    assert check_schema_record(third_party()) is None
    assert check_schema_record(equivalent_nav()) is None  # same wire shape, other bytes: valid on its own


FORGERIES: dict[str, Callable[[], SchemaRecord]] = {
    "bad_schema_id": lambda: dataclasses.replace(GENUINE[NAV], schema_id="NOT-AN-ID"),
    "bad_qos": lambda: dataclasses.replace(GENUINE[NAV], qos="BOGUS"),
    "bad_interface": lambda: dataclasses.replace(GENUINE[NAV], interface="NavState"),
    "bad_topic": lambda: dataclasses.replace(GENUINE[NAV], topic=""),
    "contract_mismatch": lambda: dataclasses.replace(GENUINE[NAV], qos="EVENT"),
    "topic_taken": lambda: dataclasses.replace(third_party(), topic="hp/nav/v1/state"),
    "too_large": lambda: dataclasses.replace(GENUINE[NAV], descriptor_set=b"\0" * (MAX_DESCRIPTOR_SET_BYTES + 1)),
    "bad_descriptor": lambda: dataclasses.replace(GENUINE[NAV], descriptor_set=b"\xff\xfe garbage \x00\x01"),
    "missing_message": lambda: dataclasses.replace(GENUINE[NAV], descriptor_set=GENUINE[ALERT].descriptor_set),
    "schema_id_mismatch": forged_nav,
    "batch_mismatch": lambda: edited(
        GENUINE[NAV], "hardpoint.core.v1.Batch", lambda m: setattr(m.field[0], "number", 77)
    ),
}


def test_every_reason_has_a_forgery() -> None:
    assert set(FORGERIES) == set(REASONS)


@pytest.mark.parametrize("expected", REASONS)
def test_each_forgery_is_refused_with_its_reason(expected: str) -> None:
    """SDK-SCHEMA-RX-001..005: one named reason per refusal, with the record's names."""
    record = FORGERIES[expected]()
    refusal = check_schema_record(record)
    assert isinstance(refusal, SchemaRefusal)
    assert refusal.reason == expected, refusal
    assert refusal.detail
    assert refusal.interface == record.interface[:80]
    assert expected in str(refusal)


@pytest.mark.parametrize(
    "topic",
    [
        "hp/schemas",  # the announcements' own topic
        "hp-staged/hp/schemas",
        "nav/v1/state",  # not a hardpoint topic
        "hp//nav",  # empty segment
        "hp/nav/",
        "hp/nav v1",  # a character DDS refuses
        "hp/nav\x00",
        "hp/é",
        "hp-staged/hp-staged/hp/nav/v1/state",
        "hp/" + "a" * 300,  # too long
    ],
)
def test_illegal_topics_are_refused(topic: str) -> None:
    """SDK-SCHEMA-RX-002."""
    assert reason(dataclasses.replace(third_party(), topic=topic)) == "bad_topic"


def test_the_contract_decides_topic_and_qos_of_a_known_interface() -> None:
    """SDK-SCHEMA-RX-003: a known interface on another topic, or another interface on its staged topic, is refused."""
    assert reason(dataclasses.replace(GENUINE[NAV], topic="hp/nav/v1/forged")) == "contract_mismatch"
    assert reason(dataclasses.replace(third_party(), topic="hp-staged/hp/alert/v1/alert")) == "topic_taken"


@pytest.mark.parametrize(
    "make",
    [
        # only the interface's own file: its imports are missing
        lambda: descriptor_pb2.FileDescriptorSet(
            file=[f for f in fds_of(GENUINE[NAV]).file if f.name == "hardpoint/nav/v1/nav.proto"]
        ),
        # a file that imports itself
        lambda: descriptor_pb2.FileDescriptorSet(
            file=[descriptor_pb2.FileDescriptorProto(name="a.proto", dependency=["a.proto"])]
        ),
        # no file at all
        descriptor_pb2.FileDescriptorSet,
        # a field of a type that does not exist
        lambda: fds_of(
            edited(
                GENUINE[NAV],
                NAV,
                lambda m: m.field.add(
                    name="x", number=99, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name=".no.Such"
                ),
            )
        ),
    ],
)
def test_descriptor_sets_that_build_no_pool_are_refused(make: Callable[[], descriptor_pb2.FileDescriptorSet]) -> None:
    """SDK-SCHEMA-RX-004."""
    assert reason(with_fds(GENUINE[NAV], make())) == "bad_descriptor"


def test_a_pathologically_deep_descriptor_is_refused_not_raised() -> None:
    """SDK-SCHEMA-RX-005: the check never raises, even where recomputing the id would overflow the stack."""
    depth = 3000
    file = descriptor_pb2.FileDescriptorProto(name="acme/deep/v1/deep.proto", package="acme.deep.v1", syntax="proto3")
    for i in range(depth):
        m = file.message_type.add(name=f"M{i}")
        if i + 1 < depth:
            m.field.add(
                name="next",
                number=1,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                type_name=f".acme.deep.v1.M{i + 1}",
            )
    record = SchemaRecord(
        "acme.deep.v1.M0",
        "0123456789abcdef",
        "hp/deep/v1/m",
        "EVENT",
        descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString(),
    )
    assert reason(record) == "bad_descriptor"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schema_id=st.one_of(st.text(max_size=20), st.just(GENUINE[NAV].schema_id)),
    interface=st.one_of(st.text(max_size=40), st.just(NAV)),
    topic=st.one_of(st.text(max_size=40), st.just("hp/nav/v1/state")),
    qos=st.one_of(st.text(max_size=8), st.sampled_from(["STATE", "EVENT"])),
    flips=st.lists(st.tuples(st.integers(0, len(GENUINE[NAV].descriptor_set) - 1), st.integers(0, 255)), max_size=8),
)
def test_no_record_makes_the_check_raise(
    schema_id: str, interface: str, topic: str, qos: str, flips: list[tuple[int, int]]
) -> None:
    """SDK-SCHEMA-RX-005: arbitrary names and a genuine descriptor set with bytes changed: a verdict, never an error."""
    data = bytearray(GENUINE[NAV].descriptor_set)
    for at, value in flips:
        data[at] = value
    refusal = check_schema_record(SchemaRecord(interface, schema_id, topic, qos, bytes(data)))
    assert refusal is None or refusal.reason in REASONS


# -- on the bus: Cyclone DDS, a hostile plain cyclonedds writer -----------------------------


@dataclass
@keylist(["schema_id"])
class HostileSchema(IdlStruct, typename="hardpoint::bus::Schema"):
    """The schema announcement as any DDS program can declare it; not the SDK's class."""

    schema_id: str
    interface: str
    topic: str
    qos: str
    descriptor_set: sequence[uint8]


_dds_write = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p)(("dds_write", DDS._dll_handle))


def not_utf8(record: SchemaRecord) -> bytes:
    """``record`` serialized, with the first two bytes of its interface name made invalid UTF-8."""
    r = record
    data = bytes(HostileSchema(r.schema_id, r.interface, r.topic, r.qos, list(r.descriptor_set)).serialize())
    at = data.index(r.interface.encode())
    return data[:at] + b"\xff\xfe" + data[at + 2 :]


@contextmanager
def hostile_writer(domain_id: int) -> Iterator[Callable[[SchemaRecord | bytes], None]]:
    """A writer on ``hp/schemas`` in its own participant of the (in-process) domain, with the announcements' QoS."""
    participant = DomainParticipant(domain_id)
    topic = Topic(participant, "hp/schemas", HostileSchema)
    qos = Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=1)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(1),
        Policy.DataRepresentation(use_cdrv0_representation=True),
    )
    writer = DataWriter(participant, topic, qos)

    def write(r: SchemaRecord | bytes) -> None:
        if isinstance(r, bytes):  # already serialized: the library's sample container (as test_hostile_writer.py)
            buffer = ctypes.create_string_buffer(r, len(r))
            assert _dds_write(writer._ref, struct.pack("PN", ctypes.addressof(buffer), len(r))) == 0
            return
        writer.write(HostileSchema(r.schema_id, r.interface, r.topic, r.qos, list(r.descriptor_set)))

    try:
        yield write
    finally:
        for entity in (writer, topic, participant):
            entity.__del__()  # delete the DDS entities now, not at garbage collection


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def forged_on_the_bus() -> dict[str, SchemaRecord]:
    """What the hostile writer announces, by the reason the receiver must give."""
    return {
        "bad_qos": dataclasses.replace(GENUINE[ALERT], schema_id="00000000000000a1", qos="BOGUS"),
        "bad_topic": dataclasses.replace(GENUINE[ALERT], schema_id="00000000000000a2", topic=""),
        "schema_id_mismatch": forged_nav(),  # the genuine schema id, a forged descriptor
        "bad_descriptor": dataclasses.replace(GENUINE[NAV], descriptor_set=b"\xff\xfe garbage \x00\x01"),
    }


def test_the_transport_keeps_the_genuine_record_and_counts_forgeries(domain_id: int) -> None:
    """SDK-SCHEMA-RX-006: forged announcements are refused and counted; none replaces the genuine record.

    The genuine NavState record comes from a module's transport (another participant);
    then the hostile writer announces a bogus QoS class, an empty topic, the genuine
    schema id with a forged descriptor, garbage for a descriptor, a valid but
    different record for the genuine schema id (first valid wins: ``conflict``), and
    at last a sample whose interface name is not UTF-8 (``undecodable``).
    """
    receiver = CycloneTransport(domain_id=domain_id)
    module = CycloneTransport(domain_id=domain_id)
    try:
        module.announce_schema(GENUINE[NAV])
        wait_until(lambda: GENUINE[NAV] in receiver.schemas(), "the genuine record")
        forged = forged_on_the_bus() | {"conflict": equivalent_nav()}
        expected: dict[str, int] = {}
        with hostile_writer(domain_id) as write:
            # One at a time: the reader keeps the last sample per schema id, and three share the genuine one.
            for why, record in forged.items():
                write(record)
                expected[why] = 1
                wait_until(lambda: receiver.refused_schemas() == expected, f"refusals {expected}")
            write(not_utf8(dataclasses.replace(GENUINE[ALERT], schema_id="00000000000000a3")))
            expected["undecodable"] = 1
            wait_until(lambda: receiver.refused_schemas() == expected, f"refusals {expected}")
        assert receiver.schemas() == [GENUINE[NAV]]
        assert [r.reason for r in receiver.last_refused_schemas()] == list(forged)
        assert receiver.last_refused_schemas()[0].interface == ALERT
        assert module.schemas() == [GENUINE[NAV]]  # its own record stays too
    finally:
        module.close()
        receiver.close()


def test_a_late_joiner_keeps_only_valid_records(domain_id: int) -> None:
    """SDK-SCHEMA-RX-006: announcements replayed to a late joiner (transient-local) are checked the same way."""
    module = CycloneTransport(domain_id=domain_id)
    try:
        module.announce_schema(GENUINE[ALERT])
        forged = {k: v for k, v in forged_on_the_bus().items() if v.schema_id != GENUINE[NAV].schema_id}
        with hostile_writer(domain_id) as write:
            for record in forged.values():
                write(record)
            write(third_party())  # valid: another supplier's interface
            late = CycloneTransport(domain_id=domain_id)
            try:
                wait_until(lambda: len(late.schemas()) == 2, "the two valid records")
                wait_until(lambda: late.refused_schemas() == dict.fromkeys(forged, 1), "the refusals")
                assert sorted(r.interface for r in late.schemas()) == ["acme.radar.v1.Blip", ALERT]
            finally:
                late.close()
    finally:
        module.close()
