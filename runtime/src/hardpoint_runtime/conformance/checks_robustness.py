"""Robustness: generated valid, boundary and invalid inputs, and malformed envelopes, on every input interface.

The module under test runs in the real runtime worker on a private Cyclone DDS domain with no
feeders, so every sample it reads comes from this check (:class:`~._robustness.InputRig`). For
each interface it ``requires`` or ``uses``, Hypothesis generates messages from the protobuf
descriptor and the contract (:mod:`._strategies`; a fixed, derandomized number of examples per
interface: ``--hardpoint-max-examples``, default :data:`DEFAULT_EXAMPLES`), the probe publishes
them, and raw DDS writers of the envelope type send malformed samples. After each step:

* the module process is alive, still ACTIVE and still beating (CF-ROB-001);
* its callbacks raised on no input (CF-ROB-001);
* every sample it published meanwhile decodes and passes the contract's field constraints (CF-ROB-003);
* its receive counters account for every malformed sample, by cause (CF-ROB-002).

A module that reads no interface passes each check with a "not applicable" note.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance._fixtures import hosted_options, manifest_under_test  # noqa: F401
from hardpoint_runtime.conformance._harness import HarnessError

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from hypothesis import strategies as st

    from hardpoint_runtime.conformance._robustness import InputRig

#: Examples per interface and family when ``--hardpoint-max-examples`` is not given.
DEFAULT_EXAMPLES: Final = 25
#: Environment variable read when the option is not registered or not given.
EXAMPLES_ENV: Final = "HARDPOINT_MAX_EXAMPLES"
CF_SURVIVE, CF_COUNT, CF_OUTPUT = "CF-ROB-001", "CF-ROB-002", "CF-ROB-003"


def max_examples(config: pytest.Config) -> int:
    """Examples per interface and family: the option, else the environment, else the default."""
    value = config.getoption("hardpoint_max_examples", None) or os.environ.get(EXAMPLES_ENV)
    try:
        n = int(value) if value else DEFAULT_EXAMPLES
    except ValueError:
        raise pytest.UsageError(f"--hardpoint-max-examples / {EXAMPLES_ENV}: {value!r} is not a number") from None
    if n < 1:
        raise pytest.UsageError(f"--hardpoint-max-examples / {EXAMPLES_ENV}: must be at least 1, not {n}")
    return n


@pytest.fixture(scope="module")
def input_rig(request: pytest.FixtureRequest, hosted_options: Mapping[str, Any]) -> Iterator[InputRig | None]:  # noqa: F811
    """The module under test, ACTIVE, fed only by this check module; None when it reads no interface."""
    import hardpoint
    from hardpoint_runtime.conformance._robustness import InputRig, host_for_inputs, input_interfaces

    module = request.config.getoption("hardpoint_module", None)
    if module is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    manifest = manifest_under_test(request.config)
    if manifest is not None and not input_interfaces(manifest, hardpoint.all_interfaces()):
        yield None  # decided from the manifest: nothing to host
        return
    try:
        host = host_for_inputs(str(module), hosted_options)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        rig = InputRig(host)
    except HarnessError as e:
        host.close()
        pytest.fail(str(e), pytrace=False)
    if not rig.wait_first_beat():
        rig.close()
        pytest.fail(f"module {host.name!r}: no heartbeat within the set-up time\n{host.log_tail()}", pytrace=False)
    yield rig
    rig.close()


@pytest.fixture
def rig(input_rig: InputRig | None) -> InputRig | None:
    """The rig, brought back to ACTIVE in a fresh worker if an earlier check crashed the module."""
    if input_rig is not None and input_rig.survival_problems():
        try:
            input_rig.recover()
        except HarnessError as e:
            pytest.fail(f"module {input_rig.name!r} cannot be hosted again after an earlier check: {e}", pytrace=False)
        input_rig.wait_first_beat()
    return input_rig


def _inputs(rig: InputRig | None, record_property: Callable[[str, object], None]) -> list[str]:
    """The interfaces to vary; none (with a "not applicable" note) for a module that reads none."""
    from hardpoint_runtime.conformance._robustness import input_interfaces

    names = [] if rig is None else input_interfaces(rig.host.manifest, rig.known)
    if rig is None or not names:
        not_applicable(record_property, "the module reads no interface: no input to vary")
        return []
    unread = [name for name in names if rig.counters(name) is None]
    if unread:
        record_property(
            "note",
            f"module {rig.name!r} declares but does not subscribe to {', '.join(unread)}: "
            "messages sent there are checked for survival only, not counted",
        )
    return names


def _generate(strategy: st.SearchStrategy[Any], n: int, act: Callable[[Any], None]) -> None:
    """Run ``act`` on ``n`` derandomized examples of ``strategy`` (no database, no shrinking: nothing fails inside)."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example: Any) -> None:
        act(example)

    run()


