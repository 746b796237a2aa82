"""Host a module under test in the real runtime worker, on a private Cyclone DDS domain.

:class:`HostedModule` starts the module in :mod:`hardpoint_runtime._worker` (the same
process the daemon runs for every module), on a DDS domain id and discovery tag no
other test holds, with a probe :class:`hardpoint.Bus` in the calling process that may
publish and subscribe anything. A module that requires interfaces gets them from
*feeders*: the reference modules that provide them, hosted alongside in their own
workers (so a sensor is fed the reference ``nav``, a fusion replacement the reference
sensors). Hardware adapters default to the simulated bindings of the patrol platform.

Domain ids come from the lock folder the integration suites and benchmarks use
(``$TMPDIR/hardpoint-it-domains``, ids 1..230), so a conformance run never shares a
domain id with them at the same time; the discovery tag isolates it further from
anything that picks ids without that folder.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.metadata as md
import itertools
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from hardpoint_runtime._errors import HardpointRuntimeError

if TYPE_CHECKING:
    import hardpoint
    from hardpoint_runtime._process import ModuleProcess

__all__ = [
    "DEFAULT_ADAPTERS",
    "DEFAULT_CONFIG",
    "REFERENCE_PROVIDERS",
    "HarnessError",
    "HostedModule",
    "PROBE_NAME",
    "Observed",
    "Tap",
    "default_adapters",
    "feeders_for",
    "free_domain_id",
    "release_domain_id",
    "wait_until",
]

#: Entry-point group of capability modules.
MODULE_GROUP: Final = "hardpoint.modules"
#: Domain ids handed out (the default port mapping allows 0..232); shared with the integration suites.
DOMAIN_IDS: Final = range(1, 231)
DOMAIN_LOCKS: Final = Path(tempfile.gettempdir()) / "hardpoint-it-domains"
#: Time for a worker to import and load its module (a loaded 2-core machine can be slow).
START_TIMEOUT_S: Final = 60.0
#: Time for one lifecycle transition to be answered.
TRANSITION_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0
#: Time for a new participant to be discovered on loopback.
DISCOVERY_TIMEOUT_S: Final = 15.0
#: Most DDS entities of one kind (participants, writers, readers) read from discovery at once.
MAX_ENTITIES: Final = 4096
#: Common scenario time zero of every simulated adapter of one hosted module and its feeders.
_SCENARIO: Final = "builtin:patrol"

#: Simulated adapter bindings by abstract adapter name (those of ``examples/patrol/platform.toml``).
DEFAULT_ADAPTERS: Final[Mapping[str, Mapping[str, Any]]] = {
    "gnss": {"driver": "sim-gnss", "config": {"scenario": _SCENARIO, "seed": 1}},
    "radar": {"driver": "sim-detections", "config": {"scenario": _SCENARIO, "sensor": "radar", "seed": 2}},
    "eoir": {"driver": "sim-detections", "config": {"scenario": _SCENARIO, "sensor": "eoir", "seed": 3}},
}

#: Module configuration used when none is given, by module name; ``{workdir}`` is replaced.
#: The geofence gets the patrol platform's zones, so that it has zones to publish and alerts to raise.
DEFAULT_CONFIG: Final[Mapping[str, Mapping[str, Any]]] = {
    "recorder": {"path": "{workdir}/recording.mcap", "overwrite": True},
    "geofence": {
        "margin_m": 30.0,
        "zones": [
            {
                "zone_id": "platform",
                "name": "Offshore platform safety zone",
                "kind": "keep_out",
                "severity": "warning",
                "circle": {"lat": 54.183476, "lon": 11.761248, "radius_m": 500.0},
            },
            {
                "zone_id": "anchorage",
                "name": "Anchorage",
                "kind": "keep_out",
                "severity": "caution",
                "polygon": [
                    [54.199647, 11.743639],
                    [54.202522, 11.742874],
                    [54.202792, 11.749764],
                    [54.199468, 11.748998],
                ],
                "ceiling_hae_m": 300.0,
            },
        ],
    },
}

#: The reference module that feeds each interface a module under test may require.
REFERENCE_PROVIDERS: Final[Mapping[str, str]] = {
    "hardpoint.nav.v1.NavState": "nav",
    "hardpoint.track.v1.SensorTrack": "radar",
    "hardpoint.track.v1.FusedTrack": "fusion",
}

#: Module name of the probe bus in the test process.
PROBE_NAME: Final = "conformance.probe"


class HarnessError(HardpointRuntimeError):
    """The module under test cannot be hosted, or did not do what the harness asked; names the module and cause."""


# --------------------------------------------------------------------------- domain ids

_counter = itertools.count()
_held: dict[int, IO[str]] = {}
_held_lock = threading.Lock()


def free_domain_id() -> int:
    """A DDS domain id that no other holder of the shared lock folder uses; held until :func:`release_domain_id`.

    :raises HarnessError: every id is held (more than 230 concurrent test domains on this machine).
    """
    DOMAIN_LOCKS.mkdir(exist_ok=True)
    start = os.getpid() * 41 + next(_counter) * 11 + 5
    for i in range(len(DOMAIN_IDS)):
        domain_id = DOMAIN_IDS[(start + i) % len(DOMAIN_IDS)]
        with _held_lock:
            if domain_id in _held:
                continue
            lock = (DOMAIN_LOCKS / f"{domain_id}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            _held[domain_id] = lock
            return domain_id
    raise HarnessError(f"every DDS domain id in {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1} is in use on this machine")


def release_domain_id(domain_id: int) -> None:
    """Give back an id from :func:`free_domain_id` (no effect for an id not held)."""
    with _held_lock:
        lock = _held.pop(domain_id, None)
    if lock is not None:
        lock.close()


def _release_all() -> None:
    for domain_id in list(_held):
        release_domain_id(domain_id)


atexit.register(_release_all)


def _dds_config(tag: str) -> str:
    """The packaged loopback configuration plus a discovery tag that hides every other test's participants."""
    import hardpoint

    loopback = Path(hardpoint.__file__).resolve().parent / "_dds" / "loopback.xml"
    return f"file://{loopback},<Discovery><Tag>{tag}</Tag></Discovery>"


