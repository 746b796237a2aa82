"""The daemon trusts no heartbeat it cannot trace to its own worker (issue 11, acceptance 3; RT-BUS-ID-001..003).

A forger in the test process joins the platform's domain (its own DDS
participant on loopback) and publishes ``ModuleHealth`` for a module, with the
module's name, version and an ``ok``/active status, ten times a second. The
real worker is then frozen (SIGSTOP: its heartbeat stops, its process lives).
The daemon must still see the heartbeat missing within its deadline, restart
the module, and name the forger's writer in a ``bus_intrusion`` event and in
``hardpoint module show``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hp_runtime_it import FAST_SUPERVISION, Platform, open_platform

from hardpoint import Bus, CycloneTransport
from hardpoint.core.v1 import health_pb2

pytestmark = pytest.mark.integration

DEADLINE_S = 3.0
MODULE = "beacon-nav"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with open_platform(tmp_path_factory.mktemp("hp"), name="identity") as p:
        p.write(["beacon-nav", "beacon-track"], supervision={**FAST_SUPERVISION, "heartbeat_deadline_s": DEADLINE_S})
        p.start()
        p.wait_active(["beacon-nav", "beacon-track"])
        yield p


class Forger:
    """Forged heartbeats for one module from a participant of its own, until stopped."""

    def __init__(self, domain_id: int, module: str, version: str) -> None:
        self.transport = CycloneTransport(domain_id=domain_id)
        self.bus = Bus(self.transport, module=module)  # claims the module's own name as its source
        self.beat = health_pb2.ModuleHealth(
            module=module,
            version=version,
            lifecycle_state=health_pb2.LIFECYCLE_STATE_ACTIVE,
            status=health_pb2.HEALTH_STATUS_OK,
            counters={"sub:hardpoint.nav.v1.NavState.delivered": 2**62},
        )
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Forger:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.bus.publish(self.beat)
            self.sent += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.transport.close()


def _events(p: Platform, kind: str) -> list[dict[str, Any]]:
    return [e for e in p.cli("events") if e["kind"] == kind]


def test_forged_heartbeats_do_not_keep_a_frozen_module_alive(platform: Platform) -> None:
    p = platform
    before = p.module(MODULE)
    pid = int(before["pid"])
    with Forger(p.domain_id, MODULE, before["version"]) as forger:
        time.sleep(2.0)  # the forger is discovered and beating before the real worker stops
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.time()
        try:
            restart = p.wait(
                lambda: next((e for e in _events(p, "module_restarting") if e["module"] == MODULE), None),
                timeout=DEADLINE_S + 15,
                what=f"{MODULE} restarted although forged heartbeats say it is fine",
            )
        finally:
            with contextlib.suppress(ProcessLookupError):  # the daemon has killed it by then, normally
                os.kill(pid, signal.SIGCONT)
        assert "no heartbeat" in restart["detail"]["reason"], restart
        detected_after_s = restart["time_ns"] / 1e9 - frozen_at
        assert detected_after_s <= DEADLINE_S + 2.0, f"missing heartbeat seen {detected_after_s:.1f} s after the freeze"
        assert forger.sent > 20
        forger_participant = forger.transport.participant
    p.wait_active([MODULE])
    intrusions = [
        e for e in _events(p, "bus_intrusion")
        if e["detail"].get("kind") == "forged_heartbeat" and e["detail"].get("claimed_source") == MODULE
    ]  # fmt: skip
    assert intrusions, "no bus_intrusion event for the forged heartbeats"
    detail = intrusions[0]["detail"]
    assert detail["participant"] == forger_participant
    assert len(detail["writer"]) == 32
    assert detail["interface"] == "hardpoint.core.v1.ModuleHealth"
    shown = p.module(MODULE)
    assert int(shown["pid"]) != pid
    # Counters come only from the real worker: the forged 2**62 never showed.
    assert all(v < 2**53 for v in shown["counters"].values())
    named = [i for i in shown["intrusions"] if i["kind"] == "forged_heartbeat"]
    assert named, shown["intrusions"]
    assert named[0]["participant"] == forger_participant
    assert named[0]["count"] >= 20
