"""The heartbeat message a module host publishes (``hardpoint.core.v1.ModuleHealth``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from hardpoint._lifecycle import State

if TYPE_CHECKING:
    from hardpoint._host import ModuleHost

__all__ = ["health_message"]


def _lifecycle_value(state: State) -> int:
    from hardpoint.core.v1 import health_pb2

    return int(health_pb2.LifecycleState.Value(f"LIFECYCLE_STATE_{state.name}"))


def _status_value(status: str) -> int:
    from hardpoint.core.v1 import health_pb2

    return int(health_pb2.HealthStatus.Value(f"HEALTH_STATUS_{status.upper()}"))


def _counters(host: ModuleHost) -> dict[str, int]:
    flat: dict[str, int] = {}
    for channel, counts in host.bus.counters().items():
        for name, value in counts.items():
            flat[f"{channel}.{name}"] = value
    return flat


def health_message(host: ModuleHost) -> Any:
    """The current heartbeat of ``host``'s module."""
    from hardpoint.core.v1 import health_pb2

    return health_pb2.ModuleHealth(
        module=host.manifest.name,
        node=host.node,
        version=host.manifest.version,
        lifecycle_state=_lifecycle_value(host.state),  # type: ignore[arg-type]
        status=_status_value(host.health_status),  # type: ignore[arg-type]
        reason=host.health_reason,
        uptime_ms=int((time.monotonic() - host._started) * 1000),
        counters=_counters(host),
    )
