"""The machinery of the task checks: send task requests and cancels, record every answer, judge the log.

:class:`TaskLog` is a time-ordered record of what the probe sent (requests, cancels) and what the
module under test published (acks, progress, results). :func:`task_problems` judges a log
against the tasking contract (``proto/hardpoint/tasking/v1/tasking.proto``); it is pure, so the
unit tests drive it with hand-made logs. :class:`TaskRig` hosts the module and fills the log.

Timing is judged with an allowance for scheduling on a loaded machine: an answer due within
``deadline_ms`` of a contract may arrive up to :data:`ALLOWANCE_S` later than that.

Exactly one result per task is judged directly (CF-TASK-005): every ``TaskResult`` after a task's
first must answer a request or a cancel of that task (sent before it, within that contract's
``deadline_ms`` plus the allowance), one result per request or cancel; any other is a duplicate. The
checks watch every accepted task for :attr:`TaskLog.watch_s` after its first result
(:data:`WATCH_DEADLINES` answer deadlines plus the allowance: 11 s with today's contracts), so a
duplicate sent unasked at any time within that window is seen (:meth:`TaskRig.watch`).
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from hardpoint_runtime.conformance._harness import HostedModule, wait_until

if TYPE_CHECKING:
    from google.protobuf.message import Message

    import hardpoint

__all__ = [
    "ALLOWANCE_S",
    "REQUESTER",
    "Event",
    "TaskLog",
    "TaskRig",
    "handles_tasks",
    "task_problems",
]

#: Scheduling allowance on every deadline (seconds): arrival times are measured in the probe.
ALLOWANCE_S: Final = 1.0
#: Requester name the probe puts in its requests and cancels.
REQUESTER: Final = "conformance-probe"
#: Another requester, whose cancels the target must ignore.
STRANGER: Final = "conformance-stranger"
#: How long an accepted task without a deadline may run before the check cancels it (seconds).
RESULT_WAIT_S: Final = 3.0
#: Answer deadlines (the longer of TaskRequest's and TaskCancel's ``deadline_ms``) an accepted task is watched
#: for after its first TaskResult, for a duplicate (CF-TASK-005); the allowance is added once.
WATCH_DEADLINES: Final = 10

Kind = Literal["request", "cancel", "ack", "progress", "result"]
REQUEST: Final[Kind] = "request"
CANCEL: Final[Kind] = "cancel"
ACK: Final[Kind] = "ack"
PROGRESS: Final[Kind] = "progress"
RESULT: Final[Kind] = "result"

# TaskAckStatus and TaskStatus numbers (tasking.proto).
ACCEPTED, REJECTED = 1, 2
CANCELLED, EXPIRED = 3, 4


def handles_tasks(manifest: hardpoint.Manifest) -> bool:
    """A module handles tasks when it reads ``TaskRequest`` and provides ``TaskAck``."""
    reads = {*manifest.requires, *manifest.uses}
    return "hardpoint.tasking.v1.TaskRequest" in reads and "hardpoint.tasking.v1.TaskAck" in manifest.provides


@dataclass(frozen=True, slots=True)
class Event:
    """One sample sent or received, with its wall-clock time (ns) at the probe."""

    kind: Kind
    task_id: str
    at_ns: int
    message: Any

    @property
    def status(self) -> int:
        return int(self.message.status)


@dataclass(slots=True)
class TaskLog:
    """Everything sent to and received from the module about tasks, in order."""

    module: str
    request_deadline_s: float = 1.0
    cancel_deadline_s: float = 1.0
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def watch_s(self) -> float:
        """How long an accepted task is watched after its first result for a duplicate (CF-TASK-005)."""
        return WATCH_DEADLINES * max(self.request_deadline_s, self.cancel_deadline_s) + ALLOWANCE_S

    def add(self, kind: Kind, message: Any, at_ns: int | None = None) -> None:
        with self._lock:
            self.events.append(Event(kind, message.task_id, time.time_ns() if at_ns is None else at_ns, message))

    def snapshot(self, task_ids: Iterable[str] | None = None) -> list[Event]:
        with self._lock:
            events = list(self.events)
        if task_ids is None:
            return events
        wanted = set(task_ids)
        return [e for e in events if e.task_id in wanted]

    def of(self, task_id: str, kind: Kind) -> list[Event]:
        return [e for e in self.snapshot([task_id]) if e.kind == kind]


# -- the judge (pure) -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Task:
    requests: list[Event] = field(default_factory=list)
    cancels: list[Event] = field(default_factory=list)
    foreign_cancels: list[Event] = field(default_factory=list)
    acks: list[Event] = field(default_factory=list)
    progress: list[Event] = field(default_factory=list)
    results: list[Event] = field(default_factory=list)
    #: The request or cancel that introduced the task (what answers must copy).
    first: Event | None = None

    def raced(self) -> list[Event]:
        """Cancels (own or foreign) sent before the first answer came: requests and cancels travel on
        different topics, so the module may have seen such a cancel first, for a task it did not know."""
        first_answer = min((e.at_ns for e in (*self.acks, *self.results)), default=None)
        return [c for c in (*self.cancels, *self.foreign_cancels) if first_answer is None or c.at_ns < first_answer]

    def origins(self) -> list[Event]:
        """What an answer may copy: the first request, or a cancel that may have overtaken it."""
        firsts = self.requests[:1] + self.raced()
        return firsts or ([self.first] if self.first is not None else [])


def _by_task(events: Sequence[Event]) -> dict[str, _Task]:
    tasks: dict[str, _Task] = defaultdict(_Task)
    for e in events:
        t = tasks[e.task_id]
        if e.kind == REQUEST:
            t.requests.append(e)
        elif e.kind == CANCEL:
            (t.cancels if e.message.requester == REQUESTER else t.foreign_cancels).append(e)
        elif e.kind == ACK:
            t.acks.append(e)
        elif e.kind == PROGRESS:
            t.progress.append(e)
        else:
            t.results.append(e)
        if t.first is None and e.kind in (REQUEST, CANCEL):
            t.first = e
    return tasks


def _s(ns: int) -> float:
    return ns / 1e9


def task_problems(log: TaskLog, *, final: bool = True) -> list[str]:
    """Every way the module's answers in ``log`` break the tasking contract; empty when none.

    With ``final`` the log is complete (every answer had time to arrive), so missing answers count.
    """
    problems: list[str] = []
    for task_id, t in _by_task(log.snapshot()).items():
        problems += [f"task {task_id!r}: {p}" for p in _one_task(log, t, final=final)]
    return problems


def _one_task(log: TaskLog, t: _Task, *, final: bool) -> list[str]:
    problems = _acks_answer_requests(log, t, final=final)
    problems += _answers_copy_the_request(log, t)
    problems += _results(log, t, final=final)
    problems += _progress(t)
    return problems


def _acks_answer_requests(log: TaskLog, t: _Task, *, final: bool) -> list[str]:
    """IF-TASKING-REQUEST-DEADLINE, IF-TASKING-ACK-SEM: one ack per request, within the deadline, one status."""
    problems: list[str] = []
    window_ns = int((log.request_deadline_s + ALLOWANCE_S) * 1e9)
    unused = sorted(t.acks, key=lambda e: e.at_ns)
    for request in t.requests:
        match = next((a for a in unused if request.at_ns <= a.at_ns <= request.at_ns + window_ns), None)
        if match is not None:
            unused.remove(match)
        elif final:
            late = [a for a in unused if a.at_ns > request.at_ns + window_ns]
            why = f"the first came {_s(late[0].at_ns - request.at_ns):.2f} s after it" if late else "none came"
            problems.append(
                f"no TaskAck within {log.request_deadline_s:g} s (+{ALLOWANCE_S:g} s allowance) of the request "
                f"({why}) [IF-TASKING-REQUEST-DEADLINE]"
            )
    foreign_raced = [c for c in t.raced() if c in t.foreign_cancels]
    if len(t.acks) > len(t.requests) + len(t.cancels) + len(foreign_raced):
        problems.append(
            f"{len(t.acks)} TaskAcks for {len(t.requests)} request(s) and {len(t.cancels)} cancel(s): "
            "an ack answers a request [IF-TASKING-ACK-SEM]"
        )
    statuses = sorted({a.status for a in t.acks})
    if len(statuses) > 1:
        problems.append(f"TaskAcks with different statuses {statuses}: a repeated request is the same task")
    return problems


def _answers_copy_the_request(log: TaskLog, t: _Task) -> list[str]:
    """Acks, progress and results copy task id, correlation id and requester, and name the module as responder.

    They copy the request, or a cancel that overtook it (the module then answered a task it did not know).
    """
    origins = t.origins()
    if not origins:
        return []
    allowed = {(getattr(o.message, "correlation_id", ""), o.message.requester) for o in origins}
    request = origins[0].message
    problems: list[str] = []
    for e in (*t.acks, *t.progress, *t.results):
        m = e.message
        wrong = []
        if (m.correlation_id, m.requester) not in allowed:
            wrong.append(
                f"correlation_id {m.correlation_id!r} and requester {m.requester!r} "
                f"(request: {getattr(request, 'correlation_id', '')!r}, {request.requester!r})"
            )
        if m.responder != log.module:
            wrong.append(f"responder {m.responder!r} (module: {log.module!r})")
        if wrong:
            name = type(m).__name__
            problems.append(f"{name} does not copy the request: {', '.join(wrong)} [IF-TASKING-{_stem(name)}-SEM]")
    return problems


def _stem(message_name: str) -> str:
    return message_name.removeprefix("Task").upper()


def _results(log: TaskLog, t: _Task, *, final: bool) -> list[str]:
    """Exactly one outcome per accepted task, none for a rejected one; cancels answered; deadlines kept."""
    problems: list[str] = []
    accepted = any(a.status == ACCEPTED for a in t.acks)
    rejected = bool(t.acks) and not accepted
    statuses = sorted({r.status for r in t.results})
    if rejected and t.results:
        problems.append(f"{len(t.results)} TaskResult(s) for a rejected task [IF-TASKING-ACK-SEM]")
    if len(statuses) > 1:
        problems.append(
            f"TaskResults with different statuses {statuses}: a task ends once, later results repeat it "
            "[IF-TASKING-RESULT-SEM]"
        )
    foreign_raced = [c for c in t.raced() if c in t.foreign_cancels]
    unprompted = _unprompted_results(log, t)
    if unprompted:
        first = min(r.at_ns for r in t.results)
        problems += [
            f"duplicate TaskResult (status {r.status}) {_s(r.at_ns - first):.2f} s after the first, answering no "
            f"request or cancel: a task ends with exactly one result, repeated only when asked "
            f"[IF-TASKING-RESULT-SEM, CF-TASK-005]"
            for r in unprompted
        ]
    if len(t.results) > max(1, len(t.requests) + len(t.cancels) + len(foreign_raced)):
        problems.append(
            f"{len(t.results)} TaskResults for {len(t.requests)} request(s) and {len(t.cancels)} cancel(s): "
            "a result is repeated only in answer to a request or a cancel [IF-TASKING-RESULT-SEM]"
        )
    if final and accepted and not t.results:
        problems.append("accepted, but no TaskResult ever came (not even after a cancel) [IF-TASKING-RESULT-SEM]")
    problems += _cancel_answers(log, t, rejected=rejected, final=final)
    problems += _deadline_kept(log, t)
    return problems


def _unprompted_results(log: TaskLog, t: _Task) -> list[Event]:
    """The results of ``t`` that answer nothing (CF-TASK-005).

    Each result is matched, in time order, to the earliest unused request or cancel (own, or foreign and
    raced) sent before it whose answer deadline (plus the allowance) it is within. The first result of a
    task may answer none (the outcome of a task that ran longer than a deadline); every later one must.
    """
    window = {
        REQUEST: int((log.request_deadline_s + ALLOWANCE_S) * 1e9),
        CANCEL: int((log.cancel_deadline_s + ALLOWANCE_S) * 1e9),
    }
    foreign_raced = [c for c in t.raced() if c in t.foreign_cancels]
    prompts = sorted((*t.requests, *t.cancels, *foreign_raced), key=lambda e: e.at_ns)
    used: set[int] = set()
    extra: list[Event] = []
    for i, result in enumerate(sorted(t.results, key=lambda e: e.at_ns)):
        match = next(
            (j for j, p in enumerate(prompts) if j not in used and p.at_ns <= result.at_ns <= p.at_ns + window[p.kind]),
            None,
        )
        if match is not None:
            used.add(match)
        elif i > 0:
            extra.append(result)
    return extra


def _cancel_answers(log: TaskLog, t: _Task, *, rejected: bool, final: bool) -> list[str]:
    """IF-TASKING-CANCEL-SEM/-DEADLINE: a cancel is answered with the task's result; CANCELLED when unknown."""
    problems: list[str] = []
    if rejected:
        return problems
    window_ns = int((log.cancel_deadline_s + ALLOWANCE_S) * 1e9)
    for cancel in t.cancels:
        answered = [r for r in t.results if cancel.at_ns <= r.at_ns <= cancel.at_ns + window_ns]
        known = any(r.at_ns < cancel.at_ns for r in t.requests)
        if not answered:
            if final:
                problems.append(
                    f"no TaskResult within {log.cancel_deadline_s:g} s (+{ALLOWANCE_S:g} s allowance) of a cancel "
                    "[IF-TASKING-CANCEL-DEADLINE]"
                )
        elif not known and answered[0].status != CANCELLED:
            problems.append(
                f"a cancel of an unknown task was answered with status {answered[0].status}, not CANCELLED "
                "[IF-TASKING-CANCEL-SEM]"
            )
    return problems


