"""The private-API shim of cyclonedds 11.0.1 (hardpoint._dds._bytes) against the library itself."""

# No ``from __future__ import annotations``: cyclonedds resolves the IDL classes' string annotations
# in this module's namespace only, where builtins such as ``str`` are not found.
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl._support import Endianness
from cyclonedds.idl.annotations import keylist
from cyclonedds.idl.types import int64, sequence, uint8, uint32, uint64
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from hypothesis import given, settings
from hypothesis import strategies as st

from hardpoint import CycloneTransport, TransportError
from hardpoint._dds import _bytes
from hardpoint._dds._envelope import ENVELOPE_FIELDS, Envelope, KeyedEnvelope, Schema
from hardpoint_runtime.conformance._harness import free_domain_id

#: A domain no other test on this machine uses while this process lives (the shared lock folder).
DOMAIN = free_domain_id()
SIZES = [0, 1, 80, 1024, 65536]


@dataclass
class ListEnvelope(IdlStruct, typename="test::ListEnvelope"):
    """The envelope as cyclonedds serialises it without the shim (payload as a list of ints)."""

    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    payload: sequence[uint8]  # type: ignore[type-arg]


@dataclass
@keylist(["key"])
class KeyedListEnvelope(IdlStruct, typename="test::KeyedListEnvelope"):
    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    payload: sequence[uint8]  # type: ignore[type-arg]


@dataclass
class Words(IdlStruct, typename="test::Words"):
    words: sequence[uint32]  # type: ignore[type-arg]


def envelope(cls: Any, payload: Any, key: str = "k-ü") -> Any:
    return cls(key, "nav-module", 4_000_000_000, 2**64 - 1, 3, -(2**63), "hardpoint.nav.v1.NavState", "0f" * 8, payload)


def padded(data: bytes) -> bytes:
    """What DataWriter.write sends: the serialized sample padded to a multiple of 4."""
    return data.ljust((len(data) + 3) & ~3, b"\x00")


# -- the bytes machine ------------------------------------------------------------------


def test_the_pinned_version_is_installed() -> None:
    assert _bytes._installed_version() == _bytes.REQUIRED_VERSION == "11.0.1"
    _bytes.check_version("11.0.1")


@pytest.mark.parametrize("found", ["11.0.2", "0.10.5", None])
def test_another_cyclonedds_is_refused(found: str | None) -> None:
    with pytest.raises(TransportError, match=r"cyclonedds==11\.0\.1"):
        _bytes.check_version(found)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cls", [Envelope, KeyedEnvelope])
@pytest.mark.parametrize("version_2", [False, True])
def test_payload_round_trips_as_bytes(cls: Any, size: int, version_2: bool) -> None:
    sample = envelope(cls, os.urandom(size))
    back = cls.deserialize(sample.serialize(use_version_2=version_2))
    assert type(back.payload) is bytes
    assert back == sample


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("endianness", [Endianness.Little, Endianness.Big])
@pytest.mark.parametrize("version_2", [False, True])
@pytest.mark.parametrize(("cls", "twin"), [(Envelope, ListEnvelope), (KeyedEnvelope, KeyedListEnvelope)])
def test_wire_format_is_that_of_sequence_of_uint8(
    cls: Any, twin: Any, size: int, endianness: Endianness, version_2: bool
) -> None:
    payload = os.urandom(size)
    ours = envelope(cls, payload).serialize(endianness=endianness, use_version_2=version_2)
    library = envelope(twin, list(payload)).serialize(endianness=endianness, use_version_2=version_2)
    assert ours == library
    assert twin.deserialize(ours).payload == list(payload)


def test_schema_descriptor_set_is_bytes() -> None:
    sample = Schema("id", "hardpoint.x.v1.Y", "hp/x", "STATE", os.urandom(5000))
    back = Schema.deserialize(sample.serialize())
    assert type(back.descriptor_set) is bytes
    assert back == sample


@pytest.mark.parametrize(
    ("cls", "member"), [(Envelope, "payload"), (KeyedEnvelope, "payload"), (Schema, "descriptor_set")]
)
def test_type_object_still_says_sequence_of_uint8(cls: Any, member: str) -> None:
    mapping: Any = cls.__idl__.get_type_mapping()
    pair = mapping.identifier_object_pair_complete[0]
    members = {m.detail.name: m for m in pair.type_object.complete.struct_type.member_seq}
    type_id = members[member].common.member_type_id
    assert type_id.discriminator == 0x80  # TI_PLAIN_SEQUENCE_SMALL
    assert type_id.value.element_identifier.discriminator == 0x0D  # TK_UINT8
    assert type_id.value.bound == 0


