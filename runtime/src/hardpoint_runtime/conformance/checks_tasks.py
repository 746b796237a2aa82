"""Task handling: requests acknowledged in time, accepted tasks ended once, cancels honoured, stateful sequences.

Applies to a module that reads ``hardpoint.tasking.v1.TaskRequest`` and provides ``TaskAck``
(:func:`~._tasking.handles_tasks`); any other module passes every check here with a "not
applicable" note. The module runs in the real runtime worker on a private Cyclone DDS domain
with no feeders; the probe is the only requester (:class:`~._tasking.TaskRig`). The suite does
not know which kinds of task a module accepts, so it asks: parameters of every interface type
of the platform (generated from the descriptors, :mod:`._strategies`) and of an unknown type.
The answers are judged against ``tasking.proto`` by :func:`~._tasking.task_problems`. Before the
final judgement of CF-TASK-002, -003 and -004 every accepted task is watched for the duplicate
window after its first result (:meth:`~._tasking.TaskRig.watch`, CF-TASK-005), so a result sent a
second time unasked fails the check whenever it comes within that window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance._fixtures import hosted_options, manifest_under_test  # noqa: F401
from hardpoint_runtime.conformance._harness import HarnessError
from hardpoint_runtime.conformance.checks_robustness import max_examples

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from hardpoint_runtime.conformance._tasking import TaskRig

CF_ACK, CF_RESULT, CF_CANCEL, CF_STATEFUL = "CF-TASK-001", "CF-TASK-002", "CF-TASK-003", "CF-TASK-004"
#: Examples per parameter type when looking for the task kinds a module accepts (at most).
PER_TYPE: Final = 3
#: Steps per stateful run and runs (at most; fewer with a small --hardpoint-max-examples).
STEPS: Final = 12
RUNS: Final = 4
SHOWN: Final = 8

Record = Callable[[str, object], None]


@dataclass(slots=True)
class Catalog:
    """What the module accepted: the requests sent while looking, and the parameters it took on."""

    task_ids: list[str] = field(default_factory=list)
    accepted: list[Message] = field(default_factory=list)
    rejected: list[Message] = field(default_factory=list)


@pytest.fixture(scope="module")
def task_rig(request: pytest.FixtureRequest, hosted_options: Mapping[str, Any]) -> Iterator[TaskRig | None]:  # noqa: F811
    """The module under test, ACTIVE and answering requests; None when it handles no tasks."""
    from hardpoint_runtime.conformance._robustness import host_for_inputs
    from hardpoint_runtime.conformance._tasking import TaskRig, handles_tasks

    module = request.config.getoption("hardpoint_module", None)
    if module is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    manifest = manifest_under_test(request.config)
    if manifest is not None and not handles_tasks(manifest):
        yield None  # decided from the manifest: nothing to host
        return
    try:
        host = host_for_inputs(str(module), hosted_options)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    if not handles_tasks(host.manifest):
        host.close()
        yield None
        return
    try:
        rig = TaskRig(host)
    except HarnessError as e:
        host.close()
        pytest.fail(str(e), pytrace=False)
    yield rig
    rig.close()


def _applies(rig: TaskRig | None, record_property: Record) -> TaskRig | None:
    if rig is None:
        not_applicable(
            record_property,
            "the module handles no tasks (it does not both read hardpoint.tasking.v1.TaskRequest and provide "
            "hardpoint.tasking.v1.TaskAck)",
        )
    return rig


def _watch(rig: TaskRig, task_ids: list[str], record_property: Record) -> None:
    """Watch the tasks for a duplicate result (CF-TASK-005) before the final judgement."""
    waited = rig.watch(task_ids)
    record_property(
        "watched", f"{len(task_ids)} tasks, {rig.log.watch_s:g} s after each first result ({waited:.1f} s waited)"
    )


def _fail_on(problems: list[str], rig: TaskRig, requirement: str, what: str) -> None:
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:SHOWN])
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        pytest.fail(
            f"{requirement} module {rig.name!r}, {what}:\n{shown}{more}\n{rig.host.log_tail(10)}", pytrace=False
        )


@pytest.fixture(scope="module")
def matched(task_rig: TaskRig | None) -> TaskRig | None:
    """The rig once the module has answered a first request (its reader matched), or after trying for 15 s.

    A module that never answers is not failed here (an error in set-up is no verdict): the checks judge it.
    """
    if task_rig is not None:
        task_rig.answered = task_rig.wait_matched()
    return task_rig


@pytest.fixture(scope="module")
def catalog(matched: TaskRig | None, request: pytest.FixtureRequest) -> Catalog:
    """Requests with parameters of every interface type (generated) and expired deadlines; what was accepted."""
    out = Catalog()
    if matched is None:
        return out
    from hardpoint import all_interfaces
    from hardpoint_runtime.conformance._strategies import valid_messages
    from hardpoint_runtime.conformance._tasking import ACCEPTED, ACK
    from hardpoint_runtime.conformance.checks_robustness import _generate

    rig = matched
    per_type = max(1, min(PER_TYPE, max_examples(request.config)))
    sent: dict[str, Message] = {}
    for spec in all_interfaces().values():

        def ask(parameters: Message) -> None:
            task_id = rig.new_id("kind")
            sent[task_id] = parameters
            rig.request(task_id, parameters, correlation_id=f"corr-{task_id}")

        _generate(valid_messages(spec.message_type), per_type, ask)
    out.task_ids = list(sent)
    rig.settle(out.task_ids)
    for task_id, parameters in sent.items():
        acks = rig.log.of(task_id, ACK)
        (out.accepted if any(a.status == ACCEPTED for a in acks) else out.rejected).append(parameters)
    return out


@pytest.mark.hardpoint(CF_ACK, "IF-TASKING-REQUEST-DEADLINE", "IF-TASKING-REQUEST-SEM", "IF-TASKING-ACK-SEM")
def test_requests_acknowledged_within_deadline(matched: TaskRig | None, record_property: Record) -> None:
    """Every request addressed to the module is acknowledged within deadline_ms, copying the request;
    a task type it does not know is rejected; a request for another module gets no answer."""
    rig = _applies(matched, record_property)
    if rig is None:
        return
    from hardpoint_runtime.conformance._tasking import ACK, REJECTED, task_problems

    if not rig.answered:
        pytest.fail(
            f"{CF_ACK} module {rig.name!r} acknowledged none of the requests sent to it over 15 s "
            f"[IF-TASKING-REQUEST-DEADLINE]\n{rig.host.log_tail(10)}",
            pytrace=False,
        )
    ids = [rig.new_id("unknown") for _ in range(3)]
    for i, task_id in enumerate(ids):
        rig.request(task_id, rig.unknown_parameters(), correlation_id=f"op-{i}" if i else "")
    elsewhere = rig.new_id("elsewhere")
    rig.request(elsewhere, rig.unknown_parameters(), target=f"{rig.name}-not")
    rig.settle(ids)
    judged(record_property, len(ids), "requests of an unknown task type")
    problems = task_problems(rig.sub_log(ids))
    for task_id in ids:
        accepted = [a for a in rig.log.of(task_id, ACK) if a.status != REJECTED]
        if accepted:
            problems.append(
                f"task {task_id!r}: a request of an unknown task type was answered with status "
                f"{accepted[0].status}, not REJECTED [IF-TASKING-REQUEST-SEM]"
            )
    if rig.log.of(elsewhere, ACK):
        problems.append(f"task {elsewhere!r}: answered a request addressed to another module [IF-TASKING-REQUEST-SEM]")
    _fail_on(problems, rig, CF_ACK, "requests")


@pytest.mark.hardpoint(CF_RESULT, "IF-TASKING-RESULT-SEM", "IF-TASKING-ACK-SEM", "IF-TASKING-PROGRESS-SEM")
def test_accepted_tasks_end_with_one_result(matched: TaskRig | None, catalog: Catalog, record_property: Record) -> None:
    """Requests with parameters of every interface type: each acked in time, each accepted one ended by exactly
    one result (a task still running after a few seconds is cancelled and must then end), none for a rejection;
    tasks whose deadline had already passed end EXPIRED or otherwise at once."""
    rig = _applies(matched, record_property)
    if rig is None:
        return
    from hardpoint_runtime.conformance._tasking import task_problems

    late: list[str] = []
    for parameters in catalog.accepted[:3]:
        task_id = rig.new_id("late")
        late.append(task_id)
        rig.request(task_id, parameters, deadline_time_ns=time.time_ns() - 1_000_000_000)
    rig.settle(late)
    record_property(
        "tasks", f"{len(catalog.accepted)} accepted, {len(catalog.rejected)} rejected of {len(catalog.task_ids)}"
    )
    if not catalog.accepted:
        record_property(
            "note",
            "the module accepted none of the generated tasks (parameters of every interface type): "
            "only rejection was exercised",
        )
    ids = [*catalog.task_ids, *late]
    _watch(rig, ids, record_property)
    judged(record_property, len(ids), "tasks requested")
    _fail_on(task_problems(rig.sub_log(ids)), rig, CF_RESULT, "task outcomes")


@pytest.mark.hardpoint(CF_CANCEL, "IF-TASKING-CANCEL-SEM", "IF-TASKING-CANCEL-DEADLINE")
def test_cancellation_honoured(matched: TaskRig | None, catalog: Catalog, record_property: Record) -> None:
    """A cancel is answered within deadline_ms with the task's result: CANCELLED for a task stopped or unknown,
    the result it reached for an ended one; a cancel from another requester is ignored."""
    rig = _applies(matched, record_property)
    if rig is None:
        return
    from hardpoint_runtime.conformance._tasking import STRANGER, task_problems

    ids = [rig.new_id("cancel-unknown")]
    rig.cancel(ids[0])
    for parameters in catalog.accepted[:3]:
        at_once, foreign = rig.new_id("cancel-now"), rig.new_id("cancel-foreign")
        ids += [at_once, foreign]
        rig.request(at_once, parameters)
        rig.cancel(at_once)
        rig.request(foreign, parameters)
        rig.cancel(foreign, requester=STRANGER)
    rig.settle(ids)
    for task_id in ids[1::2]:  # the tasks cancelled at once have ended: cancel them again
        rig.cancel(task_id, reason="again, after the end")
    rig.settle(ids)
    if not catalog.accepted:
        record_property("note", "no task kind was accepted: only the cancel of an unknown task was exercised")
    _watch(rig, ids, record_property)
    judged(record_property, len(ids), "tasks cancelled")
    _fail_on(task_problems(rig.sub_log(ids)), rig, CF_CANCEL, "cancels")


@pytest.mark.hardpoint(CF_STATEFUL, "IF-TASKING-REQUEST-SEM", "IF-TASKING-CANCEL-SEM", "IF-TASKING-RESULT-SEM")
def test_request_cancel_sequences(
    matched: TaskRig | None, catalog: Catalog, request: pytest.FixtureRequest, record_property: Record
) -> None:
    """A Hypothesis state machine: requests (new, repeated, id reused with other content, with expired, near and
    far deadlines), cancels (own, foreign, of unknown and of ended tasks) and pauses, in any order; after each run
    every invariant of the tasking contract holds (:func:`~._tasking.task_problems`)."""
    rig = _applies(matched, record_property)
    if rig is None:
        return
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    from hardpoint_runtime.conformance._tasking import task_problems

    every_id: list[str] = []
    machine = _machine(rig, [*catalog.accepted, *catalog.rejected[:4]], task_problems, every_id)
    runs = max(1, min(RUNS, max_examples(request.config)))
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=runs,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: each run costs seconds of bus time
                suppress_health_check=list(HealthCheck),
            ),
        )
    except AssertionError as e:
        pytest.fail(f"{CF_STATEFUL} module {rig.name!r}, {e}\n{rig.host.log_tail(10)}", pytrace=False)
    record_property("runs", f"{runs} run(s) of up to {STEPS} steps")
    # Every run's tasks, once more after the duplicate window (CF-TASK-005).
    _watch(rig, every_id, record_property)
    judged(record_property, len(every_id), "tasks of the sequences")
    _fail_on(task_problems(rig.sub_log(every_id)), rig, CF_STATEFUL, f"after {runs} sequence(s), watched")


def _machine(
    rig: TaskRig, parameters: list[Message], judge: Callable[..., list[str]], every_id: list[str]
) -> type[Any]:
    """The state machine class for ``rig``, drawing request parameters from ``parameters`` (and an unknown type).

    Every task id a run uses is appended to ``every_id`` as well."""
    from hypothesis import strategies as st
    from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule

    from hardpoint.tasking.v1 import tasking_pb2
    from hardpoint_runtime.conformance._tasking import STRANGER

    choices = [*parameters, rig.unknown_parameters()]
    deadlines = st.sampled_from(["none", "expired", "near", "far"])
    priorities = st.sampled_from(list(tasking_pb2.TaskPriority.values()))
    correlations = st.sampled_from(["", "op-a", "op-b"])

    def deadline_ns(kind: str) -> int:
        now = time.time_ns()
        return {"none": 0, "expired": now - 2_000_000_000, "near": now + 300_000_000, "far": now + 60_000_000_000}[kind]

    class TaskMachine(RuleBasedStateMachine):
        tasks = Bundle("tasks")

        def __init__(self) -> None:
            super().__init__()
            self.ids: list[str] = []
            self.sent: dict[str, dict[str, Any]] = {}

        @rule(target=tasks, choice=st.integers(0, len(choices) - 1), deadline=deadlines, priority=priorities,
              correlation=correlations)  # fmt: skip
        def request(self, choice: int, deadline: str, priority: int, correlation: str) -> str:
            task_id = rig.new_id("sm")
            args: dict[str, Any] = {
                "parameters": choices[choice],
                "correlation_id": correlation,
                "priority": priority,
                "deadline_time_ns": deadline_ns(deadline),
            }
            self.sent[task_id] = args
            self.ids.append(task_id)
            rig.request(task_id, **args)
            return task_id

        @rule(task_id=tasks)
        def repeat(self, task_id: str) -> None:
            rig.request(task_id, **self.sent[task_id])

        @rule(task_id=tasks, choice=st.integers(0, len(choices) - 1))
        def reuse_id(self, task_id: str, choice: int) -> None:
            args: dict[str, Any] = {**self.sent[task_id], "parameters": choices[choice], "correlation_id": "other"}
            rig.request(task_id, **args)

        @rule(task_id=tasks)
        def cancel(self, task_id: str) -> None:
            rig.cancel(task_id)

        @rule(task_id=tasks)
        def foreign_cancel(self, task_id: str) -> None:
            rig.cancel(task_id, requester=STRANGER)

        @rule()
        def cancel_unknown(self) -> None:
            task_id = rig.new_id("sm-unknown")
            self.ids.append(task_id)
            rig.cancel(task_id)

        @rule(seconds=st.sampled_from([0.05, 0.25]))
        def pause(self, seconds: float) -> None:
            time.sleep(seconds)

        def teardown(self) -> None:
            every_id.extend(self.ids)
            if not self.ids:
                return
            rig.settle(self.ids)
            problems = judge(rig.sub_log(self.ids))
            if problems:
                shown = "\n".join(f"  {p}" for p in problems[:SHOWN])
                raise AssertionError(f"after a sequence of {len(self.ids)} task(s):\n{shown}")

    return TaskMachine
