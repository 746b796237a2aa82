"""What the management API and the CLI can see and ask of a running platform.

The daemon implements :class:`PlatformControl`; the gRPC servicer
(``_management.py``) only translates between it and the protobuf messages of
``hardpoint.management.v1``, so management decisions stay testable without
sockets, and a fake control can back servicer tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "EventRecord",
    "ModuleStatus",
    "PlatformControl",
    "PlatformHealth",
    "TopicInfo",
    "UnmetRequirement",
]


@dataclass(frozen=True, slots=True)
class UnmetRequirement:
    """A required interface that the platform does not provide, and why."""

    interface: str  #: full name, e.g. ``hardpoint.nav.v1.NavState``
    major: int
    reason: str


@dataclass(frozen=True, slots=True)
class ModuleStatus:
    """One module as the daemon sees it."""

    name: str
    version: str
    supplier: str
    node: str
    #: Lifecycle state: unconfigured, inactive, active, finalized, error_processing;
    #: or ``not_started`` (blocked by resolution), ``starting``, ``restarting``, ``failed``, ``remote_lost``.
    state: str
    #: State the operator or configuration wants.
    target_state: str
    health: str  #: ok, degraded, failed, unknown
    reason: str
    pid: int
    restarts: int
    provides: tuple[str, ...]
    requires: tuple[str, ...]
    unmet: tuple[UnmetRequirement, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    #: Seconds since the last heartbeat; negative when none was seen.
    heartbeat_age_s: float = -1.0
    #: True when the module runs on this daemon's node.
    local: bool = True


@dataclass(frozen=True, slots=True)
class PlatformHealth:
    """Whole-platform judgement: ``ok`` (all wanted modules active), ``degraded`` or ``failed``."""

    status: str
    reasons: tuple[str, ...]
    platform: str
    node: str
    modules_total: int
    modules_active: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the platform event log."""

    id: int
    time_ns: int
    kind: str  #: e.g. module_started, module_restarted, module_failed, state_changed, resolution, config_reloaded
    severity: str  #: info, warning, error
    module: str
    detail: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic seen on the bus."""

    topic: str
    interface: str
    qos: str
    publishers: tuple[str, ...]  #: module names
    rate_hz: float  #: measured over the last few seconds
    nominal_rate_hz: float


class PlatformControl(Protocol):
    """The operations of the management API."""

    def list_modules(self) -> list[ModuleStatus]: ...

    def get_module(self, name: str) -> ModuleStatus:
        """:raises KeyError: no module of that name on the platform."""
        ...

    def change_state(self, name: str, transition: str) -> ModuleStatus:
        """Drive a module through ``transition`` (configure, activate, deactivate, cleanup, shutdown, restart).

        :raises KeyError: unknown module. :raises ValueError: transition not allowed now (message says why).
        """
        ...

    def health(self) -> PlatformHealth: ...

    def events(
        self, since_id: int = 0, *, follow: bool = False, timeout_s: float | None = None
    ) -> Iterator[EventRecord]:
        """Events after ``since_id``; with ``follow``, keep yielding new ones until the caller stops."""
        ...

    def topics(self) -> list[TopicInfo]: ...

    def reload(self) -> list[str]:
        """Re-read the configuration and resolve again; returns what changed. :raises ValueError: invalid config."""
        ...
