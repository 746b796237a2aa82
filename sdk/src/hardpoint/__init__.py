"""hardpoint: the SDK for capability modules on software-defined platforms.

A module declares what it provides and requires in a :class:`Manifest`,
implements lifecycle hooks (:mod:`hardpoint.hookspecs`), and publishes and
subscribes typed protobuf interfaces through its :class:`Bus`. The bus runs on
Cyclone DDS (:class:`CycloneTransport`) or, in unit tests, in memory
(:class:`hardpoint.testing.InMemoryTransport`).

The package is import-light: names are loaded on first use, so that
``import hardpoint`` (for example by the pytest plugin) loads neither
protobuf nor DDS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hardpoint._bus import (
        STAGED_PREFIX,
        BatchPolicy,
        Bus,
        Publisher,
        PublisherCounters,
        SampleInfo,
        Subscription,
        SubscriptionCounters,
    )
    from hardpoint._contracts import FieldRule, InterfaceSpec, QosClass, all_interfaces, interface_spec
    from hardpoint._dds import CycloneTransport
    from hardpoint._errors import (
        ContractError,
        HardpointError,
        LifecycleError,
        ManifestError,
        ModuleError,
        QosError,
        TransportError,
        UndeclaredInterfaceError,
    )
    from hardpoint._host import ModuleContext, ModuleHost
    from hardpoint._identity import Intruder, Roster
    from hardpoint._lifecycle import State, Transition
    from hardpoint._manifest import Manifest
    from hardpoint._schemas import SchemaRefusal, check_schema_record
    from hardpoint._transport import (
        Channel,
        Frame,
        FrameReader,
        FrameWriter,
        SchemaRecord,
        Timer,
        Transport,
        WriterIdentity,
    )
    from hardpoint.hookspecs import hookimpl

__all__ = [
    "STAGED_PREFIX",
    "BatchPolicy",
    "Bus",
    "Channel",
    "ContractError",
    "CycloneTransport",
    "FieldRule",
    "Frame",
    "FrameReader",
    "FrameWriter",
    "HardpointError",
    "InterfaceSpec",
    "LifecycleError",
    "Manifest",
    "ManifestError",
    "ModuleContext",
    "ModuleError",
    "ModuleHost",
    "Publisher",
    "PublisherCounters",
    "QosClass",
    "QosError",
    "SampleInfo",
    "SchemaRecord",
    "SchemaRefusal",
    "State",
    "Subscription",
    "SubscriptionCounters",
    "Timer",
    "Transition",
    "Transport",
    "TransportError",
    "UndeclaredInterfaceError",
    "__version__",
    "all_interfaces",
    "check_schema_record",
    "Intruder",
    "Roster",
    "WriterIdentity",
    "hookimpl",
    "interface_spec",
]

_WHERE = {
    **dict.fromkeys(
        [
            "STAGED_PREFIX",
            "BatchPolicy",
            "Bus",
            "Publisher",
            "PublisherCounters",
            "SampleInfo",
            "Subscription",
            "SubscriptionCounters",
        ],
        "hardpoint._bus",
    ),
    **dict.fromkeys(
        ["FieldRule", "InterfaceSpec", "QosClass", "all_interfaces", "interface_spec"], "hardpoint._contracts"
    ),
    "CycloneTransport": "hardpoint._dds",
    **dict.fromkeys(
        [
            "ContractError",
            "HardpointError",
            "LifecycleError",
            "ManifestError",
            "ModuleError",
            "QosError",
            "TransportError",
            "UndeclaredInterfaceError",
        ],
        "hardpoint._errors",
    ),
    **dict.fromkeys(["ModuleContext", "ModuleHost"], "hardpoint._host"),
    **dict.fromkeys(["State", "Transition"], "hardpoint._lifecycle"),
    "Manifest": "hardpoint._manifest",
    **dict.fromkeys(["SchemaRefusal", "check_schema_record"], "hardpoint._schemas"),
    **dict.fromkeys(["Intruder", "Roster"], "hardpoint._identity"),
    **dict.fromkeys(
        ["Channel", "Frame", "FrameReader", "FrameWriter", "SchemaRecord", "Timer", "Transport", "WriterIdentity"],
        "hardpoint._transport",
    ),
    "hookimpl": "hardpoint.hookspecs",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("hardpoint")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hardpoint' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
