#!/usr/bin/env python3
"""Write ``spec/interfaces.md`` from the interface contracts in ``proto/``.

Usage (from anywhere; paths are relative to the repository root)::

    .venv/bin/python scripts/gen_spec.py           # (re)write spec/interfaces.md
    .venv/bin/python scripts/gen_spec.py --check   # exit 1 if it differs from what would be written

The protos are compiled by ``grpc_tools.protoc`` into a FileDescriptorSet
with source info (so proto comments become the descriptions in the spec);
the ``(hardpoint.core.v1.contract)`` and ``(hardpoint.core.v1.constraint)``
options are read through a descriptor pool built from that set, so the spec
depends on ``proto/`` alone, not on the generated Python code.

Every message with a contract becomes a section with requirement IDs derived
from the contract's ``id`` stem (``-TOPIC``, ``-QOS``, ``-RATE``, ``-KEY``,
``-HISTORY``, ``-DEADLINE``, ``-WRITER``, ``-SEM`` and ``-FIELD-<PATH>`` per
field constraint, nested message fields included). The fixed sections (QoS
classes ``IF-QOS-*``, bus envelope ``IF-ENV-*``) are text in this script.
The contracts are checked on the way (unique ids and topics, topic syntax,
key fields, comments); a malformed contract stops generation with exit 2.
Only protos that define interfaces, or types that interfaces use, appear in
the spec; other protos (the daemon's gRPC management API) are left out.
Output is deterministic: the same ``proto/`` gives the same bytes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_proto import ROOT, GenError, descriptor_set

SPEC = ROOT / "spec" / "interfaces.md"
FDP = descriptor_pb2.FieldDescriptorProto
CONTRACT_FILE = "hardpoint/core/v1/contract.proto"
HEADER_FILE = "hardpoint/core/v1/header.proto"
QOS_NAMES = {1: "STATE", 2: "EVENT", 3: "STREAM", 4: "COMMAND"}
TOPIC_RE = re.compile(r"^[A-Za-z0-9_/]+$")
ID_RE = re.compile(r"^IF(-[A-Z0-9]+)+$")

# Paths in SourceCodeInfo (field numbers of the descriptor messages).
_FILE_PACKAGE = 2
_FILE_MESSAGE = 4
_FILE_ENUM = 5
_MSG_FIELD = 2
_MSG_NESTED = 3
_MSG_ENUM = 4
_ENUM_VALUE = 2

_SCALARS = {
    FDP.TYPE_DOUBLE: "double",
    FDP.TYPE_FLOAT: "float",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_BOOL: "bool",
    FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
}


# --------------------------------------------------------------------------- model


@dataclass
class Constraint:
    min: float | None
    max: float | None
    required: bool
    unit: str


@dataclass
class Contract:
    id: str
    topic: str
    qos: str
    nominal_rate_hz: float
    rate_tolerance: float
    key: list[str]
    history_depth: int
    deadline_ms: int
    single_writer: bool
    semantics: str
    continuous: bool = False


@dataclass
class Message:
    full_name: str
    file: str
    proto: descriptor_pb2.DescriptorProto
    path: tuple[int, ...]
    contract: Contract | None = None


@dataclass
class Enum:
    full_name: str
    file: str
    proto: descriptor_pb2.EnumDescriptorProto
    path: tuple[int, ...]


@dataclass
class Model:
    files: list[descriptor_pb2.FileDescriptorProto]
    messages: dict[str, Message] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    comments: dict[tuple[str, tuple[int, ...]], str] = field(default_factory=dict)
    constraints: dict[tuple[str, str], Constraint] = field(default_factory=dict)

    def comment(self, file: str, path: tuple[int, ...]) -> str:
        return self.comments.get((file, path), "")

    def interfaces(self) -> list[Message]:
        return sorted((m for m in self.messages.values() if m.contract), key=lambda m: m.full_name)


class _Options:
    """Reads the custom options through a pool built from the descriptor set itself."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            pool.Add(f)
        try:
            self._contract = pool.FindExtensionByName("hardpoint.core.v1.contract")
            self._constraint = pool.FindExtensionByName("hardpoint.core.v1.constraint")
        except KeyError as exc:
            raise GenError(f"{CONTRACT_FILE} does not define the contract options: {exc}") from None
        self._msg_opts = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.protobuf.MessageOptions"))
        self._field_opts = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.protobuf.FieldOptions"))

    def contract(self, proto: descriptor_pb2.DescriptorProto) -> Contract | None:
        opts: Any = self._msg_opts.FromString(proto.options.SerializeToString())
        if not opts.HasExtension(self._contract):
            return None
        c = opts.Extensions[self._contract]
        return Contract(
            id=c.id,
            topic=c.topic,
            qos=QOS_NAMES.get(c.qos, ""),
            nominal_rate_hz=c.nominal_rate_hz,
            rate_tolerance=c.rate_tolerance,
            key=list(c.key),
            history_depth=c.history_depth,
            deadline_ms=c.deadline_ms,
            single_writer=c.single_writer,
            semantics=c.semantics,
            continuous=c.continuous,
        )

    def constraint(self, proto: descriptor_pb2.FieldDescriptorProto) -> Constraint | None:
        opts: Any = self._field_opts.FromString(proto.options.SerializeToString())
        if not opts.HasExtension(self._constraint):
            return None
        c = opts.Extensions[self._constraint]
        return Constraint(
            min=c.min if c.HasField("min") else None,
            max=c.max if c.HasField("max") else None,
            required=c.required,
            unit=c.unit,
        )


