"""Conformance checks: the module under test interoperates with the reference modules, end to end.

The module runs in a real runtime worker next to its reference counterparts (the providers of what it
consumes, the consumers of what it provides, and what those need) on one private Cyclone DDS domain, on
the short interoperability scenario of :mod:`._interop`; every provider x consumer cell it takes part in is
judged by the end-to-end result (fused tracks on the scenario's targets, geo-referenced tracks on them,
the incursion's alert, the recording). With ``--hardpoint-report DIR`` the matrix is written to
``DIR/interop-matrix.json`` and ``DIR/interop-matrix.md`` (and the plugin adds it to the JSON result).

* ``CF-IOP-001``: every cell where the module is the consumer passes;
* ``CF-IOP-002``: every cell where the module is the provider passes.

The cells are the module's by its module name, whatever form it was given in (entry-point name or wheel
file, CF-IOP-004). A module with no counterpart in a role passes that check as "not applicable" (decided
from the manifests); an ``n/a`` cell (an aperiodic interface the run gave no occasion to publish) is a
note, never a skip, and is not counted as judged: a check whose every cell is ``n/a`` judged nothing
(CF-JDG-001).

The module's own configuration comes from ``--hardpoint-config`` (its ``config`` table) like every bus
check's. Its adapters are bound to the simulators on the interoperability scenario unless that file binds
them: then they are used as given, and a sensor that does not see the scenario's targets fails the
end-to-end judgements (the truth is the scenario's).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance import _fixtures
from hardpoint_runtime.conformance._harness import HarnessError
from hardpoint_runtime.conformance._interop import Matrix, matrix_text, run_interop

# The fixture this module's checks use (pytest finds fixtures in the module's namespace).
hosted_options = _fixtures.hosted_options

#: Files written into ``--hardpoint-report DIR``.
MATRIX_STEM: Final = "interop-matrix"


@pytest.fixture(scope="session")
def interop_matrix(request: pytest.FixtureRequest, hosted_options: Mapping[str, Any]) -> Iterator[Matrix]:
    """The judged matrix of the module under test and its reference counterparts (one run per session)."""
    module = str(request.config.getoption("hardpoint_module"))
    report = request.config.getoption("hardpoint_report", None)
    report_dir = Path(report) if report else None
    if report_dir is not None:
        for suffix in (".json", ".md"):
            (report_dir / f"{MATRIX_STEM}{suffix}").unlink(missing_ok=True)  # never a previous run's matrix
    with tempfile.TemporaryDirectory(prefix="hardpoint-interop-") as tmp:
        try:
            matrix = run_interop(
                module,
                Path(tmp),
                subject_config=hosted_options.get("config"),
                subject_adapters=hosted_options.get("adapters"),
            )
        except HarnessError as e:
            pytest.fail(f"interop: the module and its reference counterparts could not be hosted: {e}", pytrace=False)
        if report_dir is not None:
            matrix.write(report_dir, MATRIX_STEM)
        yield matrix


def _check(matrix: Matrix, role: str, requirement: str, record_property: Any) -> None:
    record_property("matrix", "\n" + matrix_text(matrix))
    cells = matrix.cells_of(role)
    if not cells:
        # Decided from the manifests (the plan): no reference module consumes or provides what it does.
        not_applicable(record_property, f"no reference module pairs with {matrix.subject} as {role}")
        return
    for c in cells:
        if c.verdict == "n/a":
            record_property("note", f"{c.provider} -> {c.consumer} {c.interface}: not applicable: {c.detail}")
    judged(record_property, sum(c.verdict != "n/a" for c in cells), f"cells with {matrix.subject} as {role}")
    failed = [c for c in cells if c.verdict == "fail"]
    if failed:
        pytest.fail(
            f"{requirement} module {matrix.subject!r} as {role}: "
            + "; ".join(f"{c.provider} -> {c.consumer} ({c.interface}): {c.detail}" for c in failed),
            pytrace=False,
        )


@pytest.mark.hardpoint("CF-IOP-001")
def test_interop_as_consumer(interop_matrix: Matrix, record_property: Any) -> None:
    """Fed by the reference providers of what it consumes, the module produces the expected end result."""
    _check(interop_matrix, "consumer", "CF-IOP-001", record_property)


@pytest.mark.hardpoint("CF-IOP-002")
def test_interop_as_provider(interop_matrix: Matrix, record_property: Any) -> None:
    """The reference consumers of what the module provides produce the expected end result from it."""
    _check(interop_matrix, "provider", "CF-IOP-002", record_property)
