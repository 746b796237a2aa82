"""The daemon's state: modules, their target states and restarts, and the event log, in SQLite.

One database file (``<state_dir>/state.db``) holds it. It is written so that a
crash or a power loss leaves either the old or the new state, never a half:

* WAL journal with ``synchronous=FULL``: a committed transaction is on disk.
* Every change that touches several rows (a restart and its event, a batch of
  target states) is one transaction.
* The schema is versioned with ``PRAGMA user_version``; each migration runs in
  its own transaction together with the version bump.

A file that is not a hardpoint state database (garbage, a damaged page, a
newer schema) is refused with :class:`~hardpoint_runtime._errors.StateError`:
the store never starts from empty over a damaged file, because that would
silently forget what the platform was running. See ``spec/runtime.md``
(RT-STATE-*).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from hardpoint_runtime._errors import StateError

if TYPE_CHECKING:
    from hardpoint_runtime.update._journal import JournalEntry

__all__ = [
    "DEFAULT_TARGET",
    "SCHEMA_VERSION",
    "STATE_DB_NAME",
    "Event",
    "ModuleRecord",
    "Severity",
    "StateStore",
    "TargetState",
]

#: File name of the database inside the state directory.
STATE_DB_NAME: Final = "state.db"
#: Target state of a module whose record a restart or a failure creates (no set_target before).
DEFAULT_TARGET: Final = "active"
#: Schema version this runtime writes; ``PRAGMA user_version`` of a current database.
SCHEMA_VERSION: Final = 2

#: Lifecycle state an operator or the configuration wants a module in.
TargetState = Literal["unconfigured", "inactive", "active", "finalized"]
#: Severity of an event.
Severity = Literal["info", "warning", "error"]

_TARGET_STATES: Final = frozenset(get_args(TargetState))
_SEVERITIES: Final = frozenset(get_args(Severity))
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


@dataclass(frozen=True, slots=True)
class ModuleRecord:
    """One row of ``modules``: what the daemon keeps about a module across restarts."""

    name: str
    #: Version last installed or run; empty when not known yet.
    version: str
    #: Node the module is placed on; empty when not known yet.
    node: str
    target_state: TargetState
    #: Restarts since the record was created (a lifetime counter; clearing a failure keeps it).
    restarts: int
    #: True once the restart intensity was exceeded, until an operator clears it.
    failed: bool
    #: Reason of the last restart or failure.
    last_reason: str
    #: Wall-clock time of the last change, ns since the epoch.
    updated_ns: int


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the event log."""

    #: Increasing, never reused (also after :meth:`StateStore.prune_events`).
    id: int
    #: Wall-clock time, ns since the epoch.
    time_ns: int
    #: Module concerned; None for platform events.
    module: str | None
    #: What happened, e.g. ``module_restarted``, ``module_failed``, ``state_changed``, ``resolution``.
    kind: str
    severity: Severity
    #: Free details, decoded from JSON.
    detail: Mapping[str, Any]


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """Create the first schema."""
    conn.execute(
        """
        CREATE TABLE modules (
            name TEXT PRIMARY KEY NOT NULL,
            version TEXT NOT NULL DEFAULT '',
            node TEXT NOT NULL DEFAULT '',
            target_state TEXT NOT NULL
                CHECK (target_state IN ('unconfigured', 'inactive', 'active', 'finalized')),
            restarts INTEGER NOT NULL DEFAULT 0 CHECK (restarts >= 0),
            failed INTEGER NOT NULL DEFAULT 0 CHECK (failed IN (0, 1)),
            last_reason TEXT NOT NULL DEFAULT '',
            updated_ns INTEGER NOT NULL
        )
        """
    )
    # AUTOINCREMENT: ids are never reused after pruning, so a watcher's since_id stays meaningful.
    conn.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time_ns INTEGER NOT NULL,
            module TEXT,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
            detail TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX events_by_module ON events (module, id)")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Signed updates: the active version of each module (the pin) and the update journal."""
    # version "" is a pin to no version: an interrupted first install leaves the module not started.
    conn.execute(
        """
        CREATE TABLE active_versions (
            name TEXT PRIMARY KEY NOT NULL,
            version TEXT NOT NULL,
            updated_ns INTEGER NOT NULL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE update_journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            module TEXT NOT NULL,
            from_version TEXT NOT NULL DEFAULT '',
            to_version TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            step TEXT NOT NULL,
            outcome TEXT NOT NULL
                CHECK (outcome IN ('in_progress', 'committed', 'rolled_back', 'refused', 'interrupted')),
            cause TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            started_ns INTEGER NOT NULL,
            finished_ns INTEGER NOT NULL DEFAULT 0,
            switch_gap_ms REAL NOT NULL DEFAULT -1
        )
        """
    )
    conn.execute("CREATE INDEX update_journal_by_module ON update_journal (module, id)")