def _escape_prose(line: str) -> str:
    """Escape markdown and HTML specials outside `code spans`."""
    parts = line.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("*", "\\*").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _clean_comment(text: str) -> str:
    """Proto comment text to markdown: paragraphs kept, indented lines kept as a code block."""
    lines = [line[1:] if line.startswith(" ") else line for line in text.rstrip().split("\n")]
    out: list[str] = []
    para: list[str] = []
    code: list[str] = []

    def flush_para() -> None:
        if para:
            out.append(" ".join(para))
            para.clear()

    def flush_code() -> None:
        if code:
            out.append("```text\n" + "\n".join(code) + "\n```")
            code.clear()

    for line in lines:
        if line.startswith("  "):
            flush_para()
            code.append(line.rstrip())
        elif not line.strip():
            flush_para()
            flush_code()
        else:
            flush_code()
            para.append(_escape_prose(line.strip()))
    flush_para()
    flush_code()
    return "\n\n".join(out)


def load_model() -> Model:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set(source_info=True))
    options = _Options(fds)
    files = sorted((f for f in fds.file if f.name.startswith("hardpoint/")), key=lambda f: f.name)
    model = Model(files=files)
    for f in files:
        for loc in f.source_code_info.location:
            text = loc.leading_comments or loc.trailing_comments
            if text.strip():
                model.comments[(f.name, tuple(loc.path))] = _clean_comment(text)

        def add_enum(e: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...], file: str) -> None:
            model.enums[f"{scope}.{e.name}"] = Enum(f"{scope}.{e.name}", file, e, path)

        def add_message(m: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...], file: str) -> None:
            name = f"{scope}.{m.name}"
            model.messages[name] = Message(name, file, m, path, options.contract(m))
            for fd in m.field:
                c = options.constraint(fd)
                if c is not None:
                    model.constraints[(name, fd.name)] = c
            for i, nested in enumerate(m.nested_type):
                add_message(nested, name, (*path, _MSG_NESTED, i), file)
            for i, e in enumerate(m.enum_type):
                add_enum(e, name, (*path, _MSG_ENUM, i), file)

        for i, m in enumerate(f.message_type):
            add_message(m, f.package, (_FILE_MESSAGE, i), f.name)
        for i, e in enumerate(f.enum_type):
            add_enum(e, f.package, (_FILE_ENUM, i), f.name)
    return model


# --------------------------------------------------------------------------- checks


def _is_map(model: Model, fd: descriptor_pb2.FieldDescriptorProto) -> bool:
    m = model.messages.get(fd.type_name.lstrip("."))
    return bool(m and m.proto.options.map_entry)


