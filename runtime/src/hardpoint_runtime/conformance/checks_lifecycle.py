"""Lifecycle checks: every transition from every state, the error path, restart, publishing only while active.

The module runs in the real runtime worker, driven over the worker's protocol exactly as the
daemon drives it (``hardpoint_runtime._worker``), on a private DDS domain, fed its required
interfaces by the reference modules. Each check starts a fresh worker. The state machine is
``hardpoint._lifecycle`` (SDK-LC-002/003); what the suite asks beyond the SDK's rules is
``CF-LC-*`` in ``spec/conformance.md``. Every transition is held to the bound of CF-LC-006 (the
heartbeat deadline): a worker that does not answer in time is killed, never waited for.
"""

from __future__ import annotations

import itertools
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
#: Transitions that take each kind once from a fresh worker (CF-LC-006).
TIMED_WALK: Final = ("configure", "activate", "deactivate", "cleanup", "shutdown")
#: Allowance on the transition bound and the heartbeat deadline for scheduling (ms), as on every deadline of the
#: bus checks (``checks_contract.JITTER_MS``).
JITTER_MS: Final = 100
#: CF-LC-006 holds ACTIVE for the heartbeat deadline (and its allowance) plus this (s): a heartbeat period more.
HOLD_EXTRA_S: Final = 1.0


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
        # Every transition any of these checks asks is held to the bound of CF-LC-006: none waits for a hook
        # that blocks (the worker is killed), so a module stuck in a hook fails each check in seconds.
        host = HostedModule(str(module), feeders=feeders, transition_timeout_s=bound_s(), **hosted_options)
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
        if host.alive():  # still in the hook: not waited for (CF-LC-006)
            host.kill()
            return (
                f"CF-LC-006: module {name!r}: {transition} from {state} not answered within "
                f"{host.transition_timeout_s:g} s (the heartbeat deadline plus {JITTER_MS} ms; the worker was "
                f"killed)\n{host.log_tail(15)}"
            ), state
        return f"module {name!r}: {transition} from {state}: no answer ({reply['error']})\n{host.log_tail(15)}", state
    if reply["ok"] and reply["state"] == state:
        return (
            f"CF-LC-001: module {name!r}: {transition} from {state} was refused (the hook returned False): "
            f"the state stayed {state}, SDK-LC-002 specifies {want}"
        ), state
    why = f": {reply['error']}" if reply["error"] else ""
    got = reply["state"]
    return f"SDK-LC-002: module {name!r}: {transition} from {state} ended in {got}, not {want}{why}", got


def _activate(host: HostedModule, why: str) -> None:
    """Configure and activate a fresh worker (each transition held to the bound of CF-LC-006), or fail the check."""
    state = "unconfigured"
    for transition in ("configure", "activate"):
        problem, state = _step(host, transition, state)
        if problem:
            pytest.fail(problem if problem.startswith("CF-LC-006") else f"{why}: {problem}", pytrace=False)
    host.activated_at = time.monotonic()


@pytest.mark.hardpoint("SDK-LC-002", "CF-LC-001", "CF-LC-006")
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


@pytest.mark.hardpoint("SDK-LC-002", "CF-LC-002", "CF-LC-006")
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


@pytest.mark.hardpoint("CF-LC-004", "IF-ENV-EPOCH", "CF-LC-006")
def test_restart_reaches_active_again(lifecycle_host: HostedModule, request: pytest.FixtureRequest) -> None:
    """Shut down, the worker exits in order; a fresh worker reaches ACTIVE and publishes under a new epoch."""
    host, name = lifecycle_host, lifecycle_host.manifest.name
    health = host.tap_of([HEALTH])
    try:
        _fresh(host)
        _activate(host, "CF-LC-004")
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
        _activate(host, "CF-LC-004: restart")
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
    assert host.tap is not None
    tap = host.tap

    def seen() -> Any:
        # The module's samples by their writer, whatever source they claim (CF-HOST-004).
        got = host.module_frames(f for f in tap.frames(since=since) if f.topic in topics)
        return got[0] if got else None

    return wait_until(seen, timeout_s=FIRST_SAMPLE_S)


def _outside(host: HostedModule, start: float, end: float) -> list[str]:
    """The module's samples on its provided topics that arrived in [start, end]."""
    assert host.tap is not None
    return [
        f"{f.interface} seq {f.seq} at +{f.at - start:.2f} s"
        for f in host.module_frames(host.tap.frames(since=start))
        if f.at <= end
    ]


@pytest.mark.hardpoint("SDK-LC-004", "CF-LC-005", "CF-LC-006")
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


