"""What is on the bus: every announced topic, its publishers and measured rate.

The daemon opens a raw frame reader on each topic it learns from the schema
announcements (``hp/schemas``) and counts messages per second per topic; no
payload is decoded.

Anything on the bus can announce schemas and write frames: each announcement is
checked (:func:`hardpoint.check_schema_record`) before it is used, one bad
announcement never stops a scan, and no frame content makes a reader callback
raise (SDK-SCHEMA-RX-008).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from hardpoint._bus import MAX_BATCH
from hardpoint_runtime._control import TopicInfo

__all__ = ["TopicMonitor"]

_log = logging.getLogger("hardpoint.daemon.topics")

#: Window over which rates are measured, in seconds.
RATE_WINDOW_S: Final = 5.0
#: How often new schema announcements are looked for, in seconds.
SCAN_PERIOD_S: Final = 1.0
#: Publishers listed per topic: the most recently heard ones.
MAX_PUBLISHERS: Final = 64
#: Longest publisher name kept, in characters.
MAX_SOURCE_CHARS: Final = 128
#: Sequence tracks (writer, source, epoch, key) kept per topic; all are forgotten past this.
MAX_TRACKS: Final = 4096


class _TopicStats:
    def __init__(self, topic: str, interface: str, qos: str, nominal: float, schema_id: str = "") -> None:
        self.topic, self.interface, self.qos, self.nominal = topic, interface, qos, nominal
        self.schema_id = schema_id
        #: Refused samples by kind (RT-BUS-ID-005).
        self.refused: Counter[str] = Counter()
        #: Who may speak for which source, as a subscription judges it (set by :meth:`judge_with`).
        self._binding: Any = None
        self._note: Callable[[str, str, Any, int], None] | None = None
        self._generation: Callable[[], int] = lambda: 0
        self._seen_generation = 0
        #: Last sequence number per (writer, source, epoch, key), as SDK-BUS-ID-001 tracks it.
        self._seqs: dict[tuple[Any, ...], int] = {}
        self.arrivals: deque[tuple[float, int]] = deque()
        #: Sources heard, least recently heard first (at most :data:`MAX_PUBLISHERS`).
        self.publishers: OrderedDict[str, None] = OrderedDict()
        self.reader: Any = None
        #: When the reader was opened: a rate over a window longer than that would be too low.
        self.since = time.monotonic()

    def judge_with(
        self, reader: Any, roster: Any, note: Callable[[str, str, Any, int], None], generation: Callable[[], int]
    ) -> None:
        """Judge each frame's writer (SDK-BUS-ID-*) with ``reader``'s identities and the daemon's ``roster``.

        :param note: ``note(interface, kind, identity or intruder record, count)`` for every refusal.
        :param generation: the roster's generation; when it moves, every writer is judged again.
        """
        from hardpoint._identity import SourceBinding

        self._note = note
        self._generation = generation
        self._seen_generation = generation()
        interface = self.interface
        self._binding = SourceBinding(
            reader.writer_identity, roster, lambda record, n: note(interface, "impersonation", record, n)
        )

    def _judge(self, f: Any) -> tuple[str, int]:  # noqa: PLR0911 - one exit per normative check
        """("", messages) for an admitted frame, else (kind of refusal, messages refused); IF-ENV-RX order."""
        count = f.count
        if type(count) is not int:
            return "undecodable", 1
        claimed = count if 0 < count <= MAX_BATCH else 1  # never billions from one forged count (SDK-BUS-ID-007)
        if f.interface != self.interface:
            return "wrong_interface", claimed
        if self.schema_id and f.schema_id != self.schema_id:
            return "schema_mismatch", claimed
        if not 0 < count <= MAX_BATCH:  # a frame claiming more is no message
            return "undecodable", 1
        binding = self._binding
        if binding is None:
            return "", count
        if not binding.admit(f.writer, f.source, count):
            return "impersonation", count
        track = (f.writer, f.source, f.epoch, f.key)
        last = self._seqs.get(track)
        if last is not None and f.seq <= last:
            return "duplicates", count
        if last is None and len(self._seqs) >= MAX_TRACKS:
            self._seqs.clear()
        self._seqs[track] = f.seq + count - 1
        return "", count

    def _refused(self, kind: str, f: Any, count: int) -> None:
        self.refused[kind] += count
        if kind == "impersonation" or self._note is None:  # the binding has reported it, with both writers
            return
        binding = self._binding
        writer = getattr(f, "writer", 0)
        ident = binding.identity(writer) if binding is not None and type(writer) is int and writer else None
        self._note(self.interface, kind, (ident, getattr(f, "source", "")), count)

    def on_frames(self, frames: Sequence[Any]) -> None:
        """Count a delivery; never raises, whatever the frames hold (anyone can write on the topic)."""
        try:
            now = time.monotonic()
            n = 0
            generation = self._generation()
            if generation != self._seen_generation and self._binding is not None:
                self._seen_generation = generation
                self._binding.reset()
                self._seqs = {}
            for f in frames:
                try:
                    kind, count = self._judge(f)
                except Exception:  # a frame too odd to judge is refused, and the others still count
                    kind, count = "undecodable", 1
                if kind:
                    self._refused(kind, f, count)
                    continue
                n += count
                self._heard(getattr(f, "source", ""))
            if n:
                self.arrivals.append((now, n))
            while self.arrivals and now - self.arrivals[0][0] > RATE_WINDOW_S:
                self.arrivals.popleft()
        except Exception:  # pragma: no cover - nothing above should raise; a delivery must not fail
            _log.debug("could not count frames on %s", self.topic, exc_info=True)

    def _heard(self, source: object) -> None:
        if type(source) is not str or not source:
            return
        source = source[:MAX_SOURCE_CHARS]
        if source in self.publishers:
            self.publishers.move_to_end(source)
            return
        self.publishers[source] = None
        if len(self.publishers) > MAX_PUBLISHERS:
            self.publishers.popitem(last=False)

    def rate(self) -> float:
        """Messages per second over the last RATE_WINDOW_S (or since the reader was opened, if later).

        The first second after opening is not counted: a transient-local topic replays its history
        at once, which is not a rate.
        """
        now = time.monotonic()
        start = max(now - RATE_WINDOW_S, self.since + 1.0)
        if now - start < 1.0:
            return 0.0
        arrivals = list(self.arrivals)  # one step: the dispatch thread appends meanwhile
        n = sum(c for t, c in arrivals if t >= start)
        return n / (now - start)


class TopicMonitor:
    """Watches schema announcements and measures every announced topic."""

    def __init__(self, transport: Any, intrusions: Any = None, bus: Any = None) -> None:
        self._transport = transport
        #: Where refused writers are counted and reported (an ``IntrusionLog``); None: not reported.
        self._intrusions = intrusions
        #: The daemon's bus, whose roster decides who may write as a supervised module; None: first come.
        self._bus = bus
        self._stats: dict[str, _TopicStats] = {}
        self._lock = threading.Lock()
        #: Announcements looked at already (used, skipped or refused): each is checked and logged once.
        self._seen: set[Any] = set()
        #: Announcements not used, by reason (those of ``check_schema_record``, or ``unusable``).
        self._refused: Counter[str] = Counter()
        self._timer = transport.call_later(0.0, self._scan, period_s=SCAN_PERIOD_S)

    def refused(self) -> dict[str, int]:
        """How many schema announcements were not used, by reason."""
        with self._lock:
            return dict(self._refused)

    def _scan(self) -> None:
        """Open a reader for each new topic announced; runs on a timer, so it never raises."""
        try:
            records = [r for r in self._transport.schemas() if r not in self._seen]
            if not records:
                return
            from hardpoint import all_interfaces

            known = all_interfaces()
            for record in records:
                self._seen.add(record)
                self._take(record, known)
        except Exception:
            _log.exception("scanning the schema announcements failed")

    def _take(self, record: Any, known: dict[str, Any]) -> None:
        """Measure ``record``'s topic if it is valid and new; otherwise count and log why not, once."""
        from hardpoint import Channel, QosClass, check_schema_record

        refusal = check_schema_record(record, known=known)
        if refusal is not None:
            self._refuse(refusal.reason, str(refusal))
            return
        if record.topic in self._stats:
            return
        try:
            spec = known.get(record.interface)
            nominal = spec.nominal_rate_hz if spec else 0.0
            stats = _TopicStats(record.topic, record.interface, record.qos, nominal, record.schema_id)
            channel = Channel(
                topic=record.topic,
                qos=QosClass[record.qos],
                keyed=spec.keyed if spec else False,
                history_depth=max(spec.history_depth if spec else 1, 64),
                interface=record.interface,
                schema_id=record.schema_id,
            )
            stats.reader = self._transport.open_reader(channel, stats.on_frames)
            if self._intrusions is not None:
                bus = self._bus
                stats.judge_with(
                    stats.reader,
                    (lambda source: bus.roster.allowed(stats.interface, source))
                    if bus is not None
                    else (lambda _source: None),
                    self._note,
                    (lambda: bus.roster_generation) if bus is not None else (lambda: 0),
                )
        except Exception as e:
            self._refuse("unusable", f"cannot read topic {record.topic!r:.100} of {record.interface!r:.100}: {e}")
            return
        with self._lock:
            self._stats[record.topic] = stats

    def _note(self, interface: str, kind: str, who: Any, count: int) -> None:
        """Report a refusal: ``who`` is an intruder record (impersonation) or (writer identity, claimed source)."""
        if kind == "impersonation":
            self._intrusions.note(interface, kind, who.writer, who.participant, who.claimed, who.holder, count)
            return
        ident, claimed = who
        writer, participant = (ident.guid, ident.participant) if ident is not None else ("", "")
        self._intrusions.note(interface, kind, writer, participant, str(claimed)[:MAX_SOURCE_CHARS], "", count)

    def _refuse(self, reason: str, what: str) -> None:
        with self._lock:
            self._refused[reason] += 1
        _log.warning("schema announcement not used: %s", what)

    def snapshot(self) -> list[TopicInfo]:
        """Topics with their publishers and measured rates, by topic name."""
        with self._lock:
            stats = list(self._stats.values())
        return [
            TopicInfo(
                s.topic, s.interface, s.qos, tuple(sorted(s.publishers)), round(s.rate(), 2), s.nominal,
                refused=dict(s.refused), intrusions=self._intrusions_of(s),
            )
            for s in sorted(stats, key=lambda s: s.topic)
        ]  # fmt: skip

    def _intrusions_of(self, s: _TopicStats) -> tuple[Any, ...]:
        if self._intrusions is None or not s.refused:
            return ()
        return tuple(self._intrusions.snapshot({s.interface}))

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for s in self._stats.values():
                if s.reader is not None:
                    s.reader.close()
            self._stats.clear()
