"""The hardpoint conformance pytest plugin (entry point ``pytest11``: ``hardpoint``).

Installed with the SDK, so pytest loads it in every project that has ``hardpoint``
installed. It stays inert there: at import it loads only the standard library and
pytest, and unless ``--hardpoint-module`` is given it registers its options and
its marker and does nothing else (no files, no DDS, no gRPC, no protobuf).

A supplier runs the checks against an installed module (entry point group
``hardpoint.modules``) or a pure-Python wheel::

    pytest --hardpoint-module nav --pyargs hardpoint.conformance.checks_manifest
    pytest --hardpoint-module dist/mymod-1.0-py3-none-any.whl --hardpoint-certified \\
        --hardpoint-report out/ --pyargs hardpoint.conformance.checks_manifest

Options (group ``hardpoint``):

``--hardpoint-module``
    The module under test: its entry-point name, or a wheel file.
``--hardpoint-report DIR``
    Write ``DIR/hardpoint-result.json``: the module, and every hardpoint test's
    verdict with its requirement IDs.
``--hardpoint-certified``
    Forbid skips: a skipped test marked ``hardpoint`` fails.
``--hardpoint-config FILE``
    TOML with the module's own ``[config]`` table and ``[adapters.<binding>]`` tables
    (``driver``, ``config``) used when the bus checks host the module; default: no
    configuration and the simulated bindings of the patrol platform.
``--hardpoint-max-examples N``
    Generated examples per input interface and message family in the robustness and
    task checks (default 25; environment ``HARDPOINT_MAX_EXAMPLES``).
``--hardpoint-progress FILE``
    Append one JSON line per event (collected, check started, check finished with its
    outcome) to FILE as the run goes: ``hardpoint conformance check`` shows progress from it.

What a check judged (``spec/conformance.md`` CF-JDG): every check records, with
:func:`judged` and :func:`not_applicable`, how many items it judged (cells, samples,
keys, ...) or why it does not apply to the module (decided from its manifest or the
contract, never from an empty observation). The verdict of each check in the result
carries it (``judged``). A check that passed having judged nothing (every count 0, or
nothing recorded) fails in certified mode, naming the check and what was missing.

Fixtures (hardpoint is imported inside them, never at plugin load):
``hardpoint_module`` (the loaded entry-point object), ``hardpoint_manifest``
(its validated :class:`hardpoint.Manifest`) and ``hardpoint_interfaces``
(:func:`hardpoint.all_interfaces`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec, Manifest

__all__ = [
    "hardpoint_interfaces",
    "hardpoint_manifest",
    "bound_reason",
    "hardpoint_module",
    "judged",
    "judgement",
    "not_applicable",
    "pytest_addoption",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_runtest_setup",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]

#: Entry-point group of capability modules.
MODULE_GROUP: Final = "hardpoint.modules"
#: Marker that ties a check to the requirement IDs of ``spec/`` it verifies.
MARKER: Final = "hardpoint"
#: File written into ``--hardpoint-report DIR``.
RESULT_FILE: Final = "hardpoint-result.json"
#: Longest failure reason kept per check in the result (bytes of UTF-8); longer ones are cut with a marker.
MAX_REASON_BYTES: Final = 4096
#: ``user_properties`` names of what a check judged (CF-JDG-001).
JUDGED: Final = "judged"
NOT_APPLICABLE: Final = "not_applicable"

#: Where a check records a property: pytest's ``record_property`` fixture, or its ``request``.
Recorder = Callable[[str, object], None]


def _recorder(target: Recorder | pytest.FixtureRequest) -> Recorder:
    if isinstance(target, pytest.FixtureRequest):
        node = target.node
        return lambda name, value: node.user_properties.append((name, value))
    return target


def judged(record: Recorder | pytest.FixtureRequest, count: int, what: str) -> None:
    """Record that the check judged ``count`` items of ``what`` (``judged(record_property, 3, "cells")``).

    A count of 0 is recorded too: it says what the check had to judge and did not get (CF-JDG-001).
    """
    _recorder(record)(JUDGED, f"{max(0, int(count))} {what}")


def not_applicable(record: Recorder | pytest.FixtureRequest, why: str) -> None:
    """Record that the check does not apply to the module, and why.

    Only for reasons decided from the module's manifest or the contract (it provides no interface,
    handles no tasks, the interface is aperiodic), never because an observation came back empty:
    that is :func:`judged` with a count of 0 (CF-JDG-001).
    """
    _recorder(record)(NOT_APPLICABLE, why)


def judgement(properties: Iterable[tuple[str, object]]) -> tuple[str, str]:
    """What a check judged, from its recorded properties: ``(kind, text)``.

    ``kind`` is ``judged`` (some item counted; text ``"12 samples of X; 3 writers"``), ``not applicable``
    (nothing counted, a reason given; text the reasons) or ``nothing`` (nothing counted and no reason:
    text names what was missing, ``"no samples of X"``, or that the check recorded nothing).
    """
    counts: list[tuple[int, str]] = []
    reasons: list[str] = []
    for name, value in properties:
        if name == JUDGED:
            number, _, what = str(value).partition(" ")
            try:
                counts.append((int(number), what))
            except ValueError:
                counts.append((0, str(value)))
        elif name == NOT_APPLICABLE:
            reasons.append(str(value))
    if any(n > 0 for n, _ in counts):
        return "judged", "; ".join(f"{n} {what}" for n, what in counts if n > 0)
    if reasons:
        return "not applicable", "; ".join(reasons)
    if counts:
        return "nothing", "; ".join(f"no {what}" for _, what in counts)
    return "nothing", "the check recorded nothing it judged"


def bound_reason(text: str, limit: int = MAX_REASON_BYTES) -> str:
    """``text`` whole when it fits in ``limit`` bytes of UTF-8, else its first ``limit`` bytes and a marker."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")  # never half a character
    return f"{kept}\n[... cut: the reason has {len(data)} bytes, the first {limit} are kept; see pytest's output]"