def _check_contract(c: Contract, fields: dict[str, descriptor_pb2.FieldDescriptorProto]) -> list[str]:
    """What is wrong with one contract on its own."""
    errors: list[str] = []
    if not ID_RE.match(c.id):
        errors.append(f"contract id {c.id!r} is not a requirement ID stem like 'IF-NAV-STATE'")
    if not TOPIC_RE.match(c.topic):
        errors.append(f"topic {c.topic!r} may contain only letters, digits, '/' and '_'")
    if not c.qos:
        errors.append("contract has no QoS class")
    if c.nominal_rate_hz < 0 or not 0 <= c.rate_tolerance < 1:
        errors.append("nominal_rate_hz must be >= 0 and rate_tolerance in [0, 1)")
    if c.qos in ("EVENT", "COMMAND") and c.history_depth < 1:
        errors.append(f"{c.qos} interfaces need history_depth >= 1")
    if c.qos == "COMMAND" and c.deadline_ms == 0:
        errors.append("COMMAND interfaces need deadline_ms (the acknowledgement deadline)")
    if not c.semantics.strip():
        errors.append("contract has no semantics")
    for k in c.key:
        fd = fields.get(k)
        if fd is None or fd.label == FDP.LABEL_REPEATED or fd.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
            errors.append(f"key field {k!r} must be a top-level scalar field")
    if len(set(c.key)) != len(c.key):
        errors.append("key lists a field twice")
    return errors


def check(model: Model) -> list[str]:
    """Everything wrong with the contracts; empty when they are well formed."""
    errors: list[str] = []
    ids: dict[str, str] = {}
    topics: dict[str, str] = {}
    for m in model.interfaces():
        c = m.contract
        assert c is not None
        where = f"{m.full_name} ({m.file})"
        errors += [f"{where}: {e}" for e in _check_contract(c, {fd.name: fd for fd in m.proto.field})]
        if c.id in ids:
            errors.append(f"{where}: contract id {c.id!r} is also used by {ids[c.id]}")
        ids.setdefault(c.id, m.full_name)
        if c.topic in topics:
            errors.append(f"{where}: topic {c.topic!r} is also used by {topics[c.topic]}")
        topics.setdefault(c.topic, m.full_name)
        if not model.comment(m.file, m.path):
            errors.append(f"{where}: interface message has no comment")
        for i, fd in enumerate(m.proto.field):
            if not model.comment(m.file, (*m.path, _MSG_FIELD, i)):
                errors.append(f"{where}: field {fd.name!r} has no comment")
    for (msg, fname), con in sorted(model.constraints.items()):
        if con.min is not None and con.max is not None and con.min > con.max:
            errors.append(f"{msg}.{fname}: constraint min {con.min} > max {con.max}")
    return errors


# --------------------------------------------------------------------------- rendering helpers


def num(x: float) -> str:
    """A number as written in the spec: integers without '.0', others exactly."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def cell(text: str) -> str:
    """Text for a markdown table cell."""
    return text.replace("\n\n", "<br>").replace("\n", " ").replace("|", "\\|")


def anchor(full_name: str) -> str:
    """GitHub's anchor for a heading that is exactly ``full_name``."""
    return re.sub(r"[^a-z0-9_\- ]", "", full_name.lower()).replace(" ", "-")


def type_ref(model: Model, type_name: str, package: str) -> str:
    name = type_name.lstrip(".")
    if name in model.messages or name in model.enums:
        shown = name[len(package) + 1 :] if name.startswith(package + ".") else name
        return f"[`{shown}`](#{anchor(name)})"
    return f"`{name}`"


def field_type(model: Model, fd: descriptor_pb2.FieldDescriptorProto, package: str) -> str:
    if fd.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
        if _is_map(model, fd):
            entry = model.messages[fd.type_name.lstrip(".")].proto
            names = [
                m.type_name.lstrip(".") if m.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM) else _SCALARS[m.type]
                for m in (entry.field[0], entry.field[1])
            ]
            return f"`map<{names[0]}, {names[1]}>`"
        base = type_ref(model, fd.type_name, package)
    else:
        base = f"`{_SCALARS[fd.type]}`"
    if fd.label == FDP.LABEL_REPEATED:
        return f"repeated {base}"
    if fd.proto3_optional:
        return f"optional {base}"
    return base


def constraint_text(con: Constraint, fd: descriptor_pb2.FieldDescriptorProto) -> str:
    """Short form for a table cell: 'required; [-90, 90] deg'."""
    parts = []
    if con.required:
        parts.append("required")
    unit = f" {con.unit}" if con.unit else ""
    if con.min is not None and con.max is not None:
        parts.append(f"[{num(con.min)}, {num(con.max)}]{unit}")
    elif con.min is not None:
        parts.append(f"≥ {num(con.min)}{unit}")
    elif con.max is not None:
        parts.append(f"≤ {num(con.max)}{unit}")
    elif con.unit:
        parts.append(f"unit {con.unit}")
    return "; ".join(parts)


