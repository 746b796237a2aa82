"""A whole platform on a real hardpointd (issue 3, acceptance 1 and 4).

Acceptance 1: five modules start, ``hardpoint status`` shows them all active,
``hardpoint topics`` shows their interfaces with measured rates and publishers.

Acceptance 4: a module with an unmet requirement is not started and
``hardpoint module show`` names the missing interface and its major version;
fixing the configuration and ``hardpoint reload`` starts it. A reload with a
configuration that is refused changes nothing; one that drops a module stops it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hp_runtime_it import Mod, Platform, open_platform, worker_pids

pytestmark = pytest.mark.integration

FIVE = ("beacon-nav", "beacon-track", "beacon-fused", "alerter", "sink")

#: Topic -> (interface, module(s) that publish it).
EXPECTED_TOPICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hp/nav/v1/state": ("hardpoint.nav.v1.NavState", ("beacon-nav",)),
    "hp/track/v1/sensor": ("hardpoint.track.v1.SensorTrack", ("beacon-track",)),
    "hp/track/v1/fused": ("hardpoint.track.v1.FusedTrack", ("beacon-fused",)),
    "hp/alert/v1/alert": ("hardpoint.alert.v1.Alert", ("alerter",)),
    "hp/core/v1/health": ("hardpoint.core.v1.ModuleHealth", FIVE),
}


# --------------------------------------------------------------------------- acceptance 1


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One running five-module platform, shared by the read-only checks below."""
    with open_platform(tmp_path_factory.mktemp("hp"), name="five") as p:
        p.write(FIVE)
        p.start()
        yield p


def test_five_modules_start_and_status_shows_all_active(five: Platform) -> None:
    """``hardpoint status --json``: the five modules reach active, each in its own process, health ok."""

    def all_ok(status: dict[str, Any] | None) -> bool:
        if status is None:
            return False
        mods = {m["name"]: m for m in status["modules"]}
        return (
            status["health"]["status"] == "ok"
            and set(mods) == set(FIVE)
            and all(m["state"] == "active" and m["health"] == "ok" for m in mods.values())
        )

    status = five.wait(lambda: five.try_cli("status"), all_ok, timeout=60, what="all five modules active, health ok")
    health = status["health"]
    assert (health["modules_total"], health["modules_active"]) == (5, 5)
    assert health["reasons"] == []
    assert health["platform"] == "five"
    mods = {m["name"]: m for m in status["modules"]}
    pids = {m["pid"] for m in mods.values()}
    assert len(pids) == 5, f"each module has its own process: {pids}"
    assert all(pid > 0 for pid in pids)
    for name, m in mods.items():
        assert (m["version"], m["target_state"], m["restarts"], m["unmet"]) == ("1.0.0", "active", 0, []), name
        assert m["local"] is True
        assert 0 <= m["heartbeat_age_s"] < 3.0, f"{name} beats"


def test_topics_list_interfaces_with_rates_and_publishers(five: Platform) -> None:
    """``hardpoint topics --json``: every interface of the platform, measured rate > 0, its publishers named."""
    five.wait_active(FIVE)

    def complete(topics: list[dict[str, Any]] | None) -> bool:
        if topics is None:
            return False
        by_topic = {t["topic"]: t for t in topics}
        return all(
            topic in by_topic and by_topic[topic]["rate_hz"] > 0 and set(pubs) <= set(by_topic[topic]["publishers"])
            for topic, (_, pubs) in EXPECTED_TOPICS.items()
        )

    topics = five.wait(lambda: five.try_cli("topics"), complete, timeout=30, what="every topic with a rate")
    by_topic = {t["topic"]: t for t in topics}
    for topic, (interface, publishers) in EXPECTED_TOPICS.items():
        t = by_topic[topic]
        assert t["interface"] == interface
        assert set(t["publishers"]) == set(publishers), f"{topic}: {t['publishers']}"
        assert t["rate_hz"] > 0
        assert t["qos"] in ("state", "event", "stream")
    # The beacons publish at 10 Hz; the nominal rate is from the interface contract.
    nav = by_topic["hp/nav/v1/state"]
    assert nav["nominal_rate_hz"] == 10.0
    assert 3.0 < nav["rate_hz"] < 20.0, nav
    assert by_topic["hp/core/v1/health"]["rate_hz"] > 0.5, "five modules beat once a second"

    # And for people: the table shows each topic with its rate in Hz.
    table = five.cli_run("topics")
    assert table.returncode == 0, table.stderr
    for topic, (interface, _) in EXPECTED_TOPICS.items():
        line = next((ln for ln in table.stdout.splitlines() if ln.lstrip().startswith(topic)), "")
        assert interface in line, f"{topic} row: {line!r}\n{table.stdout}"
        assert re.search(r"\b\d+\.\d Hz\b", line), f"{topic} row has no rate: {line!r}"


