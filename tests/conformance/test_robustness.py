"""Unit tests of the judging logic of the robustness and task checks (pure functions, hand-made inputs).

The checks themselves run against real modules in ``test_reference_modules.py`` (every reference
module passes) and ``test_broken_variants.py`` (``broken_boundary`` and ``broken_unanswered`` fail
with the right check and requirement).
"""

from __future__ import annotations

import pytest

import hardpoint
from hardpoint._bus import MAX_BATCH
from hardpoint.alert.v1 import alert_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint_runtime.conformance._robustness import Sent, accounting_problems, expected_refusals, input_interfaces
from hardpoint_runtime.conformance._tasking import (
    ACCEPTED,
    ACK,
    ALLOWANCE_S,
    CANCEL,
    CANCELLED,
    PROGRESS,
    REJECTED,
    REQUEST,
    REQUESTER,
    RESULT,
    STRANGER,
    WATCH_DEADLINES,
    TaskLog,
    handles_tasks,
    task_problems,
)

# -- receive accounting -----------------------------------------------------------------------------------------


def _refusals(**kw: object) -> dict[str, int]:
    base = {"interface_ok": True, "schema_ok": True, "count": 1, "decodes": True, "replay": False}
    sent = expected_refusals(**{**base, **kw})  # type: ignore[arg-type]
    return {k: v for k, v in {**sent.refused, "good": sent.good}.items() if v}


def test_receive_order_decides_the_counter() -> None:
    assert _refusals() == {"good": 1}
    assert _refusals(count=3) == {"good": 3}
    # Interface first, then schema: counted as the count when it is a possible batch, else 1 (SDK-BUS-ID-007).
    assert _refusals(interface_ok=False, schema_ok=False, count=0, decodes=False) == {"wrong_interface": 1}
    assert _refusals(schema_ok=False, count=4, replay=True) == {"schema_mismatch": 4}
    assert _refusals(interface_ok=False, count=2**32) == {"wrong_interface": 1}
    # A count out of range is one malformed sample, before the sequence is looked at.
    assert _refusals(count=0, replay=True) == {"undecodable": 1}
    assert _refusals(count=MAX_BATCH + 1) == {"undecodable": 1}
    # A replay is a duplicate before its payload is decoded; then the payload decides.
    assert _refusals(replay=True, decodes=False, count=2) == {"duplicates": 2}
    assert _refusals(decodes=False, count=3) == {"undecodable": 3}


def _sent(good: int = 0, **refused: int) -> Sent:
    sent = Sent(good=good)
    sent.refused.update(refused)
    return sent


def test_exact_accounting_on_a_reliable_interface() -> None:
    sent = _sent(good=5, undecodable=3, schema_mismatch=2)
    ok = {"delivered": 5, "undecodable": 3, "schema_mismatch": 2}
    assert accounting_problems(sent, ok, reliable=True) == []
    # A keep-last state reader may replace a sample; the sequence gap shows it as lost.
    assert accounting_problems(sent, {**ok, "delivered": 4, "lost": 1}, reliable=True) == []
    # Module code that raised still received the message (counted by CF-ROB-001, not here).
    assert accounting_problems(sent, {**ok, "delivered": 4, "callback_errors": 1}, reliable=True) == []
    missing = accounting_problems(sent, {**ok, "undecodable": 2}, reliable=True)
    assert missing == ["undecodable: sent 3 such sample(s), the counter rose by 2"]
    extra = accounting_problems(sent, {**ok, "duplicates": 1}, reliable=True)
    assert extra == ["duplicates: sent 0 such sample(s), the counter rose by 1"]
    lost = accounting_problems(sent, {**ok, "delivered": 3}, reliable=True)
    assert lost
    assert "sent 5 good message(s), the counters rose by 3" in lost[0]


