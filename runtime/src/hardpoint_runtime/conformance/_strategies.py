"""Hypothesis strategies for any interface message, generated from its protobuf descriptor and contract.

Nothing here is written per message type: every strategy walks the descriptor
(fields, types, cardinality, oneofs, maps, enums, ``google.protobuf.Any``) and
the contract's field constraints (``(hardpoint.core.v1.constraint)``: ``min``,
``max``, ``required``), at every nesting depth, so a new interface gets
strategies without code.

Four families, all for one message type:

:func:`valid_messages`
    messages every field check accepts (:func:`field_violations` is empty):
    values inside their ranges, required fields set to non-default values,
    enum fields set to declared values, at most one member per oneof.
:func:`boundary_messages`
    valid messages made of edge values: ``min``/``max``/zero, NaN and
    infinities where no range forbids them, the extremes of every integer
    type (so timestamps at ``-2**63`` and ``2**63 - 1``), empty and very long
    strings, empty and long repeated fields.
:func:`invalid_messages`
    valid messages with one to three contract rules broken: a required field
    cleared, a value below ``min`` or above ``max`` (or NaN where a range
    applies), an enum set to a number its type does not declare.
:func:`malformed_payloads` / :func:`wrong_type_payloads`
    broken at the byte level: payloads that do not decode at all (truncated
    fields, impossible wire types, field number 0, invalid UTF-8 in a string,
    over-long varints), and payloads that decode only because protobuf sets
    aside a required field sent with the wrong wire type (so the message
    lacks it).

:func:`field_violations` is the field check itself (the contract's
constraints, nested messages included); the conformance checks use it on
everything a module publishes.
"""

from __future__ import annotations

import functools
import math
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from google.protobuf import message_factory
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import strategies as st

__all__ = [
    "Violation",
    "boundary_messages",
    "decode_violations",
    "field_violations",
    "garbage_payloads",
    "invalid_messages",
    "malformed_payloads",
    "valid_messages",
    "wrong_type_payloads",
]

_F = FieldDescriptor
Mode = Literal["valid", "boundary"]

#: Nesting depth below which optional messages are left unset (only recursive types reach it).
MAX_DEPTH: Final = 6
#: Length of the "long" strings and repeated fields of boundary messages.
LONG_STRING: Final = 4096
LONG_REPEATED: Final = 128
#: ``type_url`` prefix of packed ``google.protobuf.Any`` values.
TYPE_URL_PREFIX: Final = "type.googleapis.com/"

_INT_RANGES: Final = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS: Final = frozenset({_F.TYPE_FLOAT, _F.TYPE_DOUBLE})
_NUMERIC: Final = _FLOATS | frozenset(_INT_RANGES)
#: Wire types: 0 varint, 1 64-bit, 2 length-delimited, 3/4 group start/end (deprecated), 5 32-bit.
_WIRE_OF: Final = {
    **dict.fromkeys(
        [_F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_SINT32, _F.TYPE_SINT64],
        0,
    ),
    **dict.fromkeys([_F.TYPE_BOOL, _F.TYPE_ENUM], 0),
    **dict.fromkeys([_F.TYPE_FIXED64, _F.TYPE_SFIXED64, _F.TYPE_DOUBLE], 1),
    **dict.fromkeys([_F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_MESSAGE], 2),
    **dict.fromkeys([_F.TYPE_FIXED32, _F.TYPE_SFIXED32, _F.TYPE_FLOAT], 5),
}
#: Text that protobuf strings and DDS strings both carry (no surrogates, no NUL).
_TEXT_CHARS: Final = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
#: Any text protobuf strings carry (no surrogates).
_ANY_CHARS: Final = st.characters(exclude_categories=["Cs"])


# -- the contract's field constraints ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    min: float | None
    max: float | None
    required: bool


@functools.cache
def _constraint_ext() -> Any:
    from hardpoint.core.v1 import contract_pb2

    return contract_pb2.constraint


