"""Runtime integration tests: a real hardpointd, real module processes, the real ``hardpoint`` CLI.

A :class:`Platform` is one platform folder of a test: it writes
``platform.toml``, starts ``hardpointd`` on it (in its own session), waits
until the management socket answers, runs ``hardpoint ... --json`` as a
subprocess and parses what it prints, and at the end stops the daemon
(SIGTERM, then SIGKILL) and kills any module process of its DDS domain that
is left over, even when the test failed.

Every platform has a DDS domain id (1..230) that no other holder uses at the
same time on this machine: a lock file per id, in the same folder as the
other integration harness (``tests/integration/_procs/harness.py``), so the
two suites never share a domain. Module processes are told apart by the
domain id in their command line (the worker's JSON spec).

The test files import these helpers as ``hp_runtime_it``: every ``conftest.py``
of the repository is a top-level module named ``conftest``, and pytest swaps
them in ``sys.modules`` as it collects folders, so ``from conftest import``
could pick another folder's.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

T = TypeVar("T")

_BIN = Path(sys.executable).parent
#: ``hardpointd`` and ``hardpoint`` of the environment running the tests (their console scripts when installed).
HARDPOINTD = (
    [str(_BIN / "hardpointd")]
    if (_BIN / "hardpointd").exists()
    else [sys.executable, "-m", "hardpoint_runtime._daemon"]
)
HARDPOINT = (
    [str(_BIN / "hardpoint")] if (_BIN / "hardpoint").exists() else [sys.executable, "-m", "hardpoint_runtime.cli"]
)
#: Domain ids handed out (Cyclone's default port mapping allows 0..232).
DOMAIN_IDS = range(1, 231)
#: How long a daemon may take from start to answering on its socket (it starts every module first).
START_TIMEOUT_S = 90.0
#: How long a daemon may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 20.0

_counter = itertools.count()


# --------------------------------------------------------------------------- DDS domains


@dataclass
class Domain:
    """A DDS domain id held (by a lock file) for the life of one platform."""

    id: int
    _lock: IO[str] | None = field(default=None, repr=False)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def allocate_domain() -> Domain:
    """A domain id that no other user of the shared lock folder holds right now."""
    lock_dir = Path(tempfile.gettempdir()) / "hardpoint-it-domains"
    lock_dir.mkdir(exist_ok=True)
    start = os.getpid() * 37 + next(_counter) * 7 + 3
    for i in range(len(DOMAIN_IDS)):
        domain_id = DOMAIN_IDS[(start + i) % len(DOMAIN_IDS)]
        lock = open(lock_dir / f"{domain_id}.lock", "w")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return Domain(domain_id, lock)
    raise RuntimeError("every DDS domain id of the integration tests is in use on this machine")


# --------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(domain_id: int) -> list[int]:
    """Live module worker processes of ``domain_id`` (found by the spec in their command line), any parent."""
    marker = f'"domain_id": {domain_id},'
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid <= 0 or pid == os.getpid():
            continue
        line = _cmdline(pid)
        if "hardpoint_runtime._worker" in line and marker in line and not _is_zombie(pid):
            found.append(pid)
    return sorted(found)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal one process by its own id; refuses 0 and negative ids (those signal whole process groups)."""
    assert isinstance(pid, int), pid
    assert pid > 0, f"refusing to signal pid {pid}: 0 and negative ids mean process groups"
    assert pid != os.getpid(), "refusing to signal the test process itself"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_until(
    probe: Callable[[], T],
    accept: Callable[[T], Any] = bool,
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    context: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until ``accept`` says yes to its value, and return that value.

    :raises AssertionError: not within ``timeout`` seconds; the message shows the last value
        and, when given, ``context()`` (for example the daemon's log).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            shown = json.dumps(value, indent=1, default=str)[-3000:] if value is not None else "None"
            extra = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last value:\n{shown}{extra}")
        time.sleep(interval)


# --------------------------------------------------------------------------- configuration text


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string for the text used here
    raise TypeError(f"no TOML for {value!r}")


@dataclass(frozen=True)
class Mod:
    """One ``[[modules]]`` entry."""

    name: str
    version: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)

    def toml(self) -> str:
        lines = ["[[modules]]", f"name = {_toml_value(self.name)}"]
        if self.version:
            lines.append(f"version = {_toml_value(self.version)}")
        if self.config:
            lines.append("[modules.config]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in self.config.items())
        return "\n".join(lines) + "\n"


#: A fast supervision policy for tests: restart quickly. The heartbeat deadline is generous (5 s)
#: so that a machine starved of CPU by other work does not make healthy modules look hung; the
#: hang test sets its own, short deadline.
FAST_SUPERVISION: Mapping[str, Any] = {
    "restart_intensity": 3,
    "restart_period_s": 60.0,
    "backoff_initial_s": 0.2,
    "backoff_max_s": 1.0,
    "heartbeat_deadline_s": 5.0,
    "stop_timeout_s": 3.0,
}


def platform_toml(
    name: str,
    domain_id: int,
    modules: Sequence[Mod | str],
    *,
    supervision: Mapping[str, Any] = FAST_SUPERVISION,
) -> str:
    """A complete platform configuration: node ``main``, state in ``state/``, the given modules."""
    parts = [
        'node = "main"\n',
        "[platform]\n",
        f"name = {_toml_value(name)}\n",
        f"domain_id = {domain_id}\n",
        'state_dir = "state"\n',
        "\n[supervision]\n",
        *(f"{k} = {_toml_value(v)}\n" for k, v in supervision.items()),
    ]
    for m in modules:
        parts.append("\n" + (m if isinstance(m, Mod) else Mod(m)).toml())
    return "".join(parts)


# --------------------------------------------------------------------------- the platform


class CliError(AssertionError):
    """``hardpoint`` exited with an error."""


class Platform:
    """One platform folder: its configuration, its daemon, its CLI."""

    def __init__(self, root: Path, domain: Domain, name: str = "it") -> None:
        self.root = root
        self.domain = domain
        self.name = name
        self.config_path = root / "platform.toml"
        self.state_dir = root / "state"
        self.socket = self.state_dir / "hardpointd.sock"
        self.daemon: subprocess.Popen[bytes] | None = None
        self.stdout_path = root / "hardpointd.stdout"
        self.stderr_path = root / "hardpointd.stderr"

    @property
    def domain_id(self) -> int:
        return self.domain.id

    # -- configuration ------------------------------------------------------------------

    def write(self, modules: Sequence[Mod | str], *, supervision: Mapping[str, Any] = FAST_SUPERVISION) -> Path:
        """Write ``platform.toml`` for this platform's domain with ``modules``."""
        return self.write_text(platform_toml(self.name, self.domain_id, modules, supervision=supervision))

    def write_text(self, text: str) -> Path:
        self.config_path.write_text(text, encoding="utf-8")
        return self.config_path

    # -- the daemon ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PYTHONUNBUFFERED="1", NO_COLOR="1", TERM="dumb", COLUMNS="200")
        env.pop("HARDPOINT_SOCKET", None)
        env.pop("HARDPOINT_TCP", None)
        return env

    def start(self, *, timeout: float = START_TIMEOUT_S) -> None:
        """Start hardpointd on ``platform.toml`` and wait until its management API answers."""
        assert self.daemon is None, "daemon already started"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.daemon = subprocess.Popen(
                [*HARDPOINTD, "platform.toml"],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self._env(),
                start_new_session=True,  # signals to the test's process group never reach it
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self.daemon.poll()
            if code is not None:
                raise AssertionError(f"hardpointd exited with code {code} before answering\n{self.log_tail()}")
            if self.socket.exists() and self.cli_ok("status"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"hardpointd did not answer within {timeout:g} s\n{self.log_tail()}")
            time.sleep(0.2)

    def run_daemon(self, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run hardpointd on ``platform.toml`` expecting it to refuse: returns its exit code and output.

        If it is still running after ``timeout`` seconds (it accepted the configuration), it is
        stopped and the test fails.
        """
        proc = subprocess.Popen(
            [*HARDPOINTD, "platform.toml"],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._env(),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._end(proc)
            out, err = proc.communicate()
            raise AssertionError(f"hardpointd accepted the configuration and kept running\n{err[-4000:]}") from None
        finally:
            self._end(proc)  # interrupted: never leave it running
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    @staticmethod
    def _end(proc: subprocess.Popen[Any]) -> int | None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`."""
        if proc.poll() is None:
            kill_pid(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                kill_pid(proc.pid, signal.SIGKILL)
                proc.wait(10)
        return proc.returncode

    def stop(self) -> int | None:
        """Stop the daemon (it stops its modules); returns its exit code."""
        if self.daemon is None:
            return None
        return self._end(self.daemon)

    def close(self) -> None:
        """Stop the daemon, kill leftover module processes of this domain, release the domain."""
        try:
            self.stop()
        finally:
            try:
                for pid in worker_pids(self.domain_id):
                    kill_pid(pid)
            finally:
                self.domain.release()

    def log_tail(self, n: int = 6000) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no hardpointd log)"
        return f"--- hardpointd stderr (tail) ---\n{text[-n:]}"

    # -- the CLI ------------------------------------------------------------------------

    def cli_run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``hardpoint --socket SOCKET ARGS...`` as a subprocess."""
        return subprocess.run(
            [*HARDPOINT, "--socket", str(self.socket), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._env(),
            check=False,
        )

    def cli_ok(self, *args: str) -> bool:
        try:
            return self.cli_run(*args, timeout=15.0).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def cli(self, *args: str, timeout: float = 30.0) -> Any:
        """``hardpoint ARGS... --json``, parsed; fails the test on a non-zero exit."""
        result = self.cli_run(*args, "--json", timeout=timeout)
        if result.returncode != 0:
            raise CliError(f"hardpoint {' '.join(args)} --json: exit {result.returncode}: {result.stderr.strip()}")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise CliError(f"hardpoint {' '.join(args)} --json printed no JSON ({e}): {result.stdout!r}") from None

    def try_cli(self, *args: str) -> Any:
        """Like :meth:`cli`, but None instead of failing (for polling)."""
        try:
            return self.cli(*args)
        except (CliError, subprocess.TimeoutExpired):
            return None

    def status(self) -> dict[str, Any]:
        return dict(self.cli("status"))

    def module(self, name: str) -> dict[str, Any]:
        return dict(self.cli("module", "show", name))

    def modules(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self.cli("modules")}

    def topics(self) -> dict[str, dict[str, Any]]:
        return {t["topic"]: t for t in self.cli("topics")}

    def events(self, kind: str | None = None, module: str | None = None) -> list[dict[str, Any]]:
        found = self.cli("events")
        return [e for e in found if (kind is None or e["kind"] == kind) and (module is None or e["module"] == module)]

    def wait(self, probe: Callable[[], T], accept: Callable[[T], Any] = bool, *, timeout: float, what: str) -> T:
        """:func:`wait_until` with the daemon's log in the failure message."""
        return wait_until(probe, accept, timeout=timeout, what=what, interval=0.1, context=self.log_tail)

    def wait_module(
        self, name: str, accept: Callable[[dict[str, Any]], Any], *, timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll ``hardpoint module show NAME --json`` until ``accept`` says yes."""
        return self.wait(lambda: self.try_cli("module", "show", name), lambda m: m is not None and accept(m),
                         timeout=timeout, what=f"{name}: {what}")  # fmt: skip

    def wait_active(self, names: Sequence[str], *, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Poll ``hardpoint modules --json`` until every module of ``names`` is active; returns them by name."""

        def probe() -> dict[str, dict[str, Any]] | None:
            found = self.try_cli("modules")
            return None if found is None else {m["name"]: m for m in found}

        def all_active(mods: dict[str, dict[str, Any]] | None) -> bool:
            return mods is not None and all(n in mods and mods[n]["state"] == "active" for n in names)

        mods = self.wait(probe, all_active, timeout=timeout, what=f"{', '.join(names)} all active")
        assert mods is not None
        return mods

    def kill_module(self, name: str) -> int:
        """SIGKILL the process of module ``name`` (checked to be a worker of this platform); returns its pid."""
        pid = int(self.module(name)["pid"])
        assert pid > 0, f"module {name} has no process (pid {pid})"
        line = _cmdline(pid)
        assert pid in worker_pids(self.domain_id), f"pid {pid} is not a worker of this platform: {line[:300]!r}"
        kill_pid(pid, signal.SIGKILL)
        return pid


@contextlib.contextmanager
def open_platform(root: Path, name: str = "it") -> Iterator[Platform]:
    """A :class:`Platform` in ``root`` with its own domain; closed (daemon and workers ended) on exit."""
    platform = Platform(root, allocate_domain(), name)
    try:
        yield platform
    finally:
        platform.close()


@pytest.fixture
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A fresh platform folder (short path: the socket path must stay under 108 bytes) for one test."""
    with open_platform(tmp_path_factory.mktemp("hp")) as p:
        yield p


# The test files import the helpers above under this unique name (see the module docstring).
sys.modules.setdefault("hp_runtime_it", sys.modules[__name__])


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and item.get_closest_marker("integration") is None:
            raise pytest.UsageError(f"{item.nodeid} is not marked integration")
