"""Crash safety (issue 5, acceptance 4): the daemon SIGKILLed at every journal step comes back consistent.

For each step of install and activation in turn, a real daemon (a separate
process) runs ``beacon`` 1.0 and applies 1.1 from a signed directory
repository with ``HARDPOINT_UPDATE_CRASH_AT=<step>`` (the updater's test seam,
UPD-TEST-001: SIGKILL right after the step is written). Its module processes end
with it (their stdin closes). Then a fresh daemon starts on the same state and
the test checks (UPD-REC-001):

- exactly one ``beacon`` process runs, and the daemon's record, the pinned
  version, and the version in the module's heartbeat are the same;
- that version is 1.0 (the old one) when the daemon died before ``committed``,
  and 1.1 after it: never a mix;
- no partial install directory is left or selected;
- the history shows the attempt ``interrupted`` (or ``committed``).

Nine crash points: the eight steps, and inside the install (between
``downloaded`` and ``installed``, the partial directory complete but not
renamed). The CI form runs them on one platform in a chain (the daemon
that checks the recovery from one step is then killed at the next), so the
module's 1.1 is already in the store from the crash point ``installed`` on; the ``slow``
form gives every crash point a fresh platform.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from modkit import allocate_domain, build_module_wheel, preinstall, publish_repo, wait_for, worker_pids, write_platform

from hardpoint_runtime._plugins import store_paths
from hardpoint_runtime._updater import CRASH_ENV, MID_INSTALL
from hardpoint_runtime.update._journal import STEPS

#: Every journal step, and inside the install (partial directory complete, not yet renamed into place).
CRASH_POINTS = (*STEPS[:2], MID_INSTALL, *STEPS[2:])

#: A daemon in its own process: once beacon is active and beating it prints what runs (JSON), then on
#: "apply" applies 1.1 (``HARDPOINT_UPDATE_CRASH_AT`` kills it mid-way) and on "stop" (or end of input) stops.
_DAEMON = textwrap.dedent(
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
    for line in sys.stdin:
        if line.strip() == "apply":
            print(json.dumps({"not_killed": str(d.update_apply("beacon", "1.1"))}), flush=True)
        else:
            break
    d.stop()
    """
)


class _Daemon:
    """One run of :data:`_DAEMON` on a platform."""

    def __init__(self, config: Path, crash_at: str | None) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash_at is not None:
            env[CRASH_ENV] = crash_at
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DAEMON, str(config)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def status(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the daemon exited before reporting (code {self.proc.poll()})"
        seen: dict[str, Any] = json.loads(line)
        return seen

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def apply_and_die(self, step: str) -> None:
        self.send("apply")
        code = self.proc.wait(timeout=120)
        assert code == -signal.SIGKILL, f"daemon not killed at {step} (exit {code})"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send("stop")
            self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _check_consistent(seen: dict[str, Any], domain_id: int, root: Path, step: str) -> None:
    """What a restarted daemon runs after a kill at ``step`` (UPD-REC-001)."""
    expected = "1.1" if step == "committed" else "1.0"  # only a committed attempt keeps the new version
    assert (seen["state"], seen["version"], seen["pin"], seen["beat_version"]) == (
        "active", expected, expected, expected,
    ), (step, seen)  # fmt: skip
    assert worker_pids(domain_id, "beacon") == [seen["pid"]]  # exactly one beacon process: the daemon's
    last_step, outcome, from_v, to_v, cause = seen["history"][0]
    written = "downloaded" if step == MID_INSTALL else step  # the last step written before the kill
    assert (last_step, from_v, to_v) == (written, "1.0", "1.1")
    assert (outcome, cause) == (("committed", "") if step == "committed" else ("interrupted", "interrupted"))
    store = root / "state" / "modules" / "beacon"
    assert not list(store.glob(".partial-*"))
    assert all(Path(p).parent.name in {"1.0", "1.1"} for p in store_paths(root / "state" / "modules"))
    print(f"crash point {CRASH_POINTS.index(step) + 1}/{len(CRASH_POINTS)} ({step}): back on {expected}, consistent")


def _dead_daemons_modules_end(domain_id: int) -> None:
    # The killed daemon's module processes see their stdin close and end by themselves.
    wait_for(lambda: not worker_pids(domain_id), timeout=30, what="the dead daemon's module processes to end")


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


def test_daemon_killed_at_every_step_comes_back_consistent(tmp_path: Path, repo: tuple[Path, Path]) -> None:
    """CI form: one platform; the daemon that checks the recovery from step k is the one killed at step k+1."""
    repo_dir, v10 = repo
    root = tmp_path / "plat"
    domain = allocate_domain()
    covered = []
    try:
        config = write_platform(root, domain.id, repo_dir, gate_timeout_s=15.0, probation_s=1.0)
        preinstall(root, v10, "1.0")
        previous = None
        for step in (*CRASH_POINTS, None):
            daemon = _Daemon(config, step)
            try:
                seen = daemon.status()
                if previous is not None:
                    _check_consistent(seen, domain.id, root, previous)
                    covered.append(previous)
                if step is None:
                    daemon.stop()
                    break
                daemon.apply_and_die(step)
            finally:
                daemon.close()
            _dead_daemons_modules_end(domain.id)
            _check_killed_mid_install(root, step)
            previous = step
    finally:
        _kill_leftovers(domain.id)
        domain.release()
    print(f"crash points covered: {len(covered)} ({', '.join(covered)})")
    assert covered == list(CRASH_POINTS)


@pytest.mark.slow
@pytest.mark.parametrize("step", CRASH_POINTS)
def test_daemon_killed_at_step_on_a_fresh_platform(tmp_path: Path, repo: tuple[Path, Path], step: str) -> None:
    """Each crash point on a fresh platform (nothing of 1.1 downloaded or installed before the attempt)."""
    repo_dir, v10 = repo
    root = tmp_path / "plat"
    domain = allocate_domain()
    try:
        config = write_platform(root, domain.id, repo_dir, gate_timeout_s=15.0, probation_s=1.0)
        preinstall(root, v10, "1.0")
        killed = _Daemon(config, step)
        try:
            assert killed.status()["version"] == "1.0"
            killed.apply_and_die(step)
        finally:
            killed.close()
        _dead_daemons_modules_end(domain.id)
        _check_killed_mid_install(root, step)
        checker = _Daemon(config, None)
        try:
            _check_consistent(checker.status(), domain.id, root, step)
            checker.stop()
        finally:
            checker.close()
    finally:
        _kill_leftovers(domain.id)
        domain.release()


def _check_killed_mid_install(root: Path, step: str) -> None:
    """Killed inside the install, the partial directory is there (the restart must remove it)."""
    partials = list((root / "state" / "modules" / "beacon").glob(".partial-*"))
    if step == MID_INSTALL:
        assert partials, "the daemon was not killed inside the install"
    else:
        assert not partials


def _kill_leftovers(domain_id: int) -> None:
    for pid in worker_pids(domain_id):
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
