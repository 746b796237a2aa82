"""The conformance harness: a module hosted by the real runtime worker on a private Cyclone DDS domain.

Real worker processes, real DDS on loopback, each test on its own domain id and discovery tag.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hardpoint_runtime.conformance._fixtures import load_options
from hardpoint_runtime.conformance._harness import (
    HarnessError,
    HostedModule,
    default_adapters,
    feeders_for,
    free_domain_id,
    release_domain_id,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_domain_ids_are_unique_while_held_and_reusable_after_release() -> None:
    ids = [free_domain_id() for _ in range(5)]
    try:
        assert len(set(ids)) == 5
        assert all(1 <= i <= 230 for i in ids)
    finally:
        for i in ids:
            release_domain_id(i)


def test_radar_is_hosted_fed_by_the_reference_nav_and_seen_by_the_probe() -> None:
    from hardpoint.track.v1 import track_pb2

    with HostedModule("radar") as host:
        assert host.feeders == ["nav"]
        sub = host.probe.subscribe(track_pb2.SensorTrack, with_info=True)
        host.start()
        assert host.alive()
        assert host.status()["state"] == "unconfigured"
        host.activate()
        got = wait_until(lambda: [i for _, i in sub.take() if i.source == "radar"], timeout_s=20.0)
        assert got, f"no SensorTrack from radar within 20 s\n{host.log_tail()}"
        assert got[0].interface == "hardpoint.track.v1.SensorTrack"
        # Discovery attributes writers to the module's own participant, not to the feeder's.
        topics = {p.topic_name for p in host.publications()}
        assert "hp/track/v1/sensor" in topics
        assert "hp/nav/v1/state" not in topics
        assert host.tap is not None
        raw = host.tap.frames(topic="hp/track/v1/sensor")
        assert raw
        assert {f.source for f in raw} == {"radar"}
        assert host.transition("shutdown")["state"] == "finalized"
    assert not host.alive()


def test_every_participant_the_module_makes_is_its_own_and_the_suites_are_not() -> None:
    """CF-HOST-004: a participant the worker makes after start-up is the module's; one of this process is not."""
    from cyclonedds.domain import DomainParticipant

    with HostedModule("broken_late_participant") as host:  # a second participant 2 s after activation
        host.activate()
        first = host.participant
        assert first is not None
        assert wait_until(lambda: len(host.module_participants()) == 2, timeout_s=15.0), host.log_tail()
        assert first in host.module_participants()
        # The late participant is discovered before its writer is: wait for the writer too.
        assert wait_until(lambda: "hp/alert/v1/alert" in {w.topic_name for w in host.publications()}, timeout_s=15.0), {
            w.topic_name for w in host.publications()
        }
        late = next(iter(host.module_participants() - {first}))
        assert f"participant {late} of process {host.pid} (python, the module's worker)" in host.participant_details(
            late
        )
        # A participant this process makes on the run's domain (as the schema check does) is the suite's.
        own = DomainParticipant(host.domain_id)
        try:
            assert wait_until(lambda: own.guid in host.suite_participants(), timeout_s=15.0)
            assert own.guid not in host.module_participants()
        finally:
            own.__del__()


def test_samples_are_the_module_s_by_their_writer_not_by_the_source_they_claim() -> None:
    """A radar whose samples claim to be from nav, its feeder: they are still the module's (CF-HOST-004)."""
    from hardpoint_runtime.conformance.checks_contract import module_frames

    with HostedModule("broken_impersonate") as host:
        assert host.feeders == ["nav"]
        host.activate()
        assert host.tap is not None
        tap = host.tap
        frames = wait_until(lambda: tap.frames(topic="hp/track/v1/sensor"), timeout_s=20.0)
        assert frames, host.log_tail()
        assert {f.source for f in frames} == {"nav"}
        mine, suite = host.module_participants(), host.suite_participants()
        assert not mine & suite
        assert len(suite) == 2  # the probe's and the nav feeder's
        assert {f.participant for f in frames} <= mine
        assert module_frames(host, frames) == frames


def test_an_invalid_transition_is_refused_with_the_state_unchanged() -> None:
    with HostedModule("nav") as host:
        host.start()
        reply = host.transition("activate")
        assert reply["ok"] is False
        assert reply["state"] == "unconfigured"
        assert "cannot activate in state unconfigured" in reply["error"]


def test_restart_gives_a_fresh_worker_that_reaches_active() -> None:
    with HostedModule("nav") as host:
        host.activate()
        first = host.pid
        host.restart()
        assert host.pid != first
        assert host.status()["state"] == "unconfigured"
        host.activate()
        assert host.status()["state"] == "active"


def test_an_unknown_module_is_refused_naming_it() -> None:
    with pytest.raises(HarnessError, match=r"no module named 'no-such-module' in entry-point group hardpoint.modules"):
        HostedModule("no-such-module")


