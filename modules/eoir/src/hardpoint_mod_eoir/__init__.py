"""hardpoint-mod-eoir: EO/IR tracker detections as geo-referenced ``hardpoint.track.v1.SensorTrack``.

It polls the ``eoir`` adapter (a :class:`hardpoint.adapters.DetectionSensor`),
geo-references every detection with the platform's
``hardpoint.nav.v1.NavState`` and publishes one ``SensorTrack`` sample per
detection, exactly as :mod:`hardpoint_sensorkit.module` describes. An EO/IR
tracker may measure no range (no laser rangefinder, or out of its reach):
such a detection is placed on its line of sight at ``bearing_only_range_m``
with a range standard deviation of ``bearing_only_range_std_m`` -- a long,
thin covariance that constrains only the direction (the sensorkit docstring
says how a consumer recognises and uses it).

How it is written: like ``hardpoint-mod-radar``, a subclass of
:class:`hardpoint_sensorkit.SensorModule` that declares its manifest, its
adapter (``eoir``) and the defaults of a fast, narrow sensor. Tests:
``tests/modules/test_eoir.py``.

Configuration (all optional): ``sensor_id``, ``platform_id`` (``"own"``),
``poll_rate_hz`` (20), ``max_nav_gap_s`` (0.5), ``nav_history_s`` (5),
``coast_period_s`` (0.5), ``drop_after_s`` (2), ``bearing_only_range_m``
(5000), ``bearing_only_range_std_m`` (5000).
"""

from __future__ import annotations

from typing import Any, ClassVar

from hardpoint import Manifest
from hardpoint_sensorkit import NAV_STATE, SENSOR_TRACK, SensorModule

__all__ = ["Eoir"]


class Eoir(SensorModule):
    """EO/IR tracker detections -> SensorTrack."""

    manifest = Manifest(
        name="eoir",
        version="1.0.0",
        supplier="hardpoint reference modules",
        requires=(NAV_STATE,),
        provides=(SENSOR_TRACK,),
        adapters=("eoir",),
        description="EO/IR tracker: detections geo-referenced with the platform's navigation, as sensor tracks",
        # Slower than the contract's nominal 10 Hz by design, so declared (CF-BUS-007): the video tracker
        # updates each track on every frame it is detected in, 5 frames a second (about 4.2 samples a
        # second per track with missed frames; a track missed for 0.5 s is re-sent COASTING).
        rates={SENSOR_TRACK: 5.0},
    )
    adapter = "eoir"
    # 5 Hz video tracker: poll at 20 Hz; a track unseen for 2 s is dropped
    defaults: ClassVar[dict[str, Any]] = {"poll_rate_hz": 20.0, "drop_after_s": 2.0}
