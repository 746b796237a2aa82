"""Zones: the module configuration (validated with pydantic) and the ``Zone`` interface message.

Both ways into the module, the configuration file and a task carrying a
``hardpoint.alert.v1.Zone``, end in :func:`zone_from_proto`, so a zone is
validated by one set of rules whichever way it came.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint_mod_geofence._geometry import GeometryError, Shape, circle, polygon

__all__ = ["ConfigError", "GeofenceConfig", "Zone", "ZoneConfig", "ZoneError", "parse_config", "zone_from_proto"]

KEEP_OUT: alert_pb2.ZoneKind.ValueType = alert_pb2.ZONE_KIND_KEEP_OUT
KEEP_IN: alert_pb2.ZoneKind.ValueType = alert_pb2.ZONE_KIND_KEEP_IN

_KINDS: dict[str, alert_pb2.ZoneKind.ValueType] = {"keep_out": KEEP_OUT, "keep_in": KEEP_IN}
_SEVERITIES: dict[str, alert_pb2.AlertSeverity.ValueType] = {
    "advisory": alert_pb2.ALERT_SEVERITY_ADVISORY,
    "caution": alert_pb2.ALERT_SEVERITY_CAUTION,
    "warning": alert_pb2.ALERT_SEVERITY_WARNING,
}


class ZoneError(ValueError):
    """A zone definition is invalid; the message names the zone and the problem."""


class ConfigError(ValueError):
    """The module configuration is invalid; the message names every field and the reason."""


class Zone:
    """A validated, active zone: its definition as published and its geometry."""

    def __init__(self, message: alert_pb2.Zone, shape: Shape) -> None:
        #: The definition as published on the Zone topic (``active`` is true).
        self.message = message
        self.shape = shape

    @property
    def zone_id(self) -> str:
        return self.message.zone_id

    @property
    def kind(self) -> alert_pb2.ZoneKind.ValueType:
        return KEEP_IN if self.message.kind == KEEP_IN else KEEP_OUT

    @property
    def severity(self) -> alert_pb2.AlertSeverity.ValueType:
        """Severity of this zone's alerts (unset reads as WARNING, as receivers treat it)."""
        return self.message.severity or alert_pb2.ALERT_SEVERITY_WARNING

    @property
    def label(self) -> str:
        """How alert texts name the zone: ``HARBOUR (harbour)``, or the id alone."""
        name = self.message.name
        return f"{name} ({self.zone_id})" if name and name != self.zone_id else self.zone_id

    def depth(self, lat_deg: float, lon_deg: float, height_hae_m: float) -> float:
        """How far (m) a point is inside the zone's volume: positive inside, negative outside.

        Horizontally the signed distance to the boundary; with a floor or ceiling,
        the vertical distance to the band counts too.
        """
        horizontal = self.shape.signed_distance(lat_deg, lon_deg)
        m = self.message
        below = m.floor_hae_m - height_hae_m if m.HasField("floor_hae_m") else -math.inf
        above = height_hae_m - m.ceiling_hae_m if m.HasField("ceiling_hae_m") else -math.inf
        vertical = max(below, above)  # > 0: outside the band by that much; <= 0: inside by -vertical
        if horizontal >= 0:
            return -vertical if vertical > 0 else min(horizontal, -vertical)
        return -math.hypot(horizontal, max(vertical, 0.0))

    def violation(self, lat_deg: float, lon_deg: float, height_hae_m: float) -> float:
        """How far (m) a point is on the wrong side of the boundary (inside a keep-out, outside a keep-in)."""
        depth = self.depth(lat_deg, lon_deg, height_hae_m)
        return depth if self.kind == KEEP_OUT else -depth


def zone_from_proto(message: alert_pb2.Zone) -> Zone:
    """Validate an active zone definition.

    :raises ZoneError: the zone breaks a rule of the Zone contract or of this module.
    """
    zid = message.zone_id
    where = f"zone {zid!r}" if zid else "zone"
    if not zid:
        raise ZoneError("zone: zone_id is required")
    if message.kind not in (KEEP_OUT, KEEP_IN):
        raise ZoneError(f"{where}: kind is required (ZONE_KIND_KEEP_OUT or ZONE_KIND_KEEP_IN)")
    if message.severity not in _SEVERITIES.values() and message.severity != alert_pb2.ALERT_SEVERITY_UNSPECIFIED:
        raise ZoneError(f"{where}: unknown severity {message.severity}")
    floor = message.floor_hae_m if message.HasField("floor_hae_m") else None
    ceiling = message.ceiling_hae_m if message.HasField("ceiling_hae_m") else None
    for name, value in (("floor_hae_m", floor), ("ceiling_hae_m", ceiling)):
        if value is not None and not math.isfinite(value):
            raise ZoneError(f"{where}: {name} must be a finite number")
    if floor is not None and ceiling is not None and floor >= ceiling:
        raise ZoneError(f"{where}: floor_hae_m ({floor}) must be below ceiling_hae_m ({ceiling})")
    shape_field = message.WhichOneof("shape")
    try:
        if shape_field == "polygon":
            shape: Shape = polygon([(v.latitude_deg, v.longitude_deg) for v in message.polygon.vertices])
        elif shape_field == "circle":
            c = message.circle
            shape = circle(c.center.latitude_deg, c.center.longitude_deg, c.radius_m)
        else:
            raise ZoneError(f"{where}: exactly one of polygon and circle must be set; neither is")
    except GeometryError as e:
        raise ZoneError(f"{where}: {e}") from None
    definition = alert_pb2.Zone()
    definition.CopyFrom(message)
    definition.active = True
    return Zone(definition, shape)


