"""One platform on two hosts: a daemon in each of two network namespaces joined by a veth pair.

Node a runs the publishers (beacon-nav: NavState at 10 Hz, state QoS, deadline
500 ms; beacon-track, beacon-fused, alerter: Alert events, reliable keep-all);
node b runs ``sink``, which requires NavState and Alert. Both daemons read the
same configuration text (a copy per node, each with its own state directory)
with ``[dds]`` bound to the veth and the two veth addresses as peers.

RT-NET-001..006 (spec/runtime.md section 4).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import NetnsPair
from typer.testing import CliRunner

from hardpoint_runtime.cli import app

pytestmark = pytest.mark.integration

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"
#: NavState's contract deadline (proto/hardpoint/nav/v1/nav.proto).
NAV_DEADLINE_S = 0.5
#: Slack over the deadline for the consumer's watch (every 0.1 s) and its heartbeat to reach node b's daemon.
DETECT_SLACK_S = 1.5
#: Delivery must resume this soon after the link comes back (issue 3, acceptance 6).
RESUME_WITHIN_S = 3.0
#: Length of the outage: well below the participant lease (10 s), so reliable samples are kept and resent.
OUTAGE_S = 1.5
#: ``[supervision] heartbeat_deadline_s`` (default): a remote module silent this long is remote_lost.
HEARTBEAT_S = 3.0
MODULES_A = ("beacon-nav", "beacon-track", "beacon-fused", "alerter")
DAEMON = Path(sys.executable).with_name("hardpointd")


#: Module configuration on node a: the alerter republishes one alert_id (one key), so that the
#: consumer's per-key sequence check covers every Alert sample (a new key per sample would hide gaps).
MODULE_CONFIG = {"alerter": '{ alert_id = "link-test" }'}


def platform_toml(pair: NetnsPair, domain_id: int) -> str:
    modules = "".join(
        f'[[modules]]\nname = "{m}"\nnode = "a"\n'
        + (f"config = {MODULE_CONFIG[m]}\n" if m in MODULE_CONFIG else "")
        + "\n"
        for m in MODULES_A
    )
    peers = ", ".join(f'"{p}"' for p in pair.peers)
    return f"""node = "a"
nodes = ["a", "b"]

[platform]
name = "two-hosts"
domain_id = {domain_id}

[dds]
interface = "{pair.veth}"
peers = [{peers}]

{modules}[[modules]]
name = "sink"
node = "b"
"""


class Cli:
    """The ``hardpoint`` CLI (in this process, over the node's real management socket)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.runner = CliRunner()

    def json(self, *args: str) -> Any:
        result = self.runner.invoke(app, ["--socket", str(self.socket), *args, "--json"])
        if result.exit_code != 0:
            raise RuntimeError(f"hardpoint {' '.join(args)}: exit {result.exit_code}: {result.output}")
        return json.loads(result.stdout)

    def try_json(self, *args: str) -> Any:
        try:
            return self.json(*args)
        except (RuntimeError, ValueError):
            return None


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, period_s: float = 0.05) -> tuple[Any, float]:
    """Poll ``check`` until it returns something truthy; returns it and the seconds it took."""
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(period_s)