def _reason(report: pytest.TestReport) -> str:
    """The whole reason of a failure or error, every line (JUnit XML's ``message`` keeps only the first few)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = str(crash.message)
    elif isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        text = str(report.longrepr[2])
    else:
        text = str(report.longrepr)
    if report.when != "call":
        text = f"error in {report.when}: {text}"
    return bound_reason(text.strip())


@dataclass
class _Run:
    """State of one conformance run (only when ``--hardpoint-module`` is given)."""

    module: str
    certified: bool
    report_dir: Path | None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    forbidden_skips: list[str] = field(default_factory=list)
    #: Checks that passed having judged nothing (failed in certified mode, CF-JDG-002).
    vacuous: list[str] = field(default_factory=list)
    progress: IO[str] | None = None


_RUN: Final = pytest.StashKey[_Run]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hardpoint", "hardpoint conformance checks")
    group.addoption(
        "--hardpoint-module",
        metavar="ENTRYPOINT_NAME_OR_WHEEL",
        default=None,
        help="module under test: its name in entry-point group hardpoint.modules, or a wheel file",
    )
    group.addoption(
        "--hardpoint-report",
        metavar="DIR",
        default=None,
        help=f"write {RESULT_FILE} (verdicts with requirement IDs) into DIR",
    )
    group.addoption(
        "--hardpoint-certified",
        action="store_true",
        default=False,
        help="certified run: a skipped hardpoint test fails",
    )
    group.addoption(
        "--hardpoint-config",
        metavar="FILE",
        default=None,
        help="TOML file with the module's [config] table and its [adapters] bindings for the bus checks",
    )
    group.addoption(
        "--hardpoint-max-examples",
        metavar="N",
        type=int,
        default=None,
        help="generated examples per input interface and family in the robustness and task checks (default 25)",
    )
    group.addoption(
        "--hardpoint-progress",
        metavar="FILE",
        default=None,
        help="append one JSON line per event (check started, finished) to FILE as the run goes",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*requirement_ids): a hardpoint conformance check and the spec requirements it verifies"
    )
    module = config.getoption("hardpoint_module")
    if module is None:
        return
    report = config.getoption("hardpoint_report")
    progress = config.getoption("hardpoint_progress", None)
    config.stash[_RUN] = _Run(
        module=str(module),
        certified=bool(config.getoption("hardpoint_certified")),
        report_dir=Path(report) if report else None,
        progress=Path(progress).open("a", encoding="utf-8") if progress else None,  # noqa: SIM115 - closed at the end
    )


def _progress(config: pytest.Config, event: str, **fields: Any) -> None:
    """One JSON line on the ``--hardpoint-progress`` file (flushed: the CLI reads it while the run goes)."""
    run = config.stash.get(_RUN, None)
    if run is None or run.progress is None:
        return
    run.progress.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    run.progress.flush()


def _check_module(item: pytest.Item) -> str:
    """The check module an item comes from (``hardpoint_runtime.conformance.checks_contract``)."""
    module = getattr(item, "module", None)
    return str(getattr(module, "__name__", "")) or item.nodeid.split("::", 1)[0]


def pytest_collection_finish(session: pytest.Session) -> None:
    _progress(
        session.config,
        "collected",
        checks=[{"nodeid": item.nodeid, "module": _check_module(item)} for item in session.items],
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _progress(item.config, "start", nodeid=item.nodeid, module=_check_module(item))


def _requirements(item: pytest.Item) -> list[str]:
    return [str(arg) for mark in item.iter_markers(MARKER) for arg in mark.args]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    run = item.config.stash.get(_RUN, None)
    if run is None or item.get_closest_marker(MARKER) is None:
        return report
    if report.skipped and run.certified:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"hardpoint certified mode forbids skips: {item.nodeid} was skipped ({reason})"
        run.forbidden_skips.append(item.nodeid)
    verdict: dict[str, Any] = {
        "test": item.nodeid,
        "requirements": _requirements(item),
        "phase": report.when,
        "outcome": report.outcome,
    }
    if report.when == "call":
        kind, text = judgement(item.user_properties)
        if report.passed or kind != "nothing":  # (a check that failed before it counted anything: no line)
            verdict["judged"] = text if kind == "judged" else f"{kind}: {text}"
        if kind == "nothing" and report.passed:
            run.vacuous.append(item.nodeid)
            if run.certified:
                # CF-JDG-002: a pass that judged nothing says nothing about the module.
                report.outcome = "failed"
                report.longrepr = (
                    f"CF-JDG-002 hardpoint certified mode: {item.nodeid} judged nothing ({text}): "
                    "a check that judged nothing cannot pass a certified run"
                )
                verdict["outcome"] = "failed"
    if report.outcome != "passed":
        verdict["reason"] = _reason(report)  # CF-EV-007: the whole reason, into the result and the evidence
    if report.when == "call" or report.outcome != "passed":
        run.verdicts.append(verdict)
        _progress(
            item.config,
            "result",
            nodeid=item.nodeid,
            module=_check_module(item),
            phase=report.when,
            outcome=report.outcome,
        )
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None or run.report_dir is None:
        return
    run.report_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "module": run.module,
        "certified": run.certified,
        "exitstatus": int(exitstatus),
        "verdicts": run.verdicts,
    }
    # The interoperability matrix written by hardpoint_runtime.conformance.checks_interop (CF-IOP-020).
    matrix = run.report_dir / "interop-matrix.json"
    if matrix.is_file():
        interop = json.loads(matrix.read_text(encoding="utf-8"))
        # Never a matrix of another module left in the directory: the matrix names what it was given as
        # (``target``: entry-point name or wheel path) beside the module's name (``subject``, CF-IOP-004).
        if interop.get("target", interop.get("subject")) == run.module:
            result["interop"] = interop
    (run.report_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is not None and run.progress is not None:
        run.progress.close()
        run.progress = None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    if run.forbidden_skips:
        terminalreporter.write_sep("=", "hardpoint certified: skips are forbidden", red=True)
        for nodeid in run.forbidden_skips:
            terminalreporter.write_line(f"FAILED (skipped in certified mode) {nodeid}")
    if run.vacuous:
        title = "checks that judged nothing" + (" fail in certified mode" if run.certified else "")
        terminalreporter.write_sep("=", f"hardpoint: {title}", red=run.certified, yellow=not run.certified)
        for nodeid in run.vacuous:
            terminalreporter.write_line(f"{'FAILED' if run.certified else 'PASSED'} (judged nothing) {nodeid}")
    if run.report_dir is not None:
        terminalreporter.write_line(f"hardpoint result: {run.report_dir / RESULT_FILE}")


# --- fixtures: hardpoint is imported here, when a check asks for it ---------------------------------


def _load_module(spec: str) -> object:
    """The entry-point object named ``spec`` in ``hardpoint.modules``, or the single one a wheel declares."""
    import importlib.metadata as md
    import sys

    if spec.endswith(".whl"):
        wheel = str(Path(spec).resolve())
        eps = [ep for dist in md.distributions(path=[wheel]) for ep in dist.entry_points if ep.group == MODULE_GROUP]
        if len(eps) != 1:
            names = ", ".join(sorted(ep.name for ep in eps)) or "none"
            pytest.fail(f"{spec}: expected one entry point in {MODULE_GROUP}, found {names}", pytrace=False)
        if wheel not in sys.path:
            sys.path.insert(0, wheel)  # a pure-Python wheel is importable as a zip
        return eps[0].load()
    found = [ep for ep in md.entry_points(group=MODULE_GROUP) if ep.name == spec]
    if not found:
        known = ", ".join(sorted({ep.name for ep in md.entry_points(group=MODULE_GROUP)})) or "none"
        pytest.fail(f"no module named {spec!r} in entry-point group {MODULE_GROUP} (installed: {known})", pytrace=False)
    loaded: object = found[0].load()
    return loaded


@pytest.fixture(scope="session")
def hardpoint_module(request: pytest.FixtureRequest) -> object:
    """The module under test (``--hardpoint-module``), loaded from its entry point."""
    run = request.config.stash.get(_RUN, None)
    if run is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    return _load_module(run.module)


@pytest.fixture(scope="session")
def hardpoint_manifest(hardpoint_module: object) -> Manifest:
    """The validated manifest of the module under test (``ManifestError`` if invalid)."""
    from hardpoint._host import _manifest_of

    return _manifest_of(hardpoint_module)


@pytest.fixture(scope="session")
def hardpoint_interfaces(request: pytest.FixtureRequest) -> dict[str, InterfaceSpec]:
    """The platform interface set, by full name (:func:`hardpoint.all_interfaces`)."""
    if request.config.stash.get(_RUN, None) is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    import hardpoint

    return hardpoint.all_interfaces()
