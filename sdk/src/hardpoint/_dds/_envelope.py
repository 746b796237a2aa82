"""The IDL types hardpoint puts on the DDS bus.

Every bus sample is an *envelope*: the header that makes loss, duplication and
schema mismatch detectable, plus the serialized protobuf payload. State
interfaces keep one instance per ``key`` (:class:`KeyedEnvelope`, ``key`` is the
DDS key); every other interface uses the keyless :class:`Envelope`. Both have
exactly the same members, so a received envelope is a
:class:`hardpoint.Frame` as it is.

``hp/schemas`` carries one :class:`Schema` per schema id so that a generic tool
(``cyclonedds subscribe hp/schemas``) can decode any topic.

The payload members are ``sequence<uint8>`` in the type object (what XTypes
tools see), but read and written as :class:`bytes` in Python; see
:mod:`hardpoint._dds._bytes`.
"""

# No ``from __future__ import annotations``: cyclonedds resolves string annotations in this
# module's namespace only, where builtins such as ``str`` are not found.
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import keylist
from cyclonedds.idl.types import int64, sequence, uint8, uint32, uint64

from hardpoint._dds import _bytes

__all__ = ["ENVELOPE_FIELDS", "Envelope", "KeyedEnvelope", "Schema"]

#: Member names of both envelope types, in wire order (the :class:`hardpoint.Frame` attributes).
ENVELOPE_FIELDS: Final = ("key", "source", "epoch", "seq", "count", "stamp_ns", "interface", "schema_id", "payload")


@dataclass
class Envelope(IdlStruct, typename="hardpoint::bus::Envelope"):
    """A bus sample of an interface without instances (event, command, stream, keyless state)."""

    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    if TYPE_CHECKING:
        payload: bytes
    else:
        payload: sequence[uint8]


@dataclass
@keylist(["key"])
class KeyedEnvelope(IdlStruct, typename="hardpoint::bus::KeyedEnvelope"):
    """A bus sample of a state interface; DDS keeps the last ones per ``key``."""

    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    if TYPE_CHECKING:
        payload: bytes
    else:
        payload: sequence[uint8]


@dataclass
@keylist(["schema_id"])
class Schema(IdlStruct, typename="hardpoint::bus::Schema"):
    """A schema announcement (:class:`hardpoint.SchemaRecord`) as it travels on ``hp/schemas``."""

    schema_id: str
    interface: str
    topic: str
    #: Name of the QoS class (``STATE``, ``EVENT``, ``STREAM``, ``COMMAND``).
    qos: str
    if TYPE_CHECKING:
        #: Serialized ``google.protobuf.FileDescriptorSet``.
        descriptor_set: bytes
    else:
        descriptor_set: sequence[uint8]


_bytes.use_bytes(Envelope, "payload")
_bytes.use_bytes(KeyedEnvelope, "payload")
_bytes.use_bytes(Schema, "descriptor_set")
