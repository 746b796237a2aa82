"""WGS84 geodesy for the simulator: exact local NED geometry and a flat map for scripted paths.

Two tools, for two jobs:

- **Exact local NED** (:func:`ned_between`, :func:`offset_by_ned`): through
  Earth-centred Earth-fixed coordinates, so a vector between two geodetic
  points is the true straight line in the local level frame of the first
  (a surface point 20 km away is 31 m *below* the tangent plane). This is what
  sensors measure, so the simulator computes every range, bearing and
  elevation with it. Error: floating-point only (sub-millimetre at 100 km;
  tests check the round trip).
- **Flat map** (:class:`LocalMap`): an equirectangular projection about a
  reference point with the WGS84 radii of curvature there (meridional ``M``
  and prime vertical ``N``). Scripted routes are straight lines and circular
  arcs on this map. It is a *definition* of the paths, not a measurement: the
  truth is the geodetic position that comes out, and velocities are the true
  time derivatives of it (see :meth:`LocalMap.true_velocity`). Compared with
  exact distances, map distances are off by about ``d * tan(lat) * dn / R``:
  under 0.2 % of the distance over 10 km at 45 degrees, so a target scripted
  at 10 m/s 10 km north of the reference moves at 10.02 m/s on the ground.
  Truth stays self-consistent; only the scripted speed is approximate.

Angles are radians unless a name ends in ``_deg``; heights are above the
ellipsoid.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

__all__ = ["A", "E2", "F", "LocalMap", "ecef_to_geodetic", "geodetic_to_ecef", "ned_between", "offset_by_ned"]

#: WGS84 semi-major axis (m).
A: Final = 6378137.0
#: WGS84 flattening.
F: Final = 1.0 / 298.257223563
#: First eccentricity squared.
E2: Final = F * (2.0 - F)


class Vec3(NamedTuple):
    x: float
    y: float
    z: float


def geodetic_to_ecef(lat_deg: float, lon_deg: float, h_m: float) -> Vec3:
    """ECEF coordinates (m) of a geodetic position."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    s, c = math.sin(lat), math.cos(lat)
    n = A / math.sqrt(1.0 - E2 * s * s)
    return Vec3((n + h_m) * c * math.cos(lon), (n + h_m) * c * math.sin(lon), (n * (1.0 - E2) + h_m) * s)


def ecef_to_geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Geodetic ``(lat_deg, lon_deg, h_m)`` of an ECEF point (iterated to convergence; not at the centre)."""
    p = math.hypot(x, y)
    lon = math.atan2(y, x)
    lat = math.atan2(z, p * (1.0 - E2))
    h = 0.0
    for _ in range(10):
        s = math.sin(lat)
        n = A / math.sqrt(1.0 - E2 * s * s)
        h = p / math.cos(lat) - n if abs(lat) < math.radians(89.0) else z / s - n * (1.0 - E2)
        new = math.atan2(z, p * (1.0 - E2 * n / (n + h)))
        if abs(new - lat) < 1e-15:
            lat = new
            break
        lat = new
    s = math.sin(lat)
    n = A / math.sqrt(1.0 - E2 * s * s)
    h = p / math.cos(lat) - n if abs(lat) < math.radians(89.0) else z / s - n * (1.0 - E2)
    return math.degrees(lat), math.degrees(lon), h


def _ned_axes(lat_deg: float, lon_deg: float) -> tuple[Vec3, Vec3, Vec3]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
    return Vec3(-sl * co, -sl * so, cl), Vec3(-so, co, 0.0), Vec3(-cl * co, -cl * so, -sl)


def ned_between(ref: tuple[float, float, float], point: tuple[float, float, float]) -> Vec3:
    """The exact vector (m) from geodetic ``ref`` to geodetic ``point`` (each ``(lat_deg, lon_deg, h_m)``),
    in the reference's local NED axes."""
    r = geodetic_to_ecef(*ref)
    p = geodetic_to_ecef(*point)
    d = (p.x - r.x, p.y - r.y, p.z - r.z)
    n_ax, e_ax, d_ax = _ned_axes(ref[0], ref[1])
    return Vec3(
        n_ax.x * d[0] + n_ax.y * d[1] + n_ax.z * d[2],
        e_ax.x * d[0] + e_ax.y * d[1] + e_ax.z * d[2],
        d_ax.x * d[0] + d_ax.y * d[1] + d_ax.z * d[2],
    )


def offset_by_ned(ref: tuple[float, float, float], ned: tuple[float, float, float]) -> tuple[float, float, float]:
    """Geodetic ``(lat_deg, lon_deg, h_m)`` of the point at vector ``ned`` (ref's NED axes) from geodetic ``ref``."""
    north_m, east_m, down_m = ned
    r = geodetic_to_ecef(*ref)
    n_ax, e_ax, d_ax = _ned_axes(ref[0], ref[1])
    return ecef_to_geodetic(
        r.x + n_ax.x * north_m + e_ax.x * east_m + d_ax.x * down_m,
        r.y + n_ax.y * north_m + e_ax.y * east_m + d_ax.y * down_m,
        r.z + n_ax.z * north_m + e_ax.z * east_m + d_ax.z * down_m,
    )


def radii(lat_deg: float) -> tuple[float, float]:
    """Meridional and prime-vertical radii of curvature ``(M, N)`` at a latitude (m)."""
    s = math.sin(math.radians(lat_deg))
    w2 = 1.0 - E2 * s * s
    return A * (1.0 - E2) / (w2 * math.sqrt(w2)), A / math.sqrt(w2)


class LocalMap:
    """Equirectangular map about a reference point: ``(north_m, east_m)`` <-> ``(lat_deg, lon_deg)``."""

    def __init__(self, lat0_deg: float, lon0_deg: float) -> None:
        self.lat0_deg = lat0_deg
        self.lon0_deg = lon0_deg
        m, n = radii(lat0_deg)
        self._m_per_deg_lat = m * math.pi / 180.0
        self._m_per_deg_lon = n * math.cos(math.radians(lat0_deg)) * math.pi / 180.0

    def to_map(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        """Map coordinates ``(north_m, east_m)`` of a geodetic point."""
        dlon = (lon_deg - self.lon0_deg + 180.0) % 360.0 - 180.0
        return (lat_deg - self.lat0_deg) * self._m_per_deg_lat, dlon * self._m_per_deg_lon

    def to_geo(self, north_m: float, east_m: float) -> tuple[float, float]:
        """Geodetic ``(lat_deg, lon_deg)`` of map coordinates."""
        lon = self.lon0_deg + east_m / self._m_per_deg_lon
        return self.lat0_deg + north_m / self._m_per_deg_lat, (lon + 180.0) % 360.0 - 180.0

    def true_velocity(self, lat_deg: float, map_vn: float, map_ve: float) -> tuple[float, float]:
        """Velocity over ground (NED, m/s) at ``lat_deg`` of a point moving at ``(map_vn, map_ve)`` on the map."""
        m, n = radii(lat_deg)
        dlat = map_vn / self._m_per_deg_lat  # deg/s
        dlon = map_ve / self._m_per_deg_lon
        return dlat * m * math.pi / 180.0, dlon * n * math.cos(math.radians(lat_deg)) * math.pi / 180.0
