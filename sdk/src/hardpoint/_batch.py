"""Batch framing: several messages of one interface in one bus sample.

A batch payload is a serialized ``hardpoint.core.v1.Batch`` (``repeated bytes
items = 1``). That is wire-identical to a message ``{ repeated T items = 1; }``,
so the receiver parses a whole batch in one call into the C protobuf runtime
with a batch class made here for each interface, instead of one Python call per
message. Writers only prepend the field tag and length to each serialized
message.
"""

from __future__ import annotations

from typing import Final, cast

from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

__all__ = ["batch_type", "item_prefix"]

_TAG: Final = 0x0A  # field 1, wire type 2 (length-delimited)
_SMALL_PREFIXES: Final = tuple(bytes((_TAG, n)) for n in range(0x80))


def item_prefix(length: int) -> bytes:
    """Tag and varint length that precede one item of ``length`` bytes in a batch."""
    if length < 0x80:
        return _SMALL_PREFIXES[length]
    out = bytearray((_TAG,))
    while length >= 0x80:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out)


_BATCH_TYPES: dict[type[Message], type[Message]] = {}


def batch_type(message_type: type[Message]) -> type[Message]:
    """A message class ``{ repeated <message_type> items = 1; }`` in the message's own pool (made once)."""
    cls = _BATCH_TYPES.get(message_type)
    if cls is None:
        cls = _BATCH_TYPES[message_type] = _make_batch_type(message_type)
    return cls


def _make_batch_type(message_type: type[Message]) -> type[Message]:
    descriptor = message_type.DESCRIPTOR
    pool = descriptor.file.pool
    name = f"hardpoint_batch/{descriptor.full_name}.proto"
    full_name = f"hardpoint_batch.{descriptor.full_name}.Batch"
    try:
        pool.FindFileByName(name)
    except KeyError:
        file = descriptor_pb2.FileDescriptorProto(
            name=name,
            package=f"hardpoint_batch.{descriptor.full_name}",
            syntax="proto3",
            dependency=[descriptor.file.name],
        )
        msg = file.message_type.add(name="Batch")
        msg.field.add(
            name="items",
            number=1,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=f".{descriptor.full_name}",
        )
        pool.AddSerializedFile(file.SerializeToString())
    cls: type[Message] = message_factory.GetMessageClass(cast(Descriptor, pool.FindMessageTypeByName(full_name)))
    return cls