# -- configuration -----------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CircleConfig(_Model):
    """``circle = {lat = .., lon = .., radius_m = ..}``."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0)


class ZoneConfig(_Model):
    """One entry of ``zones``."""

    zone_id: str = Field(min_length=1)
    name: str = ""
    kind: Literal["keep_out", "keep_in"] = "keep_out"
    severity: Literal["advisory", "caution", "warning"] = "warning"
    #: Vertices as ``[latitude, longitude]`` pairs (or ``{lat, lon}`` tables) in degrees; not GeoJSON's lon, lat.
    polygon: tuple[tuple[float, float], ...] | None = None
    circle: CircleConfig | None = None
    floor_hae_m: float | None = None
    ceiling_hae_m: float | None = None

    @field_validator("kind", "severity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower().replace("-", "_") if isinstance(value, str) else value

    @field_validator("polygon", mode="before")
    @classmethod
    def _vertices(cls, value: Any) -> Any:
        # Also accept {lat = .., lon = ..} tables (as a scenario file may write them).
        if isinstance(value, list | tuple):
            return [(v.get("lat"), v.get("lon")) if isinstance(v, Mapping) else v for v in value]
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> ZoneConfig:
        if (self.polygon is None) == (self.circle is None):
            raise ValueError("exactly one of polygon and circle must be given")
        return self

    def to_proto(self) -> alert_pb2.Zone:
        """The zone as a ``hardpoint.alert.v1.Zone`` message (active)."""
        msg = alert_pb2.Zone(
            zone_id=self.zone_id,
            name=self.name,
            kind=_KINDS[self.kind],
            severity=_SEVERITIES[self.severity],
            active=True,
        )
        if self.polygon is not None:
            msg.polygon.vertices.extend(
                geo_pb2.GeoPosition(latitude_deg=la, longitude_deg=lo) for la, lo in self.polygon
            )
        if self.circle is not None:
            c = self.circle
            msg.circle.center.CopyFrom(geo_pb2.GeoPosition(latitude_deg=c.lat, longitude_deg=c.lon))
            msg.circle.radius_m = c.radius_m
        if self.floor_hae_m is not None:
            msg.floor_hae_m = self.floor_hae_m
        if self.ceiling_hae_m is not None:
            msg.ceiling_hae_m = self.ceiling_hae_m
        return msg


class GeofenceConfig(_Model):
    """The module's configuration (the ``config`` table of its ``[[modules]]`` entry)."""

    #: Zones enforced from the start.
    zones: tuple[ZoneConfig, ...] = ()
    #: Hysteresis (m): an alert clears only once the track is this far back on the right side of the boundary.
    margin_m: float = Field(default=50.0, ge=0)
    #: Period (s) of the housekeeping tick: stale tracks, pending zone tasks.
    tick_s: float = Field(default=0.1, gt=0, le=10)
    #: A track with no sample for this long (s) is stale and its alerts clear; default: the FusedTrack deadline.
    stale_after_s: float | None = Field(default=None, gt=0)

    @field_validator("zones")
    @classmethod
    def _unique_ids(cls, zones: tuple[ZoneConfig, ...]) -> tuple[ZoneConfig, ...]:
        seen: set[str] = set()
        for z in zones:
            if z.zone_id in seen:
                raise ValueError(f"zone_id {z.zone_id!r} is used twice")
            seen.add(z.zone_id)
        return zones


def parse_config(raw: Mapping[str, Any]) -> tuple[GeofenceConfig, list[Zone]]:
    """Validate the module configuration and every zone in it.

    :raises ConfigError: naming each offending field (``zones.1.polygon: ...``) and the reason.
    """
    try:
        config = GeofenceConfig.model_validate(dict(raw))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"geofence configuration is invalid: {problems}") from None
    zones = []
    for i, zc in enumerate(config.zones):
        try:
            zones.append(zone_from_proto(zc.to_proto()))
        except ZoneError as e:
            raise ConfigError(f"geofence configuration is invalid: zones.{i}: {e}") from None
    return config, zones
