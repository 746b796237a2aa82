"""Replay: publish a recording onto a bus, keeping its relative timing.

Deterministic by construction: messages go out in the order they were
recorded, each through a publisher with ``batch=None`` (written at once, no
batching timer), and the pacing uses only the ``clock`` and ``sleep`` it is
given. On the in-memory transport, pass the manual clock
(``clock=transport.now_ns, sleep=transport.advance``): the replay then *drives*
the bus clock, every module timer fires at the same recorded instant on every
run, and a module fed the replay (fusion) produces the same output each time.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.message import DecodeError, Message

from hardpoint import Bus, InterfaceSpec, Publisher, all_interfaces
from hardpoint_mod_recorder._mcap import read

__all__ = ["DEFAULT_EXCLUDE", "ReplayStats", "replay"]

_log = logging.getLogger(__name__)

#: Interfaces not replayed unless asked for: heartbeats of the recorded modules would pass for live ones.
DEFAULT_EXCLUDE: Final = ("hardpoint.core.v1.ModuleHealth",)


@dataclass(slots=True)
class ReplayStats:
    """What a replay did."""

    #: Messages published, by topic.
    published: Counter[str] = field(default_factory=Counter)
    #: Messages not published, by reason (``unknown interface X``, ``schema of X differs``, ``undecodable X``).
    skipped: Counter[str] = field(default_factory=Counter)
    #: Recorded time span covered, first to last replayed message (ns of log time).
    span_ns: int = 0

    @property
    def total(self) -> int:
        return sum(self.published.values())


def replay(
    path: str | os.PathLike[str],
    bus: Bus,
    *,
    speed: float = 1.0,
    topics: Iterable[str] | None = None,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    clock: Callable[[], int] = time.monotonic_ns,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] | None = None,
) -> ReplayStats:
    """Publish the messages of a recording onto ``bus`` in recorded order and timing.

    Message *i* is published when ``clock()`` has advanced ``(log_time_i -
    log_time_0) / speed`` past the start, with its recorded time of validity
    (the envelope ``stamp_ns``). Contents are published as recorded: times
    inside messages (``measurement_time_ns``...) are not shifted.

    :param bus: where to publish, e.g. ``Bus(transport, module="replay", requires=())``
        (``provides=None``, the default, lets it publish every interface).
    :param speed: 2.0 replays twice as fast; ``0`` or ``math.inf``: as fast as possible, no pacing.
    :param topics: only these topics or interface names; all recorded ones when None.
    :param exclude: topics or interface names never replayed (default: module heartbeats).
    :param clock: current time in ns (monotonic); ``InMemoryTransport.now_ns`` for a manual clock.
    :param sleep: wait this many seconds; ``InMemoryTransport.advance`` for a manual clock.
    :param stop: polled before each message; replay ends early when it returns True.
    :raises mcap.exceptions.McapError: the file is not a valid MCAP recording.
    :raises hardpoint.UndeclaredInterfaceError: ``bus`` may not publish a recorded interface.
    """
    specs = all_interfaces()
    excluded = set(exclude)
    publishers: dict[str, Publisher[Message]] = {}
    stats = ReplayStats()
    paced = speed > 0 and math.isfinite(speed)
    first_log: int | None = None
    last_log = 0
    start = 0
    for rec in read(path, topics=topics):
        if rec.topic in excluded or rec.interface in excluded:
            continue
        if stop is not None and stop():
            break
        spec = specs.get(rec.interface)
        if spec is None:
            stats.skipped[f"unknown interface {rec.interface or rec.topic}"] += 1
            continue
        if rec.schema_id and rec.schema_id != spec.schema_id:
            stats.skipped[f"schema of {rec.interface} differs"] += 1
            continue
        try:
            message = spec.message_type.FromString(rec.data)
        except DecodeError:
            stats.skipped[f"undecodable {rec.interface}"] += 1
            continue
        if first_log is None:
            first_log, start = rec.log_time_ns, clock()
        elif paced:
            due = start + int((rec.log_time_ns - first_log) / speed)
            delay = due - clock()
            if delay > 0:
                sleep(delay / 1e9)
        last_log = max(last_log, rec.log_time_ns)
        _publisher(bus, spec, publishers).publish(message, time_of_validity_ns=rec.publish_time_ns or None)
        stats.published[rec.topic] += 1
    stats.span_ns = last_log - first_log if first_log is not None else 0
    for reason, n in stats.skipped.items():
        _log.warning("replay of %s: skipped %d message(s): %s", path, n, reason)
    return stats


def _publisher(bus: Bus, spec: InterfaceSpec, publishers: dict[str, Publisher[Message]]) -> Publisher[Message]:
    pub = publishers.get(spec.name)
    if pub is None:
        # batch=None: each message is written at once, so delivery order and timing do not
        # depend on batching timers (deterministic on the in-memory transport).
        pub = publishers[spec.name] = bus.publisher(spec.message_type, batch=None)
    return pub