def test_envelope_members_are_the_frame_attributes() -> None:
    for cls in (Envelope, KeyedEnvelope):
        assert tuple(cls.__dataclass_fields__) == ENVELOPE_FIELDS
    mapping: Any = KeyedEnvelope.__idl__.get_type_mapping()
    keyed = mapping.identifier_object_pair_complete[0]
    flags = {m.detail.name: m.common.member_flags.IS_KEY for m in keyed.type_object.complete.struct_type.member_seq}
    assert flags == {name: name == "key" for name in ENVELOPE_FIELDS}
    assert Envelope.__idl__.keyless
    assert not KeyedEnvelope.__idl__.keyless


def test_use_bytes_refuses_other_sequences_and_is_idempotent() -> None:
    with pytest.raises(TransportError, match=r"Words\.words"):
        _bytes.use_bytes(Words, "words")
    _bytes.use_bytes(Envelope, "payload")
    assert type(Envelope.deserialize(envelope(Envelope, b"x").serialize()).payload) is bytes


# -- the struct codec -------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=300, deadline=None, database=None)
@given(
    keyed=st.booleans(),
    fields=st.fixed_dictionaries(
        {
            "key": st.text(max_size=40),
            "source": st.text(max_size=40),
            "epoch": u32,
            "seq": u64,
            "count": u32,
            "stamp_ns": i64,
            "interface": st.text(max_size=80),
            "schema_id": st.text(max_size=20),
            "payload": st.binary(max_size=3000),
        }
    ),
)
def test_struct_codec_is_byte_identical_to_the_library(keyed: bool, fields: dict[str, Any]) -> None:
    key, source, epoch, seq, count, stamp_ns, interface, schema_id, payload = (fields[f] for f in ENVELOPE_FIELDS)
    cls: Any = KeyedEnvelope if keyed else Envelope
    sample = cls(**fields)
    encoder = _bytes.EnvelopeEncoder(source=source, epoch=epoch, interface=interface, schema_id=schema_id)
    ours = encoder.encode(key, seq, count, stamp_ns, payload)
    assert ours == padded(sample.serialize(endianness=Endianness.Little, use_version_2=False))
    assert encoder.encode(key, seq, count, stamp_ns, payload) == ours  # from the prefix cache
    decode = _bytes.make_decoder(lambda fields: cls(*fields[:9]), cls.deserialize)
    assert decode(ours, 0) == sample
    assert type(decode(ours, 0).payload) is bytes
    for version_2, endianness in ((True, Endianness.Little), (False, Endianness.Big), (True, Endianness.Big)):
        other = sample.serialize(endianness=endianness, use_version_2=version_2)
        assert decode(other, 0) == sample  # not what hardpoint writes: decoded by the library


def test_struct_codec_rejects_what_does_not_fit() -> None:
    encoder = _bytes.EnvelopeEncoder(source="s", epoch=1, interface="i", schema_id="x")
    with pytest.raises(Exception, match=r"format requires|out of range|argument"):
        encoder.encode("", -1, 1, 0, b"")
    decode = _bytes.make_decoder(lambda fields: Envelope(*fields[:9]), Envelope.deserialize)
    data = encoder.encode("", 1, 1, 0, b"0123456789")
    with pytest.raises((ValueError, IndexError)):
        decode(data[:-8], 0)


# -- the decoder's remembered layouts -----------------------------------------------------

#: Writers whose samples one reader sees: some share source and epoch but not the interface,
#: so their heads are the same bytes and only their tails differ.
LAYOUT_WRITERS = [
    ("nav-module", 7, "hardpoint.nav.v1.NavState", "0f" * 8),
    ("nav-module", 7, "hardpoint.alert.v1.Alert", "0f" * 8),
    ("nav-module", 8, "hardpoint.nav.v1.NavState", "0f" * 8),
    ("radar", 7, "hardpoint.nav.v1.NavState", "1e" * 8),
    ("nav-module", 7, "", "0f" * 8),  # so short that its samples may end before another layout's tail does
]


def _padding_offset(key: str) -> int | None:
    """Offset of a padding byte after the key string of an XCDR1 envelope, if it has one."""
    n = len(key.encode()) + 1
    return None if n % 4 == 0 else 8 + n


