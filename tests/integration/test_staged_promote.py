"""Staged publishing and promote over real Cyclone DDS, with a real worker process (SDK-BUS-STAGED, RT-WORKER-STAGED).

A module (``_staged_module.Counter``) runs in a worker started by
:class:`hardpoint_runtime._process.ModuleProcess` with ``write_prefix =
"hp-staged/"``: it publishes a reliable event stream (Alert ids 1, 2, 3, ..., in
bursts of 4 every 4 ms, so batches are waiting at times) and its heartbeat on the
staged topics. This test process watches both the
staged and the normal topics, promotes the worker while it keeps publishing,
then deactivates it and checks that every alert it published after the staged
reader first saw one arrived exactly once: those published before the promote
on the staged topic (the heartbeat sent at the promote says how many), the
later ones on the normal topic, in order, nothing lost.

The gap (last staged sample to first normal sample, as received here) and the
time the ``promote`` request took are printed (``pytest -s`` or ``-rP``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _procs.harness import Dds, wait_until

from hardpoint import STAGED_PREFIX, Bus, CycloneTransport, SampleInfo, Subscription
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import health_pb2
from hardpoint_runtime._inprocess import InProcessModule
from hardpoint_runtime._process import ModuleProcess, WorkerError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

HERE = Path(__file__).resolve().parent
MODULE = "staged-counter"
PUBLISHED = "pub:hardpoint.alert.v1.Alert.published"
#: Deadlines (not expected times): the machine may be loaded.
WAIT_S = 30.0
REQUEST_S = 20.0
PERIOD_S = 0.004
BURST = 4


@dataclass
class Arrivals:
    """Alerts received on one topic: (alert number, sequence, monotonic receive time), under a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[tuple[int, int, float]] = field(default_factory=list)

    def __call__(self, msg: alert_pb2.Alert, info: SampleInfo) -> None:
        now = time.monotonic()
        with self.lock:
            self.items.append((int(msg.alert_id), info.seq, now))

    def snapshot(self) -> list[tuple[int, int, float]]:
        with self.lock:
            return list(self.items)


@dataclass
class Beats:
    """Heartbeats of the module under test received on one topic."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[Any] = field(default_factory=list)

    def __call__(self, msg: health_pb2.ModuleHealth) -> None:
        if msg.module == MODULE:
            with self.lock:
                self.items.append(msg)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.items)


@dataclass
class Watcher:
    """This process's view of the bus: alerts and heartbeats on the normal and the staged topics."""

    transport: CycloneTransport
    bus: Bus
    normal: Arrivals
    staged: Arrivals
    beats_normal: Beats
    beats_staged: Beats
    subs: list[Subscription[Any]]


@pytest.fixture
def watcher(dds: Dds) -> Iterator[Watcher]:
    transport = CycloneTransport(domain_id=dds.domain_id, config=dds.config)
    try:
        bus = Bus(transport, module="it-watcher")
        normal, staged, beats_n, beats_s = Arrivals(), Arrivals(), Beats(), Beats()
        subs: list[Subscription[Any]] = [
            bus.subscribe(alert_pb2.Alert, normal, with_info=True),
            bus.subscribe(alert_pb2.Alert, staged, with_info=True, topic_prefix=STAGED_PREFIX),
            bus.subscribe(health_pb2.ModuleHealth, beats_n),
            bus.subscribe(health_pb2.ModuleHealth, beats_s, topic_prefix=STAGED_PREFIX),
        ]
        yield Watcher(transport, bus, normal, staged, beats_n, beats_s, subs)
        bus.close()
    finally:
        transport.close()


def worker_spec(dds: Dds, **extra: Any) -> dict[str, Any]:
    return {
        "module": MODULE,
        "entry_point": "_staged_module:Counter",
        "paths": [str(HERE)],
        "domain_id": dds.domain_id,
        "dds_config": dds.config,
        "config": {"period_s": PERIOD_S, "burst": BURST},
        "health_period_s": 0.5,
        **extra,
    }


