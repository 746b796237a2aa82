"""Integration tests: real Cyclone DDS on loopback, several processes.

Every test gets its own DDS domain (:func:`dds`) and starts its processes
through :func:`spawn`, which ends them when the test ends. See
``_procs/harness.py`` for why no test can see another's traffic.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests import _procs.harness

from _procs.harness import Child, Dds, Node, allocate_dds


@pytest.fixture
def dds() -> Iterator[Dds]:
    """This test's DDS domain: a unique domain id (1..230) and discovery tag over the packaged loopback.xml."""
    domain = allocate_dds()
    try:
        yield domain
    finally:
        domain.release()


class Spawner:
    """Starts the processes of one test and ends them (by their own pid) when it ends."""

    def __init__(self, dds: Dds, log_dir: Path) -> None:
        self.dds = dds
        self.log_dir = log_dir
        self.children: list[Child] = []

    def node(self, module: str, *, provides: tuple[str, ...] = (), requires: tuple[str, ...] = ()) -> Node:
        """An SDK module process in this test's domain (not yet waited for: call ``wait_ready``)."""
        node = Node(self.dds, module, self.log_dir, provides=provides, requires=requires)
        self.children.append(node)
        return node

    def child(self, name: str, argv: list[str], **env: str) -> Child:
        """Any JSON-lines child process, with this test's DDS environment."""
        child = Child(name, argv, self.dds.env(**env), self.log_dir)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in reversed(self.children):
            child.close()


@pytest.fixture
def spawn(dds: Dds, tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(dds, tmp_path)
    try:
        yield spawner
    finally:
        spawner.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents and item.get_closest_marker("integration") is None:
            raise pytest.UsageError(f"{item.nodeid} is not marked integration")
