"""Signed updates in the daemon: verify, pre-check, install, stage, gate, switch, probation, commit or roll back.

The :class:`Updater` runs one attempt at a time and writes each step to the
journal (``update/_journal.py``) before it acts on the next, so a daemon killed
at any point comes back to a consistent platform (:func:`recover_on_start`).
The decisions (is the gate passed? must probation roll back?) are the pure
functions :func:`gate_verdict` and :func:`probation_verdict`; the process
juggling is done on the daemon's own records through :class:`_Activation`.

Normative text: ``spec/update.md`` (UPD-*).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hardpoint_runtime._control import UpdateOffer, UpdateProgress, UpdateRecord
from hardpoint_runtime.update._errors import EvidenceError, UpdateError
from hardpoint_runtime.update._journal import JournalEntry, recover

if TYPE_CHECKING:
    from hardpoint_runtime._config import UpdateSection
    from hardpoint_runtime._daemon import Daemon
    from hardpoint_runtime._resolve import Resolution, Unmet
    from hardpoint_runtime._store import StateStore
    from hardpoint_runtime.update._client import UpdateClient

__all__ = [
    "CRASH_ENV",
    "MID_INSTALL",
    "GateView",
    "Reresolution",
    "Updater",
    "check_evidence",
    "gate_verdict",
    "probation_verdict",
    "recover_on_start",
    "reresolve",
    "silence_allowed_s",
    "to_record",
]

_log = logging.getLogger("hardpoint.update")

#: Test seam (UPD-TEST-001): the updater SIGKILLs its own daemon right after writing this journal step
#: (or, for :data:`MID_INSTALL`, with the install's partial directory complete but not yet renamed).
CRASH_ENV: Final = "HARDPOINT_UPDATE_CRASH_AT"
#: The crash point inside the install, between the steps ``downloaded`` and ``installed``.
MID_INSTALL: Final = "installing"
#: How often the gate and probation look at what the bus saw.
WATCH_PERIOD_S: Final = 0.05
#: A provided periodic interface may be silent this long at least before it counts as stopped (load margin).
MIN_SILENCE_S: Final = 1.0


# ----------------------------------------------------------------------------- pure decisions


def silence_allowed_s(deadline_ms: int, nominal_rate_hz: float) -> float | None:
    """How long a provided interface may be silent before it counts as stopped; None: aperiodic, no limit."""
    if nominal_rate_hz <= 0 and deadline_ms <= 0:
        return None
    by_deadline = 2 * deadline_ms / 1000 if deadline_ms > 0 else 0.0
    by_rate = 5 / nominal_rate_hz if nominal_rate_hz > 0 else 0.0
    return max(by_deadline, by_rate, MIN_SILENCE_S)


@dataclass(frozen=True, slots=True)
class GateView:
    """What the watcher saw of the new version, at one moment."""

    #: Seconds since the new version was started (gate) or switched (probation).
    elapsed_s: float
    #: Its process exited (or could not be started); with the reason.
    exited: str = ""
    #: Restarts since the switch (probation only).
    restarts: int = 0
    #: Last health status seen in its heartbeat ("" when none yet).
    health: str = ""
    health_reason: str = ""
    #: Seconds since its last heartbeat (None: none yet).
    beat_age_s: float | None = None
    #: For each periodic provided interface: seconds since its last sample (None: none yet).
    silence_s: Mapping[str, float | None] = field(default_factory=dict)
    #: For each periodic provided interface: the silence it is allowed.
    allowed_s: Mapping[str, float] = field(default_factory=dict)


def gate_verdict(module: str, version: str, view: GateView, timeout_s: float) -> tuple[str, str] | None:
    """The health gate (UPD-GATE-1): ``None`` to keep waiting, ``("pass", "")``, or ``(cause, reason)`` to refuse.

    Passed when the new version's heartbeat says ``ok`` and every periodic provided interface has
    published; refused at once when it exited (``crashed``), and at the timeout as ``never_healthy``
    (health not ok) or ``stopped_publishing`` (an interface never published).
    """
    who = f"module {module!r} {version}"
    if view.exited:
        return "crashed", f"{who} crashed before passing the gate: {view.exited}"
    missing = sorted(name for name, silence in view.silence_s.items() if silence is None)
    if view.health == "ok" and not missing:
        return "pass", ""
    if view.elapsed_s < timeout_s:
        return None
    if view.health != "ok":
        said = f"health {view.health}" + (f" ({view.health_reason})" if view.health_reason else "")
        seen = said if view.health else "no heartbeat"
        return "never_healthy", f"{who} was not healthy within {timeout_s:g} s: {seen}"
    return "stopped_publishing", f"{who} did not publish {', '.join(missing)} within {timeout_s:g} s"


def probation_verdict(  # noqa: PLR0911 - one exit per rollback cause
    module: str, version: str, view: GateView, *, restart_budget: int
) -> tuple[str, str] | None:
    """Probation (UPD-PROB-1): ``None`` while the new version behaves, else ``(cause, reason)`` to roll back."""
    who = f"module {module!r} {version}"
    if view.restarts > restart_budget:
        if restart_budget == 0:
            return "crashed", f"{who} crashed during probation: {view.exited or 'its process exited'}"
        return "restart_budget", f"{who} restarted {view.restarts} times during probation (budget {restart_budget})"
    if view.exited and restart_budget == 0:
        return "crashed", f"{who} crashed during probation: {view.exited}"
    if view.health and view.health != "ok":
        said = f" ({view.health_reason})" if view.health_reason else ""
        return "never_healthy", f"{who} became {view.health} during probation{said}"
    for name, silence in sorted(view.silence_s.items()):
        allowed = view.allowed_s.get(name)
        if allowed is None:
            continue
        if silence is None and view.elapsed_s > allowed:
            return "stopped_publishing", f"{who} published no {name} during probation (allowed {allowed:g} s)"
        if silence is not None and silence > allowed:
            return (
                "stopped_publishing",
                f"{who} stopped publishing {name}: silent for {silence:.1f} s (allowed {allowed:g} s)",
            )
    return None


@dataclass(frozen=True, slots=True)
class Reresolution:
    """What the daemon does after a committed update (UPD-RESOLVE-001..003); see :func:`reresolve`."""

    #: Blocked modules that can start now, providers before consumers.
    start: tuple[str, ...] = ()
    #: Blocked modules that stay blocked, with their reasons as they are now.
    blocked: Mapping[str, tuple[Unmet, ...]] = field(default_factory=dict)
    #: Running modules whose requirement is no longer met: they keep running and are reported.
    unmet_running: Mapping[str, tuple[Unmet, ...]] = field(default_factory=dict)
    #: Platform-level errors of the new resolution; while there is one nothing is started.
    errors: tuple[str, ...] = ()


def reresolve(resolution: Resolution, *, waiting: Collection[str], running: Collection[str]) -> Reresolution:
    """Which blocked modules a committed update lets start (UPD-RESOLVE-001), and what to report.

    :param resolution: the platform resolved again with the module's new manifest.
    :param waiting: the modules this daemon left blocked and would start (local, no process, not failed).
    :param running: the modules this daemon supervises now (a process, or a restart pending); never stopped.
    """
    blocked = {n: tuple(u) for n, u in resolution.blocked.items() if n in waiting}
    unmet_running = {n: tuple(u) for n, u in resolution.blocked.items() if n in running}
    if resolution.errors:
        # The same rule as at start (RT-RES-012): an invalid platform starts nothing.
        return Reresolution(blocked=blocked, unmet_running=unmet_running, errors=tuple(resolution.errors))
    start = tuple(n for n in resolution.start_order if n in waiting)
    return Reresolution(start=start, blocked=blocked, unmet_running=unmet_running)


def rolled_back_before(entries: Iterable[JournalEntry], version: str) -> JournalEntry | None:
    """The newest attempt that left ``version`` by a rollback (automatic, or the operator's), if any.

    An automatic rollback leaves the version it tried (``to_version``); the operator's leaves the
    version it returns from (``from_version``).
    """
    for e in entries:
        if e.outcome == "rolled_back" and (e.from_version if e.cause == "operator" else e.to_version) == version:
            return e
    return None


def offer_note(installed: str, rolled_back: JournalEntry | None) -> str:
    """What ``update check`` says beside an available release: a first install, and an earlier rollback."""
    notes = []
    if not installed:
        notes.append("not installed: apply makes its first install")
    if rolled_back is not None:
        why = f"{rolled_back.cause}: {rolled_back.reason}" if rolled_back.reason else rolled_back.cause
        notes.append(f"rolled back on this platform before ({why})")
    return "; ".join(notes)


def switch_message(gap_ms: float, *, first_install: bool) -> str:
    """What the ``switched`` step says: the measured gap, or why there is none (never a negative gap)."""
    if first_install:
        return "first install: no earlier version to switch from"
    if gap_ms < 0:
        return "switch gap not measured: no periodic provided interface, or no sample of it within 5 s"
    return f"switch gap {gap_ms:.1f} ms"


def to_record(entry: JournalEntry) -> UpdateRecord:
    """The management view of a journal row."""
    return UpdateRecord(
        id=entry.id, module=entry.module, from_version=entry.from_version, to_version=entry.to_version,
        step=entry.step, outcome=entry.outcome, cause=entry.cause, role=entry.role, reason=entry.reason,
        started_ns=entry.started_ns, finished_ns=entry.finished_ns, switch_gap_ms=entry.switch_gap_ms,
    )  # fmt: skip


def recover_on_start(store: StateStore, event: Callable[..., None]) -> list[JournalEntry]:
    """Apply :func:`recover` to every unfinished attempt (the daemon calls this before resolving)."""
    finished = []
    for entry in store.journal(in_progress=True, limit=1000):
        decision = recover(entry)
        if decision is None:
            continue
        done = store.journal_finish(
            entry.id, decision.outcome, cause=decision.cause, reason=decision.reason, pin=(entry.module, decision.pin)
        )
        event("update_recovered", module=entry.module, severity="warning", detail={"reason": decision.reason})
        finished.append(done)
    return finished


def check_evidence(
    target_custom: Mapping[str, Any], wheel_sha256: str, *, keys: Sequence[Path], target: str, role: str | None
) -> None:
    """The conformance-evidence gate (issue 6), before download: signed, passing evidence for this wheel.

    The evidence must be for the interface set this runtime's SDK carries (CF-EV-033). Implemented by
    ``hardpoint_runtime.conformance._evidence`` (imported here lazily: the gate is off by default). Fails
    closed when that implementation is not available.

    :raises EvidenceError: missing or unacceptable evidence (names cause, module and role).
    """
    import importlib

    try:
        evidence = importlib.import_module("hardpoint_runtime.conformance._evidence")
    except ImportError as e:
        raise EvidenceError(
            "the conformance evidence gate is required but not available in this runtime", target=target, role=role
        ) from e
    trusted = evidence.load_trusted_keys(keys)
    # the IO half of the comparison: the platform's interface set is the one loaded in this process
    platform = evidence.interface_set_version()["descriptor_set_sha256"]
    evidence.check_evidence(
        target_custom, wheel_sha256, trusted, interface_set_sha256=platform, target=target, role=role
    )


def _crash_point(step: str) -> None:
    """Test seam: die like a power cut right after ``step`` was written (``HARDPOINT_UPDATE_CRASH_AT``)."""
    if os.environ.get(CRASH_ENV) == step:
        _log.warning("%s=%s: killing the daemon (test seam)", CRASH_ENV, step)
        os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- watching the bus


class _Watch:
    """Subscriptions on the daemon's bus to one module's heartbeat and provided interfaces, on one prefix."""

    def __init__(self, bus: Any, module: str, version: str, provides: Sequence[str], prefix: str) -> None:
        import hardpoint
        from hardpoint.core.v1 import health_pb2

        self.module, self.version = module, version
        self._lock = threading.Lock()
        self.health, self.health_reason = "", ""
        self.last_beat: float | None = None
        self.last: dict[str, float | None] = {}
        self.first: dict[str, float] = {}
        self.allowed: dict[str, float] = {}
        self._subs: list[Any] = []
        specs = hardpoint.all_interfaces()
        self._subs.append(bus.subscribe(health_pb2.ModuleHealth, self._on_beat, topic_prefix=prefix))
        for name in provides:
            spec = specs.get(name)
            if spec is None:
                continue
            allowed = silence_allowed_s(spec.deadline_ms, spec.nominal_rate_hz)
            if allowed is None:
                continue  # aperiodic: publishing cannot be demanded
            self.allowed[name] = allowed
            self.last[name] = None
            callback = self._sample_callback(name)
            self._subs.append(bus.subscribe(spec.message_type, callback, with_info=True, topic_prefix=prefix))

    def _sample_callback(self, name: str) -> Callable[[Any, Any], None]:
        def on_sample(_msg: Any, info: Any) -> None:
            if info.source != self.module:
                return
            now = time.monotonic()
            with self._lock:
                self.last[name] = now
                self.first.setdefault(name, now)

        return on_sample

    def _on_beat(self, beat: Any) -> None:
        from packaging.version import InvalidVersion, Version

        from hardpoint.core.v1 import health_pb2

        if beat.module != self.module:
            return
        try:
            if beat.version and Version(beat.version) != Version(self.version):
                return
        except InvalidVersion:
            if beat.version != self.version:
                return
        with self._lock:
            self.last_beat = time.monotonic()
            self.health = health_pb2.HealthStatus.Name(beat.status).removeprefix("HEALTH_STATUS_").lower()
            self.health_reason = beat.reason

    def view(self, started: float, *, exited: str = "", restarts: int = 0) -> GateView:
        now = time.monotonic()
        with self._lock:
            return GateView(
                elapsed_s=now - started,
                exited=exited,
                restarts=restarts,
                health=self.health,
                health_reason=self.health_reason,
                beat_age_s=None if self.last_beat is None else now - self.last_beat,
                silence_s={k: (None if t is None else now - t) for k, t in self.last.items()},
                allowed_s=dict(self.allowed),
            )

    def mark(self) -> None:
        """Forget what was seen (probation judges only what comes after the switch)."""
        with self._lock:
            self.last = dict.fromkeys(self.last)
            self.first.clear()

    def close(self) -> None:
        for sub in self._subs:
            try:
                sub.close()
            except Exception:  # closing a reader of a closed transport: nothing left to release
                _log.debug("closing a watch subscription failed", exc_info=True)
        self._subs.clear()


# ----------------------------------------------------------------------------- the updater


class _Refused(Exception):
    """Internal: the attempt ends as refused (cause, role, reason)."""

    def __init__(self, cause: str, role: str, reason: str) -> None:
        super().__init__(reason)
        self.cause, self.role, self.reason = cause, role, reason


class _RolledBack(Exception):
    def __init__(self, cause: str, reason: str) -> None:
        super().__init__(reason)
        self.cause, self.reason = cause, reason


@dataclass
class _Candidate:
    version: str
    target: str
    role: str | None
    length: int
    sha256: str
    custom: dict[str, Any]
    manifest: dict[str, Any]
    supplier: str


class Updater:
    """Signed updates for one daemon (one attempt at a time)."""

    def __init__(self, daemon: Daemon, config: UpdateSection | None) -> None:
        self.daemon = daemon
        self.config = config
        self._lock = threading.Lock()
        state = daemon.state_dir
        self.store_dir = state / "modules"
        if config is not None:
            self.metadata_dir = config.metadata_dir or state / "update" / "metadata"
            self.download_dir = config.download_dir or state / "update" / "downloads"

    @property
    def store(self) -> StateStore:
        store: StateStore = self.daemon.store
        return store

    # -- the repository ------------------------------------------------------------

    def _client(self) -> UpdateClient:
        from hardpoint_runtime.update._client import UpdateClient, initialize_trust

        cfg = self.config
        if cfg is None:
            raise UpdateError("this platform has no [update] section: it takes no signed updates")
        if not (self.metadata_dir / "root.json").exists():
            if cfg.trusted_root is None:
                raise UpdateError("no trusted root: set update.trusted_root to the authority's root.json", role="root")
            initialize_trust(self.metadata_dir, cfg.trusted_root.read_bytes())
        if cfg.directory is not None:
            return UpdateClient.from_directory(cfg.directory, self.metadata_dir, download_dir=self.download_dir)
        assert cfg.url is not None
        return UpdateClient(
            self.metadata_dir,
            metadata_url=f"{cfg.url}metadata/",
            target_url=f"{cfg.url}targets/",
            download_dir=self.download_dir,
        )

    @staticmethod
    def _offers(client: UpdateClient, module: str) -> list[_Candidate]:
        """Every signed release of ``module`` (in any supplier's delegated path), newest first."""
        return [
            _Candidate(r.version, r.target, r.role, r.length, r.sha256, r.custom, r.manifest, r.role)
            for r in client.module_releases(module)
        ]

    def check(self) -> list[UpdateOffer]:
        from packaging.version import Version

        if self.config is None:
            raise ValueError("this platform has no [update] section: it takes no signed updates")
        offers = []
        with self._client() as client:
            for entry in self.daemon.config.enabled_modules:
                installed = self._active_version(entry.name)
                found = self._offers(client, entry.name)
                if not found:
                    note = "" if installed else "not installed, and the repository offers no release of it yet"
                    offers.append(UpdateOffer(entry.name, installed, "", "", "", 0, "current", note))
                    continue
                best = found[0]
                newer = not installed or Version(best.version) > Version(installed)
                status, reason = ("available" if newer else "current"), ""
                if newer:
                    try:
                        self._precheck(entry.name, best)
                        self._gate_evidence(best)  # what apply would refuse, said before anyone tries
                    except _Refused as e:
                        status, reason = "refused", e.reason
                    else:
                        history = self.store.journal(module=entry.name, limit=1000)
                        reason = offer_note(installed, rolled_back_before(history, best.version))
                offers.append(
                    UpdateOffer(
                        entry.name, installed, best.version, best.supplier, best.target, best.length, status, reason
                    )
                )
        return offers

    # -- one attempt -----------------------------------------------------------------

    def _active_version(self, module: str) -> str:
        m = self.daemon.modules.get(module)
        if m is None:
            from hardpoint_runtime._daemon import no_such_module

            d = self.daemon
            raise KeyError(no_such_module(module, d.config.platform.name, list(d.modules), Path(d.config_path).name))
        # The selected version, also while its process is restarting: an update of it is not a first install.
        return str(m.version) if m.dist is not None else ""

    @contextlib.contextmanager
    def _one_at_a_time(self, module: str) -> Iterator[None]:
        """One attempt at a time; a second request is refused at once rather than queued behind a long probation."""
        if self.config is None:
            raise ValueError("this platform has no [update] section: it takes no signed updates")
        if not self._lock.acquire(blocking=False):
            raise ValueError(f"an update is already running on this platform; module {module!r} must wait for it")
        try:
            yield
        finally:
            self._lock.release()

    def apply(
        self, module: str, version: str | None, progress: Callable[[UpdateProgress], None] | None
    ) -> UpdateRecord:
        """Run one update attempt to its end (see the module docstring); refusals and rollbacks are records.

        :raises KeyError: no such module. :raises ValueError: no ``[update]`` section, or an update is running.
        """
        self._active_version(module)
        with self._one_at_a_time(module):
            from_version = self._active_version(module)
            entry = self.store.journal_begin(module, from_version, version or "")
            report = _Reporter(self.daemon, module, entry.id, progress)
            self.daemon.event("update_started", module=module, detail={"from": from_version, "to": version or "newest"})
            report("requested")
            _crash_point("requested")
            try:
                cand, lib = self._fetch_and_install(entry, module, from_version, version, report)
                self._activate(entry, module, from_version, cand.version, cand.manifest, lib, report)
                # Only a committed update gets here: a refused or rolled-back one unblocks nothing.
                self._reresolve(f"update of module {module!r} {from_version or '(none)'} -> {cand.version} committed")
            except _Refused as e:
                done = self.store.journal_finish(entry.id, "refused", cause=e.cause, role=e.role, reason=e.reason)
                self.daemon.event(
                    "update_refused", module=module, severity="warning", detail={"cause": e.cause, "reason": e.reason}
                )
                report("refused", message=e.reason)
                return to_record(done)
            except _RolledBack as e:
                done = self.store.journal(module=module, limit=1)[0]
                report("rolled_back", message=e.reason)
                return to_record(done)
            done = self.store.journal(module=module, limit=1)[0]
            return to_record(done)

    def rollback(self, module: str) -> UpdateRecord:
        """Return to the version before the last committed update (still installed), through the same switch."""
        self._active_version(module)
        with self._one_at_a_time(module):
            current = self._active_version(module)
            previous = ""
            for e in self.store.journal(module=module, limit=1000):
                if e.outcome == "committed" and e.to_version == current and e.from_version:
                    previous = e.from_version
                    break
            from hardpoint_runtime.update._install import installed_lib

            lib = installed_lib(self.store_dir, module, previous) if previous else None
            if lib is None or not lib.is_dir():
                raise ValueError(
                    f"module {module!r} {current or '(not running)'} has no earlier committed version to return to"
                )
            manifest = self._installed_manifest(module, previous, lib)
            entry = self.store.journal_begin(module, current, previous)
            report = _Reporter(self.daemon, module, entry.id, None)
            self.daemon.event(
                "update_started", module=module, detail={"from": current, "to": previous, "by": "operator"}
            )
            for step in ("downloaded", "installed"):
                self.store.journal_step(entry.id, step)
            with contextlib.suppress(_RolledBack):  # recorded by _activate
                self._activate(entry, module, current, previous, manifest, lib, report)
            done = self.store.journal(module=module, limit=1)[0]
            if done.outcome == "committed":
                done = self.store.journal_finish(
                    done.id, "rolled_back", cause="operator",
                    reason=f"operator returned module {module!r} from {current} to {previous}",
                )  # fmt: skip
                self.daemon.event("update_rolled_back", module=module, detail={"cause": "operator", "to": previous})
                self._reresolve(f"operator rollback of module {module!r} {current} -> {previous}")
            return to_record(done)

    def _reresolve(self, after: str) -> None:
        """Resolve the platform again after a committed switch and start what can run now (UPD-RESOLVE-001)."""
        try:
            self.daemon.resolve_after_update(after)
        except Exception:  # the update is committed: a failure here must not turn it into an error
            _log.exception("resolving the platform again after the %s failed (hardpoint reload retries)", after)

    def _installed_manifest(self, module: str, version: str, lib: Path) -> dict[str, Any]:
        from hardpoint_runtime._inspect import inspect_modules

        found = inspect_modules([str(lib)], names=[module]).get(f"{module}=={version}", {})
        manifest = found.get("manifest")
        if not isinstance(manifest, dict):
            raise ValueError(f"module {module!r} {version} in the store does not load: {found.get('error', '?')}")
        return manifest

    def _fetch_and_install(
        self, entry: JournalEntry, module: str, from_version: str, version: str | None, report: _Reporter
    ) -> tuple[_Candidate, Path]:
        from packaging.version import Version

        from hardpoint_runtime.update._install import install_wheel

        try:
            with self._client() as client:
                found = self._offers(client, module)
                chosen = [c for c in found if version is None or Version(c.version) == Version(version)]
                if not chosen:
                    what = f"version {version}" if version else "any version"
                    raise _Refused("TargetNotFoundError", "", f"the repository offers no {what} of module {module!r}")
                cand = chosen[0]
                self.store.journal_step(entry.id, "requested", to_version=cand.version)
                self._precheck(module, cand)
                self._gate_evidence(cand)
                report("requested", total=cand.length, message=f"fetching {cand.target}")
                verified = client.fetch_module(
                    cand.target, installed_version=from_version or None, allow_reinstall=False
                )
        except UpdateError as e:
            raise _Refused(type(e).__name__, e.role or "", str(e)) from e
        self.store.journal_step(entry.id, "downloaded")
        report("downloaded", done=verified.length, total=verified.length)
        _crash_point("downloaded")
        try:
            lib = install_wheel(
                verified.path,
                self.store_dir,
                module,
                cand.version,
                target=cand.target,
                before_rename=lambda: _crash_point(MID_INSTALL),
            )
        except UpdateError as e:
            raise _Refused(type(e).__name__, "", str(e)) from e
        self.store.journal_step(entry.id, "installed")
        report("installed")
        _crash_point("installed")
        return cand, lib

    def _gate_evidence(self, cand: _Candidate) -> None:
        """With ``require_evidence``, refuse a release without signed, passing evidence for its wheel (issue 6)."""
        cfg = self.config
        if cfg is None or not cfg.require_evidence:
            return
        try:
            check_evidence(cand.custom, cand.sha256, keys=cfg.conformance_keys, target=cand.target, role=cand.role)
        except UpdateError as e:
            raise _Refused(type(e).__name__, e.role or "", str(e)) from e

    def _precheck(self, module: str, cand: _Candidate) -> None:
        from hardpoint import HardpointError, Manifest
        from hardpoint_runtime.update._precheck import UnmetRequirementError, precheck

        try:
            manifest = Manifest.load(cand.manifest, origin=cand.target)
            candidates, interfaces = self.daemon.resolution_inputs()
            precheck(module, manifest, candidates, interfaces, target=cand.target, role=cand.role)
        except UnmetRequirementError as e:
            raise _Refused("UnmetRequirementError", cand.role or "", str(e)) from e
        except HardpointError as e:
            raise _Refused("ManifestMismatchError", cand.role or "", f"{cand.target}: {e}") from e

    # -- activation ----------------------------------------------------------------------

    def _activate(  # noqa: PLR0917 - the one call site passes the attempt's parts in order
        self,
        entry: JournalEntry,
        module: str,
        from_version: str,
        to_version: str,
        manifest: Mapping[str, Any],
        lib: Path,
        report: _Reporter,
    ) -> None:
        cfg = self.config
        gate_s = cfg.gate_timeout_s if cfg is not None else 20.0
        probation_s = cfg.probation_s if cfg is not None else 10.0
        budget = cfg.probation_restarts if cfg is not None else 0
        act = _Activation(self.daemon, module, to_version, manifest, lib, staged=bool(from_version))
        try:
            act.start()
            self.store.journal_step(entry.id, "staged")
            report("staged", total=int(gate_s))
            _crash_point("staged")
            self._gate(act, module, to_version, gate_s, report)
            self.store.journal_step(entry.id, "gate_passed")
            report("gate_passed")
            _crash_point("gate_passed")
            gap_ms = act.switch()
            self.store.journal_step(entry.id, "switched", pin=(module, to_version), switch_gap_ms=gap_ms)
            report("switched", message=switch_message(gap_ms, first_install=not from_version))
            _crash_point("switched")
            self._probation(act, module, to_version, probation_s, budget, report)
            self.store.journal_step(entry.id, "probation_passed")
            report("probation_passed")
            _crash_point("probation_passed")
            act.commit()
            self.store.journal_step(entry.id, "committed", outcome="committed")
            self.daemon.event("update_committed", module=module, detail={"from": from_version, "to": to_version})
            report("committed")
            _crash_point("committed")
        except _RolledBack as e:
            self._roll_back(act, entry, module, from_version, e)
            raise
        except Exception as e:  # anything unforeseen mid-activation (a worker gone mid-request): restore the old
            _log.exception("update of module %s failed unexpectedly; rolling back", module)
            failure = _RolledBack(
                "error", f"update of module {module!r} to {to_version} failed: {type(e).__name__}: {e}"
            )
            self._roll_back(act, entry, module, from_version, failure)
            raise failure from e
        finally:
            act.close()

    def _roll_back(self, act: _Activation, entry: JournalEntry, module: str, from_version: str, e: _RolledBack) -> None:
        try:
            act.revert()
        except Exception:  # the pin below still returns the platform to the old version at the next start
            _log.exception("restoring module %s %s failed", module, from_version)
        self.store.journal_finish(entry.id, "rolled_back", cause=e.cause, reason=e.reason, pin=(module, from_version))
        self.daemon.event(
            "update_rolled_back", module=module, severity="warning", detail={"cause": e.cause, "reason": e.reason}
        )

    def _gate(self, act: _Activation, module: str, version: str, timeout_s: float, report: _Reporter) -> None:
        last_second = -1
        while True:
            view = act.view()
            verdict = gate_verdict(module, version, view, timeout_s)
            if verdict is not None:
                cause, reason = verdict
                if cause == "pass":
                    return
                raise _RolledBack(cause, reason)
            if int(view.elapsed_s) != last_second:
                last_second = int(view.elapsed_s)
                report("staged", done=last_second, total=int(timeout_s), message="waiting for the health gate")
            self._sleep_unless_stopping(module)

    def _probation(  # noqa: PLR0917
        self, act: _Activation, module: str, version: str, probation_s: float, budget: int, report: _Reporter
    ) -> None:
        started = time.monotonic()
        last_second = -1
        while (elapsed := time.monotonic() - started) < probation_s:
            verdict = probation_verdict(module, version, act.view(), restart_budget=budget)
            if verdict is not None:
                raise _RolledBack(*verdict)
            if int(elapsed) != last_second:
                last_second = int(elapsed)
                report("switched", done=last_second, total=int(probation_s), message="probation")
            self._sleep_unless_stopping(module)

    def _sleep_unless_stopping(self, module: str) -> None:
        """Wait one watch period; a daemon that is stopping ends the attempt (the old version is restored)."""
        if self.daemon.stopping.wait(WATCH_PERIOD_S):
            raise _RolledBack("interrupted", f"update of module {module!r} interrupted: the daemon is stopping")


class _Reporter:
    """Progress callbacks and ``update_progress`` events for one attempt."""

    def __init__(
        self, daemon: Daemon, module: str, entry_id: int, progress: Callable[[UpdateProgress], None] | None
    ) -> None:
        self.daemon, self.module, self.entry_id, self.progress = daemon, module, entry_id, progress
        self._last_step = ""

    def __call__(self, step: str, *, done: int = 0, total: int = 0, message: str = "") -> None:
        if self.progress is not None:
            try:
                self.progress(UpdateProgress(self.module, step, done, total, message))
            except Exception:  # a watcher that went away must not stop the update
                _log.debug("progress callback failed", exc_info=True)
        if step != self._last_step:
            self._last_step = step
            self.daemon.event(
                "update_progress", module=self.module, detail={"step": step, "attempt": str(self.entry_id)}
            )


class _Activation:
    """The processes of one switch: the old version (kept inactive during probation) and the new one.

    Works on the daemon's record of the module (``Daemon.modules[name]``) under its lock, so the
    monitor supervises the new version like any module once it is switched in.
    """

    def __init__(
        self, daemon: Daemon, module: str, version: str, manifest: Mapping[str, Any], lib: Path, *, staged: bool
    ) -> None:
        from hardpoint_runtime._plugins import find_modules

        self.daemon, self.module, self.version, self.staged = daemon, module, version, staged
        self.m = daemon.modules[module]
        self.manifest = dict(manifest)
        found = [d for d in find_modules([str(lib)]).get(module, []) if d.path == str(lib)]
        if not found:
            raise _Refused("InstallError", "", f"module {module!r} {version} is not found in {lib} after install")
        self.dist = found[0]
        self.new: Any = None
        self.old: Any = self.m.process
        self.old_fields = {
            f: getattr(self.m, f) for f in ("version", "dist", "supplier", "provides", "requires", "isolation")
        }
        self.restarts_at_switch = 0
        self.switched = False
        self.started = time.monotonic()
        self.exited = ""
        provides = tuple(self.manifest.get("provides", ()))
        prefix = self._prefix() if staged else ""
        self.watch = _Watch(daemon.bus, module, version, provides, prefix)
        # The old version's samples on the normal topics, from now on: the switch gap starts at its last one.
        self.probe = _Watch(daemon.bus, module, str(self.old_fields["version"]), provides, "") if staged else None

    @staticmethod
    def _prefix() -> str:
        from hardpoint._bus import STAGED_PREFIX

        return str(STAGED_PREFIX)

    def start(self) -> None:
        """Start the new version: beside the old one on staged topics, or as the module (first install)."""
        from hardpoint_runtime._daemon import WORKER_TIMEOUT_S
        from hardpoint_runtime._process import ModuleProcess, WorkerError

        d, m = self.daemon, self.m
        spec = d.worker_spec(m, self.dist)
        if self.staged:
            spec["write_prefix"] = self._prefix()
        log = d.state_dir / "logs" / f"{m.name}-{self.version}.log"
        proc = ModuleProcess(m.name, spec, log)
        self.started = time.monotonic()
        try:
            proc.start(timeout_s=WORKER_TIMEOUT_S)
            self.new = proc
            # Old and new version both write as the module until the attempt ends (RT-BUS-ID-004).
            m.extra = [p for p in (self.old, proc) if p is not None]
            d.push_roster()
            for transition in ("configure", "activate"):
                reply = proc.request("transition", timeout_s=WORKER_TIMEOUT_S, transition=transition)
                if not reply.get("ok") or reply.get("error"):
                    self.exited = f"{transition} failed: {reply.get('error') or 'refused'}"
                    return
        except WorkerError as e:
            code = proc.exit_code()
            from hardpoint_runtime._process import describe_exit

            self.exited = f"process {describe_exit(code)}" if code is not None else str(e)
        if not self.staged and self.new is not None and not self.exited:
            with m.lock:  # first install: the new version is the module from now on
                self._adopt(proc)

    def _adopt(self, proc: Any) -> None:
        m = self.m
        m.process, m.dist, m.version, m.unmet, m.failed, m.restart_at = proc, self.dist, self.version, (), False, None
        m.supplier = str(self.manifest.get("supplier", ""))
        m.provides = tuple(self.manifest.get("provides", ()))
        m.requires = tuple(self.manifest.get("requires", ()))
        m.state, m.last_beat, m.reason = "active", time.monotonic(), ""
        m.policy.reset()
        self.daemon.note_provenance(m)

    def view(self) -> Any:
        if self.switched:
            m = self.m
            restarts = m.restarts - self.restarts_at_switch
            exited = self.exited
            if m.process is not self.new:
                exited = exited or m.reason or "its process exited"
            elif self.new is not None and self.new.exit_code() is not None:
                from hardpoint_runtime._process import describe_exit

                exited = f"process {describe_exit(self.new.exit_code())}"
            return self.watch.view(self.switch_time, exited=exited, restarts=restarts)
        exited = self.exited
        if not exited and self.new is not None and self.new.exit_code() is not None:
            from hardpoint_runtime._process import describe_exit

            exited = f"process {describe_exit(self.new.exit_code())}"
        if not exited and not self.staged and self.m.process is not self.new:
            exited = self.m.reason or "its process exited"
        return self.watch.view(self.started, exited=exited)

    def switch(self) -> float:
        """Deactivate the old version, promote the new one; return the gap seen on the bus (ms)."""
        from hardpoint_runtime._daemon import WORKER_TIMEOUT_S

        m = self.m
        if not self.staged:
            self._switched_at(time.monotonic())
            return -1.0
        probe = self.probe
        assert probe is not None
        try:
            with m.lock:
                # The supervisor may have restarted the old version during the gate: switch from the current one.
                self.old = m.process
                if self.old is not None and self.old.exit_code() is None:
                    self.old.request("transition", timeout_s=WORKER_TIMEOUT_S, transition="deactivate")
                t_off = time.monotonic()
                last_old = max((t for t in probe.last.values() if t is not None), default=t_off)
                probe.mark()
                reply = self.new.request("promote", timeout_s=WORKER_TIMEOUT_S)
                if not reply.get("ok"):
                    self._reactivate_old()
                    raise _RolledBack(
                        "never_healthy", f"module {m.name!r} {self.version} could not be promoted: {reply.get('error')}"
                    )
                self._adopt(self.new)
                self._switched_at(time.monotonic())
            # Nothing periodic watched (an Alert-only module): no first sample to wait for.
            gap = self._first_sample(probe, timeout_s=5.0) if probe.last else None
            return -1.0 if gap is None else max(0.0, gap - last_old) * 1000
        finally:
            probe.close()
            self.probe = None

    def _switched_at(self, now: float) -> None:
        self.switched = True
        self.switch_time = now
        self.restarts_at_switch = self.m.restarts
        self.watch.close()
        self.watch = _Watch(self.daemon.bus, self.module, self.version, tuple(self.manifest.get("provides", ())), "")

    @staticmethod
    def _first_sample(probe: _Watch, *, timeout_s: float) -> float | None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with probe._lock:
                if probe.first:
                    return min(probe.first.values())
            time.sleep(0.01)
        return None

    def _reactivate_old(self) -> None:
        from hardpoint_runtime._daemon import WORKER_TIMEOUT_S

        m = self.m
        for f, value in self.old_fields.items():
            setattr(m, f, value)
        if self.old is not None and self.old.exit_code() is None:
            reply = self.old.request("transition", timeout_s=WORKER_TIMEOUT_S, transition="activate")
            m.process, m.state = self.old, str(reply.get("state", "active"))
            m.last_beat = time.monotonic()
            m.restart_at = None
        elif self.old_fields["dist"] is not None:
            m.process = None
            m.failed = False
            m.restart_at = None
            self.daemon.spawn(m)
        else:
            m.process, m.state = None, "not_started"

    def revert(self) -> None:
        """Return to the old version: re-activate it (or start it again) and stop the new one."""
        d, m = self.daemon, self.m
        if d.stopping.is_set():
            # The daemon stops everything it supervises; only what it does not know must go here.
            # The pin (old version) is written with the rollback, so the next start runs the old one.
            if self.new is not None:
                self.new.kill()
            if self.old is not None and self.old is not m.process:
                self.old.kill()
            return
        with m.lock:
            m.restart_at = None
            if self.switched and m.process is not None and m.process is not self.old:
                m.process.kill()
            if self.new is not None:
                self.new.kill()
            m.process = None
            if self.staged:
                self._reactivate_old()
            else:
                m.process, m.dist, m.state = None, None, "not_started"
                m.reason = f"first install of {self.version} rolled back"

    def commit(self) -> None:
        """Stop the old version for good."""
        if self.old is not None and self.old is not self.m.process:
            self.old.stop(timeout_s=self.daemon.config.supervision.stop_timeout_s)

    def close(self) -> None:
        self.watch.close()
        if self.probe is not None:
            self.probe.close()
        if self.m.extra:
            self.m.extra = []
            self.daemon.push_roster()