def test_a_missing_wheel_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"no wheel file .*missing-1.0-py3-none-any.whl"):
        HostedModule(str(tmp_path / "missing-1.0-py3-none-any.whl"))


def test_an_adapter_without_simulated_default_names_it_and_the_option() -> None:
    with pytest.raises(HarnessError, match=r"adapter 'sonar' has no simulated default .*--hardpoint-config"):
        default_adapters(["gnss", "sonar"], start_ns=0)


def test_a_bad_configuration_is_refused_with_the_worker_error() -> None:
    with HostedModule("nav", config={"rate_hz": -1}) as host, pytest.raises(HarnessError) as e:
        host.activate()
    assert "configure ended in state" in str(e.value)
    assert "nav" in str(e.value)


def test_feeders_are_the_reference_providers_providers_first() -> None:
    import hardpoint

    geofence = HostedModule("geofence", feeders=[])
    try:
        assert feeders_for(geofence.manifest) == ["nav", "radar", "fusion"]
    finally:
        geofence.close()
    assert feeders_for(hardpoint.Manifest(name="x", version="1", supplier="s")) == []


def test_options_file_is_read_and_bad_files_are_named(tmp_path: Path) -> None:
    good = tmp_path / "ok.toml"
    good.write_text('[config]\nrate_hz = 5.0\n[adapters.gnss]\ndriver = "sim-gnss"\nconfig = { seed = 4 }\n')
    assert load_options(good) == {
        "config": {"rate_hz": 5.0},
        "adapters": {"gnss": {"driver": "sim-gnss", "config": {"seed": 4}}},
    }
    bad = tmp_path / "bad.toml"
    bad.write_text("[adapters.gnss]\nconfig = {}\n")
    with pytest.raises(HarnessError, match=r"bad.toml: adapters.gnss: needs driver"):
        load_options(bad)
    bad.write_text("[modules]\n")
    with pytest.raises(HarnessError, match=r"unknown table\(s\) modules"):
        load_options(bad)


def test_close_stops_every_process_it_started() -> None:
    host = HostedModule("radar")
    host.activate()
    procs = [host.process, *host._feeder_procs]
    host.close()
    deadline = time.monotonic() + 15
    while any(p is not None and p.exit_code() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(p is not None and p.exit_code() is not None for p in procs)


def test_a_wheel_is_installed_privately_and_hosted_from_there(tmp_path: Path) -> None:
    from wheelkit import write_wheel

    source = b"""
import hardpoint
from hardpoint import hookimpl


class Quiet:
    manifest = hardpoint.Manifest(name="cf-wheel", version="0.1.0", supplier="tests")

    @hookimpl
    def on_activate(self, ctx):
        ctx.log.warning("loaded from %s", __file__)
"""
    wheel = write_wheel(
        tmp_path,
        distribution="cf_wheel",
        version="0.1.0",
        entry_points={"cf-wheel": "cf_wheel_mod:Quiet"},
        files={"cf_wheel_mod.py": source},
    )
    with HostedModule(str(wheel), workdir=tmp_path / "run") as host:
        assert host.name == "cf-wheel"
        assert host.manifest.name == "cf-wheel"
        host.activate()
        assert host.status()["state"] == "active"
        site = tmp_path / "run" / "wheel" / "site"
        assert (site / "cf_wheel_mod.py").is_file()
        assert wait_until(lambda: str(site / "cf_wheel_mod.py") in host.log_tail(), timeout_s=5.0), host.log_tail()


def _cli(*args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime.cli", "conformance", "check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_the_config_file_reaches_the_hosted_module_through_the_cli(tmp_path: Path) -> None:
    import json

    config = tmp_path / "nav-slow.toml"
    config.write_text("[config]\nrate_hz = 1.0\n")
    code, out, err = _cli(
        "nav", "--only", "checks_contract", "--config", str(config), "--json", "--report", str(tmp_path / "r")
    )
    assert code == 1, err
    checks = {c["check"]: c for c in json.loads(out)["checks"]}
    rate = checks["test_rate[hardpoint.nav.v1.NavState]"]
    assert rate["outcome"] == "failed"
    assert "IF-NAV-STATE-RATE" in rate["message"]
    assert "measured 1.00 Hz" in rate["message"]


def test_a_bad_config_file_is_named(tmp_path: Path) -> None:
    code, _, err = _cli("nav", "--config", str(tmp_path / "missing.toml"))
    assert code == 1
    assert f"no configuration file {tmp_path / 'missing.toml'}" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[config\n")
    code, out, err = _cli("nav", "--only", "checks_contract", "--config", str(bad), "--report", str(tmp_path / "r"))
    assert code == 1
    assert "--hardpoint-config" in out
    assert "invalid TOML" in out
