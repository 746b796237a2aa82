"""``hardpoint demo``: a patrol mission end to end, watched live.

Starts ``hardpointd`` on a platform configuration (by default
``examples/patrol/platform.toml``: simulated GNSS, radar and EO/IR, fusion,
geofence and recorder), gives every simulator one time zero, shows modules,
rates, fused tracks and alerts while the scenario runs, stops the platform
after ``--duration`` seconds and prints a summary. Exit code 1 when a module
failed or never became active, so the demo doubles as a smoke test.

The view is fed by the same public parts an operator tool would use: the
management API (modules, topics, events) and the bus (fused tracks and
alerts, read as a tool with no manifest).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoResult", "run_demo"]

#: How long the daemon may take until every module is active, in seconds.
START_TIMEOUT_S = 90.0
#: How often the view is redrawn, in seconds.
REFRESH_S = 0.5


@dataclass
class _Picture:
    """What the demo has seen on the bus and from the management API."""

    tracks: dict[str, Any] = field(default_factory=dict)  # live fused tracks by id
    formed: set[str] = field(default_factory=set)  # every fused track id ever seen
    alerts: list[tuple[int, Any]] = field(default_factory=list)  # (receive time ns, Alert)
    raised: set[str] = field(default_factory=set)
    cleared: set[str] = field(default_factory=set)
    events: list[Any] = field(default_factory=list)  # EventRecord
    modules: list[Any] = field(default_factory=list)  # ModuleStatus
    topics: list[Any] = field(default_factory=list)  # TopicInfo
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_track(self, track: Any) -> None:
        from hardpoint.track.v1 import track_pb2

        with self.lock:
            self.formed.add(track.track_id)
            if track.lifecycle == track_pb2.TRACK_LIFECYCLE_DROPPED:
                self.tracks.pop(track.track_id, None)
            else:
                self.tracks[track.track_id] = track

    def on_alert(self, alert: Any) -> None:
        from hardpoint.alert.v1 import alert_pb2

        with self.lock:
            self.alerts.append((time.time_ns(), alert))
            (self.raised if alert.state == alert_pb2.ALERT_STATE_RAISED else self.cleared).add(alert.alert_id)


@dataclass(frozen=True)
class DemoResult:
    """The summary of one demo run."""

    ok: bool
    duration_s: float
    modules: dict[str, str]  #: final state by module
    restarts: dict[str, int]
    failed: list[str]
    tracks_formed: int
    tracks_live: int
    alerts_raised: list[str]
    alerts_cleared: list[str]
    recording: Path | None
    recording_bytes: int
    out_dir: Path


def _default_config() -> Path:
    here = Path.cwd() / "examples" / "patrol" / "platform.toml"
    if here.is_file():
        return here
    # runtime/src/hardpoint_runtime/_demo.py -> the repository root of an editable install
    return Path(__file__).resolve().parents[3] / "examples" / "patrol" / "platform.toml"


@contextmanager
def _daemon(config: Path, out_dir: Path, domain_id: int | None, start_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run hardpointd on ``config`` (copied into ``out_dir``) until the block ends.

    The simulators wait for ``start_file`` (time zero of the scenario), which the demo
    writes once every module is active, so no module misses the beginning.
    """
    shutil.copyfile(config, out_dir / "platform.toml")
    cmd = [sys.executable, "-m", "hardpoint_runtime._daemon", str(out_dir / "platform.toml")]
    if domain_id is not None:
        cmd += ["--domain-id", str(domain_id)]
    env = {**os.environ, "HARDPOINT_SIM_START_FILE": str(start_file)}
    env.pop("HARDPOINT_SIM_START_NS", None)
    log = (out_dir / "hardpointd.log").open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=out_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_stop_with_parent,  # noqa: PLW1509 - called before any thread of the demo starts
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _stop_with_parent() -> None:
    """In the daemon's process, before exec: SIGTERM it when the demo dies, even by SIGKILL (Linux).

    SIGTERM and SIGHUP to the demo stop the daemon in order (:func:`ended_by_signals`); this is the
    net for a demo that cannot run its clean-up, so the daemon and its modules never outlive it.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


@contextmanager
def ended_by_signals() -> Iterator[None]:
    """SIGTERM (``timeout``, a service manager) and SIGHUP (the terminal closed) end the block as Ctrl-C does.

    Each raises ``SystemExit(128 + signal)`` in the main thread, so every ``finally`` runs: the daemon
    the demo started is stopped, with its modules, instead of being left running as orphans.
    """

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, stop)
    except ValueError:  # not the main thread: the caller handles signals
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_socket(proc: subprocess.Popen[bytes], socket: Path, out_dir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not socket.exists():
        if proc.poll() is not None:
            log = (out_dir / "hardpointd.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"hardpointd exited with code {proc.returncode}:\n{log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"hardpointd did not open {socket} within {START_TIMEOUT_S:g} s")
        time.sleep(0.1)


def _start_when_active(client: Any, start_file: Path, proc: Any, console: Any) -> int:
    """Wait until every module is active (or the start timeout), then start the scenario; returns time zero."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        with suppress(Exception):
            modules = client.list_modules()
            if modules and all(m.state == "active" for m in modules):
                break
        time.sleep(0.2)
    else:
        console.print("  [yellow]not every module is active; starting the scenario anyway[/]")
    start_ns = time.time_ns()
    tmp = start_file.with_suffix(".tmp")
    tmp.write_text(str(start_ns))
    tmp.replace(start_file)  # atomic: a simulator never reads half a number
    return start_ns


