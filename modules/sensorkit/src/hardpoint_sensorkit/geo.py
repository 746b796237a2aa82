"""WGS84 geodesy and covariance propagation for geo-referencing sensor measurements.

Exact, through Earth-centred Earth-fixed (ECEF) coordinates: a NED vector is
the straight line in the local level frame of its origin, so a surface point
20 km away is 31 m below the origin's tangent plane, and the round trip
geodetic -> NED -> geodetic is exact to floating point (sub-millimetre at
100 km). No flat-earth approximation is involved; the only approximations are
in the measurement models (see :func:`polar_to_ned`).

Candidate for the SDK (``hardpoint.geo``): fusion and geofence need the same
conversions. Angles are radians unless a name ends in ``_deg``; heights are
above the ellipsoid.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "Mat3",
    "Vec3",
    "add_cov",
    "cov_to_upper",
    "diag",
    "ecef_to_geodetic",
    "geodetic_to_ecef",
    "ned_axes",
    "ned_between",
    "offset_by_ned",
    "polar_cov",
    "polar_to_ned",
    "rotate_cov",
    "upper_to_cov",
]

#: WGS84 semi-major axis (m).
A: Final = 6378137.0
#: WGS84 flattening.
F: Final = 1.0 / 298.257223563
#: First eccentricity squared.
E2: Final = F * (2.0 - F)

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]


def geodetic_to_ecef(lat_deg: float, lon_deg: float, h_m: float) -> Vec3:
    """ECEF coordinates (m) of a geodetic position."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    s, c = math.sin(lat), math.cos(lat)
    n = A / math.sqrt(1.0 - E2 * s * s)
    return ((n + h_m) * c * math.cos(lon), (n + h_m) * c * math.sin(lon), (n * (1.0 - E2) + h_m) * s)


def ecef_to_geodetic(x: float, y: float, z: float) -> Vec3:
    """Geodetic ``(lat_deg, lon_deg, h_m)`` of an ECEF point (fixed-point iteration, converged to 1e-15 rad)."""
    p = math.hypot(x, y)
    lon = math.atan2(y, x)
    lat = math.atan2(z, p * (1.0 - E2))
    for _ in range(10):
        s = math.sin(lat)
        n = A / math.sqrt(1.0 - E2 * s * s)
        h = _height(p, z, lat, n)
        new = math.atan2(z, p * (1.0 - E2 * n / (n + h)))
        done = abs(new - lat) < 1e-15
        lat = new
        if done:
            break
    s = math.sin(lat)
    n = A / math.sqrt(1.0 - E2 * s * s)
    return math.degrees(lat), math.degrees(lon), _height(p, z, lat, n)


def _height(p: float, z: float, lat: float, n: float) -> float:
    if abs(lat) < math.radians(89.0):
        return p / math.cos(lat) - n
    return z / math.sin(lat) - n * (1.0 - E2)


def ned_axes(lat_deg: float, lon_deg: float) -> Mat3:
    """Rows: the north, east and down unit vectors of the local frame at a point, in ECEF."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
    return ((-sl * co, -sl * so, cl), (-so, co, 0.0), (-cl * co, -cl * so, -sl))


def ned_between(ref: Vec3, point: Vec3) -> Vec3:
    """Vector (m) from geodetic ``ref`` to geodetic ``point`` (each ``(lat_deg, lon_deg, h_m)``), in ref's NED axes."""
    r = geodetic_to_ecef(*ref)
    p = geodetic_to_ecef(*point)
    d = (p[0] - r[0], p[1] - r[1], p[2] - r[2])
    return _mul_vec(ned_axes(ref[0], ref[1]), d)


def offset_by_ned(ref: Vec3, ned: Vec3) -> Vec3:
    """Geodetic ``(lat_deg, lon_deg, h_m)`` of the point at vector ``ned`` (ref's NED axes) from geodetic ``ref``."""
    r = geodetic_to_ecef(*ref)
    ax = ned_axes(ref[0], ref[1])
    x = r[0] + ax[0][0] * ned[0] + ax[1][0] * ned[1] + ax[2][0] * ned[2]
    y = r[1] + ax[0][1] * ned[0] + ax[1][1] * ned[1] + ax[2][1] * ned[2]
    z = r[2] + ax[0][2] * ned[0] + ax[1][2] * ned[1] + ax[2][2] * ned[2]
    return ecef_to_geodetic(x, y, z)


