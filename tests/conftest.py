"""Suite-wide: how ``scripts/test`` spreads the tests over two pytest-xdist workers (``-n 2``).

Most of the suite waits on real time (DDS discovery, daemons, scenario clocks), so two workers
overlap that waiting. The unit of work is a test file (its module-scoped fixtures, a running
daemon or platform, are set up once), and files that share an expensive session fixture are one
unit together, so that fixture runs once: the certified runs of the reference modules
(``tests/conformance/conftest.py``). The longest units start first, so that none of them is left
running alone at the end. Without xdist (``-p no:xdist``, or a plain ``pytest`` run) only the
order applies.

Tests that run at the same time never share a DDS domain: every test takes its domain id from
the lock folder ``hardpoint-it-domains`` (for example
:func:`hardpoint_runtime.conformance._harness.free_domain_id`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hardpoint_runtime.conformance._harness import free_domain_id, release_domain_id

HERE = Path(__file__).parent
#: Test files that must run on the same worker, by unit name (they share a session fixture).
SHARED = {
    "conformance/reference-runs": (
        "conformance/test_reference_modules.py",
        "conformance/test_evidence.py",
        "conformance/test_conformance_cli.py",
    ),
}
_UNIT_OF = {file: unit for unit, files in SHARED.items() for file in files}
#: The longest units (about a minute or more each on 2 cores), longest first: each starts before any
#: other unit. Conformance runs (CPU) alternate with runs that mostly wait on a scenario or daemon.
LONGEST_FIRST = (
    "conformance/reference-runs",
    "demo/test_demo.py",
    "conformance/test_supplier_guide.py",
    "security/test_hostile_platform.py",
    "update/test_update_e2e.py",
    "conformance/test_broken_variants.py",
    "demo/test_demo_signals.py",
    "conformance/test_duplicate_results.py",
    "update/test_crash_safety.py",
    "update/test_evidence_gate.py",
    "runtime_integration/test_platform.py",
    "runtime_integration/test_supervision.py",
    "update/test_rollback.py",
    "update/test_install_unblocks.py",
    "conformance/test_interop_matrix.py",
    "conformance/test_wheel_interop.py",
)
_RANK = {unit: rank for rank, unit in enumerate(LONGEST_FIRST)}


def unit_of(file: str) -> str:
    """The unit of work of a test file (its path under ``tests/``)."""
    return _UNIT_OF.get(file, file)


def _file(item: pytest.Item) -> str:
    return item.path.relative_to(HERE).as_posix()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: the longest units first, everything else in collection order.
    items.sort(key=lambda item: _RANK.get(unit_of(_file(item)), len(_RANK)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """File-level units (xdist's ``loadfile``), with the shared files of :data:`SHARED` as one unit.

    (xdist's own ``loadgroup`` cannot be used: it renames node ids, which pytest 9 no longer allows.)
    """
    if config.getvalue("dist") not in ("load", "loadfile"):
        return None  # another distribution asked for explicitly (each, worksteal, ...)
    from xdist.scheduler import LoadFileScheduling

    class Units(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(super()._split_scope(nodeid).removeprefix("tests/"))

    config.option.loadscopereorder = False  # keep the order of the collection (longest first)
    return Units(config, log)


@pytest.fixture
def domain_id() -> Iterator[int]:
    """A DDS domain id no other test on this machine uses meanwhile (the shared lock folder)."""
    domain = free_domain_id()
    try:
        yield domain
    finally:
        release_domain_id(domain)
