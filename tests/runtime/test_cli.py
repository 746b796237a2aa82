"""The ``hardpoint`` CLI against the real management server over a fake platform control."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeControl, make_tls, wait_until
from typer.testing import CliRunner

import hardpoint_runtime
from hardpoint_runtime._management import ManagementServer, TlsFiles, serve
from hardpoint_runtime.cli import app

RUNTIME_SRC = Path(hardpoint_runtime.__file__).resolve().parent.parent


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def server(control: FakeControl, tmp_path: Path) -> Iterator[ManagementServer]:
    srv = serve(control, socket_path=tmp_path / "hardpointd.sock")
    yield srv
    srv.stop(1.0).wait()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("HARDPOINT_SOCKET", "HARDPOINT_TCP", "HARDPOINT_TLS_CERT", "HARDPOINT_TLS_KEY", "HARDPOINT_TLS_CA"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def run(runner: CliRunner, server: ManagementServer, *args: str, code: int = 0) -> Any:
    result = runner.invoke(app, ["--socket", str(server.socket_path), *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


# --------------------------------------------------------------------------- --json everywhere

#: (command line, transitions applied to the fake first, check on the parsed JSON)
JsonCase = tuple[list[str], list[tuple[str, str]], str]
JSON_CASES: list[JsonCase] = [
    (["status", "--json"], [], "status"),
    (["modules", "--json"], [], "modules"),
    (["module", "show", "alerter", "--json"], [], "module:alerter"),
    (["events", "--json"], [], "events"),
    (["events", "--since", "1", "--json"], [], "events-since"),
    (["topics", "--json"], [], "topics"),
    (["deactivate", "tracker", "--json"], [], "module:tracker:inactive"),
    (["cleanup", "tracker", "--json"], [("tracker", "deactivate")], "module:tracker:unconfigured"),
    (
        ["configure", "tracker", "--json"],
        [("tracker", "deactivate"), ("tracker", "cleanup")],
        "module:tracker:inactive",
    ),
    (["activate", "tracker", "--json"], [("tracker", "deactivate")], "module:tracker:active"),
    (["shutdown", "nav-gnss", "--json"], [], "module:nav-gnss:finalized"),
    (["restart", "tracker", "--json"], [], "module:tracker:active"),
    (["reload", "--json"], [], "reload"),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[" ".join(c[0]) for c in JSON_CASES])
def test_every_command_prints_valid_json(
    runner: CliRunner,
    server: ManagementServer,
    control: FakeControl,
    case: tuple[list[str], list[tuple[str, str]], str],
) -> None:
    argv, prepare, check = case
    for name, transition in prepare:
        control.change_state(name, transition)
    result = run(runner, server, *argv)
    assert "\x1b[" not in result.stdout
    data = json.loads(result.stdout)
    if check == "status":
        assert data["health"]["status"] == "degraded"
        assert data["health"]["reasons"] == ["alerter: not_started"]
        assert [m["name"] for m in data["modules"]] == ["alerter", "nav-gnss", "tracker"]
    elif check == "modules":
        assert [(m["name"], m["state"], m["pid"]) for m in data] == [
            ("alerter", "not_started", 0),
            ("nav-gnss", "active", 4242),
            ("tracker", "active", 4243),
        ]
    elif check == "events":
        assert [(e["id"], e["kind"], e["severity"]) for e in data] == [
            (1, "module_started", "info"),
            (2, "module_restarted", "warning"),
        ]
    elif check == "events-since":
        assert [e["id"] for e in data] == [2]
        assert data[0]["detail"] == {"cause": "SIGKILL"}
    elif check == "topics":
        assert data[0] == {
            "topic": "hp/nav/v1/state",
            "interface": "hardpoint.nav.v1.NavState",
            "qos": "state",
            "publishers": ["nav-gnss"],
            "rate_hz": 9.8,
            "nominal_rate_hz": 10.0,
            "refused": {},
            "intrusions": [],
        }
    elif check == "reload":
        assert data == {"changes": ["started alerter"]}
    elif check == "module:alerter":
        assert data["unmet"] == [
            {"interface": "hardpoint.tasking.v1.Task", "major": 1, "reason": "no module on the platform provides it"}
        ]
        assert data["requires"] == ["hardpoint.tasking.v1.Task"]
        assert data["local"] is False
    else:
        _, name, state = check.split(":")
        assert (data["name"], data["state"]) == (name, state)


# --------------------------------------------------------------------------- human output


def test_status_shows_health_and_module_table(runner: CliRunner, server: ManagementServer) -> None:
    out = run(runner, server, "status").stdout
    assert "platform demo-platform on node node-a: degraded, 2/3 modules active" in out
    assert "alerter: not_started" in out
    for column in ("NAME", "VERSION", "NODE", "STATE", "HEALTH", "RESTARTS", "PID"):
        assert column in out
    assert "4242" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes


def test_modules_table(runner: CliRunner, server: ManagementServer) -> None:
    lines = run(runner, server, "modules").stdout.splitlines()
    tracker = next(line for line in lines if line.startswith("tracker"))
    assert tracker.split() == ["tracker", "0.9.1", "node-a", "active", "degraded", "0", "4243"]


def test_module_show_gives_unmet_interface_major_and_reason(runner: CliRunner, server: ManagementServer) -> None:
    out = run(runner, server, "module", "show", "alerter").stdout
    assert "unmet requirements" in out
    row = next(line for line in out.splitlines() if line.startswith("hardpoint.tasking.v1.Task"))
    assert row.split(None, 2) == ["hardpoint.tasking.v1.Task", "1", "no module on the platform provides it"]
    assert "hardpoint.alert.v1.Alert" in out  # provides


def test_module_show_gives_counters(runner: CliRunner, server: ManagementServer) -> None:
    out = run(runner, server, "module", "show", "tracker").stdout
    assert "rx_sequence_gaps" in out
    assert "radar input stale" in out


def test_events_topics_reload_lifecycle_text(runner: CliRunner, server: ManagementServer) -> None:
    events = run(runner, server, "events").stdout
    assert "#2" in events
    assert "module_restarted nav-gnss cause=SIGKILL" in events
    topics = run(runner, server, "topics").stdout
    row = next(line for line in topics.splitlines() if line.startswith("hp/nav/v1/state"))
    assert "9.8 Hz" in row
    assert "10.0 Hz" in row
    assert "aperiodic" in topics
    assert run(runner, server, "deactivate", "tracker").stdout.strip() == "tracker: inactive"
    assert "started alerter" in run(runner, server, "reload").stdout


def test_no_color_is_respected(runner: CliRunner, server: ManagementServer) -> None:
    result = runner.invoke(app, ["--socket", str(server.socket_path), "modules"], env={"NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout


# --------------------------------------------------------------------------- failures and endpoints


def test_events_follow_reports_a_daemon_that_stops(runner: CliRunner, control: FakeControl, tmp_path: Path) -> None:
    srv = serve(control, socket_path=tmp_path / "h.sock")
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(
            runner.invoke(app, ["--socket", str(srv.socket_path), "events", "--follow", "--json"])
        )
    )
    worker.start()
    try:
        wait_until(lambda: control.open_followers > 0, "the CLI to follow the log")
    finally:
        srv.stop(2.0).wait()
        worker.join(30)
    [result] = results
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [1, 2]
    assert "ended the event stream" in result.stderr


def test_refused_transition_exits_1_with_the_daemons_reason(runner: CliRunner, server: ManagementServer) -> None:
    result = run(runner, server, "activate", "alerter", code=1)
    assert result.stdout == ""
    assert "cannot activate 'alerter': module 'alerter' cannot activate from state not_started" in result.stderr


def test_unknown_module_exits_1(runner: CliRunner, server: ManagementServer) -> None:
    result = run(runner, server, "module", "show", "ghost", "--json", code=1)
    assert result.stdout == ""
    assert "no module named 'ghost'" in result.stderr


def test_unreachable_daemon_exits_1_with_a_clear_message(runner: CliRunner, tmp_path: Path) -> None:
    sock = tmp_path / "nobody.sock"
    result = runner.invoke(app, ["--socket", str(sock), "status", "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"cannot reach hardpointd at unix:{sock}: is it running?" in result.stderr


def test_socket_from_environment(runner: CliRunner, server: ManagementServer) -> None:
    result = runner.invoke(app, ["modules", "--json"], env={"HARDPOINT_SOCKET": str(server.socket_path)})
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3


def test_default_socket_is_state_dir_of_working_directory(
    runner: CliRunner, control: FakeControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = serve(control, socket_path=tmp_path / "state" / "hardpointd.sock")
    try:
        monkeypatch.chdir(tmp_path)
        result = runner.invoke(app, ["modules", "--json"])
        assert result.exit_code == 0, result.stderr
    finally:
        srv.stop(1.0).wait()


def test_tcp_needs_tls_flags(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--tcp", "127.0.0.1:7443", "--tls-ca", "ca.crt", "status"])
    assert result.exit_code == 1
    assert "--tcp 127.0.0.1:7443 needs TLS client credentials: give --tls-cert, --tls-key" in result.stderr


def test_cli_over_tls_tcp(runner: CliRunner, control: FakeControl, tmp_path: Path) -> None:
    pki = make_tls(tmp_path / "pki")
    tls = TlsFiles(cert=pki.server_cert, key=pki.server_key, ca=pki.ca)
    srv = serve(control, socket_path=tmp_path / "h.sock", tcp="127.0.0.1:0", tls=tls)
    try:
        args = ["--tcp", f"127.0.0.1:{srv.tcp_port}", "--tls-ca", str(pki.ca), "--tls-key", str(pki.client_key)]
        result = runner.invoke(app, [*args, "--tls-cert", str(pki.client_cert), "modules", "--json"])
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)) == 3
        result = runner.invoke(app, [*args, "--tls-cert", str(pki.rogue_cert), "modules", "--json"])
        assert result.exit_code == 1
        assert "cannot reach hardpointd" in result.stderr
    finally:
        srv.stop(1.0).wait()


# --------------------------------------------------------------------------- as a real process


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(RUNTIME_SRC), env.get("PYTHONPATH", "")) if p)
    env.pop("HARDPOINT_SOCKET", None)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hardpoint_runtime.cli", *args]


def test_subprocess_status_json(server: ManagementServer) -> None:
    proc = subprocess.run(
        cli("--socket", str(server.socket_path), "status", "--json"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["health"]["platform"] == "demo-platform"


def test_subprocess_unreachable_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        cli("--socket", str(tmp_path / "none.sock"), "modules"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "is it running?" in proc.stderr
    assert proc.stdout == ""


def test_subprocess_events_follow_streams_and_ends_on_ctrl_c(server: ManagementServer, control: FakeControl) -> None:
    proc = subprocess.Popen(
        cli("--socket", str(server.socket_path), "events", "--follow", "--since", "2", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        wait_until(lambda: control.open_followers > 0, "the CLI to follow the log", limit_s=60)
        control.append_event("module_failed", severity="error", module="tracker")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert json.loads(line)["kind"] == "module_failed"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    wait_until(lambda: control.open_followers == 0, "the server to let go of the follower")


def test_help_does_not_import_dds_or_grpc() -> None:
    probe = (
        "import sys\n"
        "from hardpoint_runtime.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='hardpoint')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'cyclonedds', 'grpc', 'google'})\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_env(), timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "status" in proc.stdout  # the help text lists the commands