def _rule(fd: FieldDescriptor) -> _Rule:
    opts = fd.GetOptions()
    ext = _constraint_ext()
    if not opts.HasExtension(ext):
        return _Rule(None, None, False)
    c = opts.Extensions[ext]
    return _Rule(
        c.min if c.HasField("min") else None,
        c.max if c.HasField("max") else None,
        bool(c.required),
    )


def _descriptor(message_type: type[Message]) -> Descriptor:
    # types-protobuf types DESCRIPTOR as a union with the upb class; they behave alike.
    return cast(Descriptor, message_type.DESCRIPTOR)


def _msg_of(fd: FieldDescriptor) -> Descriptor:
    assert fd.message_type is not None, fd.full_name
    return fd.message_type


def _enum_of(fd: FieldDescriptor) -> EnumDescriptor:
    assert fd.enum_type is not None, fd.full_name
    return fd.enum_type


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _is_any(desc: Descriptor | None) -> bool:
    return desc is not None and desc.full_name == AnyMessage.DESCRIPTOR.full_name


def _message_class(desc: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(desc)


def _real_oneof(fd: FieldDescriptor) -> str | None:
    """The oneof ``fd`` belongs to, unless it is the synthetic oneof of a proto3 ``optional`` field."""
    oneof = fd.containing_oneof
    if oneof is None or (len(oneof.fields) == 1 and oneof.name == f"_{fd.name}"):
        return None
    return str(oneof.name)


# -- the field check -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken field rule: where (a dotted path from the top message), which rule, and the value seen."""

    path: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


def field_violations(message: Message) -> list[Violation]:
    """Every contract rule ``message`` breaks, nested messages and repeated elements included.

    The rules: a ``required`` field is set to a non-default value (non-empty string or bytes,
    non-zero number, non-zero enum, present message, non-empty repeated field); numbers lie in
    ``[min, max]`` (NaN lies in no range); enum fields hold a number their enum declares. The
    content of a ``google.protobuf.Any`` is opaque and not checked.
    """
    out: list[Violation] = []
    _check_message(message, "", out)
    return out


def decode_violations(message_type: type[Message], payload: bytes) -> list[Violation] | None:
    """The violations of ``payload`` decoded as ``message_type``; ``None`` when it does not decode."""
    try:
        message = message_type.FromString(payload)
    except DecodeError:
        return None
    return field_violations(message)


def _check_message(message: Message, prefix: str, out: list[Violation]) -> None:
    desc = cast(Descriptor, message.DESCRIPTOR)
    if _is_any(desc):
        return
    for fd in desc.fields:
        path = f"{prefix}{fd.name}"
        rule = _rule(fd)
        value = getattr(message, fd.name)
        if fd.is_repeated:
            if rule.required and len(value) == 0:
                out.append(Violation(path, "required", "required repeated field is empty"))
            if _is_map(fd):
                _check_map(fd, value, path, out)
                continue
            for i, item in enumerate(value):
                _check_value(fd, rule, item, f"{path}[{i}]", out)
            continue
        if fd.type == _F.TYPE_MESSAGE:
            if not message.HasField(fd.name):
                if rule.required:
                    out.append(Violation(path, "required", "required message field is not set"))
                continue
        elif rule.required and not value:
            out.append(Violation(path, "required", f"required field has the default value {value!r}"))
        _check_value(fd, rule, value, path, out)


def _check_map(fd: FieldDescriptor, value: Any, path: str, out: list[Violation]) -> None:
    value_fd = _msg_of(fd).fields_by_name["value"]
    value_rule = _rule(value_fd)
    for key in value:
        _check_value(value_fd, value_rule, value[key], f"{path}[{key!r}]", out)


def _check_value(fd: FieldDescriptor, rule: _Rule, value: Any, path: str, out: list[Violation]) -> None:
    if fd.type == _F.TYPE_MESSAGE:
        _check_message(value, f"{path}.", out)
    elif fd.type == _F.TYPE_ENUM:
        enum = _enum_of(fd)
        if enum.values_by_number.get(int(value)) is None:
            out.append(Violation(path, "enum", f"{value} is not a value of enum {enum.full_name}"))
    elif fd.type in _NUMERIC:
        _check_range(rule, value, path, out)


def _check_range(rule: _Rule, value: float, path: str, out: list[Violation]) -> None:
    if rule.min is None and rule.max is None:
        return
    if isinstance(value, float) and math.isnan(value):
        out.append(Violation(path, "range", f"NaN is outside [{_bound(rule.min)}, {_bound(rule.max)}]"))
    elif rule.min is not None and value < rule.min:
        out.append(Violation(path, "min", f"{value!r} is below the minimum {rule.min:g}"))
    elif rule.max is not None and value > rule.max:
        out.append(Violation(path, "max", f"{value!r} is above the maximum {rule.max:g}"))


def _bound(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


# -- numbers ---------------------------------------------------------------------------------------------


def _f32(x: float) -> float:
    """``x`` rounded to the nearest float32 (what a ``float`` field stores)."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def _f32_step(x: float, up: bool) -> float:
    """The float32 next to float32 value ``x`` (towards +inf when ``up``)."""
    if math.isinf(x) or math.isnan(x):
        return x
    if x == 0.0:
        tiny = float(struct.unpack("<f", struct.pack("<I", 1))[0])
        return tiny if up else -tiny
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    bits += 1 if (x > 0) == up else -1
    return float(struct.unpack("<f", struct.pack("<I", bits))[0])


def _float_bounds(fd: FieldDescriptor, rule: _Rule) -> tuple[float | None, float | None]:
    """The contract's bounds as values the field can hold, rounded inwards for float32 fields."""
    lo, hi = rule.min, rule.max
    if fd.type != _F.TYPE_FLOAT:
        return lo, hi
    if lo is not None:
        r = _f32(lo)
        lo = r if r >= lo else _f32_step(r, up=True)
    if hi is not None:
        r = _f32(hi)
        hi = r if r <= hi else _f32_step(r, up=False)
    return lo, hi


def _int_bounds(fd: FieldDescriptor, rule: _Rule) -> tuple[int, int]:
    lo, hi = _INT_RANGES[fd.type]
    if rule.min is not None:
        lo = max(lo, math.ceil(rule.min))
    if rule.max is not None:
        hi = min(hi, math.floor(rule.max))
    return lo, hi


def _float_edges(fd: FieldDescriptor, rule: _Rule) -> list[float]:
    lo, hi = _float_bounds(fd, rule)
    width32 = fd.type == _F.TYPE_FLOAT
    if lo is None and hi is None:
        biggest = 3.4028234663852886e38 if width32 else 1.7976931348623157e308
        tiny = _f32_step(0.0, up=True) if width32 else 5e-324
        return [0.0, -0.0, math.nan, math.inf, -math.inf, biggest, -biggest, tiny, -tiny, 1.0, -1.0]
    edges: list[float] = []
    if lo is not None:
        edges += [lo, _f32_step(lo, up=True) if width32 else math.nextafter(lo, math.inf)]
    else:
        edges.append(-math.inf)
    if hi is not None:
        edges += [hi, _f32_step(hi, up=False) if width32 else math.nextafter(hi, -math.inf)]
    else:
        edges.append(math.inf)
    edges += [0.0, -0.0]
    return [e for e in edges if (lo is None or e >= lo) and (hi is None or e <= hi)]


def _int_edges(fd: FieldDescriptor, rule: _Rule) -> list[int]:
    lo, hi = _int_bounds(fd, rule)
    edges = {lo, lo + 1, hi - 1, hi, 0, 1, -1}
    if _is_time_ns(fd):
        edges.add(time.time_ns())
    return sorted(e for e in edges if lo <= e <= hi)


def _is_time_ns(fd: FieldDescriptor) -> bool:
    opts = fd.GetOptions()
    ext = _constraint_ext()
    return opts.HasExtension(ext) and opts.Extensions[ext].unit == "ns"


def _non_default(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if v or (isinstance(v, float) and math.isnan(v))]


# -- scalar strategies --------------------------------------------------------------------------------------


def _scalar(fd: FieldDescriptor, mode: Mode, *, key: bool) -> st.SearchStrategy[Any]:
    """Values of one scalar (or enum) field that its rule accepts; non-default when it is required."""
    rule = _rule(fd)
    valid = _valid_scalar(fd, rule, key=key)
    if mode == "boundary":
        edges = _edges(fd, rule, key=key)
        if rule.required:
            edges = _non_default(edges)
        if edges:
            valid = st.sampled_from(edges) | valid
    if rule.required:
        valid = valid.filter(lambda v: bool(v) or (isinstance(v, float) and math.isnan(v)))
    return valid


def _valid_scalar(fd: FieldDescriptor, rule: _Rule, *, key: bool) -> st.SearchStrategy[Any]:
    t = fd.type
    if t in _FLOATS:
        lo, hi = _float_bounds(fd, rule)
        return st.floats(
            min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False, width=32 if t == _F.TYPE_FLOAT else 64
        )
    if t in _INT_RANGES:
        lo, hi = _int_bounds(fd, rule)
        return st.integers(lo, hi)
    if t == _F.TYPE_BOOL:
        return st.booleans()
    if t == _F.TYPE_ENUM:
        return st.sampled_from([v.number for v in _enum_of(fd).values])
    if t == _F.TYPE_STRING:
        # Key fields become the DDS instance key: NUL cannot travel in a DDS string.
        return st.text(alphabet=_TEXT_CHARS if key else _ANY_CHARS, max_size=24)
    if t == _F.TYPE_BYTES:
        return st.binary(max_size=24)
    raise TypeError(f"field {fd.full_name}: no strategy for protobuf type {t}")  # pragma: no cover - groups


def _edges(fd: FieldDescriptor, rule: _Rule, *, key: bool) -> list[Any]:
    t = fd.type
    if t in _FLOATS:
        return _float_edges(fd, rule)
    if t in _INT_RANGES:
        return _int_edges(fd, rule)
    if t == _F.TYPE_ENUM:
        numbers = sorted(v.number for v in _enum_of(fd).values)
        return [numbers[0], numbers[-1]]
    if t == _F.TYPE_STRING:
        odd = "" if key else "nul\x00inside"
        return ["", "x", "a" * LONG_STRING, "\U0001f680" * 64, "\u202eright-to-left", "e\u0301", "/", odd]
    others: dict[int, list[Any]] = {_F.TYPE_BOOL: [False, True], _F.TYPE_BYTES: [b"", b"\x00", b"\xff" * LONG_STRING]}
    return others.get(t, [])


# -- message strategies -------------------------------------------------------------------------------------

Setter = Callable[[Message], None]


def _setter(fd: FieldDescriptor, value: Any) -> Setter:
    name = fd.name

    def apply(message: Message) -> None:
        if _is_map(fd):
            target = getattr(message, name)
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif fd.is_repeated:
            getattr(message, name).extend(value)
        elif fd.type == _F.TYPE_MESSAGE:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)

    return apply


def _field_value(fd: FieldDescriptor, mode: Mode, depth: int, *, key: bool) -> st.SearchStrategy[Any]:
    """A value for ``fd`` as a whole: a list for repeated fields, a dict for maps."""
    rule = _rule(fd)
    if _is_map(fd):
        key_fd = _msg_of(fd).fields_by_name["key"]
        value_fd = _msg_of(fd).fields_by_name["value"]
        return st.dictionaries(_scalar(key_fd, mode, key=True), _element(value_fd, mode, depth), max_size=4)
    element = _element(fd, mode, depth, key=key)
    if not fd.is_repeated:
        return element
    min_size = 1 if rule.required else 0
    lists = st.lists(element, min_size=min_size, max_size=4)
    if mode == "boundary":
        # A long list repeats one element: the length is the edge, and it stays cheap to generate.
        long = element.map(lambda e: [e] * LONG_REPEATED)
        edges = long if rule.required else st.just([]) | long
        lists = edges | lists
    return lists


def _element(fd: FieldDescriptor, mode: Mode, depth: int, *, key: bool = False) -> st.SearchStrategy[Any]:
    if fd.type == _F.TYPE_MESSAGE:
        return _message(_msg_of(fd), mode, depth + 1)
    return _scalar(fd, mode, key=key)


def _optional(fd: FieldDescriptor, strategy: st.SearchStrategy[Any], depth: int) -> st.SearchStrategy[Setter | None]:
    """A setter for ``fd``, or ``None`` (leave it unset) when the field is not required."""
    setters: st.SearchStrategy[Setter | None] = strategy.map(functools.partial(_setter, fd))
    if _rule(fd).required:
        return setters
    if fd.type == _F.TYPE_MESSAGE and not fd.is_repeated and depth >= MAX_DEPTH:
        return st.none()
    return st.none() | setters


def _oneof_choice(fields: list[FieldDescriptor], mode: Mode, depth: int) -> st.SearchStrategy[Setter | None]:
    """At most one member of a oneof (exactly one when a member is required)."""
    options: list[st.SearchStrategy[Setter]] = [
        _field_value(fd, mode, depth, key=False).map(functools.partial(_setter, fd)) for fd in fields
    ]
    chosen: st.SearchStrategy[Setter | None] = st.one_of(*options)
    if any(_rule(fd).required for fd in fields):
        return chosen
    return st.none() | chosen


@functools.cache
def _message(desc: Descriptor, mode: Mode, depth: int) -> st.SearchStrategy[Message]:
    if _is_any(desc):
        return _any(mode, depth)
    cls = _message_class(desc)
    keys = _key_fields(desc)
    parts: list[st.SearchStrategy[Setter | None]] = []
    oneofs: dict[str, list[FieldDescriptor]] = {}
    for fd in desc.fields:
        group = _real_oneof(fd)
        if group is not None:
            oneofs.setdefault(group, []).append(fd)
            continue
        if fd.type == _F.TYPE_MESSAGE and not fd.is_repeated and depth >= MAX_DEPTH and not _rule(fd).required:
            continue
        parts.append(_optional(fd, _field_value(fd, mode, depth, key=fd.name in keys), depth))
    parts += [_oneof_choice(fields, mode, depth) for fields in oneofs.values()]

    def build(setters: tuple[Setter | None, ...]) -> Message:
        message = cls()
        for apply in setters:
            if apply is not None:
                apply(message)
        return message

    return st.tuples(*parts).map(build)


def _key_fields(desc: Descriptor) -> frozenset[str]:
    from hardpoint._contracts import _contract_pb2

    opts = desc.GetOptions()
    ext = _contract_pb2().contract
    return frozenset(opts.Extensions[ext].key) if opts.HasExtension(ext) else frozenset()


@functools.cache
def _packable() -> tuple[Descriptor, ...]:
    """Message types an ``Any`` may carry in generated messages: every interface of the platform set."""
    import hardpoint

    return tuple(_descriptor(spec.message_type) for spec in hardpoint.all_interfaces().values())


def _any(mode: Mode, depth: int) -> st.SearchStrategy[Message]:
    """A packed message of an interface type, or (deep down) an empty message of an unknown type."""
    unknown = st.just(AnyMessage(type_url=TYPE_URL_PREFIX + "hardpoint.conformance.v1.Unknown"))
    if depth + 1 >= MAX_DEPTH:
        return unknown

    def pack(message: Message) -> Message:
        packed = AnyMessage()
        packed.Pack(message)
        return packed

    inner = st.one_of(*[_message(d, mode, depth + 1) for d in _packable()]).map(pack)
    return inner | unknown


def valid_messages(message_type: type[Message]) -> st.SearchStrategy[Message]:
    """Messages of ``message_type`` that pass every field check (:func:`field_violations` is empty)."""
    return _message(_descriptor(message_type), "valid", 0)


def boundary_messages(message_type: type[Message]) -> st.SearchStrategy[Message]:
    """Valid messages of ``message_type`` whose fields are mostly edge values (see the module docstring)."""
    return _message(_descriptor(message_type), "boundary", 0)


# -- invalid messages ---------------------------------------------------------------------------------------

Breakage = Literal["required", "below", "above", "nan", "enum"]


@dataclass(frozen=True, slots=True)
class _Site:
    """A field of a (possibly nested) message where a rule can be broken, and how."""

    path: tuple[FieldDescriptor, ...]
    breakage: Breakage


def _sites(desc: Descriptor, path: tuple[FieldDescriptor, ...] = (), depth: int = 0) -> Iterator[_Site]:
    for fd in desc.fields:
        here = (*path, fd)
        rule = _rule(fd)
        if rule.required:
            yield _Site(here, "required")
        if fd.is_repeated:
            continue  # elements of repeated fields are reached through the required rule only
        if fd.type == _F.TYPE_ENUM:
            yield _Site(here, "enum")
        elif fd.type in _NUMERIC:
            yield from (_Site(here, b) for b in _range_breakages(fd, rule))
        elif fd.type == _F.TYPE_MESSAGE and not _is_any(fd.message_type) and depth < MAX_DEPTH:
            yield from _sites(_msg_of(fd), here, depth + 1)


def _range_breakages(fd: FieldDescriptor, rule: _Rule) -> Iterator[Breakage]:
    if rule.min is None and rule.max is None:
        return
    if fd.type in _FLOATS:
        yield "nan"
    if rule.min is not None and _outside(fd, rule, below=True):
        yield "below"
    if rule.max is not None and _outside(fd, rule, below=False):
        yield "above"


def _outside(fd: FieldDescriptor, rule: _Rule, *, below: bool) -> bool:
    """Whether the field's type can hold a value beyond the bound at all (a uint32 cannot go below 0)."""
    if fd.type in _FLOATS:
        return True
    lo, hi = _INT_RANGES[fd.type]
    return (rule.min is not None and lo < rule.min) if below else (rule.max is not None and hi > rule.max)


def _breaking_value(fd: FieldDescriptor, site: _Site) -> st.SearchStrategy[Any]:
    rule = _rule(fd)
    if site.breakage == "enum":
        declared = {v.number for v in _enum_of(fd).values}
        return st.integers(-(2**31), 2**31 - 1).filter(lambda n: n not in declared)
    if site.breakage == "nan":
        return st.just(math.nan)
    if fd.type in _FLOATS:
        assert rule.min is not None or rule.max is not None
        if site.breakage == "below":
            assert rule.min is not None
            return st.sampled_from([-math.inf, _beyond(fd, rule.min, up=False), rule.min - 1.0, rule.min - 1e6])
        assert rule.max is not None
        return st.sampled_from([math.inf, _beyond(fd, rule.max, up=True), rule.max + 1.0, rule.max + 1e6])
    lo, hi = _INT_RANGES[fd.type]
    if site.breakage == "below":
        assert rule.min is not None
        return st.integers(lo, math.ceil(rule.min) - 1)
    assert rule.max is not None
    return st.integers(math.floor(rule.max) + 1, hi)


def _beyond(fd: FieldDescriptor, bound: float, *, up: bool) -> float:
    """The nearest value past ``bound`` that the field can hold."""
    if fd.type == _F.TYPE_FLOAT:
        r = _f32(bound)
        return r if (r > bound if up else r < bound) else _f32_step(r, up=up)
    return math.nextafter(bound, math.inf if up else -math.inf)


def _break(message: Message, site: _Site, value: Any) -> None:
    """Apply one breakage in place; parents on the path are made present so the breakage is seen."""
    holder = message
    for fd in site.path[:-1]:
        holder = getattr(holder, fd.name)
        holder.SetInParent()
    fd = site.path[-1]
    if site.breakage == "required":
        holder.ClearField(fd.name)
    else:
        setattr(holder, fd.name, value)


def invalid_messages(message_type: type[Message]) -> st.SearchStrategy[Message]:
    """Messages of ``message_type`` that break one to three contract rules (:func:`field_violations` is not empty).

    :raises ValueError: the type has no rule that can be broken (no required, ranged or enum field).
    """
    sites = list(_sites(_descriptor(message_type)))
    if not sites:
        raise ValueError(f"{message_type.DESCRIPTOR.full_name} has no field rule that a message could break")

    @st.composite
    def broken(draw: st.DrawFn) -> Message:
        message = draw(valid_messages(message_type))
        chosen = draw(st.lists(st.sampled_from(sites), min_size=1, max_size=3, unique=True))
        for site in chosen:
            value = None if site.breakage == "required" else draw(_breaking_value(site.path[-1], site))
            _break(message, site, value)
        return message

    return broken()


# -- byte-level payloads ------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def malformed_payloads(message_type: type[Message]) -> st.SearchStrategy[bytes]:
    """Payloads that do not decode as ``message_type`` at all (``FromString`` raises ``DecodeError``).

    A valid serialization followed by one broken field: a length-delimited field longer than the
    bytes left (truncated), wire type 6 or 7 (do not exist), a stray end-group, field number 0,
    an eleven-byte varint, or invalid UTF-8 in a string field.
    """
    desc = _descriptor(message_type)
    numbers = [fd.number for fd in desc.fields] or [1]
    strings = [fd.number for fd in desc.fields if fd.type == _F.TYPE_STRING]
    breakers: list[st.SearchStrategy[bytes]] = [
        st.builds(lambda n, k: _tag(n, 2) + _varint(k + 8) + b"\x00" * k, st.sampled_from(numbers), st.integers(0, 7)),
        st.builds(_tag, st.sampled_from(numbers), st.sampled_from([6, 7])),
        st.builds(lambda n: _tag(n, 4), st.sampled_from(numbers)),
        st.sampled_from([b"\x00", b"\x02\x01x", b"\x05\x00\x00\x00\x00"]),
        st.builds(lambda n: _tag(n, 0) + b"\xff" * 10 + b"\x01", st.sampled_from(numbers)),
    ]
    if strings:
        breakers.append(
            st.builds(
                lambda n, bad: _tag(n, 2) + _varint(len(bad)) + bad,
                st.sampled_from(strings),
                st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"a\xed\xa0\x80b", b"\xf8\x88\x80\x80\x80"]),
            )
        )
    prefix = valid_messages(message_type).map(lambda m: m.SerializeToString()) | st.just(b"")
    return st.tuples(prefix, st.one_of(*breakers)).map(lambda pair: pair[0] + pair[1])


