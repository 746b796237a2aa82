"""hardpoint-mod-radar: surface radar detections as geo-referenced ``hardpoint.track.v1.SensorTrack``.

It polls the ``radar`` adapter (a :class:`hardpoint.adapters.DetectionSensor`),
geo-references every detection with the platform's
``hardpoint.nav.v1.NavState`` and publishes one ``SensorTrack`` sample per
detection: relative position and covariance in the platform's local NED
frame, geodetic position and covariance (NED at the object), lifecycle
NEW / UPDATED / COASTING / DROPPED per radar track id. The behaviour, and
exactly what is published, is in :mod:`hardpoint_sensorkit.module`; this
module only declares itself and its defaults.

How it is written: a module can be a subclass of a shared, tested base
(here :class:`hardpoint_sensorkit.SensorModule`, its own distribution that
depends only on the SDK). The subclass carries what makes it *this* module --
the :class:`~hardpoint.Manifest` (it ``requires`` NavState, ``provides``
SensorTrack, asks for the ``radar`` adapter), the adapter name and the
defaults for its sensor -- and inherits the hooks. See
``tests/modules/test_radar.py`` for how it is tested on the in-memory bus
with the simulated radar.

Configuration (all optional): ``sensor_id``, ``platform_id`` (``"own"``),
``poll_rate_hz`` (10), ``max_nav_gap_s`` (0.5), ``nav_history_s`` (5),
``coast_period_s`` (0.5), ``drop_after_s`` (3.5), ``bearing_only_range_m``,
``bearing_only_range_std_m``; see :class:`hardpoint_sensorkit.SensorModuleConfig`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hardpoint import Manifest
from hardpoint_sensorkit import NAV_STATE, SENSOR_TRACK, SensorModule

__all__ = ["Radar"]


class Radar(SensorModule):
    """Radar detections -> SensorTrack."""

    manifest = Manifest(
        name="radar",
        version="1.0.0",
        supplier="hardpoint reference modules",
        requires=(NAV_STATE,),
        provides=(SENSOR_TRACK,),
        adapters=("radar",),
        description="Surface radar: detections geo-referenced with the platform's navigation, as sensor tracks",
        # Slower than the contract's nominal 10 Hz by design, so declared (CF-BUS-007): the radar scans at
        # 1 Hz, and each track is published on every scan and once more, COASTING, half-way to the next one
        # (coast_period_s 0.5): 2 samples a second per track, every gap at most ~0.6 s (deadline 1 s).
        rates={SENSOR_TRACK: 2.0},
    )
    adapter = "radar"
    # 1 Hz scans: poll at 10 Hz; a track missing 3 scans is dropped
    defaults: ClassVar[dict[str, Any]] = {"poll_rate_hz": 10.0, "drop_after_s": 3.5}
