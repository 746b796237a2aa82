"""Wire-compatibility checker for protobuf schemas, modelled on buf's ``WIRE`` breaking rules.

:func:`check_wire_compatibility` compares two ``FileDescriptorSet`` s (the platform's, ``old``, and a
module's, ``new``) and returns one :class:`CompatFinding` per breaking change, named with buf's rule id.
It implements the rules that ``buf config ls-breaking-rules`` lists for the ``WIRE`` category (buf 1.x):

* ``FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED`` - fields are matched by number, so a rename is allowed and a
  renumbering is a deletion;
* ``FIELD_WIRE_COMPATIBLE_TYPE`` - ``int32/int64/uint32/uint64/bool``, ``sint32/sint64``,
  ``fixed32/sfixed32`` and ``fixed64/sfixed64`` are interchangeable, ``string -> bytes`` is allowed (not the
  reverse), enums and messages must keep their type name;
* ``FIELD_WIRE_COMPATIBLE_CARDINALITY`` - repeated, required and singular (explicit or implicit presence,
  which are wire-equal) must not change; packed and unpacked encodings are equivalent;
* ``FIELD_SAME_ONEOF``, ``FIELD_SAME_DEFAULT``, ``MESSAGE_SAME_REQUIRED_FIELDS``;
* ``ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED`` - values are matched by number, renames are allowed;
* ``RESERVED_MESSAGE_NO_DELETE``, ``RESERVED_ENUM_NO_DELETE``;
* ``FILE_SAME_PACKAGE`` and ``RPC_SAME_{REQUEST_TYPE,RESPONSE_TYPE,CLIENT_STREAMING,SERVER_STREAMING,
  IDEMPOTENCY_LEVEL}``.

As in buf's ``WIRE`` category, deleting a whole message, enum, service or rpc is not breaking on its own
(``MESSAGE_NO_DELETE`` and friends belong to the ``FILE``/``PACKAGE`` categories): a field that still
uses a deleted message changes type and is reported there.  Messages and enums are paired by full name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
    MethodDescriptorProto,
)

__all__ = ["CompatFinding", "check_wire_compatibility"]

_T = FieldDescriptorProto.Type
_L = FieldDescriptorProto.Label

_TYPE_NAMES: dict[int, str] = {
    value: name.removeprefix("TYPE_").lower() for name, value in FieldDescriptorProto.Type.items()
}

# Scalar types that buf's FIELD_WIRE_COMPATIBLE_TYPE treats as interchangeable.
_COMPATIBLE_GROUPS: tuple[frozenset[int], ...] = (
    frozenset({_T.TYPE_INT32, _T.TYPE_INT64, _T.TYPE_UINT32, _T.TYPE_UINT64, _T.TYPE_BOOL}),
    frozenset({_T.TYPE_SINT32, _T.TYPE_SINT64}),
    frozenset({_T.TYPE_FIXED32, _T.TYPE_SFIXED32}),
    frozenset({_T.TYPE_FIXED64, _T.TYPE_SFIXED64}),
)
_NAMED_TYPES = frozenset({_T.TYPE_MESSAGE, _T.TYPE_GROUP, _T.TYPE_ENUM})


@dataclass(frozen=True, slots=True)
class CompatFinding:
    """One wire-breaking change: ``rule`` is buf's rule id, ``element`` the full name of what changed."""

    rule: str
    element: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.element}: {self.message}"


def _as_set(value: FileDescriptorSet | bytes) -> FileDescriptorSet:
    if isinstance(value, FileDescriptorSet):
        return value
    fds = FileDescriptorSet()
    fds.ParseFromString(value)
    return fds


@dataclass(slots=True)
class _Index:
    messages: dict[str, DescriptorProto]
    enums: dict[str, EnumDescriptorProto]
    files: dict[str, FileDescriptorProto]


def _prefix(package: str) -> str:
    return f"{package}." if package else ""


