"""``hardpoint conformance``: run the conformance checks on a module and write the evidence.

``hardpoint conformance check NAME_OR_WHEEL`` runs the check modules of the
hardpoint pytest plugin (every ``checks_*`` module of ``hardpoint.conformance`` and
``hardpoint_runtime.conformance``) in a
pytest subprocess against an installed module (its name in the entry-point
group ``hardpoint.modules``) or a pure-Python wheel, and writes into ``--report
DIR`` (default ``./conformance-report``):

``junit.xml``
    pytest's JUnit XML.
``hardpoint-result.json``
    the plugin's result: every check's verdict with its requirement IDs.
``report.md``
    a short human report: module, verdict, each check with its requirement IDs and outcome.
``pytest.log``
    pytest's own output.
``evidence.dsse.json`` (with ``--sign-key KEYFILE``)
    the result as an in-toto Statement v1 in a DSSE envelope signed with the
    key (:mod:`hardpoint_runtime.conformance._evidence`).

The JSON result binds the run to what was tested: the wheel's file name and
sha256 (for an installed module, its distribution and the sha256 of its
``RECORD``; such evidence cannot pass the evidence gate, which needs a wheel
digest), the suite version and the interface set version.

Every failing check carries its whole reason (every line, at most
:data:`MAX_REASON_BYTES` per reason, cut with a marker naming ``pytest.log``) in
``hardpoint-result.json``, ``report.md`` and the signed evidence (CF-EV-007), and every
check what it judged (CF-JDG-001).

While the checks run it prints progress to stderr: each check module as it starts and
ends (with its outcomes and time), and every :data:`PROGRESS_EVERY_S` seconds which
check is still running (CF-EV-014). It prints a summary (or JSON only with ``--json``)
on stdout and exits 0 when every check passed, 1 otherwise; a refusal (unknown module,
missing wheel, bad key, pytest unable to run) exits 1 with ``hardpoint: error: <cause>``
on stderr.

``hardpoint conformance keygen DIR`` makes a signer key pair;
``hardpoint conformance verify EVIDENCE --wheel WHEEL --trusted-key PUB``
exits 0 when the evidence is valid signed passing certified evidence for that
wheel, 1 with the reason otherwise.

Import-light like the rest of the CLI: only the standard library and typer at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer

if TYPE_CHECKING:
    from securesystemslib.signer import Signer

    from hardpoint_runtime.conformance._evidence import Subject

__all__ = ["conformance_app"]

conformance_app = typer.Typer(
    help="Conformance checks: run them on a module or wheel and write the evidence.",
    no_args_is_help=True,
)

#: Packages whose ``checks_*`` modules ``check`` runs: the SDK's static checks, the runtime's bus checks.
CHECK_PACKAGES: Final = ("hardpoint.conformance", "hardpoint_runtime.conformance")


def check_modules() -> tuple[str, ...]:
    """Every ``checks_*`` module of :data:`CHECK_PACKAGES`, found without importing it, in name order."""
    import importlib.util
    import pkgutil

    found: list[str] = []
    for package in CHECK_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        names = [m.name for m in pkgutil.iter_modules(spec.submodule_search_locations) if m.name.startswith("checks_")]
        found += [f"{package}.{name}" for name in sorted(names)]
    return tuple(found)


#: Entry-point group of capability modules (as in :mod:`hardpoint.conformance.plugin`).
MODULE_GROUP: Final = "hardpoint.modules"
RESULT_FILE: Final = "hardpoint-result.json"
JUNIT_FILE: Final = "junit.xml"
REPORT_FILE: Final = "report.md"
LOG_FILE: Final = "pytest.log"
EVIDENCE_FILE: Final = "evidence.dsse.json"
DEFAULT_REPORT: Final = Path("conformance-report")
#: Longest failure reason kept per check (bytes of UTF-8); a longer one is cut with a marker (CF-EV-007).
MAX_REASON_BYTES: Final = 4096
#: While one check runs, how often progress says it is still running (s).
PROGRESS_EVERY_S: Final = 30.0


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"hardpoint: error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(1)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _resolve_module(module: str) -> str:
    """The ``--hardpoint-module`` value: an absolute wheel path, or an installed entry-point name (checked)."""
    if module.endswith(".whl"):
        wheel = Path(module)
        if not wheel.is_file():
            _fail(f"no wheel file {module}")
        return str(wheel.resolve())
    import importlib.metadata as md

    names = {ep.name for ep in md.entry_points(group=MODULE_GROUP)}
    if module not in names:
        _fail(
            f"no module named {module!r} in entry-point group {MODULE_GROUP} "
            f"(installed: {', '.join(sorted(names)) or 'none'}); pass an installed module name or a .whl file"
        )
    return module


def _check_name(nodeid: str) -> str:
    """``path/checks_manifest.py::test_x`` -> ``test_x``."""
    return nodeid.rsplit("::", 1)[-1]


def bound_reason(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """``text`` whole when it fits in ``limit`` bytes of UTF-8, else its first ``limit`` bytes and a marker."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")  # never half a character
    return f"{kept}\n[... cut: the reason has {len(data)} bytes, the first {limit} are kept; see {LOG_FILE}]"


