"""``hardpoint demo`` ended by SIGTERM (``timeout``, a service manager) or SIGHUP (its terminal closed), or
killed outright, leaves no daemon and no module process behind (issue 14, defect 12).

Each test starts the demo as a user would (a subprocess, real daemon and modules on a DDS domain of its
own), waits until the scenario has started (every module active), signals the demo, and then looks for
any process of that domain: the daemon (``--domain-id N`` in its command line) or a module worker (the
domain in its JSON spec).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _pids_of_domain(domain: int) -> list[int]:
    """Processes whose command line is hardpointd on ``domain`` or a module worker of it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        daemon = "hardpoint_runtime._daemon" in line and f"--domain-id {domain}" in line
        worker = "hardpoint_runtime._worker" in line and f'"domain_id": {domain},' in line
        if daemon or worker:
            found.append(int(entry.name))
    return found


def _started_demo(tmp_path: Path, domain: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardpoint_runtime.cli", "demo", "--duration", "60", "--no-live",
         "--out", str(tmp_path / "out"), "--domain-id", str(domain)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "out" / "scenario-start").exists():
        assert proc.poll() is None, f"the demo ended early: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "the scenario never started"
        time.sleep(0.2)
    assert len(_pids_of_domain(domain)) >= 7, "the daemon and six modules should be running"
    return proc


def _gone(domain: int, timeout: float) -> list[int]:
    end = time.monotonic() + timeout
    while (left := _pids_of_domain(domain)) and time.monotonic() < end:
        time.sleep(0.2)
    return left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signalled_demo_stops_its_daemon_and_modules(tmp_path: Path, domain_id: int, sig: int) -> None:
    proc = _started_demo(tmp_path, domain_id)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-3000:]
    left = _gone(domain_id, 5.0)
    assert not left, f"left running after {signal.Signals(sig).name}: {left}"


def test_a_killed_demo_takes_its_daemon_and_modules_with_it(tmp_path: Path, domain_id: int) -> None:
    """SIGKILL runs no clean-up: the daemon is told by the kernel (parent-death signal) and stops its modules."""
    proc = _started_demo(tmp_path, domain_id)
    proc.kill()
    proc.communicate(timeout=30)
    left = _gone(domain_id, 30.0)
    for pid in left:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left running after SIGKILL: {left}"
