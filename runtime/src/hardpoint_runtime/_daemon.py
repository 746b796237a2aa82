"""hardpointd: runs the modules of one node of a platform.

Start-up: read and validate the platform configuration, find the installed
modules, read their manifests (in a separate process), resolve the whole
platform (all nodes) with the pure resolver, refuse to start anything if the
platform has configuration errors, then start this node's modules in
dependency order, each in its own worker process, and drive each to its
target state. A monitor thread watches exits and heartbeats and restarts by
the restart policy. The management API serves the :class:`PlatformControl`
view of all this.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardpoint_runtime._control import (
    EventRecord,
    ModuleStatus,
    PlatformHealth,
    TopicInfo,
    UnmetRequirement,
    UpdateOffer,
    UpdateProgress,
    UpdateRecord,
)
from hardpoint_runtime._policy import RestartPolicy
from hardpoint_runtime._process import ModuleProcess, WorkerError, describe_exit

__all__ = ["Daemon", "main"]

_log = logging.getLogger("hardpoint.daemon")

#: How often the monitor looks at exits, heartbeats and due restarts.
MONITOR_PERIOD_S = 0.05
#: Workers loaded at once at start-up (each is a Python process importing its module).
LAUNCH_PARALLELISM = 8
#: How long a worker may take to load its module and answer a transition.
WORKER_TIMEOUT_S = 30.0
#: How long a worker may take to take a new roster (it waits behind a transition in progress).
ROSTER_TIMEOUT_S = 5.0
#: Largest counter value a heartbeat may carry (2**53: beyond, the numbers are not counts of anything real).
MAX_COUNTER = 2**53
_TRANSITIONS = ("configure", "activate", "deactivate", "cleanup", "shutdown")
_ORDER = {"unconfigured": 0, "inactive": 1, "active": 2}
_HEALTH_INTERFACE = "hardpoint.core.v1.ModuleHealth"
#: Fields of a module record that come from the configuration and the manifest (set by ``_resolve``).
_CONFIG_FIELDS = ("node", "local", "entry", "dist", "version", "supplier", "provides", "requires", "isolation")


@dataclass
class _Module:
    """The daemon's record of one module of the platform."""

    name: str
    node: str
    local: bool
    version: str = ""
    supplier: str = ""
    provides: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    entry: Any = None  # the ModuleEntry from the configuration
    dist: Any = None  # ModuleDistribution
    unmet: tuple[UnmetRequirement, ...] = ()
    #: Why no version of it is selected ("" when one is): the resolver's ``reason_missing``.
    missing: str = ""
    #: Not installed yet on a platform that takes signed updates: waiting for its first install.
    awaiting: bool = False
    #: Where the selected distribution comes from (``store``, ``baseline``, ``environment``) and its digest.
    origin: str = ""
    digest: str = ""
    state: str = "not_started"
    target: str = "active"
    health: str = "unknown"
    reason: str = ""
    restarts: int = 0
    failed: bool = False
    isolation: str = "process"
    process: Any = None  # ModuleProcess, or InProcessModule for isolation "in-process"
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restart_at: float | None = None
    last_beat: float = -1.0
    beat_state: str = ""
    beat_version: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    #: Participant whose heartbeats gave ``counters`` (counters are monotonic per worker lifetime).
    counters_from: str = ""
    #: Processes of an update in progress (old and new version), also allowed to write as the module.
    extra: list[Any] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)


