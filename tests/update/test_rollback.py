"""Automatic rollback (issue 5, acceptance 3), on a real daemon, real worker processes, real DDS, real TUF.

Version 1.0 of ``beacon`` runs; a bad later version is applied from a signed
directory repository and must be rolled back by itself, with the cause in the
history, the old version still running (same process) and still publishing:

- 1.1 crashes when activated (``crashed``, at the gate);
- 1.2 never reports ``ok`` health (``never_healthy``, at the gate timeout);
- 1.3 passes the gate, then stops publishing NavState during probation (``stopped_publishing``);
- 1.5 passes the gate, then its process dies during probation (``crashed``; the supervisor's restart
  of the new version does not stop the rollback).

A good 1.4 (with a new capability, FusedTrack) is committed, and an operator rollback returns to 1.0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from modkit import (
    NavWatcher,
    allocate_domain,
    build_module_wheel,
    preinstall,
    publish_repo,
    wait_for,
    worker_pids,
    write_platform,
)

from hardpoint_runtime._daemon import Daemon

FUSED = "hardpoint.track.v1.FusedTrack"


@dataclass(frozen=True)
class Repo:
    path: Path
    v10: Path


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    wheels = tmp_path_factory.getbasetemp() / "modkit-wheels"
    wheels.mkdir(exist_ok=True)
    v10 = build_module_wheel(wheels, version="1.0")
    bad = [
        build_module_wheel(wheels, version="1.1", behaviour="crash_at_start"),
        build_module_wheel(wheels, version="1.2", behaviour="never_healthy"),
        build_module_wheel(wheels, version="1.3", behaviour="stop_publishing_after_s:3", extra_provides=[FUSED]),
        build_module_wheel(wheels, version="1.4", extra_provides=[FUSED]),
        build_module_wheel(wheels, version="1.5", behaviour="crash_after_s:3"),
    ]
    return Repo(publish_repo(tmp_path_factory.mktemp("rollback-repo"), [v10, *bad]), v10)


@dataclass
class Running:
    daemon: Daemon
    domain_id: int
    watcher: NavWatcher


@pytest.fixture
def platform(request: pytest.FixtureRequest, tmp_path: Path, repo: Repo) -> Iterator[Running]:
    """beacon 1.0 running; probation 7 s (long enough for 1.3 and 1.5 to misbehave), or the indirect parameter."""
    probation_s = float(getattr(request, "param", 7.0))
    domain = allocate_domain()
    config = write_platform(tmp_path / "plat", domain.id, repo.path, gate_timeout_s=5.0, probation_s=probation_s)
    preinstall(tmp_path / "plat", repo.v10, "1.0")
    daemon = Daemon(config)
    watcher = NavWatcher(domain.id)
    try:
        daemon.start()
        wait_for(
            lambda: daemon.get_module("beacon").state == "active" and daemon.get_module("beacon").health == "ok",
            timeout=60,
            what="beacon 1.0 active and healthy",
        )
        yield Running(daemon, domain.id, watcher)
    finally:
        daemon.stop()
        watcher.close()
        domain.release()


def _assert_old_still_serving(p: Running, pid_before: int) -> None:
    status = p.daemon.get_module("beacon")
    assert (status.version, status.state, status.pid) == ("1.0", "active", pid_before)
    assert p.daemon.store.pinned_version("beacon") == "1.0"
    assert worker_pids(p.domain_id, "beacon") == [pid_before]  # the new version's process is gone
    now = time.monotonic()
    wait_for(lambda: p.watcher.count_since(now) >= 5, timeout=10, what="NavState from 1.0 after the rollback")


@pytest.mark.parametrize(
    ("version", "cause", "step", "words"),
    [
        ("1.1", "crashed", "staged", "exited with code 70"),
        ("1.2", "never_healthy", "staged", "never becomes healthy"),
        ("1.3", "stopped_publishing", "switched", "hardpoint.nav.v1.NavState"),
        ("1.5", "crashed", "switched", "during probation"),
    ],
    ids=["crash_at_start", "never_healthy", "stops_publishing_in_probation", "crashes_in_probation"],
)
def test_bad_version_is_rolled_back_with_its_cause(
    platform: Running, version: str, cause: str, step: str, words: str
) -> None:
    pid_before = platform.daemon.get_module("beacon").pid
    steps: list[str] = []
    record = platform.daemon.update_apply("beacon", version, progress=lambda p: steps.append(p.step))
    assert (record.outcome, record.cause, record.step) == ("rolled_back", cause, step), record.reason
    assert "'beacon'" in record.reason
    assert version in record.reason
    assert words in record.reason
    assert steps[-1] == "rolled_back"
    _assert_old_still_serving(platform, pid_before)
    (last,) = platform.daemon.update_history("beacon", limit=1)
    assert (last.id, last.outcome, last.cause, last.from_version, last.to_version) == (
        record.id, "rolled_back", cause, "1.0", version,
    )  # fmt: skip
    kinds = [e.kind for e in platform.daemon.events() if e.module == "beacon"]
    assert {"update_started", "update_rolled_back"} <= set(kinds)
    assert "update_committed" not in kinds
    # update check offers the newest release (1.5) again, but says when it was rolled back (issue 14 defect 10)
    (offer,) = (o for o in platform.daemon.update_check() if o.module == "beacon")
    assert (offer.available_version, offer.status) == ("1.5", "available")
    rolled = "rolled back on this platform before" in offer.reason
    assert rolled == (version == "1.5"), offer.reason
    if rolled:
        assert f"{cause}: " in offer.reason


@pytest.mark.parametrize("platform", [1.5], indirect=True, ids=["probation_1.5s"])
def test_good_version_is_committed_then_operator_rolls_back(platform: Running) -> None:
    d = platform.daemon
    record = d.update_apply("beacon", "1.4")
    assert (record.outcome, record.step, record.cause) == ("committed", "committed", ""), record.reason
    assert record.switch_gap_ms >= 0
    print(f"switch gap 1.0 -> 1.4: {record.switch_gap_ms:.1f} ms")
    status = d.get_module("beacon")
    assert (status.version, status.state) == ("1.4", "active")
    assert FUSED in status.provides
    assert d.store.pinned_version("beacon") == "1.4"
    wait_for(lambda: len(worker_pids(platform.domain_id, "beacon")) == 1, timeout=10, what="one beacon process")
    back = d.update_rollback("beacon")
    assert (back.outcome, back.cause, back.from_version, back.to_version) == ("rolled_back", "operator", "1.4", "1.0")
    assert d.get_module("beacon").version == "1.0"
    assert d.store.pinned_version("beacon") == "1.0"
    now = time.monotonic()
    wait_for(lambda: platform.watcher.count_since(now) >= 5, timeout=10, what="NavState from 1.0")
    with pytest.raises(ValueError, match="no earlier committed version"):
        d.update_rollback("beacon")
