"""Lifecycle checks: every transition from every state, the error path, restart, publishing only while active.

The module runs in the real runtime worker, driven over the worker's protocol exactly as the
daemon drives it (``hardpoint_runtime._worker``), on a private DDS domain, fed its required
interfaces by the reference modules. Each check starts a fresh worker. The state machine is
``hardpoint._lifecycle`` (SDK-LC-002/003); what the suite asks beyond the SDK's rules is
``CF-LC-*`` in ``spec/conformance.md``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance._fixtures import hosted_options, manifest_under_test  # noqa: F401
from hardpoint_runtime.conformance._harness import HarnessError, HostedModule, Tap, wait_until

#: Transitions, and the state each valid one leads to from each state (SDK-LC-002).
TRANSITIONS: Final = ("configure", "activate", "deactivate", "cleanup", "shutdown")
VALID: Final[Mapping[tuple[str, str], str]] = {
    ("unconfigured", "configure"): "inactive",
    ("inactive", "activate"): "active",
    ("active", "deactivate"): "inactive",
    ("inactive", "cleanup"): "unconfigured",
    ("unconfigured", "shutdown"): "finalized",
    ("inactive", "shutdown"): "finalized",
    ("active", "shutdown"): "finalized",
}
#: Paths that together take every valid transition once from a fresh worker (three workers).
WALKS: Final = (
    ("configure", "cleanup", "configure", "activate", "deactivate", "activate", "shutdown"),
    ("shutdown",),
    ("configure", "shutdown"),
)
#: A configuration key no module knows: a module that validates its configuration raises in on_configure.
UNKNOWN_OPTION: Final = "conformance_unknown_option"
#: Quiet time watched for samples outside ACTIVE, and the grace after a deactivate for samples in flight
#: (SDK-LC-004 allows publishing during on_deactivate).
QUIET_S, GRACE_S = 2.0, 1.0
#: Longest wait for the first sample of a periodic interface after activation (sensors wait for inputs).
FIRST_SAMPLE_S: Final = 15.0
HEALTH: Final = "hardpoint.core.v1.ModuleHealth"
#: Longest wait for the first heartbeat of a fresh worker (beats come every second).
MATCH_S: Final = 10.0


@pytest.fixture(scope="module")
def lifecycle_host(request: pytest.FixtureRequest, hosted_options: Mapping[str, Any]) -> Iterator[HostedModule]:  # noqa: F811
    """A HostedModule of the module under test; each check restarts the worker.

    Feeders are hosted only for a module with a periodic provided interface: only then do the
    checks wait for samples (a sensor publishes only with navigation); they cost seconds each.
    """
    module = request.config.getoption("hardpoint_module", None)
    if module is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    manifest = manifest_under_test(request.config)
    feeders: list[str] | None = None if manifest is None or _periodic_names(manifest.provides) else []
    try:
        host = HostedModule(str(module), feeders=feeders, **hosted_options)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield host
    host.close()


def _fresh(host: HostedModule, config: Mapping[str, Any] | None = None) -> None:
    try:
        if host.process is None:
            host.start(config=config)
        else:
            host.restart(config=config)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


def _step(host: HostedModule, transition: str, state: str) -> tuple[str, str]:
    """Take ``transition`` from ``state``: (problem or "", new state)."""
    reply = host.transition(transition)
    want = VALID[(state, transition)]
    # The worker's "error" is the module's last hook error, kept after it (informative here).
    if reply["ok"] and reply["state"] == want:
        return "", want
    name = host.manifest.name
    if not reply["state"]:
        return f"module {name!r}: {transition} from {state}: no answer ({reply['error']})\n{host.log_tail(15)}", state
    if reply["ok"] and reply["state"] == state:
        return (
            f"CF-LC-001: module {name!r}: {transition} from {state} was refused (the hook returned False): "
            f"the state stayed {state}, SDK-LC-002 specifies {want}"
        ), state
    why = f": {reply['error']}" if reply["error"] else ""
    got = reply["state"]
    return f"SDK-LC-002: module {name!r}: {transition} from {state} ended in {got}, not {want}{why}", got


@pytest.mark.hardpoint("SDK-LC-002", "CF-LC-001")
def test_every_valid_transition_reaches_its_state(lifecycle_host: HostedModule, request: pytest.FixtureRequest) -> None:
    """configure, activate, deactivate, cleanup and shutdown (from each of the three states) reach their state."""
    taken: list[str] = []
    for walk in WALKS:
        _fresh(lifecycle_host)
        state = "unconfigured"
        for transition in walk:
            problem, state = _step(lifecycle_host, transition, state)
            if problem:
                pytest.fail(f"{problem} (after {' -> '.join([*taken, transition])})", pytrace=False)
            taken.append(transition)
    judged(request, len(taken), "transitions")


@pytest.mark.hardpoint("SDK-LC-002", "CF-LC-002")
def test_every_invalid_transition_is_refused_with_the_state_unchanged(
    lifecycle_host: HostedModule, request: pytest.FixtureRequest
) -> None:
    """In each state, every transition the state does not allow is refused, naming state and transition.

    One worker walks UNCONFIGURED -> INACTIVE -> ACTIVE -> FINALIZED, trying every refused transition
    in each state before taking the next valid one.
    """
    problems: list[str] = []
    tried = 0
    _fresh(lifecycle_host)
    state = "unconfigured"
    for state, onward in (
        ("unconfigured", "configure"),
        ("inactive", "activate"),
        ("active", "shutdown"),
        ("finalized", ""),
    ):
        for transition in TRANSITIONS:
            if (state, transition) in VALID:
                continue
            reply = lifecycle_host.transition(transition)
            tried += 1
            after = lifecycle_host.status()["state"]
            if reply["ok"] or reply["state"] != state or after != state:
                problems.append(f"{transition} in {state}: answered {reply}, state now {after or '<no answer>'}")
            elif f"cannot {transition} in state {state}" not in reply["error"]:
                problems.append(
                    f"{transition} in {state}: refused without naming state and transition: {reply['error']!r}"
                )
        if onward:
            problem, _ = _step(lifecycle_host, onward, state)
            if problem:
                pytest.fail(f"{problem} (walking through every state)", pytrace=False)
    judged(request, tried, "refused transitions")
    if problems:
        pytest.fail(f"SDK-LC-002: module {lifecycle_host.manifest.name!r}: " + "; ".join(problems), pytrace=False)


def _beats(tap: Tap, module: str, since: float) -> list[tuple[str, str, str]]:
    """(lifecycle state, status, reason) of the module's heartbeats that arrived after ``since``."""
    from hardpoint.core.v1 import health_pb2

    out = []
    for f in tap.frames(since=since):
        msg = health_pb2.ModuleHealth()
        try:
            msg.ParseFromString(f.payload)
        except Exception:  # a bad heartbeat is the header check's finding, not this one's
            continue
        if msg.module != module:
            continue
        state = health_pb2.LifecycleState.Name(msg.lifecycle_state).removeprefix("LIFECYCLE_STATE_").lower()
        status = health_pb2.HealthStatus.Name(msg.status).removeprefix("HEALTH_STATUS_").lower()
        out.append((state, status, msg.reason))
    return out


