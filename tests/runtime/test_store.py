"""The SQLite state store: survives reopening and crashes, refuses damaged files (RT-STATE-*)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hardpoint_runtime._store as store_module
from hardpoint_runtime._errors import StateError
from hardpoint_runtime._store import SCHEMA_VERSION, STATE_DB_NAME, StateStore


class Clock:
    """A clock that ticks one ns per reading, so times are predictable."""

    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.in_dir(tmp_path / "state", clock=Clock()) as s:
        yield s


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# --------------------------------------------------------------------------- opening


def test_new_store_layout(tmp_path: Path) -> None:
    """RT-STATE-001, RT-STATE-002: state.db in the state dir, owner-only, WAL, synchronous FULL, schema versioned."""
    state_dir = tmp_path / "state"
    with StateStore.in_dir(state_dir) as s:
        assert s.path == state_dir / STATE_DB_NAME
        assert s.all() == []
        conn = s._conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / STATE_DB_NAME).stat().st_mode) == 0o600
    check = raw(state_dir / STATE_DB_NAME)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    check.close()


def test_survives_reopen(tmp_path: Path) -> None:
    """RT-STATE-003: write, close, reopen, read."""
    path = tmp_path / "state.db"
    with StateStore(path) as s:
        s.set_target("nav", "active", version="1.2.0", node="mast")
        s.record_restart("nav", "exit code 3")
        s.mark_failed("nav", "restart intensity exceeded")
        event = s.append_event("module_failed", module="nav", severity="error", reason="too many restarts")
    with StateStore(path) as s:
        record = s.get("nav")
        assert record is not None
        assert (record.version, record.node, record.target_state) == ("1.2.0", "mast", "active")
        assert (record.restarts, record.failed, record.last_reason) == (1, True, "restart intensity exceeded")
        assert s.events() == [event]


# --------------------------------------------------------------------------- modules


def test_set_target_creates_then_updates(store: StateStore) -> None:
    created = store.set_target("nav", "inactive", version="1.0.0", node="main")
    assert (created.target_state, created.version, created.node, created.restarts, created.failed) == (
        "inactive",
        "1.0.0",
        "main",
        0,
        False,
    )
    updated = store.set_target("nav", "active")
    assert (updated.target_state, updated.version, updated.node) == ("active", "1.0.0", "main")
    assert updated.updated_ns > created.updated_ns
    assert store.set_target("nav", "active", version="1.1.0").version == "1.1.0"


def test_invalid_target_state(store: StateStore) -> None:
    with pytest.raises(ValueError, match="'running' is not a target state"):
        store.set_target("nav", "running")
    assert store.get("nav") is None


def test_set_targets_is_all_or_nothing(store: StateStore) -> None:
    """RT-STATE-004: a multi-row change is one transaction."""
    store.set_targets({"a": "active", "b": "inactive"})
    with pytest.raises(ValueError, match="not a target state"):
        store.set_targets({"a": "finalized", "c": "active", "b": "bogus"})
    assert [(r.name, r.target_state) for r in store.all()] == [("a", "active"), ("b", "inactive")]


def test_restarts_and_failures(store: StateStore) -> None:
    store.set_target("nav", "active")
    assert store.record_restart("nav", "killed by SIGKILL").restarts == 1
    second = store.record_restart("nav", "heartbeat missed")
    assert (second.restarts, second.last_reason, second.failed) == (2, "heartbeat missed", False)
    failed = store.mark_failed("nav", "3 restarts in 30 s")
    assert (failed.failed, failed.last_reason) == (True, "3 restarts in 30 s")
    cleared = store.clear_failed("nav")
    assert (cleared.failed, cleared.restarts) == (False, 2)


def test_restart_of_a_module_without_record_creates_it(store: StateStore) -> None:
    """The supervisor may count a restart before any target was set: the target is then active."""
    record = store.record_restart("radar", "exit code 1")
    assert (record.target_state, record.restarts) == ("active", 1)
    assert store.mark_failed("sonar", "x").target_state == "active"


def test_all_is_sorted_and_remove_forgets(store: StateStore) -> None:
    store.set_targets({"zulu": "active", "alpha": "active"})
    assert [r.name for r in store.all()] == ["alpha", "zulu"]
    assert store.remove("zulu")
    assert not store.remove("zulu")
    assert store.get("zulu") is None


# --------------------------------------------------------------------------- events


def test_events_since_and_limit(store: StateStore) -> None:
    """RT-STATE-005."""
    first = store.append_event("daemon_started", node="main")
    second = store.append_event("state_changed", module="nav", state="active")
    third = store.append_event("module_failed", module="nav", severity="error", reason="x")
    assert [e.id for e in store.events()] == [first.id, second.id, third.id]
    assert store.events(since_id=first.id) == [second, third]
    assert store.events(since_id=first.id, limit=1) == [second]
    assert store.last_event_id() == third.id
    assert (first.module, first.kind, first.severity, first.detail) == (
        None,
        "daemon_started",
        "info",
        {"node": "main"},
    )
    assert third.time_ns > first.time_ns


def test_event_detail_is_json_and_tolerates_odd_values(store: StateStore) -> None:
    event = store.append_event("resolution", blocked=["a", "b"], path=Path("/x"), count=3)
    assert event.detail == {"blocked": ["a", "b"], "path": "/x", "count": 3}
    assert store.events()[0].detail == event.detail
    conn = store._conn
    assert conn is not None
    text = conn.execute("SELECT detail FROM events").fetchone()[0]
    assert json.loads(text) == event.detail


def test_invalid_severity(store: StateStore) -> None:
    with pytest.raises(ValueError, match="'fatal' is not a severity"):
        store.append_event("x", severity="fatal")
    assert store.events() == []


def test_prune_keeps_the_newest_and_never_reuses_ids(store: StateStore) -> None:
    ids = [store.append_event("tick", n=i).id for i in range(10)]
    assert store.prune_events(keep=3) == 7
    assert [e.id for e in store.events()] == ids[-3:]
    assert store.prune_events(keep=0) == 3
    assert store.last_event_id() == 0
    assert store.append_event("tick").id > ids[-1]


def test_thread_safety(store: StateStore) -> None:
    """RT-STATE-006: one connection shared by threads, guarded by a lock."""

    def work(t: int) -> None:
        for i in range(50):
            store.append_event("tick", thread=t, i=i)
            store.record_restart(f"m{t}", "r")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = store.events(limit=10_000)
    assert len(events) == 400
    assert len({e.id for e in events}) == 400
    assert [r.restarts for r in store.all()] == [50] * 8


def test_closed_store_refuses(tmp_path: Path) -> None:
    s = StateStore(tmp_path / "state.db")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        s.all()


# --------------------------------------------------------------------------- damaged files


def test_garbage_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    """RT-STATE-010: never start from empty over a damaged file."""
    path = tmp_path / "state.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    with pytest.raises(StateError) as info:
        StateStore(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert "not an SQLite database" in str(info.value)
    assert path.read_bytes() == garbage


def test_damaged_page_is_refused(tmp_path: Path) -> None:
    """RT-STATE-010: a valid header over damaged content is found by the integrity check."""
    path = tmp_path / "state.db"
    with StateStore(path) as s:
        for i in range(200):
            s.set_target(f"module-{i:03d}", "active", version="1.0.0", node="main")
            s.append_event("tick", module=f"module-{i:03d}", padding="x" * 100)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) > 3 * page_size
    data[page_size + 8 : 2 * page_size] = b"\xa5" * (page_size - 8)  # page 2: keep the header byte, ruin the rest
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="damaged") as info:
        StateStore(path)
    assert str(path) in str(info.value)


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = raw(path)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.close()
    with pytest.raises(StateError, match="not a hardpoint state database"):
        StateStore(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer hardpoint-runtime"):
        StateStore(path)


def test_empty_file_is_a_new_database(tmp_path: Path) -> None:
    """A crash right after creating the file leaves it empty: SQLite, and the store, treat that as new."""
    path = tmp_path / "state.db"
    path.touch()
    with StateStore(path) as s:
        assert s.all() == []


def test_failed_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RT-STATE-002: each migration step and its version bump are one transaction."""
    path = tmp_path / "state.db"
    with StateStore(path) as s:
        s.set_target("nav", "active")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE modules ADD COLUMN pid INTEGER")
        conn.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(store_module, "_MIGRATIONS", [*store_module._MIGRATIONS, broken])
    with pytest.raises(StateError, match=f"migration from schema {SCHEMA_VERSION} to {SCHEMA_VERSION + 1} failed"):
        StateStore(path)
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = [r[1] for r in conn.execute("PRAGMA table_info(modules)")]
    conn.close()
    assert "pid" not in columns


CRASHER = """
import sys
from hardpoint_runtime._store import StateStore
store = StateStore(sys.argv[1])
names = [f"m{i}" for i in range(20)]
print("ready", flush=True)
n = 0
while True:
    n += 1
    store.set_targets({name: ("active" if n % 2 else "inactive") for name in names})
"""


def test_batch_survives_sigkill_whole_or_not_at_all(tmp_path: Path) -> None:
    """RT-STATE-004: a process killed in the middle of batches leaves a whole batch, never half of one."""
    path = tmp_path / "state.db"
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        # Wait until some batches were committed, then kill without warning.
        while time.monotonic() < deadline:
            with StateStore(path) as s:
                if len(s.all()) == 20:
                    break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with StateStore(path) as s:
        targets = {r.target_state for r in s.all()}
        assert len(s.all()) == 20
    assert len(targets) == 1
