"""Contract behaviour on the real bus: rate, QoS, key, header, field constraints, nothing undeclared.

The module under test runs in the real runtime worker on a private Cyclone DDS domain, fed its
required interfaces by the reference modules (:mod:`._harness`). A raw tap in the probe records
every sample on the topics the module provides, from before it starts, with the SDK's receive
checks bypassed; DDS discovery (``DCPSPublication``) shows the writers of the module's own
participant with the QoS they offer. After one observation window each check judges what was
seen against the contract (``spec/interfaces.md``) and names the interface, what was measured
and the requirement ID. How the suite measures is specified in ``spec/conformance.md``
(``CF-BUS-*``).

Checks are parametrized by provided interface. A module that provides none gets one
``none`` case per check that passes with a "not applicable" note (certified mode forbids skips).
Each check records what it judged (writers, keys, samples, messages; CF-JDG-001): a provided
interface with no sample in the window is judged nothing, never "not applicable". For a module that
handles tasks the window includes a task request of an unknown type and a cancel of an unknown task
(:func:`_provoke_task_answers`), so that its task answers are observed like any other output.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance._fixtures import hosted_module, hosted_options, manifest_under_test  # noqa: F401
from hardpoint_runtime.conformance._harness import PROBE_NAME, HostedModule, Observed

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor
    from google.protobuf.message import Message

    from hardpoint import InterfaceSpec

#: Start-up excluded from rate measurement (a sensor waits for its first navigation sample).
SETTLE_S: Final = 1.5
#: Shortest observation window; longer when the slowest rate or the longest deadline needs it.
MIN_WINDOW_S: Final = 6.0
#: Allowance on ``deadline_ms`` for the module's own scheduling delay on a loaded machine.
DEADLINE_ALLOWANCE: Final = 0.5
#: Rates are judged on keys seen at least this often over at least this long.
MIN_SAMPLES, MIN_SPAN_S = 5, 2.0
#: Topics every module writes through the SDK whatever it provides (heartbeat, schema announcements).
SDK_TOPICS: Final = frozenset({"hp/core/v1/health", "hp/schemas"})
#: Problems listed in one failure message.
SHOWN: Final = 5
#: Requirement IDs of the checks that do not depend on an interface.
CF_OBSERVE, CF_RATE, CF_FIELDS, CF_UNDECLARED, CF_QOS = (
    "CF-BUS-001",
    "CF-BUS-002",
    "CF-BUS-003",
    "CF-BUS-004",
    "CF-BUS-005",
)


# --------------------------------------------------------------------------- parametrization


def _requirements(kind: str, spec: InterfaceSpec) -> tuple[str, ...]:
    """The requirement IDs one check verifies for one interface, most specific first."""
    from hardpoint._contracts import nested_field_rules

    if kind == "rate":
        ids = [f"{spec.id}-RATE"]
        ids += [f"{spec.id}-DEADLINE"] if spec.deadline_ms and spec.nominal_rate_hz else []
        ids += [f"{spec.id}-LIVE"] if spec.continuous else []
        return (*ids, CF_RATE)
    if kind == "qos":
        return f"{spec.id}-QOS", f"IF-QOS-{spec.qos.name}", CF_QOS
    if kind == "key":
        return f"{spec.id}-KEY", "IF-ENV-KEY"
    if kind == "header":
        return (
            f"{spec.id}-TOPIC",
            "IF-ENV-HEADER",
            "IF-ENV-SOURCE",
            "IF-ENV-SEQ",
            "IF-ENV-INTERFACE",
            "IF-ENV-SCHEMA",
            "IF-ENV-BATCH",
            "SDK-BUS-004",
        )
    if kind == "fields":
        return (
            *(
                f"{spec.id}-FIELD-{r.field.upper()}"
                for r in nested_field_rules(cast("Descriptor", spec.message_type.DESCRIPTOR))
            ),
            CF_FIELDS,
        )
    raise ValueError(kind)


_KINDS: Final = {
    "test_rate": "rate",
    "test_qos": "qos",
    "test_key": "key",
    "test_header": "header",
    "test_field_constraints": "fields",
}
_NONE_IDS: Final = {"rate": CF_RATE, "qos": CF_QOS, "key": "IF-ENV-KEY", "header": "IF-ENV-SOURCE", "fields": CF_FIELDS}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "interface" not in metafunc.fixturenames:
        return
    kind = _KINDS[metafunc.function.__name__]
    manifest = manifest_under_test(metafunc.config)
    params: list[Any] = []
    if manifest is not None:
        import hardpoint

        specs = hardpoint.all_interfaces()
        for name in manifest.provides:
            spec = specs.get(name)
            # An interface outside the interface set is the manifest checks' finding (RT-RES-011).
            marks = [pytest.mark.hardpoint(*_requirements(kind, spec))] if spec is not None else []
            params.append(pytest.param(name, id=name, marks=marks))
    if not params:
        params.append(pytest.param("", id="none", marks=[pytest.mark.hardpoint(_NONE_IDS[kind])]))
    metafunc.parametrize("interface", params)


# --------------------------------------------------------------------------- observation


@dataclass
class Observation:
    """What the probe saw of the module during one window after it became active."""

    host: HostedModule
    #: Module's frames (sources other than the feeders) by provided interface, from before activation on.
    frames: dict[str, list[Observed]]
    #: The rate window (monotonic seconds).
    start: float
    end: float
    specs: dict[str, InterfaceSpec] = field(default_factory=dict)


def window_s(specs: Iterable[InterfaceSpec]) -> float:
    """Observation window: at least :data:`MIN_WINDOW_S`, five periods of the slowest rate, three deadlines."""
    need = MIN_WINDOW_S
    for spec in specs:
        if spec.nominal_rate_hz > 0:
            need = max(need, 5.0 / spec.nominal_rate_hz)
        if spec.deadline_ms and spec.nominal_rate_hz:
            need = max(need, 3 * spec.deadline_ms / 1000)
    return need


@pytest.fixture(scope="session")
def observation(hosted_module: HostedModule) -> Observation:  # noqa: F811 - the fixture imported above
    """Wait out one window after activation, then take what the tap recorded from the module."""
    import hardpoint

    host = hosted_module
    all_specs = hardpoint.all_interfaces()
    specs = {name: all_specs[name] for name in host.manifest.provides if name in all_specs}
    start = host.activated_at + SETTLE_S
    end = start + window_s(specs.values())
    provoke = _task_provoker(host)
    while (left := end - time.monotonic()) > 0:
        if provoke is not None:
            provoke()
        time.sleep(min(left, PROVOKE_EVERY_S))
    feeders = {*host.feeders, PROBE_NAME}  # the probe's own samples (other checks may publish) are not the module's
    frames: dict[str, list[Observed]] = {}
    for name, spec in specs.items():
        assert host.tap is not None
        frames[name] = [f for f in host.tap.frames(topic=spec.topic) if f.source not in feeders]
    return Observation(host, frames, start, end, specs)


#: How often a task-handling module is sent a request and a cancel during the window (s).
PROVOKE_EVERY_S: Final = 1.0
TASK_REQUEST, TASK_CANCEL = "hardpoint.tasking.v1.TaskRequest", "hardpoint.tasking.v1.TaskCancel"
TASK_ACK, TASK_RESULT = "hardpoint.tasking.v1.TaskAck", "hardpoint.tasking.v1.TaskResult"


def _task_provoker(host: HostedModule) -> Callable[[], None] | None:
    """For a module that answers tasks: a function that sends it one request and one cancel it must answer.

    Task answers are aperiodic: a module publishes them only when asked. So that the contract checks judge
    them like any other output, the probe asks every :data:`PROVOKE_EVERY_S` during the window: a
    ``TaskRequest`` of an unknown task type (answered by a REJECTED ``TaskAck``, IF-TASKING-REQUEST-SEM)
    and a ``TaskCancel`` of a task the module does not know (answered by a CANCELLED ``TaskResult``,
    IF-TASKING-CANCEL-SEM). None for a module that does not read requests (or cancels) and provide answers.
    """
    import uuid

    from google.protobuf.any_pb2 import Any as AnyMessage

    from hardpoint.tasking.v1 import tasking_pb2

    manifest = host.manifest
    reads = {*manifest.requires, *manifest.uses}
    ask = TASK_REQUEST in reads and TASK_ACK in manifest.provides
    cancel = TASK_CANCEL in reads and TASK_RESULT in manifest.provides
    if not ask and not cancel:
        return None
    requests = host.probe.publisher(tasking_pb2.TaskRequest, batch=None) if ask else None
    cancels = host.probe.publisher(tasking_pb2.TaskCancel, batch=None) if cancel else None
    run = uuid.uuid4().hex[:8]
    sent = itertools.count(1)

    def provoke() -> None:
        n = next(sent)
        if requests is not None:
            unknown = AnyMessage(type_url="type.googleapis.com/hardpoint.conformance.v1.NoSuchTask", value=b"")
            request = tasking_pb2.TaskRequest(task_id=f"cf-contract-{run}-{n}", requester="conformance-probe")
            request.target = host.name
            request.parameters.CopyFrom(unknown)
            requests.publish(request)
        if cancels is not None:
            cancels.publish(
                tasking_pb2.TaskCancel(
                    task_id=f"cf-contract-{run}-unknown-{n}", requester="conformance-probe", target=host.name,
                    reason="conformance contract check: a cancel of an unknown task",
                )
            )  # fmt: skip

    return provoke


def _na(request: pytest.FixtureRequest, why: str) -> None:
    """Record that a check does not apply, from the manifest or the contract (it passes: skips are forbidden)."""
    not_applicable(request, why)


def _fail(what: str, problems: Sequence[str], requirement: str) -> None:
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    pytest.fail(f"{requirement}: {what}: " + "; ".join(problems[:SHOWN]) + more, pytrace=False)


# --------------------------------------------------------------------------- decoding (pure)


def decode(spec: InterfaceSpec, frame: Observed) -> list[Message]:
    """The messages of one frame (a Batch when ``count > 1``).

    :raises ValueError: the payload does not parse, or the batch does not hold ``count`` messages.
    """
    from google.protobuf.message import DecodeError

    from hardpoint.core.v1 import header_pb2

    try:
        if frame.count == 1:
            msg = spec.message_type()
            msg.ParseFromString(frame.payload)
            return [msg]
        batch = header_pb2.Batch()
        batch.ParseFromString(frame.payload)
        if len(batch.items) != frame.count:
            raise ValueError(f"batch of count {frame.count} holds {len(batch.items)} messages")
        out = []
        for item in batch.items:
            msg = spec.message_type()
            msg.ParseFromString(item)
            out.append(msg)
        return out
    except DecodeError as e:
        raise ValueError(f"payload does not parse as {spec.name}: {e}") from e


def key_text(spec: InterfaceSpec, message: Message) -> str:
    """The contract key of ``message`` as text: key fields joined with ``/`` (IF-ENV-KEY)."""
    return "/".join(str(getattr(message, name)) for name in spec.key)


# --------------------------------------------------------------------------- judgements (pure)


def judge_rate(spec: InterfaceSpec, arrivals: Mapping[str, Sequence[float]], window: float) -> tuple[list[str], str]:
    """Problems with the rate per key (write times, in seconds, of each key's messages in the window), and a summary.

    Continuous interfaces: every key within ``nominal * (1 ± tolerance)`` and no gap beyond the
    deadline (plus :data:`DEADLINE_ALLOWANCE`). Other periodic interfaces (tracks, published while
    the thing they describe is live): at most ``nominal * (1 + tolerance)`` per key and no gap beyond
    the deadline. See CF-BUS-002.
    """
    lo = spec.nominal_rate_hz * (1 - spec.rate_tolerance)
    hi = spec.nominal_rate_hz * (1 + spec.rate_tolerance)
    allowed_gap_ms = spec.deadline_ms * (1 + DEADLINE_ALLOWANCE)
    problems: list[str] = []
    rates: list[float] = []
    if not any(arrivals.values()):
        return [f"no sample in {window:.1f} s: the rate cannot be measured"], "nothing received"
    for key, times in sorted(arrivals.items()):
        ts = sorted(times)
        if spec.deadline_ms and len(ts) > 1:
            gap_ms = max((b - a) * 1000 for a, b in itertools.pairwise(ts))
            if gap_ms > allowed_gap_ms:
                problems.append(
                    f"key {key!r}: {gap_ms:.0f} ms between two samples (deadline {spec.deadline_ms} ms, "
                    f"{allowed_gap_ms:.0f} ms allowed with the measurement allowance)"
                )
        span = ts[-1] - ts[0] if ts else 0.0
        if len(ts) < MIN_SAMPLES or span < MIN_SPAN_S:
            if spec.continuous:
                problems.append(f"key {key!r}: only {len(ts)} samples over {span:.1f} s of a {window:.1f} s window")
            continue
        rate = (len(ts) - 1) / span
        rates.append(rate)
        if rate > hi or (spec.continuous and rate < lo):
            band = f"{lo:g}..{hi:g} Hz" if spec.continuous else f"at most {hi:g} Hz"
            problems.append(
                f"key {key!r}: measured {rate:.2f} Hz over {span:.1f} s ({len(ts)} samples); "
                f"the contract allows {band} (nominal {spec.nominal_rate_hz:g} Hz ± {spec.rate_tolerance:.0%})"
            )
    if not rates and not problems:
        problems.append(
            f"no key had {MIN_SAMPLES} samples over {MIN_SPAN_S:g} s in {window:.1f} s: the rate cannot be measured"
        )
    summary = f"{len(arrivals)} keys, {min(rates):.2f}..{max(rates):.2f} Hz" if rates else f"{len(arrivals)} keys"
    return problems, summary


def _policy_text(qos: Any, policy: Any) -> str:
    try:
        return str(qos[policy])
    except (KeyError, TypeError):
        return "<not set>"


def expected_qos(spec: InterfaceSpec) -> tuple[str, str, str]:
    """Reliability, durability, history kind of the contract's QoS class (IF-QOS-*)."""
    from hardpoint._contracts import QosClass

    if spec.qos is QosClass.STATE:
        return "Reliable", "TransientLocal", "KeepLast"
    if spec.qos is QosClass.STREAM:
        return "BestEffort", "Volatile", "KeepLast"
    return "Reliable", "Volatile", "KeepAll"


def judge_qos(spec: InterfaceSpec, qos: Any) -> list[str]:
    """Differences between a writer's offered QoS (a ``cyclonedds.core.Qos``) and the contract's QoS class."""
    from cyclonedds.core import Policy

    reliability, durability, history = expected_qos(spec)
    problems = []
    got_r = _policy_text(qos, Policy.Reliability)
    if not got_r.startswith(f"Policy.Reliability.{reliability}"):
        problems.append(f"reliability {got_r} (contract: {reliability})")
    got_d = _policy_text(qos, Policy.Durability)
    if got_d != f"Policy.Durability.{durability}":
        problems.append(f"durability {got_d} (contract: {durability})")
    got_h = _policy_text(qos, Policy.History)
    if not got_h.startswith(f"Policy.History.{history}"):
        problems.append(f"history {got_h} (contract: {history})")
    elif history == "KeepLast":
        depth = getattr(qos[Policy.History], "depth", 0)
        if depth < spec.history_depth:
            problems.append(f"history depth {depth} (contract: at least {spec.history_depth}, SDK-BUS-002)")
    return problems


def judge_header(spec: InterfaceSpec, module: str, frames: Sequence[Observed]) -> list[str]:
    """Header problems of the module's frames of one interface (IF-ENV-*)."""
    from hardpoint._contracts import QosClass

    problems: list[str] = []
    last: dict[tuple[str, int, str], int] = {}
    for f in frames:
        where = f"sample seq {f.seq}"
        if f.source != module:
            problems.append(f"{where}: source {f.source!r}, not the module's manifest name {module!r} (IF-ENV-SOURCE)")
        if f.interface != spec.name:
            problems.append(f"{where}: interface {f.interface!r} on topic {spec.topic} (IF-ENV-INTERFACE)")
        if f.schema_id != spec.schema_id:
            problems.append(f"{where}: schema id {f.schema_id!r}, the contract's is {spec.schema_id!r} (IF-ENV-SCHEMA)")
        if f.count < 1 or (f.count > 1 and spec.qos not in (QosClass.EVENT, QosClass.STREAM)):
            problems.append(f"{where}: count {f.count} on a {spec.qos.name} interface (IF-ENV-BATCH)")
        else:
            try:
                decode(spec, f)
            except ValueError as e:
                problems.append(f"{where}: {e} (IF-ENV-BATCH)")
        # Sequences grow per writer incarnation, per key for keyed interfaces (SDK-BUS-004).
        stream = (f.source, f.epoch, f.key)
        previous = last.get(stream)
        if previous is not None and f.seq <= previous:
            problems.append(
                f"sequence {f.seq} after {previous} from {f.source!r} epoch {f.epoch} key {f.key!r} (IF-ENV-SEQ)"
            )
        last[stream] = f.seq + max(f.count, 1) - 1
    return problems


def judge_key(spec: InterfaceSpec, frames: Sequence[Observed]) -> list[str]:
    """Frames whose envelope key is not the contract key of their payload (IF-ENV-KEY)."""
    problems = []
    for f in frames:
        try:
            messages = decode(spec, f)
        except ValueError:
            continue  # the header check reports it
        for msg in messages:
            want = key_text(spec, msg) if spec.keyed else ""
            if f.key != want:
                fields = ", ".join(spec.key)
                rule = (
                    f"the text of ({fields}) joined with '/'" if spec.keyed else "empty (not a keyed STATE interface)"
                )
                problems.append(f"sample seq {f.seq}: envelope key {f.key!r}, should be {want!r}: {rule}")
                break
    return problems


# --------------------------------------------------------------------------- checks


def _module_frames(observation: Observation, interface: str) -> list[Observed]:
    return observation.frames.get(interface, [])


def test_rate(interface: str, observation: Observation, request: pytest.FixtureRequest) -> None:
    """Each provided interface is published at its contract rate (CF-BUS-002), measured per key when written."""
    if not interface:
        _na(request, "the module provides no interface")
        return
    spec = observation.specs[interface]
    if spec.nominal_rate_hz <= 0:
        _na(request, f"{interface} is aperiodic ({spec.id}-RATE): no rate applies")
        return
    arrivals: dict[str, list[float]] = defaultdict(list)
    for f in _module_frames(observation, interface):
        if not observation.start <= f.at <= observation.end:
            continue
        try:
            messages = decode(spec, f)
        except ValueError:
            continue  # the header check reports it
        # Judged on the writer's clock: a probe slow to take samples makes no gaps or bursts of its own.
        written = f.written_ns / 1e9 if f.written_ns else f.at
        for msg in messages:
            arrivals[key_text(spec, msg) if spec.key else f"{f.source}/{f.epoch}"].append(written)
    problems, summary = judge_rate(spec, arrivals, observation.end - observation.start)
    request.node.user_properties.append(("measured", summary))
    measured = [k for k, ts in arrivals.items() if len(ts) >= MIN_SAMPLES and max(ts) - min(ts) >= MIN_SPAN_S]
    judged(request, len(measured), f"keys of {interface} measured")
    if problems:
        _fail(
            f"{interface} on {spec.topic} from module {observation.host.manifest.name!r}", problems, f"{spec.id}-RATE"
        )


def test_qos(interface: str, observation: Observation, request: pytest.FixtureRequest) -> None:
    """The module's DDS writers of each provided topic offer the contract's QoS class (read from discovery)."""
    if not interface:
        _na(request, "the module provides no interface")
        return
    spec = observation.specs[interface]
    writers = [p for p in observation.host.publications() if p.topic_name == spec.topic]
    if not writers and _module_frames(observation, interface):
        pytest.fail(
            f"{spec.id}-QOS: {interface}: samples seen but no writer of the module on {spec.topic} in discovery"
        )
    # No writer: the module never opened one while observed, so no QoS was judged (CF-JDG-001).
    judged(request, len(writers), f"writers of {interface} on {spec.topic}")
    problems = [f"writer {w.key}: {p}" for w in writers for p in judge_qos(spec, w.qos)]
    if problems:
        _fail(
            f"{interface} on {spec.topic} has QoS class {spec.qos.name} (IF-QOS-{spec.qos.name})",
            problems,
            f"{spec.id}-QOS",
        )


def test_key(interface: str, observation: Observation, request: pytest.FixtureRequest) -> None:
    """Envelope keys are the contract key of the payload; keyed topics use the keyed envelope type."""
    if not interface:
        _na(request, "the module provides no interface")
        return
    spec = observation.specs[interface]
    problems = []
    want_type = "hardpoint::bus::KeyedEnvelope" if spec.keyed else "hardpoint::bus::Envelope"
    for w in observation.host.publications():
        if w.topic_name == spec.topic and w.type_name != want_type:
            problems.append(f"writer {w.key} has DDS type {w.type_name}, the contract's key needs {want_type}")
    frames = _module_frames(observation, interface)
    problems += judge_key(spec, frames)
    if problems:
        key = f"key ({', '.join(spec.key)})" if spec.keyed else "no instance key"
        _fail(f"{interface} ({key})", problems, f"{spec.id}-KEY")
    judged(request, len(frames), f"samples of {interface}")


def test_header(interface: str, observation: Observation, request: pytest.FixtureRequest) -> None:
    """Every sample's header: source, interface, schema id, count/batch, and growing sequences."""
    if not interface:
        _na(request, "the module provides no interface")
        return
    spec = observation.specs[interface]
    frames = _module_frames(observation, interface)
    problems = judge_header(spec, observation.host.manifest.name, frames)
    if problems:
        _fail(f"{interface} on {spec.topic}: {len(frames)} samples", problems, "IF-ENV-HEADER")
    judged(request, len(frames), f"samples of {interface}")


def test_field_constraints(interface: str, observation: Observation, request: pytest.FixtureRequest) -> None:
    """Every published message satisfies the field constraints of its interface, nested ones included."""
    from hardpoint._contracts import field_violations

    if not interface:
        _na(request, "the module provides no interface")
        return
    spec = observation.specs[interface]
    problems: list[str] = []
    checked = 0
    for f in _module_frames(observation, interface):
        try:
            messages = decode(spec, f)
        except ValueError:
            continue  # the header check reports it
        for msg in messages:
            checked += 1
            problems += [f"{v.requirement(spec.id)}: sample seq {f.seq}: {v}" for v in field_violations(msg)]
    request.node.user_properties.append(("messages_checked", checked))
    if problems:
        first = problems[0].split(":", 1)[0]
        _fail(f"{interface}: {len(problems)} violations in {checked} messages", problems, first)
    judged(request, checked, f"messages of {interface}")


@pytest.mark.hardpoint("SDK-BUS-001", CF_UNDECLARED)
def test_no_undeclared_publication(observation: Observation, request: pytest.FixtureRequest) -> None:
    """The module's participant writes no topic but those of its provided interfaces (and the SDK's own)."""
    import hardpoint

    allowed = {spec.topic for spec in observation.specs.values()} | SDK_TOPICS
    by_topic = {spec.topic: spec for spec in hardpoint.all_interfaces().values()}
    problems = []
    writers = observation.host.publications()
    judged(request, len(writers), "writers of the module's participant")
    for w in writers:
        if w.topic_name in allowed:
            continue
        spec = by_topic.get(w.topic_name)
        what = f"interface {spec.name} ({spec.id}-TOPIC)" if spec is not None else "no interface of the set"
        problems.append(f"a writer on {w.topic_name}: {what}, not in the manifest's provides")
    if problems:
        declared = ", ".join(observation.host.manifest.provides) or "nothing"
        _fail(f"module {observation.host.manifest.name!r} (provides {declared})", problems, "SDK-BUS-001")