def counter(module: dict[str, Any], interface: str, name: str) -> int:
    return int(module["counters"].get(f"sub:{interface}.{name}", 0))


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def test_consumer_on_b_sees_provider_on_a_lost_and_back(
    netns_pair: NetnsPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RT-NET-001..006: cross-node delivery, provider lost on a cut, resume, no loss on reliable events."""
    pair = netns_pair
    domain_id = 100 + int(pair.suffix, 16) % 100
    text = platform_toml(pair, domain_id)
    clis: dict[str, Cli] = {}
    logs: dict[str, Path] = {}
    for node in ("a", "b"):
        folder = tmp_path / node
        folder.mkdir()
        (folder / "platform.toml").write_text(text)
        logs[node] = folder / "hardpointd.log"
        pair.spawn(node, [str(DAEMON), str(folder / "platform.toml"), "--node", node], logs[node])
        clis[node] = Cli(folder / "state" / "hardpointd.sock")
    a, b = clis["a"], clis["b"]

    def diagnostics() -> str:
        parts = [f"--- {n} daemon log ---\n{tail(p)}" for n, p in logs.items()]
        parts.append(f"--- sink log ---\n{tail(tmp_path / 'b' / 'state' / 'logs' / 'sink.log')}")
        return "\n".join(parts)

    try:
        # -- both nodes up, and NavState and Alert from node a delivered on node b ----------------
        def running() -> bool:
            sa, sb = a.try_json("status"), b.try_json("status")
            if sa is None or sb is None:
                return False
            local_a = {m["name"]: m for m in sa["modules"] if m["local"]}
            sink = next(m for m in sb["modules"] if m["name"] == "sink")
            return (
                all(local_a.get(n, {}).get("state") == "active" for n in MODULES_A)
                and sink["state"] == "active"
                and counter(sink, NAV, "delivered") > 0
                and counter(sink, ALERT, "delivered") > 0
                and sb["health"]["status"] == "ok"
            )

        _, started_s = wait_for("both daemons up and NavState/Alert delivered on node b", running, 60)
        sink = b.json("module", "show", "sink")
        assert sink["node"] == "b"
        assert sink["local"] is True
        remote_nav = b.json("module", "show", "beacon-nav")
        assert remote_nav["local"] is False
        assert remote_nav["state"] == "active"  # learnt from its heartbeats over the link (RT-NET-003)

        # DDS in the namespaces uses only the addresses the test assigned (RT-NET-002).
        for node in ("a", "b"):
            addrs = pair.addresses(node)
            assert pair.node(node).address in addrs
            assert [line.split()[3] for line in addrs.splitlines() if " inet " in line] == [
                "127.0.0.1/8",
                f"{pair.node(node).address}/24",
            ]

        # -- cut the link on node a's side: the consumer on node b reports its provider lost ---------
        before_cut = b.json("module", "show", "sink")
        pair.set_link("a", up=False)
        cut_at = time.monotonic()

        def provider_lost() -> dict[str, Any] | None:
            m = b.try_json("module", "show", "sink")
            if m is not None and m["health"] == "degraded" and "provider lost" in m["reason"]:
                return m
            return None

        lost, detect_s = wait_for("sink reporting its provider lost", provider_lost, NAV_DEADLINE_S + 5)
        assert NAV in lost["reason"]
        assert detect_s <= NAV_DEADLINE_S + DETECT_SLACK_S, f"provider lost seen after {detect_s:.2f} s"
        health = b.json("status")["health"]
        assert health["status"] == "degraded"
        assert any(r.startswith("sink:") and "provider lost" in r for r in health["reasons"]), health
        alerts_at_cut = counter(lost, ALERT, "delivered")
        published_at_cut = a.json("module", "show", "alerter")["counters"][f"pub:{ALERT}.published"]

        # -- restore within the lease: delivery resumes, health ok, nothing lost on the event topic -----
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
        nav_at_restore = counter(b.json("module", "show", "sink"), NAV, "delivered")
        pair.set_link("a", up=True)
        restored_at = time.monotonic()
        outage_s = restored_at - cut_at

        def resumed() -> dict[str, Any] | None:
            m = b.try_json("module", "show", "sink")
            if m is not None and counter(m, NAV, "delivered") > nav_at_restore and m["health"] == "ok":
                return m
            return None

        after, resume_s = wait_for("NavState delivery resuming on node b", resumed, RESUME_WITHIN_S + 5)
        assert resume_s <= RESUME_WITHIN_S, f"delivery resumed {resume_s:.2f} s after the link came back"
        _, platform_ok_s = wait_for(
            "node b's platform health back to ok", lambda: b.json("status")["health"]["status"] == "ok", 10
        )

        # The Alert writer kept what node b had not acknowledged and resent it: no gap, and what
        # was published during the outage arrives (alerter publishes at 10 Hz).
        def alerts_caught_up() -> dict[str, Any] | None:
            m = b.json("module", "show", "sink")
            return m if counter(m, ALERT, "delivered") >= alerts_at_cut + 10 * (outage_s + 0.5) else None

        final, _ = wait_for("the Alerts of the outage delivered", alerts_caught_up, 5)
        published_after = a.json("module", "show", "alerter")["counters"][f"pub:{ALERT}.published"]
        assert published_after > published_at_cut  # node a kept publishing (counters travel in 1 Hz heartbeats)
        assert counter(final, ALERT, "lost") == 0, final["counters"]
        assert counter(final, ALERT, "duplicates") == 0, final["counters"]
        assert counter(before_cut, ALERT, "lost") == 0

        # Node a's modules lived through it: local traffic never used the cut link, nothing restarted.
        for m in a.json("modules"):
            if m["local"]:
                assert (m["state"], m["restarts"]) == ("active", 0), m

        # -- cut for longer than the heartbeat deadline: each node marks the other's modules remote_lost ----
        pair.set_link("b", up=False)
        cut_again_at = time.monotonic()

        def remote_lost(cli: Cli, names: tuple[str, ...]) -> Callable[[], dict[str, Any] | None]:
            def check() -> dict[str, Any] | None:
                # `status` asks for health and modules in two calls: wait until both say so.
                status = cli.json("status")
                seen = {m["name"]: m for m in status["modules"]}
                lost = all((seen[n]["state"], seen[n]["health"]) == ("remote_lost", "failed") for n in names)
                named = {r.split(":")[0] for r in status["health"]["reasons"] if "remote_lost" in r}
                return status if lost and named >= set(names) else None

            return check

        status_b, _ = wait_for("node a's modules remote_lost on node b", remote_lost(b, MODULES_A), HEARTBEAT_S + 5)
        remote_lost_s = time.monotonic() - cut_again_at
        assert status_b["health"]["status"] == "degraded"
        status_a, _ = wait_for("sink remote_lost on node a", remote_lost(a, ("sink",)), HEARTBEAT_S + 5)
        assert all(m["state"] == "active" for m in status_a["modules"] if m["local"])

        # ... and shows them again from their heartbeats once the link is back (still within the lease).
        pair.set_link("b", up=True)
        _, back_s = wait_for(
            "node a's modules active again on node b",
            lambda: (
                all(m["state"] == "active" for m in b.json("modules")) and b.json("status")["health"]["status"] == "ok"
            ),
            HEARTBEAT_S + 5,
        )

        with capsys.disabled():
            print(
                f"\n[multihost] platform up and delivering across the link in {started_s:.2f} s; "
                f"link down {outage_s:.2f} s; provider lost reported {detect_s:.2f} s after the cut "
                f"(deadline {NAV_DEADLINE_S} s); delivery resumed {resume_s:.2f} s after restore, "
                f"platform ok {resume_s + platform_ok_s:.2f} s after; "
                f"Alert delivered {counter(before_cut, ALERT, 'delivered')} -> {counter(final, ALERT, 'delivered')}, "
                f"lost {counter(final, ALERT, 'lost')} (alerter published {published_at_cut} -> {published_after}); "
                f"NavState (keep-last state) skipped {counter(final, NAV, 'lost')} superseded samples; "
                f"second cut: node a's modules remote_lost on node b after {remote_lost_s:.2f} s, "
                f"active again {back_s:.2f} s after restore"
            )
        assert after["state"] == "active"
    except BaseException:
        with capsys.disabled():
            print("\n" + diagnostics())
        raise
