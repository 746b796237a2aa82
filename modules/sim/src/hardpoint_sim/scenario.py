"""The scenario: own platform, scripted targets, sensors, zones, and the ground truth they imply.

A scenario is a TOML file validated by :class:`Scenario` (pydantic, unknown
keys refused). Errors name the file and the field::

    patrol.toml: targets.2.velocity.speed_mps: Input should be greater than or equal to 0

Truth is pure: :meth:`Scenario.platform_at` and :meth:`Scenario.targets_at`
are functions of scenario time (seconds from the scenario's time zero) and
nothing else. Angles in the file are degrees (names end in ``_deg``);
heights are above the WGS84 ellipsoid.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from hardpoint_sim.geodesy import LocalMap, ned_between
from hardpoint_sim.paths import CirclePath, LinePath, PolylinePath
from hardpoint_sim.paths import Path as MotionPath

__all__ = [
    "BUILTIN_PREFIX",
    "Circle",
    "GeoPoint",
    "GnssSpec",
    "Leg",
    "Orbit",
    "OwnPlatform",
    "PlatformTruth",
    "Scenario",
    "ScenarioError",
    "SensorSpec",
    "Target",
    "TargetTruth",
    "Velocity",
    "Waypoint",
    "ZoneEvent",
    "ZoneSpec",
    "builtin_scenarios",
    "load_scenario",
]

#: ``scenario = "builtin:patrol"`` names a scenario shipped in ``hardpoint_sim/scenarios/``.
BUILTIN_PREFIX = "builtin:"


class ScenarioError(ValueError):
    """A scenario file that cannot be read or is invalid; the message names the file and every bad field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Lat = Annotated[float, Field(ge=-90.0, le=90.0)]
Lon = Annotated[float, Field(ge=-180.0, le=180.0)]


class GeoPoint(_Model):
    """A point on the ellipsoid."""

    lat: Lat
    lon: Lon


def _point_pairs(value: Any) -> Any:
    # [lat, lon] pairs are accepted wherever a point is
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return {"lat": value[0], "lon": value[1]}
    return value


class Waypoint(_Model):
    """Go to ``(lat, lon)`` at ``speed_mps`` (the speed of the leg that ends here)."""

    lat: Lat
    lon: Lon
    speed_mps: float = Field(gt=0)


class Leg(_Model):
    """Go on course ``heading_deg`` at ``speed_mps`` for ``duration_s``."""

    heading_deg: float
    speed_mps: float = Field(gt=0)
    duration_s: float = Field(gt=0)


def _route_kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "leg" if "heading_deg" in value else "waypoint"
    return "leg" if isinstance(value, Leg) else "waypoint"


RouteItem = Annotated[
    Annotated[Waypoint, Tag("waypoint")] | Annotated[Leg, Tag("leg")],
    Discriminator(_route_kind),
]


class Velocity(_Model):
    """Constant velocity: course over ground and speed."""

    course_deg: float
    speed_mps: float = Field(ge=0)


class Orbit(_Model):
    """Circling a centre (a loitering contact)."""

    lat: Lat
    lon: Lon
    radius_m: float = Field(gt=0)
    speed_mps: float = Field(gt=0)
    clockwise: bool = True
    #: Bearing from the centre to the contact at its start time.
    start_bearing_deg: float = 0.0


class OwnPlatform(_Model):
    """The own platform: it starts at the scenario's ``start`` at time zero."""

    height_m: float = 0.0
    #: Rate of turn used to round the route's corners.
    turn_rate_deg_s: float = Field(default=3.0, gt=0)
    #: After the last route item: ``continue`` on the last course, or ``stop``.
    after_end: Literal["continue", "stop"] = "continue"
    #: Waypoints and legs, in order; empty: the platform stays at ``start`` heading ``heading_deg``.
    route: tuple[RouteItem, ...] = ()
    #: Heading of a platform without a route.
    heading_deg: float = 0.0


def _classification_names() -> frozenset[str]:
    from hardpoint.track.v1 import track_pb2

    prefix = "CLASSIFICATION_"
    names = (v.name for v in track_pb2.Classification.DESCRIPTOR.values)
    return frozenset(n.removeprefix(prefix) for n in names if n != prefix + "UNSPECIFIED")