@pytest.mark.hardpoint("SDK-LC-003", "SDK-LC-006", "CF-LC-003")
def test_a_failing_hook_goes_through_error_processing(
    lifecycle_host: HostedModule, request: pytest.FixtureRequest
) -> None:
    """A configuration the module refuses makes on_configure raise: ERROR_PROCESSING, then UNCONFIGURED or FINALIZED."""
    host, name = lifecycle_host, lifecycle_host.manifest.name
    health = host.tap_of([HEALTH])
    try:
        started = time.monotonic()
        _fresh(host, config={**host.config, UNKNOWN_OPTION: True})
        # A beat received means the worker's health writer has matched the tap: the next ones are not lost.
        if not wait_until(lambda: _beats(health, name, started), timeout_s=MATCH_S):
            pytest.fail(f"SDK-LC-006: module {name!r}: no heartbeat within {MATCH_S:g} s of start", pytrace=False)
        since = time.monotonic()
        reply = host.transition("configure")
        if reply["ok"] and reply["state"] == "inactive" and not reply["error"]:
            # CF-LC-003 (and CF-JDG-001): the one not-applicable decided by the module's behaviour, as specified.
            not_applicable(
                request, f"module {name!r} accepts an unknown configuration key: no hook can be made to fail"
            )
            return
        if not reply["ok"] or reply["state"] not in ("unconfigured", "finalized") or not reply["error"]:
            pytest.fail(
                f"SDK-LC-003: module {name!r}: configure with a refused configuration answered {reply}: expected the "
                "hook's error and state unconfigured (on_error recovered) or finalized",
                pytrace=False,
            )
        final = reply["state"]
        # The host beats at once on every state change (SDK-LC-006): ERROR_PROCESSING, then the final state.
        wait_until(lambda: final in [b[0] for b in _beats(health, name, since)], timeout_s=10.0)
        beats = _beats(health, name, since)
        states = [b[0] for b in beats]
        if "error_processing" not in states:
            pytest.fail(
                f"SDK-LC-006: module {name!r}: no heartbeat in ERROR_PROCESSING after the failed configure "
                f"(heartbeats seen: {states})",
                pytrace=False,
            )
        failed = [b for b in beats if b[0] == "error_processing"]
        if failed[0][1] != "failed" or not failed[0][2]:
            pytest.fail(
                f"SDK-LC-006: module {name!r}: ERROR_PROCESSING heartbeat {failed[0]} is not FAILED with a reason"
            )
        if final == "unconfigured":
            # Recovered: it is a working module again and must still shut down in order.
            problem, _ = _step(host, "shutdown", "unconfigured")
            if problem:
                pytest.fail(problem, pytrace=False)
        request.node.user_properties.append(("error_path", f"error_processing -> {final}: {reply['error'][:200]}"))
        judged(request, len(beats), "heartbeats of the error path")
    finally:
        health.close()