def _deadline_kept(log: TaskLog, t: _Task) -> list[str]:
    """A task with a deadline ends by then (EXPIRED at the latest), within the answer allowance."""
    if not t.requests or not t.results:
        return []
    request = t.requests[0]
    deadline = int(request.message.deadline_time_ns)
    if not deadline:
        return []
    due = max(deadline, request.at_ns) + int((log.request_deadline_s + ALLOWANCE_S) * 1e9)
    first = min(r.at_ns for r in t.results)
    if first > due:
        return [
            f"the first TaskResult came {_s(first - deadline):.2f} s after the request's deadline_time_ns "
            "(EXPIRED is due then) [IF-TASKING-REQUEST-SEM]"
        ]
    return []


def _progress(t: _Task) -> list[str]:
    """IF-TASKING-PROGRESS-SEM: progress only for accepted tasks, never after the result."""
    if not t.progress:
        return []
    problems: list[str] = []
    if not any(a.status == ACCEPTED for a in t.acks):
        problems.append("TaskProgress for a task that was not accepted [IF-TASKING-PROGRESS-SEM]")
    if t.results:
        ended = min(r.at_ns for r in t.results)
        after = [p for p in t.progress if p.at_ns > ended]
        if after:
            problems.append(f"{len(after)} TaskProgress after the TaskResult [IF-TASKING-PROGRESS-SEM]")
    return problems