def test_status_table_for_people(five: Platform) -> None:
    """``hardpoint status`` without --json: health line, then one row per module with its state."""
    five.wait_active(FIVE)
    result = five.cli_run("status")
    assert result.returncode == 0, result.stderr
    assert "platform five on node main" in result.stdout
    assert "5/5 modules active" in result.stdout
    for name in FIVE:
        assert any(ln.lstrip().startswith(name) and "active" in ln for ln in result.stdout.splitlines()), name


# --------------------------------------------------------------------------- acceptance 4


def test_unmet_requirement_not_started_then_reload_starts_it(platform: Platform) -> None:
    """needs-nav2 requires NavState major 2 (not in the interface set); sink requires Alert, which
    nobody provides until alerter is added: both are left out, with the reason in ``module show``,
    while the rest runs. Adding alerter to the configuration and ``hardpoint reload`` starts sink
    and alerter; needs-nav2 stays blocked."""
    running = ("beacon-nav", "beacon-track", "beacon-fused")
    platform.write([*running, "needs-nav2", "sink"])
    platform.start()
    platform.wait_active(running)

    # needs-nav2: the missing interface, its major version and why.
    m = platform.module("needs-nav2")
    assert m["state"] == "not_started"
    assert m["pid"] == 0
    assert m["health"] == "failed"
    assert m["requires"] == ["hardpoint.nav.v2.NavState"]
    assert len(m["unmet"]) == 1, m["unmet"]
    unmet = m["unmet"][0]
    assert (unmet["interface"], unmet["major"]) == ("hardpoint.nav.v2.NavState", 2)
    assert "not in the platform interface set" in unmet["reason"]
    assert "hardpoint.nav.v1.NavState" in unmet["reason"], "the reason points at the major that exists"
    assert "hardpoint.nav.v2.NavState" in m["reason"]

    # sink: Alert major 1 is unmet because no configured module provides it; NavState is met.
    s = platform.module("sink")
    assert s["state"] == "not_started"
    assert s["pid"] == 0
    assert [(u["interface"], u["major"]) for u in s["unmet"]] == [("hardpoint.alert.v1.Alert", 1)]
    assert "no module provides it" in s["unmet"][0]["reason"]

    # The rest of the platform runs, and the platform says it is degraded and why.
    status = platform.status()
    states = {x["name"]: x["state"] for x in status["modules"]}
    assert states == {**dict.fromkeys(running, "active"), "needs-nav2": "not_started", "sink": "not_started"}
    assert status["health"]["status"] == "degraded"
    reasons = "\n".join(status["health"]["reasons"])
    assert "needs-nav2" in reasons
    assert "sink" in reasons
    blocked = {e["module"] for e in platform.events("module_blocked")}
    assert blocked == {"needs-nav2", "sink"}
    assert not platform.events("module_started", "sink")

    # Fix the configuration (add the Alert provider) and reload: sink and alerter start.
    platform.write([*running, "needs-nav2", "sink", "alerter"])
    changes = platform.cli("reload")["changes"]
    assert set(changes) >= {"started alerter", "started sink"}, changes
    assert not any("needs-nav2" in c for c in changes), changes
    mods = platform.wait_active([*running, "alerter", "sink"], timeout=30)
    assert mods["sink"]["unmet"] == []
    assert mods["sink"]["pid"] > 0
    assert mods["needs-nav2"]["state"] == "not_started", "still unmet: NavState v2 does not exist"
    # sink now receives alerts from the new provider.
    platform.wait_module(
        "sink",
        lambda x: x["counters"].get("sub:hardpoint.alert.v1.Alert.delivered", 0) > 0,
        timeout=15,
        what="alerts delivered",
    )
    assert platform.events("config_reloaded")
    assert platform.events("module_started", "sink")


