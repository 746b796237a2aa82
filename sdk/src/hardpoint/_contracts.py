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
    "InterfaceSpec",
    "QosClass",
    "all_interfaces",
    "file_descriptor_set",
    "interface_spec",
    "major_version",
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