class Target(_Model):
    """A scripted object. Its motion is exactly one of ``route`` (from ``start``), ``velocity`` (from ``start``)
    and ``orbit``. It exists from ``start_s`` until ``end_s`` (for ever without one)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: A ``hardpoint.track.v1.Classification`` name without its prefix: ``SURFACE_VESSEL``, ``AIRCRAFT``, ...
    classification: str = "UNKNOWN"
    start_s: float = Field(default=0.0, ge=0)
    end_s: float | None = None
    height_m: float = 0.0
    start: GeoPoint | None = None
    route: tuple[RouteItem, ...] | None = None
    velocity: Velocity | None = None
    orbit: Orbit | None = None
    turn_rate_deg_s: float = Field(default=3.0, gt=0)
    after_end: Literal["continue", "stop"] = "continue"

    @field_validator("start", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        return _point_pairs(value)

    @field_validator("classification")
    @classmethod
    def _known_classification(cls, value: str) -> str:
        name = value.upper().removeprefix("CLASSIFICATION_")
        names = _classification_names()
        if name not in names:
            raise ValueError(f"{value!r} is not a classification; one of {', '.join(sorted(names))}")
        return name

    @model_validator(mode="after")
    def _one_motion(self) -> Self:
        given = [n for n in ("route", "velocity", "orbit") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of route, velocity, orbit (given: {', '.join(given) or 'none'})")
        if self.orbit is None and self.start is None:
            raise ValueError(f"a target with {given[0]} needs a start point")
        if self.orbit is not None and self.start is not None:
            raise ValueError("an orbiting target starts on its orbit (start_bearing_deg): drop start")
        if self.route is not None and not self.route:
            raise ValueError("route is empty")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self


class SensorSpec(_Model):
    """A simulated sensor on the own platform (at its navigation reference point)."""

    kind: Literal["radar", "eoir"]
    #: Boresight relative to the bow, clockwise.
    mount_yaw_deg: float = 0.0
    #: Azimuth field of view, centred on the boresight (360: all round).
    fov_deg: float = Field(default=360.0, gt=0, le=360)
    min_elevation_deg: float = Field(default=-90.0, ge=-90, le=90)
    max_elevation_deg: float = Field(default=90.0, ge=-90, le=90)
    min_range_m: float = Field(default=0.0, ge=0)
    max_range_m: float = Field(gt=0)
    update_rate_hz: float = Field(gt=0, le=1000)
    #: One-sigma range noise; absent or ``nan``: the sensor measures no range (bearing only).
    range_std_m: float | None = None
    bearing_std_deg: float = Field(ge=0)
    elevation_std_deg: float = Field(default=0.0, ge=0)
    detection_probability: float = Field(default=1.0, ge=0, le=1)
    #: Mean number of false alarms per scan (Poisson), uniform in range and azimuth over the field of view.
    false_alarms_per_scan: float = Field(default=0.0, ge=0)
    #: A measurement made at t is available at t + latency_s.
    latency_s: float = Field(default=0.0, ge=0)
    #: The sensor follows objects and labels its detections with its own track ids.
    track_ids: bool = True
    #: A followed object not detected for this long gets a new track id when seen again (default 3 scans, >= 2 s).
    track_timeout_s: float | None = Field(default=None, gt=0)
    #: Probability that the sensor's classification hint is right (else UNKNOWN); absent: no hint.
    classification_accuracy: float | None = Field(default=None, ge=0, le=1)

    @field_validator("range_std_m")
    @classmethod
    def _nan_is_none(cls, value: float | None) -> float | None:
        if value is None or math.isnan(value):
            return None
        if value < 0:
            raise ValueError("must be >= 0 (or nan / absent for a bearing-only sensor)")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.min_range_m >= self.max_range_m:
            raise ValueError(f"min_range_m ({self.min_range_m}) must be below max_range_m ({self.max_range_m})")
        if self.min_elevation_deg >= self.max_elevation_deg:
            raise ValueError("min_elevation_deg must be below max_elevation_deg")
        return self

    @property
    def bearing_only(self) -> bool:
        return self.range_std_m is None

    @property
    def track_timeout(self) -> float:
        """Seconds without a detection after which an object gets a new track id."""
        if self.track_timeout_s is not None:
            return self.track_timeout_s
        return max(3.0 / self.update_rate_hz, 2.0)


class Circle(_Model):
    """A circle: centre and radius along the surface."""

    lat: Lat
    lon: Lon
    radius_m: float = Field(gt=0)


class ZoneSpec(_Model):
    """A geofence zone, as ``hardpoint.alert.v1.Zone``: exactly one of ``polygon`` and ``circle``."""

    zone_id: str = Field(min_length=1)
    name: str = ""
    kind: Literal["keep_out", "keep_in"] = "keep_out"
    severity: Literal["advisory", "caution", "warning"] = "warning"
    #: Vertices ``[lat, lon]`` (or ``{lat, lon}``) in order, at least 3, the first not repeated at the end.
    polygon: tuple[GeoPoint, ...] | None = None
    circle: Circle | None = None
    floor_hae_m: float | None = None
    ceiling_hae_m: float | None = None

    @field_validator("polygon", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [_point_pairs(v) for v in value]
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Self:
        if (self.polygon is None) == (self.circle is None):
            raise ValueError("give exactly one of polygon and circle")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError(f"a polygon needs at least 3 vertices, not {len(self.polygon)}")
        if self.floor_hae_m is not None and self.ceiling_hae_m is not None and self.floor_hae_m >= self.ceiling_hae_m:
            raise ValueError("floor_hae_m must be below ceiling_hae_m")
        return self

    def contains(self, lat: float, lon: float, height_m: float | None = None) -> bool:
        """Whether a point is inside the zone (its height band too, when ``height_m`` is given).

        Circles use the exact horizontal distance; polygons a local flat map about the first vertex
        (edges are straight on it; they differ from geodesics by centimetres over a few km).
        """
        if height_m is not None:
            if self.floor_hae_m is not None and height_m < self.floor_hae_m:
                return False
            if self.ceiling_hae_m is not None and height_m > self.ceiling_hae_m:
                return False
        if self.circle is not None:
            c = self.circle
            v = ned_between((c.lat, c.lon, 0.0), (lat, lon, 0.0))
            return math.hypot(v.x, v.y) <= c.radius_m
        assert self.polygon is not None
        ref = self.polygon[0]
        m = LocalMap(ref.lat, ref.lon)
        x, y = m.to_map(lat, lon)
        poly = [m.to_map(p.lat, p.lon) for p in self.polygon]
        inside = False
        j = len(poly) - 1
        for i in range(len(poly)):
            (xi, yi), (xj, yj) = poly[i], poly[j]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
        return inside

    def to_proto(self, *, active: bool = True) -> Any:
        """This zone as a ``hardpoint.alert.v1.Zone`` message."""
        from hardpoint.alert.v1 import alert_pb2
        from hardpoint.core.v1 import geo_pb2

        zone = alert_pb2.Zone(
            zone_id=self.zone_id,
            name=self.name,
            kind=alert_pb2.ZoneKind.Value(f"ZONE_KIND_{self.kind.upper()}"),
            severity=alert_pb2.AlertSeverity.Value(f"ALERT_SEVERITY_{self.severity.upper()}"),
            active=active,
        )
        if self.circle is not None:
            zone.circle.center.CopyFrom(
                geo_pb2.GeoPosition(latitude_deg=self.circle.lat, longitude_deg=self.circle.lon)
            )
            zone.circle.radius_m = self.circle.radius_m
        else:
            assert self.polygon is not None
            for p in self.polygon:
                zone.polygon.vertices.add(latitude_deg=p.lat, longitude_deg=p.lon)
        if self.floor_hae_m is not None:
            zone.floor_hae_m = self.floor_hae_m
        if self.ceiling_hae_m is not None:
            zone.ceiling_hae_m = self.ceiling_hae_m
        return zone


class GnssSpec(_Model):
    """The simulated GNSS/INS receiver (``sim-gnss``); the adapter's keyword configuration overrides each field."""

    rate_hz: float = Field(default=10.0, gt=0, le=1000)
    #: One-sigma position error per horizontal axis (north, east); the fix reports radial ``sqrt(2)`` times it.
    position_std_m: float = Field(default=1.0, ge=0)
    height_std_m: float = Field(default=2.0, ge=0)
    velocity_std_mps: float = Field(default=0.05, ge=0)
    heading_std_deg: float = Field(default=0.1, ge=0)
    #: Position and heading errors are first-order Gauss-Markov with this time constant; 0: white.
    correlation_time_s: float = Field(default=30.0, ge=0)
    fix: Literal["2d", "3d", "dgnss", "rtk_float", "rtk_fixed", "dead_reckoning", "ins_only"] = "3d"
    satellites: int = Field(default=12, ge=0, le=255)
    #: Scenario-time intervals ``[start_s, end_s)`` with no fix (jamming, tunnels).
    outages: tuple[tuple[float, float], ...] = ()

    @field_validator("outages")
    @classmethod
    def _ordered(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        for a, b in value:
            if b <= a:
                raise ValueError(f"outage [{a}, {b}] ends before it starts")
        return value


class PlatformTruth(NamedTuple):
    """The own platform at one time: position, velocity over ground (NED) and yaw (= course over ground)."""

    lat: float
    lon: float
    north_mps: float
    east_mps: float
    yaw_rad: float


@dataclass(frozen=True, slots=True)
class TargetTruth:
    """A target at one time."""

    lat: float
    lon: float
    vn: float  #: velocity over ground, north (m/s)
    ve: float  #: east (m/s)
    classification: str  #: ``Classification`` name without prefix
    height_m: float = 0.0


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """A target crossing a zone boundary in truth (``entered`` False: it left, or it ended inside)."""

    t_s: float
    target_id: str
    zone_id: str
    entered: bool


class Scenario(_Model):
    """A whole scenario. Time zero is the adapters' ``start_ns``."""

    name: str = ""
    description: str = ""
    #: How long the scenario is meant to run (the demo's bound); truth goes on after it.
    duration_s: float = Field(gt=0)
    #: Seed of every random draw (adapters may override it).
    seed: int = 0
    #: Own platform position at time zero; also the reference of the scripted paths' map.
    start: GeoPoint
    own: OwnPlatform = Field(default_factory=OwnPlatform)
    targets: tuple[Target, ...] = ()
    sensors: dict[str, SensorSpec] = Field(default_factory=dict)
    zones: tuple[ZoneSpec, ...] = ()
    gnss: GnssSpec = Field(default_factory=GnssSpec)

    _map: LocalMap = PrivateAttr()
    _own_path: MotionPath = PrivateAttr()
    _paths: dict[str, MotionPath] = PrivateAttr()

    @field_validator("start", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        return _point_pairs(value)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        for what, ids in (("target id", [t.id for t in self.targets]), ("zone_id", [z.zone_id for z in self.zones])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{what} used twice: {', '.join(dup)}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._map = LocalMap(self.start.lat, self.start.lon)
        o = self.own
        if o.route:
            self._own_path = self._route_path(0.0, (0.0, 0.0), o.route, o.turn_rate_deg_s, o.after_end)
        else:
            self._own_path = LinePath(0.0, 0.0, 0.0, math.radians(o.heading_deg), 0.0)
        self._paths = {t.id: self._target_path(t) for t in self.targets}

    # -- truth ----------------------------------------------------------------

    def platform_at(self, t_s: float) -> PlatformTruth:
        """The own platform at scenario time ``t_s`` (before 0: at the start)."""
        s = self._own_path.state(t_s)
        lat, lon = self._map.to_geo(s.north_m, s.east_m)
        vn, ve = self._map.true_velocity(lat, s.vn, s.ve)
        yaw = math.atan2(ve, vn) if math.hypot(vn, ve) > 1e-9 else s.course_rad
        return PlatformTruth(lat, lon, vn, ve, yaw)

    def targets_at(self, t_s: float) -> dict[str, TargetTruth]:
        """Every target that exists at ``t_s`` (``start_s <= t_s < end_s``), by id."""
        out: dict[str, TargetTruth] = {}
        for t in self.targets:
            truth = self.target_at(t.id, t_s)
            if truth is not None:
                out[t.id] = truth
        return out

    def target_at(self, target_id: str, t_s: float) -> TargetTruth | None:
        """One target at ``t_s``, ``None`` when it does not exist then.

        :raises KeyError: no target has that id.
        """
        target = next((t for t in self.targets if t.id == target_id), None)
        if target is None:
            raise KeyError(target_id)
        if t_s < target.start_s or (target.end_s is not None and t_s >= target.end_s):
            return None
        s = self._paths[target_id].state(t_s)
        lat, lon = self._map.to_geo(s.north_m, s.east_m)
        vn, ve = self._map.true_velocity(lat, s.vn, s.ve)
        return TargetTruth(lat, lon, vn, ve, target.classification, target.height_m)

    def zone_events(self, *, step_s: float = 0.05, until_s: float | None = None) -> list[ZoneEvent]:
        """Truth zone crossings of every target up to ``until_s`` (default ``duration_s``), sampled every ``step_s``.

        A target that exists inside a zone from its start enters at ``start_s``; one that ends inside leaves at
        ``end_s``. Heights count (zone floor and ceiling). Times are those of the first sample on the new side.
        """
        end = self.duration_s if until_s is None else until_s
        events: list[ZoneEvent] = []
        inside: dict[tuple[str, str], bool] = {}
        n = round(end / step_s)
        for k in range(n + 1):
            t = k * step_s
            now = self.targets_at(t)
            for target in self.targets:
                truth = now.get(target.id)
                for zone in self.zones:
                    key = (target.id, zone.zone_id)
                    is_in = truth is not None and zone.contains(truth.lat, truth.lon, truth.height_m)
                    if is_in != inside.get(key, False):
                        events.append(ZoneEvent(round(t, 9), target.id, zone.zone_id, is_in))
                    inside[key] = is_in
        return events

    # -- paths ------------------------------------------------------------------

    def _target_path(self, t: Target) -> MotionPath:
        if t.orbit is not None:
            o = t.orbit
            cn, ce = self._map.to_map(o.lat, o.lon)
            return CirclePath(
                t.start_s, cn, ce, o.radius_m, o.speed_mps, math.radians(o.start_bearing_deg), o.clockwise
            )
        assert t.start is not None
        origin = self._map.to_map(t.start.lat, t.start.lon)
        if t.velocity is not None:
            v = t.velocity
            return LinePath(t.start_s, origin[0], origin[1], math.radians(v.course_deg), v.speed_mps)
        assert t.route is not None
        return self._route_path(t.start_s, origin, t.route, t.turn_rate_deg_s, t.after_end)

    def _route_path(
        self,
        t0: float,
        origin: tuple[float, float],
        route: tuple[Waypoint | Leg, ...],
        turn_rate_deg_s: float,
        after_end: Literal["continue", "stop"],
    ) -> MotionPath:
        points = [origin]
        speeds: list[float] = []
        for item in route:
            if isinstance(item, Waypoint):
                points.append(self._map.to_map(item.lat, item.lon))
            else:
                h = math.radians(item.heading_deg)
                d = item.speed_mps * item.duration_s
                n, e = points[-1]
                points.append((n + d * math.cos(h), e + d * math.sin(h)))
            speeds.append(item.speed_mps)
        return PolylinePath(t0, points, speeds, turn_rate_rad_s=math.radians(turn_rate_deg_s), after_end=after_end)


def builtin_scenarios() -> list[str]:
    """Names of the scenarios shipped with the package (``builtin:<name>``)."""
    folder = resources.files("hardpoint_sim") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(source: str | Path) -> Scenario:
    """Read and validate a scenario: a TOML file path, or ``builtin:<name>``.

    :raises ScenarioError: the file is missing, not TOML, or invalid; the message names the file and each field.
    """
    text, origin = _read(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{origin}: not valid TOML: {e}") from e
    return scenario_from_dict(data, origin=origin)


def scenario_from_dict(data: Mapping[str, Any], *, origin: str = "scenario") -> Scenario:
    """Validate a scenario given as a mapping (as parsed from TOML).

    :raises ScenarioError: it is invalid; the message names ``origin`` and each field.
    """
    try:
        return Scenario.model_validate(dict(data))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors(include_url=False)
        )
        raise ScenarioError(f"{origin}: invalid scenario: {problems}") from e


def _read(source: str | Path) -> tuple[str, str]:
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        name = source.removeprefix(BUILTIN_PREFIX)
        res = resources.files("hardpoint_sim") / "scenarios" / f"{name}.toml"
        if not res.is_file():
            raise ScenarioError(f"{source}: no such built-in scenario (built in: {', '.join(builtin_scenarios())})")
        return res.read_text(encoding="utf-8"), source
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read scenario: {e.strerror or e}") from e
