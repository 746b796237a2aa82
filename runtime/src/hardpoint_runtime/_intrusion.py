"""What the daemon refused from the bus, and when to say so (RT-BUS-ID-*).

The daemon refuses heartbeats that do not come from the worker it started,
counters that cannot be true, and, in its topic monitor, samples whose writer
claims a source bound to another writer. Each refusal is counted per
interface, kind and offending writer (:class:`IntrusionLog`); the first of each
writer, and then at most one per :data:`EVENT_INTERVAL_S`, becomes a
``bus_intrusion`` event, so a flood of forged samples cannot flood the event log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hardpoint_runtime._control import IntrusionInfo

__all__ = ["EVENT_INTERVAL_S", "MAX_RECORDS", "IntrusionLog"]

#: Shortest time between two events about the same interface, kind and writer, in seconds.
EVENT_INTERVAL_S: Final = 30.0
#: Records kept; past this the rest are counted under one record with writer ``"(others)"``.
MAX_RECORDS: Final = 256


@dataclass(slots=True)
class _Record:
    info_claimed: str
    participant: str
    holder: str
    count: int = 0
    reported: int = 0
    last_event: float = float("-inf")


class IntrusionLog:
    """Refusals by (interface, kind, writer GUID), with rate-limited events.

    :param emit: called as ``emit(detail)`` for each event to record (``Daemon.event`` with kind ``bus_intrusion``).
    :param clock: monotonic seconds (a parameter so tests need not wait).
    """

    def __init__(self, emit: Callable[[dict[str, str]], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str, str], _Record] = {}

    def note(  # noqa: PLR0917 - one refusal is all of these
        self, interface: str, kind: str, writer: str, participant: str, claimed: str, holder: str, count: int = 1
    ) -> None:
        """Count ``count`` refused messages; emit an event if this writer's are due one."""
        key = (interface, kind, writer or "(unidentified)")
        with self._lock:
            record = self._records.get(key)
            if record is None:
                if len(self._records) >= MAX_RECORDS:
                    key = (interface, kind, "(others)")
                    record = self._records.setdefault(key, _Record(claimed, "", ""))
                else:
                    record = self._records[key] = _Record(claimed, participant, holder)
            record.info_claimed, record.holder = claimed, holder or record.holder
            record.count += count
            now = self._clock()
            if now - record.last_event < EVENT_INTERVAL_S:
                return
            record.last_event = now
            new = record.count - record.reported
            record.reported = record.count
        self._emit(
            {
                "interface": interface,
                "kind": kind,
                "writer": key[2],
                "participant": participant,
                "claimed_source": claimed,
                "holder": holder,
                "count": str(new),
                "total": str(record.count),
            }
        )

    def snapshot(self, interfaces: set[str] | None = None) -> list[IntrusionInfo]:
        """The records (of ``interfaces`` only, if given), most refused first."""
        with self._lock:
            items = [(k, r.info_claimed, r.participant, r.holder, r.count) for k, r in self._records.items()]
        out = [
            IntrusionInfo(interface=i, kind=kind, writer=w, participant=p, claimed_source=c, holder=h, count=n)
            for (i, kind, w), c, p, h, n in items
            if interfaces is None or i in interfaces
        ]
        return sorted(out, key=lambda r: (-r.count, r.interface, r.writer))

    def totals(self, interface: str) -> dict[str, int]:
        """Refused messages of ``interface`` by kind."""
        out: dict[str, int] = {}
        with self._lock:
            for (i, kind, _), r in self._records.items():
                if i == interface:
                    out[kind] = out.get(kind, 0) + r.count
        return out
