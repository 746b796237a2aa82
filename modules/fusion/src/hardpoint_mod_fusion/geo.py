"""A local flat-earth frame: WGS84 geodetic positions to north/east/down metres and back.

The tracker filters in a plane. :class:`LocalFrame` maps geodetic positions to
north/east/down (NED) metres about a reference point with the WGS84 radii of
curvature at that point::

    north = (lat - lat0) * (R_N(lat0) + h0)
    east  = (lon - lon0) * (R_E(lat0) + h0) * cos(lat0)
    down  = -(h - h0)

where ``R_N = a (1 - e^2) / (1 - e^2 sin^2 lat0)^(3/2)`` is the meridian radius
and ``R_E = a / sqrt(1 - e^2 sin^2 lat0)`` the prime-vertical radius.

Error of the approximation. The inverse (:meth:`LocalFrame.to_geo`) is exact, so
a position that goes in and comes back out is unchanged (to float rounding):
the approximation never moves a published position. What it bends is the
geometry of the plane the filter works in: the map is not conformal away from
the reference. At a point ``dn`` metres north of the reference, east-west
distances are scaled by about ``1 - dn * tan(lat0) / R`` (0.19 % at 10 km north
of a reference at 50 deg latitude) and local north is rotated against grid
north by the meridian convergence, about ``de * tan(lat0) / R`` radians (0.1 deg
at 10 km east at 50 deg). Over the tens of kilometres a surface sensor sees,
this changes the shape of covariance ellipses and velocities by a few tenths of
a percent, and turns a straight track into one curving by a few metres over
10 km (an acceleration far below the process noise). Both grow linearly with
the distance from the reference and with ``tan(lat0)``; keep the reference
within about 50 km of the tracks and away from the poles (the configuration
refuses references beyond 85 deg latitude). Covariances given in the NED axes
at the measured position are used as NED axes at the reference (the rotation
between the two is the meridian convergence above, neglected).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

__all__ = ["WGS84_A", "WGS84_E2", "WGS84_F", "LocalFrame", "radii_of_curvature"]

#: WGS84 semi-major axis (m).
WGS84_A: Final = 6378137.0
#: WGS84 flattening.
WGS84_F: Final = 1.0 / 298.257223563
#: WGS84 first eccentricity squared.
WGS84_E2: Final = WGS84_F * (2.0 - WGS84_F)


def radii_of_curvature(latitude_deg: float) -> tuple[float, float]:
    """Meridian (north-south) and prime-vertical (east-west) radii of curvature at a latitude, in metres."""
    s = math.sin(math.radians(latitude_deg))
    w2 = 1.0 - WGS84_E2 * s * s
    return WGS84_A * (1.0 - WGS84_E2) / (w2 * math.sqrt(w2)), WGS84_A / math.sqrt(w2)


def _wrap_lon(deg: float) -> float:
    """Longitude difference or value into [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """North/east/down metres about ``(latitude_deg, longitude_deg, height_m)`` (WGS84, height above ellipsoid)."""

    latitude_deg: float
    longitude_deg: float
    height_m: float = 0.0
    _m_per_rad_north: float = field(init=False, repr=False)
    _m_per_rad_east: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not -90.0 < self.latitude_deg < 90.0 or not math.isfinite(self.longitude_deg):
            raise ValueError(f"invalid frame reference {self.latitude_deg}, {self.longitude_deg}")
        r_n, r_e = radii_of_curvature(self.latitude_deg)
        object.__setattr__(self, "_m_per_rad_north", r_n + self.height_m)
        object.__setattr__(self, "_m_per_rad_east", (r_e + self.height_m) * math.cos(math.radians(self.latitude_deg)))

    def to_ned(self, latitude_deg: float, longitude_deg: float, height_m: float = 0.0) -> tuple[float, float, float]:
        """North, east, down (m) of a geodetic position."""
        north = math.radians(latitude_deg - self.latitude_deg) * self._m_per_rad_north
        east = math.radians(_wrap_lon(longitude_deg - self.longitude_deg)) * self._m_per_rad_east
        return north, east, self.height_m - height_m

    def to_geo(self, north_m: float, east_m: float, down_m: float = 0.0) -> tuple[float, float, float]:
        """Latitude (deg), longitude (deg) and height above the ellipsoid (m) of a local position."""
        lat = self.latitude_deg + math.degrees(north_m / self._m_per_rad_north)
        lon = _wrap_lon(self.longitude_deg + math.degrees(east_m / self._m_per_rad_east))
        return lat, lon, self.height_m - down_m
