"""Two "hosts" on one machine: two network namespaces joined by a veth pair.

The fixture :func:`netns_pair` builds, with unique names (random suffix):

- namespaces ``hp<sfx>a`` and ``hp<sfx>b``, each with ``lo`` up;
- one veth pair created directly inside them (it never exists in the root
  namespace), both ends named ``hpv<sfx>`` so that one platform configuration
  text, with one interface name, serves both nodes;
- private addresses ``10.231.<n>.1/24`` (node a) and ``10.231.<n>.2/24`` (node b)
  on the two ends. The namespaces have no other interface and no route out, so
  nothing sent there can reach any other network.

Processes started with :meth:`NetnsPair.spawn` run inside a namespace in their
own session. Teardown (also after a failure or an interrupted setup): SIGTERM
each spawned process group, SIGKILL what remains, SIGKILL every process still
in either namespace (``ip netns pids``: module workers live in sessions of
their own), then delete both namespaces, which deletes the veth pair.

Needs root and iproute2's ``ip``; without them the tests are skipped with the
reason printed (``scripts/setup`` installs iproute2).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

#: Seconds a spawned process gets to stop after SIGTERM before its group is killed.
STOP_GRACE_S = 10.0


def skip_reason() -> str | None:
    """Why multi-host tests cannot run here, or None when they can."""
    if shutil.which("ip") is None:
        return "multi-host tests need iproute2's 'ip' (scripts/setup installs it)"
    if os.geteuid() != 0:
        return "multi-host tests create network namespaces and need root"
    return None


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; on failure raise with its stderr."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Node:
    name: str  #: node name in the platform ("a", "b")
    netns: str
    address: str  #: this node's veth address (without prefix length)


@dataclass
class NetnsPair:
    """Two namespaces joined by a veth pair; see the module docstring."""

    suffix: str
    subnet: int
    veth: str
    a: Node
    b: Node
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  #: namespaces that exist, for teardown

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.a, self.b

    @property
    def peers(self) -> list[str]:
        return [self.a.address, self.b.address]

    def node(self, name: str) -> Node:
        return {"a": self.a, "b": self.b}[name]

    # -- set-up ---------------------------------------------------------------

    def build(self) -> None:
        for n in self.nodes:
            ip("netns", "add", n.netns)
            self.created.append(n.netns)
        ip(
            "link",
            "add",
            self.veth,
            "netns",
            self.a.netns,
            "type",
            "veth",
            "peer",
            "name",
            self.veth,
            "netns",
            self.b.netns,
        )
        for n in self.nodes:
            ip("-n", n.netns, "addr", "add", f"{n.address}/24", "dev", self.veth)
            ip("-n", n.netns, "link", "set", "lo", "up")
            ip("-n", n.netns, "link", "set", self.veth, "up")
        self._wait_carrier()

    def _wait_carrier(self, timeout_s: float = 5.0) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if all("LOWER_UP" in ip("-n", n.netns, "link", "show", self.veth).stdout for n in self.nodes):
                return
            time.sleep(0.05)
        raise RuntimeError(f"veth {self.veth} did not come up in {timeout_s} s")

    # -- operations -----------------------------------------------------------

    def set_link(self, node: str, *, up: bool) -> None:
        """``ip link set VETH up|down`` inside ``node``'s namespace."""
        ip("-n", self.node(node).netns, "link", "set", self.veth, "up" if up else "down")

    def addresses(self, node: str) -> str:
        """``ip -o addr`` of every interface in ``node``'s namespace."""
        return ip("-n", self.node(node).netns, "-o", "addr", "show").stdout

    def spawn(self, node: str, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``node``'s namespace, in a session of its own, output to ``log_path``."""
        log = log_path.open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.node(node).netns, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    # -- teardown -------------------------------------------------------------

    def close(self) -> list[str]:
        """Stop everything and delete the namespaces; returns what is left behind (empty when all is clean)."""
        problems: list[str] = []
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        end = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"netns teardown: pid {proc.pid} still running {STOP_GRACE_S} s after SIGTERM; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        for netns in self.created:
            self._kill_remaining(netns)
        for netns in self.created:
            done = ip("netns", "del", netns, check=False)
            if done.returncode != 0:
                problems.append(f"ip netns del {netns}: {done.stderr.strip()}")
        self.created.clear()
        for log in self.logs:
            log.close()
        listed = ip("netns", "list", check=False).stdout
        left = [n.netns for n in self.nodes if n.netns in listed.split()]
        if left:
            problems.append(f"namespaces still listed after teardown: {left}")
        if self.veth in ip("link", "show", check=False).stdout:
            problems.append(f"veth {self.veth} found in the root namespace after teardown")
        return problems

    @staticmethod
    def _kill_remaining(netns: str) -> None:
        for _ in range(50):
            pids = [int(p) for p in ip("netns", "pids", netns, check=False).stdout.split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def make_pair() -> NetnsPair:
    suffix = secrets.token_hex(3)
    subnet = secrets.randbelow(250) + 1
    return NetnsPair(
        suffix=suffix,
        subnet=subnet,
        veth=f"hpv{suffix}",
        a=Node("a", f"hp{suffix}a", f"10.231.{subnet}.1"),
        b=Node("b", f"hp{suffix}b", f"10.231.{subnet}.2"),
    )


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """Two namespaces joined by a veth pair, removed afterwards even on failure."""
    reason = skip_reason()
    if reason is not None:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    pair = make_pair()
    try:
        pair.build()
        yield pair
    finally:
        problems = pair.close()
        if problems:
            pytest.fail("teardown of the network namespaces: " + "; ".join(problems), pytrace=False)
