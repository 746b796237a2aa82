"""``hardpoint``: the operator's command line for a running hardpointd.

Talks to the daemon's management API (gRPC) on its Unix socket, or on TCP with
TLS client certificates. Every command prints a rich table or text for people
and, with ``--json``, machine-readable JSON only (no colours, nothing else on
stdout). Exit code 0 on success, 1 on failure with the reason on stderr, 2 on
a usage error.

The module stays import-light: gRPC and the generated protobuf code are loaded
only when a command runs, and Cyclone DDS never, so ``hardpoint --help`` is
quick.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from hardpoint_runtime._conformance_cli import conformance_app
from hardpoint_runtime._new_cli import new_app
from hardpoint_runtime._release_cli import release_app
from hardpoint_runtime._update_cli import update_app

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from hardpoint_runtime._control import EventRecord, IntrusionInfo, ModuleStatus, PlatformHealth, TopicInfo
    from hardpoint_runtime._management import ManagementClient

__all__ = ["app", "main"]

#: Socket used when neither ``--socket`` nor ``HARDPOINT_SOCKET`` is given (the daemon's default state directory).
DEFAULT_SOCKET = Path("state") / "hardpointd.sock"

app = typer.Typer(
    name="hardpoint",
    help="Inspect and operate a running hardpoint platform through its daemon (hardpointd).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
module_app = typer.Typer(help="Inspect one module.", no_args_is_help=True)
app.add_typer(module_app, name="module")
app.add_typer(release_app, name="release")
app.add_typer(conformance_app, name="conformance")
app.add_typer(new_app, name="new")
app.add_typer(update_app, name="update")

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    socket: Path
    tcp: str | None
    tls_cert: Path | None
    tls_key: Path | None
    tls_ca: Path | None

    @property
    def target(self) -> str:
        return self.tcp if self.tcp else f"unix:{self.socket.absolute()}"


@app.callback()
def _main(
    ctx: typer.Context,
    *,
    socket: Annotated[
        Path,
        typer.Option(
            "--socket",
            envvar="HARDPOINT_SOCKET",
            help="Unix socket of hardpointd's management API.",
            show_default=True,
        ),
    ] = DEFAULT_SOCKET,
    tcp: Annotated[
        str | None,
        typer.Option(
            "--tcp",
            envvar="HARDPOINT_TCP",
            metavar="HOST:PORT",
            help="Reach hardpointd over TCP instead (needs --tls-cert, --tls-key and --tls-ca).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", envvar="HARDPOINT_TLS_CERT", help="Client certificate (PEM) for --tcp.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", envvar="HARDPOINT_TLS_KEY", help="Client private key (PEM) for --tcp.")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", envvar="HARDPOINT_TLS_CA", help="CA certificate (PEM) of the daemon, for --tcp."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=lambda v: _print_version() if v else None, help="Print versions."
        ),
    ] = False,
) -> None:
    """Inspect and operate a running hardpoint platform through its daemon (hardpointd)."""
    del version  # handled by its eager callback
    ctx.obj = _Endpoint(socket=socket, tcp=tcp, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)


def _print_version() -> None:
    """``hardpoint --version``: the runtime's and the SDK's distribution versions, then exit."""
    from importlib.metadata import version

    print(f"hardpoint-runtime {version('hardpoint-runtime')} (hardpoint SDK {version('hardpoint')})")
    raise typer.Exit(0)


# --------------------------------------------------------------------------- plumbing


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"hardpoint: error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(1)


@contextlib.contextmanager
def _client(ctx: typer.Context) -> Iterator[ManagementClient]:
    """A client of the daemon; any hardpoint error ends the command with exit code 1 and a message."""
    from hardpoint import HardpointError
    from hardpoint_runtime._management import ManagementClient, TlsFiles

    endpoint: _Endpoint = ctx.find_root().obj
    tls: TlsFiles | None = None
    if endpoint.tcp:
        cert, key, ca = endpoint.tls_cert, endpoint.tls_key, endpoint.tls_ca
        if cert is None or key is None or ca is None:
            flags = (("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca))
            missing = ", ".join(flag for flag, value in flags if value is None)
            _fail(f"--tcp {endpoint.tcp} needs TLS client credentials: give {missing}")
        tls = TlsFiles(cert=cert, key=key, ca=ca)
    try:
        with ManagementClient(endpoint.target, tls=tls) as client:
            yield client
    except HardpointError as e:
        _fail(str(e))


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def _console() -> Console:
    """A console on stdout: plain text (no colour codes) when stdout is not a terminal; NO_COLOR respected."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    width = None if tty else int(os.environ.get("COLUMNS", "") or 120)
    return Console(file=sys.stdout, force_terminal=None if tty else False, width=width, highlight=False)


