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

It prints a summary (or JSON only with ``--json``) and exits 0 when every
check passed, 1 otherwise; a refusal (unknown module, missing wheel, pytest
unable to run) exits 1 with ``hardpoint: error: <cause>`` on stderr.

Import-light like the rest of the CLI: only the standard library and typer at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer

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
DEFAULT_REPORT: Final = Path("conformance-report")


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


def _junit_messages(junit: Path) -> dict[str, str]:
    """Failure and error messages from the JUnit XML, by test name (the first line of each)."""
    import xml.etree.ElementTree as ET

    messages: dict[str, str] = {}
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return messages
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            for element in case.findall(tag):
                text = element.get("message") or (element.text or "")
                if text:
                    messages.setdefault(case.get("name", ""), text.strip().splitlines()[0])
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
        if verdict["outcome"] != "passed":
            # An error in setup/teardown fails the check too; keep the first non-pass with its phase.
            if check["outcome"] == "passed":
                check["outcome"] = verdict["outcome"] if verdict["phase"] == "call" else "error"
            if name in messages:
                check["message"] = messages[name]
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
        f"- Check modules: {', '.join(f'`{m}`' for m in check_modules())}",
        "",
        "| Check | Requirements | Outcome |",
        "|---|---|---|",
    ]
    lines += [f"| `{c['check']}` | {', '.join(c['requirements']) or '-'} | {c['outcome']} |" for c in summary["checks"]]
    failures = [c for c in summary["checks"] if c["outcome"] != "passed"]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [
            f"- `{c['check']}` ({', '.join(c['requirements'])}): {c.get('message', c['outcome'])}" for c in failures
        ]
    lines += [
        "",
        f"Evidence: `{JUNIT_FILE}` (JUnit XML), `{RESULT_FILE}` (verdicts), `{LOG_FILE}` (pytest output).",
        "",
    ]
    return "\n".join(lines)


@conformance_app.callback()
def _conformance() -> None:
    """Conformance checks: run them on a module or wheel and write the evidence."""


@conformance_app.command()
def check(
    module: Annotated[str, typer.Argument(help="The module under test: its installed entry-point name, or a wheel.")],
    *,
    report: Annotated[
        Path, typer.Option("--report", help="Directory for junit.xml, hardpoint-result.json and report.md.")
    ] = DEFAULT_REPORT,
    certified: Annotated[bool, typer.Option("--certified", help="Certified run: a skipped check fails.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")] = False,
) -> None:
    """Run the conformance checks on MODULE; exit 0 if every check passed, 1 otherwise."""
    target = _resolve_module(module)
    report_dir = report.resolve()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"cannot create report directory {report_dir}: {e.strerror or e}")
    result_file, junit_file = report_dir / RESULT_FILE, report_dir / JUNIT_FILE
    for stale in (result_file, junit_file):
        stale.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
        # Isolated from the caller's project: no ini file, rootdir and cwd in the report directory.
        "-c", os.devnull, "--rootdir", str(report_dir),
        "--hardpoint-module", target,
        "--junitxml", str(junit_file),
        "--hardpoint-report", str(report_dir),
        *(["--hardpoint-certified"] if certified else []),
        "--pyargs", *check_modules(),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=report_dir, capture_output=True, text=True, check=False)
    (report_dir / LOG_FILE).write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if not result_file.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
        _fail(f"pytest exited {proc.returncode} without writing {result_file}:\n{tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    summary = _summarise(result, _junit_messages(junit_file), proc.returncode)
    summary["module"] = module
    summary["report"] = {
        "dir": str(report_dir),
        "junit": str(junit_file),
        "result": str(result_file),
        "markdown": str(report_dir / REPORT_FILE),
    }
    (report_dir / REPORT_FILE).write_text(_markdown(summary), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        sys.stdout.flush()
    else:
        _say(f"{module}: {summary['verdict'].upper()}{' (certified)' if certified else ''}")
        for c in summary["checks"]:
            _say(f"  {c['outcome']:<7} {c['check']} [{', '.join(c['requirements'])}]")
            if "message" in c:
                _say(f"          {c['message']}")
        _say(f"report: {report_dir / REPORT_FILE}")
    raise typer.Exit(0 if summary["verdict"] == "pass" else 1)