def contract_channel(spec: hardpoint.InterfaceSpec) -> hardpoint.Channel:
    """A channel on ``spec``'s contract topic with the contract's QoS, history, interface and schema identity.

    What the suite's own readers (and raw writers) open, so they match the module's endpoints exactly.
    """
    from hardpoint import Channel

    return Channel(spec.topic, spec.qos, spec.keyed, spec.history_depth, spec.name, spec.schema_id)


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something true and return it; the last (false) value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


# --------------------------------------------------------------------------- finding modules


class _Located:
    """Where a module's code is: its entry point value and extra import paths."""

    def __init__(self, name: str, entry_point: str, paths: Sequence[str]) -> None:
        self.name = name
        self.entry_point = entry_point
        self.paths = list(paths)


def _install_wheel(wheel: Path, target: Path) -> Path:
    """Install ``wheel`` with ``installer`` into ``target`` (a private site directory) and return it."""
    import sysconfig

    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.exceptions import InstallerError
    from installer.sources import WheelFile

    scheme = {key: str(target / key) for key in sysconfig.get_path_names()}
    scheme["purelib"] = scheme["platlib"] = str(target / "site")
    try:
        with WheelFile.open(wheel) as source:
            install(source, SchemeDictionaryDestination(scheme, interpreter=sys.executable, script_kind="posix"), {})
    except (InstallerError, OSError, ValueError) as e:
        raise HarnessError(f"cannot install wheel {wheel}: {e}") from e
    return target / "site"


def _locate(module: str, workdir: Path) -> _Located:
    """Find ``module``: a wheel (installed into ``workdir``) or an installed entry-point name.

    :raises HarnessError: no such module, or a wheel without exactly one module entry point.
    """
    if module.endswith(".whl"):
        wheel = Path(module).resolve()
        if not wheel.is_file():
            raise HarnessError(f"no wheel file {module}")
        site = _install_wheel(wheel, workdir / "wheel")
        eps = [
            ep for dist in md.distributions(path=[str(site)]) for ep in dist.entry_points if ep.group == MODULE_GROUP
        ]
        if len(eps) != 1:
            names = ", ".join(sorted(ep.name for ep in eps)) or "none"
            raise HarnessError(f"wheel {wheel.name}: expected one entry point in {MODULE_GROUP}, found {names}")
        return _Located(eps[0].name, eps[0].value, [str(site)])
    found = [ep for ep in md.entry_points(group=MODULE_GROUP) if ep.name == module]
    if not found:
        known = ", ".join(sorted({ep.name for ep in md.entry_points(group=MODULE_GROUP)})) or "none"
        raise HarnessError(f"no module named {module!r} in entry-point group {MODULE_GROUP} (installed: {known})")
    return _Located(module, found[0].value, [])


