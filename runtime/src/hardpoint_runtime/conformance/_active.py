"""The module under test active over one observation window, watched from outside: what it wrote and what it used.

Shared by :mod:`.checks_time` (the time of validity of every sample, CF-TIME) and :mod:`.checks_resources`
(memory, threads and open files of its process, CF-RES): both judge one :class:`ActiveRun`, made once per
pytest session by the fixture :func:`active_run` (a check module imports it; pytest makes one fixture per
importing module, so the run itself is kept in the session's stash and made by whichever asks first).

The module is hosted as for the contract checks (:class:`~._harness.HostedModule`: its own worker on a
private domain, its feeders, ``--hardpoint-config``), activated, and watched over the window of CF-BUS-001
(from activation, judged from :data:`~.checks_contract.SETTLE_S` after it for
:func:`~.checks_contract.window_s`), with the task requests and cancels of CF-BUS-006 for a module that
answers tasks. Meanwhile its process (and any process it started) is sampled from ``/proc`` every
:data:`SAMPLE_EVERY_S`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from hardpoint_runtime.conformance._harness import PROBE_NAME, HarnessError, HostedModule, Observed

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec, Manifest

__all__ = [
    "SAMPLE_EVERY_S",
    "ActiveRun",
    "ResourceSample",
    "active_run",
    "observe",
    "process_tree",
    "sample_resources",
]

#: How often the module's process is sampled during the window (s).
SAMPLE_EVERY_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """What the module's process tree held at one moment (``/proc/<pid>/status`` and ``/proc/<pid>/fd``)."""

    #: ``time.monotonic()`` of the sample.
    at: float
    #: Resident set size (``VmRSS``) summed over the process and its descendants, KiB.
    rss_kib: int
    #: Threads (``Threads``) summed over the tree.
    threads: int
    #: Open file descriptors (entries of ``/proc/<pid>/fd``) summed over the tree.
    fds: int
    #: Processes in the tree (1: the module's worker alone).
    processes: int


@dataclass
class ActiveRun:
    """What was seen of the module while it was active over one window."""

    name: str
    manifest: Manifest
    #: The worker's process id.
    pid: int
    #: Provided interfaces of the interface set, by name.
    specs: dict[str, InterfaceSpec]
    #: The module's frames (not the feeders', not the probe's) by provided interface, from before activation on.
    frames: dict[str, list[Observed]]
    #: Samples of the module's process from activation to the end of the window, in time order.
    resources: list[ResourceSample]
    #: ``time.monotonic()`` of activation, and the judged window.
    activated_at: float
    start: float
    end: float
    #: The worker's exit code when it ended before the window did (None: it lived through it).
    exit_code: int | None = None
    log_tail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def window_s(self) -> float:
        return self.end - self.start


# --------------------------------------------------------------------------- /proc


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from ``/proc/<pid>/task/*/children``, else a scan of ``/proc/*/stat``)."""
    kids: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    try:
        listed = [tasks / tid / "children" for tid in os.listdir(tasks)]
        if listed and listed[0].exists():
            for path in listed:
                try:
                    kids += [int(k) for k in path.read_text().split()]
                except OSError:
                    continue
            return kids
    except OSError:
        return []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it (``pid`` first); empty when ``pid`` is gone."""
    if not Path(f"/proc/{pid}").exists():
        return []
    tree, todo = [pid], [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in tree:
                tree.append(child)
                todo.append(child)
    return tree


def _status(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(value.split()[0])
    return values


def sample_resources(pid: int) -> ResourceSample | None:
    """One sample of ``pid``'s process tree; None when the process is gone (or ``/proc`` cannot be read)."""
    at = time.monotonic()
    rss = threads = fds = processes = 0
    for i, member in enumerate(process_tree(pid)):
        try:
            status = _status(member)
            open_fds = len(os.listdir(f"/proc/{member}/fd"))
        except (OSError, ValueError):
            if i == 0:
                return None  # the module's own process is gone
            continue  # a child that ended meanwhile
        rss += status.get("VmRSS", 0)  # a zombie has none
        threads += status.get("Threads", 0)
        fds += open_fds
        processes += 1
    if processes == 0:
        return None
    return ResourceSample(at, rss, threads, fds, processes)


# --------------------------------------------------------------------------- the window


def observe(host: HostedModule) -> ActiveRun:
    """Watch the active ``host`` until the end of the window of CF-BUS-001 and return what was seen."""
    import hardpoint
    from hardpoint_runtime.conformance.checks_contract import PROVOKE_EVERY_S, SETTLE_S, _task_provoker, window_s

    all_specs = hardpoint.all_interfaces()
    specs = {name: all_specs[name] for name in host.manifest.provides if name in all_specs}
    start = host.activated_at + SETTLE_S
    end = start + window_s(specs.values())
    provoke = _task_provoker(host)
    next_provoke = time.monotonic()
    samples: list[ResourceSample] = []
    exit_code: int | None = None
    while True:
        now = time.monotonic()
        sample = sample_resources(host.pid)
        if sample is None:
            exit_code = host.exit_code()
            break
        samples.append(sample)
        if now >= end:
            break
        if provoke is not None and now >= next_provoke:
            provoke()
            next_provoke = now + PROVOKE_EVERY_S
        time.sleep(min(SAMPLE_EVERY_S, max(0.0, end - now)))
    feeders = {*host.feeders, PROBE_NAME}
    assert host.tap is not None
    frames = {
        name: [f for f in host.tap.frames(topic=spec.topic) if f.source not in feeders] for name, spec in specs.items()
    }
    return ActiveRun(
        name=host.name,
        manifest=host.manifest,
        pid=host.pid,
        specs=specs,
        frames=frames,
        resources=samples,
        activated_at=host.activated_at,
        start=start,
        end=end,
        exit_code=exit_code,
        log_tail=host.log_tail(20) if exit_code is not None else "",
    )


# --------------------------------------------------------------------------- the fixture

#: The session's run (or why there is none), shared by every check module that imports :func:`active_run`.
_RUN: Final = pytest.StashKey["ActiveRun | str"]()
_HOST: Final = pytest.StashKey[HostedModule]()


def _options(config: pytest.Config) -> Mapping[str, Any]:
    from hardpoint_runtime.conformance._fixtures import load_options

    path = config.getoption("hardpoint_config", None)
    return {} if path is None else load_options(Path(path))


def _make(config: pytest.Config, module: str) -> ActiveRun | str:
    try:
        host = HostedModule(module, **_options(config))
    except HarnessError as e:
        return str(e)
    try:
        host.probe  # noqa: B018 - the probe joins before the module publishes anything
        host.activate()
    except HarnessError as e:
        host.close()
        return str(e)
    config.stash[_HOST] = host
    try:
        return observe(host)
    except BaseException:
        del config.stash[_HOST]
        host.close()
        raise


@pytest.fixture(scope="session")
def active_run(request: pytest.FixtureRequest) -> Iterator[ActiveRun]:
    """The module under test, active over one window, with its samples and its process's resources.

    Made once per session, whichever check module asks first; the module is stopped at the end of the session.
    """
    config = request.config
    module = config.getoption("hardpoint_module", None)
    if module is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    if _RUN not in config.stash:
        config.stash[_RUN] = _make(config, str(module))
    run = config.stash[_RUN]
    if isinstance(run, str):
        pytest.fail(run, pytrace=False)
    yield run
    host = config.stash.get(_HOST, None)
    if host is not None:  # every session fixture ends with the session: the first to end closes the host
        host.close()
        del config.stash[_HOST]