_STATE_STYLE = {
    "active": "green",
    "inactive": "yellow",
    "unconfigured": "yellow",
    "finalized": "dim",
    "not_started": "magenta",
    "awaiting_install": "cyan",
    "starting": "cyan",
    "restarting": "cyan",
    "failed": "bold red",
    "error_processing": "red",
    "remote_lost": "red",
}
_HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "failed": "bold red", "unknown": "dim"}
_SEVERITY_STYLE = {"info": "", "warning": "yellow", "error": "bold red"}


def _styled(value: str, styles: dict[str, str]) -> str:
    from rich.markup import escape

    style = styles.get(value, "")
    return f"[{style}]{escape(value)}[/]" if style else escape(value)


def _table(*columns: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _software(modules: Sequence[ModuleStatus]) -> list[dict[str, str]]:
    """The platform's software state (RT-PROV-003): one entry per module, to compare with what was approved."""
    return [
        {"module": m.name, "version": m.version, "node": m.node, "origin": m.origin, "digest": m.digest}
        for m in sorted(modules, key=lambda m: m.name)
    ]


@app.command()
def baseline(
    names: Annotated[list[str] | None, typer.Argument(help="Only these modules (default: every one found).")] = None,
) -> None:
    """Print [[baseline]] entries (module, version, digest) for the modules installed in this environment.

    Runs without a daemon: what the platform authority reviews and pastes into platform.toml to vouch
    for the factory image on a platform with update.require_evidence (RT-PROV-001).
    """
    import importlib.metadata as md

    from hardpoint_runtime._plugins import find_modules
    from hardpoint_runtime._provenance import distribution_digest

    found = find_modules()
    wanted = sorted(names or found)
    for name in wanted:
        if name not in found:
            _fail(f"no module named {name!r} is installed in this environment")
    for name in wanted:
        for dist in found[name]:
            digest, problem = distribution_digest(md.distribution(dist.distribution))
            if problem:
                print(f"# {name} {dist.version}: not pinnable: {problem}")
                continue
            print(f'[[baseline]]\nname = "{name}"\nversion = "{dist.version}"\ndigest = "{digest}"\n')


def _module_json(m: ModuleStatus) -> dict[str, Any]:
    out = asdict(m)
    out["counters"] = dict(m.counters)
    return out


def _modules_table(modules: list[ModuleStatus]) -> Table:
    from rich.markup import escape

    table = _table("NAME", "VERSION", "NODE", "STATE", "HEALTH", "RESTARTS", "PID")
    for m in modules:
        table.add_row(
            escape(m.name),
            escape(m.version),
            escape(m.node) + ("" if m.local else " [dim](remote)[/]"),
            _styled(m.state, _STATE_STYLE),
            _styled(m.health, _HEALTH_STYLE),
            str(m.restarts),
            str(m.pid) if m.pid else "-",
        )
    return table


def _health_text(h: PlatformHealth) -> str:
    from rich.markup import escape

    return (
        f"platform [bold]{escape(h.platform)}[/] on node {escape(h.node)}: "
        f"{_styled(h.status, _HEALTH_STYLE)}, {h.modules_active}/{h.modules_total} modules active"
    )


def _event_time(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9).astimezone().isoformat(timespec="milliseconds")


def _event_line(e: EventRecord) -> str:
    from rich.markup import escape

    detail = " ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))
    parts = [
        f"#{e.id}",
        escape(_event_time(e.time_ns)),
        _styled(e.severity, _SEVERITY_STYLE),
        f"[bold]{escape(e.kind)}[/]",
    ]
    if e.module:
        parts.append(escape(e.module))
    if detail:
        parts.append(escape(detail))
    return " ".join(parts)


def _rate(hz: float) -> str:
    return f"{hz:.1f} Hz"


# --------------------------------------------------------------------------- commands


@app.command()
def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Platform health and a table of its modules."""
    with _client(ctx) as client:
        health = client.health()
        modules = client.list_modules()
    if json_out:
        _print_json(
            {"health": asdict(health), "modules": [_module_json(m) for m in modules], "software": _software(modules)}
        )
        return
    from rich.markup import escape

    console = _console()
    console.print(_health_text(health))
    for reason in health.reasons:
        console.print(f"  - {escape(reason)}")
    console.print()
    console.print(_modules_table(modules) if modules else "no modules configured")


@app.command()
def modules(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Table of the platform's modules: name, version, node, state, health, restarts, pid."""
    with _client(ctx) as client:
        found = client.list_modules()
    if json_out:
        _print_json([_module_json(m) for m in found])
        return
    _console().print(_modules_table(found) if found else "no modules configured")


@module_app.command("show")
def module_show(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Module name.")], json_out: JsonOption = False
) -> None:
    """Everything about one module: identity, state, interfaces, unmet requirements, counters."""
    with _client(ctx) as client:
        m = client.get_module(name)
    if json_out:
        _print_json(_module_json(m))
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    heartbeat = f"{m.heartbeat_age_s:.1f} s ago" if m.heartbeat_age_s >= 0 else "none seen"
    rows = [
        ("name", escape(m.name)),
        ("version", escape(m.version)),
        ("supplier", escape(m.supplier)),
        ("node", escape(m.node) + ("" if m.local else " (remote)")),
        ("state", _styled(m.state, _STATE_STYLE)),
        ("target state", _styled(m.target_state, _STATE_STYLE)),
        ("health", _styled(m.health, _HEALTH_STYLE)),
        ("reason", escape(m.reason) or "-"),
        ("pid", str(m.pid) if m.pid else "-"),
        ("restarts", str(m.restarts)),
        ("heartbeat", heartbeat),
        ("provides", escape(", ".join(m.provides)) or "-"),
        ("requires", escape(", ".join(m.requires)) or "-"),
    ]
    for key, value in rows:
        grid.add_row(key, value)
    console.print(grid)
    if m.unmet:
        console.print()
        console.print("[bold red]unmet requirements[/]")
        table = _table("INTERFACE", "MAJOR", "REASON")
        for u in m.unmet:
            table.add_row(escape(u.interface), str(u.major), escape(u.reason))
        console.print(table)
    if m.counters:
        console.print()
        console.print("[bold]counters[/]")
        table = _table("COUNTER", "VALUE")
        for counter, count in sorted(m.counters.items()):
            table.add_row(escape(counter), str(count))
        console.print(table)
    if m.intrusions:
        console.print()
        console.print("[bold red]refused on the bus[/]")
        console.print(_intrusions_table(m.intrusions))


def _intrusions_table(intrusions: Sequence[IntrusionInfo]) -> Table:
    """Who had what refused: one row per interface, kind and offending writer."""
    from rich.markup import escape

    table = _table("INTERFACE", "KIND", "WRITER", "CLAIMED", "COUNT")
    for i in intrusions:
        table.add_row(escape(i.interface), escape(i.kind), escape(i.writer), escape(i.claimed_source), str(i.count))
    return table


@app.command()
def events(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events as they are logged (Ctrl-C ends).")
    ] = False,
    since: Annotated[int, typer.Option("--since", min=0, help="Only events with an id greater than this.")] = 0,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="Print JSON only: an array, or with --follow one object per line (JSON Lines)."),
    ] = False,
) -> None:
    """The platform event log.

    With --follow, Ctrl-C ends the command (exit code 0); the daemon ending the
    stream (it is stopping) is reported on stderr with exit code 1.
    """
    previous = None
    if follow and threading.current_thread() is threading.main_thread():
        # Ctrl-C ends a follow at once, wherever the main thread is (it may be inside gRPC's C
        # core, where a KeyboardInterrupt can leave the channel stuck); the daemon sees the
        # connection close and lets go of the stream.
        previous = signal.signal(signal.SIGINT, _exit_on_interrupt)
    try:
        _follow_events(ctx, since, follow=follow, json_out=json_out)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _follow_events(ctx: typer.Context, since: int, *, follow: bool, json_out: bool) -> None:
    with _client(ctx) as client:
        stream = client.events(since, follow=follow)
        if json_out and not follow:
            _print_json([asdict(e) for e in stream])
            return
        console = None if json_out else _console()
        try:
            for e in stream:
                if console is None:
                    sys.stdout.write(json.dumps(asdict(e)) + "\n")
                    sys.stdout.flush()
                else:
                    console.print(_event_line(e))
        except KeyboardInterrupt:
            return
        finally:
            stream.close()
    if follow:
        _fail(f"hardpointd at {client.target} ended the event stream (is it stopping?)")