def _verdict(rig: InputRig, what: str, failures: list[str], problems_before: int) -> None:
    """Fail naming every broken requirement: crash or state (CF-ROB-001), invalid output (CF-ROB-003)."""
    failures += [f"{CF_SURVIVE} {p}" for p in rig.survival_problems()]
    outputs = rig.output_problems[problems_before:]
    failures += [f"{CF_OUTPUT} published an invalid sample: {p}" for p in outputs]
    failures += [f"{CF_OUTPUT} published samples the probe could not read: {p}" for p in rig.undecodable_outputs()]
    if failures:
        # The first line names the requirement (the reports carry every line, CF-EV-007).
        head = f"{failures[0].splitlines()[0]} [module {rig.name!r}, after {what}]"
        pytest.fail(head + "\n" + "\n".join(failures), pytrace=False)


def _publish_family(
    rig: InputRig,
    family: Callable[[type[Message]], st.SearchStrategy[Message]],
    n: int,
    names: list[str],
    *,
    sweep: Callable[[type[Message]], list[Message]] | None = None,
    count: list[int] | None = None,
) -> list[str]:
    """Publish the ``sweep`` messages and ``n`` examples of ``family`` per interface through the probe.

    Problems with callbacks (module code that raised) and with the counters. ``count`` (one element)
    is increased by the number of messages sent.
    """
    import time

    from hardpoint_runtime.conformance._robustness import Sent, describe

    failures: list[str] = []
    for name in names:
        spec = rig.known[name]
        baseline = rig.counters(name)
        sent: list[Message] = []
        # A best-effort keep-last reader keeps only the newest sample: one at a time, so each is taken.
        paced = spec.qos.name == "STREAM"

        def publish(message: Message, sent: list[Message] = sent, paced: bool = paced) -> None:
            rig.host.probe.publish(message)
            sent.append(message)
            if paced:
                rig.host.probe.flush()
                time.sleep(0.002)

        for message in sweep(spec.message_type) if sweep is not None else []:
            publish(message)
        _generate(family(spec.message_type), n, publish)
        rig.host.probe.flush()
        if count is not None:
            count[0] += len(sent)
        if baseline is None:
            continue  # the module does not subscribe to it (an optional input it ignores): survival only
        delta = rig.settle(name, baseline, Sent(good=len(sent)))
        if delta["callback_errors"]:
            failures.append(
                f"{CF_SURVIVE} {name}: module code raised on {delta['callback_errors']} of {len(sent)} "
                f"{family.__name__.replace('_', ' ')}; the last sent:\n{describe(sent)}\n{rig.host.log_tail(15)}"
            )
    return failures


