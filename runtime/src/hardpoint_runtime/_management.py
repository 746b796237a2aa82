"""The management API of hardpointd over gRPC: servicer, server and client.

:class:`ManagementServicer` translates between :class:`~hardpoint_runtime._control.PlatformControl`
(implemented by the daemon) and the protobuf messages of ``hardpoint.management.v1``;
:func:`serve` runs it with the standard gRPC health and reflection services;
:class:`ManagementClient` is the typed client the CLI uses, returning the
dataclasses of ``_control.py``.

Endpoints:

* Always a Unix socket (``unix:/path``), created with mode 0600 so that only
  the daemon's user can connect. An existing socket file that no server
  answers on (left by a crash) is replaced; one that answers is refused.
* TCP only when asked (``tcp="127.0.0.1:7443"``), and then only with TLS and
  required client certificates (:class:`TlsFiles`).

Error mapping (servicer): ``KeyError`` from the control -> ``NOT_FOUND``,
``ValueError`` -> ``FAILED_PRECONDITION`` with the message as details,
:class:`~hardpoint_runtime.update.UpdateError` (an untrusted repository) ->
``FAILED_PRECONDITION`` with the error's message (cause, target, TUF role) as
details and, for machines, the trailing metadata ``hardpoint-update-cause``
(the error class), ``hardpoint-update-role`` and ``hardpoint-update-target``.
The client turns every :class:`grpc.RpcError` into a :class:`ManagementError`
carrying the status code and details.

``ApplyUpdate`` runs :meth:`PlatformControl.update_apply` on a thread of its
own and streams its progress reports, then the finished record; a client that
goes away stops the stream, not the update.

String values of ``_control.py`` that the API types as enums (module state,
health, QoS class, severity) are mapped by the tables below; a value not in a
table travels as ``*_UNSPECIFIED`` and comes back as ``"unknown"``.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import stat
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]
from packaging.version import InvalidVersion, Version

from hardpoint.core.v1 import contract_pb2
from hardpoint.core.v1 import health_pb2 as core_health_pb2
from hardpoint.management.v1 import management_pb2 as pb
from hardpoint.management.v1 import management_pb2_grpc as pb_grpc
from hardpoint_runtime._control import (
    EventRecord,
    IntrusionInfo,
    ModuleStatus,
    PlatformControl,
    PlatformHealth,
    TopicInfo,
    UnmetRequirement,
    UpdateOffer,
    UpdateProgress,
    UpdateRecord,
)
from hardpoint_runtime._errors import ManagementError
from hardpoint_runtime.update._errors import UpdateError

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_MAX_WORKERS",
    "SERVICE_NAME",
    "TRANSITIONS",
    "ManagementClient",
    "ManagementError",
    "ManagementServer",
    "ManagementServicer",
    "TlsFiles",
    "serve",
]

_log = logging.getLogger("hardpoint_runtime.management")

#: Full name of the management service, as registered with the health and reflection services.
SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["ManagementService"].full_name
#: Worker threads of the server. Every ``WatchEvents --follow`` stream holds one for its whole life.
DEFAULT_MAX_WORKERS: Final = 16
#: Threads kept free for unary calls: at most ``max_workers - _RESERVED_WORKERS`` follow streams at once.
_RESERVED_WORKERS: Final = 4
#: How long a follow stream waits in ``control.events`` before it checks for cancellation and server stop.
FOLLOW_POLL_S: Final = 0.25
#: Longest ``sun_path`` of a Unix socket on Linux (108 bytes including the terminating NUL).
_MAX_UNIX_PATH: Final = 107

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of a TLS endpoint.

    For :func:`serve`: ``cert``/``key`` are the daemon's certificate chain and
    private key, ``ca`` the CA certificate(s) that client certificates must
    chain to. For :class:`ManagementClient`: ``cert``/``key`` are the client's
    certificate and key, ``ca`` the CA that signed the daemon's certificate.
    """

    cert: Path
    key: Path
    ca: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(cert, key, ca) contents. :raises ManagementError: a file is missing or unreadable."""
        out: list[bytes] = []
        for role, path in (("certificate", self.cert), ("private key", self.key), ("CA certificate", self.ca)):
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                raise ManagementError(f"cannot read TLS {role} {path}: {e.strerror or e}") from e
            marker = b"PRIVATE KEY-----" if role == "private key" else b"CERTIFICATE-----"
            if marker not in data:
                raise ManagementError(f"TLS {role} {path} is not a PEM {role} (no '-----BEGIN ...{marker.decode()}')")
            out.append(data)
        return out[0], out[1], out[2]


# --------------------------------------------------------------------------- value mapping

_STATES: Final[dict[str, pb.ModuleState.ValueType]] = {
    "unconfigured": pb.MODULE_STATE_UNCONFIGURED,
    "inactive": pb.MODULE_STATE_INACTIVE,
    "active": pb.MODULE_STATE_ACTIVE,
    "finalized": pb.MODULE_STATE_FINALIZED,
    "configuring": pb.MODULE_STATE_CONFIGURING,
    "cleaning_up": pb.MODULE_STATE_CLEANING_UP,
    "shutting_down": pb.MODULE_STATE_SHUTTING_DOWN,
    "activating": pb.MODULE_STATE_ACTIVATING,
    "deactivating": pb.MODULE_STATE_DEACTIVATING,
    "error_processing": pb.MODULE_STATE_ERROR_PROCESSING,
    "not_started": pb.MODULE_STATE_NOT_STARTED,
    "starting": pb.MODULE_STATE_STARTING,
    "restarting": pb.MODULE_STATE_RESTARTING,
    "failed": pb.MODULE_STATE_FAILED,
    "awaiting_install": pb.MODULE_STATE_AWAITING_INSTALL,
    "remote_lost": pb.MODULE_STATE_REMOTE_LOST,
}
_HEALTH: Final[dict[str, core_health_pb2.HealthStatus.ValueType]] = {
    "ok": core_health_pb2.HEALTH_STATUS_OK,
    "degraded": core_health_pb2.HEALTH_STATUS_DEGRADED,
    "failed": core_health_pb2.HEALTH_STATUS_FAILED,
}
_QOS: Final[dict[str, contract_pb2.QosClass.ValueType]] = {
    "state": contract_pb2.QOS_CLASS_STATE,
    "event": contract_pb2.QOS_CLASS_EVENT,
    "stream": contract_pb2.QOS_CLASS_STREAM,
    "command": contract_pb2.QOS_CLASS_COMMAND,
}
_SEVERITY: Final[dict[str, pb.Severity.ValueType]] = {
    "info": pb.SEVERITY_INFO,
    "warning": pb.SEVERITY_WARNING,
    "error": pb.SEVERITY_ERROR,
}
_TRANSITIONS: Final[dict[str, pb.Transition.ValueType]] = {
    "configure": pb.TRANSITION_CONFIGURE,
    "activate": pb.TRANSITION_ACTIVATE,
    "deactivate": pb.TRANSITION_DEACTIVATE,
    "cleanup": pb.TRANSITION_CLEANUP,
    "shutdown": pb.TRANSITION_SHUTDOWN,
    "restart": pb.TRANSITION_RESTART,
}
_OFFER_STATUS: Final[dict[str, pb.UpdateOfferStatus.ValueType]] = {
    "available": pb.UPDATE_OFFER_STATUS_AVAILABLE,
    "current": pb.UPDATE_OFFER_STATUS_CURRENT,
    "refused": pb.UPDATE_OFFER_STATUS_REFUSED,
}
_STEPS: Final[dict[str, pb.UpdateStep.ValueType]] = {
    "requested": pb.UPDATE_STEP_REQUESTED,
    "downloaded": pb.UPDATE_STEP_DOWNLOADED,
    "installed": pb.UPDATE_STEP_INSTALLED,
    "staged": pb.UPDATE_STEP_STAGED,
    "gate_passed": pb.UPDATE_STEP_GATE_PASSED,
    "switched": pb.UPDATE_STEP_SWITCHED,
    "probation_passed": pb.UPDATE_STEP_PROBATION_PASSED,
    "committed": pb.UPDATE_STEP_COMMITTED,
    "rolled_back": pb.UPDATE_STEP_ROLLED_BACK,
    "refused": pb.UPDATE_STEP_REFUSED,
}
_OUTCOMES: Final[dict[str, pb.UpdateOutcome.ValueType]] = {
    "in_progress": pb.UPDATE_OUTCOME_IN_PROGRESS,
    "committed": pb.UPDATE_OUTCOME_COMMITTED,
    "rolled_back": pb.UPDATE_OUTCOME_ROLLED_BACK,
    "refused": pb.UPDATE_OUTCOME_REFUSED,
    "interrupted": pb.UPDATE_OUTCOME_INTERRUPTED,
}
#: Records a ``ListUpdateHistory`` without a limit returns, and the most any call returns.
DEFAULT_HISTORY_LIMIT: Final = 100
MAX_HISTORY_LIMIT: Final = 10_000
#: Trailing metadata keys of an ``UpdateError`` status.
UPDATE_CAUSE_KEY: Final = "hardpoint-update-cause"
UPDATE_ROLE_KEY: Final = "hardpoint-update-role"
UPDATE_TARGET_KEY: Final = "hardpoint-update-target"
#: The transitions :meth:`ManagementClient.change_state` accepts, in lifecycle order.
TRANSITIONS: Final = tuple(_TRANSITIONS)
UNKNOWN: Final = "unknown"

_warned: set[tuple[str, str]] = set()


def _to_enum(table: Mapping[str, _T], what: str, value: str, unspecified: _T) -> _T:
    """``table[value]`` (case-insensitive); unknown values map to ``unspecified`` with one warning each."""
    key = value.strip().lower()
    found = table.get(key)
    if found is not None:
        return found
    if key not in ("", UNKNOWN) and (what, key) not in _warned:
        _warned.add((what, key))
        _log.warning("%s %r has no value in hardpoint.management.v1; sent as unspecified", what, value)
    return unspecified


def _from_enum(table: Mapping[str, _T], value: _T) -> str:
    for name, v in table.items():
        if v == value:
            return name
    return UNKNOWN


def module_to_pb(m: ModuleStatus) -> pb.ModuleStatus:
    """The protobuf form of a :class:`ModuleStatus`."""
    return pb.ModuleStatus(
        name=m.name,
        version=m.version,
        supplier=m.supplier,
        node=m.node,
        state=_to_enum(_STATES, "module state", m.state, pb.MODULE_STATE_UNSPECIFIED),
        target_state=_to_enum(_STATES, "module state", m.target_state, pb.MODULE_STATE_UNSPECIFIED),
        health=_to_enum(_HEALTH, "health status", m.health, core_health_pb2.HEALTH_STATUS_UNSPECIFIED),
        reason=m.reason,
        pid=m.pid,
        restarts=m.restarts,
        provides=list(m.provides),
        requires=list(m.requires),
        unmet=[pb.UnmetRequirement(interface=u.interface, major=u.major, reason=u.reason) for u in m.unmet],
        counters=dict(m.counters),
        heartbeat_age_s=m.heartbeat_age_s,
        local=m.local,
        intrusions=[intrusion_to_pb(i) for i in m.intrusions],
        participants=list(m.participants),
        origin=m.origin,
        digest=m.digest,
    )


def module_from_pb(m: pb.ModuleStatus) -> ModuleStatus:
    """The :class:`ModuleStatus` of a protobuf ``ModuleStatus``."""
    return ModuleStatus(
        name=m.name,
        version=m.version,
        supplier=m.supplier,
        node=m.node,
        state=_from_enum(_STATES, m.state),
        target_state=_from_enum(_STATES, m.target_state),
        health=_from_enum(_HEALTH, m.health),
        reason=m.reason,
        pid=m.pid,
        restarts=m.restarts,
        provides=tuple(m.provides),
        requires=tuple(m.requires),
        unmet=tuple(UnmetRequirement(interface=u.interface, major=u.major, reason=u.reason) for u in m.unmet),
        counters=dict(sorted(m.counters.items())),
        heartbeat_age_s=m.heartbeat_age_s,
        local=m.local,
        intrusions=tuple(intrusion_from_pb(i) for i in m.intrusions),
        participants=tuple(m.participants),
        origin=m.origin,
        digest=m.digest,
    )


def intrusion_to_pb(i: IntrusionInfo) -> pb.Intrusion:
    """The protobuf form of an :class:`IntrusionInfo`."""
    return pb.Intrusion(
        interface=i.interface, kind=i.kind, writer=i.writer, participant=i.participant,
        claimed_source=i.claimed_source, holder=i.holder, count=i.count,
    )  # fmt: skip


def intrusion_from_pb(i: pb.Intrusion) -> IntrusionInfo:
    """The :class:`IntrusionInfo` of a protobuf ``Intrusion``."""
    return IntrusionInfo(
        interface=i.interface, kind=i.kind, writer=i.writer, participant=i.participant,
        claimed_source=i.claimed_source, holder=i.holder, count=i.count,
    )  # fmt: skip


def health_to_pb(h: PlatformHealth) -> pb.PlatformHealth:
    """The protobuf form of a :class:`PlatformHealth`."""
    return pb.PlatformHealth(
        status=_to_enum(_HEALTH, "health status", h.status, core_health_pb2.HEALTH_STATUS_UNSPECIFIED),
        reasons=list(h.reasons),
        platform=h.platform,
        node=h.node,
        modules_total=h.modules_total,
        modules_active=h.modules_active,
    )


def health_from_pb(h: pb.PlatformHealth) -> PlatformHealth:
    """The :class:`PlatformHealth` of a protobuf ``PlatformHealth``."""
    return PlatformHealth(
        status=_from_enum(_HEALTH, h.status),
        reasons=tuple(h.reasons),
        platform=h.platform,
        node=h.node,
        modules_total=h.modules_total,
        modules_active=h.modules_active,
    )


def event_to_pb(e: EventRecord) -> pb.Event:
    """The protobuf form of an :class:`EventRecord`."""
    return pb.Event(
        id=e.id,
        time_ns=e.time_ns,
        kind=e.kind,
        severity=_to_enum(_SEVERITY, "event severity", e.severity, pb.SEVERITY_UNSPECIFIED),
        module=e.module,
        detail=dict(e.detail),
    )


def event_from_pb(e: pb.Event) -> EventRecord:
    """The :class:`EventRecord` of a protobuf ``Event``."""
    return EventRecord(
        id=e.id,
        time_ns=e.time_ns,
        kind=e.kind,
        severity=_from_enum(_SEVERITY, e.severity),
        module=e.module,
        detail=dict(sorted(e.detail.items())),
    )


def topic_to_pb(t: TopicInfo) -> pb.TopicInfo:
    """The protobuf form of a :class:`TopicInfo`."""
    return pb.TopicInfo(
        topic=t.topic,
        interface=t.interface,
        qos=_to_enum(_QOS, "QoS class", t.qos, contract_pb2.QOS_CLASS_UNSPECIFIED),
        publishers=list(t.publishers),
        rate_hz=t.rate_hz,
        nominal_rate_hz=t.nominal_rate_hz,
        refused=dict(t.refused),
        intrusions=[intrusion_to_pb(i) for i in t.intrusions],
    )


def topic_from_pb(t: pb.TopicInfo) -> TopicInfo:
    """The :class:`TopicInfo` of a protobuf ``TopicInfo``."""
    return TopicInfo(
        topic=t.topic,
        interface=t.interface,
        qos=_from_enum(_QOS, t.qos),
        publishers=tuple(t.publishers),
        rate_hz=t.rate_hz,
        nominal_rate_hz=t.nominal_rate_hz,
        refused=dict(sorted(t.refused.items())),
        intrusions=tuple(intrusion_from_pb(i) for i in t.intrusions),
    )


def offer_to_pb(o: UpdateOffer) -> pb.UpdateOffer:
    """The protobuf form of an :class:`UpdateOffer`."""
    return pb.UpdateOffer(
        module=o.module,
        installed_version=o.installed_version,
        available_version=o.available_version,
        supplier=o.supplier,
        target=o.target,
        length=max(o.length, 0),
        status=_to_enum(_OFFER_STATUS, "update offer status", o.status, pb.UPDATE_OFFER_STATUS_UNSPECIFIED),
        reason=o.reason,
    )


def offer_from_pb(o: pb.UpdateOffer) -> UpdateOffer:
    """The :class:`UpdateOffer` of a protobuf ``UpdateOffer``."""
    return UpdateOffer(
        module=o.module,
        installed_version=o.installed_version,
        available_version=o.available_version,
        supplier=o.supplier,
        target=o.target,
        length=o.length,
        status=_from_enum(_OFFER_STATUS, o.status),
        reason=o.reason,
    )


def progress_to_pb(p: UpdateProgress) -> pb.UpdateProgress:
    """The protobuf form of an :class:`UpdateProgress`."""
    return pb.UpdateProgress(
        module=p.module,
        step=_to_enum(_STEPS, "update step", p.step, pb.UPDATE_STEP_UNSPECIFIED),
        done=max(p.done, 0),
        total=max(p.total, 0),
        message=p.message,
    )


def progress_from_pb(p: pb.UpdateProgress) -> UpdateProgress:
    """The :class:`UpdateProgress` of a protobuf ``UpdateProgress``."""
    return UpdateProgress(
        module=p.module, step=_from_enum(_STEPS, p.step), done=p.done, total=p.total, message=p.message
    )


def record_to_pb(r: UpdateRecord) -> pb.UpdateRecord:
    """The protobuf form of an :class:`UpdateRecord`."""
    return pb.UpdateRecord(
        id=r.id,
        module=r.module,
        from_version=r.from_version,
        to_version=r.to_version,
        step=_to_enum(_STEPS, "update step", r.step, pb.UPDATE_STEP_UNSPECIFIED),
        outcome=_to_enum(_OUTCOMES, "update outcome", r.outcome, pb.UPDATE_OUTCOME_UNSPECIFIED),
        cause=r.cause,
        role=r.role,
        reason=r.reason,
        started_ns=r.started_ns,
        finished_ns=r.finished_ns,
        switch_gap_ms=r.switch_gap_ms,
    )


def record_from_pb(r: pb.UpdateRecord) -> UpdateRecord:
    """The :class:`UpdateRecord` of a protobuf ``UpdateRecord``."""
    return UpdateRecord(
        id=r.id,
        module=r.module,
        from_version=r.from_version,
        to_version=r.to_version,
        step=_from_enum(_STEPS, r.step),
        outcome=_from_enum(_OUTCOMES, r.outcome),
        cause=r.cause,
        role=r.role,
        reason=r.reason,
        started_ns=r.started_ns,
        finished_ns=r.finished_ns,
        switch_gap_ms=r.switch_gap_ms,
    )


# --------------------------------------------------------------------------- servicer


def _key_message(e: KeyError, name: str) -> str:
    arg = e.args[0] if e.args else None
    if isinstance(arg, str) and arg and arg != name:
        return arg
    return f"no module named {name!r} on this platform"


def _metadata_value(value: str) -> str:
    """``value`` as a gRPC metadata value: printable ASCII only (others become ``?``)."""
    return "".join(c if " " <= c <= "~" else "?" for c in value)


def _abort_for(context: grpc.ServicerContext, e: BaseException, name: str) -> NoReturn:
    """End the call with the status code of a control error (see the module docstring)."""
    if isinstance(e, KeyError):
        context.abort(grpc.StatusCode.NOT_FOUND, _key_message(e, name))
    if isinstance(e, UpdateError):
        context.set_trailing_metadata(
            (
                (UPDATE_CAUSE_KEY, type(e).__name__),
                (UPDATE_ROLE_KEY, _metadata_value(e.role or "")),
                (UPDATE_TARGET_KEY, _metadata_value(e.target or "")),
            )
        )
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e) or type(e).__name__)


class ManagementServicer(pb_grpc.ManagementServiceServicer):
    """``hardpoint.management.v1.ManagementService`` over a :class:`PlatformControl`.

    Thread-safe as far as the control is: gRPC calls the methods from its
    worker threads concurrently.
    """

    def __init__(
        self, control: PlatformControl, *, max_followers: int = DEFAULT_MAX_WORKERS - _RESERVED_WORKERS
    ) -> None:
        self._control = control
        self._max_followers = max(1, max_followers)
        self._followers = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def close(self) -> None:
        """End every follow stream (within :data:`FOLLOW_POLL_S`) and refuse new ones; the server is stopping."""
        self._closed.set()

    def _call(self, context: grpc.ServicerContext, fn: Callable[[], _T], *, name: str = "") -> _T:
        """``fn()`` with the control's errors mapped onto gRPC status codes."""
        try:
            return fn()
        except (KeyError, ValueError, UpdateError) as e:
            _abort_for(context, e, name)

    def CheckUpdates(self, request: pb.CheckUpdatesRequest, context: grpc.ServicerContext) -> pb.CheckUpdatesResponse:
        offers = self._call(context, self._control.update_check)
        return pb.CheckUpdatesResponse(offers=[offer_to_pb(o) for o in sorted(offers, key=lambda o: o.module)])

    def ApplyUpdate(
        self, request: pb.ApplyUpdateRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ApplyUpdateResponse]:
        if not request.module:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a module name is required")
        if request.version:
            try:
                Version(request.version)
            except InvalidVersion:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{request.version!r} is not a PEP 440 version (module {request.module!r})",
                )
        outbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        module, version = request.module, request.version or None

        def apply() -> None:
            # Its own thread: the update must finish even when the client goes away mid-stream.
            try:
                record = self._control.update_apply(module, version, progress=lambda p: outbox.put(("progress", p)))
            except BaseException as e:  # any failure is handed to the stream, which maps it to a status
                outbox.put(("error", e))
            else:
                outbox.put(("record", record))

        threading.Thread(target=apply, name=f"hardpoint-update-{module}", daemon=True).start()
        yield from self._apply_stream(context, outbox, module)

    def _apply_stream(
        self, context: grpc.ServicerContext, outbox: queue.SimpleQueue[tuple[str, Any]], module: str
    ) -> Iterator[pb.ApplyUpdateResponse]:
        while True:
            try:
                kind, value = outbox.get(timeout=FOLLOW_POLL_S)
            except queue.Empty:
                if not context.is_active():
                    return  # the client left; the update goes on in the daemon
                continue
            if kind == "progress":
                yield pb.ApplyUpdateResponse(progress=progress_to_pb(value))
            elif kind == "record":
                yield pb.ApplyUpdateResponse(record=record_to_pb(value))
                return
            elif isinstance(value, (KeyError, ValueError, UpdateError)):
                _abort_for(context, value, module)
            else:
                _log.error("update of %s failed unexpectedly", module, exc_info=value)
                context.abort(grpc.StatusCode.INTERNAL, f"update of {module!r} failed unexpectedly: {value!r}")

    def GetUpdateStatus(
        self, request: pb.GetUpdateStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetUpdateStatusResponse:
        records = self._call(context, self._control.update_status)
        return pb.GetUpdateStatusResponse(updates=[record_to_pb(r) for r in records])

    def ListUpdateHistory(
        self, request: pb.ListUpdateHistoryRequest, context: grpc.ServicerContext
    ) -> pb.ListUpdateHistoryResponse:
        limit = min(request.limit or DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT)
        module = request.module or None
        records = self._call(context, lambda: self._control.update_history(module, limit), name=request.module)
        return pb.ListUpdateHistoryResponse(records=[record_to_pb(r) for r in records[:limit]])

    def RollbackUpdate(
        self, request: pb.RollbackUpdateRequest, context: grpc.ServicerContext
    ) -> pb.RollbackUpdateResponse:
        if not request.module:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a module name is required")
        record = self._call(context, lambda: self._control.update_rollback(request.module), name=request.module)
        return pb.RollbackUpdateResponse(record=record_to_pb(record))

    def ListModules(self, request: pb.ListModulesRequest, context: grpc.ServicerContext) -> pb.ListModulesResponse:
        modules = self._call(context, self._control.list_modules)
        return pb.ListModulesResponse(modules=[module_to_pb(m) for m in sorted(modules, key=lambda m: m.name)])

    def GetModule(self, request: pb.GetModuleRequest, context: grpc.ServicerContext) -> pb.GetModuleResponse:
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a module name is required")
        module = self._call(context, lambda: self._control.get_module(request.name), name=request.name)
        return pb.GetModuleResponse(module=module_to_pb(module))

    def ChangeState(self, request: pb.ChangeStateRequest, context: grpc.ServicerContext) -> pb.ChangeStateResponse:
        if not request.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a module name is required")
        transition = _from_enum(_TRANSITIONS, request.transition)
        if transition == UNKNOWN:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a transition is required (one of {', '.join(TRANSITIONS)}), got {request.transition}",
            )
        module = self._call(context, lambda: self._control.change_state(request.name, transition), name=request.name)
        return pb.ChangeStateResponse(module=module_to_pb(module))

    def GetPlatformHealth(
        self, request: pb.GetPlatformHealthRequest, context: grpc.ServicerContext
    ) -> pb.GetPlatformHealthResponse:
        return pb.GetPlatformHealthResponse(health=health_to_pb(self._call(context, self._control.health)))

    def ListTopics(self, request: pb.ListTopicsRequest, context: grpc.ServicerContext) -> pb.ListTopicsResponse:
        topics = self._call(context, self._control.topics)
        return pb.ListTopicsResponse(topics=[topic_to_pb(t) for t in sorted(topics, key=lambda t: t.topic)])

    def Reload(self, request: pb.ReloadRequest, context: grpc.ServicerContext) -> pb.ReloadResponse:
        return pb.ReloadResponse(changes=list(self._call(context, self._control.reload)))

    def WatchEvents(
        self, request: pb.WatchEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchEventsResponse]:
        if not request.follow:
            yield from self._drain(context, request.since_id, follow=False)
            return
        with self._lock:
            if self._closed.is_set():
                context.abort(grpc.StatusCode.UNAVAILABLE, "hardpointd is stopping")
            if self._followers >= self._max_followers:
                context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"too many event streams are following already ({self._followers}); try again later",
                )
            self._followers += 1
        ended = threading.Event()
        context.add_callback(ended.set)
        try:
            last = request.since_id
            while not ended.is_set() and not self._closed.is_set() and context.is_active():
                for response in self._drain(context, last, follow=True):
                    if ended.is_set() or not context.is_active():
                        return
                    last = response.event.id
                    yield response
        finally:
            with self._lock:
                self._followers -= 1

    def _drain(self, context: grpc.ServicerContext, since_id: int, *, follow: bool) -> Iterator[pb.WatchEventsResponse]:
        """Events after ``since_id``; with ``follow``, one poll of at most :data:`FOLLOW_POLL_S` without news."""
        if follow:
            source = self._call(context, lambda: self._control.events(since_id, follow=True, timeout_s=FOLLOW_POLL_S))
        else:
            source = self._call(context, lambda: self._control.events(since_id))
        iterator = iter(source)
        try:
            while True:
                record = self._call(context, lambda: next(iterator, None))
                if record is None:
                    return
                if record.id <= since_id:  # a control must not repeat events; never send one twice
                    continue
                since_id = record.id
                yield pb.WatchEventsResponse(event=event_to_pb(record))
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                close()  # let the control release what the iteration holds, now rather than at garbage collection


