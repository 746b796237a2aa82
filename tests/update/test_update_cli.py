"""``hardpoint update``: the CLI against the real management server (gRPC on a Unix socket) over a fake control.

The end-to-end tests with a real hardpointd and a real repository are in ``test_update_e2e.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from hardpoint_runtime._control import UpdateOffer, UpdateProgress, UpdateRecord
from hardpoint_runtime._management import ManagementServer
from hardpoint_runtime._update_cli import _ProgressView
from hardpoint_runtime.cli import app
from hardpoint_runtime.update import MetadataExpiredError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))  # the shared fake of tests/runtime
from fakes import FakeUpdateControl, management_server, sample_modules

TARGET = "acme/beacon/hp_mk_beacon-1.1-py3-none-any.whl"
COMMITTED = UpdateRecord(
    id=2,
    module="beacon",
    from_version="1.0",
    to_version="1.1",
    step="committed",
    outcome="committed",
    cause="",
    role="",
    reason="",
    started_ns=1_700_000_000_000_000_000,
    finished_ns=1_700_000_010_000_000_000,
    switch_gap_ms=42.0,
)
REFUSED = replace(
    COMMITTED,
    id=3,
    to_version="1.2",
    step="refused",
    outcome="refused",
    cause="IntegrityError",
    role="acme",
    reason=f"hash or length mismatch: target {TARGET!r}, role 'acme': the wheel's sha256 differs from the signed one",
    switch_gap_ms=-1.0,
)
ROLLED_BACK = replace(
    COMMITTED,
    id=4,
    to_version="1.2",
    step="rolled_back",
    outcome="rolled_back",
    cause="never_healthy",
    reason="beacon 1.2 was not healthy within the 5 s gate: degraded; 1.0 kept running",
    switch_gap_ms=-1.0,
)
PROGRESS = [
    UpdateProgress("beacon", "requested", 0, 0),
    UpdateProgress("beacon", "downloaded", 3000, 6000),
    UpdateProgress("beacon", "downloaded", 6000, 6000),
    UpdateProgress("beacon", "installed", 0, 0),
    UpdateProgress("beacon", "staged", 1, 5, "waiting for health and NavState"),
    UpdateProgress("beacon", "gate_passed", 0, 3),
    UpdateProgress("beacon", "switched", 2, 3),
    UpdateProgress("beacon", "probation_passed", 3, 3),
    UpdateProgress("beacon", "committed", 0, 0),
]


#: The platform's one module (the sample provider of the shared fake, renamed).
BEACON = replace(sample_modules()[0], name="beacon", version="1.0")


@pytest.fixture
def fake() -> FakeUpdateControl:
    """A platform with one module, ``beacon``, and a scripted update side."""
    return FakeUpdateControl(
        [BEACON],
        offers=[
            UpdateOffer("beacon", "1.0", "1.1", "acme", TARGET, 6000, "available"),
            UpdateOffer(
                "radar",
                "2.0",
                "",
                "globex",
                "",
                0,
                "refused",
                "unmet requirement: radar 2.1 drops hardpoint.track.v1.SensorTrack, required by fusion",
            ),
        ],
        script=PROGRESS,
        apply_result=COMMITTED,
        history=[ROLLED_BACK, REFUSED, COMMITTED],
        status=[replace(COMMITTED, id=5, outcome="in_progress", step="staged", finished_ns=0, switch_gap_ms=-1)],
        rollback_result=replace(
            COMMITTED, id=6, from_version="1.1", to_version="1.0", cause="operator", switch_gap_ms=30.0
        ),
    )


@pytest.fixture
def server(fake: FakeUpdateControl, tmp_path: Path) -> Iterator[ManagementServer]:
    with management_server(fake, tmp_path) as srv:
        yield srv


@pytest.fixture
def run(server: ManagementServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    for var in ("HARDPOINT_SOCKET", "HARDPOINT_TCP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # tables wide enough that reasons are not folded
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, ["--socket", str(server.socket_path), "update", *args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    return invoke


def test_check_lists_what_the_repository_offers(run: Callable[..., Result]) -> None:
    """UPD-CLI-001."""
    text = run("check").stdout
    assert "beacon" in text
    assert "1.0" in text
    assert "1.1" in text
    assert "available" in text
    assert "5.9 KiB" in text
    assert "drops hardpoint.track.v1.SensorTrack, required by fusion" in text
    offers = json.loads(run("check", "--json").stdout)
    assert [(o["module"], o["status"]) for o in offers] == [("beacon", "available"), ("radar", "refused")]


def test_check_against_an_untrusted_repository_exits_1_naming_cause_and_role(
    run: Callable[..., Result], fake: FakeUpdateControl
) -> None:
    """UPD-CLI-006."""
    fake.offers = MetadataExpiredError("expired at 2020-01-01T00:00:00Z", role="timestamp")
    result = run("check", code=1)
    assert result.stdout == ""
    assert result.stderr.startswith("hardpoint: error: cannot check for updates: metadata expired")
    assert "role 'timestamp'" in result.stderr


def test_apply_shows_each_step_and_exits_0_when_committed(run: Callable[..., Result], fake: FakeUpdateControl) -> None:
    """UPD-CLI-002."""
    text = run("apply", "beacon").stdout
    lines = text.splitlines()
    steps = [line.split(": ")[1] for line in lines if line.startswith("beacon: ")]
    assert steps[:2] == ["requested", "downloaded (5.9 KiB)"]
    assert "staged" in steps
    assert "beacon 1.0 -> 1.1: committed (switch gap 42.0 ms)" in lines[-1]
    assert fake.applied == [("beacon", None)]


def test_apply_json_prints_the_record_only(run: Callable[..., Result], fake: FakeUpdateControl) -> None:
    """UPD-CLI-001."""
    out = json.loads(run("apply", "beacon", "--version", "1.1", "--json").stdout)
    assert out["outcome"] == "committed"
    assert out["switch_gap_ms"] == 42.0
    assert fake.applied == [("beacon", "1.1")]


@pytest.mark.parametrize(
    ("record", "needles"),
    [
        (REFUSED, ["refused", "cause IntegrityError", "role acme", TARGET]),
        (ROLLED_BACK, ["rolled back", "cause never_healthy", "1.0 kept running"]),
    ],
)
def test_apply_refused_or_rolled_back_exits_1_naming_cause_module_and_role(
    run: Callable[..., Result], fake: FakeUpdateControl, record: UpdateRecord, needles: list[str]
) -> None:
    """UPD-CLI-003."""
    fake.apply_result = record
    result = run("apply", "beacon", code=1)
    assert result.stderr.startswith(f"hardpoint: error: update of beacon 1.0 -> {record.to_version} ")
    for needle in needles:
        assert needle in result.stderr
    assert f"beacon 1.0 -> {record.to_version}: {record.outcome}" in result.stdout
    as_json = run("apply", "beacon", "--json", code=1)
    assert json.loads(as_json.stdout)["cause"] == record.cause


def test_apply_of_an_unknown_module_exits_1(run: Callable[..., Result]) -> None:
    """UPD-CLI-006."""
    result = run("apply", "ghost", code=1)
    assert result.stderr == "hardpoint: error: cannot update 'ghost': no module named 'ghost' on this platform\n"


def test_history_shows_module_versions_outcome_cause_role_and_reason(run: Callable[..., Result]) -> None:
    """UPD-CLI-004."""
    text = run("history").stdout
    refused_line = next(line for line in text.splitlines() if line.lstrip().startswith("3 "))
    for needle in ("beacon", "1.0 -> 1.2", "refused", "IntegrityError", "acme", "hash or length mismatch"):
        assert needle in refused_line
    records = json.loads(run("history", "--json").stdout)
    assert [r["id"] for r in records] == [4, 3, 2]
    assert records[1] | {"reason": ""} == {
        "id": 3, "module": "beacon", "from_version": "1.0", "to_version": "1.2", "step": "refused",
        "outcome": "refused", "cause": "IntegrityError", "role": "acme", "reason": "",
        "started_ns": COMMITTED.started_ns, "finished_ns": COMMITTED.finished_ns, "switch_gap_ms": -1.0,
    }  # fmt: skip
    assert json.loads(run("history", "--limit", "1", "--json").stdout)[0]["id"] == 4
    assert json.loads(run("history", "radar", "--json").stdout) == []


def test_status_lists_updates_in_progress(run: Callable[..., Result]) -> None:
    """UPD-CLI-005."""
    (running,) = json.loads(run("status", "--json").stdout)
    assert (running["outcome"], running["step"]) == ("in_progress", "staged")
    assert "in_progress" in run("status").stdout


def test_rollback_prints_the_record_and_refusals_exit_1(run: Callable[..., Result], fake: FakeUpdateControl) -> None:
    """UPD-CLI-005."""
    assert "beacon 1.1 -> 1.0: committed" in run("rollback", "beacon").stdout
    fake.rollback_result = ValueError("beacon has no earlier version installed to return to")
    result = run("rollback", "beacon", code=1)
    assert "no earlier version" in result.stderr
    assert run("rollback", "ghost", code=1).stderr.startswith("hardpoint: error: cannot roll back 'ghost'")


def test_without_a_daemon_every_command_exits_1_saying_so(tmp_path: Path) -> None:
    """UPD-CLI-006."""
    for args in (["check"], ["apply", "beacon"], ["status"], ["history"], ["rollback", "beacon"]):
        result = CliRunner().invoke(app, ["--socket", str(tmp_path / "none.sock"), "update", *args])
        assert result.exit_code == 1, args
        assert "cannot reach hardpointd" in result.stderr


def test_on_a_terminal_the_download_gate_and_probation_windows_are_bars() -> None:
    """UPD-CLI-002."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with _ProgressView(console) as view:
        for p in PROGRESS:
            view(p)
            if p.step == "staged":  # mid-gate: the bar shows the seconds elapsed of the window
                gate = view._progress.tasks[view._bars["gate"]]  # type: ignore[union-attr]
                assert (gate.completed, gate.total) == (1, 5)
        bars = {view._progress.tasks[i].description: view._progress.tasks[i] for i in view._bars.values()}  # type: ignore[union-attr]
    assert set(bars) == {"download", "gate", "probation"}
    assert (bars["download"].completed, bars["download"].total) == (6000, 6000)
    assert (bars["gate"].completed, bars["gate"].total) == (5, 5)  # passed: the window is over
    assert (bars["probation"].completed, bars["probation"].total) == (3, 3)
    assert "6000/6000 bytes" in out.getvalue()