def _walk_message(prefix: str, msg: DescriptorProto, index: _Index) -> None:
    name = prefix + msg.name
    index.messages[name] = msg
    for nested in msg.nested_type:
        _walk_message(name + ".", nested, index)
    for enum in msg.enum_type:
        index.enums[f"{name}.{enum.name}"] = enum


def _index(fds: FileDescriptorSet) -> _Index:
    index = _Index({}, {}, {})
    for file in fds.file:
        index.files[file.name] = file
        prefix = _prefix(file.package)
        for msg in file.message_type:
            _walk_message(prefix, msg, index)
        for enum in file.enum_type:
            index.enums[prefix + enum.name] = enum
    return index


def _closure(index: _Index, roots: Iterable[str]) -> tuple[set[str], set[str]]:
    """Full names of the messages and enums reachable from ``roots`` (message full names)."""
    messages: set[str] = set()
    enums: set[str] = set()
    todo = [root.lstrip(".") for root in roots]
    while todo:
        name = todo.pop()
        if name in messages:
            continue
        msg = index.messages.get(name)
        if msg is None:
            if name in index.enums:
                enums.add(name)
            continue
        messages.add(name)
        for field in msg.field:
            if field.type_name:
                todo.append(field.type_name.lstrip("."))
        todo.extend(f"{name}.{nested.name}" for nested in msg.nested_type)
    return messages, enums