@pytest.mark.hardpoint(CF_SURVIVE, CF_OUTPUT)
def test_valid_and_boundary_inputs(
    rig: InputRig | None, request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> None:
    """Valid and boundary messages of every input interface: no crash, no exception, no invalid output.

    Boundary inputs are every edge value of every field in turn (the edge sweep), then generated
    messages made of edge values."""
    from hardpoint_runtime.conformance._strategies import boundary_messages, edge_sweep, valid_messages

    names = _inputs(rig, record_property)
    if rig is None or not names:
        return
    before = len(rig.output_problems)
    n = max_examples(request.config)
    sent = [0]
    failures = _publish_family(rig, valid_messages, n, names, count=sent)
    failures += _publish_family(rig, boundary_messages, n, names, sweep=edge_sweep, count=sent)
    judged(record_property, sent[0], f"valid and boundary messages sent to {', '.join(names)}")
    record_property(
        "inputs", f"{2 * n} generated messages and the edge sweep of each field to {', '.join(names) or 'none'}"
    )
    _verdict(rig, "valid and boundary inputs", failures, before)


@pytest.mark.hardpoint(CF_SURVIVE, CF_OUTPUT)
def test_invalid_inputs(
    rig: InputRig | None, request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> None:
    """Messages that break the contract's field rules: the module survives and publishes nothing invalid."""
    from hardpoint_runtime.conformance._strategies import invalid_messages

    names = _inputs(rig, record_property)
    if rig is None or not names:
        return
    before = len(rig.output_problems)
    sent = [0]
    failures = _publish_family(rig, invalid_messages, max_examples(request.config), names, count=sent)
    judged(record_property, sent[0], f"invalid messages sent to {', '.join(names)}")
    _verdict(rig, "invalid inputs", failures, before)


@pytest.mark.hardpoint(CF_SURVIVE, CF_COUNT, CF_OUTPUT, "IF-ENV-RX-ORDER", "IF-ENV-RX-COUNTERS")
def test_malformed_envelopes(
    rig: InputRig | None, request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> None:
    """Undecodable, wrong-type and garbage payloads, bad counts, wrong schema ids and interface names, replays.

    Each is refused before module code sees it and counted under its cause, exactly on reliable
    interfaces (never more than sent on best-effort ones); payloads that decode reach the module,
    which must cope with them.
    """
    names = _inputs(rig, record_property)
    if rig is None or not names:
        return
    before = len(rig.output_problems)
    n = max_examples(request.config)
    failures: list[str] = []
    attacked = [0]
    for name in names:
        failures += _attack(rig, name, n, attacked)
    judged(record_property, attacked[0], f"malformed envelopes sent to {', '.join(names)}")
    _verdict(rig, "malformed envelopes", failures, before)


def _attack(rig: InputRig, name: str, n: int, attacked: list[int]) -> list[str]:
    """Send the malformed samples to one interface; problems with the counters' accounting of them.

    ``attacked`` (one element) is increased by the frames sent to a reader of the module (and so counted).
    """
    from hardpoint._bus import MAX_BATCH
    from hardpoint.core.v1 import header_pb2
    from hardpoint_runtime.conformance._robustness import Sent, accounting_problems, expected_refusals
    from hardpoint_runtime.conformance._strategies import (
        garbage_payloads,
        malformed_payloads,
        valid_messages,
        wrong_type_payloads,
    )

    spec = rig.known[name]
    baseline = rig.counters(name)
    if baseline is None:
        return []  # no reader of the module on this topic: nothing can match a writer, nothing to count
    writer = rig.hostile(name)
    keyed = writer.keyed
    sent = Sent()
    seq = 0
    frames = 0
    valid: list[bytes] = []
    _generate(valid_messages(spec.message_type), 2, lambda m: valid.append(m.SerializeToString()))

    def frame(payload: bytes, *, count: int = 1, ok_interface: bool = True, ok_schema: bool = True) -> None:
        nonlocal seq, frames
        frames += 1
        key = f"hostile-{frames}" if keyed else ""
        uses_sequence = ok_interface and ok_schema and 1 <= count <= MAX_BATCH
        this_seq = 1 if keyed else seq + 1
        if uses_sequence and not keyed:
            seq += count
        decodes = _decodes(spec.message_type, payload, count)
        sent.add(
            expected_refusals(
                interface_ok=ok_interface, schema_ok=ok_schema, count=count, decodes=decodes, replay=False
            )
        )
        writer.write(
            payload,
            seq=this_seq,
            key=key,
            count=count,
            interface=None if ok_interface else "hardpoint.conformance.v1.NotThisInterface",
            schema_id=None if ok_schema else "0000000000000000",
        )
        if spec.qos.name == "STREAM":
            import time

            time.sleep(0.005)  # a keep-last best-effort reader: give the module time to take each sample

    payloads = malformed_payloads(spec.message_type) | wrong_type_payloads(spec.message_type) | garbage_payloads()
    _generate(payloads, n, frame)
    batch_of_two = header_pb2.Batch(items=valid).SerializeToString()
    frame(valid[0], count=0)
    frame(valid[0], count=MAX_BATCH + 1)
    frame(batch_of_two, count=3)  # a batch whose size differs from its count
    frame(batch_of_two, count=2)  # a good batch
    for _ in range(3):
        frame(valid[0], ok_schema=False)
        frame(valid[0], ok_interface=False)
    reliable = spec.qos.name != "STREAM"
    delta = rig.settle(name, baseline, sent)
    problems = accounting_problems(sent, delta, reliable=reliable)
    # Replays: the first sample of a sequence track again (after the module took it, so DDS cannot merge them).
    replay_baseline = {k: baseline[k] + delta[k] for k in delta}
    replayed = Sent()
    writer.write(valid[0], seq=1, key="hostile-1" if keyed else "")
    replayed.add(expected_refusals(interface_ok=True, schema_ok=True, count=1, decodes=True, replay=True))
    replay_delta = rig.settle(name, replay_baseline, replayed)
    attacked[0] += frames + 1
    problems += [f"replayed sequence: {p}" for p in accounting_problems(replayed, replay_delta, reliable=reliable)]
    if delta["callback_errors"] or replay_delta["callback_errors"]:
        problems.append(
            f"module code raised on {delta['callback_errors']} decodable payload(s)\n{rig.host.log_tail(15)}"
        )
    return [f"{CF_COUNT} {name}: {p}" for p in problems]


def _decodes(message_type: type[Message], payload: bytes, count: int) -> bool:
    """Whether a frame's payload decodes as ``count`` messages, as the SDK's subscription decides."""
    from google.protobuf.message import DecodeError

    from hardpoint.core.v1 import header_pb2

    try:
        if count == 1:
            message_type.FromString(payload)
            return True
        items = header_pb2.Batch.FromString(payload).items
        for item in items:
            message_type.FromString(item)
    except DecodeError:
        return False
    return len(items) == count