def _poll(client: Any, picture: _Picture, stop: threading.Event, bus: Any) -> None:
    """Keep the picture's modules, topics and events current, and the view's roster with them (a thread)."""
    last_event = 0
    while not stop.is_set():
        with suppress(Exception):  # the daemon may be stopping; the view just stops updating
            modules, topics = client.list_modules(), client.topics()
            _follow_roster(bus, modules)
            new = list(client.events(since_id=last_event))
            with picture.lock:
                picture.modules, picture.topics = modules, topics
                picture.events.extend(new)
            if new:
                last_event = new[-1].id
        stop.wait(REFRESH_S)


def _follow_roster(bus: Any, modules: list[Any]) -> None:
    """Judge the bus as the platform's modules do (RT-BUS-ID-004): only their processes write as them."""
    from hardpoint_runtime._roster import RosterEntry, platform_roster

    roster = platform_roster(RosterEntry(m.name, m.local, m.participants, m.provides) for m in modules)
    if roster.as_json() != bus.roster.as_json():
        bus.set_roster(roster)


def run_demo(
    *,
    config: Path | None = None,
    duration_s: float = 60.0,
    out_dir: Path | None = None,
    domain_id: int | None = None,
    live: bool | None = None,
    console: Any = None,
) -> DemoResult:
    """Run the demo; see the module docstring."""
    from rich.console import Console

    import hardpoint
    from hardpoint.alert.v1 import alert_pb2
    from hardpoint.track.v1 import track_pb2
    from hardpoint_runtime._config import load_config
    from hardpoint_runtime._management import ManagementClient

    console = console or Console()
    config = (config or _default_config()).resolve()
    out_dir = (out_dir or Path.cwd() / "demo-out").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "state").exists():  # a fresh platform each run: no stored targets or failures
        shutil.rmtree(out_dir / "state")
    platform = load_config(config)
    domain = platform.platform.domain_id if domain_id is None else domain_id
    live = console.is_terminal if live is None else live
    picture = _Picture()
    start_file = out_dir / "scenario-start"
    start_file.unlink(missing_ok=True)
    launched_ns = time.time_ns()
    console.print(f"[bold]hardpoint demo[/]: platform [cyan]{platform.platform.name}[/] from {config}")
    console.print(f"  output in {out_dir}, DDS domain {domain}, {duration_s:g} s of scenario time")
    with ended_by_signals(), _daemon(config, out_dir, domain_id, start_file) as proc:
        socket = out_dir / "state" / "hardpointd.sock"
        _wait_for_socket(proc, socket, out_dir)
        transport = hardpoint.CycloneTransport(domain_id=domain)
        bus = hardpoint.Bus(transport, module="demo-view")  # a tool: reads any interface, publishes none
        bus.subscribe(track_pb2.FusedTrack, picture.on_track)
        bus.subscribe(alert_pb2.Alert, picture.on_alert)
        stop = threading.Event()
        with ManagementClient(f"unix:{socket}") as client:
            poller = threading.Thread(target=_poll, args=(client, picture, stop, bus), daemon=True)
            poller.start()
            start_ns = _start_when_active(client, start_file, proc, console)
            console.print(f"  all modules up after {(start_ns - launched_ns) / 1e9:.1f} s: scenario started")
            try:
                _watch(console, picture, start_ns, duration_s, live=live, proc=proc)
            finally:
                stop.set()
                poller.join(timeout=5)
        bus.close()
        transport.close()
    return _summary(picture, out_dir, time.time_ns() - launched_ns, console)