def _required_text(fd: descriptor_pb2.FieldDescriptorProto) -> str:
    if fd.label == FDP.LABEL_REPEATED:
        return "must have at least one element"
    if fd.type in (FDP.TYPE_STRING, FDP.TYPE_BYTES):
        return "must be non-empty"
    if fd.type == FDP.TYPE_MESSAGE:
        return "must be present"
    if fd.type == FDP.TYPE_ENUM:
        return "must not be the zero (UNSPECIFIED) value"
    if fd.type == FDP.TYPE_BOOL:
        return "must be true"
    return "must be non-zero"


def constraint_sentence(path: str, con: Constraint, fd: descriptor_pb2.FieldDescriptorProto, repeated_in: str) -> str:
    parts = []
    if con.required:
        parts.append(_required_text(fd))
    unit = f" {con.unit}" if con.unit else ""
    if con.min is not None and con.max is not None:
        parts.append(f"must lie within [{num(con.min)}, {num(con.max)}]{unit}")
    elif con.min is not None:
        parts.append(f"must be at least {num(con.min)}{unit}")
    elif con.max is not None:
        parts.append(f"must be at most {num(con.max)}{unit}")
    elif con.unit:
        parts.append(f"is expressed in {con.unit}")
    text = f"`{path}` " + " and ".join(parts) + "."
    if repeated_in:
        text += f" This applies to every element of `{repeated_in}`."
    return text


def field_constraints(
    model: Model, msg: Message, prefix: str = "", stack: tuple[str, ...] = (), repeated_in: str = ""
) -> Iterator[tuple[str, Constraint, descriptor_pb2.FieldDescriptorProto, str]]:
    """(path, constraint, field, repeated ancestor) for every constrained field, nested messages included."""
    for fd in msg.proto.field:
        path = f"{prefix}{fd.name}"
        con = model.constraints.get((msg.full_name, fd.name))
        if con is not None:
            yield path, con, fd, repeated_in
        if fd.type != FDP.TYPE_MESSAGE or _is_map(model, fd):
            continue
        sub = model.messages.get(fd.type_name.lstrip("."))
        if sub is None or sub.full_name in stack:
            continue
        rep = path if fd.label == FDP.LABEL_REPEATED and not repeated_in else repeated_in
        yield from field_constraints(model, sub, path + ".", (*stack, msg.full_name), rep)


def requirement(rid: str, text: str) -> str:
    return f"- **{rid}**: {text}"


# --------------------------------------------------------------------------- sections

BANNER = (
    "<!-- GENERATED FILE: written by scripts/gen_spec.py from proto/. Do not edit by hand: change the .proto "
    "files, then run `scripts/gen_spec.py` (CI runs `scripts/gen_spec.py --check`). -->"
)

PREAMBLE = """\
{banner}

# Hardpoint interface specification

*Generated by `scripts/gen_spec.py` from the contracts in `proto/`; do not edit by hand.*

This document is the normative description of the platform's minimal critical
interfaces (MCIs). Each interface is a protobuf message type carrying a
`(hardpoint.core.v1.contract)` option (defined in `proto/hardpoint/core/v1/contract.proto`)
that states its topic, QoS class, rate, key, deadline, writer rule and semantics;
field value rules are `(hardpoint.core.v1.constraint)` options on fields. Everything
below is derived from those options and from the comments in the `.proto` files, so
the protos and this document cannot disagree.

## Conventions

- **Requirement IDs.** Every interface has an ID stem `IF-<DOMAIN>-<NAME>` (its
  contract `id`). The requirements of an interface are the stem plus a suffix:
  `-TOPIC`, `-QOS`, `-RATE`, `-KEY`, `-HISTORY`, `-DEADLINE`, `-WRITER`, `-SEM` and
  `-FIELD-<PATH>` for each field constraint, where `<PATH>` is the dotted field path
  in upper case (`IF-NAV-STATE-FIELD-POSITION.LATITUDE_DEG`). `IF-QOS-*` and
  `IF-ENV-*` apply to every interface. The conformance suite cites these IDs.
- **Field requirements** bind publishers: a conforming publisher never sends a
  message that breaks one. A requirement on a nested field `a.b` applies whenever
  `a` is present; one below a repeated field applies to every element.
- **Units** are SI unless a field's name and unit say otherwise (`_deg`, `_ns`).
  Times are `int64` nanoseconds since the Unix epoch (UTC). Positions are WGS84
  (latitude, longitude in degrees, height above the ellipsoid in metres); local
  axes are North-East-Down (NED).
- **Versions.** An interface's full name carries its major version
  (`hardpoint.nav.v1.NavState`). Changes within a major version are
  wire-compatible (`buf breaking`, rule set FILE); anything else is a new
  package `v2`, published side by side on its own topics.
- **Rates** are per key for keyed interfaces. "Aperiodic" interfaces are
  published on change or on demand.
"""