def test_ctrl_c_ends_apply_but_not_the_update(server: ManagementServer, fake: FakeUpdateControl) -> None:
    """UPD-API-003, UPD-CLI-006: the operator leaves; hardpointd finishes the update."""
    fake.hold = threading.Event()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDPOINT_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hardpoint_runtime.cli",
            "--socket",
            str(server.socket_path),
            "update",
            "apply",
            "beacon",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env | {"NO_COLOR": "1", "TERM": "dumb"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "beacon: requested"  # the update is under way
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "interrupted; the update of 'beacon' goes on in hardpointd" in err
    assert "Traceback" not in err
    assert not fake.finished.is_set()
    fake.hold.set()
    deadline = time.monotonic() + 30
    while not fake.finished.is_set():
        assert time.monotonic() < deadline, "the update did not finish after the CLI left"
        time.sleep(0.05)


def test_history_keeps_each_column_but_the_reason_on_one_line_at_120_columns(
    run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 defect 11: at 120 columns the time and the cause were split across lines; only the reason folds."""
    monkeypatch.setenv("COLUMNS", "120")
    text = run("history").stdout
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines), text
    for record in (REFUSED, ROLLED_BACK):
        row = next(line for line in lines if line.lstrip().startswith(f"{record.id} "))
        for needle in (record.cause, f"{record.from_version} -> {record.to_version}", record.outcome, record.step):
            assert needle in row, (needle, text)
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", row), f"the start time is split: {text}"