def _exit_on_interrupt(_signum: int, _frame: object) -> None:
    sys.stdout.flush()
    os._exit(0)


@app.command()
def topics(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Topics on the bus: interface, QoS class, publishers, measured rate against nominal."""
    with _client(ctx) as client:
        found = client.topics()
    if json_out:
        _print_json([asdict(t) for t in found])
        return
    from rich.markup import escape

    # The REFUSED column only when something was refused: a quiet bus keeps the table narrow.
    refusals = any(any(t.refused.values()) for t in found)
    table = _table("TOPIC", "INTERFACE", "QOS", "PUBLISHERS", "RATE", "NOMINAL", *(["REFUSED"] if refusals else []))
    for t in found:
        refused = [", ".join(f"{k} {v}" for k, v in sorted(t.refused.items()) if v) or "-"] if refusals else []
        table.add_row(
            escape(t.topic),
            escape(t.interface),
            escape(t.qos),
            escape(", ".join(t.publishers)) or "-",
            _rate_cell(t),
            _rate(t.nominal_rate_hz) if t.nominal_rate_hz > 0 else "aperiodic",
            *refused,
        )
    console = _console()
    console.print(table if found else "no topics seen on the bus")
    intrusions = [i for t in found for i in t.intrusions]
    if intrusions:
        console.print()
        console.print("[bold red]refused writers[/]")
        console.print(_intrusions_table(intrusions))


def _rate_cell(t: TopicInfo) -> str:
    text = _rate(t.rate_hz)
    if t.nominal_rate_hz > 0 and t.rate_hz < 0.5 * t.nominal_rate_hz:
        return f"[red]{text}[/]"
    return text


def _lifecycle_command(transition: str, summary: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context, name: Annotated[str, typer.Argument(help="Module name.")], json_out: JsonOption = False
    ) -> None:
        with _client(ctx) as client:
            m = client.change_state(name, transition)
        if json_out:
            _print_json(_module_json(m))
            return
        from rich.markup import escape

        extra = f", restarts {m.restarts}" if transition == "restart" else ""
        _console().print(f"{escape(m.name)}: {_styled(m.state, _STATE_STYLE)}{extra}")

    command.__doc__ = summary
    command.__name__ = transition
    return command


for _transition, _summary in (
    ("configure", "Configure a module (unconfigured -> inactive)."),
    ("activate", "Activate a module (inactive -> active)."),
    ("deactivate", "Deactivate a module (active -> inactive)."),
    ("cleanup", "Clean up a module (inactive -> unconfigured)."),
    ("shutdown", "Shut a module down (-> finalized); it is not restarted."),
    ("restart", "Restart a module's process and drive it back to its target state."),
):
    app.command(_transition)(_lifecycle_command(_transition, _summary))


@app.command()
def reload(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Re-read the platform configuration and resolve the platform again."""
    with _client(ctx) as client:
        changes = client.reload()
    if json_out:
        _print_json({"changes": changes})
        return
    from rich.markup import escape

    console = _console()
    console.print(f"configuration reloaded: {len(changes)} change{'' if len(changes) == 1 else 's'}")
    for change in changes:
        console.print(f"  - {escape(change)}")


@app.command()
def demo(  # noqa: PLR0917 - typer maps each option to a parameter
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds of scenario time to run (at most 60 s).")
    ] = 60.0,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Platform configuration (default: examples/patrol/platform.toml)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the state, logs and the recording.")] = Path(
        "demo-out"
    ),
    domain_id: Annotated[int | None, typer.Option("--domain-id", help="DDS domain (default: the config's).")] = None,
    live: Annotated[
        bool | None, typer.Option("--live/--no-live", help="Live view (default: when on a terminal).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Run the patrol mission: daemon, simulators, fusion, geofence, recorder; live view; summary."""
    from hardpoint_runtime._demo import run_demo

    if not 0 < duration <= 60:
        _fail("--duration must be more than 0 and at most 60 seconds")
    console = _console()
    if json_out:
        from rich.console import Console

        console = Console(file=sys.stderr, force_terminal=False, no_color=True)
    try:
        result = run_demo(
            config=config, duration_s=duration, out_dir=out, domain_id=domain_id, live=live, console=console
        )
    except (RuntimeError, OSError) as e:
        _fail(f"demo could not run: {e}")
    if json_out:
        _print_json({k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()})
    if not result.ok:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``hardpoint`` console script."""
    app(prog_name="hardpoint")


if __name__ == "__main__":
    main()
