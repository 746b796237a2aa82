"""The public names of the SDK are pinned: adding or removing one is a decision."""

from __future__ import annotations

import subprocess
import sys

import hardpoint
import hardpoint.testing

EXPECTED = {
    "BatchPolicy", "Bus", "Channel", "ContractError", "CycloneTransport", "FieldRule", "Frame", "FrameReader",
    "FrameWriter", "HardpointError", "InterfaceSpec", "LifecycleError", "Manifest", "ManifestError",
    "ModuleContext", "ModuleError", "ModuleHost", "Publisher", "PublisherCounters", "QosClass", "QosError",
    "SampleInfo", "SchemaRecord", "SchemaRefusal", "State", "Subscription", "SubscriptionCounters", "Timer",
    "Transition", "Transport", "TransportError", "UndeclaredInterfaceError", "__version__", "all_interfaces",
    "check_schema_record", "hookimpl", "interface_spec", "STAGED_PREFIX", "Intruder", "Roster", "WriterIdentity",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(hardpoint.__all__) == EXPECTED
    assert hardpoint.testing.__all__ == ["InMemoryTransport", "MemoryFrame"]


def test_every_public_name_resolves() -> None:
    for name in hardpoint.__all__:
        assert getattr(hardpoint, name) is not None


def test_errors_share_one_root() -> None:
    for name in hardpoint.__all__:
        obj = getattr(hardpoint, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, hardpoint.HardpointError)
            assert name.endswith("Error")


def test_import_is_light() -> None:
    heavy = "('google', 'cyclonedds', 'grpc', 'pydantic')"
    code = f"import sys, hardpoint; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
