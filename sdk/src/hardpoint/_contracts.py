"""Interface contracts read from the protobuf descriptors.

An *interface* is a protobuf message type that carries the
``(hardpoint.core.v1.contract)`` option. Its full name includes the major
version (``hardpoint.nav.v1.NavState``). Everything the SDK does with an
interface (topic, QoS, key, schema identity) is derived here from the
descriptor, so the contract in ``proto/`` is the only source.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, cast

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message

from hardpoint._errors import ContractError

__all__ = [
    "FieldRule",
    "FieldViolation",
    "InterfaceSpec",
    "QosClass",
    "all_interfaces",
    "field_violations",
    "file_descriptor_set",
    "interface_spec",
    "major_version",
    "nested_field_rules",
]

#: Protobuf packages of the platform interface set, scanned by :func:`all_interfaces`.
INTERFACE_PACKAGES: Final = ("core", "nav", "track", "alert", "tasking")

_MAJOR_RE: Final = re.compile(r"\.v(\d+)\.[A-Za-z_][A-Za-z0-9_]*$")


class QosClass(enum.Enum):
    """Delivery promise of an interface (``hardpoint.core.v1.QosClass``)."""

    STATE = 1
    EVENT = 2
    STREAM = 3
    COMMAND = 4


@dataclass(frozen=True, slots=True)
class FieldRule:
    """A ``(hardpoint.core.v1.constraint)`` on one field."""

    field: str
    min: float | None = None
    max: float | None = None
    required: bool = False
    unit: str = ""


@dataclass(frozen=True, slots=True)
class InterfaceSpec:
    """Everything the SDK needs to know about one interface."""

    #: Full protobuf name, with the major version: ``hardpoint.nav.v1.NavState``.
    name: str
    #: Generated message class.
    message_type: type[Message]
    #: Requirement ID stem, for example ``IF-NAV-STATE``.
    id: str
    topic: str
    qos: QosClass
    #: Nominal publication rate in Hz; 0 for aperiodic interfaces.
    nominal_rate_hz: float
    rate_tolerance: float
    #: Field names forming the instance key; empty for keyless interfaces.
    key: tuple[str, ...]
    history_depth: int
    deadline_ms: int
    single_writer: bool
    semantics: str
    #: Identity of the exact schema (hash of the descriptor closure).
    schema_id: str
    rules: tuple[FieldRule, ...] = field(default=())
    #: The provider publishes at the nominal rate while active; silence past the deadline means it is lost.
    continuous: bool = False

    @property
    def major(self) -> int:
        """Major version of the interface, taken from its package name."""
        return major_version(self.name)

    @property
    def keyed(self) -> bool:
        """True when samples are kept per key (state interfaces with key fields)."""
        return self.qos is QosClass.STATE and bool(self.key)


def major_version(interface: str) -> int:
    """Return N for an interface named ``<package>.vN.<Message>``.

    :raises ContractError: the name has no ``.vN.`` component.
    """
    match = _MAJOR_RE.search(interface)
    if match is None:
        raise ContractError(
            f"interface name {interface!r} has no major version (expected '<package>.vN.<Message>')",
            interface=interface,
        )
    return int(match.group(1))


def _contract_pb2() -> Any:
    # Imported late: the generated module pulls in descriptor.proto, which we
    # do not want to pay for on ``import hardpoint``.
    from hardpoint.core.v1 import contract_pb2

    return contract_pb2


def _file_closure(file: FileDescriptor) -> list[FileDescriptor]:
    """The file and everything it imports, dependencies first, each once."""
    seen: dict[str, FileDescriptor] = {}

    def visit(f: FileDescriptor) -> None:
        if f.name in seen:
            return
        for dep in f.dependencies:
            visit(dep)
        seen[f.name] = f

    visit(file)
    return list(seen.values())


def file_descriptor_set(descriptor: Any) -> bytes:
    """Serialized ``FileDescriptorSet`` that lets a tool decode ``descriptor``'s messages.

    It also holds ``hardpoint/core/v1/header.proto`` (``Header`` and ``Batch``), so a
    batched sample (count > 1) can be split with the announced schemas alone.
    """
    from hardpoint.core.v1 import header_pb2

    files: dict[str, FileDescriptor] = {}
    for root in (header_pb2.DESCRIPTOR, descriptor.file):
        for f in _file_closure(root):
            files.setdefault(f.name, f)
    fds = descriptor_pb2.FileDescriptorSet()
    for f in files.values():
        fds.file.add().MergeFromString(f.serialized_pb)
    return fds.SerializeToString(deterministic=True)


def _wire_shape(descriptor: Descriptor, out: dict[str, list[tuple[object, ...]]]) -> None:
    """Collect what decides the wire format: every field's name, number, type and cardinality."""
    if descriptor.full_name in out:
        return
    rows: list[tuple[object, ...]] = []
    out[descriptor.full_name] = rows
    for fd in sorted(descriptor.fields, key=lambda f: f.number):
        ref = ""
        if fd.message_type is not None:
            ref = fd.message_type.full_name
            _wire_shape(fd.message_type, out)
        elif fd.enum_type is not None:
            ref = fd.enum_type.full_name + ":" + ",".join(f"{v.name}={v.number}" for v in fd.enum_type.values)
        rows.append((fd.number, fd.name, fd.type, fd.is_repeated, ref))