def wrong_type_payloads(message_type: type[Message]) -> st.SearchStrategy[bytes]:
    """Payloads that decode, but carry a required field only with the wrong wire type.

    Protobuf keeps a field with an unexpected wire type as an unknown field, so the message decodes
    without it: the required rule is broken. Empty strategy for a type with no required scalar field.
    """
    desc = _descriptor(message_type)
    required = [fd for fd in desc.fields if _rule(fd).required and not fd.is_repeated and fd.type in _WIRE_OF]
    if not required:
        return st.nothing()

    def encode(message: Message, fd: FieldDescriptor, k: int) -> bytes:
        message.ClearField(fd.name)
        wrong = 0 if _WIRE_OF[fd.type] != 0 else 2
        body = _varint(k) if wrong == 0 else _varint(1) + b"\x01"
        return message.SerializeToString() + _tag(fd.number, wrong) + body

    return st.builds(encode, valid_messages(message_type), st.sampled_from(required), st.integers(0, 2**32))


def garbage_payloads() -> st.SearchStrategy[bytes]:
    """Random bytes: they may or may not decode (the checks decode them to know what to expect)."""
    return st.binary(min_size=1, max_size=96)


# -- the edge sweep -----------------------------------------------------------------------------------------


def minimal_valid(message_type: type[Message]) -> Message:
    """The smallest valid message: only the required fields, each at its simplest non-default value."""
    message = message_type()
    _fill_required(message, 0)
    return message


