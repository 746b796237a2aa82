"""Crash safety (issue 5, acceptance 4): the daemon SIGKILLed at every journal step comes back consistent.

For each step of install and activation in turn, a real daemon (a separate
process) runs ``beacon`` 1.0 and applies 1.1 from a signed directory
repository with ``HARDPOINT_UPDATE_CRASH_AT=<step>`` (the updater's test seam,
UPD-TEST-1: SIGKILL right after the step is written). Its module processes end
with it (their stdin closes). Then a fresh daemon starts on the same state and
the test checks (UPD-REC-1):

- exactly one ``beacon`` process runs, and the daemon's record, the pinned
  version, and the version in the module's heartbeat are the same;
- that version is 1.0 (the old one) when the daemon died before ``committed``,
  and 1.1 after it: never a mix;
- no partial install directory is left or selected;
- the history shows the attempt ``interrupted`` (or ``committed``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from modkit import allocate_domain, build_module_wheel, preinstall, publish_repo, wait_for, worker_pids, write_platform

from hardpoint_runtime._plugins import store_paths
from hardpoint_runtime._updater import CRASH_ENV
from hardpoint_runtime.update._journal import STEPS

#: Drives a daemon in its own process: start, wait for beacon 1.0, apply 1.1 (the seam kills it mid-way).
_APPLY = textwrap.dedent(
    """
    import sys, time
    from hardpoint_runtime._daemon import Daemon
    d = Daemon(sys.argv[1])
    d.start()
    end = time.monotonic() + 60
    while time.monotonic() < end:
        m = d.get_module("beacon")
        if m.state == "active" and m.health == "ok":
            break
        time.sleep(0.05)
    record = d.update_apply("beacon", "1.1")
    print("NOT KILLED", record, flush=True)
    d.stop()
    """
)

#: A restarted daemon: reports what runs once beacon is active and beating, then stops when stdin closes.
_CHECK = textwrap.dedent(
    """
    import json, sys, time
    from hardpoint_runtime._daemon import Daemon
    d = Daemon(sys.argv[1])
    d.start()
    end = time.monotonic() + 60
    m = d.modules["beacon"]
    while time.monotonic() < end and not (m.state == "active" and m.health == "ok" and m.beat_version):
        time.sleep(0.05)
    history = d.update_history("beacon")
    print(json.dumps({
        "version": m.version, "state": m.state, "pid": m.process.pid if m.process else 0,
        "beat_version": m.beat_version, "pin": d.store.pinned_version("beacon"),
        "history": [[h.step, h.outcome, h.from_version, h.to_version, h.cause] for h in history],
    }), flush=True)
    sys.stdin.read()
    d.stop()
    """
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    wheels = tmp_path_factory.getbasetemp() / "modkit-wheels"
    wheels.mkdir(exist_ok=True)
    v10 = build_module_wheel(wheels, version="1.0")
    v11 = build_module_wheel(wheels, version="1.1", extra_provides=["hardpoint.track.v1.FusedTrack"])
    return publish_repo(tmp_path_factory.mktemp("crash-repo"), [v10, v11]), v10


def _expected(step: str) -> str:
    # The recovery rule: only a committed attempt keeps the new version.
    return "1.1" if step == "committed" else "1.0"


@pytest.mark.parametrize("step", STEPS)
def test_daemon_killed_at_step_comes_back_consistent(tmp_path: Path, repo: tuple[Path, Path], step: str) -> None:
    """One crash point per test (~10 s each: two daemon starts and an update up to the step)."""
    assert _crash_and_check(tmp_path / "plat", repo, step) == step


def test_crash_points_are_every_step() -> None:
    """The parametrization above covers every journal step of install and activation."""
    print(f"crash points covered: {len(STEPS)} ({', '.join(STEPS)})")
    assert STEPS == (
        "requested", "downloaded", "installed", "staged", "gate_passed", "switched", "probation_passed", "committed",
    )  # fmt: skip


def _crash_and_check(root: Path, repo: tuple[Path, Path], step: str) -> str:
    repo_dir, v10 = repo
    domain = allocate_domain()
    try:
        config = write_platform(root, domain.id, repo_dir, gate_timeout_s=15.0, probation_s=1.0)
        preinstall(root, v10, "1.0")
        env = {**os.environ, CRASH_ENV: step}
        killed = subprocess.run(
            [sys.executable, "-c", _APPLY, str(config)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert killed.returncode == -9, f"daemon not killed at {step}: {killed.stdout[-2000:]}{killed.stderr[-3000:]}"
        # Its module processes see their stdin close and end by themselves.
        wait_for(lambda: not worker_pids(domain.id), timeout=30, what="the dead daemon's module processes to end")
        env.pop(CRASH_ENV)
        with subprocess.Popen(
            [sys.executable, "-c", _CHECK, str(config)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as checker:
            assert checker.stdout is not None
            assert checker.stdin is not None
            seen = json.loads(checker.stdout.readline() or "null")
            running = worker_pids(domain.id, "beacon")
            checker.stdin.close()
            checker.wait(timeout=60)
        assert seen is not None, "the restarted daemon did not report"
        expected = _expected(step)
        assert (seen["state"], seen["version"], seen["pin"], seen["beat_version"]) == (
            "active", expected, expected, expected,
        ), seen  # fmt: skip
        assert running == [seen["pid"]]  # exactly one beacon process, the one the daemon runs
        last_step, outcome, from_v, to_v, cause = seen["history"][0]
        assert (last_step, from_v, to_v) == (step, "1.0", "1.1")
        assert (outcome, cause) == (("committed", "") if step == "committed" else ("interrupted", "interrupted"))
        store = root / "state" / "modules" / "beacon"
        assert not list(store.glob(".partial-*"))
        assert all(Path(p).parent.name in {"1.0", "1.1"} for p in store_paths(root / "state" / "modules"))
        print(f"crash point {STEPS.index(step) + 1}/{len(STEPS)} ({step}): back on {expected}, consistent")
        return step
    finally:
        for pid in worker_pids(domain.id):
            if pid > 0:
                os.kill(pid, 9)
        domain.release()