@pytest.fixture
def worker(dds: Dds, tmp_path: Path) -> Iterator[ModuleProcess]:
    proc = ModuleProcess(MODULE, worker_spec(dds, write_prefix=STAGED_PREFIX), tmp_path / "worker.log")
    try:
        proc.start(timeout_s=WAIT_S)
        yield proc
    finally:
        proc.stop(timeout_s=10.0)


def request(proc: ModuleProcess, op: str, **fields: Any) -> dict[str, Any]:
    reply = proc.request(op, timeout_s=REQUEST_S, **fields)
    assert reply["ok"], f"{op} {fields}: {reply} (log: {proc.log_path.read_text()[-3000:]})"
    return reply


def contiguous(numbers: list[int]) -> bool:
    return numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True


def test_promote_moves_a_live_reliable_stream_without_loss_or_duplicate(
    worker: ModuleProcess, watcher: Watcher
) -> None:
    assert request(worker, "status")["staged"] is True
    request(worker, "transition", transition="configure")
    assert request(worker, "transition", transition="activate")["state"] == "active"

    # Staged: the stream and the heartbeat flow on hp-staged/..., nothing on the normal topics.
    wait_until(lambda: len(watcher.staged.snapshot()) >= 100, WAIT_S, "100 alerts on the staged topic")
    wait_until(watcher.beats_staged.snapshot, WAIT_S, "a heartbeat on the staged topic")
    assert watcher.normal.snapshot() == []
    assert watcher.beats_normal.snapshot() == []

    asked = time.monotonic()
    reply = request(worker, "promote")
    answered = time.monotonic()
    assert reply["staged"] is False
    assert reply["state"] == "active"
    staged_count_at_promote = len(watcher.staged.snapshot())

    # Promoted: let it publish on the normal topic for a while, then stop it.
    wait_until(lambda: len(watcher.normal.snapshot()) >= 100, WAIT_S, "100 alerts on the normal topic")
    assert request(worker, "transition", transition="deactivate")["state"] == "inactive"

    def final_count() -> int | None:
        inactive = [
            b for b in watcher.beats_normal.snapshot() if b.lifecycle_state == health_pb2.LIFECYCLE_STATE_INACTIVE
        ]
        return int(inactive[-1].counters[PUBLISHED]) if inactive else None

    total = wait_until(final_count, WAIT_S, "the heartbeat of the deactivated module on the normal topic")
    wait_until(
        lambda: watcher.normal.snapshot() and watcher.normal.snapshot()[-1][0] >= total,
        WAIT_S,
        f"alert {total} on the normal topic",
    )
    time.sleep(0.2)  # anything sent twice or late would arrive now

    staged = watcher.staged.snapshot()
    normal = watcher.normal.snapshot()
    staged_ids = [n for n, _, _ in staged]
    normal_ids = [n for n, _, _ in normal]
    first_seen, last_staged = staged_ids[0], staged_ids[-1]
    # Each alert once: the staged ones up to the move, the normal ones from the next on, up to the last published.
    assert contiguous(staged_ids), f"staged topic: a gap or repeat in {staged_ids[:5]}..{staged_ids[-5:]}"
    assert normal_ids == list(range(last_staged + 1, total + 1)), (
        f"normal topic: expected {last_staged + 1}..{total}, got {normal_ids[:5]}..{normal_ids[-5:]} "
        f"({len(normal_ids)} alerts)"
    )
    assert staged_ids + normal_ids == list(range(first_seen, total + 1))
    # The header sequence is the module's own count: one stream, numbering continued across the move.
    assert [seq for _, seq, _ in staged + normal] == staged_ids + normal_ids
    assert staged_count_at_promote <= len(staged_ids)
    for sub in watcher.subs[:2]:
        assert sub.counters.lost == 0, sub.counters
        assert sub.counters.duplicates == 0, sub.counters
        assert sub.counters.rejected == 0, sub.counters
    # The heartbeat moved too: the normal topic has it only from the promote on, the staged one stopped.
    beats_n = watcher.beats_normal.snapshot()
    beats_s = watcher.beats_staged.snapshot()
    assert beats_n[0].lifecycle_state == health_pb2.LIFECYCLE_STATE_ACTIVE
    assert beats_n[0].counters[PUBLISHED] >= last_staged
    assert beats_s[-1].lifecycle_state == health_pb2.LIFECYCLE_STATE_ACTIVE  # the deactivation beat went to normal
    assert max(b.counters[PUBLISHED] for b in beats_s) <= last_staged
    # The beat sent by the promote itself counts what was published before it: exactly the staged ones.
    assert beats_n[0].counters[PUBLISHED] == last_staged

    gap_ms = (normal[0][2] - staged[-1][2]) * 1000
    print(
        f"\nstaged promote over Cyclone DDS: {len(staged_ids)} alerts staged, {len(normal_ids)} after the move "
        f"({BURST} every {PERIOD_S * 1000:g} ms); gap last staged -> first normal {gap_ms:.2f} ms; "
        f"promote request {(answered - asked) * 1000:.1f} ms; lost 0, duplicates 0"
    )