#: ``_MIGRATIONS[n]`` takes a database from schema ``n`` to ``n + 1``.
_MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2]
_JOURNAL_COLUMNS: Final = (
    "id, module, from_version, to_version, step, outcome, cause, role, reason, started_ns, finished_ns, "
    "switch_gap_ms, target"
)

_MODULE_COLUMNS: Final = "name, version, node, target_state, restarts, failed, last_reason, updated_ns"
_EVENT_COLUMNS: Final = "id, time_ns, module, kind, severity, detail"


class StateStore:
    """The state database; thread-safe (one connection, guarded by a lock).

    Opening creates the file (owner-only permissions) when it does not exist,
    checks an existing one and migrates it to :data:`SCHEMA_VERSION`.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], int] = time.time_ns) -> None:
        """Open or create the database at ``path``.

        :param path: the database file (see :meth:`in_dir` for the usual place).
        :param clock: wall clock in ns, for ``updated_ns`` and event times; replaceable in tests.
        :raises StateError: the file is not a hardpoint state database, is damaged, or is from a newer runtime.
        """
        #: The database file.
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _open(self.path)

    @classmethod
    def in_dir(cls, state_dir: str | Path, *, clock: Callable[[], int] = time.time_ns) -> StateStore:
        """Open ``<state_dir>/state.db``, creating the directory (owner-only) when needed.

        :param state_dir: the platform's state directory.
        :param clock: as for the constructor.
        :raises StateError: as for the constructor.
        """
        return cls(Path(state_dir) / STATE_DB_NAME, clock=clock)

    # ------------------------------------------------------------------ modules

    def set_target(
        self, name: str, state: TargetState | str, *, version: str | None = None, node: str | None = None
    ) -> ModuleRecord:
        """Set the target state of a module, creating its record when new.

        :param name: module name.
        :param state: the lifecycle state wanted.
        :param version: version to record; None keeps the recorded one.
        :param node: node to record; None keeps the recorded one.
        :raises ValueError: ``state`` is not a target state.
        """
        with self._transaction() as conn:
            self._upsert(conn, name, state, version, node)
            return self._require(conn, name)

    def set_targets(self, targets: Mapping[str, TargetState | str]) -> None:
        """Set several target states in one transaction (all or none).

        :param targets: module name -> target state.
        :raises ValueError: one of the states is not a target state (nothing is written).
        """
        with self._transaction() as conn:
            for name, state in targets.items():
                self._upsert(conn, name, state, None, None)

    def get(self, name: str) -> ModuleRecord | None:
        """The record of ``name``, or None.

        :param name: module name.
        """
        with self._locked() as conn:
            row = conn.execute(f"SELECT {_MODULE_COLUMNS} FROM modules WHERE name = ?", (name,)).fetchone()
        return None if row is None else _module(row)

    def all(self) -> list[ModuleRecord]:
        """Every module record, by name."""
        with self._locked() as conn:
            rows = conn.execute(f"SELECT {_MODULE_COLUMNS} FROM modules ORDER BY name").fetchall()
        return [_module(r) for r in rows]

    def remove(self, name: str) -> bool:
        """Forget a module (it left the configuration); its events stay.

        :param name: module name.
        :returns: True when there was a record.
        """
        with self._transaction() as conn:
            return conn.execute("DELETE FROM modules WHERE name = ?", (name,)).rowcount > 0

    def record_restart(self, name: str, reason: str) -> ModuleRecord:
        """Count one restart of a module (creating its record, target ``active``, when new).

        :param name: module name.
        :param reason: why it was restarted (exit code, signal, missed heartbeat, ...).
        """
        with self._transaction() as conn:
            self._update(conn, name, "restarts = restarts + 1, last_reason = ?", reason)
            return self._require(conn, name)

    def mark_failed(self, name: str, reason: str) -> ModuleRecord:
        """Mark a module failed, so it stays down across daemon restarts until :meth:`clear_failed`.

        :param name: module name (its record is created, target ``active``, when new).
        :param reason: why (typically: restart intensity exceeded, and the last cause).
        """
        with self._transaction() as conn:
            self._update(conn, name, "failed = 1, last_reason = ?", reason)
            return self._require(conn, name)

    def clear_failed(self, name: str) -> ModuleRecord:
        """Clear a failure (an operator restarts the module); the restart count stays.

        :param name: module name (its record is created, target ``active``, when new).
        """
        with self._transaction() as conn:
            self._update(conn, name, "failed = 0", None)
            return self._require(conn, name)

    # ------------------------------------------------------------------ events

    def append_event(
        self, kind: str, /, module: str | None = None, severity: Severity | str = "info", **detail: Any
    ) -> Event:
        """Append an event to the log.

        :param kind: what happened, e.g. ``state_changed``.
        :param module: module concerned; None for platform events.
        :param severity: ``info``, ``warning`` or ``error``.
        :param detail: free details; values that JSON cannot hold are stored as their ``str()``.
        :raises ValueError: unknown severity.
        """
        with self._transaction() as conn:
            return self._insert_event(conn, kind, module, severity, detail)

    def events(self, since_id: int = 0, limit: int = 1000) -> list[Event]:
        """Events with an id above ``since_id``, oldest first.

        :param since_id: last id the caller has seen (0: from the start).
        :param limit: at most this many.
        """
        with self._locked() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?", (since_id, limit)
            ).fetchall()
        return [_event(r) for r in rows]

    def last_event_id(self) -> int:
        """Id of the newest event, 0 when there is none (a watcher that wants only new events starts there)."""
        with self._locked() as conn:
            row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return int(row[0])

    def prune_events(self, keep: int) -> int:
        """Delete all but the newest ``keep`` events, so the log cannot fill the disk.

        :param keep: how many to keep.
        :returns: how many were deleted.
        """
        with self._transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - ?", (max(keep, 0),)
            )
            return cursor.rowcount

    # ------------------------------------------------------------------ updates: pins and journal

    def pinned_version(self, name: str) -> str | None:
        """The version pinned active for ``name``; "" for a pin to no version; None when never pinned."""
        with self._locked() as conn:
            row = conn.execute("SELECT version FROM active_versions WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def pins(self) -> dict[str, str]:
        """Every pin, module name -> version."""
        with self._locked() as conn:
            rows = conn.execute("SELECT name, version FROM active_versions ORDER BY name").fetchall()
        return {str(n): str(v) for n, v in rows}

    def set_pin(self, name: str, version: str) -> None:
        """Pin ``version`` of ``name`` as the active one (alone; the updater pins with a journal step)."""
        with self._transaction() as conn:
            self._pin(conn, name, version)

    def journal_begin(self, module: str, from_version: str, to_version: str, *, target: str = "") -> JournalEntry:
        """Open an attempt at step ``requested``, outcome ``in_progress``."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO update_journal (module, from_version, to_version, target, step, outcome, started_ns) "
                "VALUES (?, ?, ?, ?, 'requested', 'in_progress', ?)",
                (module, from_version, to_version, target, self._clock()),
            )
            assert cursor.lastrowid is not None
            return self._journal_row(conn, cursor.lastrowid)

    def journal_step(
        self,
        entry_id: int,
        step: str,
        *,
        pin: tuple[str, str] | None = None,
        outcome: str | None = None,
        cause: str | None = None,
        role: str | None = None,
        reason: str | None = None,
        switch_gap_ms: float | None = None,
        to_version: str | None = None,
    ) -> JournalEntry:
        """Record that attempt ``entry_id`` reached ``step`` (and, in the same transaction, a pin and an outcome).

        A final outcome (anything but ``in_progress``) also sets ``finished_ns``.

        :param pin: ``(module, version)`` to pin active together with the step.
        :raises ValueError: ``step`` is not a journal step or ``outcome`` not an outcome.
        :raises KeyError: no such attempt.
        """
        from hardpoint_runtime.update._journal import OUTCOMES, step_index

        step_index(step)
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"{outcome!r} is not an update outcome (one of {', '.join(OUTCOMES)})")
        now = self._clock()
        with self._transaction() as conn:
            self._journal_row(conn, entry_id)
            conn.execute(
                """
                UPDATE update_journal SET step = ?,
                    outcome = COALESCE(?, outcome), cause = COALESCE(?, cause), role = COALESCE(?, role),
                    reason = COALESCE(?, reason), switch_gap_ms = COALESCE(?, switch_gap_ms),
                    to_version = COALESCE(?, to_version),
                    finished_ns = CASE WHEN COALESCE(?, outcome) = 'in_progress' THEN 0 ELSE ? END
                WHERE id = ?
                """,
                (step, outcome, cause, role, reason, switch_gap_ms, to_version, outcome, now, entry_id),
            )
            if pin is not None:
                self._pin(conn, *pin)
            return self._journal_row(conn, entry_id)

    def journal_finish(
        self,
        entry_id: int,
        outcome: str,
        *,
        cause: str = "",
        role: str = "",
        reason: str = "",
        pin: tuple[str, str] | None = None,
    ) -> JournalEntry:
        """End attempt ``entry_id`` with ``outcome`` at the step it reached (a refusal, a rollback, a recovery)."""
        with self._locked() as conn:
            current = self._journal_row(conn, entry_id)
        return self.journal_step(
            entry_id, current.step, pin=pin, outcome=outcome, cause=cause, role=role, reason=reason
        )

    def journal(
        self, *, module: str | None = None, limit: int = 100, in_progress: bool | None = None
    ) -> list[JournalEntry]:
        """Attempts, newest first; only those of ``module``, or only unfinished ones, when asked."""
        where, params = [], []
        if module is not None:
            where.append("module = ?")
            params.append(module)
        if in_progress is not None:
            where.append("outcome = 'in_progress'" if in_progress else "outcome != 'in_progress'")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._locked() as conn:
            rows = conn.execute(
                f"SELECT {_JOURNAL_COLUMNS} FROM update_journal {clause} ORDER BY id DESC LIMIT ?",
                (*params, max(limit, 0)),
            ).fetchall()
        return [_journal(r) for r in rows]

    def _pin(self, conn: sqlite3.Connection, name: str, version: str) -> None:
        conn.execute(
            "INSERT INTO active_versions (name, version, updated_ns) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET version = excluded.version, updated_ns = excluded.updated_ns",
            (name, version, self._clock()),
        )

    @staticmethod
    def _journal_row(conn: sqlite3.Connection, entry_id: int) -> JournalEntry:
        row = conn.execute(f"SELECT {_JOURNAL_COLUMNS} FROM update_journal WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(f"no update attempt {entry_id} in the journal")
        return _journal(row)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the database (checkpointing the WAL); further calls raise :class:`StateError`. Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; SQLite failures become :class:`StateError`."""
        with self._lock:
            if self._conn is None:
                raise StateError(str(self.path), "the state store is closed")
            try:
                yield self._conn
            except sqlite3.Error as e:
                raise StateError(str(self.path), f"database operation failed: {e}") from e

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        with self._locked() as conn:
            # IMMEDIATE takes the write lock up front, so a concurrent reader
            # process (the CLI) cannot make the commit fail half-way.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _upsert(self, conn: sqlite3.Connection, name: str, state: str, version: str | None, node: str | None) -> None:
        if state not in _TARGET_STATES:
            raise ValueError(f"{state!r} is not a target state (one of {', '.join(sorted(_TARGET_STATES))})")
        conn.execute(
            """
            INSERT INTO modules (name, version, node, target_state, updated_ns) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET
                target_state = excluded.target_state,
                version = COALESCE(?, version),
                node = COALESCE(?, node),
                updated_ns = excluded.updated_ns
            """,
            (name, version or "", node or "", state, self._clock(), version, node),
        )

    def _update(self, conn: sqlite3.Connection, name: str, assignments: str, reason: str | None) -> None:
        # The supervisor may count a restart before anyone set a target: a
        # configured module's target is active unless an operator said otherwise.
        now = self._clock()
        conn.execute(
            "INSERT OR IGNORE INTO modules (name, target_state, updated_ns) VALUES (?, ?, ?)",
            (name, DEFAULT_TARGET, now),
        )
        # ``assignments`` is one of the literal strings of this class, never caller input.
        params: tuple[Any, ...] = (reason,) if reason is not None else ()
        conn.execute(f"UPDATE modules SET {assignments}, updated_ns = ? WHERE name = ?", (*params, now, name))

    @staticmethod
    def _require(conn: sqlite3.Connection, name: str) -> ModuleRecord:
        row = conn.execute(f"SELECT {_MODULE_COLUMNS} FROM modules WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no module {name!r} in the state store")
        return _module(row)

    def _insert_event(
        self, conn: sqlite3.Connection, kind: str, module: str | None, severity: str, detail: Mapping[str, Any]
    ) -> Event:
        if severity not in _SEVERITIES:
            raise ValueError(f"{severity!r} is not a severity (one of {', '.join(sorted(_SEVERITIES))})")
        text = json.dumps(dict(detail), sort_keys=True, default=str)
        now = self._clock()
        cursor = conn.execute(
            "INSERT INTO events (time_ns, module, kind, severity, detail) VALUES (?, ?, ?, ?, ?)",
            (now, module, kind, severity, text),
        )
        assert cursor.lastrowid is not None
        return _event((cursor.lastrowid, now, module, kind, severity, text))


def _module(row: tuple[Any, ...]) -> ModuleRecord:
    name, version, node, target, restarts, failed, reason, updated = row
    return ModuleRecord(name, version, node, target, int(restarts), bool(failed), reason, int(updated))


def _journal(row: tuple[Any, ...]) -> JournalEntry:
    from hardpoint_runtime.update._journal import JournalEntry

    (entry_id, module, from_v, to_v, step, outcome, cause, role, reason, started, finished, gap, target) = row
    return JournalEntry(
        id=int(entry_id), module=module, from_version=from_v, to_version=to_v, step=step, outcome=outcome,
        cause=cause, role=role, reason=reason, started_ns=int(started), finished_ns=int(finished),
        switch_gap_ms=float(gap), target=target,
    )  # fmt: skip


def _event(row: tuple[Any, ...]) -> Event:
    event_id, time_ns, module, kind, severity, detail = row
    return Event(int(event_id), int(time_ns), module, kind, severity, json.loads(detail))


# ---------------------------------------------------------------------- opening


def _open(path: Path) -> sqlite3.Connection:
    """Check, open, configure and migrate the database at ``path``.

    :raises StateError: anything is wrong with the file; the file is then left as it was.
    """
    _check_header(path)
    _create_if_missing(path)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    except sqlite3.Error as e:
        raise StateError(str(path), f"cannot open: {e}") from e
    try:
        _check_integrity(conn, path)
        # WAL and FULL: a committed transaction survives power loss; readers never block the writer.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        _migrate(conn, path)
    except StateError:
        conn.close()
        raise
    except sqlite3.Error as e:
        conn.close()
        raise StateError(str(path), f"cannot use the database: {e}") from e
    return conn


def _check_header(path: Path) -> None:
    """Refuse a non-empty file that does not start like an SQLite database, before SQLite touches it."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as e:
        raise StateError(str(path), f"cannot read: {e.strerror or e}") from e
    # An empty file is what a crash right after creating it leaves: SQLite treats it as a new database.
    if head and head != _SQLITE_MAGIC:
        raise StateError(
            str(path),
            "not an SQLite database (damaged, or another file): refusing to start over it; "
            "move it aside to start from an empty state",
        )


def _create_if_missing(path: Path) -> None:
    """Create the directory and the file with owner-only permissions, before SQLite creates them with the umask."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise StateError(str(path), f"cannot create: {e.strerror or e}") from e
    os.close(fd)


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        raise StateError(str(path), f"the database is damaged ({e}): refusing to start over it") from e
    problems = [str(r[0]) for r in rows if r[0] != "ok"]
    if problems:
        raise StateError(str(path), f"the database is damaged ({'; '.join(problems[:3])}): refusing to start over it")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`, one transaction per step."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateError(
            str(path),
            f"schema version {version} was written by a newer hardpoint-runtime (this one knows {SCHEMA_VERSION})",
        )
    if version == 0:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if tables:
            raise StateError(str(path), f"not a hardpoint state database (it has tables {', '.join(sorted(tables))})")
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            _MIGRATIONS[step](conn)
            # user_version lives in the database header, which is part of the transaction.
            conn.execute(f"PRAGMA user_version = {step + 1}")
        except BaseException as e:
            conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StateError(str(path), f"migration from schema {step} to {step + 1} failed: {e}") from e
            raise
        conn.execute("COMMIT")
