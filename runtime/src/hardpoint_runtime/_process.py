"""One module's OS process, as the daemon's supervisor sees it.

Starts :mod:`hardpoint_runtime._worker`, reads its protocol lines on a thread,
sends lifecycle requests and waits for the answers, and stops or kills it.
Nothing here decides *whether* to restart: that is :mod:`._policy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from hardpoint_runtime._errors import WorkerError  # re-exported: the supervisor's error

__all__ = ["ModuleProcess", "WorkerError"]


class ModuleProcess:
    """A running worker process for one module."""

    def __init__(self, name: str, spec: dict[str, Any], log_path: Path) -> None:
        self.name = name
        self.spec = spec
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.manifest: dict[str, Any] = {}
        #: GUID of the worker's DDS participant, from its ``ready`` event ("" before).
        self.participant = ""
        self._log: IO[str] | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._replies: dict[int, dict[str, Any]] = {}
        self._ready = False
        self._load_error = ""
        self._next_id = 0
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def start(self, *, timeout_s: float) -> None:
        """Spawn the worker and wait until it has loaded the module.

        :raises WorkerError: it failed to load or did not become ready in time.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", buffering=1)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hardpoint_runtime._worker", json.dumps(self.spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            start_new_session=True,  # a signal to the daemon's group does not hit modules
        )
        self._reader = threading.Thread(target=self._read, name=f"worker-{self.name}", daemon=True)
        self._reader.start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._ready or self._load_error or self._exited(), timeout_s)
        if self._load_error:
            raise WorkerError(self._load_error)
        if not ok or not self._ready:
            code = self.proc.poll()
            self.kill()
            why = f"exited with code {code}" if code is not None else f"not ready within {timeout_s:g} s"
            raise WorkerError(f"module {self.name!r} worker {why} (log: {self.log_path})")

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._cond:
                if msg.get("event") == "ready":
                    self._ready = True
                    self.manifest = msg.get("manifest", {})
                    self.participant = str(msg.get("participant", ""))
                elif msg.get("event") == "load_failed":
                    self._load_error = str(msg.get("error", "load failed"))
                elif "id" in msg:
                    self._replies[int(msg["id"])] = msg
                self._cond.notify_all()
        # End of output comes as the process exits, a moment before it can be reaped; wait for that,
        # or a waiter that checks _exited() now sees it still running and sleeps until its timeout.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with self._cond:
            self._cond.notify_all()

    def request(self, op: str, *, timeout_s: float, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its answer.

        :raises WorkerError: no answer within ``timeout_s`` or the process is gone.
        """
        if self.proc is None or self.proc.stdin is None or self._exited():
            raise WorkerError(f"module {self.name!r} process is not running")
        with self._cond:
            self._next_id += 1
            rid = self._next_id
        try:
            self.proc.stdin.write(json.dumps({"id": rid, "op": op, **fields}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            raise WorkerError(f"module {self.name!r} process does not take requests: {e}") from e
        with self._cond:
            self._cond.wait_for(lambda: rid in self._replies or self._exited(), timeout_s)
            reply = self._replies.pop(rid, None)
        if reply is None:
            raise WorkerError(f"module {self.name!r} did not answer {op!r} within {timeout_s:g} s")
        return reply

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, *, timeout_s: float) -> None:
        """Ask for an orderly shutdown; kill it if it does not exit in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        """SIGKILL the worker (used for hangs and when stop times out)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def describe_exit(code: int) -> str:
    """Human words for a process exit status."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
