"""Unit tests of the pure parts of daemon updates: recovery rule, pre-check, gate and probation verdicts,
the journal and pins in the state store, the ``[update]`` configuration and the atomic store install."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from hardpoint import Manifest
from hardpoint_runtime._config import parse_config
from hardpoint_runtime._errors import ConfigError
from hardpoint_runtime._plugins import ModuleDistribution, pick_version, store_paths
from hardpoint_runtime._resolve import Candidate, InterfaceInfo
from hardpoint_runtime._store import StateStore
from hardpoint_runtime._updater import GateView, gate_verdict, probation_verdict, silence_allowed_s
from hardpoint_runtime.update._journal import STEPS, JournalEntry, recover
from hardpoint_runtime.update._precheck import UnmetRequirementError, breakages, precheck

NAV = "hardpoint.nav.v1.NavState"
FUSED = "hardpoint.track.v1.FusedTrack"
IFACES = {n: InterfaceInfo(n, single_writer=True) for n in (NAV, FUSED, "hardpoint.nav.v2.NavState")}


def _entry(step: str, outcome: str = "in_progress", from_version: str = "1.0") -> JournalEntry:
    return JournalEntry(1, "beacon", from_version, "1.1", step, outcome)


@pytest.mark.parametrize("step", STEPS[:-1])
def test_recovery_before_commit_returns_to_the_old_version(step: str) -> None:
    decision = recover(_entry(step))
    assert decision is not None
    assert (decision.pin, decision.outcome, decision.cause) == ("1.0", "interrupted", "interrupted")
    assert repr(step) in decision.reason
    assert "'beacon'" in decision.reason


def test_recovery_of_a_first_install_pins_no_version_and_finished_attempts_are_left_alone() -> None:
    first = recover(_entry("switched", from_version=""))
    assert first is not None
    assert first.pin == ""
    committed = recover(_entry("committed"))
    assert committed is not None
    assert (committed.pin, committed.outcome) == ("1.1", "committed")
    assert recover(_entry("switched", outcome="rolled_back")) is None


def _m(name: str, version: str, provides: tuple[str, ...] = (), requires: tuple[str, ...] = ()) -> Manifest:
    return Manifest(name=name, version=version, supplier="t", provides=provides, requires=requires)


def test_precheck_refuses_a_release_that_removes_an_interface_a_consumer_needs() -> None:
    current = [
        Candidate("beacon", "main", _m("beacon", "1.0", provides=(NAV,))),
        Candidate("fusion", "main", _m("fusion", "1.0", requires=(NAV,))),
    ]
    v2 = _m("beacon", "2.0", provides=("hardpoint.nav.v2.NavState",))
    with pytest.raises(UnmetRequirementError) as caught:
        precheck("beacon", v2, current, IFACES, target="acme/beacon/b-2.0.whl", role="acme")
    text = str(caught.value)
    assert "'fusion'" in text
    assert NAV in text
    assert "'beacon' 2.0" in text
    assert "role 'acme'" in text
    # Adding a capability breaks nothing.
    assert breakages("beacon", _m("beacon", "1.1", provides=(NAV, FUSED)), current, IFACES) == []


def test_precheck_allows_a_first_install_and_refuses_a_second_writer() -> None:
    current = [Candidate("beacon", "main", None, "not installed"), Candidate("nav", "main", _m("nav", "1", (NAV,)))]
    assert breakages("beacon", _m("beacon", "1.0", requires=("hardpoint.nav.v2.NavState",)), current, IFACES) == []
    found = breakages("beacon", _m("beacon", "1.0", provides=(NAV,)), current, IFACES)
    assert found
    assert NAV in str(found[0])


def test_gate_verdicts() -> None:
    silent = {NAV: None}
    assert gate_verdict("b", "1.1", GateView(1.0, health="ok", silence_s=silent), 5) is None
    assert gate_verdict("b", "1.1", GateView(1.0, health="ok", silence_s={NAV: 0.1}), 5) == ("pass", "")
    crashed = gate_verdict("b", "1.1", GateView(0.5, exited="process exited with code 70"), 5)
    assert crashed is not None
    assert crashed[0] == "crashed"
    unhealthy = gate_verdict("b", "1.1", GateView(5.1, health="degraded", silence_s={NAV: 0.1}), 5)
    assert unhealthy is not None
    assert unhealthy[0] == "never_healthy"
    mute = gate_verdict("b", "1.1", GateView(5.1, health="ok", silence_s=silent), 5)
    assert mute == ("stopped_publishing", f"module 'b' 1.1 did not publish {NAV} within 5 s")


def test_probation_verdicts() -> None:
    fine = GateView(2.0, health="ok", silence_s={NAV: 0.1}, allowed_s={NAV: 1.0})
    assert probation_verdict("b", "1.1", fine, restart_budget=0) is None
    silent = GateView(4.0, health="ok", silence_s={NAV: 2.5}, allowed_s={NAV: 1.0})
    verdict = probation_verdict("b", "1.1", silent, restart_budget=0)
    assert verdict is not None
    assert verdict[0] == "stopped_publishing"
    assert NAV in verdict[1]
    restarted = GateView(2.0, restarts=2, health="ok", silence_s={NAV: 0.1}, allowed_s={NAV: 1.0})
    budget = probation_verdict("b", "1.1", restarted, restart_budget=1)
    assert budget is not None
    assert budget[0] == "restart_budget"
    assert probation_verdict("b", "1.1", restarted, restart_budget=2) is None
    died = GateView(2.0, restarts=1, exited="process killed by SIGKILL")
    assert probation_verdict("b", "1.1", died, restart_budget=0) == (
        "crashed", "module 'b' 1.1 crashed during probation: process killed by SIGKILL",
    )  # fmt: skip


def test_silence_allowed_from_the_contract() -> None:
    assert silence_allowed_s(0, 0.0) is None  # aperiodic: cannot be demanded
    assert silence_allowed_s(500, 10.0) == pytest.approx(1.0)
    assert silence_allowed_s(1500, 2.0) == pytest.approx(3.0)


def test_journal_steps_and_pins_in_the_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    entry = store.journal_begin("beacon", "1.0", "1.1", target="acme/beacon/x.whl")
    assert (entry.step, entry.outcome, entry.finished_ns) == ("requested", "in_progress", 0)
    store.journal_step(entry.id, "installed")
    switched = store.journal_step(entry.id, "switched", pin=("beacon", "1.1"), switch_gap_ms=42.0)
    assert store.pinned_version("beacon") == "1.1"
    assert switched.switch_gap_ms == 42.0
    assert [e.id for e in store.journal(in_progress=True)] == [entry.id]
    done = store.journal_finish(entry.id, "rolled_back", cause="crashed", reason="r", pin=("beacon", "1.0"))
    assert (done.step, done.outcome, done.cause) == ("switched", "rolled_back", "crashed")
    assert done.finished_ns > 0
    assert store.pins() == {"beacon": "1.0"}
    assert store.journal(in_progress=True) == []
    with pytest.raises(ValueError, match="not an update step"):
        store.journal_step(entry.id, "half_done")
    with pytest.raises(KeyError):
        store.journal_step(999, "installed")
    store.close()


def _dist(version: str) -> ModuleDistribution:
    return ModuleDistribution("beacon", version, "hp-beacon", "x:Y", f"/store/beacon/{version}/lib")


def test_pick_version_runs_the_pinned_version() -> None:
    installed = {"beacon": [_dist("1.1"), _dist("1.0")]}
    assert pick_version("beacon", "", installed)[0] == _dist("1.1")
    assert pick_version("beacon", "", installed, pinned="1.0")[0] == _dist("1.0")
    assert pick_version("beacon", "", installed, pinned="0.9")[0] == _dist("1.1")  # pin not installed: newest
    none, why = pick_version("beacon", "", installed, pinned="")
    assert none is None
    assert "first install was not completed" in why


_BASE = '[platform]\nname = "p"\n\n[update]\n'


@pytest.mark.parametrize(
    ("body", "field", "line"),
    [
        ('url = "ftp://x"\n', "update.url", 5),
        ("gate_timeout_s = 5\n", "update.url", None),
        ('url = "http://127.0.0.1:1/"\ndirectory = "/tmp"\n', "update.url", 5),
        ('url = "http://127.0.0.1:1/"\ngate_timeout_s = 0\n', "update.gate_timeout_s", 6),
        ('url = "http://127.0.0.1:1/"\nrequire_evidence = true\n', "update.conformance_keys", None),
    ],
)
def test_update_section_errors_name_field_and_line(body: str, field: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_BASE + body, origin="platform.toml")
    text = str(caught.value)
    assert field in text
    if line is not None:
        assert f"platform.toml:{line}:" in text


def test_update_section_defaults(tmp_path: Path) -> None:
    cfg = parse_config(_BASE + 'url = "http://127.0.0.1:8765"\n', base_dir=tmp_path)
    assert cfg.update is not None
    assert cfg.update.url == "http://127.0.0.1:8765/"
    assert (cfg.update.require_evidence, cfg.update.metadata_dir) == (False, None)
    assert parse_config('[platform]\nname = "p"\n').update is None


def test_store_never_selects_a_partial_install(tmp_path: Path) -> None:
    (tmp_path / "beacon" / "1.0" / "lib").mkdir(parents=True)
    (tmp_path / "beacon" / ".partial-1.1-123" / "lib").mkdir(parents=True)
    assert store_paths(tmp_path) == [str(tmp_path / "beacon" / "1.0" / "lib")]


def test_install_is_atomic_and_not_repeated(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "update"))
    from modkit import build_module_wheel

    from hardpoint_runtime.update._install import InstallError, install_wheel

    wheel = build_module_wheel(tmp_path / "w", version="1.0")
    store = tmp_path / "store"
    lib = install_wheel(wheel, store, "beacon", "1.0")
    assert (lib / "hp_mk_beacon" / "hardpoint-manifest.json").is_file()
    assert sorted(p.name for p in (store / "beacon").iterdir()) == ["1.0"]
    stamp = (lib / "hp_mk_beacon" / "__init__.py").stat().st_mtime_ns
    assert install_wheel(wheel, store, "beacon", "1.0") == lib  # present: not installed again
    assert (lib / "hp_mk_beacon" / "__init__.py").stat().st_mtime_ns == stamp
    garbage = tmp_path / "bad.whl"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(InstallError, match=r"'beacon' 1\.1"):
        install_wheel(garbage, store, "beacon", "1.1")
    assert sorted(p.name for p in (store / "beacon").iterdir()) == ["1.0"]  # nothing left behind


def test_a_module_awaiting_its_first_install_is_blocked_not_a_platform_error() -> None:
    from hardpoint_runtime._resolve import resolve

    waiting = Candidate("beacon", "main", None, "no installed module is named 'beacon'", awaiting_install=True)
    consumer = Candidate("fusion", "main", _m("fusion", "1.0", requires=(NAV,)))
    result = resolve([waiting, consumer], IFACES)
    assert result.errors == []
    assert set(result.blocked) == {"beacon", "fusion"}
    assert "module not installed" in str(result.blocked["beacon"][0])
    plain = resolve([Candidate("beacon", "main", None, "not there")], IFACES)
    assert plain.errors == ["module 'beacon' is not installed: not there"]  # RT-RES-007 without [update]


def test_recover_on_start_finishes_every_unfinished_attempt(tmp_path: Path) -> None:
    from hardpoint_runtime._updater import recover_on_start

    store = StateStore(tmp_path / "state.db")
    done = store.journal_begin("alpha", "1.0", "1.1")
    store.journal_step(done.id, "committed", outcome="committed", pin=("alpha", "1.1"))
    switched = store.journal_begin("beta", "2.0", "2.1")
    store.journal_step(switched.id, "switched", pin=("beta", "2.1"))
    first = store.journal_begin("gamma", "", "0.1")
    store.journal_step(first.id, "staged")
    events: list[tuple[str, str | None]] = []
    recovered = recover_on_start(store, lambda kind, module=None, **_: events.append((kind, module)))
    assert sorted(e.module for e in recovered) == ["beta", "gamma"]
    assert store.pins() == {"alpha": "1.1", "beta": "2.0", "gamma": ""}
    assert [(e.module, e.outcome, e.step) for e in store.journal()] == [
        ("gamma", "interrupted", "staged"),
        ("beta", "interrupted", "switched"),
        ("alpha", "committed", "committed"),
    ]
    assert sorted(events) == [("update_recovered", "beta"), ("update_recovered", "gamma")]
    assert recover_on_start(store, lambda *a, **k: None) == []  # nothing left to recover
    store.close()


def test_updater_refuses_without_update_section_and_while_another_update_runs(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from hardpoint_runtime._updater import Updater

    cfg = parse_config(_BASE + 'url = "http://127.0.0.1:8765"\n', base_dir=tmp_path)
    daemon: Any = SimpleNamespace(
        state_dir=tmp_path,
        modules={"beacon": SimpleNamespace(version="1.0", dist=object())},
        config=SimpleNamespace(platform=SimpleNamespace(name="p")),
        config_path=tmp_path / "platform.toml",
    )
    with pytest.raises(ValueError, match=r"no \[update\] section"):
        Updater(daemon, None).apply("beacon", None, None)
    with pytest.raises(ValueError, match=r"no \[update\] section"):
        Updater(daemon, None).check()
    busy = Updater(daemon, cfg.update)
    busy._lock.acquire()
    with pytest.raises(ValueError, match="already running"):
        busy.apply("beacon", "1.1", None)
    with pytest.raises(ValueError, match="already running"):
        busy.rollback("beacon")
    with pytest.raises(KeyError, match=r"no module 'nope'.*add the entry and run 'hardpoint reload'"):
        busy.apply("nope", None, None)
    # Issue 14 defect 1: a typo gets the module meant, as 'hardpoint new module' offers.
    with pytest.raises(KeyError, match=r"no module 'beacn'.*did you mean 'beacon'"):
        busy.apply("beacn", None, None)


def test_switch_message_never_prints_a_negative_gap() -> None:
    """Issue 14 defect 8: ``switch gap -1.0 ms`` was printed on a first install and on an unmeasured update."""
    from hardpoint_runtime._updater import switch_message

    assert switch_message(12.34, first_install=False) == "switch gap 12.3 ms"
    assert switch_message(0.0, first_install=False) == "switch gap 0.0 ms"
    assert switch_message(-1.0, first_install=True) == "first install: no earlier version to switch from"
    unmeasured = switch_message(-1.0, first_install=False)
    assert "-1" not in unmeasured
    assert unmeasured.startswith("switch gap not measured")


def test_an_earlier_rollback_of_the_offered_version_is_noted() -> None:
    """Issue 14 defect 10: after a rollback, update check offered the same version again with no note."""
    from hardpoint_runtime._updater import offer_note, rolled_back_before
    from hardpoint_runtime.update import JournalEntry

    history = [  # newest first, as the store lists them
        JournalEntry(5, "beacon", "1.4", "1.0", "rolled_back", "rolled_back", "operator", "", "operator returned"),
        JournalEntry(4, "beacon", "1.0", "1.4", "committed", "committed"),
        JournalEntry(3, "beacon", "1.0", "1.5", "rolled_back", "rolled_back", "crashed", "", "exited with code 70"),
        JournalEntry(2, "beacon", "1.0", "1.6", "refused", "refused", "IntegrityError"),
    ]
    assert rolled_back_before(history, "1.5") is history[2]
    assert rolled_back_before(history, "1.4") is history[0]  # the operator returned from it
    assert rolled_back_before(history, "1.0") is None  # returned to, not from
    assert rolled_back_before(history, "1.6") is None  # refused is not a rollback
    assert offer_note("1.0", history[2]) == "rolled back on this platform before (crashed: exited with code 70)"
    assert offer_note("", None) == "not installed: apply makes its first install"
    assert offer_note("1.0", None) == ""
