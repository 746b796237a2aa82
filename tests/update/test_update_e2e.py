"""Issue 5, acceptance 1 and 6, end to end and only through the command line.

Every step a person would type: ``hardpoint release init``, ``add-supplier`` and
``publish`` make a real TUF repository; a real ``hardpointd`` runs a platform
whose ``[update]`` section points at it (an HTTP mirror on 127.0.0.1, or a
directory as removable media); ``hardpoint update apply`` installs 1.0, then
1.1 with a new capability, which the platform runs. A separate subscriber
process (a plain SDK ``Bus`` on the platform's DDS domain) receives the
module's NavState (a reliable STATE topic) across the switch and reports
every sample; the test checks no sample was lost or duplicated and prints the
switch gap it measured. Refused updates (a tampered wheel, a 1.1 that would
leave another module's requirement unmet) exit 1 naming cause, module and
role, and ``hardpoint update history`` lists them.

The module wheels are real (``modkit.build_module_wheel``: ``python -m build``).
The platform harness (daemon start/stop, DDS domain per test, leftover worker
clean-up) is the runtime integration suite's (``tests/runtime_integration/conftest.py``).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modkit import build_module_wheel

pytestmark = pytest.mark.integration


def _harness() -> Any:
    """The runtime integration harness, loaded once under its own name (see its docstring)."""
    name = "hp_runtime_it"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "runtime_integration" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


it = _harness()

#: Gate window: the staged version must be healthy and publish NavState within it (generous: loaded CI).
GATE_TIMEOUT_S = 40.0
#: Probation after the switch: short, the test modules misbehave (or not) at once.
PROBATION_S = 1.5
#: One ``hardpoint update apply``: download, install, worker start, gate, probation, on a loaded machine.
APPLY_TIMEOUT_S = 180.0
#: Upper bound of the switch gap seen by a subscriber. NavState is 10 Hz, so 100 ms is the normal
#: interval; the bound is generous because other test runs share the two CPUs.
GAP_BOUND_S = 3.0

FUSED = "hardpoint.track.v1.FusedTrack"
NAV = "hardpoint.nav.v1.NavState"


# --------------------------------------------------------------------------- the CLI


def hardpoint(*args: str | Path, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``hardpoint ARGS...`` as a subprocess, the way an operator runs it."""
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="400")
    for var in ("HARDPOINT_SOCKET", "HARDPOINT_TCP"):
        env.pop(var, None)
    return subprocess.run(
        [*it.HARDPOINT, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass
class Release:
    """An update repository made with ``hardpoint release``, and the session's module builds."""

    root: Path
    builds: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    def init(self) -> None:
        ok(hardpoint("release", "init", self.repo, "--keys", self.keys, cwd=self.root))
        ok(hardpoint("release", "add-supplier", self.repo, "acme", "--keys", self.keys, cwd=self.root))

    def publish(self, version: str, *, extra_provides: tuple[str, ...] = (), name: str = "beacon") -> dict[str, Any]:
        wheel = build_module_wheel(self.builds, name=name, version=version, extra_provides=extra_provides)
        out = ok(
            hardpoint("release", "publish", self.repo, "acme", wheel, "--keys", self.keys, "--json", cwd=self.root)
        )
        published: dict[str, Any] = json.loads(out)
        return published

    def stored_wheel(self, target: str) -> Path:
        """The file a mirror serves for ``target`` (``targets/<supplier>/<module>/<sha256>.<file>``)."""
        supplier, module, filename = target.split("/")
        (found,) = (self.repo / "targets" / supplier / module).glob(f"*.{filename}")
        return found


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("modkit")


@pytest.fixture
def release(tmp_path_factory: pytest.TempPathFactory, builds: Path) -> Release:
    made = Release(tmp_path_factory.mktemp("rel"), builds)
    made.init()
    return made


@pytest.fixture
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with it.open_platform(tmp_path_factory.mktemp("hp"), name="upd") as p:
        yield p


def write_platform(platform: Any, release: Release, *, source: str, modules: list[Any]) -> None:
    """``platform.toml``: the harness's platform plus an ``[update]`` section (``source`` is url=/directory=)."""
    text = it.platform_toml(platform.name, platform.domain_id, [])
    text += textwrap.dedent(
        f"""
        [update]
        {source}
        trusted_root = {json.dumps(str(release.repo / "metadata" / "1.root.json"))}
        gate_timeout_s = {GATE_TIMEOUT_S}
        probation_s = {PROBATION_S}
        """
    )
    for m in modules:
        text += "\n" + (m if isinstance(m, it.Mod) else it.Mod(m)).toml()
    platform.write_text(text)


def update(platform: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """``hardpoint --socket SOCKET update ARGS...``."""
    return hardpoint("--socket", platform.socket, "update", *args, cwd=platform.root, timeout=APPLY_TIMEOUT_S)


def module_json(platform: Any, name: str) -> dict[str, Any]:
    status = json.loads(ok(hardpoint("--socket", platform.socket, "status", "--json", cwd=platform.root)))
    (found,) = [m for m in status["modules"] if m["name"] == name]
    return dict(found)


# --------------------------------------------------------------------------- the subscriber

_SUBSCRIBER = r"""
import json, sys, threading, time
from hardpoint import Bus, CycloneTransport
from hardpoint.nav.v1 import nav_pb2

domain, out_path = int(sys.argv[1]), sys.argv[2]
transport = CycloneTransport(domain_id=domain)
bus = Bus(transport, module="update-e2e-subscriber", provides=(), requires=None)
lock = threading.Lock()
out = open(out_path, "w", buffering=1)

def on(msg, info):
    with lock:
        out.write(json.dumps([info.source, info.epoch, info.seq, time.monotonic_ns()]) + "\n")

sub = bus.subscribe(nav_pb2.NavState, on, with_info=True, history_depth=1000)
print("ready", flush=True)
sys.stdin.read()  # the test closes stdin to stop
with lock:
    out.close()
print(json.dumps(sub.counters.as_dict()), flush=True)
bus.close()
transport.close()
"""


@dataclass
class Seen:
    """What the subscriber received: ``(source, epoch, seq, receive time ns)`` per sample, and its counters."""

    samples: list[tuple[str, int, int, int]]
    counters: dict[str, int]

    def writers(self) -> list[tuple[str, int]]:
        """(source, epoch) of each writer, in the order their first sample arrived."""
        return list(dict.fromkeys((s, e) for s, e, _, _ in self.samples))

    def lost_and_duplicates(self) -> tuple[int, int]:
        """Sequence gaps and repeats per writer, counted by the test from the raw samples."""
        lost = duplicates = 0
        last: dict[tuple[str, int], int] = {}
        for source, epoch, seq, _ in self.samples:
            prev = last.get((source, epoch))
            if prev is not None:
                if seq <= prev:
                    duplicates += 1
                    continue
                lost += seq - prev - 1
            last[(source, epoch)] = seq
        return lost, duplicates

    def switch_gap_s(self, old: tuple[str, int], new: tuple[str, int]) -> float:
        """From the old writer's last sample to the new writer's first, as received (<= 0: they overlapped)."""
        last_old = max(t for s, e, _, t in self.samples if (s, e) == old)
        first_new = min(t for s, e, _, t in self.samples if (s, e) == new)
        return (first_new - last_old) / 1e9

    def largest_interval_s(self) -> float:
        """The longest time between two consecutive samples (any writer)."""
        times = sorted(t for *_, t in self.samples)
        return max((b - a for a, b in itertools.pairwise(times)), default=0) / 1e9


class Subscriber:
    """A plain SDK subscriber of NavState in its own process, on the platform's DDS domain."""

    def __init__(self, domain_id: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SUBSCRIBER, str(domain_id), str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", (
            f"subscriber did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
        )

    def count(self) -> int:
        return len(self.out.read_text().splitlines()) if self.out.exists() else 0

    def stop(self) -> Seen:
        stdout, stderr = self.proc.communicate(input="", timeout=30)
        assert self.proc.returncode == 0, stderr
        samples = [tuple(json.loads(line)) for line in self.out.read_text().splitlines()]
        return Seen(samples, json.loads(stdout.strip().splitlines()[-1]))  # type: ignore[arg-type]

    def kill(self) -> None:
        if self.proc.poll() is None:
            it.kill_pid(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def subscriber(platform: Any, tmp_path: Path) -> Iterator[Callable[[], Subscriber]]:
    made: list[Subscriber] = []

    def start() -> Subscriber:
        made.append(Subscriber(platform.domain_id, tmp_path / f"samples-{len(made)}.jsonl"))
        return made[-1]

    yield start
    for s in made:
        s.kill()


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.1)


# --------------------------------------------------------------------------- acceptance 1


def _install_then_switch(platform: Any, release: Release, start_subscriber: Callable[[], Subscriber]) -> None:
    """The scenario of acceptance 1 on a platform whose [update] section is written already."""
    release.publish("1.0")
    platform.start()
    assert module_json(platform, "beacon")["state"] != "active"  # configured, nothing installed yet

    applied = update(platform, "apply", "beacon")
    assert applied.returncode == 0, applied.stdout + applied.stderr + platform.log_tail()
    assert "beacon (none) -> 1.0: committed" in applied.stdout
    first = module_json(platform, "beacon")
    assert (first["version"], first["state"]) == ("1.0", "active")
    assert FUSED not in first["provides"]

    sub = start_subscriber()
    wait_for(lambda: sub.count() >= 10, "the subscriber to receive 1.0's NavState")

    release.publish("1.1", extra_provides=(FUSED,))
    offers = json.loads(ok(update(platform, "check", "--json")))
    (offer,) = [o for o in offers if o["module"] == "beacon"]
    assert (offer["installed_version"], offer["available_version"], offer["status"]) == ("1.0", "1.1", "available")

    switched = update(platform, "apply", "beacon")
    assert switched.returncode == 0, switched.stdout + switched.stderr + platform.log_tail()
    assert "beacon 1.0 -> 1.1: committed" in switched.stdout
    after = sub.count()
    wait_for(lambda: sub.count() >= after + 10, "the subscriber to receive 1.1's NavState")
    seen = sub.stop()

    now = module_json(platform, "beacon")
    assert (now["version"], now["state"]) == ("1.1", "active")
    assert FUSED in now["provides"]  # the new capability

    writers = seen.writers()
    assert len(writers) >= 2, f"expected samples from 1.0 and 1.1, saw writers {writers}"
    lost, duplicates = seen.lost_and_duplicates()
    gap_s = seen.switch_gap_s(writers[0], writers[-1])
    largest_s = seen.largest_interval_s()
    daemon_gap = json.loads(ok(update(platform, "history", "beacon", "--json")))[0]["switch_gap_ms"]
    print(
        f"\nswitch 1.0 -> 1.1 seen by the subscriber: {len(seen.samples)} samples from {len(writers)} writers, "
        f"lost {lost}, duplicates {duplicates}, gap old-last -> new-first {gap_s * 1000:.1f} ms, "
        f"largest interval {largest_s * 1000:.1f} ms; daemon's measurement {daemon_gap:.1f} ms; "
        f"SDK counters {seen.counters}"
    )
    assert (lost, duplicates) == (0, 0)
    assert (seen.counters["lost"], seen.counters["duplicates"]) == (0, 0)
    assert largest_s < GAP_BOUND_S
    # the management API's event log tells the same story
    events = json.loads(ok(hardpoint("--socket", platform.socket, "events", "--json", cwd=platform.root)))
    committed = [e["detail"] for e in events if e["module"] == "beacon" and e["kind"] == "update_committed"]
    assert {"from": "1.0", "to": "1.1"} in committed


def test_http_mirror_install_then_switch_to_a_new_capability_without_loss(
    platform: Any, release: Release, serve: Any, subscriber: Callable[[], Subscriber]
) -> None:
    """UPD-CLI-010."""
    served = serve(release.repo)
    write_platform(platform, release, source=f"url = {json.dumps(served.url + '/')}", modules=["beacon"])
    _install_then_switch(platform, release, subscriber)
    assert any(p.startswith("/targets/acme/beacon/") for p in served.requests)  # fetched over HTTP


def test_directory_install_then_switch_to_a_new_capability_without_loss(
    platform: Any, release: Release, subscriber: Callable[[], Subscriber]
) -> None:
    """UPD-CLI-010."""
    write_platform(platform, release, source=f"directory = {json.dumps(str(release.repo))}", modules=["beacon"])
    _install_then_switch(platform, release, subscriber)
    # and back: the operator returns to 1.0, still installed beside 1.1
    back = update(platform, "rollback", "beacon")
    assert back.returncode == 0, back.stdout + back.stderr + platform.log_tail()
    assert "beacon 1.1 -> 1.0" in back.stdout
    now = module_json(platform, "beacon")
    assert (now["version"], now["state"]) == ("1.0", "active")
    assert FUSED not in now["provides"]
    newest = json.loads(ok(update(platform, "history", "beacon", "--limit", "1", "--json")))[0]
    assert (newest["from_version"], newest["to_version"], newest["cause"]) == ("1.1", "1.0", "operator")


# --------------------------------------------------------------------------- acceptance 6


def _refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("hardpoint: error: update of beacon 1.0 -> ")
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_refused_updates_name_cause_module_and_role_and_history_lists_them(platform: Any, release: Release) -> None:
    """UPD-CLI-011: a 1.1 that drops what geofence requires, then a tampered 1.2: each refused, 1.0 keeps running."""
    write_platform(
        platform, release, source=f"directory = {json.dumps(str(release.repo))}", modules=["beacon", "geofence"]
    )
    release.publish("1.0", extra_provides=(FUSED,))
    platform.start()
    ok(update(platform, "apply", "beacon"))
    # geofence was blocked at start (nothing provided FusedTrack): the committed install starts it (UPD-RESOLVE-001).
    running = platform.wait_active(["beacon", "geofence"], timeout=60)
    pid = running["beacon"]["pid"]

    release.publish("1.1")  # FusedTrack is gone: geofence would be left without its input
    (offer,) = [o for o in json.loads(ok(update(platform, "check", "--json"))) if o["module"] == "beacon"]
    assert (offer["available_version"], offer["status"]) == ("1.1", "refused")
    assert "geofence" in offer["reason"]
    unmet = update(platform, "apply", "beacon")
    _refused(unmet, "1.1 refused", "cause UnmetRequirementError", "role acme", "geofence", FUSED)

    published = release.publish("1.2", extra_provides=(FUSED,))
    stored = release.stored_wheel(published["target"])
    stored.write_bytes(stored.read_bytes()[:-64] + b"\0" * 64)  # a mirror (or media) serving altered bytes
    tampered = update(platform, "apply", "beacon")
    _refused(tampered, "1.2 refused", "role acme", published["target"])
    assert "hash or length mismatch" in tampered.stderr

    history = json.loads(ok(update(platform, "history", "--json")))
    newest, older = history[0], history[1]
    assert (newest["module"], newest["from_version"], newest["to_version"], newest["outcome"]) == (
        "beacon", "1.0", "1.2", "refused"
    )  # fmt: skip
    assert newest["role"] == "acme"
    assert published["target"] in newest["reason"]
    assert (older["to_version"], older["outcome"], older["cause"]) == ("1.1", "refused", "UnmetRequirementError")
    assert "geofence" in older["reason"]
    text = ok(update(platform, "history"))
    assert "UnmetRequirementError" in text
    assert "1.0 -> 1.2" in text
    # nothing changed on the platform: the same 1.0 process still runs
    still = module_json(platform, "beacon")
    assert (still["version"], still["state"], still["pid"]) == ("1.0", "active", pid)