class Daemon:
    """One node's daemon; implements :class:`hardpoint_runtime._control.PlatformControl`."""

    def __init__(self, config_path: Path, *, node: str | None = None, domain_id: int | None = None) -> None:
        from hardpoint_runtime._config import load_config
        from hardpoint_runtime._dds_config import node_dds_config

        self.config_path = Path(config_path)
        self.config = load_config(self.config_path)
        #: DDS domain of the platform: the configuration's unless overridden (tests, demos side by side).
        self.domain_id: int = self.config.platform.domain_id if domain_id is None else domain_id
        #: Cyclone DDS configuration of this node (daemon and every module process), from ``[dds]``;
        #: fixed at start: a reload does not move the bus.
        self.dds_config: str | None = node_dds_config(self.config.dds)
        self.node = node or self.config.node
        self.state_dir = Path(self.config.platform.state_dir)
        self.modules: dict[str, _Module] = {}
        self.platform_errors: list[str] = []
        self._stop = threading.Event()
        self._events_cond = threading.Condition()
        self._monitor: threading.Thread | None = None
        self._transport: Any = None
        self._bus: Any = None
        self._server: Any = None
        self._metrics: Any = None
        self._topics: Any = None
        self.store: Any = None
        self._updater: Any = None
        from hardpoint_runtime._intrusion import IntrusionLog

        #: What was refused on the bus (RT-BUS-ID-003): forged heartbeats, implausible counters, impersonators.
        self.intrusions = IntrusionLog(lambda detail: self.event("bus_intrusion", severity="warning", detail=detail))
        self._roster_lock = threading.Lock()
        #: Provenance of installed distributions by (name, version, path): hashing their files once.
        self._provenance_cache: dict[tuple[str, str, str], Any] = {}
        #: While true, launches do not push the roster (start-up pushes it once, after every launch).
        self._batch_launch = False

    # -- start and stop ----------------------------------------------------------------

    def start(self) -> None:
        """Resolve the platform and start this node's modules.

        :raises ResolutionError: the platform has configuration errors; nothing was started.
        """
        from hardpoint_runtime._store import StateStore

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(self.state_dir / "state.db")
        self._recover_updates()
        self._resolve()
        self._open_bus()
        self.event("daemon_started", detail={"node": self.node, "platform": self.config.platform.name})
        # Management first: an operator can watch a long start-up as it happens.
        self._serve_management()
        self._start_modules([self.modules[n] for n in self._start_order])
        self._monitor = threading.Thread(target=self._monitor_loop, name="hardpointd-monitor", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        """Stop every local module in reverse dependency order, then the daemon."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        running = [m for m in self.modules.values() if m.process is not None]
        # All at once: each stop may wait for the module's shutdown hook, and they do not depend on each other.
        with ThreadPoolExecutor(max_workers=LAUNCH_PARALLELISM, thread_name_prefix="stop") as pool:
            list(pool.map(self._stop_module, running))
        if self._server is not None:
            self._server.stop(grace=1.0).wait()
        if self._metrics is not None:
            self._metrics.shutdown()
        if self._topics is not None:
            self._topics.close()
        if self._transport is not None:
            self._transport.close()
        if self.store is not None:
            self.event("daemon_stopped", detail={"node": self.node})
            self.store.close()
        with self._events_cond:
            self._events_cond.notify_all()

    def _stop_module(self, m: _Module) -> None:
        with m.lock:
            if m.process is not None:
                m.process.stop(timeout_s=self.config.supervision.stop_timeout_s)
                m.process = None
                m.state = "finalized"

    # -- resolution --------------------------------------------------------------------

    def _resolve(self) -> None:
        from hardpoint import all_interfaces
        from hardpoint_runtime._errors import ResolutionError
        from hardpoint_runtime._inspect import inspect_modules
        from hardpoint_runtime._plugins import find_modules, store_paths
        from hardpoint_runtime._resolve import Candidate, InterfaceInfo, resolve

        paths = store_paths(self.state_dir / "modules")
        installed, uncertified = self._certified(find_modules(paths))
        wanted = {entry.name for entry in self.config.enabled_modules}
        manifests = inspect_modules(paths, names=wanted)
        candidates = []
        fields: dict[str, str] = {}
        old = self.modules
        self.modules = {}
        for entry in self.config.enabled_modules:
            node = self.config.node_of(entry)
            m = old.get(entry.name) or _Module(entry.name, node, node == self.node)
            m.node, m.local, m.entry = node, node == self.node, entry
            self._apply_policy(m)
            pinned = self.store.pinned_version(entry.name) if self.store is not None else None
            dist, why = self._pick(m, entry, installed, uncertified, pinned)
            # Where an error about this entry points: its version when other versions are installed.
            fields[entry.name] = "version" if dist is None and entry.version and installed.get(entry.name) else "name"
            manifest = None
            if dist is not None:
                found = manifests.get(f"{entry.name}=={dist.version}", {})
                if "manifest" in found:
                    manifest = self._manifest(found["manifest"])
                    m.version, m.supplier, m.isolation = manifest.version, manifest.supplier, manifest.isolation
                    m.provides, m.requires = manifest.provides, manifest.requires
                else:
                    why = f"module {entry.name!r} {dist.version} does not load: {found.get('error', 'unknown error')}"
            m.dist, m.missing = dist, why
            self.modules[entry.name] = m
            # With [update], a module not installed yet waits for its first install instead of
            # stopping the platform (and an interrupted first install leaves it waiting: pin "").
            awaiting = dist is None and (self.config.update is not None or pinned == "")
            m.awaiting = awaiting
            candidates.append(
                Candidate(name=entry.name, node=node, manifest=manifest, reason_missing=why, awaiting_install=awaiting)
            )
        interfaces = {n: InterfaceInfo(name=n, single_writer=s.single_writer) for n, s in all_interfaces().items()}
        resolution = resolve(candidates, interfaces)
        self.platform_errors = list(resolution.errors)
        if resolution.errors:
            located = [self._locate(error, fields) for error in resolution.errors]
            raise ResolutionError(
                "platform configuration refused, nothing started:\n  " + "\n  ".join(located),
                errors=located,
            )
        self._start_order = list(resolution.start_order)
        for name, m in self.modules.items():
            unmet = resolution.blocked.get(name, [])
            m.unmet = tuple(UnmetRequirement(u.interface, u.major, u.reason) for u in unmet)
            if m.unmet:
                m.state, m.reason = "not_started", "; ".join(str(u) for u in unmet)
                self.event("module_blocked", module=name, severity="warning", detail={"reason": m.reason})
            stored = self.store.get(name) if self.store is not None else None
            if stored is not None:
                m.target = stored.target_state
                m.failed = bool(stored.failed)

    def _pick(
        self, m: _Module, entry: Any, installed: dict[str, list[Any]], uncertified: dict[str, list[str]], pinned: Any
    ) -> tuple[Any, str]:
        """The distribution of ``m`` to run and, when none, why; its provenance is recorded on ``m``."""
        from hardpoint_runtime._plugins import pick_version

        dist, why = pick_version(entry.name, entry.version, installed, pinned=pinned)
        if dist is None and uncertified.get(entry.name):
            why = "; ".join(uncertified[entry.name])  # what is importable, and why it may not run
        self._note_provenance(m, dist)
        return dist, why

    def _certified(self, installed: dict[str, list[Any]]) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        """The installed distributions this platform may run, and for each module why others may not (RT-PROV-002).

        Without ``update.require_evidence`` everything importable may run. With it, only what was
        installed through the evidence gate (the module store) or is pinned by ``[[baseline]]``.
        """
        from hardpoint_runtime._provenance import admissible

        update = self.config.update
        if update is None or not update.require_evidence:
            # Everything may run: only the selected distributions' provenance is computed (_note_provenance),
            # not a hash of every installed module's files at each start.
            return installed, {}
        kept: dict[str, list[Any]] = {}
        refused: dict[str, list[str]] = {}
        for name, dists in installed.items():
            for dist in dists:
                why = admissible(name, dist.version, self._provenance_of(dist), require_evidence=True)
                if why:
                    refused.setdefault(name, []).append(why)
                    self.event("module_refused", module=name, severity="warning", detail={"reason": why})
                else:
                    kept.setdefault(name, []).append(dist)
        return kept, refused

    def _provenance_of(self, dist: Any) -> Any:
        """Origin and digest of an installed distribution, computed once per (name, version, path)."""
        from hardpoint_runtime._provenance import baseline_map, provenance

        key = (dist.name, dist.version, dist.path)
        cache = self._provenance_cache
        if key not in cache:
            cache[key] = provenance(
                dist.name, dist.version, dist.path,
                store=self.state_dir / "modules", baseline=baseline_map(self.config.baseline),
            )  # fmt: skip
        return cache[key]

    def _note_provenance(self, m: _Module, dist: Any) -> None:
        """Record where ``m``'s selected distribution comes from (the platform's software state)."""
        if dist is None:
            m.origin, m.digest = "", ""
            return
        prov = self._provenance_of(dist)
        m.origin, m.digest = prov.origin, prov.digest

    def note_provenance(self, m: _Module) -> None:
        """The updater installed and switched to a new distribution of ``m``."""
        self._note_provenance(m, m.dist)

    def _locate(self, error: str, fields: dict[str, str]) -> str:
        """A resolution error prefixed with the entry it is about: ``platform.toml:31: modules[5].name: ...``.

        Resolution errors name modules as ``'name'``; the entry meant is the last one of the file
        that the error names (of two single-writer providers, the one listed second).

        :param error: one of :attr:`Resolution.errors`.
        :param fields: for each module, the field of its entry to point at (``name`` or ``version``).
        """
        from hardpoint_runtime._config import TomlLocator, format_loc

        named = [i for i, e in enumerate(self.config.modules) if repr(e.name) in error]
        if not named:
            return f"{self.config_path}: {error}"
        i = named[-1]
        loc = ("modules", i, fields.get(self.config.modules[i].name, "name"))
        try:
            line = TomlLocator(self.config_path.read_text(encoding="utf-8")).line(loc)
        except (OSError, UnicodeDecodeError):
            line = None
        where = str(self.config_path) if line is None else f"{self.config_path}:{line}"
        return f"{where}: {format_loc(loc)}: {error}"

    @staticmethod
    def _manifest(data: dict[str, Any]) -> Any:
        from hardpoint import Manifest

        return Manifest.load(data)

    def _apply_policy(self, m: _Module) -> None:
        s = self.config.supervision
        p = m.policy
        p.intensity, p.period_s = s.restart_intensity, s.restart_period_s
        p.backoff_initial_s, p.backoff_max_s = s.backoff_initial_s, s.backoff_max_s

    # -- the bus: heartbeats and topics ------------------------------------------------

    def _open_bus(self) -> None:
        import hardpoint
        from hardpoint.core.v1 import health_pb2
        from hardpoint_runtime._topics import TopicMonitor

        self._transport = hardpoint.CycloneTransport(domain_id=self.domain_id, config=self.dds_config)
        self._bus = hardpoint.Bus(self._transport, module=f"hardpointd.{self.node}")
        self._bus.on_intrusion(self._on_intrusion)
        self._health_sub = self._bus.subscribe(health_pb2.ModuleHealth, self._on_health, with_info=True)
        self._topics = TopicMonitor(self._transport, self.intrusions, self._bus)

    def _on_health(self, beat: Any, info: Any) -> None:
        from hardpoint.core.v1 import health_pb2

        m = self.modules.get(beat.module)
        if m is None:
            return
        if m.local and not self._from_worker(m, info):
            return
        if not _same_version(beat.version, m.version):
            # During an update's probation the old version is kept (inactive) and still beats: not this one.
            return
        counters = dict(beat.counters)
        if not self._plausible(m, info.participant, counters):
            # The beat is the worker's own (checked above), so it still proves the worker alive;
            # only the numbers are refused, and the last plausible ones stay.
            counters, participant = m.counters, m.counters_from
        else:
            participant = info.participant
        state = _enum_name(health_pb2.LifecycleState, beat.lifecycle_state, "LIFECYCLE_STATE_")
        status = _enum_name(health_pb2.HealthStatus, beat.status, "HEALTH_STATUS_")
        # No lock: this runs on the bus dispatch thread, which must never wait for a slow spawn.
        m.last_beat = time.monotonic()
        m.beat_state = state
        m.health = status
        m.counters, m.counters_from = counters, participant
        m.beat_version = beat.version
        if not m.local:
            m.state, m.version = state, beat.version or m.version
        if status != "ok" and beat.reason:
            m.reason = beat.reason

    def _on_intrusion(self, interface: str, intruder: Any, count: int) -> None:
        """A writer the daemon's bus refused for claiming another's source (on a heartbeat: a forged one)."""
        kind = "forged_heartbeat" if interface == _HEALTH_INTERFACE else "impersonation"
        self.intrusions.note(
            interface, kind, intruder.writer, intruder.participant, intruder.claimed, intruder.holder, count
        )

    def _from_worker(self, m: _Module, info: Any) -> bool:
        """True when a heartbeat of local module ``m`` was written by the worker the daemon started (RT-BUS-ID-001)."""
        proc = m.process
        expected = str(getattr(proc, "participant", "")) if proc is not None else ""
        if expected and info.participant == expected:
            return True
        holder = f"participant:{expected}" if expected else "no running worker"
        self.intrusions.note(_HEALTH_INTERFACE, "forged_heartbeat", info.writer, info.participant, m.name, holder)
        return False

    def _plausible(self, m: _Module, participant: str, counters: dict[str, int]) -> bool:
        """Counters a heartbeat may carry: bounded, and never lower than the same worker said before (RT-BUS-ID-002).

        A counter that is no longer reported (a subscription closed) is not compared.
        """
        bad = [k for k, v in counters.items() if not 0 <= v < MAX_COUNTER]
        if not bad and participant == m.counters_from:
            bad = [k for k, v in counters.items() if v < m.counters.get(k, 0)]
        if not bad:
            return True
        self.intrusions.note(
            _HEALTH_INTERFACE, "implausible", "", participant, m.name, f"counters {', '.join(sorted(bad)[:5])}"
        )
        return False

    # -- the roster: who may write as which module --------------------------------------

    @staticmethod
    def _participants(m: _Module) -> tuple[str, ...]:
        """GUIDs of the DDS participants of ``m``'s live processes (during an update, both versions')."""
        live = [p for p in (m.process, *m.extra) if p is not None and p.exit_code() is None]
        return tuple(sorted({str(getattr(p, "participant", "")) for p in live} - {""}))

    def roster(self) -> Any:
        """Who may write as which module of the platform (RT-BUS-ID-004), a :class:`hardpoint.Roster`."""
        from hardpoint_runtime._roster import RosterEntry, platform_roster

        entries = [RosterEntry(m.name, m.local, self._participants(m), m.provides) for m in list(self.modules.values())]
        own = (f"hardpointd.{self.node}", self._transport.participant) if self._transport is not None else None
        return platform_roster(entries, daemon=own)

    def push_roster(self) -> None:
        """Give the roster to the daemon's bus and to every module it runs, so that each refuses impersonators."""
        if self._bus is None or self._batch_launch:
            return
        with self._roster_lock:
            roster = self.roster()
            self._bus.set_roster(roster)
            data = roster.as_json()
            for m in list(self.modules.values()):
                for proc in {id(p): p for p in (m.process, *m.extra) if p is not None}.values():
                    if proc.exit_code() is not None:
                        continue
                    try:
                        proc.request("roster", timeout_s=ROSTER_TIMEOUT_S, roster=data)
                    except WorkerError as e:  # a dead or busy worker: it gets the next roster
                        _log.warning("module %s did not take the roster: %s", m.name, e)

    # -- supervision ---------------------------------------------------------------------

    def _spec(self, m: _Module) -> dict[str, Any]:
        return self.worker_spec(m, m.dist)

    def worker_spec(self, m: _Module, dist: Any) -> dict[str, Any]:
        """The worker spec of ``m`` running distribution ``dist`` (the updater starts a new version with it)."""
        adapters = {name: {"driver": b.driver, "config": dict(b.config)} for name, b in self.config.adapters.items()}
        return {
            "module": m.name,
            "entry_point": dist.entry_point,
            "paths": [dist.path] if dist.path else [],
            "domain_id": self.domain_id,
            "dds_config": self.dds_config,
            "node": self.node,
            "config": dict(m.entry.config),
            "adapters": adapters,
            "health_period_s": 1.0,
        }

    def _start_modules(self, modules: list[_Module]) -> None:
        """Load the workers of ``modules`` in parallel, then drive them up in the given (dependency) order.

        Process start and imports dominate start-up, so they overlap; transitions stay in
        order, so a provider is active before its consumers are configured.
        """
        local = [m for m in modules if m.local and not m.unmet]
        self._batch_launch = True
        try:
            with ThreadPoolExecutor(max_workers=LAUNCH_PARALLELISM, thread_name_prefix="launch") as pool:
                list(pool.map(self._launch, local))
        finally:
            self._batch_launch = False
        self.push_roster()  # once, before any module is configured (and so publishes)
        for m in local:
            with m.lock:
                if m.process is not None and m.state == "unconfigured":
                    self._drive(m, m.target)

    def spawn(self, m: _Module) -> None:
        """Start ``m`` again from its record (the updater, returning to an old version whose process is gone)."""
        self._spawn(m)

    def _spawn(self, m: _Module) -> None:
        """Start m's worker and drive it to its target state; on failure, treat it as a death."""
        with m.lock:
            if m.process is not None:
                return  # started meanwhile (an update restored the old version while this restart waited)
            if self._launch(m):
                self._drive(m, m.target)

    def _launch(self, m: _Module) -> bool:
        """Start m's worker (module loaded, state unconfigured); False when it could not start."""
        with m.lock:
            if m.failed:
                m.state = "failed"
                return False
            m.state = "starting"
            proc: Any
            if self._isolation(m) == "in-process":
                from hardpoint_runtime._inprocess import InProcessModule

                proc = InProcessModule(m.name, self._spec(m), self._transport)
            else:
                proc = ModuleProcess(m.name, self._spec(m), self.state_dir / "logs" / f"{m.name}.log")
            try:
                proc.start(timeout_s=WORKER_TIMEOUT_S)
            except WorkerError as e:
                self._died(m, str(e))
                return False
            m.process = proc
            m.last_beat = time.monotonic()
            m.state = "unconfigured"
            self.event("module_started", module=m.name, detail={"pid": str(proc.pid), "version": m.version})
            self.push_roster()  # before it is configured: the others must accept it when it publishes
            return True

    def _isolation(self, m: _Module) -> str:
        """The configuration's override, else the manifest's choice."""
        return str(m.entry.isolation or m.isolation)

    def _drive(self, m: _Module, target: str) -> None:
        from hardpoint import State
        from hardpoint._lifecycle import path_to

        if m.process is None:
            return
        for transition in path_to(State(m.state), State(target)) if m.state in _ORDER or target == "finalized" else []:
            try:
                reply = m.process.request("transition", timeout_s=WORKER_TIMEOUT_S, transition=transition.value)
            except WorkerError as e:  # it died or hung mid-transition: a death like any other
                self._died(m, f"{e} (during {transition.value})")
                return
            m.state = reply.get("state", m.state)
            if not reply.get("ok") or reply.get("error"):
                m.reason = reply.get("error") or f"{transition.value} refused"
                self.event(
                    "transition_failed",
                    module=m.name,
                    severity="warning",
                    detail={"transition": transition.value, "reason": m.reason},
                )
                break
            self.event("state_changed", module=m.name, detail={"state": m.state, "transition": transition.value})

    def _died(self, m: _Module, cause: str) -> None:
        if m.process is not None:
            m.process.kill()
            m.process = None
        decision = m.policy.on_exit(time.monotonic(), cause)
        if decision.restart:
            m.restarts += 1
            m.state, m.reason = "restarting", decision.reason
            m.restart_at = time.monotonic() + decision.delay_s
            if self.store is not None:
                self.store.record_restart(m.name, cause)
            self.event("module_restarting", module=m.name, severity="warning", detail={"reason": decision.reason})
        else:
            m.state, m.reason, m.failed, m.restart_at = "failed", decision.reason, True, None
            if self.store is not None:
                self.store.mark_failed(m.name, decision.reason)
            self.event("module_failed", module=m.name, severity="error", detail={"reason": decision.reason})

    def _monitor_loop(self) -> None:
        deadline = self.config.supervision.heartbeat_deadline_s
        while not self._stop.wait(MONITOR_PERIOD_S):
            now = time.monotonic()
            for m in list(self.modules.values()):
                if not m.local or m.failed:
                    continue
                try:
                    self._check(m, now, deadline)
                except Exception:  # the monitor must survive anything one module does
                    _log.exception("monitor: checking module %s failed", m.name)

    def _check(self, m: _Module, now: float, deadline: float) -> None:
        # A module being spawned holds its lock for seconds; skip it rather than stall the monitor.
        if not m.lock.acquire(blocking=False):
            return
        try:
            self._check_locked(m, now, deadline)
        finally:
            m.lock.release()

    def _check_locked(self, m: _Module, now: float, deadline: float) -> None:
        proc = m.process
        if proc is not None:
            code = proc.exit_code()
            if code is not None:
                self._died(m, f"module {m.name!r} process {describe_exit(code)}")
            elif m.last_beat > 0 and now - m.last_beat > deadline:
                age = now - m.last_beat
                self._died(m, f"module {m.name!r} sent no heartbeat for {age:.1f} s (deadline {deadline:g} s)")
        elif m.restart_at is not None and now >= m.restart_at:
            m.restart_at = None
            m.state = "starting"
            threading.Thread(target=self._spawn, args=(m,), name=f"spawn-{m.name}", daemon=True).start()

    # -- events ----------------------------------------------------------------------------

    def event(
        self, kind: str, *, module: str | None = None, severity: str = "info", detail: dict[str, str] | None = None
    ) -> None:
        """Record an event in the state store and wake event watchers."""
        if self.store is not None:
            self.store.append_event(kind, module=module, severity=severity, **(detail or {}))
        _log.log(logging.WARNING if severity != "info" else logging.INFO, "%s %s %s", kind, module or "-", detail or "")
        with self._events_cond:
            self._events_cond.notify_all()

    # -- PlatformControl --------------------------------------------------------------------

    def _status(self, m: _Module) -> ModuleStatus:
        age = time.monotonic() - m.last_beat if m.last_beat > 0 else -1.0
        state = m.state
        if not m.local and m.last_beat > 0 and age > self.config.supervision.heartbeat_deadline_s:
            state = "remote_lost"
        awaiting = state == "not_started" and m.awaiting and m.dist is None
        health = m.health if state not in ("failed", "not_started", "remote_lost") else "failed"
        if awaiting:  # a normal step of a platform that takes updates, not a failure
            state, health = "awaiting_install", "unknown"
        return ModuleStatus(
            name=m.name, version=m.version, supplier=m.supplier, node=m.node, state=state, target_state=m.target,
            health=health,
            reason=m.reason, pid=m.process.pid if m.process is not None else 0, restarts=m.restarts,
            provides=m.provides, requires=m.requires, counters=dict(m.counters),
            # The module itself missing is said by the reason, not as a requirement with no interface.
            unmet=tuple(u for u in m.unmet if u.interface),
            heartbeat_age_s=age, local=m.local, intrusions=self._intrusions_of(m),
            participants=self._participants(m) if m.local else (),
            origin=m.origin, digest=m.digest,
        )  # fmt: skip

    def _intrusions_of(self, m: _Module) -> tuple[Any, ...]:
        """What was refused about ``m`` (its heartbeats) or on the interfaces it provides or requires."""
        found = self.intrusions.snapshot({_HEALTH_INTERFACE, *m.provides, *m.requires})
        return tuple(i for i in found if i.interface != _HEALTH_INTERFACE or i.claimed_source == m.name)

    def no_such_module(self, name: str) -> str:
        """Why ``name`` is not a module of this platform (:func:`no_such_module`)."""
        return no_such_module(name, self.config.platform.name, list(self.modules), Path(self.config_path).name)

    def list_modules(self) -> list[ModuleStatus]:
        return [self._status(m) for m in sorted(self.modules.values(), key=lambda m: m.name)]

    def get_module(self, name: str) -> ModuleStatus:
        if name not in self.modules:
            raise KeyError(self.no_such_module(name))
        return self._status(self.modules[name])

    def change_state(self, name: str, transition: str) -> ModuleStatus:
        m = self.modules.get(name)
        if m is None:
            raise KeyError(self.no_such_module(name))
        if not m.local:
            raise ValueError(f"module {name!r} runs on node {m.node!r}; ask that node's daemon")
        with m.lock:
            if transition == "restart":
                m.failed = False
                m.policy.reset()
                if self.store is not None:
                    self.store.clear_failed(name)
                if m.process is not None:
                    m.process.stop(timeout_s=self.config.supervision.stop_timeout_s)
                    m.process = None
                if m.unmet:
                    raise ValueError(f"module {name!r} cannot start: {m.reason}")
                self._spawn(m)
                return self._status(m)
            if transition not in _TRANSITIONS:
                raise ValueError(f"unknown transition {transition!r}")
            if m.process is None:
                raise ValueError(f"module {name!r} is not running (state {m.state}): {m.reason}")
            reply = m.process.request("transition", timeout_s=WORKER_TIMEOUT_S, transition=transition)
            if not reply.get("ok"):
                raise ValueError(str(reply.get("error")))
            m.state = str(reply.get("state"))
            if m.state in _ORDER or m.state == "finalized":
                m.target = m.state
                if self.store is not None:
                    self.store.set_target(name, m.state)
            self.event(
                "state_changed", module=name, detail={"state": m.state, "transition": transition, "by": "operator"}
            )
            return self._status(m)

    def health(self) -> PlatformHealth:
        reasons = list(self.platform_errors)
        mods = self.list_modules()
        for s in mods:
            if s.state == "awaiting_install":  # configured ahead of its first install: not a fault
                continue
            if s.state != s.target_state or s.health not in ("ok",):
                reasons.append(f"{s.name}: {s.state}" + (f" ({s.reason})" if s.reason else ""))
        active = sum(1 for s in mods if s.state == "active")
        return PlatformHealth(
            status="ok" if not reasons else "degraded",
            reasons=tuple(reasons),
            platform=self.config.platform.name,
            node=self.node,
            modules_total=len(mods),
            modules_active=active,
        )

    def events(
        self, since_id: int = 0, *, follow: bool = False, timeout_s: float | None = None
    ) -> Iterator[EventRecord]:
        last = since_id
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            batch = self.store.events(since_id=last, limit=1000)
            for e in batch:
                last = e.id
                yield EventRecord(e.id, e.time_ns, e.kind, e.severity, e.module or "", dict(e.detail))
            if not follow or self._stop.is_set():
                return
            if not batch:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                with self._events_cond:
                    self._events_cond.wait(0.5 if remaining is None else min(0.5, remaining))

    def topics(self) -> list[TopicInfo]:
        return self._topics.snapshot() if self._topics is not None else []

    def reload(self) -> list[str]:
        """Re-read the configuration, resolve again, start what can start now, stop what was removed.

        :raises ValueError: the new configuration is invalid or the platform cannot be resolved
            with it; then nothing changed and the platform runs on with the configuration it had.
        """
        from hardpoint_runtime._config import load_config
        from hardpoint_runtime._errors import ConfigError, ResolutionError

        old_config, old_modules, old_errors = self.config, self.modules, self.platform_errors
        # _resolve rewrites these fields of the modules it keeps; a refused reload puts them back.
        saved = {n: {f: getattr(m, f) for f in _CONFIG_FIELDS} for n, m in old_modules.items()}
        try:
            self.config = load_config(self.config_path)
            self._resolve()
        except (ConfigError, ResolutionError) as e:
            self.config, self.modules, self.platform_errors = old_config, old_modules, old_errors
            for name, m in old_modules.items():
                for f, value in saved[name].items():
                    setattr(m, f, value)
                self._apply_policy(m)
            self.event("config_refused", severity="warning", detail={"reason": str(e)})
            raise ValueError(f"configuration not reloaded, the platform runs on unchanged: {e}") from e
        changes = []
        for name, m in old_modules.items():
            if name in self.modules:
                continue
            with m.lock:  # no longer supervised: stop it, or it would run on unseen
                m.restart_at = None
                if m.process is not None:
                    m.process.stop(timeout_s=self.config.supervision.stop_timeout_s)
                    m.process = None
                m.state = "finalized"
            changes.append(f"removed {name}")
        startable = [
            m
            for m in (self.modules[name] for name in self._start_order)
            if m.local and not m.unmet and m.process is None and not m.failed and m.restart_at is None
        ]
        self._start_modules(startable)  # in parallel, driven up in dependency order, as at start-up
        changes.extend(f"started {m.name}" for m in startable)
        started = {m.name for m in startable}
        changes.extend(
            f"added {name} ({self.modules[name].reason or 'not started'})"
            for name in self._start_order + sorted(set(self.modules) - set(self._start_order))
            if name not in old_modules and name not in started
        )
        self.event("config_reloaded", detail={"changes": "; ".join(changes) or "none"})
        return changes

    # -- signed updates (the work is in _updater.py) ------------------------------------------

    @property
    def stopping(self) -> threading.Event:
        """Set when the daemon is stopping (an update in its gate or probation gives up and restores)."""
        return self._stop

    @property
    def bus(self) -> Any:
        """The daemon's own bus (the update gate watches staged topics on it)."""
        return self._bus

    def _recover_updates(self) -> None:
        from hardpoint_runtime._updater import recover_on_start
        from hardpoint_runtime.update._install import sweep_partials

        sweep_partials(self.state_dir / "modules")
        recover_on_start(self.store, self.event)

    def resolution_inputs(self) -> tuple[list[Any], dict[str, Any]]:
        """The candidates (configured modules with their running manifests) and interface set, for the pre-check."""
        from hardpoint import Manifest, all_interfaces
        from hardpoint_runtime._resolve import Candidate, InterfaceInfo

        candidates = []
        for name, m in self.modules.items():
            manifest = None
            if m.dist is not None and m.version:
                manifest = Manifest(
                    name=name, version=m.version, supplier=m.supplier or "-", provides=m.provides,
                    requires=m.requires,
                )  # fmt: skip
            candidates.append(
                Candidate(name=name, node=m.node, manifest=manifest, reason_missing=m.missing, awaiting_install=True)
            )
        interfaces = {n: InterfaceInfo(name=n, single_writer=s.single_writer) for n, s in all_interfaces().items()}
        return candidates, interfaces

    def resolve_after_update(self, after: str) -> list[str]:
        """Resolve again from the running records and start the blocked modules that can run now (UPD-RESOLVE-001).

        Called by the updater once a switch is committed (an update, or an operator rollback). Nothing
        running is stopped or restarted (UPD-RESOLVE-003); see :func:`hardpoint_runtime._updater.reresolve`.

        :param after: what was committed, for the events (``update of module 'nav' 1.0 -> 1.1 committed``).
        :returns: the modules started, in the order they were driven up.
        """
        from hardpoint_runtime._resolve import resolve
        from hardpoint_runtime._updater import reresolve

        candidates, interfaces = self.resolution_inputs()
        waiting = [
            n for n, m in self.modules.items()
            if m.local and m.unmet and m.process is None and m.restart_at is None and not m.failed
        ]  # fmt: skip
        running = [n for n, m in self.modules.items() if m.process is not None or m.restart_at is not None]
        plan = reresolve(resolve(candidates, interfaces), waiting=waiting, running=running)
        self.platform_errors = list(plan.errors)
        if plan.errors:
            self.event(
                "platform_invalid", severity="warning", detail={"after": after, "errors": "; ".join(plan.errors)}
            )
        for name, unmets in plan.blocked.items():
            self._still_blocked(self.modules[name], unmets, after)
        for name, unmets in plan.unmet_running.items():
            reason = "; ".join(str(u) for u in unmets)
            self.event("module_unmet", module=name, severity="warning", detail={"reason": reason, "after": after})
        started = [self.modules[name] for name in plan.start]
        for m in started:
            was, m.unmet, m.reason = m.reason, (), ""
            self.event("module_unblocked", module=m.name, detail={"after": after, "was": was})
        self._start_modules(started)  # in parallel, driven up in dependency order, as at start-up
        return [m.name for m in started]

    def _still_blocked(self, m: _Module, unmets: Sequence[Any], after: str) -> None:
        """Keep ``m`` blocked; when the reason changed with the update, record and report the new one."""
        reason = "; ".join(str(u) for u in unmets)
        if reason == m.reason:
            return
        m.unmet = tuple(UnmetRequirement(u.interface, u.major, u.reason) for u in unmets)
        m.reason = reason
        self.event("module_blocked", module=m.name, severity="warning", detail={"reason": reason, "after": after})

    def _update(self) -> Any:
        if self._updater is None:
            from hardpoint_runtime._updater import Updater

            self._updater = Updater(self, self.config.update)
        return self._updater

    def update_check(self) -> list[UpdateOffer]:
        result: list[UpdateOffer] = self._update().check()
        return result

    def update_apply(
        self, module: str, version: str | None = None, *, progress: Callable[[UpdateProgress], None] | None = None
    ) -> UpdateRecord:
        if module not in self.modules:
            raise KeyError(self.no_such_module(module))
        record: UpdateRecord = self._update().apply(module, version, progress)
        return record

    def update_status(self) -> list[UpdateRecord]:
        from hardpoint_runtime._updater import to_record

        return [to_record(e) for e in self.store.journal(in_progress=True)]

    def update_history(self, module: str | None = None, limit: int = 100) -> list[UpdateRecord]:
        from hardpoint_runtime._updater import to_record

        return [to_record(e) for e in self.store.journal(module=module, limit=limit)]

    def update_rollback(self, module: str) -> UpdateRecord:
        if module not in self.modules:
            raise KeyError(self.no_such_module(module))
        record: UpdateRecord = self._update().rollback(module)
        return record

    # -- management endpoint -------------------------------------------------------------------

    def _serve_management(self) -> None:
        from hardpoint_runtime._management import serve

        mgmt = self.config.management
        self._server = serve(self, socket_path=Path(mgmt.socket), tcp=mgmt.tcp, tls=_tls(mgmt))
        if self.config.metrics.enabled:
            from hardpoint_runtime._metrics import start_metrics

            self._metrics = start_metrics(self, self.config.metrics.address, self.config.metrics.port)

    def wait(self) -> None:
        """Block until :meth:`stop` is called or a signal arrives."""
        while not self._stop.wait(0.5):
            pass