def _fill_required(message: Message, depth: int) -> None:
    desc = cast(Descriptor, message.DESCRIPTOR)
    if _is_any(desc):
        cast(AnyMessage, message).type_url = TYPE_URL_PREFIX + "hardpoint.conformance.v1.Unknown"
        return
    for fd in desc.fields:
        if not _rule(fd).required:
            continue
        if fd.type == _F.TYPE_MESSAGE:
            child = getattr(message, fd.name).add() if fd.is_repeated else getattr(message, fd.name)
            child.SetInParent()
            if depth < MAX_DEPTH:
                _fill_required(child, depth + 1)
            continue
        value = _simplest(fd)
        if fd.is_repeated:
            getattr(message, fd.name).append(value)
        else:
            setattr(message, fd.name, value)


def _simplest(fd: FieldDescriptor) -> Any:
    """A non-default value of a scalar field that its rule accepts."""
    rule = _rule(fd)
    t = fd.type
    if t == _F.TYPE_ENUM:
        return min((v.number for v in _enum_of(fd).values if v.number), key=abs, default=0)
    if t == _F.TYPE_STRING:
        return "x"
    if t == _F.TYPE_BYTES:
        return b"x"
    if t == _F.TYPE_BOOL:
        return True
    lo, hi = _float_bounds(fd, rule) if t in _FLOATS else _int_bounds(fd, rule)
    candidates = [1, lo, hi] if t in _INT_RANGES else [1.0, lo, hi]
    for c in candidates:
        if c is not None and c != 0 and (lo is None or c >= lo) and (hi is None or c <= hi):
            return c
    return candidates[0]