def _manifest(located: _Located) -> hardpoint.Manifest:
    """Load the module object in this process (its code paths first) and return its validated manifest."""
    import hardpoint

    for path in reversed(located.paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    ep = md.EntryPoint(name=located.name, value=located.entry_point, group=MODULE_GROUP)
    try:
        target = ep.load()
        obj = target() if isinstance(target, type) or callable(target) else target
        return hardpoint.ModuleHost.manifest_of(obj)
    except hardpoint.HardpointError as e:
        raise HarnessError(f"module {located.name!r}: {e}") from e
    except Exception as e:  # the supplier's import-time code: anything can happen
        raise HarnessError(f"module {located.name!r} cannot be loaded: {type(e).__name__}: {e}") from e


def _fill(value: Any, workdir: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{workdir}", str(workdir))
    if isinstance(value, Mapping):
        return {k: _fill(v, workdir) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, workdir) for v in value]
    return value


def default_adapters(needed: Iterable[str], start_ns: int) -> dict[str, dict[str, Any]]:
    """Simulated bindings for ``needed`` (all with scenario time zero ``start_ns``).

    :raises HarnessError: an adapter has no simulated default; name it and how to bind it.
    """
    bindings: dict[str, dict[str, Any]] = {}
    for name in needed:
        default = DEFAULT_ADAPTERS.get(name)
        if default is None:
            raise HarnessError(
                f"adapter {name!r} has no simulated default (known: {', '.join(sorted(DEFAULT_ADAPTERS))}); "
                "bind it in the [adapters] table of --hardpoint-config"
            )
        bindings[name] = {"driver": default["driver"], "config": {**default["config"], "start_ns": start_ns}}
    return bindings


def feeders_for(manifest: hardpoint.Manifest) -> list[str]:
    """Reference modules to host so that every interface ``manifest`` requires is on the bus, providers first.

    A required interface the module provides itself, or with no reference provider, gets no feeder.
    """
    order: list[str] = []

    def need(interfaces: Iterable[str], own: Iterable[str]) -> None:
        for interface in interfaces:
            provider = REFERENCE_PROVIDERS.get(interface)
            if provider is None or interface in own or provider in order or provider == manifest.name:
                continue
            need(_reference_requires(provider), ())
            order.append(provider)

    need(manifest.requires, manifest.provides)
    return order


def _reference_requires(name: str) -> tuple[str, ...]:
    return _manifest(_locate(name, Path(tempfile.gettempdir()))).requires


# --------------------------------------------------------------------------- hosting


class HostedModule:
    """The module under test in a real runtime worker on a private DDS domain, with a probe bus.

    :param module: installed entry-point name or wheel file.
    :param domain_id: DDS domain; default a free one (:func:`free_domain_id`), given back on :meth:`close`.
    :param config: the module's own configuration table; default :data:`DEFAULT_CONFIG` for its name, else empty.
    :param adapters: ``{binding: {"driver": ..., "config": {...}}}``; default the simulated binding
        (:data:`DEFAULT_ADAPTERS`) of each adapter the manifest needs.
    :param workdir: where logs (and an installed wheel) go; default a temporary directory removed on close.
    :param feeders: reference modules hosted alongside to provide required inputs; default :func:`feeders_for`.
    :param health_period_s: heartbeat period of the worker.
    :param transition_timeout_s: how long to wait for the module's worker to answer a lifecycle transition
        (the lifecycle checks wait no longer than the bound of CF-LC-006; feeders always get
        :data:`TRANSITION_TIMEOUT_S`).
    :raises HarnessError: the module cannot be found, loaded, or an adapter cannot be bound.
    """

    def __init__(
        self,
        module: str,
        *,
        domain_id: int | None = None,
        config: Mapping[str, Any] | None = None,
        adapters: Mapping[str, Mapping[str, Any]] | None = None,
        workdir: Path | None = None,
        feeders: Sequence[str] | None = None,
        health_period_s: float = 1.0,
        transition_timeout_s: float = TRANSITION_TIMEOUT_S,
    ) -> None:
        self.transition_timeout_s = transition_timeout_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="hardpoint-conformance-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._own_domain = domain_id is None
        self.domain_id: int = free_domain_id() if domain_id is None else domain_id
        try:
            self._located = _locate(module, self.workdir)
            self.name = self._located.name
            self.manifest: hardpoint.Manifest = _manifest(self._located)
            self.start_ns = time.time_ns()
            self.config: dict[str, Any] = _fill(
                dict(config) if config is not None else dict(DEFAULT_CONFIG.get(self.name, {})), self.workdir
            )
            self.adapters: dict[str, dict[str, Any]] = (
                {k: {"driver": v["driver"], "config": dict(v.get("config", {}))} for k, v in adapters.items()}
                if adapters is not None
                else default_adapters(self.manifest.adapters, self.start_ns)
            )
            self.feeders: list[str] = list(feeders) if feeders is not None else feeders_for(self.manifest)
        except BaseException:
            self._release()
            raise
        self.dds_config = _dds_config(f"hp-cf-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.health_period_s = health_period_s
        self.process: ModuleProcess | None = None
        self._feeder_procs: list[ModuleProcess] = []
        #: DDS participant of the module's current worker (found by discovery at start), if seen.
        self.participant: uuid.UUID | None = None
        #: Built-in discovery readers of the probe (participants, publications, subscriptions), made before
        #: the module starts and only read (never taken), so they hold every entity ever seen (CF-BUS-004).
        self._builtin_readers: dict[str, Any] = {}
        self.tap: Tap | None = None
        #: ``time.monotonic()`` when :meth:`activate` last succeeded (0.0 before).
        self.activated_at = 0.0
        self._transport: hardpoint.CycloneTransport | None = None
        self._probe: hardpoint.Bus | None = None
        self._runs = 0

    # -- the probe ---------------------------------------------------------------

    @property
    def probe(self) -> hardpoint.Bus:
        """Unrestricted bus (module ``conformance.probe``) on the module's domain, created on first use."""
        if self._probe is None:
            import hardpoint

            try:
                self._transport = hardpoint.CycloneTransport(domain_id=self.domain_id, config=self.dds_config)
            except hardpoint.TransportError as e:
                raise HarnessError(
                    f"module {self.name!r}: cannot open the probe on domain {self.domain_id}: {e}"
                ) from e
            self._probe = hardpoint.Bus(self._transport, module=PROBE_NAME)
        return self._probe

    @property
    def transport(self) -> hardpoint.CycloneTransport:
        """The probe's transport (for discovery of the module's readers and writers)."""
        self.probe  # noqa: B018 - creates the transport
        assert self._transport is not None
        return self._transport

    # -- discovery -------------------------------------------------------------------

    def _builtin(self, which: str) -> Any:
        """The probe's built-in reader of ``participants``, ``publications`` or ``subscriptions``, made on first use.

        Samples are only read, never taken: an entity that was deleted (or whose process ended) stays in the
        reader as a not-alive instance with its last data, so it is still seen after it is gone.
        """
        from cyclonedds.builtin import (
            BuiltinDataReader,
            BuiltinTopicDcpsParticipant,
            BuiltinTopicDcpsPublication,
            BuiltinTopicDcpsSubscription,
        )

        reader = self._builtin_readers.get(which)
        if reader is None:
            topic = {
                "participants": BuiltinTopicDcpsParticipant,
                "publications": BuiltinTopicDcpsPublication,
                "subscriptions": BuiltinTopicDcpsSubscription,
            }[which]
            # The probe's own participant sees the whole private domain.
            reader = self._builtin_readers[which] = BuiltinDataReader(self.transport._participant, topic)
        return reader

    def _watch_discovery(self) -> None:
        """Make every built-in reader now, before the module starts, so that nothing it creates is missed."""
        for which in ("participants", "publications", "subscriptions"):
            self._builtin(which)

    def _seen(self, which: str) -> list[Any]:
        """Every entity of ``which`` seen so far, alive or not, one (the latest data) per key."""
        latest: dict[Any, Any] = {}
        for s in self._builtin(which).read(N=MAX_ENTITIES):
            if s.sample_info.valid_data:
                latest[s.key] = s
        return list(latest.values())

    def _remote_participants(self) -> set[uuid.UUID]:
        """Participants discovered on the private domain other than the probe's (ever seen, alive or not)."""
        own = self.transport._participant.guid
        return {s.key for s in self._seen("participants")} - {own}

    def suite_participants(self) -> set[uuid.UUID]:
        """Participants of the suite on the private domain: this process's and the feeders' workers'.

        This process's are those that carry its process id (Cyclone's ``__Pid`` property) and host name
        (``__Hostname``) *and* the first four bytes of the probe's GUID, which Cyclone draws at random once
        per process and domain (so a module cannot pass for the suite by setting those properties); a
        feeder's is the participant its worker named in its ``ready`` event.
        """
        own = self.transport._participant.guid
        feeders = set()
        for proc in self._feeder_procs:
            with contextlib.suppress(ValueError):
                feeders.add(uuid.UUID(hex=proc.participant))
        pid, host = str(os.getpid()), _hostname()
        suite = {own, *feeders}
        for s in self._seen("participants"):
            props = _properties(s)
            if props.get("__Pid") == pid and props.get("__Hostname") == host and s.key.bytes[:4] == own.bytes[:4]:
                suite.add(s.key)
        return suite

    def module_participants(self) -> set[uuid.UUID]:
        """Every participant the module's processes created on the run's domain, at any time so far (CF-BUS-004).

        The domain is private to the run (its own id and discovery tag), so every participant on it that is
        not the suite's (:meth:`suite_participants`) is the module's: its worker's, a second one it made later,
        one of a process it started, one without a process id; alive or gone.
        """
        return {s.key for s in self._seen("participants")} - self.suite_participants()

    def participant_details(self, key: uuid.UUID) -> str:
        """How a participant shows in failure messages: its GUID and, where it says, its process."""
        for s in self._seen("participants"):
            if s.key == key:
                props = _properties(s)
                pid = props.get("__Pid", "?")
                name = props.get("__ProcessName", "?")
                which = " (the worker's participant at start)" if key == self.participant else ""
                worker = ", the module's worker" if pid == str(self.pid) else ""
                return f"participant {key}{which} of process {pid} ({name}{worker})"
        return f"participant {key}"

    def module_frames(self, frames: Iterable[Observed]) -> list[Observed]:
        """The frames the module wrote: those whose writer belongs to one of its participants (CF-HOST-004).

        Who wrote a frame is taken from DDS discovery, never from the source its header claims: a module that
        writes under a feeder's or the probe's name is still judged. A frame whose writer was gone before the
        probe could look it up falls back to its claimed source (any but the feeders' and the probe's).
        """
        mine = self.module_participants()
        others = {*self.feeders, PROBE_NAME}
        return [f for f in frames if (f.participant in mine if f.participant is not None else f.source not in others)]

    def wrote(self, identity: Any, source: str) -> bool:
        """Whether a frame a hardpoint reader received was the module's: by its writer's participant (a
        :class:`hardpoint.WriterIdentity`, or None once the writer is gone: then by its claimed ``source``)."""
        if identity is None:
            return source not in {*self.feeders, PROBE_NAME}
        return uuid.UUID(hex=identity.participant) in self.module_participants()

    def publications(self) -> list[Any]:
        """DDS writers of every participant of the module, at any time so far, alive or deleted.

        Each is a ``cyclonedds.builtin.DcpsEndpoint`` (key, participant key, topic, type, QoS).
        """
        mine = self.module_participants()
        return [s for s in self._seen("publications") if s.participant_key in mine]

    def subscriptions(self) -> list[Any]:
        """DDS readers of every participant of the module, at any time so far, alive or deleted."""
        mine = self.module_participants()
        return [s for s in self._seen("subscriptions") if s.participant_key in mine]

    # -- the worker ----------------------------------------------------------------

    def _spec(self, located: _Located, config: Mapping[str, Any], adapters: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "module": located.name,
            "entry_point": located.entry_point,
            "paths": located.paths,
            "domain_id": self.domain_id,
            "dds_config": self.dds_config,
            "node": "conformance",
            "config": dict(config),
            "adapters": dict(adapters),
            "health_period_s": self.health_period_s,
        }

    def _spawn(self, located: _Located, spec: dict[str, Any], log: Path) -> ModuleProcess:
        from hardpoint_runtime._process import ModuleProcess, WorkerError

        proc = ModuleProcess(located.name, spec, log)
        try:
            proc.start(timeout_s=START_TIMEOUT_S)
        except WorkerError as e:
            raise HarnessError(f"module {located.name!r} did not load in the worker: {e}\n{_tail(log, 40)}") from e
        return proc

    def start(self, *, config: Mapping[str, Any] | None = None) -> None:
        """Start the feeders (active) and the module's worker (loaded, UNCONFIGURED).

        :param config: the module's configuration for this worker only (default: the host's).

        :raises HarnessError: a worker did not load, or a feeder did not become active; the cause and log tail.
        """
        if self.process is not None and self.process.exit_code() is None:
            raise HarnessError(f"module {self.name!r} is already running")
        self._watch_discovery()
        if self.tap is None:
            self.tap = Tap(self, self.manifest.provides)
        if not self._feeder_procs and self.feeders:
            self._start_feeders()
            # Every feeder must be discovered before the module starts, or it would be taken for the module.
            wait_until(lambda: len(self._remote_participants()) >= len(self._feeder_procs), DISCOVERY_TIMEOUT_S)
        before = self._remote_participants()
        self._runs += 1
        log = self.workdir / "logs" / f"{self.name}-{self._runs}.log"
        run_config = self.config if config is None else _fill(dict(config), self.workdir)
        self.process = self._spawn(self._located, self._spec(self._located, run_config, self.adapters), log)
        new = wait_until(lambda: self._remote_participants() - before, DISCOVERY_TIMEOUT_S)
        self.participant = next(iter(new)) if len(new) == 1 else None

    def _start_feeders(self) -> None:
        def launch(name: str) -> ModuleProcess:
            located = _locate(name, self.workdir)
            feeder_manifest = _manifest(located)
            adapters = default_adapters(feeder_manifest.adapters, self.start_ns)
            config = _fill(dict(DEFAULT_CONFIG.get(name, {})), self.workdir)
            log = self.workdir / "logs" / f"feeder-{name}.log"
            return self._spawn(located, self._spec(located, config, adapters), log)

        # Imports dominate start-up, so workers load in parallel; they go active in provider order.
        with ThreadPoolExecutor(max_workers=len(self.feeders), thread_name_prefix="feeder") as pool:
            futures = [pool.submit(launch, name) for name in self.feeders]
            errors: list[BaseException] = []
            for future in futures:
                try:
                    self._feeder_procs.append(future.result())
                except HarnessError as e:
                    errors.append(e)
        if errors:
            raise HarnessError(f"module {self.name!r}: a feeder of its required interfaces failed: {errors[0]}")
        for proc in self._feeder_procs:
            for step in ("configure", "activate"):
                reply = self._request(proc, step)
                if not reply.get("ok") or reply.get("state") not in ("inactive", "active"):
                    raise HarnessError(
                        f"module {self.name!r}: feeder {proc.name!r} did not {step}: {reply.get('error') or reply}\n"
                        f"{_tail(proc.log_path, 20)}"
                    )

    @staticmethod
    def _request(proc: ModuleProcess, transition: str, timeout_s: float = TRANSITION_TIMEOUT_S) -> dict[str, Any]:
        from hardpoint_runtime._process import WorkerError

        try:
            reply = proc.request("transition", transition=transition, timeout_s=timeout_s)
        except WorkerError as e:
            return {"ok": False, "state": "", "error": str(e)}
        return {"ok": bool(reply.get("ok")), "state": str(reply.get("state", "")), "error": str(reply.get("error", ""))}

    def _running(self) -> ModuleProcess:
        if self.process is None:
            raise HarnessError(f"module {self.name!r} is not started")
        return self.process

    def transition(self, name: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """Ask the worker for one lifecycle transition: ``{"ok": bool, "state": str, "error": str}``.

        ``ok`` false with an error for a transition the state does not allow (the state is then
        the unchanged one); ``state`` empty when the worker is gone or did not answer within ``timeout_s``
        (default :attr:`transition_timeout_s`; a worker that did not answer in time may still be running
        the hook: :meth:`kill` it).
        """
        return self._request(self._running(), name, self.transition_timeout_s if timeout_s is None else timeout_s)

    def status(self) -> dict[str, Any]:
        """The worker's current state, without changing it: ``{"ok", "state", "error"}``."""
        from hardpoint_runtime._process import WorkerError

        try:
            reply = self._running().request("status", timeout_s=TRANSITION_TIMEOUT_S)
        except WorkerError as e:
            return {"ok": False, "state": "", "error": str(e)}
        return {"ok": bool(reply.get("ok")), "state": str(reply.get("state", "")), "error": str(reply.get("error", ""))}

    def activate(self) -> None:
        """Configure and activate (starting the worker first if needed).

        :raises HarnessError: a step was refused or failed; the message has the worker's error and log tail.
        """
        if self.process is None or self.process.exit_code() is not None:
            self.start()
        self.activated_at = 0.0
        for step, want in (("configure", "inactive"), ("activate", "active")):
            reply = self.transition(step)
            if not reply["ok"] or reply["state"] != want:
                raise HarnessError(
                    f"module {self.name!r}: {step} ended in state {reply['state'] or '<no answer>'!r}, not {want!r}"
                    f"{': ' + reply['error'] if reply['error'] else ''}\n{self.log_tail(20)}"
                )
        self.activated_at = time.monotonic()

    def stop(self) -> int | None:
        """Stop the module's worker in order (killed if it does not exit in time); its exit code."""
        if self.process is None:
            return None
        self.process.stop(timeout_s=STOP_TIMEOUT_S)
        return self.process.exit_code()

    def kill(self) -> None:
        """SIGKILL the module's worker now (one stuck in a hook would not stop in order); feeders keep running."""
        if self.process is not None:
            self.process.kill()

    def restart(self, *, config: Mapping[str, Any] | None = None) -> None:
        """Stop the worker and start a fresh one (UNCONFIGURED), optionally with another configuration.

        Feeders keep running.
        """
        self.stop()
        self.process = None
        self.start(config=config)

    def tap_of(self, interfaces: Iterable[str]) -> Tap:
        """A new raw tap of ``interfaces`` (closed by the caller, or with the probe)."""
        return Tap(self, interfaces)

    def alive(self) -> bool:
        return self.process is not None and self.process.exit_code() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.exit_code()

    @property
    def pid(self) -> int:
        return 0 if self.process is None else self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` of the worker's stderr/log (for failure messages)."""
        if self.process is None:
            return ""
        return _tail(self.process.log_path, lines)

    def close(self) -> None:
        """Stop the worker and the feeders, close the probe, give back the domain id; safe to call twice."""
        procs = [p for p in (self.process, *self._feeder_procs) if p is not None]
        with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
            list(pool.map(lambda p: p.stop(timeout_s=STOP_TIMEOUT_S), procs))
        self._feeder_procs = []
        if self.tap is not None:
            self.tap.close()
            self.tap = None
        self._builtin_readers = {}
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
            self._transport = None
            self._probe = None
        self._release()

    def _release(self) -> None:
        if self._own_domain:
            release_domain_id(self.domain_id)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> HostedModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _properties(sample: Any) -> dict[str, str]:
    """The properties (Cyclone's ``__Pid``, ``__Hostname``, ``__ProcessName``, ...) of a discovered participant."""
    out: dict[str, str] = {}
    for policy in sample.qos:
        key, value = getattr(policy, "key", None), getattr(policy, "value", None)
        if isinstance(key, str) and isinstance(value, str):
            out.setdefault(key, value)
    return out


def _hostname() -> str:
    """This host's name as Cyclone puts it in ``__Hostname``."""
    import socket

    return socket.gethostname()


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- {path.name} (last {lines} lines) ---\n{tail}" if tail else ""


# --------------------------------------------------------------------------- raw frames


@dataclass(frozen=True, slots=True)
class Observed:
    """One bus sample as it arrived at the probe: the raw envelope, undecoded and unchecked."""

    #: ``time.monotonic()`` when the probe took it (within :data:`TAP_POLL_S` of its arrival).
    at: float
    topic: str
    key: str
    source: str
    epoch: int
    seq: int
    count: int
    stamp_ns: int
    interface: str
    schema_id: str
    payload: bytes
    #: DDS source timestamp (the writer's clock when it wrote, ns since the epoch): rates are judged on it,
    #: so a probe that is slow to take samples on a loaded machine does not make gaps of its own.
    written_ns: int = 0
    #: GUID of the DDS participant whose writer wrote it (from discovery; who wrote it, whatever the header
    #: claims), or None when its writer was gone before the probe could look it up.
    participant: uuid.UUID | None = None


#: How often the tap takes what its readers hold.
TAP_POLL_S: Final = 0.02


class Tap:
    """Records every raw frame on the topics of ``interfaces`` (any writer), from creation on.

    The readers are best effort and volatile so that they match any writer, whatever QoS it
    offers: a writer with the wrong QoS is still observed (and reported by the QoS check),
    rather than silently unmatched. They are plain DDS readers on the probe's participant,
    polled by a thread, so that each sample keeps its DDS source timestamp; the SDK's receive
    checks are bypassed: the conformance checks judge the header themselves.
    """

    def __init__(self, host: HostedModule, interfaces: Iterable[str]) -> None:
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        import hardpoint
        from hardpoint._contracts import QosClass
        from hardpoint._dds._envelope import Envelope, KeyedEnvelope
        from hardpoint._dds._qos import reader_qos
        from hardpoint._transport import Channel

        specs = hardpoint.all_interfaces()
        participant = host.transport._participant
        self._lock = threading.Lock()
        self._taking = threading.Lock()
        self._frames: list[Observed] = []
        self._readers: list[tuple[str, Any]] = []
        #: Participant of each writer by (topic, publication handle), looked up once per writer.
        self._writers: dict[tuple[str, int], uuid.UUID | None] = {}
        self._topics: list[Any] = []
        for name in interfaces:
            spec = specs.get(name)
            if spec is None:
                continue  # not in the interface set: the manifest checks say so
            channel = Channel(spec.topic, QosClass.STREAM, spec.keyed, 256, spec.name, spec.schema_id, PROBE_NAME)
            topic = Topic(participant, spec.topic, KeyedEnvelope if spec.keyed else Envelope)
            self._topics.append(topic)
            self._readers.append((spec.topic, DataReader(participant, topic, qos=reader_qos(channel))))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="conformance-tap", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(TAP_POLL_S):
            self.take()

    def take(self) -> None:
        """Move what the readers hold into the record now (the poll thread does it every few ms)."""
        # One taker at a time: two interleaved takes could record a writer's samples out of order.
        with self._taking:
            self._take()

    def _take(self) -> None:
        from cyclonedds.core import DDSException

        got: list[Observed] = []
        with self._lock:
            readers = list(self._readers)
        for topic, reader in readers:
            try:
                samples = reader.take(N=256)
            except DDSException:  # closed under us
                continue
            now = time.monotonic()
            for f in samples:
                if not f.sample_info.valid_data:
                    continue
                writer = self._participant_of(topic, reader, int(f.sample_info.publication_handle))
                got.append(
                    Observed(now, topic, f.key, f.source, int(f.epoch), int(f.seq), int(f.count), int(f.stamp_ns),
                             f.interface, f.schema_id, bytes(f.payload), int(f.sample_info.source_timestamp), writer)
                )  # fmt: skip
        if got:
            with self._lock:
                self._frames.extend(got)

    def _participant_of(self, topic: str, reader: Any, handle: int) -> uuid.UUID | None:
        """The participant of the writer behind ``handle`` (matched to ``reader``), from discovery."""
        from cyclonedds.core import DDSException

        key = (topic, handle)
        if key not in self._writers:
            try:
                endpoint = reader.get_matched_publication_data(handle)
            except DDSException:  # unmatched already (the writer is gone)
                endpoint = None
            found = getattr(endpoint, "participant_key", None)
            if found is None:
                return None  # not remembered: a later sample of a writer seen late may still resolve it
            self._writers[key] = found
        return self._writers[key]

    def frames(self, *, topic: str | None = None, since: float = 0.0) -> list[Observed]:
        """Frames recorded so far (of one topic, taken at or after ``since``), in arrival order."""
        self.take()
        with self._lock:
            return [f for f in self._frames if (topic is None or f.topic == topic) and f.at >= since]

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with self._taking, self._lock:
            readers, self._readers = self._readers, []
            topics, self._topics = self._topics, []
        for entity in [r for _, r in readers] + topics:
            with contextlib.suppress(Exception):
                entity.__del__()  # delete now; cyclonedds-python would otherwise wait for the collector