def _schema_id(descriptor: Descriptor) -> str:
    # Only the wire shape counts: comments, options (contract text, constraints)
    # and unrelated messages of the same file leave the identity unchanged.
    shape: dict[str, list[tuple[object, ...]]] = {}
    _wire_shape(descriptor, shape)
    text = repr((descriptor.full_name, sorted(shape.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _field_rules(descriptor: Descriptor) -> tuple[FieldRule, ...]:
    ext = _contract_pb2().constraint
    rules = []
    for fd in descriptor.fields:
        opts = fd.GetOptions()
        if not opts.HasExtension(ext):
            continue
        c = opts.Extensions[ext]
        rules.append(
            FieldRule(
                field=fd.name,
                min=c.min if c.HasField("min") else None,
                max=c.max if c.HasField("max") else None,
                required=c.required,
                unit=c.unit,
            )
        )
    return tuple(rules)


def _check_key(descriptor: Descriptor, key: tuple[str, ...]) -> None:
    for name in key:
        fd = descriptor.fields_by_name.get(name)
        if fd is None or fd.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP) or _is_repeated(fd):
            raise ContractError(
                f"interface {descriptor.full_name}: key field {name!r} must be a top-level scalar field",
                interface=descriptor.full_name,
            )


def _is_repeated(fd: FieldDescriptor) -> bool:
    return bool(fd.is_repeated)


_SPECS: dict[type[Message], InterfaceSpec] = {}


def interface_spec(message_type: type[Message]) -> InterfaceSpec:
    """The contract of ``message_type`` (read once, then cached).

    :raises ContractError: the message carries no contract, or the contract is malformed.
    """
    spec = _SPECS.get(message_type)
    if spec is None:
        spec = _SPECS[message_type] = _read_spec(message_type)
    return spec


def _read_spec(message_type: type[Message]) -> InterfaceSpec:
    # types-protobuf types DESCRIPTOR as a union with the upb class; they behave alike.
    descriptor = cast(Descriptor, message_type.DESCRIPTOR)
    name = descriptor.full_name
    opts = descriptor.GetOptions()
    ext = _contract_pb2().contract
    if not opts.HasExtension(ext):
        raise ContractError(
            f"{name} is not an interface: it has no (hardpoint.core.v1.contract) option", interface=name
        )
    c = opts.Extensions[ext]
    try:
        qos = QosClass(c.qos)
    except ValueError:
        raise ContractError(f"interface {name}: contract has no QoS class", interface=name) from None
    if not c.topic:
        raise ContractError(f"interface {name}: contract has no topic", interface=name)
    key = tuple(c.key)
    _check_key(descriptor, key)
    major_version(name)
    return InterfaceSpec(
        name=name,
        message_type=message_type,
        id=c.id,
        topic=c.topic,
        qos=qos,
        nominal_rate_hz=c.nominal_rate_hz,
        rate_tolerance=c.rate_tolerance,
        key=key,
        history_depth=c.history_depth or 1,
        deadline_ms=c.deadline_ms,
        single_writer=c.single_writer,
        semantics=c.semantics,
        schema_id=_schema_id(descriptor),
        rules=_field_rules(descriptor),
        continuous=c.continuous,
    )


def _generated_modules() -> Iterator[Any]:
    import hardpoint

    for domain in INTERFACE_PACKAGES:
        try:
            pkg = importlib.import_module(f"hardpoint.{domain}")
        except ImportError:  # pragma: no cover - every domain is generated
            continue
        for version in pkgutil.iter_modules(pkg.__path__):
            vpkg = importlib.import_module(f"hardpoint.{domain}.{version.name}")
            for mod in pkgutil.iter_modules(vpkg.__path__):
                if mod.name.endswith("_pb2"):
                    yield importlib.import_module(f"{vpkg.__name__}.{mod.name}")
    del hardpoint


def all_interfaces() -> dict[str, InterfaceSpec]:
    """Every interface of the platform interface set, by full name."""
    ext = _contract_pb2().contract
    found: dict[str, InterfaceSpec] = {}
    for module in _generated_modules():
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            if descriptor.GetOptions().HasExtension(ext):
                cls = getattr(module, descriptor.name)
                found[descriptor.full_name] = interface_spec(cls)
    return dict(sorted(found.items()))


# -- field rules of nested messages, and checking a message against them ---------------------------


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One value of a message that breaks a ``(hardpoint.core.v1.constraint)``."""

    #: Where, with element indices: ``polygon.vertices[2].latitude_deg``.
    path: str
    #: The broken rule; its ``field`` is the dotted path without indices (``polygon.vertices.latitude_deg``).
    rule: FieldRule
    #: What the rule asks, in words (``must lie within [-90, 90] deg``).
    reason: str
    #: The offending value (``None`` for an absent field).
    value: object

    def requirement(self, interface_id: str) -> str:
        """Requirement ID of the rule for an interface: ``IF-NAV-STATE-FIELD-POSITION.LATITUDE_DEG``."""
        return f"{interface_id}-FIELD-{self.rule.field.upper()}"

    def __str__(self) -> str:
        return f"{self.path} = {self.value!r} {self.reason}"


def _is_map_field(fd: FieldDescriptor) -> bool:
    mt = fd.message_type
    return mt is not None and bool(mt.GetOptions().map_entry)


def nested_field_rules(descriptor: Descriptor, _stack: tuple[str, ...] = ()) -> tuple[FieldRule, ...]:
    """Rules of ``descriptor``'s fields and of every nested message field, ``field`` a dotted path.

    The same walk as ``scripts/gen_spec.py`` (which writes the ``-FIELD-<PATH>`` requirement
    IDs): map fields and recursive message types are not entered.
    """
    rules = list(_field_rules(descriptor))
    for fd in descriptor.fields:
        sub = fd.message_type
        if sub is None or _is_map_field(fd) or sub.full_name in (*_stack, descriptor.full_name):
            continue
        for rule in nested_field_rules(sub, (*_stack, descriptor.full_name)):
            rules.append(
                FieldRule(f"{fd.name}.{rule.field}", min=rule.min, max=rule.max, required=rule.required, unit=rule.unit)
            )
    return tuple(rules)


def _required_reason(fd: FieldDescriptor) -> str:
    if _is_repeated(fd):
        return "must have at least one element"
    if fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return "must be non-empty"
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return "must be present"
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return "must not be the zero (UNSPECIFIED) value"
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return "must be true"
    return "must be non-zero"


def _range_reason(rule: FieldRule) -> str:
    unit = f" {rule.unit}" if rule.unit else ""
    if rule.min is not None and rule.max is not None:
        return f"must lie within [{rule.min:g}, {rule.max:g}]{unit}"
    if rule.min is not None:
        return f"must be at least {rule.min:g}{unit}"
    return f"must be at most {rule.max:g}{unit}"


def _present(message: Message, fd: FieldDescriptor) -> bool:
    if _is_repeated(fd):
        return len(getattr(message, fd.name)) > 0
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return message.HasField(fd.name)
    return bool(getattr(message, fd.name))


def _out_of_range(value: object, rule: FieldRule) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    import math

    number = float(value)
    if math.isnan(number):  # NaN lies within no range
        return True
    return (rule.min is not None and number < rule.min) or (rule.max is not None and number > rule.max)


def _check_one(
    message: Message, fd: FieldDescriptor, rule: FieldRule, path: str, top: FieldRule
) -> list[FieldViolation]:
    if rule.required and not _present(message, fd):
        value = None if fd.type == FieldDescriptor.TYPE_MESSAGE else getattr(message, fd.name)
        if _is_repeated(fd):
            value = []
        return [FieldViolation(path, top, _required_reason(fd), value)]
    if rule.min is None and rule.max is None:
        return []
    values = list(getattr(message, fd.name)) if _is_repeated(fd) else [getattr(message, fd.name)]
    return [
        FieldViolation(f"{path}[{i}]" if _is_repeated(fd) else path, top, _range_reason(rule), v)
        for i, v in enumerate(values)
        if _out_of_range(v, rule)
    ]


def _walk(message: Message, prefix: str, dotted: str, stack: tuple[str, ...]) -> list[FieldViolation]:
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    found: list[FieldViolation] = []
    own = {rule.field: rule for rule in _field_rules(descriptor)}
    for fd in descriptor.fields:
        path, key = f"{prefix}{fd.name}", f"{dotted}{fd.name}"
        rule = own.get(fd.name)
        if rule is not None:
            top = FieldRule(key, min=rule.min, max=rule.max, required=rule.required, unit=rule.unit)
            found += _check_one(message, fd, rule, path, top)
        sub = fd.message_type
        if sub is None or _is_map_field(fd) or sub.full_name in (*stack, descriptor.full_name):
            continue
        # Rules of a nested message apply where that message is present (to each element of a repeated one).
        if _is_repeated(fd):
            for i, item in enumerate(getattr(message, fd.name)):
                found += _walk(item, f"{path}[{i}].", f"{key}.", (*stack, descriptor.full_name))
        elif message.HasField(fd.name):
            found += _walk(getattr(message, fd.name), f"{path}.", f"{key}.", (*stack, descriptor.full_name))
    return found


def field_violations(message: Message) -> list[FieldViolation]:
    """Every value of ``message`` that breaks a field constraint of its type or of a nested message.

    Nested rules apply where their message is present; ``required`` follows the wording of
    ``spec/interfaces.md`` (present, non-empty, non-zero, not UNSPECIFIED, at least one element).
    """
    return _walk(message, "", "", ())
