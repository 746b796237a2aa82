"""The generic sensor module: detections in, geo-referenced ``hardpoint.track.v1.SensorTrack`` out.

A concrete module (``radar``, ``eoir``) is a subclass that sets its
``manifest``, its adapter name and its configuration defaults; everything
else is here.

What one detection becomes (one ``SensorTrack`` sample, QoS STREAM):

- ``sensor_id`` (config, default the adapter's ``sensor_id``), ``track_id``
  (the sensor's own ``sensor_track_id``, or ``d<n>`` for a detection without
  one), ``platform_id`` (config), ``measurement_time_ns`` (the detection's
  time; also the envelope's time of validity);
- ``lifecycle``: NEW on the first sample of a track id, UPDATED after. A
  followed track without a new measurement for ``coast_period_s`` since its
  last sample is re-sent as COASTING (same content, no new measurement: use
  NEW/UPDATED samples only as measurements), and after ``drop_after_s``
  without a measurement it is sent once as DROPPED and forgotten. One-off
  ``d<n>`` tracks are sent once, NEW, and never coast or drop.
- ``relative_position``: from the platform's navigation reference point to
  the object at the measurement time, local NED axes there (m);
  ``relative_covariance``: its 3x3 covariance (6 values, m^2), from range,
  bearing (plus the navigation heading uncertainty) and elevation noise.
- ``position``: geodetic (WGS84, height above the ellipsoid);
  ``covariance``: 3x3 in the local NED axes *at the object* (6 values, m^2),
  the relative covariance plus the platform's position uncertainty.
- ``classification``, ``classification_confidence`` from the sensor's hint;
  ``confidence`` a heuristic: ``1 - 0.5**hits`` (at most 0.99) for a followed
  track, 0.5 for a one-off detection.
- No velocities: single measurements carry none.

Geo-referencing: the module keeps ``nav_history_s`` of ``NavState`` samples
of its ``platform_id`` (fix_quality other than NONE) and uses the one
closest in time to the measurement, propagated to the measurement time with
its velocity; a detection with no usable sample within ``max_nav_gap_s`` is
dropped, and health is degraded while that happens. The bearing is from the
bow; the azimuth is ``yaw + bearing``.

Bearing-only sensors (range NaN): the sample is placed on the measured line
of sight at ``bearing_only_range_m`` with a range standard deviation of
``bearing_only_range_std_m`` (the covariance is a long thin ellipsoid along
the line of sight). A consumer recognises such samples by their
line-of-sight standard deviation (``sqrt`` of the largest eigenvalue of the
relative covariance) being ``bearing_only_range_std_m``; the measured
azimuth is ``atan2(east, north)`` of ``relative_position``, and the
azimuth standard deviation is the cross-range one divided by
``bearing_only_range_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hardpoint import Manifest, ModuleContext, Publisher, SampleInfo, Subscription, Timer, hookimpl
from hardpoint.adapters import Detection, DetectionSensor
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.track.v1 import track_pb2
from hardpoint_sensorkit.geo import (
    Mat3,
    Vec3,
    add_cov,
    cov_to_upper,
    diag,
    offset_by_ned,
    polar_cov,
    polar_to_ned,
    rotate_cov,
)
from hardpoint_sensorkit.navhistory import NavHistory, NavSample

__all__ = ["NAV_STATE", "SENSOR_TRACK", "SensorModule", "SensorModuleConfig", "georeference"]

NAV_STATE: Final = "hardpoint.nav.v1.NavState"
SENSOR_TRACK: Final = "hardpoint.track.v1.SensorTrack"

_NO_FIX: Final = frozenset({nav_pb2.FIX_QUALITY_UNSPECIFIED, nav_pb2.FIX_QUALITY_NONE})


class SensorModuleConfig(BaseModel):
    """Configuration of a sensor module (each subclass has its own defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``sensor_id`` of the published tracks; default the adapter's ``sensor_id``.
    sensor_id: str | None = Field(default=None, min_length=1)
    #: The platform whose ``NavState`` geo-references the detections (and ``platform_id`` of the tracks).
    platform_id: str = Field(default="own", min_length=1)
    #: How often the adapter is polled.
    poll_rate_hz: float = Field(default=10.0, gt=0, le=1000)
    #: Largest time between a measurement and the navigation sample used for it.
    max_nav_gap_s: float = Field(default=0.5, gt=0)
    #: How much navigation history is kept.
    nav_history_s: float = Field(default=5.0, gt=0)
    #: A followed track is re-sent as COASTING when it had no sample for this long.
    coast_period_s: float = Field(default=0.5, gt=0)
    #: A followed track without a measurement for this long is DROPPED.
    drop_after_s: float = Field(default=3.0, gt=0)
    #: Range assumed for a detection without range.
    bearing_only_range_m: float = Field(default=5000.0, gt=0)
    #: Range standard deviation assumed for a detection without range.
    bearing_only_range_std_m: float = Field(default=5000.0, gt=0)


@dataclass(frozen=True, slots=True)
class Georeferenced:
    """A detection in the platform's local frame and on the ellipsoid."""

    relative: Vec3  #: NED from the platform's reference point at the measurement time (m)
    relative_cov: Mat3
    position: Vec3  #: (lat_deg, lon_deg, height_m)
    cov: Mat3  #: NED at ``position``
    bearing_only: bool


def georeference(det: Detection, nav: NavSample, cfg: SensorModuleConfig) -> Georeferenced:
    """Place one detection with the navigation sample ``nav`` (see the module docstring for the model)."""
    dt = (det.time_ns - nav.time_ns) / 1e9
    here = (nav.lat_deg, nav.lon_deg, nav.height_m)
    if dt != 0.0:
        here = offset_by_ned(here, (nav.vn * dt, nav.ve * dt, nav.vd * dt))
    bearing_only = not math.isfinite(det.range_m)
    if bearing_only:
        rng, rng_var = cfg.bearing_only_range_m, cfg.bearing_only_range_std_m**2
    else:
        rng, rng_var = det.range_m, _var(det.range_std_m)
    azimuth = nav.yaw_rad + det.bearing_rad
    rel = polar_to_ned(rng, azimuth, det.elevation_rad)
    rel_cov = polar_cov(
        rng,
        azimuth,
        det.elevation_rad,
        range_var=rng_var,
        azimuth_var=_var(det.bearing_std_rad) + nav.heading_std_rad**2,
        elevation_var=_var(det.elevation_std_rad),
    )
    pos = offset_by_ned(here, rel)
    h_var = nav.horizontal_std_m**2 / 2.0 + (nav.velocity_std_mps * dt) ** 2
    v_var = nav.vertical_std_m**2 + (nav.velocity_std_mps * dt) ** 2
    geo_cov = rotate_cov(add_cov(rel_cov, diag(h_var, h_var, v_var)), (here[0], here[1]), (pos[0], pos[1]))
    return Georeferenced(rel, rel_cov, pos, geo_cov, bearing_only)


def _var(std: float) -> float:
    return std * std if math.isfinite(std) else 0.0


@dataclass(slots=True)
class _Live:
    last: track_pb2.SensorTrack
    hits: int
    last_measured_ns: int  #: bus clock when the last measurement arrived
    last_sent_ns: int  #: bus clock of the last sample sent


class SensorModule:
    """Base of a sensor module; subclasses set ``manifest``, ``adapter`` and ``defaults``."""

    manifest: ClassVar[Manifest]
    #: Name of the adapter (``ctx.adapters[adapter]``), a :class:`~hardpoint.adapters.DetectionSensor`.
    adapter: ClassVar[str]
    #: Configuration defaults of this kind of sensor, over :class:`SensorModuleConfig`'s.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self._timer: Timer | None = None
        self._nav_sub: Subscription[nav_pb2.NavState] | None = None
        self._live: dict[str, _Live] = {}
        self._oneoff = 0
        self._degraded_reason = ""
        #: Counters: detections received, samples published by lifecycle, detections dropped for lack of navigation.
        self.counts: dict[str, int] = dict.fromkeys(
            ("detections", "new", "updated", "coasting", "dropped", "no_nav"), 0
        )

    # -- lifecycle --------------------------------------------------------------

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        try:
            self.cfg = SensorModuleConfig.model_validate({**self.defaults, **dict(ctx.config)})
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
            raise ValueError(f"module {ctx.name!r}: invalid configuration: {problems}") from None
        sensor = ctx.adapters.get(self.adapter)
        if not isinstance(sensor, DetectionSensor):
            raise TypeError(
                f"module {ctx.name!r}: adapter {self.adapter!r} must be a DetectionSensor, not {type(sensor).__name__}"
            )
        self.sensor: DetectionSensor = sensor
        self.sensor_id = self.cfg.sensor_id or sensor.sensor_id
        self.ctx = ctx
        self.nav = NavHistory(self.cfg.nav_history_s)
        self.pub: Publisher[track_pb2.SensorTrack] = ctx.bus.publisher(track_pb2.SensorTrack)
        self._nav_sub = ctx.bus.subscribe(nav_pb2.NavState, self._on_nav, with_info=True)

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> None:
        self._timer = ctx.every(1.0 / self.cfg.poll_rate_hz, self.tick)

    @hookimpl
    def on_deactivate(self, ctx: ModuleContext) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @hookimpl
    def on_cleanup(self, ctx: ModuleContext) -> None:
        if self._nav_sub is not None:
            self._nav_sub.close()
            self._nav_sub = None
        self._live.clear()
        self.nav.clear()

    # -- work -------------------------------------------------------------------

    def _on_nav(self, msg: nav_pb2.NavState, info: SampleInfo) -> None:
        if msg.platform_id != self.cfg.platform_id or msg.fix_quality in _NO_FIX:
            return
        self.nav.add(NavSample.from_nav_state(msg, info.stamp_ns))

    def tick(self) -> None:
        """Poll the sensor, publish what it saw, coast and drop followed tracks, report health."""
        now = self.ctx.now_ns()
        try:
            detections = self.sensor.poll()
        except Exception as e:  # a driver fault degrades the module; it does not crash it
            self._judge(f"sensor poll failed: {type(e).__name__}: {e}")
            return
        no_nav = 0
        for det in detections:
            self.counts["detections"] += 1
            if not self.publish_detection(det, now):
                no_nav += 1
        self._coast_and_drop(now)
        if no_nav:
            self.counts["no_nav"] += no_nav
            self._judge(
                f"detections dropped: no NavState of platform {self.cfg.platform_id!r} with a fix "
                f"within {self.cfg.max_nav_gap_s:g} s of their measurement time"
            )
        elif detections or self._degraded_reason.startswith("sensor poll failed"):
            self._judge("")

    def publish_detection(self, det: Detection, now_ns: int) -> bool:
        """Geo-reference and publish one detection; ``False`` if there is no navigation to do it with."""
        nav = self.nav.nearest(det.time_ns, self.cfg.max_nav_gap_s)
        if nav is None:
            return False
        geo = georeference(det, nav, self.cfg)
        live = self._live.get(det.sensor_track_id) if det.sensor_track_id else None
        if det.sensor_track_id:
            track_id = det.sensor_track_id
            hits = 1 if live is None else live.hits + 1
            confidence = min(0.99, 1.0 - 0.5**hits)
        else:  # a one-off detection: its own track, never updated
            self._oneoff += 1
            track_id, hits, confidence = f"d{self._oneoff}", 1, 0.5
        lifecycle = track_pb2.TRACK_LIFECYCLE_NEW if live is None else track_pb2.TRACK_LIFECYCLE_UPDATED
        msg = track_pb2.SensorTrack(
            sensor_id=self.sensor_id,
            track_id=track_id,
            platform_id=self.cfg.platform_id,
            measurement_time_ns=det.time_ns,
            lifecycle=lifecycle,
            relative_position=geo_pb2.PositionNed(
                north_m=geo.relative[0], east_m=geo.relative[1], down_m=geo.relative[2]
            ),
            relative_covariance=geo_pb2.Covariance(upper_triangle=cov_to_upper(geo.relative_cov)),
            position=geo_pb2.GeoPosition(
                latitude_deg=geo.position[0], longitude_deg=geo.position[1], height_hae_m=geo.position[2]
            ),
            covariance=geo_pb2.Covariance(upper_triangle=cov_to_upper(geo.cov)),
            classification=_classification(det.classification),
            classification_confidence=det.classification_confidence if det.classification else 0.0,
            confidence=confidence,
        )
        self.pub.publish(msg, time_of_validity_ns=det.time_ns)
        self.counts["new" if lifecycle == track_pb2.TRACK_LIFECYCLE_NEW else "updated"] += 1
        if det.sensor_track_id:
            self._live[track_id] = _Live(msg, hits, now_ns, now_ns)
        return True

    def _coast_and_drop(self, now: int) -> None:
        coast_ns = self.cfg.coast_period_s * 1e9
        drop_ns = self.cfg.drop_after_s * 1e9
        for track_id, live in list(self._live.items()):
            if now - live.last_measured_ns >= drop_ns:
                self._resend(live, track_pb2.TRACK_LIFECYCLE_DROPPED)
                del self._live[track_id]
                self.counts["dropped"] += 1
            elif now - live.last_sent_ns >= coast_ns:
                self._resend(live, track_pb2.TRACK_LIFECYCLE_COASTING)
                live.last_sent_ns = now
                self.counts["coasting"] += 1

    def _resend(self, live: _Live, lifecycle: track_pb2.TrackLifecycle.ValueType) -> None:
        msg = track_pb2.SensorTrack()
        msg.CopyFrom(live.last)
        msg.lifecycle = lifecycle
        self.pub.publish(msg, time_of_validity_ns=msg.measurement_time_ns)

    def _judge(self, reason: str) -> None:
        """Report the module's own judgement, only when it changes (the host's provider watch keeps its own)."""
        if reason == self._degraded_reason:
            return
        self._degraded_reason = reason
        if reason:
            self.ctx.set_health("degraded", reason)
        else:
            self.ctx.set_health("ok")


def _classification(name: str) -> track_pb2.Classification.ValueType:
    if not name:
        return track_pb2.CLASSIFICATION_UNSPECIFIED
    try:
        return track_pb2.Classification.Value(f"CLASSIFICATION_{name.upper()}")
    except ValueError:
        return track_pb2.CLASSIFICATION_UNKNOWN