def _watch(console: Any, picture: _Picture, start_ns: int, duration_s: float, *, live: bool, proc: Any) -> None:
    from rich.live import Live

    end = start_ns + int(duration_s * 1e9)
    if live:
        with Live(_render(picture, start_ns, duration_s), console=console, refresh_per_second=4) as view:
            while time.time_ns() < end and proc.poll() is None:
                time.sleep(REFRESH_S)
                view.update(_render(picture, start_ns, duration_s))
        return
    printed = 0
    next_line = 0.0
    while time.time_ns() < end and proc.poll() is None:
        time.sleep(REFRESH_S)
        with picture.lock:
            events = picture.events[printed:]
            printed = len(picture.events)
        for e in events:
            if e.kind in ("module_restarting", "module_failed", "module_started", "module_blocked"):
                console.print(f"  event: {e.kind} {e.module} {dict(e.detail)}")
        t = (time.time_ns() - start_ns) / 1e9
        if t >= next_line:
            next_line = t + 5.0
            with picture.lock:
                active = sum(1 for m in picture.modules if m.state == "active")
                console.print(
                    f"  t={t:5.1f} s  modules active {active}/{len(picture.modules)}  "
                    f"fused tracks {len(picture.tracks)}  alerts raised {len(picture.raised)} "
                    f"cleared {len(picture.cleared)}"
                )


