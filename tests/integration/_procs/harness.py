"""Parent side of the integration tests: DDS domains, child processes, waiting.

Every test gets its own :class:`Dds`: a domain id that no other test using this
harness on this machine holds at the same time (a lock file per id), and a
Cyclone DDS discovery tag unique to the test, layered over the packaged
``loopback.xml`` (interface ``lo``, no multicast, unicast peer 127.0.0.1). The
tag makes participants of other tests, and of other sessions that happen to
use the same domain id, invisible, so a test can never see foreign traffic.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import hardpoint

PROCS = Path(__file__).resolve().parent
NODE = PROCS / "node.py"
SCHEMA_DECODER = PROCS / "schema_decoder.py"
#: The packaged default configuration of the transport.
LOOPBACK_XML = Path(hardpoint.__file__).resolve().parent / "_dds" / "loopback.xml"
#: Domain ids handed out (1..230: the default port mapping allows 0..232).
DOMAIN_IDS = range(1, 231)

T = TypeVar("T")

_domain_counter = itertools.count()


@dataclass
class Dds:
    """The DDS domain of one test."""

    domain_id: int
    tag: str
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def config(self) -> str:
        """Cyclone DDS configuration: the packaged loopback.xml plus this test's discovery tag."""
        return f"file://{LOOPBACK_XML},<Discovery><Tag>{self.tag}</Tag></Discovery>"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a child process: the loopback configuration, no colours, wide lines, unbuffered."""
        env = dict(os.environ)
        env.update(
            CYCLONEDDS_URI=self.config,
            COLUMNS="200",
            NO_COLOR="1",
            TERM="dumb",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def allocate_dds() -> Dds:
    """A domain id that no other holder of this harness uses right now, and a fresh discovery tag."""
    lock_dir = Path(tempfile.gettempdir()) / "hardpoint-it-domains"
    lock_dir.mkdir(exist_ok=True)
    start = os.getpid() * 37 + next(_domain_counter) * 7
    for i in range(len(DOMAIN_IDS)):
        domain_id = DOMAIN_IDS[(start + i) % len(DOMAIN_IDS)]
        lock = open(lock_dir / f"{domain_id}.lock", "w")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        tag = f"hp-it-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return Dds(domain_id, tag, lock)
    raise RuntimeError("every DDS domain id of the integration tests is in use on this machine")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something true, and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Child:
    """A child process that speaks JSON lines on stdin/stdout; stderr goes to a file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"stdout of {name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr_text(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def _died(self, what: str) -> AssertionError:
        rc = self.proc.poll()
        return AssertionError(f"{self.name}: {what} (exit code {rc}); stderr:\n{self.stderr_text()[-4000:]}")

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._died(f"cannot send {message.get('op')!r}: stdin closed") from None

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next JSON line of the child's stdout."""
        answer = self.poll(timeout)
        if answer is None:
            raise self._died(f"no output within {timeout:g} s")
        return answer

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The next JSON line of the child's stdout, or ``None`` if there is none within ``timeout`` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            raise self._died("exited")
        try:
            value: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            raise self._died(f"printed a line that is not JSON: {line!r}") from None
        return value

    def call(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer; fail if the child reports an error."""
        self.send({"op": op, **args})
        answer = self.recv(timeout)
        if not answer.get("ok"):
            raise self._died(f"{op} failed: {answer.get('error')}")
        return answer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 5.0) -> int | None:
        """Ask the child to exit (``exit`` command, then end of stdin); kill it if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._stderr.close()
        return self.proc.returncode


class Node(Child):
    """An SDK module process (``_procs/node.py``): a Bus on a CycloneTransport in this test's domain."""

    def __init__(
        self,
        dds: Dds,
        module: str,
        log_dir: Path,
        *,
        provides: Sequence[str] = (),
        requires: Sequence[str] = (),
    ) -> None:
        argv = [
            sys.executable,
            str(NODE),
            "--domain",
            str(dds.domain_id),
            "--config",
            dds.config,
            "--module",
            module,
            *[a for iface in provides for a in ("--provides", iface)],
            *[a for iface in requires for a in ("--requires", iface)],
        ]
        super().__init__(module, argv, dds.env(), log_dir)
        self.module = module
        self._cursor: dict[str, int] = {}
        self.ready = False

    def wait_ready(self, timeout: float = 15.0) -> None:
        if not self.ready:
            hello = self.recv(timeout)
            if not hello.get("ready"):
                raise self._died(f"unexpected first line {hello!r}")
            self.ready = True

    def publish(self, iface: str, messages: Sequence[Any], *, burst: int = 0, pause_s: float = 0.0) -> dict[str, int]:
        """Publish protobuf ``messages`` in bursts of ``burst`` (0: all at once); returns the publisher counters."""
        hexes = [m.SerializeToString().hex() for m in messages]
        answer = self.call("publish", timeout=30.0, iface=iface, messages=hexes, burst=burst, pause_s=pause_s)
        counters: dict[str, int] = answer["counters"]
        return counters

    def new_items(self, iface: str) -> list[dict[str, Any]]:
        """Messages delivered on ``iface`` since the last call: ``{"id", "seq", "key", "source", "epoch"[, "hex"]}``."""
        start = self._cursor.get(iface, 0)
        answer = self.call("items", iface=iface, start=start)
        items: list[dict[str, Any]] = answer["items"]
        self._cursor[iface] = start + len(items)
        return items

    def counters(self, timeout: float = 10.0) -> dict[str, dict[str, int]]:
        """Subscription counters by interface key (``alert``, ``nav``, ...), once they are settled.

        The SDK counts a message as delivered when the callback that recorded it
        has returned, so a snapshot taken just after a message was recorded may
        not count it yet: wait until ``delivered`` equals the recorded messages.
        """

        def settled() -> dict[str, dict[str, int]] | None:
            answer = self.call("counters")
            counters: dict[str, dict[str, int]] = answer["counters"]
            counts: dict[str, int] = answer["counts"]
            return counters if all(c["delivered"] == counts[k] for k, c in counters.items()) else None

        return wait_until(settled, timeout, f"the counters of {self.name} to settle")