def bound_s() -> float:
    """The bound of CF-LC-006 on answering a transition (s): the heartbeat deadline plus :data:`JITTER_MS`."""
    return (heartbeat_deadline_ms() + JITTER_MS) / 1000


def heartbeat_deadline_ms() -> int:
    """The heartbeat contract's ``deadline_ms`` (``ModuleHealth``: 3000 ms, the daemon's default heartbeat deadline)."""
    import hardpoint

    return hardpoint.all_interfaces()[HEALTH].deadline_ms


def _beat_times(tap: Tap, module: str) -> list[float]:
    """Write times (s, the writer's clock) of the module's heartbeats recorded so far, in order."""
    from hardpoint.core.v1 import health_pb2

    out = []
    for f in tap.frames():
        msg = health_pb2.ModuleHealth()
        try:
            msg.ParseFromString(f.payload)
        except Exception:  # a bad heartbeat is the header check's finding, not this one's
            continue
        if msg.module == module and f.written_ns:
            out.append(f.written_ns / 1e9)
    return sorted(out)


def judge_heartbeat_gaps(beats: list[float], since: float, until: float, deadline_ms: int) -> list[str]:
    """Silences of the heartbeat longer than ``deadline_ms`` + :data:`JITTER_MS` between ``since`` and ``until``.

    Times are on the wall clock (s); the silence before the first beat after ``since`` and after the last one
    before ``until`` count too.
    """
    allowed = (deadline_ms + JITTER_MS) / 1000
    inside = [t for t in beats if since <= t <= until]
    edges = [since, *inside, until]
    problems = []
    for a, b in itertools.pairwise(edges):
        if b - a > allowed:
            problems.append(
                f"no heartbeat for {(b - a) * 1000:.0f} ms from +{a - since:.1f} s (deadline {deadline_ms} ms, "
                f"{deadline_ms + JITTER_MS} ms allowed)"
            )
    return problems


@pytest.mark.hardpoint("CF-LC-006", "SDK-LC-006", "IF-CORE-HEALTH-DEADLINE")
def test_transitions_answered_in_time_with_heartbeats(
    lifecycle_host: HostedModule, request: pytest.FixtureRequest
) -> None:
    """Each transition is answered within the heartbeat deadline, and the heartbeat never stops longer meanwhile.

    A fresh worker takes configure, activate, deactivate, cleanup and shutdown, and stays ACTIVE for longer than
    the deadline. Each transition is asked with a time-out of the bound (plus the scheduling allowance): a hook
    that blocks is not waited for, its worker is killed.
    """
    host, name = lifecycle_host, lifecycle_host.manifest.name
    deadline_ms = heartbeat_deadline_ms()
    bound = bound_s()
    health = host.tap_of([HEALTH])
    try:
        _fresh(host)
        if not wait_until(lambda: _beat_times(health, name), timeout_s=MATCH_S):
            pytest.fail(f"CF-LC-006: module {name!r}: no heartbeat within {MATCH_S:g} s of start", pytrace=False)
        since = time.time()
        state, taken, problems, longest = "unconfigured", [], [], 0.0
        for transition in TIMED_WALK:
            asked = time.monotonic()
            reply = host.transition(transition, timeout_s=bound)
            took = time.monotonic() - asked
            longest = max(longest, took)
            if not reply["state"]:
                problems.append(
                    f"{transition} from {state} not answered within {bound:g} s (the heartbeat deadline, "
                    f"{deadline_ms} ms, plus {JITTER_MS} ms): the worker was killed ({reply['error']})"
                )
                host.kill()
                break
            taken.append(f"{transition} {took * 1000:.0f} ms")
            state = reply["state"]
            if state == "active":  # longer than the deadline: the heartbeat must go on by itself, not on changes
                time.sleep(bound + HOLD_EXTRA_S)
        until = time.time()
        # A hook that blocks the dispatch thread stops the heartbeat too (it beats on that thread).
        beats = _beat_times(health, name)
        silences = judge_heartbeat_gaps(beats, since, until, deadline_ms)
        edges = [since, *(t for t in beats if since <= t <= until), until]
        quiet = max((b - a for a, b in itertools.pairwise(edges)), default=0.0)
        judged(
            request,
            len(taken),
            f"transitions answered (longest {longest * 1000:.0f} ms; longest heartbeat silence {quiet * 1000:.0f} ms)",
        )
        request.node.user_properties.append(("transitions", ", ".join(taken)))
        if problems or silences:
            pytest.fail(
                f"CF-LC-006: module {name!r}: every transition must be answered within {deadline_ms} ms with its "
                f"heartbeat going on: "
                + "; ".join([*problems, *silences])
                + f" (answered: {', '.join(taken) or 'none'})",
                pytrace=False,
            )
    finally:
        health.close()