def _in_ranges(number: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(start <= number <= end for start, end in ranges)


def _message_reserved(msg: DescriptorProto) -> list[tuple[int, int]]:
    return [(r.start, r.end - 1) for r in msg.reserved_range]  # message ranges are end-exclusive


def _enum_reserved(enum: EnumDescriptorProto) -> list[tuple[int, int]]:
    return [(r.start, r.end) for r in enum.reserved_range]  # enum ranges are end-inclusive


def _covered(start: int, end: int, ranges: Iterable[tuple[int, int]]) -> bool:
    """Whether every number in ``[start, end]`` lies in one of ``ranges`` (all inclusive)."""
    for lo, hi in sorted(ranges):
        if lo > start:
            return False
        if hi >= start:
            start = hi + 1
            if start > end:
                return True
    return start > end


def _fmt_range(start: int, end: int) -> str:
    return f"[{start}]" if start == end else f"[{start},{end}]"


def _cardinality(field: FieldDescriptorProto) -> str:
    if field.label == _L.LABEL_REPEATED:
        return "repeated"
    if field.label == _L.LABEL_REQUIRED:
        return "required"
    return "optional"  # explicit and implicit presence are identical on the wire


def _type_desc(field: FieldDescriptorProto) -> str:
    if field.type in _NAMED_TYPES:
        return f"{_TYPE_NAMES[field.type]} {field.type_name.lstrip('.')}"
    return _TYPE_NAMES[field.type]


def _wire_compatible_type(old: FieldDescriptorProto, new: FieldDescriptorProto) -> bool:
    if old.type in _NAMED_TYPES or new.type in _NAMED_TYPES:
        return old.type == new.type and old.type_name == new.type_name
    if old.type == new.type:
        return True
    if old.type == _T.TYPE_STRING:
        return new.type == _T.TYPE_BYTES  # bytes -> string is not: bytes need not be UTF-8
    return any(old.type in group and new.type in group for group in _COMPATIBLE_GROUPS)


_INTEGER_TYPES = frozenset().union(*_COMPATIBLE_GROUPS) - {_T.TYPE_BOOL}
_FLOAT_TYPES = frozenset({_T.TYPE_FLOAT, _T.TYPE_DOUBLE})


def _effective_default(field: FieldDescriptorProto, enums: dict[str, EnumDescriptorProto]) -> object:
    """The field's default as a comparable value: the explicit one, else the type's zero value."""
    raw = field.default_value if field.HasField("default_value") else None
    if field.type in _INTEGER_TYPES:
        return int(raw or "0")
    if field.type in _FLOAT_TYPES:
        return float(raw or "0")
    if field.type == _T.TYPE_BOOL:
        return raw == "true"
    if field.type == _T.TYPE_ENUM:
        if raw is not None:
            return raw
        enum = enums.get(field.type_name.lstrip("."))
        return enum.value[0].name if enum is not None and enum.value else None
    return raw or ""


def _real_oneof(msg: DescriptorProto, field: FieldDescriptorProto) -> str | None:
    if not field.HasField("oneof_index") or field.proto3_optional:
        return None
    return msg.oneof_decl[field.oneof_index].name


def _check_fields(
    name: str,
    old: DescriptorProto,
    new: DescriptorProto,
    old_enums: dict[str, EnumDescriptorProto],
    new_enums: dict[str, EnumDescriptorProto],
) -> Iterator[CompatFinding]:
    new_by_number = {f.number: f for f in new.field}
    reserved = _message_reserved(new)
    for old_field in old.field:
        element = f"{name}.{old_field.name}"
        new_field = new_by_number.get(old_field.number)
        if new_field is None:
            if not _in_ranges(old_field.number, reserved):
                yield CompatFinding(
                    "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
                    element,
                    f"field {old_field.number} ({old_field.name!r}) was deleted without reserving its number",
                )
            continue
        if not _wire_compatible_type(old_field, new_field):
            yield CompatFinding(
                "FIELD_WIRE_COMPATIBLE_TYPE",
                element,
                f"field {old_field.number} changed type from {_type_desc(old_field)} to {_type_desc(new_field)}",
            )
        if _cardinality(old_field) != _cardinality(new_field):
            yield CompatFinding(
                "FIELD_WIRE_COMPATIBLE_CARDINALITY",
                element,
                f"field {old_field.number} changed cardinality from {_cardinality(old_field)}"
                f" to {_cardinality(new_field)}",
            )
        old_oneof, new_oneof = _real_oneof(old, old_field), _real_oneof(new, new_field)
        if old_oneof != new_oneof:
            yield CompatFinding(
                "FIELD_SAME_ONEOF",
                element,
                f"field {old_field.number} moved from {f'oneof {old_oneof!r}' if old_oneof else 'outside a oneof'}"
                f" to {f'oneof {new_oneof!r}' if new_oneof else 'outside a oneof'}",
            )
        has_default = old_field.HasField("default_value") or new_field.HasField("default_value")
        same_text = old_field.default_value == new_field.default_value  # also covers an unchanged "nan"
        old_default = _effective_default(old_field, old_enums)
        if has_default and not same_text and old_default != _effective_default(new_field, new_enums):
            yield CompatFinding(
                "FIELD_SAME_DEFAULT",
                element,
                f"field {old_field.number} changed default from {old_field.default_value!r}"
                f" to {new_field.default_value!r}",
            )


def _check_message(
    name: str, old: DescriptorProto, new: DescriptorProto, old_index: _Index, new_index: _Index
) -> Iterator[CompatFinding]:
    yield from _check_fields(name, old, new, old_index.enums, new_index.enums)
    old_required = {f.number for f in old.field if f.label == _L.LABEL_REQUIRED}
    new_required = {f.number for f in new.field if f.label == _L.LABEL_REQUIRED}
    for number in sorted(new_required - old_required):
        yield CompatFinding("MESSAGE_SAME_REQUIRED_FIELDS", name, f"required field {number} was added")
    for number in sorted(old_required - new_required):
        yield CompatFinding("MESSAGE_SAME_REQUIRED_FIELDS", name, f"required field {number} was deleted")
    new_reserved = _message_reserved(new)
    for start, end in _message_reserved(old):
        if not _covered(start, end, new_reserved):
            yield CompatFinding(
                "RESERVED_MESSAGE_NO_DELETE", name, f"reserved range {_fmt_range(start, end)} was removed"
            )
    for reserved_name in old.reserved_name:
        if reserved_name not in new.reserved_name:
            yield CompatFinding("RESERVED_MESSAGE_NO_DELETE", name, f"reserved name {reserved_name!r} was removed")


def _check_enum(name: str, old: EnumDescriptorProto, new: EnumDescriptorProto) -> Iterator[CompatFinding]:
    new_numbers = {v.number for v in new.value}
    new_reserved = _enum_reserved(new)
    for value in old.value:
        if value.number not in new_numbers and not _in_ranges(value.number, new_reserved):
            yield CompatFinding(
                "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
                f"{name}.{value.name}",
                f"enum value {value.number} ({value.name!r}) was deleted without reserving its number",
            )
    for start, end in _enum_reserved(old):
        if not _covered(start, end, new_reserved):
            yield CompatFinding("RESERVED_ENUM_NO_DELETE", name, f"reserved range {_fmt_range(start, end)} was removed")
    for reserved_name in old.reserved_name:
        if reserved_name not in new.reserved_name:
            yield CompatFinding("RESERVED_ENUM_NO_DELETE", name, f"reserved name {reserved_name!r} was removed")


def _check_method(name: str, old: MethodDescriptorProto, new: MethodDescriptorProto) -> Iterator[CompatFinding]:
    checks = (
        ("RPC_SAME_REQUEST_TYPE", "request type", old.input_type.lstrip("."), new.input_type.lstrip(".")),
        ("RPC_SAME_RESPONSE_TYPE", "response type", old.output_type.lstrip("."), new.output_type.lstrip(".")),
        ("RPC_SAME_CLIENT_STREAMING", "client streaming", old.client_streaming, new.client_streaming),
        ("RPC_SAME_SERVER_STREAMING", "server streaming", old.server_streaming, new.server_streaming),
        (
            "RPC_SAME_IDEMPOTENCY_LEVEL",
            "idempotency level",
            old.options.idempotency_level,
            new.options.idempotency_level,
        ),
    )
    for rule, what, before, after in checks:
        if before != after:
            yield CompatFinding(rule, name, f"{what} changed from {before!r} to {after!r}")


def _check_files(old: _Index, new: _Index) -> Iterator[CompatFinding]:
    for path, old_file in sorted(old.files.items()):
        new_file = new.files.get(path)
        if new_file is None:
            continue
        if old_file.package != new_file.package:
            yield CompatFinding(
                "FILE_SAME_PACKAGE", path, f"package changed from {old_file.package!r} to {new_file.package!r}"
            )
    new_methods = {
        f"{_prefix(file.package)}{service.name}.{method.name}": method
        for file in new.files.values()
        for service in file.service
        for method in service.method
    }
    for file in old.files.values():
        for service in file.service:
            for method in service.method:
                name = f"{_prefix(file.package)}{service.name}.{method.name}"
                if name in new_methods:
                    yield from _check_method(name, method, new_methods[name])


def check_wire_compatibility(
    old: FileDescriptorSet | bytes,
    new: FileDescriptorSet | bytes,
    *,
    messages: Iterable[str] | None = None,
) -> list[CompatFinding]:
    """Return the wire-breaking changes from ``old`` (the platform's schema) to ``new`` (a module's).

    Both sides are ``FileDescriptorSet`` s (or their serialized bytes), ideally built with
    ``--include_imports``.  With ``messages`` (full names, e.g. ``hardpoint.nav.v1.NavState``) only those
    messages and the messages and enums they reach are compared, and the file/service rules are skipped.
    An empty list means wire-compatible.
    """
    old_index, new_index = _index(_as_set(old)), _index(_as_set(new))
    findings: list[CompatFinding] = []
    if messages is None:
        message_names: set[str] = set(old_index.messages)
        enum_names: set[str] = set(old_index.enums)
        findings.extend(_check_files(old_index, new_index))
    else:
        message_names, enum_names = _closure(old_index, messages)
    for name in sorted(message_names):
        if name in new_index.messages:
            findings.extend(
                _check_message(name, old_index.messages[name], new_index.messages[name], old_index, new_index)
            )
    for name in sorted(enum_names):
        if name in new_index.enums:
            findings.extend(_check_enum(name, old_index.enums[name], new_index.enums[name]))
    return findings
