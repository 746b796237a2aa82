"""Scripted motion on a flat map: polylines with rounded corners, circles, straight runs.

A :class:`Path` is a pure function of time: ``state(t)`` gives the map
position ``(north_m, east_m)``, the map velocity and the course. Polylines get
their corners rounded by circular arcs whose radius follows from the speed
and a turn rate (``radius = speed / turn_rate``), shrunk when the legs are too
short; so position, velocity direction and course are continuous (speed may
step at a waypoint). A reversal (a corner of 180 degrees) cannot be rounded
and is taken on the spot.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

__all__ = ["CirclePath", "LinePath", "MapState", "Path", "PolylinePath"]

_MIN_TURN = 1e-6  # rad: a corner below this is straight


class MapState(NamedTuple):
    """Where a scripted object is on the map at one time."""

    north_m: float
    east_m: float
    vn: float  #: map velocity (m/s)
    ve: float
    course_rad: float  #: direction of motion from north, clockwise; kept when stopped


class Path:
    """Motion of one object from ``t0`` (its start time, s)."""

    t0: float

    def state(self, t: float) -> MapState:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class LinePath(Path):
    """A straight run at constant velocity from a point."""

    t0: float
    north_m: float
    east_m: float
    course_rad: float
    speed_mps: float

    def state(self, t: float) -> MapState:
        dt = max(0.0, t - self.t0)
        vn, ve = self.speed_mps * math.cos(self.course_rad), self.speed_mps * math.sin(self.course_rad)
        return MapState(self.north_m + vn * dt, self.east_m + ve * dt, vn, ve, self.course_rad)


@dataclass(frozen=True, slots=True)
class CirclePath(Path):
    """Circling a centre at constant speed (a loitering contact)."""

    t0: float
    center_north_m: float
    center_east_m: float
    radius_m: float
    speed_mps: float
    start_bearing_rad: float  #: bearing from the centre to the object at t0
    clockwise: bool

    def state(self, t: float) -> MapState:
        dt = max(0.0, t - self.t0)
        sign = 1.0 if self.clockwise else -1.0
        ang = self.start_bearing_rad + sign * self.speed_mps / self.radius_m * dt
        n = self.center_north_m + self.radius_m * math.cos(ang)
        e = self.center_east_m + self.radius_m * math.sin(ang)
        course = ang + sign * math.pi / 2.0
        vn, ve = self.speed_mps * math.cos(course), self.speed_mps * math.sin(course)
        return MapState(n, e, vn, ve, _wrap(course))


@dataclass(frozen=True, slots=True)
class _Segment:
    t0: float
    t1: float
    speed: float
    # line: start point and unit direction
    n0: float
    e0: float
    course: float
    # arc: centre, radius, start angle (bearing from the centre), turn sign (+1 clockwise); radius 0 for a line
    cn: float = 0.0
    ce: float = 0.0
    radius: float = 0.0
    a0: float = 0.0
    sign: float = 0.0

    def at(self, t: float) -> MapState:
        s = self.speed * (t - self.t0)
        if self.radius == 0.0:
            vn, ve = self.speed * math.cos(self.course), self.speed * math.sin(self.course)
            return MapState(
                self.n0 + s * math.cos(self.course), self.e0 + s * math.sin(self.course), vn, ve, self.course
            )
        ang = self.a0 + self.sign * s / self.radius
        course = _wrap(ang + self.sign * math.pi / 2.0)
        return MapState(
            self.cn + self.radius * math.cos(ang),
            self.ce + self.radius * math.sin(ang),
            self.speed * math.cos(course),
            self.speed * math.sin(course),
            course,
        )


class PolylinePath(Path):
    """Through map points, leg ``i`` (point ``i`` to ``i + 1``) at ``speeds[i]``, corners rounded.

    :param after_end: ``continue``: on along the last course at the last speed; ``stop``: halt at the last point.
    """

    def __init__(
        self,
        t0: float,
        points: list[tuple[float, float]],
        speeds: list[float],
        *,
        turn_rate_rad_s: float,
        after_end: Literal["continue", "stop"] = "continue",
    ) -> None:
        if len(points) < 2 or len(speeds) != len(points) - 1:
            raise ValueError("a polyline needs at least two points and one speed per leg")
        self.t0 = t0
        self.after_end = after_end
        pts, spd = _drop_repeats(points, speeds)
        self._segments = _build(t0, pts, spd, turn_rate_rad_s)
        self._starts = [s.t0 for s in self._segments]
        #: Time the last point is reached.
        self.t_end = self._segments[-1].t1

    def state(self, t: float) -> MapState:
        if t <= self.t0:
            return self._segments[0].at(self.t0)
        if t >= self.t_end:
            last = self._segments[-1]
            end = last.at(last.t1)
            if self.after_end == "stop":
                return MapState(end.north_m, end.east_m, 0.0, 0.0, end.course_rad)
            dt = t - last.t1
            return MapState(end.north_m + end.vn * dt, end.east_m + end.ve * dt, end.vn, end.ve, end.course_rad)
        i = bisect.bisect_right(self._starts, t) - 1
        return self._segments[i].at(t)


def _drop_repeats(
    points: list[tuple[float, float]], speeds: list[float]
) -> tuple[list[tuple[float, float]], list[float]]:
    pts, spd = [points[0]], []
    for p, v in zip(points[1:], speeds, strict=True):
        if math.hypot(p[0] - pts[-1][0], p[1] - pts[-1][1]) < 1e-6:
            continue
        pts.append(p)
        spd.append(v)
    if not spd:
        raise ValueError("a polyline needs two distinct points")
    return pts, spd


def _build(t0: float, pts: list[tuple[float, float]], speeds: list[float], omega: float) -> list[_Segment]:
    n_legs = len(speeds)
    courses = [math.atan2(pts[i + 1][1] - pts[i][1], pts[i + 1][0] - pts[i][0]) for i in range(n_legs)]
    lengths = [math.hypot(pts[i + 1][0] - pts[i][0], pts[i + 1][1] - pts[i][1]) for i in range(n_legs)]
    # At each inner corner: cut distance d along both legs and the arc's radius.
    cut = [0.0] * (n_legs + 1)
    arcs: list[tuple[float, float] | None] = [None] * (n_legs + 1)  # (radius, turn angle) at point i
    for i in range(1, n_legs):
        turn = _wrap(courses[i] - courses[i - 1])
        if abs(turn) < _MIN_TURN or abs(turn) > math.pi - 1e-3:
            continue
        radius = speeds[i] / omega if omega > 0 else 0.0
        d = radius * math.tan(abs(turn) / 2.0)
        limit = 0.5 * min(lengths[i - 1], lengths[i])
        if d > limit:
            d = limit
            radius = d / math.tan(abs(turn) / 2.0)
        if radius <= 0.0:
            continue
        cut[i] = d
        arcs[i] = (radius, turn)
    segments: list[_Segment] = []
    t = t0
    for i in range(n_legs):
        c = courses[i]
        start_cut, end_cut = cut[i], cut[i + 1]
        n0 = pts[i][0] + start_cut * math.cos(c)
        e0 = pts[i][1] + start_cut * math.sin(c)
        length = max(0.0, lengths[i] - start_cut - end_cut)
        v = speeds[i]
        dur = length / v if v > 0 else 0.0
        if dur > 0:
            segments.append(_Segment(t, t + dur, v, n0, e0, c))
            t += dur
        arc = arcs[i + 1]
        if arc is not None:
            radius, turn = arc
            sign = 1.0 if turn > 0 else -1.0
            # arc from the tangent point on leg i to the tangent point on leg i + 1, at the next leg's speed
            tn = pts[i + 1][0] - end_cut * math.cos(c)
            te = pts[i + 1][1] - end_cut * math.sin(c)
            normal = c + sign * math.pi / 2.0  # towards the centre
            cn, ce = tn + radius * math.cos(normal), te + radius * math.sin(normal)
            a0 = math.atan2(te - ce, tn - cn)
            v_arc = speeds[i + 1]
            arc_dur = radius * abs(turn) / v_arc if v_arc > 0 else 0.0
            if arc_dur > 0:
                segments.append(_Segment(t, t + arc_dur, v_arc, tn, te, c, cn, ce, radius, a0, sign))
                t += arc_dur
    if not segments:
        segments.append(_Segment(t0, t0, 0.0, pts[-1][0], pts[-1][1], courses[-1]))
    return segments


def _wrap(a: float) -> float:
    """Angle in (-pi, pi]."""
    w = math.fmod(a + math.pi, 2.0 * math.pi)
    if w <= 0.0:
        w += 2.0 * math.pi
    return w - math.pi