def _junit_messages(junit: Path) -> dict[str, str]:
    """Failure and error messages from the JUnit XML, by test name (bounded).

    pytest shortens the ``message`` attribute of a multi-line reason; the plugin's verdicts carry it whole
    (``reason``), so this is only the fallback for a verdict without one.
    """
    import xml.etree.ElementTree as ET

    messages: dict[str, str] = {}
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return messages
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            for element in case.findall(tag):
                text = (element.get("message") or element.text or "").strip()
                if text:
                    messages.setdefault(case.get("name", ""), bound_reason(text))
    return messages


def _summarise(result: dict[str, Any], messages: dict[str, str], returncode: int) -> dict[str, Any]:
    """The run as one JSON-ready dict: module, verdict, and per check its requirement ids, outcome and message."""
    checks: dict[str, dict[str, Any]] = {}
    for verdict in result.get("verdicts", []):
        name = _check_name(str(verdict["test"]))
        check = checks.setdefault(
            name,
            {
                "check": name,
                "test": verdict["test"],
                "requirements": list(verdict.get("requirements", [])),
                "outcome": "passed",
            },
        )
        if verdict.get("judged"):
            check["judged"] = verdict["judged"]
        if verdict["outcome"] != "passed":
            # An error in setup/teardown fails the check too; keep the first non-pass with its phase.
            if check["outcome"] == "passed":
                check["outcome"] = verdict["outcome"] if verdict["phase"] == "call" else "error"
            # The plugin's whole reason, bounded by it (CF-EV-007); the JUnit XML's message (bounded here) when
            # a plugin gave none.
            reason = verdict.get("reason") or messages.get(name)
            if reason and "message" not in check:
                check["message"] = str(reason)
    passed = returncode == 0 and bool(checks) and all(c["outcome"] == "passed" for c in checks.values())
    return {
        "module": result.get("module"),
        "certified": bool(result.get("certified", False)),
        "verdict": "pass" if passed else "fail",
        "pytest_exitstatus": returncode,
        "checks": list(checks.values()),
    }


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# Conformance report: {summary['module']}",
        "",
        f"- Module: `{summary['module']}`",
        f"- Mode: {'certified (skips fail)' if summary['certified'] else 'relaxed (skips allowed)'}",
        f"- Verdict: **{summary['verdict'].upper()}**",
        *_binding_lines(summary),
        f"- Check modules: {', '.join(f'`{m}`' for m in summary.get('check_modules', check_modules()))}",
        "",
        "| Check | Requirements | Outcome | Judged |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{c['check']}` | {', '.join(c['requirements']) or '-'} | {c['outcome']} | {_cell(c.get('judged', '-'))} |"
        for c in summary["checks"]
    ]
    failures = [c for c in summary["checks"] if c["outcome"] != "passed"]
    if failures:
        lines += ["", "## Failures", ""]
        for c in failures:
            # The whole reason, every line (CF-EV-007), in a fence so that Markdown keeps it as it is.
            reason = c.get("message", c["outcome"])
            lines += [f"- `{c['check']}` ({', '.join(c['requirements'])}):", "", "  ````text"]
            lines += [f"  {line}" if line else "" for line in reason.splitlines()]
            lines += ["  ````", ""]
    signed = f", `{EVIDENCE_FILE}` (signed result)" if summary.get("evidence") else ""
    lines += [
        "",
        f"Evidence: `{JUNIT_FILE}` (JUnit XML), `{RESULT_FILE}` (verdicts){signed}, `{LOG_FILE}` (pytest output).",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _binding_lines(summary: dict[str, Any]) -> list[str]:
    """What the run is bound to: the wheel digest (or the installed distribution), suite, interface set, signer."""
    subject, suite, interfaces = summary.get("subject"), summary.get("suite"), summary.get("interface_set")
    lines = []
    if subject and subject["kind"] == "wheel":
        lines.append(f"- Wheel: `{subject['name']}` sha256 `{subject['sha256']}`")
    elif subject:
        lines.append(
            f"- Installed distribution: `{subject['name']}` (sha256 of its RECORD `{subject['sha256']}`); "
            "not a wheel, so this evidence cannot pass the evidence gate"
        )
    if suite:
        lines.append(
            f"- Suite: hardpoint {suite['hardpoint']}, hardpoint-runtime {suite['hardpoint-runtime']}, "
            f"checks sha256 `{suite['checks_sha256']}`"
        )
    if interfaces:
        lines.append(
            f"- Interface set: sha256 `{interfaces['descriptor_set_sha256']}` ({', '.join(interfaces['packages'])})"
        )
    evidence = summary.get("evidence")
    if evidence:
        lines.append(f"- Signed evidence: `{EVIDENCE_FILE}`, key {', '.join(evidence['keyids'])}")
    return lines


@conformance_app.callback()
def _conformance() -> None:
    """Conformance checks: run them on a module or wheel and write the evidence."""


def _select(only: list[str] | None, *, certified: bool) -> tuple[str, ...]:
    """The check modules to run: all of them, or those named by ``--only`` (a certified run needs them all)."""
    available = check_modules()
    if not only:
        return available
    if certified:
        _fail("--only cannot be used with --certified: a certified run runs every check module")
    by_name = {name: name for name in available} | {name.rsplit(".", 1)[-1]: name for name in available}
    unknown = [name for name in only if name not in by_name]
    if unknown:
        _fail(f"no check module {', '.join(unknown)} (available: {', '.join(available)})")
    return tuple(dict.fromkeys(by_name[name] for name in only))


def _load_signer(key: Path) -> Signer:
    from hardpoint_runtime.conformance._evidence import load_signer
    from hardpoint_runtime.update._errors import EvidenceError

    try:
        return load_signer(key)
    except EvidenceError as e:
        _fail(str(e))


def _subject(module: str, target: str) -> Subject:
    """What the run is bound to: the wheel file and its digest, or the installed module's distribution."""
    from hardpoint_runtime.conformance._evidence import installed_subject, wheel_subject

    if target.endswith(".whl"):
        return wheel_subject(Path(target))
    try:
        return installed_subject(module, MODULE_GROUP)
    except LookupError as e:
        _fail(str(e))


def _module_name(module: str, target: str) -> str:
    """The entry-point name of the module under test (a wheel's single entry point, else ``module``)."""
    if not target.endswith(".whl"):
        return module
    import importlib.metadata as md

    names = [ep.name for d in md.distributions(path=[target]) for ep in d.entry_points if ep.group == MODULE_GROUP]
    return names[0] if len(names) == 1 else module


def _bind(
    summary: dict[str, Any], plugin_result: dict[str, Any], module: str, target: str, subject: Subject
) -> dict[str, Any]:
    """The JSON result: the plugin's verdicts plus the subject, suite and interface-set versions and the checks."""
    from hardpoint_runtime.conformance._evidence import evidence_result, interface_set_version, suite_version

    bound = evidence_result(
        {**summary, "module": _module_name(module, target)},
        subject=subject,
        suite=suite_version(),
        interface_set=interface_set_version(),
    )
    return {**plugin_result, **bound}


def _write_evidence(result: dict[str, Any], signer: Signer, report_dir: Path) -> dict[str, Any]:
    from hardpoint_runtime.conformance._evidence import sign_evidence

    envelope = sign_evidence(result, signer)
    path = report_dir / EVIDENCE_FILE
    path.write_text(json.dumps(envelope.to_dict(), indent=2) + "\n", encoding="utf-8")
    return {"file": str(path), "keyids": sorted(envelope.signatures)}


def _report_dir(report: Path) -> Path:
    """The report directory, created, without the files of an earlier run."""
    report_dir = report.resolve()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"cannot create report directory {report_dir}: {e.strerror or e}")
    for stale in (RESULT_FILE, JUNIT_FILE, EVIDENCE_FILE):
        (report_dir / stale).unlink(missing_ok=True)
    return report_dir