def edge_sweep(message_type: type[Message]) -> list[Message]:
    """One message per edge value of every field, the rest of it minimal and valid (deterministic).

    Every scalar field reachable through singular message fields gets each of its edge values
    (those of :func:`boundary_messages`: range ends, zero, NaN and infinities where allowed, integer
    extremes, empty, long and odd strings); every repeated field is sent empty and long.
    """
    base = minimal_valid(message_type)
    keys = _key_fields(_descriptor(message_type))
    out: list[Message] = []
    for path, fd in _scalar_paths(_descriptor(message_type), (), 0):
        for value in _sweep_values(fd, key=len(path) == 1 and fd.name in keys):
            message = message_type()
            message.CopyFrom(base)
            _set_path(message, path, value)
            out.append(message)
    return out


def _scalar_paths(
    desc: Descriptor, path: tuple[FieldDescriptor, ...], depth: int
) -> Iterator[tuple[tuple[FieldDescriptor, ...], FieldDescriptor]]:
    for fd in desc.fields:
        here = (*path, fd)
        if fd.type == _F.TYPE_MESSAGE and not fd.is_repeated:
            if not _is_any(fd.message_type) and depth < 3:
                yield from _scalar_paths(_msg_of(fd), here, depth + 1)
            continue
        if not _is_map(fd):
            yield here, fd


def _sweep_values(fd: FieldDescriptor, *, key: bool) -> list[Any]:
    rule = _rule(fd)
    if fd.is_repeated:
        element = minimal_valid(_message_class(_msg_of(fd))) if fd.type == _F.TYPE_MESSAGE else _simplest(fd)
        return ([] if rule.required else [[]]) + [[element] * LONG_REPEATED]
    edges = _edges(fd, rule, key=key)
    return _non_default(edges) if rule.required else edges


def _set_path(message: Message, path: tuple[FieldDescriptor, ...], value: Any) -> None:
    holder = message
    for fd in path[:-1]:
        holder = getattr(holder, fd.name)
        holder.SetInParent()
    fd = path[-1]
    if fd.is_repeated:
        target = getattr(holder, fd.name)
        del target[:]
        target.extend(value)
    else:
        setattr(holder, fd.name, value)
