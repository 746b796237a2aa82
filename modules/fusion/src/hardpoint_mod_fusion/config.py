"""Configuration of the tracker core and of the fusion module, with units and defaults.

Every quantity carries its unit in its name (``delete_after_s``). The models are
frozen and refuse unknown keys; :meth:`FusionConfig.load` turns a problem into
one :class:`ValueError` naming each field and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["FusionConfig", "SensorSettings", "TrackerConfig"]


class SensorSettings(BaseModel):
    """What the tracker assumes about one sensor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Standard deviation of the north and of the east position error (m) of tracks without a covariance.
    position_std_m: float = Field(default=50.0, gt=0.0, allow_inf_nan=False)
    #: Standard deviation of the height error (m) of tracks without a covariance.
    height_std_m: float = Field(default=100.0, gt=0.0, allow_inf_nan=False)
    #: Time between two looks of the sensor at one object (s), its scan period; ``None``: learned from
    #: the intervals between consecutive hits of one track by the sensor. Misses are counted per revisit.
    revisit_s: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)


class TrackerConfig(BaseModel):
    """Parameters of :class:`hardpoint_mod_fusion.tracker.Tracker`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- local frame -------------------------------------------------------------
    #: Latitude of the local frame's origin (deg); ``None``: the first measurement's position.
    reference_latitude_deg: float | None = Field(default=None, ge=-85.0, le=85.0, allow_inf_nan=False)
    #: Longitude of the local frame's origin (deg); set with ``reference_latitude_deg`` or not at all.
    reference_longitude_deg: float | None = Field(default=None, ge=-180.0, le=180.0, allow_inf_nan=False)
    #: Height above the WGS84 ellipsoid of the local frame's origin (m).
    reference_height_m: float = Field(default=0.0, allow_inf_nan=False)

    # -- motion model ------------------------------------------------------------
    #: Power spectral density of the white acceleration noise of the nearly-constant-velocity model,
    #: per horizontal axis (m^2/s^3). About (typical acceleration)^2 x (manoeuvre duration).
    process_noise_m2ps3: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    #: Random-walk density of the height (m^2/s); the height is filtered separately, without velocity.
    height_process_noise_m2ps: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    #: Standard deviation of the velocity of a new track, per horizontal axis (m/s): about the fastest target.
    initial_velocity_std_mps: float = Field(default=100.0, gt=0.0, allow_inf_nan=False)

    # -- measurements ------------------------------------------------------------
    #: Per-sensor settings, by sensor_id.
    sensors: dict[str, SensorSettings] = Field(default_factory=dict)
    #: Settings of sensors not in ``sensors``.
    default_sensor: SensorSettings = Field(default_factory=SensorSettings)
    #: Added to the standard deviation of every measurement in quadrature, per axis (m): guards singular covariances.
    measurement_noise_floor_m: float = Field(default=0.5, ge=0.0, allow_inf_nan=False)

    # -- association -------------------------------------------------------------
    #: Probability that the gate holds a track's own measurement; the gate is the chi-square quantile, 2 dof.
    gate_probability: float = Field(default=0.99, gt=0.0, lt=1.0)
    #: Whether the height takes part in gating and assignment (its own 1-dof gate of ``gate_probability``).
    height_gating: bool = True
    #: Subtracted from the assignment cost (chi-square units) of a measurement whose sensor track id is the
    #: one that sensor last contributed to the track: sensor-side association breaks near-ties, never the gate.
    same_source_bonus: float = Field(default=2.0, ge=0.0, allow_inf_nan=False)
    #: Measurements of one sensor whose times are this close to the first one of a group form one scan (s).
    scan_window_s: float = Field(default=0.05, ge=0.0, allow_inf_nan=False)
    #: Measurements older than the newest processed one by more than this are dropped (s); younger ones
    #: that are still older than a track's state update it by retrodiction.
    oosm_tolerance_s: float = Field(default=0.5, ge=0.0, allow_inf_nan=False)

    # -- initiation ----------------------------------------------------------------
    #: M of M-of-N: hits needed among a tentative track's first N opportunities to confirm it.
    confirm_hits: int = Field(default=3, ge=1)
    #: N of M-of-N: opportunities (revisits by a sensor that has hit the track) a tentative track gets.
    confirm_window: int = Field(default=5, ge=1)
    #: Measurements less precise than this (largest standard deviation, m), such as bearing-only
    #: detections, update tracks but never start one.
    max_initiation_std_m: float = Field(default=500.0, gt=0.0, allow_inf_nan=False)
    #: Whether a measurement inside a confirmed track's gate may start a new track.
    initiate_inside_gates: bool = False
    #: A tentative track without an update for this long is discarded (s); at least ``N - M + 1.5`` revisits
    #: of the sensors that have hit it, so that a slow sensor's misses are judged by M-of-N.
    tentative_timeout_s: float = Field(default=2.0, gt=0.0, allow_inf_nan=False)

    # -- maintenance ---------------------------------------------------------------
    #: A confirmed track without an update for this long is coasting (s).
    coast_after_s: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    #: A confirmed track without an update for this long is dropped (s).
    delete_after_s: float = Field(default=5.0, gt=0.0, allow_inf_nan=False)
    #: A track whose predicted position standard deviation (largest axis) exceeds this is dropped (m).
    max_position_std_m: float = Field(default=1000.0, gt=0.0, allow_inf_nan=False)
    #: A sensor that has not updated a track for this long stops being one of its sources (s); its
    #: scans then no longer count as misses of the track.
    source_timeout_s: float = Field(default=3.0, gt=0.0, allow_inf_nan=False)
    #: Opportunities over which a track's confidence (hit ratio) is computed.
    confidence_window: int = Field(default=20, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.reference_latitude_deg is None) != (self.reference_longitude_deg is None):
            raise ValueError("set reference_latitude_deg and reference_longitude_deg together, or neither")
        if self.confirm_hits > self.confirm_window:
            raise ValueError(f"confirm_hits ({self.confirm_hits}) exceeds confirm_window ({self.confirm_window})")
        if self.coast_after_s >= self.delete_after_s:
            raise ValueError(
                f"coast_after_s ({self.coast_after_s}) must be below delete_after_s ({self.delete_after_s})"
            )
        return self

    @property
    def gate_threshold(self) -> float:
        """Squared Mahalanobis distance of the gate: the chi-square quantile of ``gate_probability``, 2 dof.

        For 2 degrees of freedom the quantile has a closed form, ``-2 ln(1 - p)``: 9.21 for p = 0.99.
        """
        return -2.0 * math.log1p(-self.gate_probability)

    @property
    def gate_threshold_1d(self) -> float:
        """Squared height innovation over its variance of the height gate: chi-square quantile, 1 dof (6.63)."""
        return NormalDist().inv_cdf(0.5 + 0.5 * self.gate_probability) ** 2

    def sensor_settings(self, sensor_id: str) -> SensorSettings:
        """Settings of ``sensor_id``."""
        return self.sensors.get(sensor_id, self.default_sensor)


class FusionConfig(TrackerConfig):
    """Configuration of the fusion module: the tracker's parameters and the module's own."""

    #: Rate of each live track's publication (Hz); IF-TRACK-FUSED is 2 Hz +-20 %.
    publish_rate_hz: float = Field(default=2.0, ge=1.6, le=2.4)
    #: Period of the module's work timer: process received measurements, maintain and publish (s).
    process_period_s: float = Field(default=0.05, gt=0.0, allow_inf_nan=False)
    #: A sensor's received tracks are processed once nothing more came from it for this long (s),
    #: so that a scan split over two bus samples is still one scan.
    scan_settle_s: float = Field(default=0.02, ge=0.0, allow_inf_nan=False)
    #: ... or at the latest this long after the first of them arrived (s).
    max_hold_s: float = Field(default=0.2, gt=0.0, allow_inf_nan=False)
    #: Health is degraded when no sensor track arrived for this long (s).
    input_timeout_s: float = Field(default=3.0, gt=0.0, allow_inf_nan=False)
    #: Sensor tracks whose measurement time is further than this ahead of the bus clock are refused (s):
    #: one bad clock must not push the tracker's time into the future.
    max_future_s: float = Field(default=5.0, gt=0.0, allow_inf_nan=False)
    #: Prefix of fused track ids; ``None``: ``"F"``, the activation time (Unix milliseconds, base 36) and a
    #: dash, so that a restarted module never reuses an id still held by receivers. Set it for reproducible ids.
    track_id_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{0,32}$")

    @model_validator(mode="after")
    def _module_consistent(self) -> Self:
        if self.max_hold_s < self.scan_settle_s:
            raise ValueError(f"max_hold_s ({self.max_hold_s}) is below scan_settle_s ({self.scan_settle_s})")
        return self

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> FusionConfig:
        """Validate a module configuration mapping.

        :raises ValueError: one message naming every bad field and the reason.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
            )
            raise ValueError(f"fusion configuration: {problems}") from None
