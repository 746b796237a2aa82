"""Acceptance 7 of issue 3: a real client in another language drives the management API.

``tests/interop/node/list_modules.js`` (Node.js, ``@grpc/grpc-js`` and
``@grpc/proto-loader`` at the versions pinned in ``package.json`` and
``package-lock.json``) loads only the ``.proto`` files of ``proto/`` and calls
``ListModules`` and ``GetModule`` on the real management server (``serve()``
on a Unix socket) backed by the fake platform control of the runtime tests.

The npm packages are installed from the registry with ``npm ci`` into
``tests/interop/node/node_modules`` (git-ignored) and reused while
``package-lock.json`` is unchanged. The tests are skipped, with the reason,
only when ``node`` is not installed; without ``npm``, or when the registry
cannot be reached, they fail and say so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hardpoint_runtime._control import IntrusionInfo
from hardpoint_runtime._management import ManagementServer, serve

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
PROTO_DIR = REPO / "proto"
SCRIPT = NODE_DIR / "list_modules.js"
STAMP = NODE_DIR / "node_modules" / ".hardpoint-lock.sha256"

sys.path.insert(0, str(REPO / "tests" / "runtime"))
from fakes import FakeControl, sample_modules  # noqa: E402

#: 2**63 + 5 does not fit a JavaScript number: it must arrive as the exact decimal string.
BIG_COUNTER = 2**63 + 5


def _platform() -> list[Any]:
    """The fake's three modules plus one restarting with a 64-bit counter and a large pid."""
    nav = sample_modules()[0]
    extra = replace(
        nav,
        name="zz-restarting",
        version="3.1.4rc1",
        state="restarting",
        target_state="inactive",
        health="failed",
        reason="exited with code 17",
        pid=2**40 + 3,
        restarts=7,
        counters={"tx_samples": BIG_COUNTER, "bad_samples": 0},
        intrusions=(
            IntrusionInfo(
                interface="hardpoint.core.v1.ModuleHealth", kind="forged_heartbeat", writer="ab" * 16,
                participant="cd" * 16, claimed_source="zz-restarting", holder="participant:" + "ef" * 16,
                count=BIG_COUNTER,
            ),
        ),
        participants=("ef" * 16,),
        origin="baseline",
        digest="sha256:" + "ab" * 32,
    )  # fmt: skip
    return [*sample_modules(), extra]


def _npm_install() -> None:
    """``npm ci`` into tests/interop/node once per package-lock.json (under a lock, for parallel runs)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            "node is installed but npm is not: install npm (Debian: apt-get install npm; scripts/setup does it) "
            "to let this test fetch @grpc/grpc-js and @grpc/proto-loader"
        )
    want = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    lock_path = Path(tempfile.gettempdir()) / f"hardpoint-npm-{hashlib.sha256(bytes(NODE_DIR)).hexdigest()[:12]}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if STAMP.is_file() and STAMP.read_text().strip() == want:
            return
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=150,  # under the 180 s pytest-timeout, to fail with npm's own output
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"npm ci in {NODE_DIR} failed (exit {proc.returncode}); is the npm registry reachable?\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        STAMP.write_text(want + "\n")


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed (no `node` on PATH): the Node.js management client cannot run")
    _npm_install()
    return path


@pytest.fixture
def control() -> FakeControl:
    return FakeControl(_platform())


@pytest.fixture
def server(control: FakeControl, tmp_path: Path) -> Iterator[ManagementServer]:
    srv = serve(control, socket_path=tmp_path / "hardpointd.sock")
    yield srv
    srv.stop(1.0).wait()


def _run(node: str, target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(SCRIPT), target, str(PROTO_DIR), *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NODE_OPTIONS": ""},
    )


def _client(node: str, server: ManagementServer, *args: str) -> dict[str, Any]:
    proc = _run(node, server.unix_target, *args)
    assert proc.returncode == 0, f"list_modules.js failed (exit {proc.returncode}):\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _expected(m: Any) -> dict[str, Any]:
    """A ModuleStatus as proto-loader renders it: proto field names, enum names, 64-bit integers as strings."""
    health = "UNSPECIFIED" if m.health == "unknown" else m.health.upper()
    return {
        "name": m.name,
        "version": m.version,
        "supplier": m.supplier,
        "node": m.node,
        "state": f"MODULE_STATE_{m.state.upper()}",
        "target_state": f"MODULE_STATE_{m.target_state.upper()}",
        "health": f"HEALTH_STATUS_{health}",
        "reason": m.reason,
        "pid": str(m.pid),
        "restarts": m.restarts,
        "provides": list(m.provides),
        "requires": list(m.requires),
        "unmet": [{"interface": u.interface, "major": u.major, "reason": u.reason} for u in m.unmet],
        "counters": {k: str(v) for k, v in m.counters.items()},
        "heartbeat_age_s": m.heartbeat_age_s,
        "local": m.local,
        "intrusions": [
            {
                "interface": i.interface,
                "kind": i.kind,
                "writer": i.writer,
                "participant": i.participant,
                "claimed_source": i.claimed_source,
                "holder": i.holder,
                "count": str(i.count),
            }
            for i in m.intrusions
        ],
        "participants": list(m.participants),
        "origin": m.origin,
        "digest": m.digest,
    }


def test_node_client_lists_the_modules_the_server_holds(
    node: str, server: ManagementServer, control: FakeControl
) -> None:
    result = _client(node, server)
    served = sorted(control.list_modules(), key=lambda m: m.name)
    got = result["modules"]
    assert [m["name"] for m in got] == ["alerter", "nav-gnss", "tracker", "zz-restarting"]
    assert [(m["name"], m["version"], m["state"]) for m in got] == [
        (m.name, m.version, f"MODULE_STATE_{m.state.upper()}") for m in served
    ]
    assert got == [_expected(m) for m in served]
    assert got[-1]["counters"]["tx_samples"] == str(BIG_COUNTER)
    # Built from proto/ alone: every .proto file there, and nothing else, was loaded.
    assert result["protos"] == sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def test_node_client_gets_a_module_and_sees_not_found_for_an_unknown_one(
    node: str, server: ManagementServer, control: FakeControl
) -> None:
    result = _client(node, server, "--get", "tracker", "--get", "no-such-module")
    found, missing = result["get"]
    assert found == {"name": "tracker", "ok": True, "module": _expected(control.get_module("tracker"))}
    assert missing["name"] == "no-such-module"
    assert missing["ok"] is False
    assert (missing["code"], missing["code_name"]) == (5, "NOT_FOUND")  # grpc.status.NOT_FOUND in Node
    assert "no-such-module" in missing["details"]


def test_node_client_reports_an_unreachable_daemon(node: str, tmp_path: Path) -> None:
    proc = _run(node, f"unix:{tmp_path / 'nobody.sock'}")
    assert proc.returncode == 1
    assert "UNAVAILABLE" in proc.stderr
    assert proc.stdout == ""