QOS_ROWS = (
    ("Class", "Reliability", "Durability", "History", "`deadline_ms` means", "Use"),
    (
        "STATE",
        "reliable",
        "transient-local",
        "keep-last 1 per key",
        "longest interval between two samples of one key",
        "the current value of something (a platform's position, a track, a module's health)",
    ),
    (
        "EVENT",
        "reliable",
        "volatile",
        "keep-all, bounded by `history_depth`",
        "(unused)",
        "things that happened, every one of which matters (alerts, task answers)",
    ),
    (
        "STREAM",
        "best effort",
        "volatile",
        "keep-last 1",
        "longest interval between two samples of one key",
        "high-rate data where only the newest sample matters (detections)",
    ),
    (
        "COMMAND",
        "reliable",
        "volatile",
        "keep-all, bounded by `history_depth`",
        "time within which the target acknowledges a request",
        "requests from one module to another",
    ),
)

QOS_SECTION = """\
## QoS classes

Every interface belongs to one QoS class; the SDK maps each class to one fixed set of
DDS policies. A module cannot weaken them.

{qos_table}

- **IF-QOS-STATE**: A STATE topic is reliable, transient-local and keeps the last sample
  per instance key. A reader that joins late receives the current sample of every live
  key at once. Two samples of one key are at most `deadline_ms` apart; a reader treats a
  key with no sample for longer as stale.
- **IF-QOS-EVENT**: An EVENT topic is reliable and volatile and keeps every sample up to
  `history_depth` per writer and reader. A live reader receives every sample of a writer,
  in the writer's order; a reader that joins late receives only samples written after it
  matched. Events may be grouped into batches (IF-ENV-BATCH).
- **IF-QOS-STREAM**: A STREAM topic is best effort and volatile and keeps the last sample
  only. Samples lost on the network or overwritten before a slow reader takes them are
  not an error; they show as sequence gaps (IF-ENV-RX-GAP). Samples may be grouped into
  batches (IF-ENV-BATCH).
- **IF-QOS-COMMAND**: A COMMAND topic is reliable and volatile and keeps every sample up
  to `history_depth`. The target of a request acknowledges it within `deadline_ms`, on the
  answering interface named in the command's semantics. Requests are not replayed to
  late joiners: a requester that gets no acknowledgement in time may send the request
  again, and targets treat a repeated request as the same request.
"""

