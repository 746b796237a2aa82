"""hardpoint-sensorkit: what the reference sensor modules share.

- :mod:`hardpoint_sensorkit.module`: :class:`SensorModule`, a complete
  module that polls a :class:`hardpoint.adapters.DetectionSensor`,
  geo-references each detection with the platform's ``NavState`` and
  publishes ``hardpoint.track.v1.SensorTrack`` (the module docstring states
  exactly what is published). ``hardpoint-mod-radar`` and
  ``hardpoint-mod-eoir`` are subclasses that only set the manifest, the
  adapter name and defaults.
- :mod:`hardpoint_sensorkit.geo`: exact WGS84 conversions (geodetic, ECEF,
  local NED) and covariance propagation from polar measurements.
- :mod:`hardpoint_sensorkit.navhistory`: the navigation history used to
  geo-reference measurements made in the past.

It depends only on the SDK.
"""

from hardpoint_sensorkit.module import NAV_STATE, SENSOR_TRACK, SensorModule, SensorModuleConfig, georeference
from hardpoint_sensorkit.navhistory import NavHistory, NavSample

__all__ = [
    "NAV_STATE",
    "SENSOR_TRACK",
    "NavHistory",
    "NavSample",
    "SensorModule",
    "SensorModuleConfig",
    "georeference",
]
