"""The management API: the real gRPC server on a Unix socket (and on TLS TCP) over a fake platform control."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from fakes import FakeControl, TlsSet, make_tls, sample_modules, wait_until
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # type: ignore[import-untyped]

from hardpoint.management.v1 import management_pb2 as pb
from hardpoint.management.v1 import management_pb2_grpc as pb_grpc
from hardpoint_runtime._control import EventRecord, PlatformHealth, TopicInfo, UnmetRequirement
from hardpoint_runtime._management import (
    SERVICE_NAME,
    TRANSITIONS,
    ManagementClient,
    ManagementError,
    ManagementServer,
    TlsFiles,
    event_from_pb,
    event_to_pb,
    health_from_pb,
    health_to_pb,
    module_from_pb,
    module_to_pb,
    serve,
    topic_from_pb,
    topic_to_pb,
)


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def server(control: FakeControl, tmp_path: Path) -> Iterator[ManagementServer]:
    srv = serve(control, socket_path=tmp_path / "hardpointd.sock")
    yield srv
    srv.stop(1.0).wait()


@pytest.fixture
def client(server: ManagementServer) -> Iterator[ManagementClient]:
    with ManagementClient(server.unix_target) as c:
        yield c


# --------------------------------------------------------------------------- conversions


def test_every_value_survives_the_protobuf_round_trip() -> None:
    for m in sample_modules():
        assert module_from_pb(module_to_pb(m)) == m
    health = PlatformHealth("degraded", ("a: b",), "p", "n", 3, 2)
    assert health_from_pb(health_to_pb(health)) == health
    event = EventRecord(7, 123, "module_failed", "error", "m", {"k": "v"})
    assert event_from_pb(event_to_pb(event)) == event
    topic = TopicInfo("hp/x", "hardpoint.x.v1.X", "stream", ("a", "b"), 1.5, 2.0)
    assert topic_from_pb(topic_to_pb(topic)) == topic


@pytest.mark.parametrize(
    "state",
    [
        "unconfigured",
        "inactive",
        "active",
        "finalized",
        "error_processing",
        "not_started",
        "starting",
        "restarting",
        "failed",
        "remote_lost",
    ],
)
def test_every_state_named_by_the_control_has_an_enum_value(state: str) -> None:
    m = sample_modules()[0]
    wire = module_to_pb(replace(m, state=state, target_state=state))
    assert wire.state != pb.MODULE_STATE_UNSPECIFIED
    assert module_from_pb(wire).state == state


def test_unknown_strings_travel_as_unspecified_and_come_back_as_unknown() -> None:
    m = sample_modules()[0]
    odd = replace(m, state="levitating", health="sparkly")
    wire = module_to_pb(odd)
    assert wire.state == pb.MODULE_STATE_UNSPECIFIED
    back = module_from_pb(wire)
    assert (back.state, back.health) == ("unknown", "unknown")


# --------------------------------------------------------------------------- unary calls


def test_list_modules_returns_every_module_sorted(client: ManagementClient, control: FakeControl) -> None:
    modules = client.list_modules()
    assert [m.name for m in modules] == ["alerter", "nav-gnss", "tracker"]
    assert modules == sorted(control.list_modules(), key=lambda m: m.name)


def test_get_module_carries_unmet_requirements_and_counters(client: ManagementClient) -> None:
    alerter = client.get_module("alerter")
    assert alerter.unmet == (UnmetRequirement("hardpoint.tasking.v1.Task", 1, "no module on the platform provides it"),)
    assert alerter.local is False
    assert client.get_module("tracker").counters == {"rx_samples": 1190, "rx_sequence_gaps": 2}


def test_get_unknown_module_is_not_found(client: ManagementClient) -> None:
    with pytest.raises(ManagementError) as info:
        client.get_module("ghost")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "ghost" in str(info.value)


def test_get_module_without_name_is_invalid_argument(client: ManagementClient) -> None:
    with pytest.raises(ManagementError) as info:
        client.get_module("")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_change_state_drives_the_module(client: ManagementClient, control: FakeControl) -> None:
    after = client.change_state("tracker", "deactivate")
    assert after.state == "inactive"
    assert control.get_module("tracker").state == "inactive"
    restarted = client.change_state("tracker", "restart")
    assert restarted.restarts == 1


def test_refused_transition_is_failed_precondition_with_the_reason(client: ManagementClient) -> None:
    with pytest.raises(ManagementError) as info:
        client.change_state("alerter", "activate")
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details == "module 'alerter' cannot activate from state not_started"
    assert info.value.details in str(info.value)


def test_change_state_of_unknown_module_is_not_found(client: ManagementClient) -> None:
    with pytest.raises(ManagementError) as info:
        client.change_state("ghost", "activate")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_unknown_transition_is_refused_by_the_client(client: ManagementClient) -> None:
    with pytest.raises(ManagementError, match="unknown transition 'explode'"):
        client.change_state("tracker", "explode")
    assert TRANSITIONS == ("configure", "activate", "deactivate", "cleanup", "shutdown", "restart")


def test_unspecified_transition_is_invalid_argument(server: ManagementServer) -> None:
    with grpc.insecure_channel(server.unix_target) as channel:
        stub = pb_grpc.ManagementServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ChangeState(pb.ChangeStateRequest(name="tracker"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_topics_and_reload(client: ManagementClient, control: FakeControl) -> None:
    assert client.health() == control.health()
    assert client.topics() == control.topics()
    assert client.reload() == ["started alerter"]


def test_invalid_configuration_on_reload_is_failed_precondition(client: ManagementClient, control: FakeControl) -> None:
    control.reload_result = ValueError("platform.toml:3: modules[0].version: no release satisfies >=9")
    with pytest.raises(ManagementError) as info:
        client.reload()
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "platform.toml:3: modules[0].version" in str(info.value)


# --------------------------------------------------------------------------- events


def test_events_without_follow_list_the_log(client: ManagementClient) -> None:
    events = list(client.events())
    assert [(e.id, e.kind) for e in events] == [(1, "module_started"), (2, "module_restarted")]
    assert events[1].severity == "warning"
    assert events[1].detail == {"cause": "SIGKILL"}
    assert [e.id for e in client.events(1)] == [2]


def test_follow_receives_an_event_logged_after_the_call_and_stops_on_cancel(
    client: ManagementClient, control: FakeControl, server: ManagementServer
) -> None:
    stream = client.events(2, follow=True)
    wait_for = threading.Event()

    def later() -> None:
        wait_until(lambda: control.open_followers > 0, "the server to follow the log")
        wait_for.set()
        control.append_event("module_failed", severity="error", module="tracker", detail={"restarts": "5"})

    threading.Thread(target=later, daemon=True).start()
    event = next(stream)
    assert wait_for.is_set()
    assert (event.id, event.kind, event.severity, event.module) == (3, "module_failed", "error", "tracker")
    stream.close()  # cancels the RPC
    wait_until(lambda: control.open_followers == 0, "the cancelled stream to let go of the control")
    wait_until(lambda: server._servicer._followers == 0, "the servicer to count the stream as ended")


def test_follow_ends_cleanly_when_the_server_stops(control: FakeControl, tmp_path: Path) -> None:
    srv = serve(control, socket_path=tmp_path / "h.sock")
    with ManagementClient(srv.unix_target) as client:
        stream = client.events(0, follow=True)
        assert [next(stream).id, next(stream).id] == [1, 2]
        srv.stop(2.0).wait()
        assert list(stream) == []  # no error: the stream just ends
    assert not (tmp_path / "h.sock").exists()


def test_follow_streams_are_bounded_by_the_worker_pool(control: FakeControl, tmp_path: Path) -> None:
    srv = serve(control, socket_path=tmp_path / "h.sock", max_workers=5)  # one follower at most
    try:
        with ManagementClient(srv.unix_target) as client:
            first = client.events(0, follow=True)
            next(first)
            with pytest.raises(ManagementError) as info:
                next(client.events(0, follow=True))
            assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert client.list_modules()  # unary calls still served
            first.close()
    finally:
        srv.stop(1.0).wait()


# --------------------------------------------------------------------------- standard services


def test_health_service_says_serving(server: ManagementServer, client: ManagementClient) -> None:
    with grpc.insecure_channel(server.unix_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert client.serving()


def test_reflection_lists_the_management_service(server: ManagementServer) -> None:
    with grpc.insecure_channel(server.unix_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = iter(
            [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
            ]
        )
        listed, described = list(stub.ServerReflectionInfo(requests, timeout=10))
    names = {s.name for s in listed.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert described.file_descriptor_response.file_descriptor_proto  # the schema, for clients without .proto files


# --------------------------------------------------------------------------- endpoints


def test_socket_is_owner_only(server: ManagementServer) -> None:
    mode = server.socket_path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_serve_leaves_the_process_umask_alone(control: FakeControl, tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        srv = serve(control, socket_path=tmp_path / "h.sock")
        srv.stop(1.0).wait()
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)


def test_stale_socket_is_replaced_and_live_one_refused(control: FakeControl, tmp_path: Path) -> None:
    path = tmp_path / "h.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves
    srv = serve(control, socket_path=path)
    try:
        with pytest.raises(ManagementError, match="already listening"):
            serve(control, socket_path=path)
        with ManagementClient(srv.unix_target) as client:
            assert client.list_modules()
    finally:
        srv.stop(1.0).wait()


def test_a_regular_file_at_the_socket_path_is_not_replaced(control: FakeControl, tmp_path: Path) -> None:
    path = tmp_path / "h.sock"
    path.write_text("precious")
    with pytest.raises(ManagementError, match="not a socket"):
        serve(control, socket_path=path)
    assert path.read_text() == "precious"


def test_too_long_socket_path_is_refused(control: FakeControl, tmp_path: Path) -> None:
    with pytest.raises(ManagementError, match="at most 107"):
        serve(control, socket_path=tmp_path / ("x" * 120) / "h.sock")


def test_tcp_without_tls_is_refused(control: FakeControl, tmp_path: Path) -> None:
    with pytest.raises(ManagementError, match="without TLS"):
        serve(control, socket_path=tmp_path / "h.sock", tcp="127.0.0.1:0")
    assert not (tmp_path / "h.sock").exists()


def test_unreadable_tls_file_is_named(control: FakeControl, tmp_path: Path) -> None:
    tls = TlsFiles(cert=tmp_path / "missing.crt", key=tmp_path / "k", ca=tmp_path / "ca")
    with pytest.raises(ManagementError, match=r"missing\.crt"):
        serve(control, socket_path=tmp_path / "h.sock", tcp="127.0.0.1:0", tls=tls)


def test_tls_key_that_is_not_a_key_is_named(control: FakeControl, tmp_path: Path, pki: TlsSet) -> None:
    tls = TlsFiles(cert=pki.server_cert, key=pki.server_cert, ca=pki.ca)
    with pytest.raises(ManagementError, match=r"private key .*server\.crt is not a PEM private key"):
        serve(control, socket_path=tmp_path / "h.sock", tcp="127.0.0.1:0", tls=tls)


def test_tcp_port_in_use_is_refused_and_leaves_no_socket(control: FakeControl, tmp_path: Path, pki: TlsSet) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tls = TlsFiles(cert=pki.server_cert, key=pki.server_key, ca=pki.ca)
        with pytest.raises(ManagementError, match=f"cannot listen on TCP 127.0.0.1:{port}"):
            serve(control, socket_path=tmp_path / "h.sock", tcp=f"127.0.0.1:{port}", tls=tls)
    assert not (tmp_path / "h.sock").exists()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsSet:
    return make_tls(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(control: FakeControl, tmp_path: Path, pki: TlsSet) -> Iterator[ManagementServer]:
    tls = TlsFiles(cert=pki.server_cert, key=pki.server_key, ca=pki.ca)
    srv = serve(control, socket_path=tmp_path / "h.sock", tcp="127.0.0.1:0", tls=tls)
    yield srv
    srv.stop(1.0).wait()


def test_tls_tcp_serves_a_client_with_a_certificate(tls_server: ManagementServer, pki: TlsSet) -> None:
    assert tls_server.tcp_port
    tls = TlsFiles(cert=pki.client_cert, key=pki.client_key, ca=pki.ca)
    with ManagementClient(f"127.0.0.1:{tls_server.tcp_port}", tls=tls) as client:
        assert [m.name for m in client.list_modules()] == ["alerter", "nav-gnss", "tracker"]
        assert client.serving()


def _refused(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = grpc.insecure_channel(target) if credentials is None else grpc.secure_channel(target, credentials)
    with channel:
        stub = pb_grpc.ManagementServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ListModules(pb.ListModulesRequest(), timeout=10)
    return info.value.code()


def test_tls_tcp_refuses_clients_without_a_valid_certificate(tls_server: ManagementServer, pki: TlsSet) -> None:
    target = f"127.0.0.1:{tls_server.tcp_port}"
    ca = pki.ca.read_bytes()
    assert _refused(target, grpc.ssl_channel_credentials(root_certificates=ca)) == grpc.StatusCode.UNAVAILABLE
    rogue = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=pki.rogue_key.read_bytes(), certificate_chain=pki.rogue_cert.read_bytes()
    )
    assert _refused(target, rogue) == grpc.StatusCode.UNAVAILABLE
    assert _refused(target, None) == grpc.StatusCode.UNAVAILABLE  # plaintext


def test_tls_tcp_client_error_mentions_certificates(tls_server: ManagementServer, pki: TlsSet) -> None:
    wrong = TlsFiles(cert=pki.rogue_cert, key=pki.rogue_key, ca=pki.ca)
    with (
        ManagementClient(f"127.0.0.1:{tls_server.tcp_port}", tls=wrong) as client,
        pytest.raises(ManagementError) as info,
    ):
        client.list_modules()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "TLS certificate" in str(info.value)


def test_tcp_client_without_tls_is_refused() -> None:
    with pytest.raises(ManagementError, match="needs TLS"):
        ManagementClient("127.0.0.1:7443")


def test_unreachable_daemon_is_named(tmp_path: Path) -> None:
    target = f"unix:{tmp_path / 'nobody.sock'}"
    with ManagementClient(target) as client, pytest.raises(ManagementError) as info:
        client.list_modules()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(info.value).startswith(f"cannot reach hardpointd at {target}: is it running?")
