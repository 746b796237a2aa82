"""Time of validity on the real bus: every sample's time within stated bounds of when it was written (CF-TIME).

A sample's envelope carries ``time_of_validity_ns``, the time its content is valid: the measurement time
of sensed data, the solution time of a navigation state, the decision time of an event (IF-ENV-TIME).
The module under test is hosted active over the observation window of CF-BUS-001
(:func:`~._active.active_run`, shared with :mod:`.checks_resources`); the probe keeps every sample's DDS
source timestamp, the time the module's writer wrote it on the same host clock. Each check compares the
two, per sample, against bounds stated in ``spec/conformance.md`` (CF-TIME-*):

- not in the future: at most :data:`FUTURE_TOLERANCE_S` after the write (content is valid when it was
  measured, solved or decided, all before it is written);
- not stale: at most :func:`age_bound` before the write. A continuous interface (NavState) describes the
  present: its content may be one deadline old plus :data:`CONTINUOUS_ALLOWANCE_S`. Anything else (tracks,
  whose coasting samples repeat their last measurement until they drop; events, decided on such data) at
  most :data:`MAX_AGE_S` or :data:`MAX_AGE_DEADLINES` deadlines, whichever is longer;
- the content times the contract ties to the time of validity (:data:`CONTENT_TIMES`: a sensor track's
  ``measurement_time_ns``, a fused track's ``last_update_time_ns``) within the same bounds.

A clock minutes off, a cached or replayed time, a time in the wrong unit (ms since the epoch reads as
1970) or an unset one (0) fail; what each check judged is the samples (messages) compared (CF-JDG-001).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance._active import ActiveRun, active_run  # noqa: F401 - the shared fixture

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec
    from hardpoint_runtime.conformance._harness import Observed

__all__ = [
    "CONTENT_TIMES",
    "CONTINUOUS_ALLOWANCE_S",
    "FUTURE_TOLERANCE_S",
    "MAX_AGE_DEADLINES",
    "MAX_AGE_S",
    "age_bound",
    "content_times",
    "judge_times",
]

#: How far after its write a sample's time of validity may lie (s): same host clock, so scheduling only.
FUTURE_TOLERANCE_S: Final = 0.5
#: A continuous interface's content may be one deadline old when written, plus this (acquisition, scheduling; s).
CONTINUOUS_ALLOWANCE_S: Final = 1.0
#: Any other interface's content may be this old when written (s), or :data:`MAX_AGE_DEADLINES` deadlines.
MAX_AGE_S: Final = 30.0
MAX_AGE_DEADLINES: Final = 10
#: Message fields the contract describes as the time the content refers to, by interface (CF-TIME-004).
CONTENT_TIMES: Final = {
    "hardpoint.track.v1.SensorTrack": "measurement_time_ns",
    "hardpoint.track.v1.FusedTrack": "last_update_time_ns",
}
#: Samples named in one failure message per interface.
SHOWN: Final = 3
CF_FUTURE, CF_STALE, CF_CONTENT = "CF-TIME-002", "CF-TIME-003", "CF-TIME-004"


# --------------------------------------------------------------------------- bounds and judgement (pure)


def age_bound(spec: InterfaceSpec) -> tuple[float, str]:
    """How old (s) a sample of ``spec`` may be when written, and why (CF-TIME-003)."""
    deadline_s = spec.deadline_ms / 1000
    if spec.continuous and spec.deadline_ms:
        bound = deadline_s + CONTINUOUS_ALLOWANCE_S
        return bound, f"a continuous interface: its deadline {spec.deadline_ms} ms + {CONTINUOUS_ALLOWANCE_S:g} s"
    bound = max(MAX_AGE_S, MAX_AGE_DEADLINES * deadline_s)
    return bound, f"the longer of {MAX_AGE_S:g} s and {MAX_AGE_DEADLINES} deadlines of {spec.deadline_ms} ms"


def _when(ns: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds:.1f} s ({seconds / 86400:.1f} days)"
    if seconds >= 120:
        return f"{seconds:.1f} s ({seconds / 60:.1f} min)"
    return f"{seconds:.3f} s"


def judge_times(
    times: Iterable[tuple[str, int, int]], *, future_s: float, past_s: float
) -> tuple[list[str], list[str], int]:
    """Problems of ``(where, valid_ns, written_ns)`` items: ``(too far in the future, too old, items judged)``.

    An item without a write time (0) is not judged. ``valid_ns`` later than ``written_ns + future_s`` is in
    the future; earlier than ``written_ns - past_s`` too old.
    """
    future: list[str] = []
    stale: list[str] = []
    count = 0
    for where, valid_ns, written_ns in times:
        if not written_ns:
            continue
        count += 1
        offset_s = (valid_ns - written_ns) / 1e9
        if offset_s > future_s:
            future.append(
                f"{where}: valid at {_when(valid_ns)}, written {_when(written_ns)}: {_span(offset_s)} after its write"
            )
        elif -offset_s > past_s:
            stale.append(
                f"{where}: valid at {_when(valid_ns)}, written {_when(written_ns)}: {_span(-offset_s)} before its write"
            )
    return future, stale, count


def _offsets(times: Sequence[tuple[str, int, int]]) -> str:
    offsets = [(valid - written) / 1e9 for _, valid, written in times if written]
    if not offsets:
        return "no write time"
    return f"time of validity {min(offsets):+.3f}..{max(offsets):+.3f} s from the write"


# --------------------------------------------------------------------------- what is compared


def _stamps(frames: Sequence[Observed]) -> list[tuple[str, int, int]]:
    """The envelope's time of validity of every frame (a batch's stamp is its first message's)."""
    return [(f"sample seq {f.seq}", f.stamp_ns, f.written_ns) for f in frames]