ENV_REQUIREMENTS = """\
### Envelope requirements

- **IF-ENV-HEADER**: Every sample on a hardpoint topic carries the envelope fields of
  `hardpoint.core.v1.Header` next to its payload. The payload is one serialized interface
  message (`count` = 1) or a serialized `hardpoint.core.v1.Batch` of `count` messages.
  Interface messages never embed the header.
- **IF-ENV-SOURCE**: `source` is the manifest name of the module that wrote the sample.
- **IF-ENV-EPOCH**: `epoch` is chosen afresh (at random) for every writer incarnation;
  receivers track sequence numbers per (`source`, `epoch`, `key`).
- **IF-ENV-SEQ**: `sequence` is 1 for the first message of a writer incarnation and grows
  by exactly one per message, per key for keyed interfaces; a batch of `count` messages
  carries `sequence` .. `sequence + count - 1`.
- **IF-ENV-TIME**: `time_of_validity_ns` is the time the content is valid (measurement
  time, solution time or decision time), in nanoseconds since the Unix epoch (UTC).
- **IF-ENV-INTERFACE**: `interface` is the full protobuf name of the payload's message
  type, major version included.
- **IF-ENV-SCHEMA**: `schema_id` identifies the wire schema of the payload (a digest of
  the message's fields — number, name, type, cardinality — and of every message and enum
  they reach; comments and options do not count). A writer makes the
  `google.protobuf.FileDescriptorSet` of every schema it writes available on the bus,
  so a generic tool can decode any sample without generated code.
- **IF-ENV-KEY**: `key` is the instance key of a keyed (STATE) interface: the text form of
  its key fields joined with `/` in contract order; it is empty for every other interface.
- **IF-ENV-BATCH**: `count` is at least 1. When it is greater than 1 the payload is a
  `hardpoint.core.v1.Batch` whose `items` are exactly `count` serialized messages in
  sequence order. Only EVENT and STREAM interfaces are batched.
- **IF-ENV-RX-ORDER**: A receiver checks every sample before module code sees it, in this
  order: interface (IF-ENV-RX-INTERFACE), schema id (IF-ENV-RX-SCHEMA), count
  (IF-ENV-RX-COUNT), sequence (IF-ENV-RX-DUP), payload (IF-ENV-RX-DECODE). The first
  failed check decides how a sample is counted.
- **IF-ENV-RX-INTERFACE**: A sample whose `interface` is not the interface the reader
  expects on that topic is dropped and counted (as `count` messages, at least one).
- **IF-ENV-RX-SCHEMA**: A sample whose `schema_id` differs from the schema id of the
  reader's own schema for that interface is dropped and counted (as `count` messages,
  at least one).
- **IF-ENV-RX-COUNT**: A sample whose `count` is outside 1..4096, or that the transport
  cannot decode at all (for example a string that is not UTF-8), is dropped and counted
  as one undecodable message.
- **IF-ENV-RX-DECODE**: A sample whose payload does not parse, or whose batch does not
  hold exactly `count` messages, is dropped and counted as `count` undecodable messages.
- **IF-ENV-RX-DUP**: A sample whose `sequence` is not greater than the last one received
  for the same (`source`, `epoch`, `key`) is a duplicate or replay: it is dropped and
  counted.
- **IF-ENV-RX-GAP**: Sequence numbers skipped by a writer are counted as lost messages
  (per reader); the later samples are still delivered.
- **IF-ENV-RX-COUNTERS**: The counts of IF-ENV-RX-* are kept per subscription and are
  available to the module, which may report them in its `ModuleHealth.counters`.
"""


def fields_table(model: Model, msg: Message) -> list[str]:
    package = msg.full_name.rsplit(".", 1)[0]
    out = ["| Field | # | Type | Constraint | Description |", "|---|---|---|---|---|"]
    for i, fd in enumerate(msg.proto.field):
        con = model.constraints.get((msg.full_name, fd.name))
        desc = model.comment(msg.file, (*msg.path, _MSG_FIELD, i))
        if fd.HasField("oneof_index") and not fd.proto3_optional:
            desc = f"(oneof `{msg.proto.oneof_decl[fd.oneof_index].name}`) {desc}"
        out.append(
            f"| `{fd.name}` | {fd.number} | {field_type(model, fd, package)} | "
            f"{cell(constraint_text(con, fd)) if con else ''} | {cell(desc)} |"
        )
    return out


def enum_table(model: Model, enum: Enum) -> list[str]:
    out = ["| Value | # | Description |", "|---|---|---|"]
    for i, v in enumerate(enum.proto.value):
        out.append(f"| `{v.name}` | {v.number} | {cell(model.comment(enum.file, (*enum.path, _ENUM_VALUE, i)))} |")
    return out


def rate_short(c: Contract) -> str:
    if c.nominal_rate_hz <= 0:
        return "aperiodic"
    tol = f" ±{num(round(c.rate_tolerance * 100, 6))} %" if c.rate_tolerance else ""
    return f"{num(c.nominal_rate_hz)} Hz{tol}"


