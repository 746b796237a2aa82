"""Abstract hardware adapters: what a module may ask the platform for.

A module never opens a device. Its manifest lists the adapters it needs by
abstract name (``gnss``, ``radar``, ...); the platform configuration binds each
name to a driver (an entry point in the group ``hardpoint.adapters``: a real
device driver or a simulator), and the module finds the instance in
``ctx.adapters[name]``. The protocols here are the contract between modules
and drivers; simulators implement the same ones.

All times are nanoseconds since the Unix epoch (UTC); angles are radians unless
a name ends in ``_deg``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Detection", "DetectionSensor", "GnssFix", "GnssReceiver"]


@dataclass(frozen=True, slots=True)
class GnssFix:
    """One navigation solution of a GNSS/INS receiver."""

    time_ns: int  #: time of validity
    latitude_deg: float
    longitude_deg: float
    height_m: float  #: above the WGS84 ellipsoid
    north_mps: float
    east_mps: float
    down_mps: float
    roll_rad: float
    pitch_rad: float
    yaw_rad: float  #: heading of the body x axis from true north, clockwise
    horizontal_std_m: float
    vertical_std_m: float
    velocity_std_mps: float
    heading_std_rad: float
    #: ``none``, ``2d``, ``3d``, ``dgnss``, ``rtk_float``, ``rtk_fixed``, ``dead_reckoning``, ``ins_only``
    fix: str = "3d"
    satellites: int = 0


@runtime_checkable
class GnssReceiver(Protocol):
    """A GNSS/INS receiver: the own platform's position, velocity and attitude."""

    def read(self) -> GnssFix | None:
        """The latest solution, or ``None`` before the first one."""
        ...


@dataclass(frozen=True, slots=True)
class Detection:
    """One measurement of one object by a sensor, in the sensor's platform-body frame."""

    time_ns: int  #: measurement time
    range_m: float  #: slant range from the sensor; NaN when the sensor measures no range
    bearing_rad: float  #: azimuth from the platform's body x axis (bow), clockwise
    elevation_rad: float
    range_std_m: float  #: one sigma; NaN with NaN range
    bearing_std_rad: float
    elevation_std_rad: float
    #: The sensor's own association of this detection to an object it follows ("" if none).
    sensor_track_id: str = ""
    #: The sensor's classification hint (a ``hardpoint.track.v1.Classification`` name without prefix), "" if none.
    classification: str = ""
    classification_confidence: float = 0.0


@runtime_checkable
class DetectionSensor(Protocol):
    """A sensor front end (radar, EO/IR tracker) delivering detections."""

    #: Stable identifier of the sensor on the platform.
    sensor_id: str

    def poll(self) -> list[Detection]:
        """Detections that became available since the last call, oldest first."""
        ...
