"""The README's first command: the patrol demo, end to end, and surviving a killed fusion module.

Runs ``hardpoint demo`` as a user would (a subprocess, real daemon, real DDS on
loopback, real simulators), on a DDS domain of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HARDPOINT = [sys.executable, "-m", "hardpoint_runtime.cli"]


def demo(tmp_path: Path, domain: int, duration: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARDPOINT, "demo", "--duration", str(duration), "--no-live", "--json", "--out", str(tmp_path / "out"),
         "--domain-id", str(domain)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[dict[str, object], str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"demo did not finish:\n{err[-4000:]}")
    assert out.strip(), f"no JSON summary; stderr:\n{err[-4000:]}"
    return json.loads(out), err


def test_demo_runs_the_patrol_to_a_correct_summary(tmp_path: Path, domain_id: int) -> None:
    proc = demo(tmp_path, domain=domain_id, duration=45)
    summary, err = finish(proc)
    assert proc.returncode == 0, err[-4000:]
    assert summary["ok"] is True
    assert set(summary["modules"].values()) == {"active"}  # type: ignore[union-attr]
    assert set(summary["modules"]) == {"nav", "radar", "eoir", "fusion", "geofence", "recorder"}  # type: ignore[arg-type]
    assert summary["tracks_formed"] >= 5  # type: ignore[operator]
    # Within 45 s: fast-1 enters and leaves the platform zone, cargo-1 and ferry-1 enter the anchorage.
    assert len(summary["alerts_raised"]) == 3, err[-3000:]  # type: ignore[arg-type]
    assert len(summary["alerts_cleared"]) >= 1  # type: ignore[arg-type]
    recording = Path(str(summary["recording"]))
    assert recording.is_file()
    assert summary["recording_bytes"] > 10_000  # type: ignore[operator]
    assert "summary" in err
    assert "demo OK" in err


def _fusion_pid(socket: Path) -> int:
    out = subprocess.run(
        [*HARDPOINT, "--socket", str(socket), "module", "show", "fusion", "--json"],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    if out.returncode != 0:
        return 0
    status = json.loads(out.stdout)
    return int(status["pid"]) if status["state"] == "active" else 0


def test_killing_fusion_during_the_demo_is_restarted_and_the_summary_is_still_correct(
    tmp_path: Path, domain_id: int
) -> None:
    proc = demo(tmp_path, domain=domain_id, duration=40)
    socket = tmp_path / "out" / "state" / "hardpointd.sock"
    deadline = time.monotonic() + 120
    pid = 0
    while time.monotonic() < deadline and not (tmp_path / "out" / "scenario-start").exists():
        time.sleep(0.2)
    time.sleep(5)  # let fusion form tracks first
    while time.monotonic() < deadline and pid <= 0:
        pid = _fusion_pid(socket)
        time.sleep(0.2)
    assert pid > 0, "fusion never became active"
    os.kill(pid, signal.SIGKILL)
    summary, err = finish(proc)
    assert proc.returncode == 0, err[-4000:]
    assert "module_restarting fusion" in err  # the view shows the restart as it happens
    assert summary["restarts"]["fusion"] == 1  # type: ignore[index]
    assert summary["modules"]["fusion"] == "active"  # type: ignore[index]
    assert summary["ok"] is True
    assert len(summary["alerts_raised"]) >= 2  # type: ignore[arg-type]
    assert "restarts: fusion 1" in err