def summary_table(model: Model) -> list[str]:
    out = [
        "## Interfaces",
        "",
        "| Interface | ID | Topic | QoS | Rate | Key | Single writer |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in model.interfaces():
        c = m.contract
        assert c is not None
        key = ", ".join(f"`{k}`" for k in c.key) or "—"
        out.append(
            f"| [`{m.full_name}`](#{anchor(m.full_name)}) | {c.id} | `{c.topic}` | {c.qos} | "
            f"{rate_short(c)} | {key} | {'yes' if c.single_writer else 'no'} |"
        )
    return out


def interface_requirements(model: Model, m: Message) -> list[str]:
    c = m.contract
    assert c is not None
    rid = c.id
    keyed = c.qos == "STATE" and bool(c.key)
    key_tuple = ", ".join(f"`{k}`" for k in c.key)
    per_key = " of each key" if c.key else ""
    out = [
        requirement(
            f"{rid}-TOPIC",
            f"Samples of `{m.full_name}` are published on the DDS topic `{c.topic}`, "
            "and nothing else is published on that topic.",
        ),
        requirement(f"{rid}-QOS", f"The topic has QoS class {c.qos} (IF-QOS-{c.qos})."),
    ]
    if c.nominal_rate_hz > 0:
        text = f"A provider publishes samples{per_key} at a nominal {num(c.nominal_rate_hz)} Hz"
        if c.rate_tolerance:
            lo = c.nominal_rate_hz * (1 - c.rate_tolerance)
            hi = c.nominal_rate_hz * (1 + c.rate_tolerance)
            text += (
                f"; the measured rate stays within ±{num(round(c.rate_tolerance * 100, 6))} % of it "
                f"({num(round(lo, 6))} Hz to {num(round(hi, 6))} Hz)"
            )
        text += (
            ". A provider slower than that by design states the rate at which it publishes each key in its "
            "manifest (`rates`; at most the nominal rate, at least one sample per deadline) and is held to "
            "that rate instead (CF-BUS-007)"
        )
        out.append(requirement(f"{rid}-RATE", text + "."))
    else:
        out.append(
            requirement(f"{rid}-RATE", "Aperiodic: samples are published on change or on demand; no rate applies.")
        )
    if keyed:
        out.append(
            requirement(
                f"{rid}-KEY",
                f"The instance key is ({key_tuple}): readers keep the last sample per key, and a reader "
                "that joins late receives the current sample of every key.",
            )
        )
    elif c.key:
        out.append(
            requirement(
                f"{rid}-KEY",
                f"({key_tuple}) identifies what a sample is about; the topic is not keyed on the bus "
                "(the envelope key is empty) and readers correlate samples by these fields.",
            )
        )
    else:
        out.append(requirement(f"{rid}-KEY", "The interface has no key."))
    if c.qos in ("EVENT", "COMMAND"):
        out.append(
            requirement(f"{rid}-HISTORY", f"Writers and readers keep up to {c.history_depth} samples (history depth).")
        )
    if c.deadline_ms:
        if c.qos == "COMMAND":
            text = f"The target acknowledges every request within {c.deadline_ms} ms of its publication."
        else:
            subject = "Two consecutive samples of one key" if c.key else "Two consecutive samples"
            text = (
                f"{subject} are at most {c.deadline_ms} ms apart; a reader treats "
                f"{'a key' if c.key else 'the interface'} with no sample for longer as stale."
            )
        out.append(requirement(f"{rid}-DEADLINE", text))
    if c.continuous:
        out.append(
            requirement(
                f"{rid}-LIVE",
                "The interface is continuous: its provider publishes at the nominal rate for as long as it is "
                f"active, so a consumer that receives nothing for {c.deadline_ms} ms reports the provider lost "
                "(health DEGRADED, SDK-LC-007).",
            )
        )
    out.append(
        requirement(
            f"{rid}-WRITER",
            "At most one module on a platform provides this interface."
            if c.single_writer
            else "Any number of modules may provide this interface.",
        )
    )
    out.append(requirement(f"{rid}-SEM", c.semantics.strip()))
    for path, con, fd, repeated_in in field_constraints(model, m):
        out.append(requirement(f"{rid}-FIELD-{path.upper()}", constraint_sentence(path, con, fd, repeated_in)))
    return out


def message_section(model: Model, m: Message) -> list[str]:
    out = [f"### {m.full_name}", ""]
    desc = model.comment(m.file, m.path)
    if desc:
        out += [desc, ""]
    if m.contract is not None:
        out += [*interface_requirements(model, m), ""]
    if m.proto.field:
        out += [*fields_table(model, m), ""]
    return out


def enum_section(model: Model, e: Enum) -> list[str]:
    out = [f"### {e.full_name}", ""]
    desc = model.comment(e.file, e.path)
    if desc:
        out += [desc, ""]
    return [*out, *enum_table(model, e), ""]


def envelope_section(model: Model) -> list[str]:
    out = [
        "## Bus envelope",
        "",
        "Every sample carries a header next to its payload; the SDK fills it in on publish and",
        "checks it on receipt, so loss, duplication and schema mismatch are detected before module",
        "code sees a message. `hardpoint.core.v1.Header` documents the fields; `hardpoint.core.v1.Batch`",
        "is the payload of a sample that holds several messages.",
        "",
    ]
    for name in ("hardpoint.core.v1.Header", "hardpoint.core.v1.Batch"):
        if name not in model.messages:
            raise GenError(f"{HEADER_FILE} must define {name}")
        out += message_section(model, model.messages[name])
    return [*out, ENV_REQUIREMENTS]


def interface_files(model: Model) -> set[str]:
    """Files that define an interface or a type an interface uses (directly or through other types).

    Other protos under proto/hardpoint/ (for example the daemon's gRPC management API) are
    not bus interfaces and stay out of this document.
    """
    files: set[str] = set()
    todo = [m.full_name for m in model.interfaces()]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in model.enums:
            files.add(model.enums[name].file)
            continue
        msg = model.messages.get(name)
        if msg is None:
            continue
        files.add(msg.file)
        todo += [fd.type_name.lstrip(".") for fd in msg.proto.field if fd.type_name]
    return files


def file_sections(model: Model) -> list[str]:
    out: list[str] = []
    wanted = interface_files(model)
    for f in model.files:
        if f.name in (CONTRACT_FILE, HEADER_FILE) or f.name not in wanted:
            continue
        out += [f"## {f.name}", "", f"Package `{f.package}`.", ""]
        desc = model.comment(f.name, (_FILE_PACKAGE,))
        if desc:
            out += [desc, ""]
        items: list[tuple[tuple[int, ...], Message | Enum]] = [
            (m.path, m) for m in model.messages.values() if m.file == f.name and not m.proto.options.map_entry
        ]
        items += [(e.path, e) for e in model.enums.values() if e.file == f.name]
        # Interfaces first, then data types; each group in declaration order.
        items.sort(key=lambda it: (not (isinstance(it[1], Message) and it[1].contract), it[0]))
        for _, item in items:
            out += message_section(model, item) if isinstance(item, Message) else enum_section(model, item)
    return out


def render(model: Model) -> str:
    rows = ["| " + " | ".join(r) + " |" for r in QOS_ROWS]
    rows.insert(1, "|" + "---|" * len(QOS_ROWS[0]))
    qos = QOS_SECTION.replace("{qos_table}", "\n".join(rows))
    parts = [PREAMBLE.replace("{banner}", BANNER), "\n".join(summary_table(model)) + "\n", qos]
    parts.append("\n".join(envelope_section(model)))
    parts.append("\n".join(file_sections(model)))
    text = "\n".join(p.rstrip("\n") + "\n" for p in parts)
    return re.sub(r"\n{3,}", "\n\n", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if spec/interfaces.md is stale")
    parser.add_argument(
        "--output", type=Path, default=SPEC, help="file to write or check (default: spec/interfaces.md)"
    )
    args = parser.parse_args(argv)
    try:
        model = load_model()
        errors = check(model)
        if errors:
            print("gen_spec: malformed interface contracts in proto/:", file=sys.stderr)
            for e in errors:
                print(f"  {e}", file=sys.stderr)
            return 2
        text = render(model)
    except GenError as exc:
        print(f"gen_spec: error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.output
    current = out.read_text(encoding="utf-8") if out.is_file() else None
    if args.check:
        if current != text:
            print(f"gen_spec --check: {out} is stale; run scripts/gen_spec.py", file=sys.stderr)
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True), text.splitlines(keepends=True), "current", "generated", n=1
            )
            sys.stderr.writelines(list(diff)[:40])
            return 1
        print(f"gen_spec --check: {out.name} is up to date ({len(model.interfaces())} interfaces)")
        return 0
    if current != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"gen_spec: wrote {out} ({len(model.interfaces())} interfaces)")
    else:
        print(f"gen_spec: {out.name} already up to date ({len(model.interfaces())} interfaces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
