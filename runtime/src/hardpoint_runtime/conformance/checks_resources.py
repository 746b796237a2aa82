"""Resources of the module's process while active: memory, threads and open files stay bounded (CF-RES).

The module under test is hosted active over the observation window of CF-BUS-001
(:func:`~._active.active_run`, shared with :mod:`.checks_time`), and its worker process, with any process
it started, is sampled from ``/proc`` every :data:`~._active.SAMPLE_EVERY_S`: resident memory (``VmRSS``),
threads (``Threads``) and open file descriptors (``/proc/<pid>/fd``), each summed over the process tree.
Start-up (imports, DDS discovery, first allocations) happens before the judged window, which starts
:data:`~.checks_contract.SETTLE_S` after activation.

A resource fails when it grew *steadily*: by more than its limit over the window (:data:`LIMITS`; the
start and the end are each the median of :data:`EDGE` samples, so one transient sample does not count)
**and** by more than its per-half limit in each half of the window. One-off growth (a pool of threads
started at once, a buffer allocated once) passes; a leak, which grows all along, fails. The figures the
limits were chosen from (every reference module grows by at most 1.4 MiB, 0 threads and 0 files over a
window) are in ``spec/conformance.md`` (CF-RES-*). What each check judged: the samples of the process.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import pytest

from hardpoint.conformance.plugin import judged
from hardpoint_runtime.conformance._active import ActiveRun, ResourceSample, active_run  # noqa: F401

__all__ = ["EDGE", "LIMITS", "MIN_SAMPLES", "Growth", "Limit", "judge_growth"]


@dataclass(frozen=True)
class Limit:
    """How much one resource may grow over the window, and in each half of it, before it is a leak."""

    requirement: str
    what: str
    unit: str
    #: Growth over the whole window that, with :attr:`per_half` exceeded in both halves, fails.
    total: float
    per_half: float
    value: Callable[[ResourceSample], float]


LIMITS: Final = {
    "memory": Limit("CF-RES-002", "resident memory (VmRSS)", "MiB", 32.0, 8.0, lambda s: s.rss_kib / 1024),
    "threads": Limit("CF-RES-003", "threads", "threads", 3, 0, lambda s: s.threads),
    "fds": Limit("CF-RES-004", "open file descriptors", "fds", 8, 1, lambda s: s.fds),
}
#: Samples whose median is the value at each edge (start, middle, end) of the window.
EDGE: Final = 3
#: Fewest samples in the window for a judgement (3 edges of :data:`EDGE`).
MIN_SAMPLES: Final = 3 * EDGE


@dataclass(frozen=True)
class Growth:
    """One resource over the window: its value at the start, the middle and the end (each a median)."""

    first: float
    middle: float
    last: float
    samples: int

    @property
    def total(self) -> float:
        return self.last - self.first

    def text(self, unit: str) -> str:
        return (
            f"{self.first:g} -> {self.middle:g} -> {self.last:g} {unit} "
            f"({self.total:+g}: {self.middle - self.first:+g} in the first half, {self.last - self.middle:+g} "
            f"in the second)"
        )


def _round(value: float) -> float:
    return round(value, 1)


def measure(values: Sequence[tuple[float, float]], start: float, end: float) -> Growth | None:
    """The growth of ``(time, value)`` samples within ``[start, end]``; None with fewer than :data:`MIN_SAMPLES`."""
    inside = sorted((t, v) for t, v in values if start <= t <= end)
    if len(inside) < MIN_SAMPLES:
        return None
    centre = (start + end) / 2
    nearest = sorted(inside, key=lambda tv: abs(tv[0] - centre))[:EDGE]
    return Growth(
        _round(statistics.median(v for _, v in inside[:EDGE])),
        _round(statistics.median(v for _, v in nearest)),
        _round(statistics.median(v for _, v in inside[-EDGE:])),
        len(inside),
    )


def judge_growth(growth: Growth, limit: Limit) -> bool:
    """True when the growth is a leak by ``limit``: more than its total, and more than its per-half in each half."""
    return (
        growth.total > limit.total
        and growth.middle - growth.first > limit.per_half
        and growth.last - growth.middle > limit.per_half
    )


def _check(run: ActiveRun, key: str, request: pytest.FixtureRequest) -> None:
    limit = LIMITS[key]
    values = [(s.at, float(limit.value(s))) for s in run.resources]
    growth = measure(values, run.start, run.end)
    where = f"module {run.name!r} (process {run.pid})"
    if run.exit_code is not None:
        judged(request, 0, f"samples of the {limit.what} of {where}")
        pytest.fail(
            f"{limit.requirement}: {where} ended during the observation window (exit code {run.exit_code}): its "
            f"{limit.what} could not be observed over {run.window_s:.1f} s\n{run.log_tail}",
            pytrace=False,
        )
    if growth is None:
        inside = sum(1 for t, _ in values if run.start <= t <= run.end)
        judged(request, 0, f"samples of the {limit.what} of {where}")
        pytest.fail(
            f"{limit.requirement}: {where}: only {inside} samples of its {limit.what} in the {run.window_s:.1f} s "
            f"window (at least {MIN_SAMPLES} needed)",
            pytrace=False,
        )
    summary = growth.text(limit.unit)
    judged(request, growth.samples, f"samples of the {limit.what} of {where} over {run.window_s:.1f} s: {summary}")
    request.node.user_properties.append(("measured", summary))
    if judge_growth(growth, limit):
        pytest.fail(
            f"{limit.requirement}: {where}: {limit.what} grew steadily while active: {summary} over "
            f"{run.window_s:.1f} s; allowed: at most {limit.total:g} {limit.unit} over the window, or growth in "
            f"only one half of it (more than {limit.per_half:g} {limit.unit} in both halves is a leak)",
            pytrace=False,
        )


@pytest.mark.hardpoint("CF-RES-002", "CF-RES-001")
def test_memory_bounded(active_run: ActiveRun, request: pytest.FixtureRequest) -> None:  # noqa: F811
    """The module's resident memory does not grow steadily while it is active."""
    _check(active_run, "memory", request)


@pytest.mark.hardpoint("CF-RES-003", "CF-RES-001")
def test_threads_bounded(active_run: ActiveRun, request: pytest.FixtureRequest) -> None:  # noqa: F811
    """The module does not keep starting threads while it is active."""
    _check(active_run, "threads", request)


@pytest.mark.hardpoint("CF-RES-004", "CF-RES-001")
def test_open_files_bounded(active_run: ActiveRun, request: pytest.FixtureRequest) -> None:  # noqa: F811
    """The module does not keep opening files (sockets, pipes) without closing them while it is active."""
    _check(active_run, "fds", request)