# -- the rig --------------------------------------------------------------------------------------------------


class TaskRig:
    """The module under test, ACTIVE, with the probe sending requests and cancels and logging every answer."""

    def __init__(self, host: HostedModule) -> None:
        from hardpoint import interface_spec
        from hardpoint.tasking.v1 import tasking_pb2

        self.host = host
        self.name = host.name
        self.pb = tasking_pb2
        self.log = TaskLog(
            host.name,
            request_deadline_s=interface_spec(tasking_pb2.TaskRequest).deadline_ms / 1000,
            cancel_deadline_s=interface_spec(tasking_pb2.TaskCancel).deadline_ms / 1000,
        )
        self._ids = itertools.count(1)
        #: Whether the module answered a first request (set by the checks once they tried).
        self.answered = False
        self._run = uuid.uuid4().hex[:8]
        probe = host.probe
        for kind, message_type in (
            (ACK, tasking_pb2.TaskAck),
            (PROGRESS, tasking_pb2.TaskProgress),
            (RESULT, tasking_pb2.TaskResult),
        ):
            if f"hardpoint.tasking.v1.{message_type.__name__}" in host.manifest.provides:
                probe.subscribe(message_type, self._recorder(kind), with_info=True)
        self._requests = probe.publisher(tasking_pb2.TaskRequest, batch=None)
        self._cancels = probe.publisher(tasking_pb2.TaskCancel, batch=None)
        host.activate()

    def _recorder(self, kind: Kind) -> Any:
        def record(message: Message, info: hardpoint.SampleInfo) -> None:
            if info.source == self.name:
                self.log.add(kind, message)

        return record

    def new_id(self, what: str = "task") -> str:
        return f"cf-{self._run}-{what}-{next(self._ids)}"

    def request(
        self,
        task_id: str,
        parameters: Message | None,
        *,
        correlation_id: str = "",
        priority: int = 0,
        deadline_time_ns: int = 0,
        target: str | None = None,
    ) -> Message:
        """Publish a TaskRequest (logged only when addressed to the module) and return it."""
        from google.protobuf.any_pb2 import Any as AnyMessage

        request = self.pb.TaskRequest(
            task_id=task_id,
            correlation_id=correlation_id,
            requester=REQUESTER,
            target=self.name if target is None else target,
            priority=priority,  # type: ignore[arg-type]
            deadline_time_ns=deadline_time_ns,
        )
        if isinstance(parameters, AnyMessage):
            request.parameters.CopyFrom(parameters)
        elif parameters is not None:
            request.parameters.Pack(parameters)
        if target is None or target == self.name:
            self.log.add(REQUEST, request)
        self._requests.publish(request)
        return request

    def cancel(self, task_id: str, *, requester: str = REQUESTER, reason: str = "conformance check") -> None:
        cancel = self.pb.TaskCancel(task_id=task_id, requester=requester, target=self.name, reason=reason)
        self.log.add(CANCEL, cancel)
        self._cancels.publish(cancel)

    def unknown_parameters(self) -> Message:
        """Parameters of a type no module knows (the target must reject them)."""
        from google.protobuf.any_pb2 import Any as AnyMessage

        return AnyMessage(type_url="type.googleapis.com/hardpoint.conformance.v1.NoSuchTask", value=b"\x08\x01")

    def wait_matched(self, timeout_s: float = 15.0) -> bool:
        """Wait until the module answers at all: requests published before its reader matched are lost."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            task_id = self.new_id("hello")
            self.request(task_id, self.unknown_parameters())
            if wait_until(functools.partial(self.log.of, task_id, ACK), 0.5):
                return True
        return False

    def acks_of(self, task_ids: Iterable[str]) -> dict[str, list[Event]]:
        return {tid: self.log.of(tid, ACK) for tid in task_ids}

    def settle(self, task_ids: Sequence[str]) -> None:
        """Wait for every answer the contract promises for ``task_ids``, cancelling tasks that run on.

        Acks come within the request deadline; accepted tasks end (by their deadline if they have one);
        those still running after :data:`RESULT_WAIT_S` are cancelled, and the cancel is answered.
        """
        ack_wait = self.log.request_deadline_s + ALLOWANCE_S
        wait_until(lambda: all(self.log.of(t, ACK) for t in task_ids), ack_wait + 0.5)
        open_tasks = [t for t in task_ids if self._accepted(t) and not self.log.of(t, RESULT)]
        if open_tasks:
            latest = max((self._deadline(t) for t in open_tasks), default=0)
            budget = RESULT_WAIT_S
            if latest:
                budget = max(budget, (latest - time.time_ns()) / 1e9 + ack_wait)
            budget = min(budget, 15.0)
            wait_until(lambda: all(self.log.of(t, RESULT) for t in open_tasks), budget)
        for t in [t for t in open_tasks if not self.log.of(t, RESULT)]:
            self.cancel(t, reason="still running at the end of the check")
        wait_until(
            lambda: all(self.log.of(t, RESULT) for t in task_ids if self._accepted(t)),
            self.log.cancel_deadline_s + ALLOWANCE_S + 0.5,
        )
        time.sleep(0.2)  # repeated answers (to repeats and cancels) that are still on their way

    def watch(self, task_ids: Sequence[str]) -> float:
        """Keep recording until every accepted task of ``task_ids`` was watched for :attr:`TaskLog.watch_s`
        after its first result, so a duplicate sent unasked within that window is in the log (CF-TASK-005).

        Returns the seconds waited.
        """
        firsts = [min(e.at_ns for e in results) for t in task_ids if (results := self.log.of(t, RESULT))]
        if not firsts:
            return 0.0
        wait_s = (max(firsts) - time.time_ns()) / 1e9 + self.log.watch_s
        if wait_s > 0:
            time.sleep(wait_s)
        return max(0.0, wait_s)

    def _accepted(self, task_id: str) -> bool:
        return any(a.status == ACCEPTED for a in self.log.of(task_id, ACK))

    def _deadline(self, task_id: str) -> int:
        requests = self.log.of(task_id, REQUEST)
        return int(requests[0].message.deadline_time_ns) if requests else 0

    def sub_log(self, task_ids: Iterable[str]) -> TaskLog:
        """A log with only the events of ``task_ids`` (to judge one check's tasks)."""
        sub = TaskLog(
            self.log.module,
            request_deadline_s=self.log.request_deadline_s,
            cancel_deadline_s=self.log.cancel_deadline_s,
        )
        sub.events = self.log.snapshot(task_ids)
        return sub

    def close(self) -> None:
        self.host.close()


def accepted_types(acks: Mapping[str, Sequence[Event]], sent: Mapping[str, Message]) -> list[Message]:
    """The parameters (as sent) of the requests the module accepted."""
    return [sent[tid] for tid, answers in acks.items() if any(a.status == ACCEPTED for a in answers)]
