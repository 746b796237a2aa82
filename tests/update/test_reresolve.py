"""Unit tests of the pure re-resolution after a committed update (UPD-RESOLVE-001..003): no daemon, no sockets.

The platform is resolved by the real pure resolver; :func:`reresolve` decides which blocked modules
start, which stay blocked (with which reason), and which running ones are reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from hardpoint import Manifest
from hardpoint_runtime._resolve import Candidate, InterfaceInfo, resolve
from hardpoint_runtime._updater import reresolve

NAV = "hardpoint.nav.v1.NavState"
FUSED = "hardpoint.track.v1.FusedTrack"
SENSOR = "hardpoint.track.v1.SensorTrack"
ALERT = "hardpoint.alert.v1.Alert"
IFACES = {
    NAV: InterfaceInfo(NAV, single_writer=True),
    FUSED: InterfaceInfo(FUSED, single_writer=True),
    SENSOR: InterfaceInfo(SENSOR),
    ALERT: InterfaceInfo(ALERT),
}


def _mod(name: str, provides: Sequence[str] = (), requires: Sequence[str] = (), version: str = "1.0") -> Candidate:
    manifest = Manifest(name=name, version=version, supplier="acme", provides=tuple(provides), requires=tuple(requires))
    return Candidate(name=name, node="n1", manifest=manifest)


def _missing(name: str) -> Candidate:
    return Candidate(name=name, node="n1", manifest=None, reason_missing="not installed yet", awaiting_install=True)


def test_a_new_provider_starts_its_waiting_consumers_in_dependency_order() -> None:
    """UPD-RESOLVE-001: 'sink' waits for FusedTrack; 'relay' (SensorTrack) waits for 'sink'."""
    platform = [
        _mod("beacon", provides=(NAV, FUSED)),  # just installed: now provides FusedTrack
        _mod("relay", requires=(SENSOR,)),
        _mod("sink", provides=(SENSOR,), requires=(FUSED,)),
    ]
    plan = reresolve(resolve(platform, IFACES), waiting={"relay", "sink"}, running={"beacon"})
    assert plan.start == ("sink", "relay")  # the provider first, though 'relay' sorts first by name
    assert (plan.blocked, plan.unmet_running, plan.errors) == ({}, {}, ())


def test_a_module_still_unmet_stays_blocked_with_its_reason_now() -> None:
    """UPD-RESOLVE-001: 'waiter' needs Alert, which nobody provides, before and after."""
    before = [_missing("beacon"), _mod("sink", requires=(FUSED,)), _mod("waiter", requires=(ALERT,))]
    plan = reresolve(resolve(before, IFACES), waiting={"sink", "waiter"}, running=set())
    assert plan.start == ()
    assert set(plan.blocked) == {"sink", "waiter"}
    assert "not installed, so not known to provide it: 'beacon'" in plan.blocked["waiter"][0].reason

    after = [_mod("beacon", provides=(NAV, FUSED)), *before[1:]]
    plan = reresolve(resolve(after, IFACES), waiting={"sink", "waiter"}, running={"beacon"})
    assert plan.start == ("sink",)
    (unmet,) = plan.blocked["waiter"]
    assert (unmet.interface, unmet.reason) == (ALERT, "no module provides it")  # beacon is known now


def test_only_waiting_modules_start_and_running_ones_are_never_in_the_plan_to_start() -> None:
    """UPD-RESOLVE-001, UPD-RESOLVE-003: nothing else is (re)started."""
    platform = [
        _mod("beacon", provides=(NAV, FUSED)),
        _mod("other", provides=(SENSOR,)),
        _mod("sink", requires=(FUSED,)),
        _mod("remote", requires=(FUSED,)),  # startable, but another node's (or failed): not this daemon's to start
    ]
    plan = reresolve(resolve(platform, IFACES), waiting={"sink"}, running={"beacon", "other"})
    assert plan.start == ("sink",)


def test_a_running_module_that_lost_its_input_keeps_running_and_is_reported() -> None:
    """UPD-RESOLVE-003: an operator rollback to a beacon without FusedTrack; 'sink' runs on."""
    platform = [_mod("beacon", provides=(NAV,)), _mod("sink", requires=(FUSED,))]
    plan = reresolve(resolve(platform, IFACES), waiting=set(), running={"beacon", "sink"})
    assert plan.start == ()
    (unmet,) = plan.unmet_running["sink"]
    assert (unmet.interface, unmet.reason) == (FUSED, "no module provides it")


def test_an_invalid_platform_starts_nothing_and_names_the_error() -> None:
    """UPD-RESOLVE-003: two writers of single-writer FusedTrack; 'sink' could otherwise start."""
    platform = [
        _mod("beacon", provides=(NAV, FUSED)),
        _mod("fuser", provides=(FUSED,)),
        _mod("sink", requires=(FUSED,)),
    ]
    resolution = resolve(platform, IFACES)
    assert "sink" in resolution.start_order  # the resolver alone would start it
    plan = reresolve(resolution, waiting={"sink"}, running={"beacon", "fuser"})
    assert plan.start == ()
    (error,) = plan.errors
    assert FUSED in error
    assert "'beacon' and 'fuser'" in error
