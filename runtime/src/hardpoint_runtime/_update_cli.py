"""``hardpoint update``: the operator's view of signed module updates on a running hardpointd.

``check`` refreshes the signed metadata and lists what the update repository
offers each configured module; ``apply MODULE`` verifies, installs, stages,
gates, switches and watches one module, showing progress bars for the download
and for the gate and probation windows (fed by the daemon's streamed
progress); ``status`` lists updates in progress, ``history`` every attempt
with its outcome and, for a refusal or rollback, its cause, TUF role and
reason; ``rollback MODULE`` returns a module to its previous version.

Exit codes: 0 on success; 1 when ``apply`` ends refused or rolled back (the
reason is printed), and on any error (``hardpoint: error: <cause>`` on
stderr); 2 on a usage error. ``--json`` prints machine-readable JSON only.

Import-light like the rest of the CLI: gRPC and rich are loaded when a command runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from hardpoint_runtime._control import UpdateOffer, UpdateProgress, UpdateRecord

__all__ = ["update_app"]

update_app = typer.Typer(
    help="Signed module updates: check the repository, apply, watch, list the history, roll back.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
ModuleArg = Annotated[str, typer.Argument(help="Module name (as in the platform configuration).")]

#: Outcomes of ``apply`` that exit 0.
_SUCCESS: Final = frozenset({"committed"})
#: Steps whose ``done``/``total`` are bytes of the download.
_DOWNLOAD_STEPS: Final = frozenset({"requested", "downloaded"})
#: Steps during which ``done``/``total`` are seconds of the health gate (the new version runs beside the old).
_GATE_STEPS: Final = frozenset({"installed", "staged"})
#: Steps during which ``done``/``total`` are seconds of probation (the new version serves alone).
_PROBATION_STEPS: Final = frozenset({"gate_passed", "switched"})
#: Reaching these steps means the window of these bars is over (passed).
_COMPLETES: Final[dict[str, tuple[str, ...]]] = {
    "gate_passed": ("gate",),
    "probation_passed": ("gate", "probation"),
    "committed": ("gate", "probation"),
}
_OUTCOME_STYLE: Final = {
    "committed": "green",
    "in_progress": "cyan",
    "rolled_back": "bold yellow",
    "refused": "bold red",
    "interrupted": "yellow",
}
_OFFER_STYLE: Final = {"available": "green", "current": "dim", "refused": "bold red"}


def _cli() -> Any:
    """The main CLI module (imported late: it imports this one to register ``update``)."""
    from hardpoint_runtime import cli

    return cli


def _record_json(r: UpdateRecord) -> dict[str, Any]:
    return asdict(r)


def _when(time_ns: int) -> str:
    if time_ns <= 0:
        return "-"
    return datetime.fromtimestamp(time_ns / 1e9).astimezone().isoformat(timespec="seconds")


def _versions(r: UpdateRecord) -> str:
    return f"{r.from_version or '(none)'} -> {r.to_version or '?'}"


def _size(length: int) -> str:
    if length >= 1 << 20:
        return f"{length / (1 << 20):.1f} MiB"
    if length >= 1 << 10:
        return f"{length / (1 << 10):.1f} KiB"
    return f"{length} B"


def refusal_text(r: UpdateRecord) -> str:
    """One line saying why an update did not commit: outcome, module, versions, cause, role, reason."""
    parts = [f"update of {r.module} {_versions(r)} {r.outcome.replace('_', ' ')}"]
    if r.cause:
        parts.append(f"cause {r.cause}")
    if r.role:
        parts.append(f"role {r.role}")
    text = ", ".join(parts)
    return f"{text}: {r.reason}" if r.reason else text


# --------------------------------------------------------------------------- progress


class _ProgressView:
    """Shows an update's progress: one line per step, and bars for the download, the gate and probation.

    Bars are drawn only on a terminal; elsewhere (logs, tests) the step lines alone are printed,
    so the output stays readable text.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._bars: dict[str, TaskID] = {}
        self._last_step = ""
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description:<10}"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} {task.fields[unit]}"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )

    def __enter__(self) -> _ProgressView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, p: UpdateProgress) -> None:
        if p.step != self._last_step:
            self._last_step = p.step
            self._line(p)
        for done in _COMPLETES.get(p.step, ()):
            self._complete(done)
        bar = self._bar_for(p.step)
        if bar is not None and p.total > 0:
            self._advance(bar, p)

    def _line(self, p: UpdateProgress) -> None:
        from rich.markup import escape

        extra = f": {escape(p.message)}" if p.message else ""
        if p.step in _DOWNLOAD_STEPS and p.total > 0:
            extra += f" ({_size(p.total)})"
        self._console.print(f"{escape(p.module)}: [bold]{escape(p.step.replace('_', ' '))}[/]{extra}")

    @staticmethod
    def _bar_for(step: str) -> str | None:
        if step in _DOWNLOAD_STEPS:
            return "download"
        if step in _GATE_STEPS:
            return "gate"
        if step in _PROBATION_STEPS:
            return "probation"
        return None

    def _complete(self, bar: str) -> None:
        task = self._bars.get(bar)
        if self._progress is not None and task is not None:
            total = self._progress.tasks[task].total
            self._progress.update(task, completed=total)

    def _advance(self, bar: str, p: UpdateProgress) -> None:
        if self._progress is None:
            return
        task = self._bars.get(bar)
        unit = "bytes" if bar == "download" else "s"  # the gate and probation bars count seconds
        if task is None:
            task = self._progress.add_task(bar, total=p.total, unit=unit)
            self._bars[bar] = task
        self._progress.update(task, completed=min(p.done, p.total), total=p.total)