def _periodic_names(provides: Iterable[str]) -> list[Any]:
    import hardpoint

    specs = hardpoint.all_interfaces()
    return [specs[n] for n in provides if n in specs and specs[n].nominal_rate_hz > 0]


def _periodic(host: HostedModule) -> list[Any]:
    """Contracts of the module's provided interfaces that have a nominal rate."""
    return _periodic_names(host.manifest.provides)


@pytest.mark.hardpoint("CF-LC-004", "IF-ENV-EPOCH")
def test_restart_reaches_active_again(lifecycle_host: HostedModule, request: pytest.FixtureRequest) -> None:
    """Shut down, the worker exits in order; a fresh worker reaches ACTIVE and publishes under a new epoch."""
    host, name = lifecycle_host, lifecycle_host.manifest.name
    health = host.tap_of([HEALTH])
    try:
        _fresh(host)
        try:
            host.activate()
        except HarnessError as e:
            pytest.fail(f"CF-LC-004: {e}", pytrace=False)
        periodic = _periodic(host)
        assert host.tap is not None
        first = _first_sample(host, periodic, since=host.activated_at)
        problem, _ = _step(host, "shutdown", "active")
        if problem:
            pytest.fail(problem, pytrace=False)
        code = host.stop()
        if code != 0:
            pytest.fail(f"CF-LC-004: module {name!r}: worker exited with {code} after shutdown\n{host.log_tail(15)}")
        _fresh(host)
        since = time.monotonic()
        try:
            host.activate()
        except HarnessError as e:
            pytest.fail(f"CF-LC-004: restart: {e}", pytrace=False)
        if not wait_until(lambda: ("active", "ok") in {b[:2] for b in _beats(health, name, since)}, timeout_s=10.0):
            seen = _beats(health, name, since)
            pytest.fail(f"CF-LC-004: module {name!r}: no ACTIVE heartbeat after the restart (seen: {seen})")
        again = _first_sample(host, periodic, since=since)
        if periodic and (first is None or again is None):
            which = "before" if first is None else "after"
            pytest.fail(
                f"CF-LC-004: module {name!r}: no sample of {', '.join(s.name for s in periodic)} within "
                f"{FIRST_SAMPLE_S:g} s of activation {which} the restart",
                pytrace=False,
            )
        if first is not None and again is not None and first.epoch == again.epoch and first.source == again.source:
            pytest.fail(f"IF-ENV-EPOCH: module {name!r}: the restarted writer kept epoch {first.epoch}")
        restarted = sum(b[:2] == ("active", "ok") for b in _beats(health, name, since))
        judged(request, restarted, "ACTIVE heartbeats after the restart")
        if periodic:
            judged(request, 2, f"first samples of {', '.join(s.name for s in periodic)} (before and after)")
        else:
            request.node.user_properties.append(("note", "no periodic interface: restart judged by heartbeat"))
    finally:
        health.close()


