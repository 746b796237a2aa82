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

Fixtures (hardpoint is imported inside them, never at plugin load):
``hardpoint_module`` (the loaded entry-point object), ``hardpoint_manifest``
(its validated :class:`hardpoint.Manifest`) and ``hardpoint_interfaces``
(:func:`hardpoint.all_interfaces`).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec, Manifest

__all__ = [
    "hardpoint_interfaces",
    "hardpoint_manifest",
    "hardpoint_module",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
]

#: Entry-point group of capability modules.
MODULE_GROUP: Final = "hardpoint.modules"
#: Marker that ties a check to the requirement IDs of ``spec/`` it verifies.
MARKER: Final = "hardpoint"
#: File written into ``--hardpoint-report DIR``.
RESULT_FILE: Final = "hardpoint-result.json"


@dataclass
class _Run:
    """State of one conformance run (only when ``--hardpoint-module`` is given)."""

    module: str
    certified: bool
    report_dir: Path | None
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    forbidden_skips: list[str] = field(default_factory=list)


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*requirement_ids): a hardpoint conformance check and the spec requirements it verifies"
    )
    module = config.getoption("hardpoint_module")
    if module is None:
        return
    report = config.getoption("hardpoint_report")
    config.stash[_RUN] = _Run(
        module=str(module),
        certified=bool(config.getoption("hardpoint_certified")),
        report_dir=Path(report) if report else None,
    )


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
    if report.when == "call" or report.outcome != "passed":
        run.verdicts.append(
            {
                "test": item.nodeid,
                "requirements": _requirements(item),
                "phase": report.when,
                "outcome": report.outcome,
            }
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
        if interop.get("subject") == run.module:  # never a matrix of another module left in the directory
            result["interop"] = interop
    (run.report_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    if run.forbidden_skips:
        terminalreporter.write_sep("=", "hardpoint certified: skips are forbidden", red=True)
        for nodeid in run.forbidden_skips:
            terminalreporter.write_line(f"FAILED (skipped in certified mode) {nodeid}")
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
