"""The update RPCs of the management API: the real gRPC server on a Unix socket over a fake platform control."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from fakes import FakeUpdateControl, management_server, wait_until

from hardpoint.management.v1 import management_pb2 as pb
from hardpoint.management.v1 import management_pb2_grpc as pb_grpc
from hardpoint_runtime._control import UpdateOffer, UpdateProgress, UpdateRecord
from hardpoint_runtime._management import (
    DEFAULT_HISTORY_LIMIT,
    ManagementClient,
    ManagementError,
    ManagementServer,
    offer_from_pb,
    offer_to_pb,
    progress_from_pb,
    progress_to_pb,
    record_from_pb,
    record_to_pb,
)
from hardpoint_runtime.update import MetadataExpiredError

STEPS = ("requested", "downloaded", "installed", "staged", "gate_passed", "switched", "probation_passed",
         "committed", "rolled_back", "refused")  # fmt: skip
OUTCOMES = ("in_progress", "committed", "rolled_back", "refused", "interrupted")


def record(id: int = 1, module: str = "nav-gnss", **changes: object) -> UpdateRecord:
    base = UpdateRecord(
        id=id,
        module=module,
        from_version="1.2.0",
        to_version="1.3.0",
        step="committed",
        outcome="committed",
        cause="",
        role="",
        reason="",
        started_ns=1_000,
        finished_ns=2_000,
        switch_gap_ms=12.5,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def control() -> FakeUpdateControl:
    """The sample platform with ``nav-gnss`` 1.3.0 on offer and a committed update scripted."""
    return FakeUpdateControl(
        offers=[
            UpdateOffer("tracker", "0.9.1", "0.9.1", "globex", "globex/tracker/t-0.9.1.whl", 10, "current"),
            UpdateOffer("nav-gnss", "1.2.0", "1.3.0", "acme", "acme/nav-gnss/n-1.3.0.whl", 4096, "available"),
        ],
        script=[
            UpdateProgress("nav-gnss", "requested", 0, 0),
            UpdateProgress("nav-gnss", "downloaded", 2048, 4096),
            UpdateProgress("nav-gnss", "downloaded", 4096, 4096),
            UpdateProgress("nav-gnss", "staged", 1, 5, "waiting for the gate"),
            UpdateProgress("nav-gnss", "committed", 0, 0),
        ],
        apply_result=record(),
        history=[record(3, outcome="refused", step="refused", cause="X"), record(2), record(1)],
        status=[record(9, outcome="in_progress", step="staged", finished_ns=0)],
        rollback_result=record(4, step="committed", cause="operator"),
    )


@pytest.fixture
def server(control: FakeUpdateControl, tmp_path: Path) -> Iterator[ManagementServer]:
    with management_server(control, tmp_path) as srv:
        yield srv


@pytest.fixture
def client(server: ManagementServer) -> Iterator[ManagementClient]:
    with ManagementClient(server.unix_target) as c:
        yield c


# --------------------------------------------------------------------------- conversions


@pytest.mark.parametrize("step", STEPS)
def test_every_step_survives_the_round_trip(step: str) -> None:
    """UPD-API-001."""
    report = UpdateProgress("m", step, 5, 10, "msg")
    assert progress_to_pb(report).step != pb.UPDATE_STEP_UNSPECIFIED
    assert progress_from_pb(progress_to_pb(report)) == report
    assert record_from_pb(record_to_pb(record(step=step))).step == step


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_outcome_survives_the_round_trip(outcome: str) -> None:
    """UPD-API-001."""
    r = record(outcome=outcome, cause="never_healthy", role="acme", reason="why")
    assert record_to_pb(r).outcome != pb.UPDATE_OUTCOME_UNSPECIFIED
    assert record_from_pb(record_to_pb(r)) == r


@pytest.mark.parametrize("status", ["available", "current", "refused"])
def test_every_offer_status_survives_the_round_trip(status: str) -> None:
    """UPD-API-001."""
    offer = UpdateOffer("m", "1.0", "1.1", "acme", "acme/m/m-1.1.whl", 99, status, "reason")
    assert offer_from_pb(offer_to_pb(offer)) == offer


def test_an_unknown_step_travels_as_unspecified_and_comes_back_as_unknown() -> None:
    """UPD-API-001."""
    wire = progress_to_pb(UpdateProgress("m", "levitating", 1, 2))
    assert wire.step == pb.UPDATE_STEP_UNSPECIFIED
    assert progress_from_pb(wire).step == "unknown"


# --------------------------------------------------------------------------- calls


def test_check_lists_offers_sorted_by_module(client: ManagementClient) -> None:
    """UPD-API-005."""
    offers = client.check_updates()
    assert [o.module for o in offers] == ["nav-gnss", "tracker"]
    assert offers[0] == UpdateOffer("nav-gnss", "1.2.0", "1.3.0", "acme", "acme/nav-gnss/n-1.3.0.whl", 4096,
                                    "available")  # fmt: skip


def test_an_untrusted_repository_is_failed_precondition_naming_cause_and_role(
    client: ManagementClient, control: FakeUpdateControl, server: ManagementServer
) -> None:
    """UPD-API-004."""
    control.offers = MetadataExpiredError("timestamp expired at 2020-01-01", role="timestamp")
    with pytest.raises(ManagementError) as caught:
        client.check_updates()
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "metadata expired" in str(caught.value)
    assert "role 'timestamp'" in str(caught.value)
    # machines get the cause and the role without parsing text
    with grpc.insecure_channel(server.unix_target) as channel, pytest.raises(grpc.RpcError) as raw:
        pb_grpc.ManagementServiceStub(channel).CheckUpdates(pb.CheckUpdatesRequest(), timeout=10)
    trailing = dict(raw.value.trailing_metadata())  # type: ignore[attr-defined]
    assert trailing["hardpoint-update-cause"] == "MetadataExpiredError"
    assert trailing["hardpoint-update-role"] == "timestamp"


def test_apply_streams_every_progress_report_in_order_then_the_record(
    client: ManagementClient, control: FakeUpdateControl
) -> None:
    """UPD-API-002."""
    seen: list[UpdateProgress] = []
    result = client.apply_update("nav-gnss", "1.3.0", progress=seen.append)
    assert result == record()
    assert seen == control.script
    assert control.applied == [("nav-gnss", "1.3.0")]


def test_apply_without_a_version_asks_for_the_newest(client: ManagementClient, control: FakeUpdateControl) -> None:
    """UPD-API-002."""
    client.apply_update("nav-gnss")
    assert control.applied == [("nav-gnss", None)]


def test_a_refused_update_is_a_record_not_an_error(client: ManagementClient, control: FakeUpdateControl) -> None:
    """UPD-API-002."""
    refused = record(outcome="refused", step="refused", cause="IntegrityError", role="acme",
                     reason="hash or length mismatch: target 'acme/nav-gnss/n-1.3.0.whl', role 'acme'")  # fmt: skip
    control.apply_result = refused
    assert client.apply_update("nav-gnss") == refused


def test_apply_of_an_unknown_module_is_not_found(client: ManagementClient) -> None:
    """UPD-API-004."""
    with pytest.raises(ManagementError) as caught:
        client.apply_update("ghost")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert "ghost" in str(caught.value)


def test_apply_refused_by_the_control_is_failed_precondition(
    client: ManagementClient, control: FakeUpdateControl
) -> None:
    """UPD-API-004."""
    control.apply_result = ValueError("an update of 'nav-gnss' is already in progress (journal #7)")
    with pytest.raises(ManagementError) as caught:
        client.apply_update("nav-gnss")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "already in progress" in str(caught.value)


@pytest.mark.parametrize(("module", "version", "needle"), [("", "", "module name"), ("nav-gnss", "1.x!", "PEP 440")])
def test_apply_with_a_bad_request_is_invalid_argument(
    client: ManagementClient, control: FakeUpdateControl, module: str, version: str, needle: str
) -> None:
    """UPD-API-004."""
    with pytest.raises(ManagementError) as caught:
        client.apply_update(module, version)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in str(caught.value)
    assert control.applied == []


def test_a_client_leaving_mid_update_does_not_stop_the_update(
    server: ManagementServer, control: FakeUpdateControl
) -> None:
    """UPD-API-003."""
    control.hold = threading.Event()
    with grpc.insecure_channel(server.unix_target) as channel:
        call = pb_grpc.ManagementServiceStub(channel).ApplyUpdate(pb.ApplyUpdateRequest(module="nav-gnss"))
        first = next(call)
        assert first.progress.step == pb.UPDATE_STEP_REQUESTED
        call.cancel()
    assert not control.finished.is_set()
    control.hold.set()
    wait_until(control.finished.is_set, "the update to finish after its client left")


def test_status_history_and_rollback(client: ManagementClient, control: FakeUpdateControl) -> None:
    """UPD-API-005."""
    (running,) = client.update_status()
    assert (running.outcome, running.step, running.finished_ns) == ("in_progress", "staged", 0)
    assert [r.id for r in client.update_history()] == [3, 2, 1]
    assert control.history_calls[-1] == (None, DEFAULT_HISTORY_LIMIT)
    assert [r.id for r in client.update_history("nav-gnss", limit=2)] == [3, 2]
    assert control.history_calls[-1] == ("nav-gnss", 2)
    assert client.rollback_update("nav-gnss").cause == "operator"


def test_rollback_errors_map_onto_status_codes(client: ManagementClient, control: FakeUpdateControl) -> None:
    """UPD-API-004."""
    with pytest.raises(ManagementError) as unknown:
        client.rollback_update("ghost")
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND
    control.rollback_result = ValueError("nav-gnss has no earlier version installed to return to")
    with pytest.raises(ManagementError) as nothing:
        client.rollback_update("nav-gnss")
    assert nothing.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "no earlier version" in str(nothing.value)