def test_best_effort_accounting_allows_drops_but_not_inventions() -> None:
    sent = _sent(good=5, undecodable=3)
    assert accounting_problems(sent, {"delivered": 2, "undecodable": 1}, reliable=False) == []
    assert accounting_problems(sent, {"delivered": 6, "undecodable": 3}, reliable=False)
    assert accounting_problems(sent, {"delivered": 5, "undecodable": 4}, reliable=False)


def test_input_interfaces_are_requires_and_uses_without_wildcards_or_unknowns() -> None:
    manifest = hardpoint.Manifest(
        name="m",
        version="1.0",
        supplier="s",
        requires=("hardpoint.track.v1.FusedTrack", "hardpoint.nav.v9.NavState"),
        uses=("*", "hardpoint.alert.v1.AlertAck", "hardpoint.track.v1.FusedTrack"),
    )
    known = hardpoint.all_interfaces()
    assert input_interfaces(manifest, known) == ["hardpoint.track.v1.FusedTrack", "hardpoint.alert.v1.AlertAck"]


# -- task judging ----------------------------------------------------------------------------------------------

MODULE = "target"
S = 1_000_000_000  # ns


class Log:
    """A hand-made task log: times in seconds from 0."""

    def __init__(self) -> None:
        self.log = TaskLog(MODULE, request_deadline_s=1.0, cancel_deadline_s=1.0)

    def request(self, t: float, task_id: str = "t1", correlation: str = "c", deadline_s: float = 0.0) -> Log:
        msg = tasking_pb2.TaskRequest(
            task_id=task_id,
            correlation_id=correlation,
            requester=REQUESTER,
            target=MODULE,
            deadline_time_ns=int(deadline_s * S),
        )
        self.log.add(REQUEST, msg, int(t * S))
        return self

    def cancel(self, t: float, task_id: str = "t1", requester: str = REQUESTER) -> Log:
        msg = tasking_pb2.TaskCancel(task_id=task_id, requester=requester, target=MODULE)
        self.log.add(CANCEL, msg, int(t * S))
        return self

    def ack(self, t: float, status: int = ACCEPTED, task_id: str = "t1", correlation: str = "c", **kw: str) -> Log:
        msg = tasking_pb2.TaskAck(
            task_id=task_id,
            correlation_id=correlation,
            requester=kw.get("requester", REQUESTER),
            responder=kw.get("responder", MODULE),
            status=status,  # type: ignore[arg-type]
        )
        self.log.add(ACK, msg, int(t * S))
        return self

    def result(self, t: float, status: int = 1, task_id: str = "t1", correlation: str = "c", **kw: str) -> Log:
        msg = tasking_pb2.TaskResult(
            task_id=task_id,
            correlation_id=correlation,
            requester=kw.get("requester", REQUESTER),
            responder=MODULE,
            status=status,  # type: ignore[arg-type]
        )
        self.log.add(RESULT, msg, int(t * S))
        return self

    def progress(self, t: float, task_id: str = "t1") -> Log:
        msg = tasking_pb2.TaskProgress(task_id=task_id, correlation_id="c", requester=REQUESTER, responder=MODULE)
        self.log.add(PROGRESS, msg, int(t * S))
        return self

    def problems(self) -> list[str]:
        return task_problems(self.log)


def test_a_good_task_has_no_problems() -> None:
    assert Log().request(0).ack(0.1).progress(0.2).result(0.3).problems() == []
    assert Log().request(0).ack(0.1, REJECTED).problems() == []
    # Repeated request: answered again, the result repeated, never run twice.
    assert Log().request(0).ack(0.1).result(0.2).request(1).ack(1.1).result(1.1).problems() == []


def test_missing_and_late_acks() -> None:
    (missing,) = Log().request(0).problems()
    assert "no TaskAck within 1 s" in missing
    assert "none came" in missing
    assert "IF-TASKING-REQUEST-DEADLINE" in missing
    due = 1.0 + ALLOWANCE_S
    (late,) = Log().request(0).ack(due + 0.2, REJECTED).problems()
    assert f"the first came {due + 0.2:.2f} s after it" in late
    # Within the allowance: on time.
    assert Log().request(0).ack(due - 0.1, REJECTED).problems() == []
    # An incomplete log does not count missing answers yet.
    assert task_problems(Log().request(0).log, final=False) == []