def test_promote_of_a_worker_that_is_not_staged_changes_nothing(dds: Dds, tmp_path: Path) -> None:
    proc = ModuleProcess(MODULE, worker_spec(dds), tmp_path / "worker.log")
    try:
        proc.start(timeout_s=WAIT_S)
        assert request(proc, "status")["staged"] is False
        reply = request(proc, "promote")
        assert (reply["staged"], reply["state"], reply["error"]) == (False, "unconfigured", "")
        assert request(proc, "transition", transition="configure")["state"] == "inactive"
    finally:
        proc.stop(timeout_s=10.0)


def test_an_invalid_write_prefix_fails_the_load_with_its_cause(dds: Dds, tmp_path: Path) -> None:
    proc = ModuleProcess(MODULE, worker_spec(dds, write_prefix="hp staged/"), tmp_path / "worker.log")
    try:
        with pytest.raises(WorkerError, match=r"ValueError: module staged-counter: topic prefix 'hp staged/'"):
            proc.start(timeout_s=WAIT_S)
    finally:
        proc.stop(timeout_s=10.0)


def test_in_process_module_is_staged_and_promoted_the_same_way(dds: Dds, watcher: Watcher) -> None:
    """RT-WORKER-STAGED-003: an in-process module on the daemon's own transport takes the same spec and ops."""
    module = InProcessModule(MODULE, worker_spec(dds, write_prefix=STAGED_PREFIX), watcher.transport)
    module.start(timeout_s=WAIT_S)
    try:

        def call(op: str, **fields: Any) -> dict[str, Any]:
            reply = module.request(op, timeout_s=REQUEST_S, **fields)
            assert reply["ok"], reply
            return reply

        assert call("status")["staged"] is True
        call("transition", transition="configure")
        call("transition", transition="activate")
        wait_until(lambda: len(watcher.staged.snapshot()) >= 40, WAIT_S, "40 alerts on the staged topic")
        assert watcher.normal.snapshot() == []
        assert call("promote")["staged"] is False
        wait_until(lambda: len(watcher.normal.snapshot()) >= 40, WAIT_S, "40 alerts on the normal topic")
        call("transition", transition="deactivate")
        published = module.host.bus.counters()["pub:hardpoint.alert.v1.Alert"]["published"]
        wait_until(
            lambda: watcher.normal.snapshot()[-1][0] >= published, WAIT_S, f"alert {published} on the normal topic"
        )
        staged_ids = [n for n, _, _ in watcher.staged.snapshot()]
        normal_ids = [n for n, _, _ in watcher.normal.snapshot()]
        assert staged_ids + normal_ids == list(range(1, published + 1))
        assert watcher.beats_normal.snapshot()[0].counters[PUBLISHED] == staged_ids[-1]
    finally:
        module.stop(timeout_s=10.0)
