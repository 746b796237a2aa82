"""Checking schema announcements received from the bus (SDK-SCHEMA-RX-*).

Anything that joins the DDS domain can write on ``hp/schemas``. A record is
used (by the transport, the daemon's topic monitor, tools that decode with it)
only when :func:`check_schema_record` finds nothing wrong with it: its QoS
class, topic and interface name are well formed, its descriptor set parses and
holds the interface's message, the schema id recomputed from that message (the
same hash as :attr:`hardpoint.InterfaceSpec.schema_id`) is the record's, the
``Batch`` message it carries is the SDK's, and an interface known locally is
announced with its contract's topic and QoS class. Each refusal names one
reason (:data:`REASONS`).

The check is a pure function of the record and the local interface set; it
never raises.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from hardpoint._contracts import InterfaceSpec, QosClass, _schema_id, all_interfaces
from hardpoint._transport import SchemaRecord

__all__ = [
    "MAX_DESCRIPTOR_SET_BYTES",
    "REASONS",
    "SchemaRefusal",
    "check_schema_record",
]

#: Largest serialized ``FileDescriptorSet`` accepted (SDK-SCHEMA-RX-004).
MAX_DESCRIPTOR_SET_BYTES: Final = 1024 * 1024
#: Most files in one descriptor set.
MAX_DESCRIPTOR_FILES: Final = 256
#: Longest topic and interface name accepted, in characters.
MAX_NAME_CHARS: Final = 256
#: Where a staged module writes (``hardpoint.STAGED_PREFIX``, which a test holds equal; the bus is not imported).
STAGED_PREFIX: Final = "hp-staged/"
#: The topic of the announcements themselves: no interface may claim it.
RESERVED_TOPICS: Final = frozenset({"hp/schemas", STAGED_PREFIX + "hp/schemas"})
#: The message that carries a batch (``hardpoint.core.v1.Batch``); every SDK record holds it.
BATCH_MESSAGE: Final = "hardpoint.core.v1.Batch"

#: Why a record is refused, in the order the checks run (SDK-SCHEMA-RX-001..005). The transport adds
#: ``undecodable``, ``conflict`` and ``capacity`` (SDK-SCHEMA-RX-006, -007).
REASONS: Final = (
    "bad_schema_id",
    "bad_qos",
    "bad_interface",
    "bad_topic",
    "contract_mismatch",
    "topic_taken",
    "too_large",
    "bad_descriptor",
    "missing_message",
    "schema_id_mismatch",
    "batch_mismatch",
)

_SCHEMA_ID: Final = re.compile(r"[0-9a-f]{16}")
# ``<package>.vN.<Message>``: what :func:`hardpoint._contracts.major_version` accepts, anchored.
_INTERFACE: Final = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)+v[0-9]+\.[A-Za-z_][A-Za-z0-9_]*")
# ``hp/`` and segments of the characters the SDK allows in topic prefixes (``_PREFIX_CHARS`` of the bus),
# all of which DDS accepts; no empty segment, nothing after a trailing ``/``.
_TOPIC: Final = re.compile(r"(?:hp-staged/)?hp(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
_QOS_NAMES: Final = frozenset(QosClass.__members__)


@dataclass(frozen=True, slots=True)
class SchemaRefusal:
    """Why a schema announcement was not used, and which record it was (its names shortened for logs)."""

    #: One of :data:`REASONS` (or ``undecodable``, ``conflict``, ``capacity`` from a transport).
    reason: str
    #: What exactly is wrong, in words.
    detail: str
    schema_id: str = ""
    interface: str = ""
    topic: str = ""

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail} (schema {self.schema_id!r}, {self.interface!r} on {self.topic!r})"


def _short(value: object, limit: int = 80) -> str:
    """``value`` as printable text of at most about ``limit`` characters."""
    text = (value if isinstance(value, str) else repr(value))[: limit + 1]
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True, slots=True)
class _Known:
    by_name: Mapping[str, InterfaceSpec]
    #: Topic (contract and staged) -> the interface it belongs to.
    by_topic: Mapping[str, str]


def _index(known: Mapping[str, InterfaceSpec]) -> _Known:
    by_topic: dict[str, str] = {}
    for name, spec in known.items():
        by_topic[spec.topic] = name
        by_topic[STAGED_PREFIX + spec.topic] = name
    return _Known(known, by_topic)


@functools.cache
def _local() -> _Known:
    return _index(all_interfaces())


@functools.cache
def _batch_schema_id() -> str:
    from hardpoint.core.v1 import header_pb2

    return _schema_id(header_pb2.Batch.DESCRIPTOR)


def check_schema_record(
    record: SchemaRecord, *, known: Mapping[str, InterfaceSpec] | None = None
) -> SchemaRefusal | None:
    """``None`` when ``record`` may be used, otherwise why not (SDK-SCHEMA-RX-001..005).

    :param known: the interfaces known locally, by full name; by default
        :func:`hardpoint.all_interfaces`. A known interface must be announced with
        its contract's topic (or ``hp-staged/`` + it) and QoS class, and no other
        interface may claim one of its topics.
    """
    try:
        reason, detail = _check(record, _local() if known is None else _index(known))
    except Exception as e:  # a bug or a pathological record; never let it escape to the caller
        reason, detail = "bad_descriptor", f"checking the record failed: {_short(e)}"
    if not reason:
        return None
    return SchemaRefusal(
        reason,
        detail,
        schema_id=_short(record.schema_id, 32),
        interface=_short(record.interface),
        topic=_short(record.topic),
    )


def _check(record: SchemaRecord, known: _Known) -> tuple[str, str]:
    """``("", "")`` for a usable record, otherwise ``(reason, detail)``; the cheap checks first."""
    reason, detail = _check_names(record, known)
    if reason:
        return reason, detail
    return _check_descriptor(record)


def _check_names(record: SchemaRecord, known: _Known) -> tuple[str, str]:  # noqa: PLR0911 - one return per reason
    schema_id, interface, topic, qos = record.schema_id, record.interface, record.topic, record.qos
    if not isinstance(schema_id, str) or not _SCHEMA_ID.fullmatch(schema_id):
        return "bad_schema_id", f"schema id {_short(schema_id)!r} is not 16 lowercase hexadecimal digits"
    if not isinstance(qos, str) or qos not in _QOS_NAMES:
        return "bad_qos", f"QoS class {_short(qos)!r} is not one of {', '.join(sorted(_QOS_NAMES))}"
    if not isinstance(interface, str) or len(interface) > MAX_NAME_CHARS or not _INTERFACE.fullmatch(interface):
        return "bad_interface", f"interface {_short(interface)!r} is not a full name '<package>.vN.<Message>'"
    if not isinstance(topic, str) or len(topic) > MAX_NAME_CHARS or not _TOPIC.fullmatch(topic):
        return (
            "bad_topic",
            f"topic {_short(topic)!r} is not a hardpoint topic name ('hp/...', {MAX_NAME_CHARS} at most)",
        )
    if topic in RESERVED_TOPICS:
        return "bad_topic", f"topic {topic} is reserved for the schema announcements"
    spec = known.by_name.get(interface)
    if spec is not None:
        if topic not in (spec.topic, STAGED_PREFIX + spec.topic) or qos != spec.qos.name:
            contract = f"{spec.topic} as {spec.qos.name}"
            return "contract_mismatch", f"{interface} is announced on {topic} as {qos}; its contract says {contract}"
    elif topic in known.by_topic:
        return "topic_taken", f"topic {topic} belongs to {known.by_topic[topic]}, not {interface}"
    return "", ""


def _check_descriptor(record: SchemaRecord) -> tuple[str, str]:  # noqa: PLR0911 - one return per reason
    data, interface, schema_id = record.descriptor_set, record.interface, record.schema_id
    if len(data) > MAX_DESCRIPTOR_SET_BYTES:
        return "too_large", f"descriptor set of {len(data)} bytes (at most {MAX_DESCRIPTOR_SET_BYTES})"
    pool, problem = _pool(data)
    if pool is None:
        return "bad_descriptor", problem
    try:
        message = pool.FindMessageTypeByName(interface)
    except KeyError:
        return "missing_message", f"the descriptor set has no message {interface}"
    computed = _schema_id(message)
    if computed != schema_id:
        return "schema_id_mismatch", f"the descriptor set's {interface} has schema id {computed}, not {schema_id}"
    try:
        batch = pool.FindMessageTypeByName(BATCH_MESSAGE)
    except KeyError:
        return "batch_mismatch", f"the descriptor set has no {BATCH_MESSAGE}"
    if _schema_id(batch) != _batch_schema_id():
        return "batch_mismatch", f"the descriptor set's {BATCH_MESSAGE} is not the SDK's"
    return "", ""


def _pool(data: bytes) -> tuple[descriptor_pool.DescriptorPool | None, str]:
    """A descriptor pool of every file of the set (added dependencies first), or why there is none."""
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        return None, f"the descriptor set does not parse as a FileDescriptorSet: {_short(e)}"
    files = list(fds.file)
    if not files:
        return None, "the descriptor set holds no file"
    if len(files) > MAX_DESCRIPTOR_FILES:
        return None, f"the descriptor set holds {len(files)} files (at most {MAX_DESCRIPTOR_FILES})"
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    while files:
        ready = [f for f in files if all(dep in added for dep in f.dependency)]
        if not ready:
            missing = sorted({dep for f in files for dep in f.dependency if dep not in added})
            return None, f"the descriptor set lacks imported files or has an import cycle: {_short(missing)}"
        for f in ready:
            try:
                pool.Add(f)
            except (TypeError, ValueError, KeyError) as e:
                return None, f"file {_short(f.name)} of the descriptor set is not valid: {_short(e)}"
            added.add(f.name)
        files = [f for f in files if f.name not in added]
    return pool, ""