def content_times(spec: InterfaceSpec, field: str, frames: Sequence[Observed]) -> list[tuple[str, int, int]]:
    """``field`` of every message of ``frames`` (batches split) with its sample's write time (undecodable: left out)."""
    from google.protobuf.message import DecodeError

    from hardpoint.core.v1 import header_pb2

    out: list[tuple[str, int, int]] = []
    for f in frames:
        try:
            if f.count == 1:
                payloads = [f.payload]
            else:
                batch = header_pb2.Batch()
                batch.ParseFromString(f.payload)
                payloads = list(batch.items)
            for i, payload in enumerate(payloads):
                msg = spec.message_type()
                msg.ParseFromString(payload)
                out.append((f"sample seq {f.seq + i} {field}", int(getattr(msg, field)), f.written_ns))
        except DecodeError:
            continue  # undecodable: the header check (CF-BUS) reports it
    return out


def _report(run: ActiveRun, requirement: str, title: str, findings: dict[str, tuple[list[str], int, str]]) -> None:
    """Fail naming the requirement and, per interface, how many items broke it, the first few and the bound."""
    bad = {name: f for name, f in findings.items() if f[0]}
    if not bad:
        return
    lines = [f"{requirement} (IF-ENV-TIME): module {run.name!r}: {title}"]
    for name, (problems, count, bound) in bad.items():
        lines.append(f"{name}: {len(problems)} of {count} outside the bounds; {bound}")
        lines += [f"  {problem}" for problem in problems[:SHOWN]]
        if len(problems) > SHOWN:
            lines.append(f"  (and {len(problems) - SHOWN} more)")
    pytest.fail("\n".join(lines), pytrace=False)


# --------------------------------------------------------------------------- checks


@pytest.mark.hardpoint(CF_FUTURE, "IF-ENV-TIME")
def test_time_of_validity_not_in_future(active_run: ActiveRun, request: pytest.FixtureRequest) -> None:  # noqa: F811
    """No sample's time of validity lies more than the tolerance after the module wrote it."""
    run = active_run
    if not run.specs:
        not_applicable(request, "the module provides no interface")
        return
    findings: dict[str, tuple[list[str], int, str]] = {}
    for name, frames in run.frames.items():
        stamps = _stamps(frames)
        future, _, count = judge_times(stamps, future_s=FUTURE_TOLERANCE_S, past_s=float("inf"))
        judged(request, count, f"samples of {name} ({_offsets(stamps)})")
        findings[name] = (future, count, f"{_offsets(stamps)}; allowed: at most {FUTURE_TOLERANCE_S:g} s after it")
    _report(run, CF_FUTURE, f"time of validity more than {FUTURE_TOLERANCE_S:g} s after the write", findings)


@pytest.mark.hardpoint(CF_STALE, "IF-ENV-TIME")
def test_time_of_validity_not_stale(active_run: ActiveRun, request: pytest.FixtureRequest) -> None:  # noqa: F811
    """No sample's time of validity lies further before its write than its interface allows."""
    run = active_run
    if not run.specs:
        not_applicable(request, "the module provides no interface")
        return
    findings: dict[str, tuple[list[str], int, str]] = {}
    for name, frames in run.frames.items():
        bound, why = age_bound(run.specs[name])
        stamps = _stamps(frames)
        _, stale, count = judge_times(stamps, future_s=float("inf"), past_s=bound)
        judged(request, count, f"samples of {name} ({_offsets(stamps)}; at most {bound:g} s before it allowed)")
        findings[name] = (stale, count, f"{_offsets(stamps)}; allowed: at most {bound:g} s before it ({why})")
    _report(run, CF_STALE, "time of validity older than its interface allows when written", findings)


@pytest.mark.hardpoint(
    CF_CONTENT, "IF-ENV-TIME", "IF-TRACK-SENSOR-FIELD-MEASUREMENT_TIME_NS", "IF-TRACK-FUSED-FIELD-LAST_UPDATE_TIME_NS"
)
def test_content_times_within_bounds(active_run: ActiveRun, request: pytest.FixtureRequest) -> None:  # noqa: F811
    """The message's own time of its content (a track's measurement time) obeys the same bounds."""
    run = active_run
    fields = {name: CONTENT_TIMES[name] for name in run.specs if name in CONTENT_TIMES}
    if not fields:
        not_applicable(
            request,
            "the module provides no interface with a content time ("
            + ", ".join(f"{n}.{f}" for n, f in CONTENT_TIMES.items())
            + ")",
        )
        return
    findings: dict[str, tuple[list[str], int, str]] = {}
    for name, field in fields.items():
        spec = run.specs[name]
        bound, why = age_bound(spec)
        times = content_times(spec, field, run.frames.get(name, []))
        future, stale, count = judge_times(times, future_s=FUTURE_TOLERANCE_S, past_s=bound)
        judged(request, count, f"messages of {name} ({field}: {_offsets(times)})")
        requirement = f"{spec.id}-FIELD-{field.upper()}"
        findings[f"{name}.{field} ({requirement})"] = (
            future + stale,
            count,
            f"{_offsets(times)}; allowed: from {bound:g} s before it ({why}) to {FUTURE_TOLERANCE_S:g} s after it",
        )
    _report(run, CF_CONTENT, "content time outside the bounds of the time of validity", findings)