def no_such_module(name: str, platform: str, modules: list[str], config_file: str) -> str:
    """Why ``name`` is not a module of ``platform``: a likely misspelling, or how to add a module."""
    import difflib

    text = f"no module {name!r} on platform {platform!r}"
    close = difflib.get_close_matches(name, modules, n=1)
    if close:
        return f"{text}; did you mean {close[0]!r}?"
    return (
        f"{text}: a module runs only when named by a [[modules]] entry of {config_file}; "
        "add the entry and run 'hardpoint reload' (with [update], it then waits for its first install)"
    )


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    """The lower-case name of an enum value; ``unknown`` for a number the enum does not have (open enums)."""
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError:
        return "unknown"


def _same_version(beat: str, ours: str) -> bool:
    """True when a heartbeat's version is the one the daemon runs (or either is unknown)."""
    if not beat or not ours:
        return True
    from packaging.version import InvalidVersion, Version

    try:
        return Version(beat) == Version(ours)
    except InvalidVersion:
        return beat == ours


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _tls(mgmt: Any) -> Any:
    if not mgmt.tcp:
        return None
    from hardpoint_runtime._management import TlsFiles

    return TlsFiles(cert=Path(mgmt.tls_cert), key=Path(mgmt.tls_key), ca=Path(mgmt.client_ca))


def main(argv: list[str] | None = None) -> int:
    """``hardpointd CONFIG [--node NAME]``."""
    from hardpoint import HardpointError

    parser = argparse.ArgumentParser(prog="hardpointd", description="Run the modules of one node of a platform.")
    parser.add_argument("config", type=Path, help="platform configuration (TOML)")
    parser.add_argument("--node", help="this computer's node name (default: the configuration's)")
    parser.add_argument("--domain-id", type=int, help="DDS domain (default: the configuration's platform.domain_id)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())  # one valid JSON object per line, whatever the message holds
    logging.basicConfig(level=args.log_level, handlers=[handler])
    try:
        daemon = Daemon(args.config, node=args.node, domain_id=args.domain_id)
        daemon.start()
    except HardpointError as e:
        print(f"hardpointd: {e}", file=__import__("sys").stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: daemon._stop.set())
    signal.signal(signal.SIGINT, lambda *_: daemon._stop.set())
    daemon.wait()
    daemon.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
