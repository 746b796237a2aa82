"""Start-up benchmark of hardpointd: daemon start to every module active, and resident memory.

    python bench/startup.py --json               # 1, 10 and 50 modules, 3 runs each (~3 min)
    python bench/startup.py --quick --json       # 1 and 10 modules, one run each (~15 s)
    python bench/startup.py --counts 1,10 --json
    python bench/startup.py                      # a table instead of JSON
    python bench/startup.py --parallel-probe     # also: the same workers started in parallel

For each count N, a platform of N trivial modules (``trivial-1`` .. ``trivial-N``
from ``tests/fixtures/testmods``: the ``Trivial`` module, which does nothing but
beat, under N unique names) is written into a fresh temporary folder and
``hardpointd`` is started on it, in a DDS domain of its own (a lock file per
domain id, shared with the integration tests, so that concurrent runs never
share one). The clock starts just before the daemon's process is spawned and
stops at the first ``ListModules`` answer, polled every 20 ms over the
management socket, in which every module is ``active`` (today hardpointd opens
its management socket only after it has started every module, so the first
answer comes just after the last activation).

Then the resident memory (``VmRSS`` of ``/proc/PID/status``) of the daemon and
of every process it started is summed (``rss_mb``). Resident sizes count the
pages that processes share (the Python interpreter, shared libraries) once per
process, so the proportional set size (``Pss`` of ``/proc/PID/smaps_rollup``,
shared pages divided among their users) is reported beside it (``pss_mb``).
The daemon is then stopped with SIGTERM and waited for (``stop_s``).

Where the time goes is read from the daemon's own event log (``daemon_started``,
``module_started`` when a worker has loaded its module, ``state_changed`` per
transition, stamped by the daemon): ``boot_s`` (imports, manifest inspection in a
subprocess, resolution, the daemon's DDS participant), ``launch_s`` (starting the
workers: interpreter, imports, DDS participant), ``drive_s`` (the lifecycle
transitions after the last worker is up), ``transitions_s`` (per module) and
``serve_s`` (last activation to the first answer): see :func:`breakdown`.
``baseline`` times the pieces on their own, outside the daemon (a bare
interpreter, a worker's imports, with Cyclone DDS and a participant, the
daemon's imports, the manifest inspection), to split ``boot_s`` and ``launch_s``.
With ``--parallel-probe``, ``parallel_probe`` starts the same workers without
the daemon, 1, CPU-count and N at a time, and drives them to active, to compare
with the daemon's own launch (``LAUNCH_PARALLELISM`` workers at a time).

Prints one JSON object: ``start_s`` and ``rss_mb`` by count (medians of the
runs), ``pss_mb``, ``daemon_rss_mb``, ``stop_s``, ``breakdown`` by count,
``rss_per_module_mb`` and ``pss_per_module_mb`` (median worker), ``worker_cpu_s``
(median CPU time a worker used up to the measurement), ``daemon_cpu_s`` by count,
``start_per_module_s`` and ``rss_growth_mb_per_module`` (least-squares slopes over
every run), ``runs`` (every run), ``baseline``, ``env`` (with the load average).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

COUNTS = (1, 10, 50)
QUICK_COUNTS = (1, 10)
#: DDS domain ids handed out; the lock files are shared with tests/integration (same folder, same range).
DOMAIN_IDS = range(1, 231)
DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "hardpoint-it-domains"
POLL_S = 0.02
#: Give up on a start after this long (a hang guard, not a target).
START_LIMIT_S = 300.0
STOP_LIMIT_S = 120.0
MODULE_GROUP = "hardpoint.modules"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment


def installed_copies() -> int:
    """How many consecutive ``trivial-N`` entry points are installed."""
    names = {ep.name for ep in metadata.entry_points(group=MODULE_GROUP)}
    n = 0
    while f"trivial-{n + 1}" in names:
        n += 1
    return n


def daemon_argv() -> list[str]:
    """``hardpointd`` of this interpreter's environment (its console script, else the module's main)."""
    script = Path(sys.executable).parent / "hardpointd"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("hardpointd")
    if found is not None:
        return [found]
    return [sys.executable, "-c", "import sys; from hardpoint_runtime._daemon import main; sys.exit(main())"]


class Domain:
    """A DDS domain id that no other holder of the shared lock folder uses while we hold it."""

    def __init__(self) -> None:
        DOMAIN_LOCKS.mkdir(exist_ok=True)
        start = (os.getpid() * 37 + time.monotonic_ns()) % len(DOMAIN_IDS)
        for i in range(len(DOMAIN_IDS)):
            domain_id = DOMAIN_IDS[(start + i) % len(DOMAIN_IDS)]
            lock = (DOMAIN_LOCKS / f"{domain_id}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self.id, self._lock = domain_id, lock
            return
        raise RuntimeError(f"every DDS domain id in {DOMAIN_LOCKS} is held by another run")

    def release(self) -> None:
        self._lock.close()


# --------------------------------------------------------------------------- /proc


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def rss_kb(pid: int) -> int | None:
    """Resident set size (VmRSS) in KiB, or None when the process is gone."""
    return _status_kb(pid, "VmRSS")


def pss_kb(pid: int) -> int | None:
    """Proportional set size in KiB (shared pages divided among their users), or None when not readable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (by parent pid; workers run in their own session, not group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command may contain spaces and parentheses
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds the process has used so far, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def mb(kib: float) -> float:
    return round(kib / 1024, 1)


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One start of the daemon with ``count`` modules."""

    count: int
    domain_id: int
    start_s: float = 0.0
    stop_s: float = 0.0
    rss_kb: int = 0
    pss_kb: int = 0
    daemon_rss_kb: int = 0
    daemon_pss_kb: int = 0
    worker_rss_kb: list[int] = field(default_factory=list)
    worker_pss_kb: list[int] = field(default_factory=list)
    worker_cpu_s: list[float] = field(default_factory=list)
    daemon_cpu_s: float = 0.0
    processes: int = 0
    breakdown: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        workers = self.worker_rss_kb or [0]
        return {
            "count": self.count,
            "domain_id": self.domain_id,
            "start_s": round(self.start_s, 3),
            "stop_s": round(self.stop_s, 3),
            "rss_mb": mb(self.rss_kb),
            "pss_mb": mb(self.pss_kb),
            "daemon_rss_mb": mb(self.daemon_rss_kb),
            "daemon_pss_mb": mb(self.daemon_pss_kb),
            "worker_rss_mb": {
                "median": mb(statistics.median(workers)),
                "min": mb(min(workers)),
                "max": mb(max(workers)),
            },
            "worker_pss_mb_median": mb(statistics.median(self.worker_pss_kb or [0])),
            "worker_cpu_s_median": round(statistics.median(self.worker_cpu_s or [0.0]), 3),
            "daemon_cpu_s": round(self.daemon_cpu_s, 3),
            "breakdown": {k: round(v, 3) for k, v in self.breakdown.items()},
        }


def write_platform(folder: Path, count: int, domain_id: int) -> Path:
    lines = [
        "# Written by bench/startup.py: N copies of the trivial test module.",
        "[platform]",
        f'name = "bench-startup-{count}"',
        f"domain_id = {domain_id}",
        'state_dir = "state"',
        "",
    ]
    for i in range(1, count + 1):
        lines += ["[[modules]]", f'name = "trivial-{i}"', ""]
    path = folder / "platform.toml"
    path.write_text("\n".join(lines))
    return path


def wait_for(predicate: Callable[[], Any], limit_s: float, what: str, daemon: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        value = predicate()
        if value:
            return value
        if daemon.poll() is not None:
            raise RuntimeError(f"hardpointd exited with code {daemon.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit_s:g} s waiting for {what}")
        time.sleep(POLL_S)


def breakdown(events: list[Any], t0_ns: int, t_ready_ns: int, count: int) -> dict[str, float]:
    """Phases of the start, from the daemon's event log (wall-clock stamps, same host).

    ``boot_s``: process start to ``daemon_started``. ``launch_s``: from there to the last
    ``module_started`` (a worker is up and has loaded its module); ``launch_per_module_s`` is
    that divided by the count. ``drive_s``: the last ``module_started`` to the last module
    ``active``. ``transitions_s``: per module, the median time from the event before its
    ``configure`` to its ``active`` (both transitions). ``serve_s``: last ``active`` to the
    first answer in which every module is active. ``modules_s``: ``daemon_started`` to the
    last ``active``.
    """
    booted = next((e.time_ns for e in events if e.kind == "daemon_started"), None)
    if booted is None:
        return {}
    launched: list[int] = []
    drive_from: dict[str, int] = {}
    transitions: list[float] = []
    previous = last_active = booted
    for e in events:
        if e.kind == "module_started":
            launched.append(e.time_ns)
        elif e.kind == "state_changed" and e.detail.get("transition") == "configure":
            drive_from[e.module] = previous
        if e.kind == "state_changed" and e.detail.get("state") == "active" and e.module in drive_from:
            transitions.append((e.time_ns - drive_from[e.module]) / 1e9)
            last_active = max(last_active, e.time_ns)
        if e.kind in ("module_started", "state_changed"):
            previous = e.time_ns
    last_launch = max(launched, default=booted)
    out = {
        "boot_s": (booted - t0_ns) / 1e9,
        "launch_s": (last_launch - booted) / 1e9,
        "launch_per_module_s": (last_launch - booted) / 1e9 / max(1, len(launched)),
        "drive_s": max(0, last_active - last_launch) / 1e9,
        "transitions_s": statistics.median(transitions) if transitions else 0.0,
        "serve_s": (t_ready_ns - last_active) / 1e9,
        "modules_s": (last_active - booted) / 1e9,
    }
    if len(launched) != count or len(transitions) != count:
        out["incomplete_log"] = 1.0
    return out


def run_once(count: int, keep: bool) -> Run:
    from hardpoint_runtime._management import ManagementClient, ManagementError

    domain = Domain()
    folder = Path(tempfile.mkdtemp(prefix="hp-bench-"))
    run = Run(count=count, domain_id=domain.id)
    config = write_platform(folder, count, domain.id)
    socket_path = folder / "state" / "hardpointd.sock"
    daemon_log = (folder / "hardpointd.log").open("wb")
    daemon: subprocess.Popen[bytes] | None = None
    workers: list[int] = []
    try:
        t0_ns = time.time_ns()
        t0 = time.perf_counter()
        daemon = subprocess.Popen(
            [*daemon_argv(), str(config), "--log-level", "WARNING"],
            stdin=subprocess.DEVNULL,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        with ManagementClient(f"unix:{socket_path}", timeout_s=5.0) as client:

            def all_active() -> bool:
                if not socket_path.exists():
                    return False
                try:
                    modules = client.list_modules()
                except ManagementError:
                    return False
                return len(modules) == count and all(m.state == "active" for m in modules)

            wait_for(all_active, START_LIMIT_S, f"{count} modules active", daemon)
            run.start_s = time.perf_counter() - t0
            t_ready_ns = time.time_ns()
            workers = [m.pid for m in client.list_modules() if m.pid > 0]
            events = list(client.events())
        measure(run, daemon.pid, workers)
        run.breakdown = {**breakdown(events, t0_ns, t_ready_ns, count), "processes": run.processes}
        run.stop_s = stop(daemon, workers)
        return run
    except BaseException:
        daemon_log.flush()
        tail = (folder / "hardpointd.log").read_text(errors="replace")[-3000:]
        log(f"startup bench: run with {count} modules failed; daemon log ({folder / 'hardpointd.log'}):\n{tail}")
        keep = True
        if daemon is not None and daemon.poll() is None:
            workers = sorted({*workers, *descendants(daemon.pid)})
        raise
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        for pid in workers:  # only processes this run's daemon started
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        daemon_log.close()
        domain.release()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def measure(run: Run, daemon_pid: int, workers: list[int]) -> None:
    """Memory and CPU time of the daemon and every process it started (its module workers)."""
    children = descendants(daemon_pid)
    missing = set(workers) - set(children)
    if missing:
        raise RuntimeError(f"module pids {sorted(missing)} reported by the daemon are not its children")
    run.processes = 1 + len(children)
    run.daemon_rss_kb = rss_kb(daemon_pid) or 0
    run.daemon_pss_kb = pss_kb(daemon_pid) or 0
    run.daemon_cpu_s = cpu_s(daemon_pid) or 0.0
    run.rss_kb, run.pss_kb = run.daemon_rss_kb, run.daemon_pss_kb
    for pid in children:
        r, p = rss_kb(pid), pss_kb(pid) or 0
        if r is None:
            continue  # exited in between
        if pid in workers:
            run.worker_rss_kb.append(r)
            run.worker_pss_kb.append(p)
            run.worker_cpu_s.append(cpu_s(pid) or 0.0)
        run.rss_kb += r
        run.pss_kb += p


def stop(daemon: subprocess.Popen[bytes], workers: list[int]) -> float:
    """SIGTERM the daemon and wait; seconds until it exited. :raises RuntimeError: it did not stop cleanly."""
    t = time.perf_counter()
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(STOP_LIMIT_S)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"hardpointd did not stop within {STOP_LIMIT_S:g} s of SIGTERM") from e
    elapsed = time.perf_counter() - t
    if code != 0:
        raise RuntimeError(f"hardpointd exited with code {code} after SIGTERM")
    left = [pid for pid in workers if _alive(pid)]
    if left:
        raise RuntimeError(f"module processes {left} outlived the daemon")
    return elapsed


def _alive(pid: int) -> bool:
    """True when ``pid`` is a live process (not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# --------------------------------------------------------------------------- baselines


def baseline(reps: int) -> dict[str, float]:
    """Median seconds of the pieces of a start, each timed on its own outside the daemon.

    ``python_s``: a bare interpreter. ``worker_imports_s``: the imports of a module
    worker; ``worker_imports_and_participant_s``: plus creating and closing its DDS
    participant. ``daemon_imports_s``: what the daemon imports to start.
    ``inspect_s``: the manifest inspection subprocess the daemon runs once per start.
    """

    def timed(*argv: str) -> float:
        samples = []
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run([sys.executable, *argv], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            samples.append(time.perf_counter() - t)
        return round(statistics.median(samples), 3)

    worker = "import hardpoint, hardpoint_runtime._worker, hardpoint_testmods"
    daemon = (
        "import hardpoint, hardpoint_runtime._daemon, hardpoint_runtime._config, hardpoint_runtime._management, "
        "hardpoint_runtime._store, hardpoint_runtime._resolve, hardpoint_runtime._topics, hardpoint_runtime._plugins"
    )
    domain = Domain()
    try:
        return {
            "python_s": timed("-c", "pass"),
            "worker_imports_s": timed("-c", worker),
            "worker_imports_and_participant_s": timed(
                "-c", f"{worker}\nt = hardpoint.CycloneTransport(domain_id={domain.id})\nt.close()"
            ),
            "daemon_imports_s": timed("-c", daemon),
            "inspect_s": timed("-m", "hardpoint_runtime._inspect", "[]"),
        }
    finally:
        domain.release()


# --------------------------------------------------------------------------- parallel start probe


def probe_parallel(count: int, pool: int) -> dict[str, float]:
    """Start ``count`` trivial workers ``pool`` at a time, without the daemon, and drive each to active.

    What a daemon that started a start group in parallel could reach: the same
    worker processes (``hardpoint_runtime._process.ModuleProcess``, the daemon's
    own class, with the spec the daemon gives), in a DDS domain of their own.
    """
    from concurrent.futures import ThreadPoolExecutor

    from hardpoint_runtime._process import ModuleProcess

    domain = Domain()
    folder = Path(tempfile.mkdtemp(prefix="hp-probe-"))
    procs: list[ModuleProcess] = []

    def start(i: int) -> None:
        name = f"trivial-{i}"
        spec: dict[str, Any] = {
            "module": name,
            "entry_point": f"hardpoint_testmods:trivial_{i}",
            "paths": [],
            "domain_id": domain.id,
            "node": "main",
            "config": {},
            "adapters": {},
            "health_period_s": 1.0,
        }
        proc = ModuleProcess(name, spec, folder / f"{name}.log")
        procs.append(proc)
        proc.start(timeout_s=START_LIMIT_S)
        for transition in ("configure", "activate"):
            reply = proc.request("transition", timeout_s=30.0, transition=transition)
            if not reply.get("ok") or reply.get("error"):
                raise RuntimeError(f"trivial-{i}: {transition} failed: {reply}")

    try:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=pool) as ex:
            list(ex.map(start, range(1, count + 1)))
        elapsed = time.perf_counter() - t
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, len(procs))) as ex:
            list(ex.map(lambda p: p.stop(timeout_s=10.0), procs))
        return {"pool": pool, "start_s": round(elapsed, 3), "stop_s": round(time.perf_counter() - t, 3)}
    finally:
        for proc in procs:
            proc.kill()
        domain.release()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- main


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of (count, seconds): the marginal cost of one more module."""
    if len({c for c, _ in points}) < 2:
        return None
    mx = statistics.fmean(float(x) for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def run(args: argparse.Namespace) -> dict[str, Any]:
    copies = installed_copies()
    if max(args.counts) > copies:
        raise SystemExit(
            f"startup bench: {max(args.counts)} modules asked for, but only trivial-1..trivial-{copies} are installed "
            "(pip install -e tests/fixtures/testmods)"
        )
    load_before = round(os.getloadavg()[0], 2)
    # First, so that the measured runs do not pay for a cold page cache alone.
    base = None if args.no_baseline else baseline(3 if args.repeat > 1 else 1)
    runs: dict[int, list[Run]] = {}
    for rep in range(args.repeat):
        for count in args.counts:
            if args.verbose:
                log(f"startup bench: {count} modules, run {rep + 1}/{args.repeat} ...")
            r = run_once(count, args.keep)
            runs.setdefault(count, []).append(r)
            if args.verbose:
                log(f"  active after {r.start_s:.2f} s, {mb(r.rss_kb)} MB RSS, stopped in {r.stop_s:.2f} s")

    def median_of(count: int, get: Callable[[Run], float]) -> float:
        return statistics.median(get(r) for r in runs[count])

    keys = [str(c) for c in args.counts]
    start_s = {str(c): round(median_of(c, lambda r: r.start_s), 3) for c in args.counts}
    phases = sorted({k for rs in runs.values() for r in rs for k in r.breakdown})
    all_workers = [kb for rs in runs.values() for r in rs for kb in r.worker_rss_kb]
    all_workers_pss = [kb for rs in runs.values() for r in rs for kb in r.worker_pss_kb]
    all_cpu = [s for rs in runs.values() for r in rs for s in r.worker_cpu_s]
    per_module = slope([(r.count, r.start_s) for rs in runs.values() for r in rs])
    rss_slope = slope([(r.count, r.rss_kb / 1024) for rs in runs.values() for r in rs])
    result: dict[str, Any] = {
        "start_s": start_s,
        "rss_mb": {k: mb(median_of(c, lambda r: r.rss_kb)) for k, c in zip(keys, args.counts, strict=True)},
        "pss_mb": {k: mb(median_of(c, lambda r: r.pss_kb)) for k, c in zip(keys, args.counts, strict=True)},
        "daemon_rss_mb": {
            k: mb(median_of(c, lambda r: r.daemon_rss_kb)) for k, c in zip(keys, args.counts, strict=True)
        },
        "rss_per_module_mb": mb(statistics.median(all_workers)) if all_workers else None,
        "pss_per_module_mb": mb(statistics.median(all_workers_pss)) if all_workers_pss else None,
        "worker_cpu_s": round(statistics.median(all_cpu), 3) if all_cpu else None,
        "daemon_cpu_s": {
            k: round(median_of(c, lambda r: r.daemon_cpu_s), 3) for k, c in zip(keys, args.counts, strict=True)
        },
        "start_per_module_s": None if per_module is None else round(per_module, 3),
        "rss_growth_mb_per_module": None if rss_slope is None else round(rss_slope, 1),
        "stop_s": {k: round(median_of(c, lambda r: r.stop_s), 3) for k, c in zip(keys, args.counts, strict=True)},
        "breakdown": {
            k: {p: round(statistics.median(r.breakdown.get(p, 0.0) for r in runs[c]), 3) for p in phases}
            for k, c in zip(keys, args.counts, strict=True)
        },
        "repeat": args.repeat,
        "runs": [r.as_json() for rs in runs.values() for r in rs],
    }
    if base is not None:
        result["baseline"] = base
    if args.parallel_probe:
        result["parallel_probe"] = {}
        for count in args.counts:
            probes = [probe_parallel(count, pool) for pool in sorted({1, min(os.cpu_count() or 1, count), count})]
            result["parallel_probe"][str(count)] = probes
            if args.verbose:
                log(f"startup bench: parallel probe, {count} workers: {probes}")
    result["env"] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # Other work on the machine inflates the times: compare runs only at a similar load.
        "loadavg_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        "kernel": platform.release(),
        "hardpoint": _version("hardpoint"),
        "hardpoint_runtime": _version("hardpoint-runtime"),
        "cyclonedds": _version("cyclonedds"),
    }
    return result


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def table(result: dict[str, Any], out: IO[str]) -> None:
    out.write(f"{'modules':>8} {'start s':>8} {'RSS MB':>8} {'PSS MB':>8} {'daemon MB':>10} {'stop s':>7}\n")
    for k, start in result["start_s"].items():
        out.write(
            f"{k:>8} {start:>8.2f} {result['rss_mb'][k]:>8.1f} {result['pss_mb'][k]:>8.1f} "
            f"{result['daemon_rss_mb'][k]:>10.1f} {result['stop_s'][k]:>7.2f}\n"
        )
    out.write(f"worker RSS {result['rss_per_module_mb']} MB (PSS {result['pss_per_module_mb']} MB); ")
    out.write(f"{result['start_per_module_s']} s per extra module\n")
    for k, phases in result["breakdown"].items():
        out.write(f"  {k:>3} modules: " + ", ".join(f"{p} {v:g}" for p, v in phases.items()) + "\n")
    if "baseline" in result:
        out.write("baseline: " + ", ".join(f"{p} {v:g}" for p, v in result["baseline"].items()) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object (and nothing else) on stdout")
    p.add_argument("--quick", action="store_true", help="1 and 10 modules, one run each, no baseline")
    p.add_argument("--counts", help="module counts, comma separated (default 1,10,50; quick 1,10)")
    p.add_argument("--repeat", type=int, help="runs per count, medians reported (default 3; quick 1)")
    p.add_argument("--no-baseline", action="store_true", help="skip the interpreter and import baselines")
    p.add_argument(
        "--parallel-probe",
        action="store_true",
        help="also start the workers without the daemon, 1, CPU-count and all at a time (what a parallel start gives)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary platform folders (always kept on failure)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress on stderr (default without --json)")
    args = p.parse_args(argv)
    default = QUICK_COUNTS if args.quick else COUNTS
    try:
        args.counts = [int(c) for c in args.counts.split(",")] if args.counts else list(default)
    except ValueError:
        p.error(f"--counts takes whole numbers separated by commas, got {args.counts!r}")
    if not args.counts or min(args.counts) < 1:
        p.error("--counts must list module counts of at least 1")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.no_baseline = args.no_baseline or args.quick
    args.verbose = args.verbose or not args.json
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        table(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