# --------------------------------------------------------------------------- server


class ManagementServer(grpc.Server):
    """The running management server returned by :func:`serve` (a :class:`grpc.Server`).

    Stop it with ``server.stop(grace).wait()``: that marks the health service
    NOT_SERVING, ends follow streams cleanly (they see the end of the stream
    within :data:`FOLLOW_POLL_S` when ``grace`` is longer than that), stops the
    gRPC server, removes the socket file and, once every call has ended,
    shuts down the worker threads.
    """

    def __init__(
        self,
        server: grpc.Server,
        executor: futures.ThreadPoolExecutor,
        servicer: ManagementServicer,
        health_servicer: health.HealthServicer,
        *,
        socket_path: Path,
        tcp_port: int | None,
    ) -> None:
        self._server = server
        self._executor = executor
        self._servicer = servicer
        self._health = health_servicer
        #: Path of the Unix socket.
        self.socket_path = socket_path
        #: TCP port actually bound (useful with port 0), or ``None`` without TCP.
        self.tcp_port = tcp_port
        #: The Unix socket address, for :class:`ManagementClient`.
        self.unix_target = f"unix:{socket_path}"

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        if not address.startswith("unix:"):
            raise ManagementError(f"refusing to serve the management API on {address} without TLS")
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return self._server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        self._health.enter_graceful_shutdown()
        self._servicer.close()
        done = self._server.stop(grace)

        def reap() -> None:
            done.wait()
            self._executor.shutdown(wait=False, cancel_futures=True)

        threading.Thread(target=reap, name="hardpoint-mgmt-reap", daemon=True).start()
        return done

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)


