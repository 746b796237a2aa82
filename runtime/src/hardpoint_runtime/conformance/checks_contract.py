"""Contract behaviour on the real bus: rate, QoS, key, header, field constraints, nothing undeclared.

The module under test runs in the real runtime worker on a private Cyclone DDS domain, fed its
required interfaces by the reference modules (:mod:`._harness`). A raw tap in the probe records
every sample on the topics the module provides, from before it starts, with the SDK's receive
checks bypassed; DDS discovery shows every participant the module's processes made on the run's
private domain, at any time, with their writers (and the QoS they offer) and readers, alive or gone
(CF-HOST-004); a sample is the module's when one of them wrote it, whatever source it claims.
After one observation window each check judges what was seen against the contract
(``spec/interfaces.md``) and names the interface, what was measured and the requirement ID. How the
suite measures is specified in ``spec/conformance.md`` (``CF-BUS-*``).

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
from hardpoint_runtime.conformance._harness import HostedModule, Observed

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor
    from google.protobuf.message import Message

    from hardpoint import InterfaceSpec

#: Start-up excluded from rate measurement (a sensor waits for its first navigation sample).
SETTLE_S: Final = 1.5
#: Shortest observation window; longer when the slowest rate or the longest deadline needs it.
MIN_WINDOW_S: Final = 6.0
#: Allowance on every ``deadline_ms`` for the module's own scheduling on a loaded machine (ms): the longest a
#: periodic timer of the SDK fired late, measured on a 2-core machine with every core busy (CF-BUS-002), was
#: 17 ms; six times that.
JITTER_MS: Final = 100
#: After the window, how long the probe waits for samples written before its end to arrive (s).
DRAIN_S: Final = 0.5
#: Rates are judged on keys seen at least this often over at least this long.
MIN_SAMPLES, MIN_SPAN_S = 5, 2.0
#: Topics every module writes through the SDK whatever it provides (heartbeat, schema announcements).
SDK_TOPICS: Final = frozenset({"hp/core/v1/health", "hp/schemas"})
#: Topics every module reads through the SDK whatever it requires (schema announcements).
SDK_READ_TOPICS: Final = frozenset({"hp/schemas"})
#: Problems listed in one failure message.
SHOWN: Final = 5
#: Requirement IDs of the checks that do not depend on an interface.
CF_OBSERVE, CF_RATE, CF_FIELDS, CF_UNDECLARED, CF_QOS, CF_DECLARED_RATE, CF_UNDECLARED_READ = (
    "CF-BUS-001",
    "CF-BUS-002",
    "CF-BUS-003",
    "CF-BUS-004",
    "CF-BUS-005",
    "CF-BUS-007",
    "CF-BUS-008",
)


# --------------------------------------------------------------------------- parametrization


def _requirements(kind: str, spec: InterfaceSpec) -> tuple[str, ...]:
    """The requirement IDs one check verifies for one interface, most specific first."""
    from hardpoint._contracts import nested_field_rules

    if kind == "rate":
        ids = [f"{spec.id}-RATE"]
        ids += [f"{spec.id}-DEADLINE"] if spec.deadline_ms and spec.nominal_rate_hz else []
        ids += [f"{spec.id}-LIVE"] if spec.continuous else []
        return (*ids, CF_RATE, CF_DECLARED_RATE)
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
    #: Module's frames (written by a participant of the module, :func:`module_frames`) by provided
    #: interface, from before activation to :data:`DRAIN_S` after the window.
    frames: dict[str, list[Observed]]
    #: The rate window (monotonic seconds).
    start: float
    end: float
    specs: dict[str, InterfaceSpec] = field(default_factory=dict)
    #: The end of the window on the wall clock (ns since the epoch), the clock of DDS source timestamps.
    end_ns: int = 0


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
    end_ns = time.time_ns() - int((time.monotonic() - end) * 1e9)
    time.sleep(DRAIN_S)  # samples written before the end of the window may still be on their way
    frames: dict[str, list[Observed]] = {}
    for name, spec in specs.items():
        assert host.tap is not None
        frames[name] = module_frames(host, host.tap.frames(topic=spec.topic))
    return Observation(host, frames, start, end, specs, end_ns)


def module_frames(host: HostedModule, frames: Iterable[Observed]) -> list[Observed]:
    """The frames the module wrote, by their writer (:meth:`HostedModule.module_frames`, CF-HOST-004)."""
    return host.module_frames(frames)


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


def declared_rate_problems(spec: InterfaceSpec, declared: float | None) -> list[str]:
    """Why a rate the manifest declares for ``spec`` (``rates``) cannot be its rate of record (CF-BUS-007)."""
    if declared is None:
        return []
    if spec.nominal_rate_hz <= 0:
        return [f"{CF_DECLARED_RATE}: the manifest declares {declared:g} Hz for {spec.name}, which is aperiodic"]
    problems = []
    if declared > spec.nominal_rate_hz:
        problems.append(
            f"{CF_DECLARED_RATE}: the manifest declares {declared:g} Hz for {spec.name}, above the contract's "
            f"nominal {spec.nominal_rate_hz:g} Hz (a declared rate is for a module slower by design)"
        )
    if spec.deadline_ms and 1000.0 / declared > spec.deadline_ms:
        problems.append(
            f"{CF_DECLARED_RATE}: the manifest declares {declared:g} Hz for {spec.name}, one sample every "
            f"{1000.0 / declared:.0f} ms: longer than the contract's deadline of {spec.deadline_ms} ms"
        )
    return problems


def judge_rate(
    spec: InterfaceSpec,
    arrivals: Mapping[str, Sequence[float]],
    window: float,
    *,
    declared: float | None = None,
    ended: Mapping[str, Iterable[float]] | None = None,
    until: float | None = None,
) -> tuple[list[str], str]:
    """Problems with the rate and the gaps per key, and a summary (CF-BUS-002); each problem starts with its ID.

    ``arrivals``: write times (s) of each key's messages in the window; ``declared``: the rate the manifest
    declares (CF-BUS-007), else the nominal rate is the rate of record; ``ended``: times of messages that end
    their key (a track DROPPED: the silence after them is no gap); ``until``: the end of the window on the
    same clock (a continuous key's silence from its last sample to it counts as a gap).

    Every periodic interface: no gap between two samples of a key longer than ``deadline_ms`` plus
    :data:`JITTER_MS`; every key measured at most the rate of record x (1 + tolerance). A continuous
    interface: every key within the rate of record x (1 +/- tolerance), live to the end of the window. Other
    periodic interfaces (tracks come and go): the fastest key at least the rate of record x (1 - tolerance).
    """
    record = declared if declared is not None else spec.nominal_rate_hz
    basis = (
        f"declared {record:g} Hz in the manifest" if declared is not None else f"nominal {spec.nominal_rate_hz:g} Hz"
    ) + f" ± {spec.rate_tolerance:.0%}"
    lo, hi = record * (1 - spec.rate_tolerance), record * (1 + spec.rate_tolerance)
    rid = spec.id
    problems: list[str] = []
    rates: dict[str, float] = {}
    longest = 0.0
    if not any(arrivals.values()):
        return [f"{rid}-RATE: no sample in {window:.1f} s: the rate cannot be measured"], "nothing received"
    for key, ts, ends in _lives(arrivals, ended or {}):
        if spec.deadline_ms and ts:
            key_problems, key_longest = judge_gaps(spec, key, ts, ends, until)
            problems += key_problems
            longest = max(longest, key_longest)
        span = ts[-1] - ts[0] if ts else 0.0
        if len(ts) < MIN_SAMPLES or span < MIN_SPAN_S:
            if spec.continuous:
                problems.append(
                    f"{rid}-LIVE: key {key!r}: only {len(ts)} samples over {span:.1f} s of a {window:.1f} s window "
                    f"(continuous: each key at {basis} while active)"
                )
            continue
        rate = rates[key] = (len(ts) - 1) / span
        if rate > hi or (spec.continuous and rate < lo):
            band = f"{lo:g}..{hi:g} Hz" if spec.continuous else f"at most {hi:g} Hz"
            problems.append(
                f"{rid}-RATE: key {key!r}: measured {rate:.2f} Hz over {span:.1f} s ({len(ts)} samples); "
                f"allowed {band} ({basis})"
            )
    if not rates:
        if not problems:
            problems.append(
                f"{rid}-RATE: no key had {MIN_SAMPLES} samples over {MIN_SPAN_S:g} s in {window:.1f} s: "
                "the rate cannot be measured"
            )
    elif not spec.continuous and max(rates.values()) < lo:
        fastest = max(rates, key=lambda k: rates[k])
        problems.append(
            f"{rid}-RATE: no key is published at the rate of record: the fastest, {fastest!r}, measured "
            f"{rates[fastest]:.2f} Hz, below {lo:g} Hz ({basis}); a module slower than the nominal rate by design "
            f"declares its rate in its manifest ({CF_DECLARED_RATE})"
        )
    summary = f"{len(arrivals)} keys"
    if rates:
        summary += f", {min(rates.values()):.2f}..{max(rates.values()):.2f} Hz"
    if spec.deadline_ms:
        summary += f", longest gap {longest:.0f} ms (deadline {spec.deadline_ms} ms)"
    return problems, summary


def _lives(
    arrivals: Mapping[str, Sequence[float]], ended: Mapping[str, Iterable[float]]
) -> list[tuple[str, list[float], set[float]]]:
    """Each key's samples split into its lives: a key that ended (a track DROPPED) and came again is a new one.

    ``(key, sorted times, end times)`` per life, in key order; a later life is named ``<key> #<n>``.
    """
    out: list[tuple[str, list[float], set[float]]] = []
    for key, times in sorted(arrivals.items()):
        ends = set(ended.get(key, ()))
        life: list[float] = []
        lives = [life]
        for t in sorted(times):
            life.append(t)
            if t in ends:
                life = []
                lives.append(life)
        lives = [x for x in lives if x] or [[]]
        for n, ts in enumerate(lives, 1):
            out.append((key if n == 1 else f"{key} #{n}", ts, ends))
    return out


def judge_gaps(
    spec: InterfaceSpec, key: str, ts: Sequence[float], ends: set[float], until: float | None
) -> tuple[list[str], float]:
    """Gaps of one key over ``deadline_ms`` + :data:`JITTER_MS` (write times ``ts``, sorted), and its longest gap (ms).

    A gap after a message that ends the key (``ends``) is none; a continuous key's silence from its last
    sample to ``until`` is one.
    """
    allowed_ms = spec.deadline_ms + JITTER_MS
    gaps = [((b - a) * 1000, a) for a, b in itertools.pairwise(ts) if a not in ends]
    problems = []
    over = [(g, a) for g, a in gaps if g > allowed_ms]
    if over:
        worst, at = max(over)
        problems.append(
            f"{spec.id}-DEADLINE: key {key!r}: {worst:.0f} ms between two samples ({len(over)} of {len(gaps)} "
            f"gaps over the deadline, the longest {at - ts[0]:.1f} s after its first sample; deadline "
            f"{spec.deadline_ms} ms, {allowed_ms} ms allowed with {JITTER_MS} ms for scheduling)"
        )
    silent = (until - ts[-1]) * 1000 if until is not None else 0.0
    if spec.continuous and ts[-1] not in ends and silent > allowed_ms:
        problems.append(
            f"{spec.id}-LIVE: key {key!r}: nothing for the last {silent:.0f} ms of the window (continuous: "
            f"a sample at least every {spec.deadline_ms} ms while active, {allowed_ms} ms allowed)"
        )
    return problems, max((g for g, _ in gaps), default=0.0)


def ends_key(message: Message) -> bool:
    """True for a message that ends its key: one whose ``lifecycle`` field is ``..._DROPPED`` (a track that ended)."""
    descriptor = message.DESCRIPTOR
    lifecycle = descriptor.fields_by_name.get("lifecycle")
    if lifecycle is None or lifecycle.enum_type is None:
        return False
    value = lifecycle.enum_type.values_by_number.get(getattr(message, lifecycle.name))
    return value is not None and value.name.endswith("_DROPPED")


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
    """Each provided interface at its rate of record, every gap within its deadline (CF-BUS-002, CF-BUS-007).

    Measured per key on the writer's clock. The rate of record is the contract's nominal rate, or the rate
    the manifest declares for the interface (``rates``).
    """
    if not interface:
        _na(request, "the module provides no interface")
        return
    spec = observation.specs[interface]
    declared = observation.host.manifest.rates.get(interface)
    what = f"{interface} on {spec.topic} from module {observation.host.manifest.name!r}"
    wrong = declared_rate_problems(spec, declared)
    if wrong:
        judged(request, 1, f"rate declared for {interface}")
        _fail(what, wrong, CF_DECLARED_RATE)
    if spec.nominal_rate_hz <= 0:
        _na(request, f"{interface} is aperiodic ({spec.id}-RATE): no rate applies")
        return
    arrivals: dict[str, list[float]] = defaultdict(list)
    ended: dict[str, list[float]] = defaultdict(list)
    last: dict[str, float] = {}
    until = observation.end_ns / 1e9 if observation.end_ns else None
    for f in _module_frames(observation, interface):
        try:
            messages = decode(spec, f)
        except ValueError:
            continue  # the header check reports it
        # Judged on the writer's clock: a probe slow to take samples makes no gaps or bursts of its own.
        written = f.written_ns / 1e9 if f.written_ns else f.at
        for msg in messages:
            key = key_text(spec, msg) if spec.key else f"{f.source}/{f.epoch}"
            if observation.start <= f.at <= observation.end:
                arrivals[key].append(written)
                if ends_key(msg):
                    ended[key].append(written)
            elif f.at > observation.end and (until is None or written <= until):
                last[key] = max(last.get(key, 0.0), written)  # written in the window, arrived after it
    for key, written in last.items():  # the trailing silence ends at the last sample written in the window
        if key in arrivals and written > max(arrivals[key]):
            arrivals[key].append(written)
    problems, summary = judge_rate(
        spec, arrivals, observation.end - observation.start, declared=declared, ended=ended, until=until
    )
    request.node.user_properties.append(("measured", summary))
    measured = [k for k, ts in arrivals.items() if len(ts) >= MIN_SAMPLES and max(ts) - min(ts) >= MIN_SPAN_S]
    judged(request, len(measured), f"keys of {interface} measured ({summary})")
    if problems:
        _fail(what, problems, problems[0].split(":", 1)[0])


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


def _participants_text(host: HostedModule) -> str:
    mine = sorted(host.module_participants(), key=str)
    return f"{len(mine)} participant(s) of the module: " + "; ".join(host.participant_details(p) for p in mine)


@pytest.mark.hardpoint("SDK-BUS-001", CF_UNDECLARED)
def test_no_undeclared_publication(observation: Observation, request: pytest.FixtureRequest) -> None:
    """Every participant of the module's processes, at any time so far, writes only provided topics and the SDK's."""
    import hardpoint

    host = observation.host
    allowed = {spec.topic for spec in observation.specs.values()} | SDK_TOPICS
    by_topic = {spec.topic: spec for spec in hardpoint.all_interfaces().values()}
    problems = []
    writers = host.publications()
    judged(request, len(writers), f"writers of the module's {len(host.module_participants())} participant(s)")
    for w in writers:
        if w.topic_name in allowed:
            continue
        spec = by_topic.get(w.topic_name)
        what = f"interface {spec.name} ({spec.id}-TOPIC)" if spec is not None else "no interface of the set"
        problems.append(
            f"a writer on {w.topic_name}: {what}, not in the manifest's provides "
            f"(writer {w.key} of {host.participant_details(w.participant_key)})"
        )
    if problems:
        declared = ", ".join(host.manifest.provides) or "nothing"
        _fail(
            f"module {host.manifest.name!r} (provides {declared}; {_participants_text(host)})",
            problems,
            f"{CF_UNDECLARED} (SDK-BUS-001)",
        )


def allowed_reads(manifest: Any) -> set[str] | None:
    """Topics the module may read: its required and used interfaces' and the SDK's (None: every topic, ``uses *``)."""
    import hardpoint

    specs = hardpoint.all_interfaces()
    names = {*manifest.requires, *manifest.uses}
    if "*" in names:
        return None
    return {specs[n].topic for n in names if n in specs} | SDK_READ_TOPICS


@pytest.mark.hardpoint("SDK-BUS-001", CF_UNDECLARED_READ)
def test_no_undeclared_subscription(observation: Observation, request: pytest.FixtureRequest) -> None:
    """Every participant of the module's processes, at any time so far, reads only what it requires or uses."""
    import hardpoint

    host = observation.host
    allowed = allowed_reads(host.manifest)
    readers = host.subscriptions()
    judged(request, len(readers), f"readers of the module's {len(host.module_participants())} participant(s)")
    if allowed is None:
        request.node.user_properties.append(("note", "the module uses '*': it may read every topic"))
        return
    by_topic = {spec.topic: spec for spec in hardpoint.all_interfaces().values()}
    problems = []
    for r in readers:
        if r.topic_name in allowed:
            continue
        spec = by_topic.get(r.topic_name)
        what = f"interface {spec.name}" if spec is not None else "no interface of the set"
        problems.append(
            f"a reader of {r.topic_name}: {what}, not in the manifest's requires or uses "
            f"(reader {r.key} of {host.participant_details(r.participant_key)})"
        )
    if problems:
        declared = ", ".join((*host.manifest.requires, *host.manifest.uses)) or "nothing"
        _fail(
            f"module {host.manifest.name!r} (requires or uses {declared}; {_participants_text(host)})",
            problems,
            f"{CF_UNDECLARED_READ} (SDK-BUS-001)",
        )
