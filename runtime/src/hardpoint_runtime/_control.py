"""What the management API and the CLI can see and ask of a running platform.

The daemon implements :class:`PlatformControl`; the gRPC servicer
(``_management.py``) only translates between it and the protobuf messages of
``hardpoint.management.v1``, so management decisions stay testable without
sockets, and a fake control can back servicer tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "EventRecord",
    "IntrusionInfo",
    "UpdateOffer",
    "UpdateProgress",
    "UpdateRecord",
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
    #: What was refused on the bus about this module or its inputs, by offending writer.
    intrusions: tuple[IntrusionInfo, ...] = ()
    #: GUIDs of the DDS participants of its live processes on this node (empty for a remote module).
    participants: tuple[str, ...] = ()
    #: Where its code comes from: ``store`` (installed through signed updates), ``baseline`` (pinned by the
    #: configuration), ``environment`` (importable, vouched for by nobody); "" when none is selected.
    origin: str = ""
    #: ``sha256:<hex>`` of its distribution's RECORD (every installed file with its hash); "" for none.
    digest: str = ""


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
    #: Samples refused on the topic, by kind.
    refused: Mapping[str, int] = field(default_factory=dict)
    #: The writers whose samples were refused.
    intrusions: tuple[IntrusionInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class IntrusionInfo:
    """Samples of one DDS writer refused for one reason on one interface (RT-BUS-ID-003)."""

    interface: str
    #: impersonation, forged_heartbeat, implausible, duplicates, undecodable, schema_mismatch, wrong_interface
    kind: str
    writer: str  #: GUID of the offending writer
    participant: str  #: GUID of its participant
    claimed_source: str
    holder: str  #: owning writer's GUID, or ``roster:`` and the allowed participants
    count: int


@dataclass(frozen=True, slots=True)
class UpdateOffer:
    """A module release the update repository offers this platform (``hardpoint update check``)."""

    module: str
    installed_version: str  #: the active version, "" when none is installed
    available_version: str  #: the newest signed version ("" when the repository has none)
    supplier: str
    target: str  #: TUF target path, ``<supplier>/<module>/<wheel file>``
    length: int  #: payload size in bytes, as signed
    #: ``available`` (newer than installed), ``current`` (nothing newer) or ``refused`` (see reason).
    status: str
    #: Why refused: names the cause, the module, the interface or the TUF role.
    reason: str = ""


@dataclass(frozen=True, slots=True)
class UpdateProgress:
    """One progress report of an update in flight (download bytes, then the steps of activation)."""

    module: str
    #: Journal step: requested, downloaded, installed, staged, gate_passed, switched, probation_passed,
    #: committed; or rolled_back / refused.
    step: str
    done: int  #: bytes downloaded, or seconds of the gate or probation window elapsed
    total: int  #: bytes to download, or the window length in seconds (0 when unknown)
    message: str = ""


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """One update attempt as the journal keeps it (``hardpoint update status|history``)."""

    id: int
    module: str
    from_version: str  #: "" for a first install
    to_version: str
    step: str  #: the last journal step reached
    #: ``in_progress``, ``committed``, ``rolled_back``, ``refused`` or ``interrupted`` (daemon died; recovered).
    outcome: str
    #: Short cause class of a refusal or rollback: the error class (``TamperedTargetError``,
    #: ``UnmetRequirementError``, ``EvidenceError``...) or the gate failure (``crashed``, ``never_healthy``,
    #: ``stopped_publishing``, ``restart_budget``, ``operator``); "" when committed.
    cause: str
    role: str  #: the TUF role a refusal is about, "" otherwise
    reason: str  #: the full message (names cause, module, interface or role)
    started_ns: int
    finished_ns: int  #: 0 while in progress
    #: Time from the old version's last sample to the new version's first one on the bus, as the daemon
    #: measured it at the switch; negative when there was no switch.
    switch_gap_ms: float = -1.0


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

    # -- signed updates (hardpoint_runtime.update) --------------------------------------

    def update_check(self) -> list[UpdateOffer]:
        """Refresh the signed metadata and list what the repository offers each configured module.

        :raises UpdateError: the repository could not be trusted (the error names cause and role).
        """
        ...

    def update_apply(
        self, module: str, version: str | None = None, *, progress: Callable[[UpdateProgress], None] | None = None
    ) -> UpdateRecord:
        """Verify, install side by side, stage, gate, switch and watch ``module`` at ``version`` (newest if None).

        Returns the finished record (``committed``, ``rolled_back`` or ``refused``); a refusal or rollback
        is a normal outcome, not an exception. :raises KeyError: no such module on the platform.
        """
        ...

    def update_status(self) -> list[UpdateRecord]:
        """Updates in progress now."""
        ...

    def update_history(self, module: str | None = None, limit: int = 100) -> list[UpdateRecord]:
        """Past and present update attempts, newest first."""
        ...

    def update_rollback(self, module: str) -> UpdateRecord:
        """Return ``module`` to the version it ran before its last committed update (still installed).

        :raises KeyError: unknown module. :raises ValueError: there is no earlier version to return to.
        """
        ...