def polar_to_ned(range_m: float, azimuth_rad: float, elevation_rad: float) -> Vec3:
    """NED vector of a measurement: slant range, azimuth from north (clockwise), elevation above the level plane."""
    ce = math.cos(elevation_rad)
    return (
        range_m * ce * math.cos(azimuth_rad),
        range_m * ce * math.sin(azimuth_rad),
        -range_m * math.sin(elevation_rad),
    )


def polar_cov(
    range_m: float,
    azimuth_rad: float,
    elevation_rad: float,
    *,
    range_var: float,
    azimuth_var: float,
    elevation_var: float,
) -> Mat3:
    """NED covariance of :func:`polar_to_ned` with independent range, azimuth and elevation errors.

    First order: ``J diag(var_r, var_az, var_el) J^T`` with ``J`` the Jacobian at the measurement, i.e. the
    range variance along the line of sight and ``range^2 * var`` across it (the 2x2 horizontal part is the
    polar covariance rotated by the azimuth).
    """
    ca, sa = math.cos(azimuth_rad), math.sin(azimuth_rad)
    ce, se = math.cos(elevation_rad), math.sin(elevation_rad)
    r = range_m
    j_r = (ce * ca, ce * sa, -se)
    j_a = (-r * ce * sa, r * ce * ca, 0.0)
    j_e = (-r * se * ca, -r * se * sa, -r * ce)

    def cell(i: int, k: int) -> float:
        return j_r[i] * j_r[k] * range_var + j_a[i] * j_a[k] * azimuth_var + j_e[i] * j_e[k] * elevation_var

    return (
        (cell(0, 0), cell(0, 1), cell(0, 2)),
        (cell(1, 0), cell(1, 1), cell(1, 2)),
        (cell(2, 0), cell(2, 1), cell(2, 2)),
    )


def rotate_cov(cov: Mat3, from_deg: tuple[float, float], to_deg: tuple[float, float]) -> Mat3:
    """A covariance in the NED axes at ``from_deg`` ``(lat, lon)`` expressed in the NED axes at ``to_deg``."""
    r_from, r_to = ned_axes(*from_deg), ned_axes(*to_deg)
    # R = R_to * R_from^T maps from-NED vectors to to-NED vectors
    rot = _mul(r_to, _transpose(r_from))
    return _mul(_mul(rot, cov), _transpose(rot))


def add_cov(a: Mat3, b: Mat3) -> Mat3:
    """Sum of two covariances."""
    return (
        (a[0][0] + b[0][0], a[0][1] + b[0][1], a[0][2] + b[0][2]),
        (a[1][0] + b[1][0], a[1][1] + b[1][1], a[1][2] + b[1][2]),
        (a[2][0] + b[2][0], a[2][1] + b[2][1], a[2][2] + b[2][2]),
    )


def diag(a: float, b: float, c: float) -> Mat3:
    """A diagonal 3x3 matrix."""
    return ((a, 0.0, 0.0), (0.0, b, 0.0), (0.0, 0.0, c))


def cov_to_upper(cov: Mat3) -> list[float]:
    """Upper triangle, row-major, as ``hardpoint.core.v1.Covariance.upper_triangle`` (6 values)."""
    return [cov[0][0], cov[0][1], cov[0][2], cov[1][1], cov[1][2], cov[2][2]]


def upper_to_cov(upper: list[float] | tuple[float, ...]) -> Mat3:
    """The full 3x3 matrix from a 6-value upper triangle."""
    if len(upper) != 6:
        raise ValueError(f"a 3x3 upper triangle has 6 values, not {len(upper)}")
    a, b, c, d, e, f = upper
    return ((a, b, c), (b, d, e), (c, e, f))


def _transpose(m: Mat3) -> Mat3:
    return ((m[0][0], m[1][0], m[2][0]), (m[0][1], m[1][1], m[2][1]), (m[0][2], m[1][2], m[2][2]))


def _mul(a: Mat3, b: Mat3) -> Mat3:
    def row(i: int) -> Vec3:
        return (
            a[i][0] * b[0][0] + a[i][1] * b[1][0] + a[i][2] * b[2][0],
            a[i][0] * b[0][1] + a[i][1] * b[1][1] + a[i][2] * b[2][1],
            a[i][0] * b[0][2] + a[i][1] * b[1][2] + a[i][2] * b[2][2],
        )

    return (row(0), row(1), row(2))


def _mul_vec(m: Mat3, v: Vec3) -> Vec3:
    return (
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    )