def _render(picture: _Picture, start_ns: int, duration_s: float) -> Any:
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    t = (time.time_ns() - start_ns) / 1e9
    with picture.lock:
        modules, topics = list(picture.modules), list(picture.topics)
        tracks = sorted(picture.tracks.values(), key=lambda tr: tr.track_id)
        alerts = picture.alerts[-6:]
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]scenario time[/] {t:5.1f} / {duration_s:g} s", ProgressBar(total=duration_s, completed=t))
    mods = Table(title="modules", expand=True)
    for col in ("module", "state", "health", "restarts", "pid"):
        mods.add_column(col)
    for m in modules:
        colour = "green" if m.state == "active" else "red" if m.state in ("failed", "not_started") else "yellow"
        restarts = f"[bold yellow]{m.restarts}[/]" if m.restarts else "0"
        mods.add_row(m.name, f"[{colour}]{m.state}[/]", m.health, restarts, str(m.pid or "-"))
    rates = Table(title="bus", expand=True)
    for col in ("topic", "rate", "nominal", "publishers"):
        rates.add_column(col)
    for tp in topics:
        nominal = f"{tp.nominal_rate_hz:g} Hz" if tp.nominal_rate_hz else "aperiodic"
        rates.add_row(tp.topic, f"{tp.rate_hz:.1f} Hz", nominal, ", ".join(tp.publishers))
    trk = Table(title=f"fused tracks ({len(tracks)})", expand=True)
    for col in ("track", "class", "lat", "lon", "speed kn", "course", "sources", "updates"):
        trk.add_column(col)
    for tr in tracks:
        speed = math.hypot(tr.velocity.north_mps, tr.velocity.east_mps)
        course = math.degrees(math.atan2(tr.velocity.east_mps, tr.velocity.north_mps)) % 360
        cls = _enum_name(tr, "classification", "CLASSIFICATION_")
        sources = ",".join(sorted({s.sensor_id for s in tr.sources}))
        trk.add_row(
            tr.track_id,
            cls,
            f"{tr.position.latitude_deg:.5f}",
            f"{tr.position.longitude_deg:.5f}",
            f"{speed * 1.943844:.1f}",
            f"{course:03.0f}",
            sources,
            str(tr.update_count),
        )
    alert_lines = Table(title="alerts", expand=True, show_header=False)
    alert_lines.add_column("alert")
    for _, a in alerts:
        state = _enum_name(a, "state", "ALERT_STATE_")
        colour = "red" if state == "raised" else "green"
        alert_lines.add_row(f"[{colour}]{state}[/] {a.text}")
    return Group(head, mods, rates, trk, alert_lines)


def _enum_name(msg: Any, field_name: str, prefix: str) -> str:
    value = getattr(msg, field_name)
    enum = msg.DESCRIPTOR.fields_by_name[field_name].enum_type
    return (
        str(enum.values_by_number[value].name).removeprefix(prefix).lower() if value in enum.values_by_number else "?"
    )


def _summary(picture: _Picture, out_dir: Path, elapsed_ns: int, console: Any) -> DemoResult:
    with picture.lock:
        modules = {m.name: m.state for m in picture.modules}
        restarts = {m.name: m.restarts for m in picture.modules}
        events = list(picture.events)
        raised, cleared = sorted(picture.raised), sorted(picture.cleared)
        formed, live_tracks = len(picture.formed), len(picture.tracks)
    failed = sorted(
        {e.module for e in events if e.kind == "module_failed"} | {n for n, s in modules.items() if s != "active"}
    )
    recordings = sorted(out_dir.glob("recording*.mcap"))
    recording = recordings[-1] if recordings else None
    size = recording.stat().st_size if recording else 0
    ok = bool(modules) and not failed
    result = DemoResult(
        ok=ok,
        duration_s=elapsed_ns / 1e9,
        modules=modules,
        restarts=restarts,
        failed=failed,
        tracks_formed=formed,
        tracks_live=live_tracks,
        alerts_raised=raised,
        alerts_cleared=cleared,
        recording=recording,
        recording_bytes=size,
        out_dir=out_dir,
    )
    console.print()
    console.print("[bold]summary[/]")
    console.print(f"  ran {result.duration_s:.1f} s; modules: " + ", ".join(f"{n} {s}" for n, s in modules.items()))
    if any(restarts.values()):
        console.print("  restarts: " + ", ".join(f"{n} {r}" for n, r in restarts.items() if r))
    console.print(f"  fused tracks formed: {formed} ({live_tracks} live at the end)")
    console.print(f"  alerts raised: {len(raised)}, cleared: {len(cleared)}")
    for _, a in picture.alerts:
        console.print(f"    {_enum_name(a, 'state', 'ALERT_STATE_')}: {a.text}")
    console.print(f"  recording: {recording} ({size / 1e6:.1f} MB)" if recording else "  recording: none written")
    console.print(f"  daemon log: {out_dir / 'hardpointd.log'}")
    verdict = "[green]demo OK[/]" if ok else f"[red]demo FAILED[/]: {', '.join(failed) or 'no modules seen'}"
    console.print(verdict)
    return result
