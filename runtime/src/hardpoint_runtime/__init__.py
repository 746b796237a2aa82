"""hardpoint-runtime: the platform daemon ``hardpointd`` and the ``hardpoint`` CLI.

The daemon resolves a platform (:func:`resolve`, pure), supervises each module
in its own process, keeps its state in SQLite (:class:`StateStore`) and serves
the management API (gRPC) described by :class:`PlatformControl`.
"""

from __future__ import annotations

from hardpoint_runtime._config import (
    AdapterBinding,
    ManagementSection,
    MetricsSection,
    ModuleEntry,
    PlatformConfig,
    PlatformSection,
    SupervisionSection,
    load_config,
    parse_config,
)
from hardpoint_runtime._control import (
    EventRecord,
    ModuleStatus,
    PlatformControl,
    PlatformHealth,
    TopicInfo,
    UnmetRequirement,
)
from hardpoint_runtime._daemon import Daemon
from hardpoint_runtime._errors import (
    ConfigError,
    ConfigProblem,
    HardpointRuntimeError,
    ManagementError,
    ResolutionError,
    StateError,
    WorkerError,
)
from hardpoint_runtime._policy import RestartDecision, RestartPolicy
from hardpoint_runtime._resolve import Candidate, InterfaceInfo, Resolution, Unmet, resolve
from hardpoint_runtime._store import Event, ModuleRecord, StateStore

__all__ = [
    "AdapterBinding",
    "Candidate",
    "ConfigError",
    "ConfigProblem",
    "Daemon",
    "Event",
    "EventRecord",
    "HardpointRuntimeError",
    "InterfaceInfo",
    "ManagementError",
    "ManagementSection",
    "MetricsSection",
    "ModuleEntry",
    "ModuleRecord",
    "ModuleStatus",
    "PlatformConfig",
    "PlatformControl",
    "PlatformHealth",
    "PlatformSection",
    "Resolution",
    "ResolutionError",
    "RestartDecision",
    "RestartPolicy",
    "StateError",
    "StateStore",
    "SupervisionSection",
    "TopicInfo",
    "Unmet",
    "UnmetRequirement",
    "WorkerError",
    "load_config",
    "parse_config",
    "resolve",
]