def _first_sample(host: HostedModule, periodic: list[Any], since: float) -> Any:
    """The first sample of a periodic provided interface from the module after ``since``, or None."""
    if not periodic:
        return None
    topics = {s.topic for s in periodic}
    feeders = set(host.feeders)
    assert host.tap is not None
    tap = host.tap

    def seen() -> Any:
        got = [f for f in tap.frames(since=since) if f.topic in topics and f.source not in feeders]
        return got[0] if got else None

    return wait_until(seen, timeout_s=FIRST_SAMPLE_S)


def _outside(host: HostedModule, start: float, end: float) -> list[str]:
    """The module's samples on its provided topics that arrived in [start, end]."""
    assert host.tap is not None
    feeders = set(host.feeders)
    return [
        f"{f.interface} seq {f.seq} at +{f.at - start:.2f} s"
        for f in host.tap.frames(since=start)
        if f.at <= end and f.source not in feeders
    ]


@pytest.mark.hardpoint("SDK-LC-004", "CF-LC-005")
def test_publishes_only_while_active(lifecycle_host: HostedModule, request: pytest.FixtureRequest) -> None:
    """No sample while UNCONFIGURED or INACTIVE (before activation, after deactivation); they resume on activate."""
    host, name = lifecycle_host, lifecycle_host.manifest.name
    periodic = _periodic(host)
    _fresh(host)
    t0 = time.monotonic()
    time.sleep(QUIET_S / 2)
    problem, _ = _step(host, "configure", "unconfigured")
    if problem:
        pytest.fail(problem, pytrace=False)
    time.sleep(QUIET_S)
    t_activate = time.monotonic()
    early = _outside(host, t0, t_activate)
    if early:
        pytest.fail(
            f"SDK-LC-004: module {name!r} published before it was active: {', '.join(early[:5])}", pytrace=False
        )
    problem, _ = _step(host, "activate", "inactive")
    if problem:
        pytest.fail(problem, pytrace=False)
    if periodic and _first_sample(host, periodic, since=t_activate) is None:
        pytest.fail(
            f"CF-LC-005: module {name!r}: no sample of {', '.join(s.name for s in periodic)} within "
            f"{FIRST_SAMPLE_S:g} s of activation",
            pytrace=False,
        )
    problem, _ = _step(host, "deactivate", "active")
    if problem:
        # Still ACTIVE after being told to stop: it goes on publishing when the platform wants it quiet.
        pytest.fail(
            f"CF-LC-005: module {name!r} cannot be made INACTIVE, so it keeps publishing: {problem}", pytrace=False
        )
    quiet_from = time.monotonic() + GRACE_S
    time.sleep(GRACE_S + QUIET_S)
    late = _outside(host, quiet_from, time.monotonic())
    if late:
        pytest.fail(
            f"SDK-LC-004: module {name!r} published while INACTIVE (more than {GRACE_S:g} s after deactivate): "
            f"{', '.join(late[:5])}",
            pytrace=False,
        )
    t_again = time.monotonic()
    problem, _ = _step(host, "activate", "inactive")
    if problem:
        pytest.fail(problem, pytrace=False)
    if periodic and _first_sample(host, periodic, since=t_again) is None:
        pytest.fail(f"CF-LC-005: module {name!r}: publishing did not resume after re-activation", pytrace=False)
    # Three quiet windows watched (before configure, before activate, after deactivate), and for a periodic
    # interface the first sample of both activations.
    judged(request, 3, "quiet windows outside ACTIVE")
    if periodic:
        judged(request, 2, "activations that resumed publishing")
    else:
        request.node.user_properties.append(
            ("note", "no periodic interface: only the absence of samples outside ACTIVE is judged")
        )
