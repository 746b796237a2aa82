"""What is on the bus: every announced topic, its publishers and measured rate.

The daemon opens a raw frame reader on each topic it learns from the schema
announcements (``hp/schemas``) and counts messages per second per topic; no
payload is decoded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from hardpoint_runtime._control import TopicInfo

__all__ = ["TopicMonitor"]

#: Window over which rates are measured, in seconds.
RATE_WINDOW_S: Final = 5.0
#: How often new schema announcements are looked for, in seconds.
SCAN_PERIOD_S: Final = 1.0


class _TopicStats:
    def __init__(self, topic: str, interface: str, qos: str, nominal: float) -> None:
        self.topic, self.interface, self.qos, self.nominal = topic, interface, qos, nominal
        self.arrivals: deque[tuple[float, int]] = deque()
        self.publishers: set[str] = set()
        self.reader: Any = None
        #: When the reader was opened: a rate over a window longer than that would be too low.
        self.since = time.monotonic()

    def on_frames(self, frames: Sequence[Any]) -> None:
        now = time.monotonic()
        for f in frames:
            self.arrivals.append((now, f.count))
            self.publishers.add(f.source)
        while self.arrivals and now - self.arrivals[0][0] > RATE_WINDOW_S:
            self.arrivals.popleft()

    def rate(self) -> float:
        """Messages per second over the last RATE_WINDOW_S (or since the reader was opened, if later).

        The first second after opening is not counted: a transient-local topic replays its history
        at once, which is not a rate.
        """
        now = time.monotonic()
        start = max(now - RATE_WINDOW_S, self.since + 1.0)
        if now - start < 1.0:
            return 0.0
        n = sum(c for t, c in self.arrivals if t >= start)
        return n / (now - start)


class TopicMonitor:
    """Watches schema announcements and measures every announced topic."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._stats: dict[str, _TopicStats] = {}
        self._lock = threading.Lock()
        self._timer = transport.call_later(0.0, self._scan, period_s=SCAN_PERIOD_S)

    def _scan(self) -> None:
        from hardpoint import Channel, QosClass, all_interfaces

        known = all_interfaces()
        for record in self._transport.schemas():
            if record.topic in self._stats:
                continue
            spec = known.get(record.interface)
            qos = QosClass[record.qos]
            stats = _TopicStats(record.topic, record.interface, record.qos, spec.nominal_rate_hz if spec else 0.0)
            channel = Channel(
                topic=record.topic,
                qos=qos,
                keyed=spec.keyed if spec else False,
                history_depth=max(spec.history_depth if spec else 1, 64),
                interface=record.interface,
                schema_id=record.schema_id,
            )
            stats.reader = self._transport.open_reader(channel, stats.on_frames)
            with self._lock:
                self._stats[record.topic] = stats

    def snapshot(self) -> list[TopicInfo]:
        """Topics with their publishers and measured rates, by topic name."""
        with self._lock:
            stats = list(self._stats.values())
        return [
            TopicInfo(s.topic, s.interface, s.qos, tuple(sorted(s.publishers)), round(s.rate(), 2), s.nominal)
            for s in sorted(stats, key=lambda s: s.topic)
        ]

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for s in self._stats.values():
                if s.reader is not None:
                    s.reader.close()
            self._stats.clear()