def test_refused_reload_changes_nothing_and_removed_module_is_stopped(platform: Platform) -> None:
    """A reload whose configuration is refused (a second NavState writer; a version nothing satisfies;
    invalid TOML) fails with the file, line and reason, and the platform runs on exactly as before:
    same modules, same processes, and a killed module still restarts with its old configuration.
    A reload that drops a module stops its process."""
    platform.write(["beacon-nav", "beacon-track"])
    platform.start()
    before = platform.wait_active(["beacon-nav", "beacon-track"])
    pids = {name: m["pid"] for name, m in before.items()}

    def assert_unchanged() -> None:
        status = platform.status()
        assert {m["name"]: (m["state"], m["pid"]) for m in status["modules"]} == {
            name: ("active", pid) for name, pid in pids.items()
        }
        assert status["health"]["status"] == "ok", status["health"]

    refused = [
        ([Mod("beacon-nav"), Mod("beacon-nav-b")], 'name = "beacon-nav-b"', "modules[1].name", "single-writer"),
        ([Mod("beacon-nav"), Mod("beacon-track", version=">=2")], 'version = ">=2"', "modules[1].version", "'>=2'"),
    ]
    for modules, marker, field, words in refused:
        text = platform.write(modules).read_text()
        line = next(i for i, ln in enumerate(text.splitlines(), start=1) if marker in ln)
        where = f"platform.toml:{line}: {field}: "
        result = platform.cli_run("reload")
        assert result.returncode == 1, result
        assert where in result.stderr, result.stderr
        assert words in result.stderr, result.stderr
        assert "runs on unchanged" in result.stderr, result.stderr
        assert_unchanged()
    platform.write_text(platform.config_path.read_text() + "[[modules]\n")
    result = platform.cli_run("reload")
    assert result.returncode == 1, result
    assert "invalid TOML" in result.stderr, result.stderr
    assert_unchanged()
    assert len(platform.events("config_refused")) == 3

    # The refused configurations were not half applied: beacon-track restarts as configured before.
    platform.kill_module("beacon-track")
    platform.wait_module(
        "beacon-track",
        lambda m: m["restarts"] == 1 and m["state"] == "active" and m["pid"] not in (0, pids["beacon-track"]),
        timeout=30,
        what="restarted after a refused reload",
    )
    pids["beacon-track"] = platform.module("beacon-track")["pid"]

    # Dropping a module from the configuration stops it.
    platform.write(["beacon-nav"])
    assert platform.cli("reload")["changes"] == ["removed beacon-track"]
    assert list(platform.modules()) == ["beacon-nav"]
    assert worker_pids(platform.domain_id) == [pids["beacon-nav"]]
    assert platform.status()["health"]["status"] == "ok"


def test_trusted_module_hosted_in_process(platform: Platform) -> None:
    """``isolation = "in-process"``: the module runs inside hardpointd and still gets its inputs."""
    path = platform.write(["beacon-nav", "beacon-track"])
    text = path.read_text().replace('name = "beacon-track"\n', 'name = "beacon-track"\nisolation = "in-process"\n')
    platform.write_text(text)
    platform.start()
    mods = platform.wait_active(["beacon-nav", "beacon-track"])
    hosted, worker = mods["beacon-track"], mods["beacon-nav"]
    assert hosted["pid"] != worker["pid"]
    assert hosted["pid"] not in worker_pids(platform.domain_id)  # no process of its own: the daemon's pid
    platform.wait(
        lambda: platform.module("beacon-track")["counters"].get("sub:hardpoint.nav.v1.NavState.delivered", 0),
        lambda n: n > 5,
        timeout=30,
        what="the in-process module to receive NavState",
    )
