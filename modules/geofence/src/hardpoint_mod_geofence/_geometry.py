"""Zone geometry on WGS84: a local tangent plane per zone, signed distances in metres.

Each zone gets its own East-North-Up (ENU) tangent plane at a reference point
(the circle's centre, or the spherical mean of the polygon's vertices), and
everything is done in that plane: vertices and track positions are projected
*at zero height* (geodetic -> ECEF -> ENU, dropping Up), then point-in-polygon
(crossing number) and the distance to the nearest edge, or to the circle's
centre, are plain 2-D geometry.

Accuracy (horizontal, what decides "inside"): projecting a point at surface
distance ``d`` from the reference point onto the tangent plane shortens it by
about ``d**3 / (6 R**2)``: 0.03 m at 10 km, 0.5 m at 50 km, 4 m at 100 km. A
geodesic edge projects to a curve that departs from the straight edge used
here by far less (centimetres for 20 km edges 10 km from the reference). Zones
are therefore limited to :data:`MAX_ZONE_RADIUS_M` (100 km) from their
reference point, where the error stays below 5 m; well below the fused tracks'
own position error. Points farther away than the zone's extent plus 20 km are
decided on their straight-line (chord) distance, which is only a lower bound of
the distance but can never put them inside. Near the poles the method holds
(the plane is tangent wherever the zone is); across the antimeridian too (the
reference point is a mean of unit vectors, not of longitudes).
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "MAX_ZONE_RADIUS_M",
    "Circle",
    "GeometryError",
    "LocalFrame",
    "Polygon",
    "Shape",
    "circle",
    "polygon",
]

#: WGS84 semi-major axis (m) and first eccentricity squared.
WGS84_A: Final = 6_378_137.0
WGS84_F: Final = 1 / 298.257223563
WGS84_E2: Final = WGS84_F * (2 - WGS84_F)

#: Largest distance of any part of a zone from its reference point (m): the tangent plane error stays below 5 m.
MAX_ZONE_RADIUS_M: Final = 100_000.0
#: Beyond the zone's extent plus this (m), a point is decided by its chord distance alone.
_FAR_M: Final = 20_000.0
#: Smallest polygon area accepted (m^2): anything smaller is a degenerate polygon.
_MIN_AREA_M2: Final = 1.0


class GeometryError(ValueError):
    """A zone's geometry is invalid; the message says what and where."""


def _ecef(lat_deg: float, lon_deg: float, h: float = 0.0) -> tuple[float, float, float]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    s, c = math.sin(lat), math.cos(lat)
    n = WGS84_A / math.sqrt(1 - WGS84_E2 * s * s)
    return ((n + h) * c * math.cos(lon), (n + h) * c * math.sin(lon), (n * (1 - WGS84_E2) + h) * s)


class LocalFrame:
    """An ENU tangent plane at a reference point (degrees)."""

    def __init__(self, lat_deg: float, lon_deg: float) -> None:
        self.lat_deg = lat_deg
        self.lon_deg = lon_deg
        lat, lon = math.radians(lat_deg), math.radians(lon_deg)
        self._origin = _ecef(lat_deg, lon_deg)
        self._rot = (
            (-math.sin(lon), math.cos(lon), 0.0),
            (-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)),
            (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)),
        )

    def enu(self, lat_deg: float, lon_deg: float) -> tuple[float, float, float]:
        """East, north, up (m) of a point at zero height, relative to the reference point at zero height."""
        x, y, z = _ecef(lat_deg, lon_deg)
        ox, oy, oz = self._origin
        dx, dy, dz = x - ox, y - oy, z - oz
        (e0, e1, e2), (n0, n1, n2), (u0, u1, u2) = self._rot
        return (e0 * dx + e1 * dy + e2 * dz, n0 * dx + n1 * dy + n2 * dz, u0 * dx + u1 * dy + u2 * dz)

    @staticmethod
    def mean_of(points: list[tuple[float, float]]) -> LocalFrame:
        """The frame at the spherical mean of ``(lat, lon)`` points (safe across the antimeridian)."""
        sx = sy = sz = 0.0
        for lat_deg, lon_deg in points:
            lat, lon = math.radians(lat_deg), math.radians(lon_deg)
            sx += math.cos(lat) * math.cos(lon)
            sy += math.cos(lat) * math.sin(lon)
            sz += math.sin(lat)
        return LocalFrame(math.degrees(math.atan2(sz, math.hypot(sx, sy))), math.degrees(math.atan2(sy, sx)))


class Shape:
    """A horizontal area in a local frame; :meth:`signed_distance` is positive inside."""

    frame: LocalFrame
    #: Distance (m) of the farthest point of the shape from the frame's origin.
    extent_m: float

    def signed_distance(self, lat_deg: float, lon_deg: float) -> float:
        """Horizontal distance (m) to the boundary: positive inside, negative outside."""
        e, n, u = self.frame.enu(lat_deg, lon_deg)
        chord = math.sqrt(e * e + n * n + u * u)
        if chord > self.extent_m + _FAR_M:
            return -(chord - self.extent_m)
        return self._local(e, n)

    def _local(self, e: float, n: float) -> float:
        raise NotImplementedError