def _print_summary(summary: dict[str, Any], module: str, *, certified: bool) -> None:
    _say(f"{module}: {summary['verdict'].upper()}{' (certified)' if certified else ''}")
    for c in summary["checks"]:
        nothing = " (judged nothing)" if str(c.get("judged", "")).startswith("nothing") else ""
        _say(f"  {c['outcome']:<7} {c['check']} [{', '.join(c['requirements'])}]{nothing}")
        for line in c.get("message", "").splitlines():
            _say(f"          {line}")
    subject = summary["subject"]
    if subject["kind"] == "wheel":
        _say(f"wheel: {subject['name']} sha256 {subject['sha256']}")
    else:
        _say(
            f"installed: {subject['name'].removeprefix('installed:')} (RECORD sha256 {subject['sha256']}; "
            "not a wheel, cannot pass the evidence gate)"
        )
    if "evidence" in summary:
        _say(f"signed evidence: {summary['evidence']['file']} (key {', '.join(summary['evidence']['keyids'])})")
    _say(f"report: {summary['report']['markdown']}")


def _run_pytest(command: list[str], report_dir: Path) -> tuple[int, str]:
    """Run the checks (pytest), showing progress on stderr; its exit code and output (also in ``pytest.log``)."""
    log = report_dir / LOG_FILE
    with tempfile.TemporaryDirectory(prefix="hardpoint-progress-") as tmp:
        events = Path(tmp) / "progress.jsonl"
        events.touch()
        progress = Progress(_note)
        watcher = _ProgressWatcher(events, progress)
        with log.open("w", encoding="utf-8") as out:
            at = command.index("--pyargs")  # the option goes before the check modules
            proc = subprocess.Popen(
                [*command[:at], "--hardpoint-progress", str(events), *command[at:]],
                cwd=report_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
            watcher.start()
            try:
                returncode = proc.wait()
            except BaseException:  # interrupted: the checks do not run on without us
                proc.kill()
                proc.wait()
                raise
            finally:
                watcher.stop()
    return returncode, log.read_text(encoding="utf-8", errors="replace")


def _note(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _check_module_of(event: Mapping[str, Any]) -> str:
    """An event's check module, short: ``hardpoint_runtime.conformance.checks_contract`` -> ``checks_contract``."""
    return str(event.get("module") or "?").rsplit(".", 1)[-1]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class Progress:
    """What ``check`` says on stderr while the checks run, from the plugin's progress events (CF-EV-014).

    Pure apart from ``say`` and ``clock``: :meth:`feed` takes one event (``collected``, ``start``,
    ``result``), :meth:`tick` says which check is still running every ``every_s`` seconds of silence,
    :meth:`finish` closes the last check module and says how the run ended. Lines start with the elapsed
    time since the progress began: ``[1:05] checks_contract: 7 passed in 28 s``.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._say = say
        self._every_s = every_s
        self._clock = clock
        self._t0 = clock()
        self._last_said = self._t0
        self._planned: dict[str, int] = {}
        self._module: str | None = None
        self._module_t0 = self._t0
        self._check: str | None = None
        self._outcomes: dict[str, dict[str, str]] = {}

    def _line(self, text: str) -> None:
        now = self._clock()
        self._last_said = now
        self._say(f"[{_clock(now - self._t0)}] {text}")

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "collected":
            checks = [c for c in event.get("checks", []) if isinstance(c, Mapping)]
            for c in checks:
                module = _check_module_of(c)
                self._planned[module] = self._planned.get(module, 0) + 1
            self._line(f"{len(checks)} checks in {len(self._planned)} check modules: {', '.join(self._planned)}")
        elif kind == "start":
            nodeid = str(event.get("nodeid", ""))
            module = _check_module_of(event)
            if module != self._module:
                self._close_module()
                self._module, self._module_t0 = module, self._clock()
                planned = self._planned.get(module)
                self._line(f"{module}: started{f' ({planned} checks)' if planned else ''}")
            self._check = nodeid.rsplit("::", 1)[-1]
        elif kind == "result":
            nodeid = str(event.get("nodeid", ""))
            outcome = str(event.get("outcome", ""))
            outcomes = self._outcomes.setdefault(_check_module_of(event), {})
            if outcomes.get(nodeid, "passed") == "passed":
                outcomes[nodeid] = outcome if event.get("phase") == "call" or outcome == "passed" else "error"

    def tick(self) -> None:
        """Say which check is still running when nothing was said for ``every_s`` seconds."""
        now = self._clock()
        if self._module is not None and now - self._last_said >= self._every_s:
            running = f" ({self._check})" if self._check else ""
            self._line(f"{self._module}: still running after {now - self._module_t0:.0f} s{running}")

    def _close_module(self) -> None:
        if self._module is None:
            return
        outcomes = self._outcomes.get(self._module, {})
        counts: dict[str, int] = {}
        for outcome in outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        told = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no result"
        self._line(f"{self._module}: {told} in {self._clock() - self._module_t0:.0f} s")
        self._module = None
        self._check = None

    def finish(self) -> None:
        self._close_module()
        counts: dict[str, int] = {}
        for outcomes in self._outcomes.values():
            for outcome in outcomes.values():
                counts[outcome] = counts.get(outcome, 0) + 1
        told = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no check ran"
        self._line(f"checks done: {told}")


class _ProgressWatcher:
    """Reads the progress file as pytest appends to it, on a thread, and feeds a :class:`Progress`."""

    POLL_S: Final = 0.25

    def __init__(self, path: Path, progress: Progress) -> None:
        self._path = path
        self._progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conformance-progress", daemon=True)
        self._offset = 0
        self._partial = ""

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._path.open("r", encoding="utf-8") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except OSError:
            return
        text = self._partial + chunk
        *lines, self._partial = text.split("\n")
        for event in _events(lines):
            self._progress.feed(event)

    def _run(self) -> None:
        while not self._stop.wait(self.POLL_S):
            self._read()
            self._progress.tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._read()
        self._progress.finish()


def _events(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            yield event


@conformance_app.command()
def check(
    module: Annotated[str, typer.Argument(help="The module under test: its installed entry-point name, or a wheel.")],
    *,
    report: Annotated[
        Path, typer.Option("--report", help="Directory for junit.xml, hardpoint-result.json and report.md.")
    ] = DEFAULT_REPORT,
    certified: Annotated[bool, typer.Option("--certified", help="Certified run: a skipped check fails.")] = False,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help=f"Private key (PEM) to sign the result with: writes {EVIDENCE_FILE} (see 'conformance keygen').",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this check module (e.g. checks_manifest; repeatable). Not with --certified.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML with the module's [config] table and [adapters.<name>] bindings for the bus checks.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> None:
    """Run the conformance checks on MODULE; exit 0 if every check passed, 1 otherwise."""
    summary = run_check(module, report=report, certified=certified, sign_key=sign_key, only=only, config=config)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        sys.stdout.flush()
    else:
        _print_summary(summary, module, certified=certified)
    raise typer.Exit(0 if summary["verdict"] == "pass" else 1)


def run_check(
    module: str,
    *,
    report: Path = DEFAULT_REPORT,
    certified: bool = False,
    sign_key: Path | None = None,
    only: list[str] | None = None,
    config: Path | None = None,
) -> dict[str, Any]:
    """Run the checks (progress on stderr), write the report and the evidence; the summary (``verdict`` pass/fail).

    What ``check`` does before it prints; ``hardpoint release ship`` runs it too. A refusal (unknown
    module, missing wheel, bad key, pytest unable to run) ends the command (exit 1) naming the cause.
    """
    selected = _select(only, certified=certified)
    if config is not None and not config.is_file():
        _fail(f"no configuration file {config}")
    target = _resolve_module(module)
    signer = _load_signer(sign_key) if sign_key is not None else None  # a bad key fails before the run
    subject = _subject(module, target)  # the digest of what is about to be tested
    report_dir = _report_dir(report)
    result_file, junit_file = report_dir / RESULT_FILE, report_dir / JUNIT_FILE
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
        # Isolated from the caller's project: no ini file, rootdir and cwd in the report directory.
        "-c", os.devnull, "--rootdir", str(report_dir),
        "--hardpoint-module", target,
        "--junitxml", str(junit_file),
        "--hardpoint-report", str(report_dir),
        *(["--hardpoint-certified"] if certified else []),
        *(["--hardpoint-config", str(config.resolve())] if config is not None else []),
        "--pyargs", *selected,
    ]  # fmt: skip
    returncode, output = _run_pytest(command, report_dir)
    if not result_file.is_file():
        tail = "\n".join(output.strip().splitlines()[-10:])
        _fail(f"pytest exited {returncode} without writing {result_file}:\n{tail}")
    if subject.kind == "wheel" and _subject(module, target) != subject:
        _fail(f"{target} changed during the run (sha256 was {subject.sha256}): no result is bound to it; run again")
    plugin_result = json.loads(result_file.read_text(encoding="utf-8"))
    summary = _summarise(plugin_result, _junit_messages(junit_file), returncode)
    summary["module"] = module
    summary["check_modules"] = list(selected)
    result = _bind(summary, plugin_result, module, target, subject)
    result_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summary.update(subject=result["subject"], suite=result["suite"], interface_set=result["interface_set"])
    summary["report"] = {
        "dir": str(report_dir),
        "junit": str(junit_file),
        "result": str(result_file),
        "markdown": str(report_dir / REPORT_FILE),
    }
    if signer is not None:
        summary["evidence"] = _write_evidence(result, signer, report_dir)
        summary["report"]["evidence"] = summary["evidence"]["file"]
    (report_dir / REPORT_FILE).write_text(_markdown(summary), encoding="utf-8")
    return summary


@conformance_app.command()
def keygen(
    directory: Annotated[Path, typer.Argument(help="Where the key pair goes (created if needed).")],
    *,
    name: Annotated[str, typer.Option("--name", help="File name stem of the pair.")] = "conformance-signer",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> None:
    """Make an Ed25519 signer key pair: <NAME>.pem (private, mode 0600) and <NAME>.pub.pem (to trust)."""
    from hardpoint_runtime.conformance._evidence import generate_key_pair
    from hardpoint_runtime.update._errors import EvidenceError

    try:
        private, public, keyid = generate_key_pair(directory, name)
    except EvidenceError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot write the key pair into {directory}: {e.strerror or e}")
    if as_json:
        sys.stdout.write(json.dumps({"private_key": str(private), "public_key": str(public), "keyid": keyid}) + "\n")
        return
    _say(f"key id {keyid}")
    _say(f"  private key (sign with: conformance check --sign-key): {private}")
    _say(f"  public key (trust with: conformance verify --trusted-key, [update] conformance_keys): {public}")


@conformance_app.command()
def verify(
    evidence: Annotated[Path, typer.Argument(help=f"The signed evidence ({EVIDENCE_FILE}).")],
    *,
    wheel: Annotated[Path, typer.Option("--wheel", help="The wheel the evidence must be for.")],
    trusted_key: Annotated[
        list[Path], typer.Option("--trusted-key", help="Public key (PEM) of a trusted conformance signer (repeatable).")
    ],
    threshold: Annotated[int, typer.Option("--threshold", min=1, help="Trusted signatures needed.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> None:
    """Exit 0 if EVIDENCE is signed passing certified evidence for WHEEL from trusted keys, 1 with the reason."""
    from hardpoint_runtime.conformance._evidence import load_trusted_keys, verify_evidence, wheel_subject
    from hardpoint_runtime.update._errors import EvidenceError

    for path, what in ((evidence, "evidence file"), (wheel, "wheel file")):
        if not path.is_file():
            _fail(f"no {what} {path}")
    try:
        subject = wheel_subject(wheel)
        keys = load_trusted_keys(trusted_key)
        if threshold > len(keys):
            _fail(f"threshold {threshold} exceeds the {len(keys)} trusted key(s) given")
        verified = verify_evidence(
            evidence.read_bytes(), wheel_sha256=subject.sha256, trusted_keys=keys, threshold=threshold
        )
    except EvidenceError as e:
        _fail(str(e))
    out = {
        "ok": True,
        "module": verified.module,
        "wheel": subject.name,
        "sha256": subject.sha256,
        "certified": verified.certified,
        "checks": len(verified.checks),
        "signed_by": list(verified.signed_by),
        "suite": {k: v for k, v in verified.suite.items() if k != "sources"},
        "interface_set": verified.interface_set,
    }
    if as_json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    _say(f"OK: {subject.name} (sha256 {subject.sha256})")
    _say(f"  module {verified.module}: certified, {len(verified.checks)} checks passed")
    _say(f"  signed by {', '.join(verified.signed_by)}")
