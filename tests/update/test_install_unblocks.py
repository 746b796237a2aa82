"""A committed update starts the modules waiting for what it provides, without ``hardpoint reload`` (UPD-RESOLVE-*).

Real daemon (in this process), real worker processes, real DDS on a domain of its own, real TUF
metadata and real wheels (``modkit``). The platform: ``beacon`` (the module updated), ``fusedsink``
(requires FusedTrack, blocked at start: nothing provides it), ``alertwaiter`` (requires Alert, which
nothing ever provides) and ``bystander`` (provides SensorTrack, runs from the start and must never be
touched).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from modkit import allocate_domain, build_module_wheel, preinstall, publish_repo, wait_for, worker_pids, write_platform

from hardpoint_runtime._daemon import Daemon

FUSED = "hardpoint.track.v1.FusedTrack"
SENSOR = "hardpoint.track.v1.SensorTrack"
ALERT = "hardpoint.alert.v1.Alert"


@dataclass(frozen=True)
class Repo:
    path: Path
    beacon_10: Path  # NavState only
    fusedsink: Path
    alertwaiter: Path
    bystander: Path


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    wheels = tmp_path_factory.getbasetemp() / "modkit-wheels"
    wheels.mkdir(exist_ok=True)
    beacon_10 = build_module_wheel(wheels, version="1.0")
    published = [
        beacon_10,
        build_module_wheel(wheels, version="0.9", behaviour="crash_at_start", extra_provides=[FUSED]),
        build_module_wheel(wheels, version="1.1", extra_provides=[FUSED]),
    ]
    return Repo(
        path=publish_repo(tmp_path_factory.mktemp("unblock-repo"), published),
        beacon_10=beacon_10,
        fusedsink=build_module_wheel(wheels, name="fusedsink", requires=[FUSED], primary=False),
        alertwaiter=build_module_wheel(wheels, name="alertwaiter", requires=[ALERT], primary=False),
        bystander=build_module_wheel(wheels, name="bystander", extra_provides=[SENSOR], primary=False),
    )


@dataclass
class Running:
    daemon: Daemon
    domain_id: int
    bystander_pid: int
    first_event: int  # id of the last event before the test acts


def _start(tmp_path: Path, repo: Repo, *, with_beacon: bool) -> Iterator[Running]:
    domain = allocate_domain()
    extra = "".join(f'\n[[modules]]\nname = "{name}"\n' for name in ("fusedsink", "alertwaiter", "bystander"))
    config = write_platform(tmp_path / "plat", domain.id, repo.path, gate_timeout_s=10.0, probation_s=1.0, extra=extra)
    for name, wheel in (
        ("fusedsink", repo.fusedsink),
        ("alertwaiter", repo.alertwaiter),
        ("bystander", repo.bystander),
    ):
        preinstall(tmp_path / "plat", wheel, "1.0", module=name)
    if with_beacon:
        preinstall(tmp_path / "plat", repo.beacon_10, "1.0")
    daemon = Daemon(config)
    try:
        daemon.start()
        ready = ("beacon", "bystander") if with_beacon else ("bystander",)
        wait_for(lambda: all(daemon.get_module(n).state == "active" for n in ready), timeout=60, what=f"{ready} active")
        for name in ("fusedsink", "alertwaiter"):  # the starting point of every test: both blocked
            status = daemon.get_module(name)
            assert (status.state, status.pid) == ("not_started", 0), status
            assert status.unmet, status
        assert [u.interface for u in daemon.get_module("fusedsink").unmet] == [FUSED]
        last = max((e.id for e in daemon.events()), default=0)
        yield Running(daemon, domain.id, daemon.get_module("bystander").pid, last)
    finally:
        daemon.stop()
        domain.release()


@pytest.fixture
def waiting_for_install(tmp_path: Path, repo: Repo) -> Iterator[Running]:
    """beacon not installed yet (awaiting its first install); fusedsink and alertwaiter blocked; bystander active."""
    yield from _start(tmp_path, repo, with_beacon=False)


@pytest.fixture
def beacon_without_fused(tmp_path: Path, repo: Repo) -> Iterator[Running]:
    """beacon 1.0 (NavState only) active; fusedsink and alertwaiter blocked; bystander active."""
    yield from _start(tmp_path, repo, with_beacon=True)


def _events(p: Running, kind: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
    return [(e.kind, e.module, e.detail) for e in p.daemon.events(p.first_event) if kind is None or e.kind == kind]


def _assert_bystander_untouched(p: Running) -> None:
    status = p.daemon.get_module("bystander")
    assert (status.state, status.pid) == ("active", p.bystander_pid)
    assert worker_pids(p.domain_id, "bystander") == [p.bystander_pid]


def test_refused_and_rolled_back_first_installs_unblock_nothing_then_a_committed_one_does(
    waiting_for_install: Running,
) -> None:
    """UPD-RESOLVE-001, UPD-RESOLVE-002."""
    p = waiting_for_install
    d = p.daemon
    refused = d.update_apply("beacon", "7.0")  # not in the repository
    assert (refused.outcome, refused.cause) == ("refused", "TargetNotFoundError"), refused.reason
    rolled_back = d.update_apply("beacon", "0.9")  # provides FusedTrack, but crashes when activated
    assert (rolled_back.outcome, rolled_back.cause) == ("rolled_back", "crashed"), rolled_back.reason
    assert d.get_module("fusedsink").state == "not_started"
    assert worker_pids(p.domain_id, "fusedsink") == []
    assert _events(p, "module_unblocked") == []

    record = d.update_apply("beacon", "1.1")  # first install, provides FusedTrack: no reload
    assert (record.outcome, record.from_version, record.to_version) == ("committed", "", "1.1"), record.reason
    fusedsink = d.get_module("fusedsink")  # started before update_apply returned
    assert (fusedsink.state, fusedsink.unmet, fusedsink.reason) == ("active", (), "")
    assert worker_pids(p.domain_id, "fusedsink") == [fusedsink.pid]
    (unblocked,) = _events(p, "module_unblocked")
    assert unblocked[1] == "fusedsink"
    assert unblocked[2]["after"] == "update of module 'beacon' (none) -> 1.1 committed"
    assert FUSED in unblocked[2]["was"]

    alertwaiter = d.get_module("alertwaiter")  # still unmet: blocked, with its reason (beacon is known now)
    assert (alertwaiter.state, alertwaiter.pid) == ("not_started", 0)
    assert [(u.interface, u.reason) for u in alertwaiter.unmet] == [(ALERT, "no module provides it")]
    reblocked = [e for e in _events(p, "module_blocked") if e[1] == "alertwaiter"]
    assert reblocked[-1][2]["reason"] == f"requires {ALERT}: no module provides it"

    _assert_bystander_untouched(p)
    started = [e[1] for e in _events(p, "module_started")]
    assert started == ["fusedsink"]  # nothing else was (re)started; beacon itself is started by the updater
    kinds = [k for k, _, _ in _events(p)]
    assert kinds.index("update_committed") < kinds.index("module_unblocked") < kinds.index("module_started")


def test_an_update_that_newly_provides_an_interface_unblocks_and_an_operator_rollback_reports(
    beacon_without_fused: Running,
) -> None:
    """UPD-RESOLVE-001, -003: 1.0 -> 1.1 (adds FusedTrack) starts fusedsink; back to 1.0 leaves it running."""
    p = beacon_without_fused
    d = p.daemon
    record = d.update_apply("beacon", "1.1")
    assert (record.outcome, record.from_version, record.to_version) == ("committed", "1.0", "1.1"), record.reason
    fusedsink = d.get_module("fusedsink")
    assert (fusedsink.state, fusedsink.unmet) == ("active", ())
    assert [m for _, m, _ in _events(p, "module_unblocked")] == ["fusedsink"]
    assert [m for _, m, _ in _events(p, "module_started")] == ["fusedsink"]
    _assert_bystander_untouched(p)

    back = d.update_rollback("beacon")
    assert (back.outcome, back.cause, back.to_version) == ("rolled_back", "operator", "1.0"), back.reason
    still = d.get_module("fusedsink")
    assert (still.state, still.pid) == ("active", fusedsink.pid)  # a rollback never stops a running consumer
    (lost,) = _events(p, "module_unmet")
    assert lost[1] == "fusedsink"
    assert lost[2]["reason"] == f"requires {FUSED}: no module provides it"
    assert lost[2]["after"] == "operator rollback of module 'beacon' 1.1 -> 1.0"
    assert [m for _, m, _ in _events(p, "module_started")] == ["fusedsink"]
    assert d.get_module("alertwaiter").state == "not_started"
    _assert_bystander_untouched(p)
