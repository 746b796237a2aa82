"""Install and pinning on a real daemon (UPD-INS-*, UPD-PIN-*, UPD-GATE-003, UPD-JRN-004).

- a first install (module configured, nothing installed) is installed, gated and committed;
- after 1.1 is committed and rolled back to 1.0, a restarted daemon runs 1.0 (the pin), not the newest;
- a tampered wheel in the repository is refused naming cause, module and role: nothing is installed
  and the running version is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from modkit import (
    Domain,
    allocate_domain,
    build_module_wheel,
    preinstall,
    publish_repo,
    wait_for,
    worker_pids,
    write_platform,
)

from hardpoint_runtime._daemon import Daemon


@dataclass(frozen=True)
class Wheels:
    v10: Path
    v11: Path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    out = tmp_path_factory.getbasetemp() / "modkit-wheels"
    out.mkdir(exist_ok=True)
    return Wheels(build_module_wheel(out, version="1.0"), build_module_wheel(out, version="1.1"))


@pytest.fixture
def domain() -> Iterator[Domain]:
    held = allocate_domain()
    yield held
    held.release()


def _wait_running(d: Daemon, version: str) -> None:
    def running() -> bool:
        m = d.get_module("beacon")
        return m.state == "active" and m.health == "ok" and m.version == version

    wait_for(running, timeout=60, what=f"beacon {version} active and healthy")


def test_first_install_is_installed_gated_and_committed(tmp_path: Path, wheels: Wheels, domain: Domain) -> None:
    repo = publish_repo(tmp_path / "release", [wheels.v10])
    d = Daemon(write_platform(tmp_path / "plat", domain.id, repo, probation_s=1.0))
    try:
        d.start()  # with [update], a module not installed yet waits for its first install
        waiting = d.get_module("beacon")
        # Issue 14 defect 5: a normal step, neither failed nor degrading the platform, and no unmet
        # "requirement" with an empty interface and major 0.
        assert (waiting.state, waiting.health, waiting.unmet) == ("awaiting_install", "unknown", ())
        assert "not installed" in waiting.reason
        assert d.health().status == "ok", d.health().reasons
        config = d.config_path
        config.write_text(config.read_text() + '\n[[modules]]\nname = "beacon-two"\n')
        changes = d.reload()  # the operator adds a module the repository will deliver later
        assert len(changes) == 1, changes
        assert changes[0].startswith("added beacon-two (module not installed"), changes
        assert d.get_module("beacon-two").state == "awaiting_install"
        offers = d.update_check()
        assert [(o.module, o.installed_version, o.available_version, o.status) for o in offers] == [
            ("beacon", "", "1.0", "available"),
            ("beacon-two", "", "", "current"),
        ]
        assert offers[0].reason == "not installed: apply makes its first install"  # issue 14 defect 1
        assert offers[1].reason == "not installed, and the repository offers no release of it yet"
        record = d.update_apply("beacon")
        assert (record.outcome, record.from_version, record.to_version) == ("committed", "", "1.0"), record.reason
        _wait_running(d, "1.0")
        assert d.store.pinned_version("beacon") == "1.0"
        assert (d.state_dir / "modules" / "beacon" / "1.0" / "lib").is_dir()
        assert len(worker_pids(domain.id, "beacon")) == 1
    finally:
        d.stop()


def test_restart_after_rollback_runs_the_pinned_version(tmp_path: Path, wheels: Wheels, domain: Domain) -> None:
    repo = publish_repo(tmp_path / "release", [wheels.v10, wheels.v11])
    config = write_platform(tmp_path / "plat", domain.id, repo, probation_s=1.0)
    preinstall(tmp_path / "plat", wheels.v10, "1.0")
    d = Daemon(config)
    try:
        d.start()
        _wait_running(d, "1.0")
        assert d.update_apply("beacon", "1.1").outcome == "committed"
        assert d.update_rollback("beacon").to_version == "1.0"
    finally:
        d.stop()
    again = Daemon(config)
    try:
        again.start()
        _wait_running(again, "1.0")  # 1.1 is installed and newer, but 1.0 is pinned
        assert sorted(p.name for p in (again.state_dir / "modules" / "beacon").iterdir()) == ["1.0", "1.1"]
        assert [h.outcome for h in again.update_history("beacon")] == ["rolled_back", "committed"]
    finally:
        again.stop()


def test_tampered_wheel_is_refused_and_nothing_is_installed(tmp_path: Path, wheels: Wheels, domain: Domain) -> None:
    repo = publish_repo(tmp_path / "release", [wheels.v10, wheels.v11])
    (published,) = (repo / "targets" / "acme" / "beacon").glob("*hp_mk_beacon-1.1-*.whl")
    published.write_bytes(published.read_bytes()[:-10] + b"0123456789")  # same length, other bytes
    preinstall(tmp_path / "plat", wheels.v10, "1.0")
    d = Daemon(write_platform(tmp_path / "plat", domain.id, repo, probation_s=1.0))
    try:
        d.start()
        _wait_running(d, "1.0")
        pid = d.get_module("beacon").pid
        record = d.update_apply("beacon", "1.1")
        assert (record.outcome, record.role) == ("refused", "acme"), record.reason
        assert record.cause == "IntegrityError"
        assert "beacon" in record.reason
        assert "role 'acme'" in record.reason
        assert not (d.state_dir / "modules" / "beacon" / "1.1").exists()
        downloads = d.state_dir / "update" / "downloads"
        assert not downloads.exists() or not list(downloads.iterdir())
        status = d.get_module("beacon")
        assert (status.version, status.state, status.pid) == ("1.0", "active", pid)
        assert d.update_history("beacon")[0].outcome == "refused"
    finally:
        d.stop()