class Circle(Shape):
    """A circle around its centre (the frame origin)."""

    def __init__(self, frame: LocalFrame, radius_m: float) -> None:
        self.frame = frame
        self.radius_m = radius_m
        self.extent_m = radius_m

    def _local(self, e: float, n: float) -> float:
        return self.radius_m - math.hypot(e, n)


class Polygon(Shape):
    """A simple polygon with straight edges in the local plane."""

    def __init__(self, frame: LocalFrame, vertices: list[tuple[float, float]]) -> None:
        self.frame = frame
        self.vertices = vertices
        self.extent_m = max(math.hypot(e, n) for e, n in vertices)
        self._edges = list(zip(vertices, vertices[1:] + vertices[:1], strict=True))

    def _local(self, e: float, n: float) -> float:
        inside = False
        nearest = math.inf
        for (ae, an), (be, bn) in self._edges:
            if (an > n) != (bn > n) and e < ae + (n - an) * (be - ae) / (bn - an):
                inside = not inside
            nearest = min(nearest, _segment_distance((e, n), (ae, an), (be, bn)))
        return nearest if inside else -nearest


def _segment_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance from point ``p`` to segment ``ab``."""
    de, dn = b[0] - a[0], b[1] - a[1]
    length2 = de * de + dn * dn
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * de + (p[1] - a[1]) * dn) / length2))
    return math.hypot(p[0] - (a[0] + t * de), p[1] - (a[1] + t * dn))


def _check_lat_lon(lat: float, lon: float, where: str) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise GeometryError(f"{where}: latitude and longitude must be finite numbers")
    if not -90 <= lat <= 90:
        raise GeometryError(f"{where}: latitude {lat} is outside [-90, 90] degrees")
    if not -180 <= lon <= 180:
        raise GeometryError(f"{where}: longitude {lon} is outside [-180, 180] degrees")


def circle(lat_deg: float, lon_deg: float, radius_m: float) -> Circle:
    """A validated circle.

    :raises GeometryError: bad centre, or a radius that is not in (0, MAX_ZONE_RADIUS_M].
    """
    _check_lat_lon(lat_deg, lon_deg, "circle centre")
    if not (math.isfinite(radius_m) and 0 < radius_m <= MAX_ZONE_RADIUS_M):
        raise GeometryError(f"circle radius_m must be in (0, {MAX_ZONE_RADIUS_M:.0f}] m, not {radius_m}")
    return Circle(LocalFrame(lat_deg, lon_deg), radius_m)


def polygon(points: list[tuple[float, float]]) -> Polygon:
    """A validated polygon from ``(lat, lon)`` vertices in degrees.

    :raises GeometryError: fewer than 3 vertices, a repeated closing vertex, a vertex
        out of range, edges that cross, no area, or a zone larger than allowed.
    """
    if len(points) < 3:
        raise GeometryError(f"polygon needs at least 3 vertices, got {len(points)}")
    for i, (lat, lon) in enumerate(points):
        _check_lat_lon(lat, lon, f"polygon vertex {i}")
    if points[0] == points[-1]:
        raise GeometryError("polygon: the last vertex repeats the first; leave it out (the polygon closes by itself)")
    frame = LocalFrame.mean_of(points)
    local: list[tuple[float, float]] = []
    for i, (lat, lon) in enumerate(points):
        e, n, _ = frame.enu(lat, lon)
        if math.hypot(e, n) > MAX_ZONE_RADIUS_M:
            raise GeometryError(
                f"polygon vertex {i} ({lat}, {lon}) is {math.hypot(e, n) / 1000:.0f} km from the zone's centre; "
                f"zones may reach at most {MAX_ZONE_RADIUS_M / 1000:.0f} km from it (split the zone). "
                "Vertices are [latitude, longitude]: check they are not swapped"
            )
        local.append((e, n))
    count = len(local)
    for i in range(count):
        a, b = local[i], local[(i + 1) % count]
        if a == b:
            raise GeometryError(f"polygon vertices {i} and {(i + 1) % count} are the same point")
        for j in range(i + 1, count):
            if j == i or (j + 1) % count == i or j == (i + 1) % count:
                continue  # adjacent edges share a vertex
            if _segments_cross(a, b, local[j], local[(j + 1) % count]):
                raise GeometryError(f"polygon edges {i}-{(i + 1) % count} and {j}-{(j + 1) % count} cross")
    area = 0.5 * abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(local, local[1:] + local[:1], strict=True)))
    if area < _MIN_AREA_M2:
        raise GeometryError(f"polygon has no area ({area:.2f} m^2): its vertices lie on a line")
    return Polygon(frame, local)


def _orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
    return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])


def _segments_cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    """True when segments ab and cd intersect (touching included)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0) != (o2 > 0) and o1 != 0 and o2 != 0) and ((o3 > 0) != (o4 > 0) and o3 != 0 and o4 != 0):
        return True

    def on(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float], o: float) -> bool:
        return o == 0 and min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    return on(a, b, c, o1) or on(a, b, d, o2) or on(c, d, a, o3) or on(c, d, b, o4)