def test_one_ack_per_request_and_one_status() -> None:
    (extra,) = Log().request(0).ack(0.1, REJECTED).ack(0.2, REJECTED).problems()
    assert "2 TaskAcks for 1 request(s)" in extra
    problems = Log().request(0).ack(0.1, REJECTED).request(0.5).ack(0.6, ACCEPTED).result(0.7).problems()
    assert any("different statuses" in p for p in problems)


def test_answers_copy_the_request() -> None:
    problems = Log().request(0).ack(0.1, correlation="x").result(0.2, responder="other").problems()
    assert any("TaskAck does not copy the request: correlation_id 'x'" in p for p in problems)
    assert any("IF-TASKING-ACK-SEM" in p for p in problems)


def test_accepted_tasks_end_once_and_rejected_ones_never() -> None:
    (unended,) = Log().request(0).ack(0.1).problems()
    assert "no TaskResult ever came" in unended
    (rejected,) = Log().request(0).ack(0.1, REJECTED).result(0.2, 2).problems()
    assert "TaskResult(s) for a rejected task" in rejected
    problems = Log().request(0).ack(0.1).result(0.2, 1).result(0.3, 2).problems()
    assert any("different statuses [1, 2]" in p for p in problems)
    assert any("2 TaskResults for 1 request(s) and 0 cancel(s)" in p for p in problems)


def test_cancels() -> None:
    # Cancel of a pending task: CANCELLED within the deadline; of an ended one: the same result again.
    assert Log().request(0).ack(0.1).cancel(0.2).result(0.3, CANCELLED).problems() == []
    assert Log().request(0).ack(0.1).result(0.2, 1).cancel(0.5).result(0.6, 1).problems() == []
    (unanswered,) = Log().request(0).ack(0.1).result(0.2).cancel(0.5).problems()
    assert f"no TaskResult within 1 s (+{ALLOWANCE_S:g} s allowance) of a cancel" in unanswered
    (wrong,) = Log().cancel(0, "u").result(0.1, 1, "u", correlation="").problems()
    assert "a cancel of an unknown task was answered with status 1, not CANCELLED" in wrong
    assert Log().cancel(0, "u").result(0.1, CANCELLED, "u", correlation="").problems() == []
    # A cancel of a rejected task needs no result; the ack may be repeated.
    assert Log().request(0).ack(0.1, REJECTED).cancel(0.5).ack(0.6, REJECTED).problems() == []


def test_a_foreign_cancel_is_ignored_unless_it_overtook_the_request() -> None:
    late_foreign = Log().request(0).ack(0.1).cancel(0.2, requester=STRANGER).result(0.3).result(0.4)
    assert any("2 TaskResults" in p for p in late_foreign.problems())
    # Sent before any answer: the module may have seen it first, for a task it did not know.
    raced = (
        Log()
        .request(0)
        .cancel(0.0, requester=STRANGER)
        .result(0.05, CANCELLED, correlation="", requester=STRANGER)
        .ack(0.1, correlation="", requester=STRANGER)
        .result(0.1, CANCELLED, correlation="", requester=STRANGER)
    )
    assert raced.problems() == []


def test_deadlines_and_progress() -> None:
    # Due within the request deadline (1 s) plus the allowance after deadline_time_ns.
    late_by = 1.0 + ALLOWANCE_S + 0.3
    (late,) = Log().request(10, deadline_s=11).ack(10.1).result(11 + late_by, 4).problems()
    assert f"{late_by:.2f} s after the request's deadline_time_ns" in late
    assert Log().request(10, deadline_s=11).ack(10.1).result(11.2, 4).problems() == []
    # Already expired on arrival: the answer is due at once.
    assert Log().request(10, deadline_s=5).ack(10.1).result(10.2, 4).problems() == []
    (after,) = Log().request(0).ack(0.1).result(0.2).progress(0.3).problems()
    assert "1 TaskProgress after the TaskResult" in after
    (unaccepted,) = Log().request(0).ack(0.1, REJECTED).progress(0.2).problems()
    assert "TaskProgress for a task that was not accepted" in unaccepted


