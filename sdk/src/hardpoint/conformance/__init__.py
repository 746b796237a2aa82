"""Conformance checks for supplier modules.

Kept import-light on purpose: ``import hardpoint.conformance`` (and so the pytest plugin that lives in it)
loads neither DDS, gRPC nor protobuf; :func:`check_wire_compatibility` and :class:`CompatFinding` are
imported from ``_compat`` (which needs protobuf) on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hardpoint.conformance._compat import CompatFinding, check_wire_compatibility

__all__ = ["CompatFinding", "check_wire_compatibility"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hardpoint.conformance import _compat

        return getattr(_compat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
