"""Shared, session-scoped conformance runs: every reference module's wheel, certified and signed, once.

Acceptance 1 of the conformance issue (every reference module passes in certified mode; the
report and the signed evidence are produced and verify) and the evidence CLI tests read the same
runs, so each certified run (a minute or more on 2 cores) happens once per session.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from refkit import PARALLEL_RUNS, REFERENCE_MODULES, RUN_TIMEOUT_S, Run, build_reference_wheel, certify

from hardpoint_runtime.conformance._evidence import generate_key_pair


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whichever test first asks for ``reference_runs`` waits for all of them: give each such test their time."""
    for item in items:
        if "reference_runs" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(RUN_TIMEOUT_S * 2))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A conformance signer's key pair: (private key file, public key file)."""
    private, public, _ = generate_key_pair(tmp_path_factory.mktemp("conformance-keys"))
    return private, public


@pytest.fixture(scope="session")
def reference_runs(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Run]:
    """Every reference module's wheel through a certified, signed run, all in parallel, by module name."""
    root = tmp_path_factory.mktemp("reference")
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        wheels = dict(
            zip(
                REFERENCE_MODULES,
                pool.map(lambda n: build_reference_wheel(n, root / "build" / n), REFERENCE_MODULES),
                strict=True,
            )
        )
        runs = {name: pool.submit(certify, wheels[name], root / "report" / name, keys[0]) for name in REFERENCE_MODULES}
        return {name: run.result() for name, run in runs.items()}