@settings(max_examples=100, deadline=None, database=None)
@given(
    samples=st.lists(
        st.tuples(
            st.integers(0, len(LAYOUT_WRITERS) - 1),
            st.sampled_from(["", "k", "key-2", "ü"]),
            u64,
            u32,
            i64,
            st.binary(max_size=300),
            st.sampled_from(["none"] * 5 + ["dirty_padding", "truncated", "xcdr2", "big_endian"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_remembered_layouts_decode_as_the_library(samples: list[tuple[Any, ...]]) -> None:
    """One decoder (whose layout cache carries over from sample to sample) against cyclonedds' deserializer.

    Samples of several writers and keys are interleaved; some are not as hardpoint's encoder writes them
    (non-zero padding, other encodings) or are truncated. Every one decodes to what the library decodes,
    or (truncated) is refused.
    """
    decode = _bytes.make_decoder(lambda fields: Envelope(*fields[:9]), Envelope.deserialize)
    encoders = [
        _bytes.EnvelopeEncoder(source=src, epoch=ep, interface=iface, schema_id=sid)
        for src, ep, iface, sid in LAYOUT_WRITERS
    ]
    for writer, key, seq, count, stamp, payload, change in samples:
        source, epoch, interface, schema_id = LAYOUT_WRITERS[writer]
        sample = Envelope(key, source, epoch, seq, count, stamp, interface, schema_id, payload)
        data = encoders[writer].encode(key, seq, count, stamp, payload)
        if change == "dirty_padding" and (offset := _padding_offset(key)) is not None:
            data = data[:offset] + b"\xaa" + data[offset + 1 :]
        elif change == "truncated":
            data = data[: len(data) - 4 - (len(payload) + 3) // 2]
        elif change == "xcdr2":
            data = sample.serialize(endianness=Endianness.Little, use_version_2=True)
        elif change == "big_endian":
            data = sample.serialize(endianness=Endianness.Big, use_version_2=False)
        if change == "truncated":  # the library returns what is left of the payload; ours refuses it
            with pytest.raises((ValueError, struct.error, IndexError)):
                decode(data, 0)
            continue
        assert Envelope.deserialize(data) == sample
        assert decode(data, 0) == sample


# -- over DDS ---------------------------------------------------------------------------


@pytest.fixture
def participant() -> Iterator[DomainParticipant]:
    """A plain cyclonedds participant in a domain configured (loopback) by a CycloneTransport."""
    transport = CycloneTransport(domain_id=DOMAIN)
    dp = DomainParticipant(DOMAIN)
    yield dp
    dp.__del__()
    transport.close()


def take_all(reader: DataReader[Any], n: int) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        got += [s for s in reader.take(64) if s.sample_info.valid_data]
        time.sleep(0.005)
    return got


def test_library_writer_and_reader_carry_bytes_over_dds(participant: DomainParticipant) -> None:
    qos = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepAll)
    topic = Topic(participant, f"hp/test/bytes/{os.getpid()}", Envelope)
    reader = DataReader(participant, topic, qos)
    writer = DataWriter(participant, topic, qos)
    sent = [envelope(Envelope, os.urandom(size)) for size in SIZES]
    for sample in sent:
        writer.write(sample)
    got = take_all(reader, len(sent))
    assert [type(s.payload) for s in got] == [bytes] * len(sent)
    assert [s.payload for s in got] == [s.payload for s in sent]


def test_raw_write_and_take_over_dds(participant: DomainParticipant) -> None:
    qos = Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepAll)
    topic = Topic(participant, f"hp/test/raw/{os.getpid()}", KeyedEnvelope)
    library_reader = DataReader(participant, topic, qos)
    raw_reader = DataReader(participant, topic, qos)
    writer = DataWriter(participant, topic, qos)
    encoder = _bytes.EnvelopeEncoder(source="nav-module", epoch=9, interface="i.v1.I", schema_id="s")
    payloads = [os.urandom(size) for size in SIZES]
    for seq, payload in enumerate(payloads, start=1):
        assert _bytes.write(writer._ref, encoder.encode(f"key{seq}", seq, 1, seq, payload)) == 0
    got = take_all(library_reader, len(payloads))
    assert [(s.key, s.seq, s.payload) for s in got] == [(f"key{i}", i, p) for i, p in enumerate(payloads, start=1)]
    decode = _bytes.make_decoder(lambda fields: KeyedEnvelope(*fields[:9]), KeyedEnvelope.deserialize)
    taken = _bytes.take(raw_reader._ref, 64)
    assert not isinstance(taken, int)
    assert [decode(data, 0) for data, info in taken if info.valid_data] == got
    assert _bytes.take(-1, 1) == -3  # DDS_RETCODE_BAD_PARAMETER