@pytest.mark.parametrize(
    ("provides", "uses", "expected"),
    [
        (("hardpoint.tasking.v1.TaskAck",), ("hardpoint.tasking.v1.TaskRequest",), True),
        ((), ("hardpoint.tasking.v1.TaskRequest",), False),
        (("hardpoint.tasking.v1.TaskAck",), (), False),
    ],
)
def test_task_handling_is_read_from_the_manifest(
    provides: tuple[str, ...], uses: tuple[str, ...], expected: bool
) -> None:
    manifest = hardpoint.Manifest(name="m", version="1.0", supplier="s", provides=provides, uses=uses)
    assert handles_tasks(manifest) is expected


def test_alert_zone_is_an_interface_the_task_catalog_can_pack() -> None:
    """The catalog asks with every interface type: geofence's Zone among them."""
    assert alert_pb2.Zone.DESCRIPTOR.full_name in hardpoint.all_interfaces()


# -- exactly one result per task, judged directly (CF-TASK-005) ----------------------------------------------


def test_the_duplicate_watch_is_derived_from_the_answer_deadlines() -> None:
    log = TaskLog(MODULE, request_deadline_s=1.0, cancel_deadline_s=1.0)
    assert log.watch_s == WATCH_DEADLINES * 1.0 + ALLOWANCE_S == 11.0
    assert TaskLog(MODULE, request_deadline_s=0.5, cancel_deadline_s=2.0).watch_s == WATCH_DEADLINES * 2.0 + ALLOWANCE_S


@pytest.mark.parametrize("delay_s", [0.5, 1.5, 5.0, 8.0, 10.5])
def test_a_result_sent_again_unasked_is_a_duplicate_whenever_it_comes(delay_s: float) -> None:
    """One request, one result, the same result again ``delay_s`` later: a duplicate, named with its delay."""
    problems = Log().request(0).ack(0.1).result(0.2).result(0.2 + delay_s).problems()
    duplicates = [p for p in problems if "duplicate TaskResult" in p]
    assert len(duplicates) == 1, problems
    assert f"{delay_s:.2f} s after the first, answering no request or cancel" in duplicates[0]
    assert "CF-TASK-005" in duplicates[0]
    assert duplicates[0].startswith("task 't1': ")


def test_results_asked_for_are_no_duplicates() -> None:
    # Again in answer to a repeated request and to a cancel, each within its deadline and allowance.
    asked = Log().request(0).ack(0.1).result(0.2).request(5).ack(5.1).result(5.2).cancel(9).result(9.5)
    assert asked.problems() == []
    # The outcome of a task that ran longer than the answer deadlines answers nothing: it is the outcome.
    assert Log().request(0).ack(0.1).result(7.0).problems() == []
    # But one answer per request: the second result within the first request's window is a duplicate.
    (duplicate,) = [p for p in Log().request(0).ack(0.1).result(0.2).result(0.4).problems() if "duplicate" in p]
    assert "0.20 s after the first" in duplicate
    # An answer after its request's deadline and allowance is no answer to it.
    late = Log().request(0).ack(0.1).result(0.2).request(5).ack(5.1).result(5 + 1.0 + ALLOWANCE_S + 0.5)
    assert any("duplicate TaskResult" in p for p in late.problems())


def test_the_answer_to_a_cancel_sent_again_is_a_duplicate() -> None:
    problems = Log().request(0).ack(0.1).cancel(0.2).result(0.3, CANCELLED).result(8.3, CANCELLED).problems()
    assert any("duplicate TaskResult (status 3) 8.00 s after the first" in p for p in problems), problems