# --------------------------------------------------------------------------- commands


@update_app.command()
def check(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """What the update repository offers each configured module (refreshes the signed metadata)."""
    cli = _cli()
    with cli._client(ctx) as client:
        offers: list[UpdateOffer] = client.check_updates()
    if json_out:
        cli._print_json([asdict(o) for o in offers])
        return
    from rich.markup import escape

    table = cli._table("MODULE", "INSTALLED", "AVAILABLE", "SUPPLIER", "SIZE", "STATUS", "REASON")
    for o in offers:
        table.add_row(
            escape(o.module),
            escape(o.installed_version) or "-",
            escape(o.available_version) or "-",
            escape(o.supplier) or "-",
            _size(o.length) if o.length else "-",
            cli._styled(o.status, _OFFER_STYLE),
            escape(o.reason) or "",
        )
    cli._console().print(table if offers else "no modules configured for updates")


@update_app.command()
def apply(
    ctx: typer.Context,
    module: ModuleArg,
    version: Annotated[
        str | None, typer.Option("--version", help="Version to install (default: the newest signed one).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0, help="Give up waiting after this many seconds (0: wait until it ends)."),
    ] = 0,
    json_out: JsonOption = False,
) -> None:
    """Verify, install side by side, stage, gate, switch and watch MODULE; exit 1 if refused or rolled back.

    Ctrl-C ends the command, not the update: hardpointd finishes it ('hardpoint update status').
    """
    cli = _cli()
    console = None if json_out else cli._console()
    previous = None
    if threading.current_thread() is threading.main_thread():
        # As for 'events --follow': Ctrl-C may land inside gRPC's C core, where a KeyboardInterrupt
        # can leave the channel stuck; leave at once instead (the daemon sees the stream close).
        previous = signal.signal(signal.SIGINT, _leave_on_interrupt(module))
    try:
        with cli._client(ctx) as client:
            if console is None:
                result: UpdateRecord = client.apply_update(module, version, timeout_s=timeout or None)
            else:
                with _ProgressView(console) as view:
                    result = client.apply_update(module, version, progress=view, timeout_s=timeout or None)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if json_out:
        cli._print_json(_record_json(result))
    else:
        _print_result(result)
    if result.outcome not in _SUCCESS:
        cli._fail(refusal_text(result))


def _leave_on_interrupt(module: str) -> Callable[[int, object], None]:
    def leave(_signum: int, _frame: object) -> None:
        sys.stdout.flush()
        sys.stderr.write(
            f"hardpoint: error: interrupted; the update of {module!r} goes on in hardpointd "
            "(follow it with 'hardpoint update status' and 'hardpoint update history')\n"
        )
        sys.stderr.flush()
        os._exit(1)

    return leave


def _print_result(r: UpdateRecord) -> None:
    from rich.markup import escape

    cli = _cli()
    console = cli._console()
    line = f"{escape(r.module)} {escape(_versions(r))}: {cli._styled(r.outcome, _OUTCOME_STYLE)}"
    if r.switch_gap_ms >= 0:
        line += f" (switch gap {r.switch_gap_ms:.1f} ms)"
    console.print(line)


def _history_table(records: list[UpdateRecord]) -> Any:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    # Every column but the reason keeps to one line; the reason takes what width is left and folds
    # (at 120 columns the time and the cause used to be split across lines).
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for name in ("ID", "STARTED", "MODULE", "FROM -> TO", "OUTCOME", "STEP", "CAUSE", "ROLE"):
        table.add_column(name, no_wrap=True)
    table.add_column("REASON", overflow="fold", ratio=1, min_width=20)
    cli = _cli()
    for r in records:
        table.add_row(
            str(r.id),
            escape(_when(r.started_ns)),
            escape(r.module),
            escape(_versions(r)),
            cli._styled(r.outcome, _OUTCOME_STYLE),
            escape(r.step),
            escape(r.cause) or "-",
            escape(r.role) or "-",
            escape(r.reason) or "",
        )
    return table


@update_app.command()
def status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Updates in progress now."""
    cli = _cli()
    with cli._client(ctx) as client:
        running: list[UpdateRecord] = client.update_status()
    if json_out:
        cli._print_json([_record_json(r) for r in running])
        return
    cli._console().print(_history_table(running) if running else "no update in progress")


@update_app.command()
def history(
    ctx: typer.Context,
    module: Annotated[str | None, typer.Argument(help="Only this module's updates.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many attempts.")] = 100,
    json_out: JsonOption = False,
) -> None:
    """Every update attempt, newest first: module, from -> to, outcome, and why it was refused or rolled back."""
    cli = _cli()
    with cli._client(ctx) as client:
        records: list[UpdateRecord] = client.update_history(module, limit)
    if json_out:
        cli._print_json([_record_json(r) for r in records])
        return
    cli._console().print(_history_table(records) if records else "no update attempts recorded")


@update_app.command()
def rollback(ctx: typer.Context, module: ModuleArg, json_out: JsonOption = False) -> None:
    """Return MODULE to the version it ran before its last committed update."""
    cli = _cli()
    with cli._client(ctx) as client:
        result: UpdateRecord = client.rollback_update(module)
    if json_out:
        cli._print_json(_record_json(result))
    else:
        _print_result(result)
    if result.outcome == "refused":
        cli._fail(refusal_text(result))