def _prepare_socket_path(socket_path: Path) -> Path:
    """Absolute socket path with its directory present; a stale socket removed, a live one refused."""
    path = Path(socket_path).absolute()
    if len(os.fsencode(str(path))) > _MAX_UNIX_PATH:
        raise ManagementError(
            f"management socket path {path} is {len(os.fsencode(str(path)))} bytes long; "
            f"Unix sockets allow at most {_MAX_UNIX_PATH}: choose a shorter state directory"
        )
    if not path.parent.is_dir():
        try:
            path.parent.mkdir(mode=0o700, parents=True)
        except OSError as e:
            raise ManagementError(f"cannot create the directory of management socket {path}: {e}") from e
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    if not stat.S_ISSOCK(st.st_mode):
        raise ManagementError(f"{path} exists and is not a socket; refusing to replace it with the management socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # stale: left by a daemon that did not stop in order
        return path
    finally:
        probe.close()
    raise ManagementError(f"another server is already listening on {path}: is hardpointd already running?")


def serve(
    control: PlatformControl,
    *,
    socket_path: Path,
    tcp: str | None = None,
    tls: TlsFiles | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> ManagementServer:
    """Start the management API (plus gRPC health and reflection) and return the running server.

    :param socket_path: Unix socket to listen on; created with mode 0600.
    :param tcp: optional ``host:port`` (port 0 picks one: see ``server.tcp_port``) to listen on as well,
        which requires ``tls``: the daemon's certificate and key, and the CA that client certificates
        must chain to (clients without a valid certificate are refused during the handshake).
    :param max_workers: gRPC worker threads. Each follow stream of ``WatchEvents`` holds one; at most
        ``max_workers - 4`` follow at once, the rest are refused with RESOURCE_EXHAUSTED.
    :raises ManagementError: TCP without TLS, unreadable TLS files, a socket path that is too long or
        already served, an address that cannot be bound.
    """
    if tcp is not None and tls is None:
        raise ManagementError(
            f"refusing to serve the management API on TCP {tcp} without TLS: give the server certificate, "
            "its private key and the CA certificate that client certificates must chain to"
        )
    credentials: grpc.ServerCredentials | None = None
    if tcp is not None and tls is not None:
        cert, key, ca = tls.read()
        credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
    path = _prepare_socket_path(socket_path)

    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hardpoint-mgmt")
    server = grpc.server(executor, options=[("grpc.so_reuseport", 0)])
    servicer = ManagementServicer(control, max_followers=max_workers - _RESERVED_WORKERS)
    pb_grpc.add_ManagementServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )

    bound = False
    try:
        tcp_port: int | None = None
        if tcp is not None and credentials is not None:  # TCP first: its failure must leave no socket behind
            try:
                tcp_port = server.add_secure_port(tcp, credentials)
            except RuntimeError as e:
                raise ManagementError(
                    f"cannot listen on TCP {tcp} (address in use or invalid, or certificate and key do not match): {e}"
                ) from e
            if tcp_port == 0:
                raise ManagementError(f"cannot listen on TCP {tcp}: the address is in use or invalid")
        # The socket is bound (and connectable) here, before start(): create it 0600 from the first instant.
        old_umask = os.umask(0o177)
        try:
            server.add_insecure_port(f"unix:{path}")
        finally:
            os.umask(old_umask)
        bound = True
        os.chmod(path, 0o600)
        server.start()
    except BaseException as e:
        server.stop(None)
        executor.shutdown(wait=False)
        if bound:
            path.unlink(missing_ok=True)
        if isinstance(e, (RuntimeError, OSError)):
            raise ManagementError(f"cannot start the management server on unix:{path}: {e}") from e
        raise
    _log.info("management API on unix:%s%s", path, f" and TLS TCP port {tcp_port}" if tcp_port else "")
    return ManagementServer(server, executor, servicer, health_servicer, socket_path=path, tcp_port=tcp_port)


# --------------------------------------------------------------------------- client


#: Deadline of a Reload call, in seconds (manifest inspection plus module start-up).
RELOAD_TIMEOUT_S = 120.0
#: Deadline of CheckUpdates (a metadata refresh from a mirror) and RollbackUpdate (modules restart), in seconds.
UPDATE_CALL_TIMEOUT_S = 120.0


class ManagementClient:
    """A typed client of one hardpointd's management API.

    ``target`` is ``unix:/path/to/hardpointd.sock`` or ``host:port`` (TCP,
    which needs ``tls``: the client's certificate and key and the CA of the
    daemon's certificate). Every method raises :class:`ManagementError` with
    the gRPC status code and details when the call fails; an unreachable
    daemon gives code ``UNAVAILABLE`` and says so. Use as a context manager,
    or call :meth:`close`.
    """

    def __init__(self, target: str, *, tls: TlsFiles | None = None, timeout_s: float = 10.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        if target.startswith("unix:"):
            self._channel = grpc.insecure_channel(target)
        else:
            if tls is None:
                raise ManagementError(
                    f"TCP target {target} needs TLS: give the client certificate, its key and the CA certificate "
                    "of the daemon (hardpointd serves TCP only with TLS and client certificates)",
                    target=target,
                )
            cert, key, ca = tls.read()
            credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
            self._channel = grpc.secure_channel(target, credentials)
        self._stub = pb_grpc.ManagementServiceStub(self._channel)

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; streams still open are cancelled."""
        self._channel.close()

    def _error(self, e: grpc.RpcError, what: str) -> ManagementError:
        code = e.code()
        details = e.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE and self.target.startswith("unix:"):
            path = Path(self.target.removeprefix("unix:").removeprefix("//"))
            cause = f"no socket at {path}" if not path.exists() else details
            message = f"cannot reach hardpointd at {self.target}: is it running? ({cause})"
        elif code == grpc.StatusCode.UNAVAILABLE:
            hint = "is it running, and do our TLS certificate and its CA match?"
            message = f"cannot reach hardpointd at {self.target}: {hint} ({details})"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"{what}: hardpointd at {self.target} did not answer within {self.timeout_s:g} s"
        else:
            message = f"{what}: {details}" if details else f"{what}: {code.name}"
        return ManagementError(message, code=code, details=details, target=self.target)

    def _unary(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except grpc.RpcError as e:
            raise self._error(e, what) from e

    def list_modules(self) -> list[ModuleStatus]:
        """Every module of the platform, sorted by name."""
        response = self._unary(
            "cannot list modules", lambda: self._stub.ListModules(pb.ListModulesRequest(), timeout=self.timeout_s)
        )
        return [module_from_pb(m) for m in response.modules]

    def get_module(self, name: str) -> ModuleStatus:
        """One module. :raises ManagementError: code ``NOT_FOUND`` for an unknown name."""
        response = self._unary(
            f"cannot get module {name!r}",
            lambda: self._stub.GetModule(pb.GetModuleRequest(name=name), timeout=self.timeout_s),
        )
        return module_from_pb(response.module)

    def change_state(self, name: str, transition: str) -> ModuleStatus:
        """Drive ``name`` through ``transition`` (one of :data:`TRANSITIONS`); returns the module afterwards.

        :raises ManagementError: code ``FAILED_PRECONDITION`` (details say why) when the transition is
            not allowed now, ``NOT_FOUND`` for an unknown module.
        """
        value = _TRANSITIONS.get(transition.lower())
        if value is None:
            raise ManagementError(
                f"unknown transition {transition!r}: use one of {', '.join(TRANSITIONS)}", target=self.target
            )
        request = pb.ChangeStateRequest(name=name, transition=value)
        response = self._unary(
            f"cannot {transition} {name!r}", lambda: self._stub.ChangeState(request, timeout=self.timeout_s)
        )
        return module_from_pb(response.module)

    def health(self) -> PlatformHealth:
        """The platform health."""
        response = self._unary(
            "cannot get the platform health",
            lambda: self._stub.GetPlatformHealth(pb.GetPlatformHealthRequest(), timeout=self.timeout_s),
        )
        return health_from_pb(response.health)

    def topics(self) -> list[TopicInfo]:
        """The topics on the bus, sorted by topic name."""
        response = self._unary(
            "cannot list topics", lambda: self._stub.ListTopics(pb.ListTopicsRequest(), timeout=self.timeout_s)
        )
        return [topic_from_pb(t) for t in response.topics]

    def reload(self) -> list[str]:
        """Reload the platform configuration; returns what changed.

        :raises ManagementError: code ``FAILED_PRECONDITION`` when the configuration is invalid.
        """
        # A reload reads every manifest and starts modules: it takes seconds, not the usual call's time.
        response = self._unary(
            "cannot reload",
            lambda: self._stub.Reload(pb.ReloadRequest(), timeout=max(self.timeout_s, RELOAD_TIMEOUT_S)),
        )
        return list(response.changes)

    def events(self, since_id: int = 0, *, follow: bool = False) -> Generator[EventRecord, None, None]:
        """Events after ``since_id`` in id order; with ``follow``, wait for new ones until closed.

        Closing the returned generator (``.close()``, or leaving a ``for`` loop and dropping it)
        cancels the stream on the server. The stream ends without error when the server stops.
        """
        call = self._stub.WatchEvents(
            pb.WatchEventsRequest(since_id=since_id, follow=follow), timeout=None if follow else self.timeout_s
        )
        try:
            for response in call:
                yield event_from_pb(response.event)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return  # the channel was closed, or the server cancelled the stream while stopping
            raise self._error(e, "cannot watch events") from e
        finally:
            call.cancel()

    # -- signed updates -------------------------------------------------------------------

    def check_updates(self) -> list[UpdateOffer]:
        """What the update repository offers each configured module, sorted by module.

        :raises ManagementError: code ``FAILED_PRECONDITION`` when no repository is configured or it
            cannot be trusted (the message names the cause and the TUF role).
        """
        response = self._unary(
            "cannot check for updates",
            lambda: self._stub.CheckUpdates(
                pb.CheckUpdatesRequest(), timeout=max(self.timeout_s, UPDATE_CALL_TIMEOUT_S)
            ),
        )
        return [offer_from_pb(o) for o in response.offers]

    def apply_update(
        self,
        module: str,
        version: str | None = None,
        *,
        progress: Callable[[UpdateProgress], None] | None = None,
        timeout_s: float | None = None,
    ) -> UpdateRecord:
        """Update ``module`` (to ``version``, or the newest) and return the finished record.

        ``progress`` is called with each progress report as it arrives. A refusal or a rollback is
        a record (see its ``outcome``), not an error. ``timeout_s`` bounds the whole update (None:
        no bound; the daemon's gate and probation windows bound it).

        :raises ManagementError: ``NOT_FOUND`` for an unknown module, ``FAILED_PRECONDITION`` when no
            repository is configured or an update of it is already running, or the stream ended early.
        """
        what = f"cannot update {module!r}"
        call = self._stub.ApplyUpdate(pb.ApplyUpdateRequest(module=module, version=version or ""), timeout=timeout_s)
        try:
            for response in call:
                if response.HasField("record"):
                    return record_from_pb(response.record)
                if progress is not None and response.HasField("progress"):
                    progress(progress_from_pb(response.progress))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout_s is not None:
                raise ManagementError(
                    f"{what}: no result within {timeout_s:g} s; the update goes on in the daemon "
                    "(see 'hardpoint update status')",
                    code=e.code(),
                    details=e.details() or "",
                    target=self.target,
                ) from e
            raise self._error(e, what) from e
        finally:
            call.cancel()
        raise ManagementError(
            f"{what}: hardpointd at {self.target} ended the stream before the update finished "
            "(is it stopping?); see 'hardpoint update status' and 'hardpoint update history'",
            target=self.target,
        )

    def update_status(self) -> list[UpdateRecord]:
        """Updates in progress now."""
        response = self._unary(
            "cannot get the update status",
            lambda: self._stub.GetUpdateStatus(pb.GetUpdateStatusRequest(), timeout=self.timeout_s),
        )
        return [record_from_pb(r) for r in response.updates]

    def update_history(self, module: str | None = None, limit: int = 0) -> list[UpdateRecord]:
        """Update attempts, newest first (``limit`` 0: the server's default of 100)."""
        request = pb.ListUpdateHistoryRequest(module=module or "", limit=max(limit, 0))
        response = self._unary(
            "cannot list the update history", lambda: self._stub.ListUpdateHistory(request, timeout=self.timeout_s)
        )
        return [record_from_pb(r) for r in response.records]

    def rollback_update(self, module: str) -> UpdateRecord:
        """Return ``module`` to its previous version. :raises ManagementError: ``FAILED_PRECONDITION`` without one."""
        response = self._unary(
            f"cannot roll back {module!r}",
            lambda: self._stub.RollbackUpdate(
                pb.RollbackUpdateRequest(module=module), timeout=max(self.timeout_s, UPDATE_CALL_TIMEOUT_S)
            ),
        )
        return record_from_pb(response.record)

    def serving(self, service: str = SERVICE_NAME) -> bool:
        """Whether the standard gRPC health service says ``service`` is SERVING."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        response = self._unary(
            "cannot check health",
            lambda: stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s),
        )
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
