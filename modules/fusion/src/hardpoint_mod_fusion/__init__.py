"""hardpoint-mod-fusion: multi-sensor track fusion, the reference module for sensor fusion.

Sensor modules publish ``hardpoint.track.v1.SensorTrack`` samples, one per
detection or per sensor-track update, geo-referenced with a position
covariance; this module fuses them into one picture of
``hardpoint.track.v1.FusedTrack`` (IF-TRACK-FUSED). The package has two layers:

- :mod:`hardpoint_mod_fusion.tracker`, the **tracker core**: pure and
  deterministic (no bus, no clock, no IO). :class:`Tracker` takes
  :class:`Measurement` objects in :meth:`Tracker.process` and gives
  :class:`TrackState` snapshots from :meth:`Tracker.tracks`. Use it directly in
  scenario tests and offline analysis.
- :mod:`hardpoint_mod_fusion.module`, the **module** (:class:`FusionModule`):
  feeds the core from the bus and publishes its tracks at 2 Hz.

The algorithm
-------------

*Frame.* Positions are filtered in a local flat-earth north/east plane about a
reference (configured, or the first measurement), using the WGS84 radii of
curvature at the reference (:mod:`hardpoint_mod_fusion.geo` states the error).

*Motion model.* Each track has a Kalman filter on ``x = [n, e, vn, ve]`` with a
nearly-constant-velocity model: ``x(t+dt) = F x(t)``, ``F = [[I, dt I], [0, I]]``,
and white acceleration noise of spectral density ``q`` (m^2/s^3) per axis,
``Q = q [[dt^3/3 I, dt^2/2 I], [dt^2/2 I, dt I]]``. Height is filtered apart, as
a random walk (density ``height_process_noise_m2ps``).

*Measurements.* A measurement is a position ``z = [n, e]`` with covariance
``R``: the sensor's own covariance when the sample has one (that is what lets a
radar, precise in range, and an EO/IR tracker, precise in bearing, together beat
either alone), else the configured noise of the sensor. Update: innovation
``nu = z - H x``, ``S = H P H^T + R``, gain ``K = P H^T S^-1`` (Joseph form for P).

*Scans.* Measurements are sorted by time and grouped into scans: one sensor,
times within ``scan_window_s``. Scans are processed in time order, one at a
time; measurements of different sensors are thus fused sequentially. A
measurement older than the newest processed one by more than
``oosm_tolerance_s`` is dropped and counted (``stats.oosm_dropped``); a younger
one that is still older than a track's state updates the track by
retrodiction (:func:`~hardpoint_mod_fusion.tracker.kf_update_retrodicted`).

*Gating and assignment.* For each scan, every track is predicted to each
measurement's time and the squared Mahalanobis distance ``d2 = nu^T S^-1 nu`` is
computed; a pair is allowed only inside the chi-square gate of 2 degrees of
freedom (``gate_probability`` 0.99: ``d2 <= 9.21``) and, with ``height_gating``,
inside the 1-degree gate of the height innovation (6.63), so that an aircraft
flying over a ship is not taken for it. Global nearest neighbour:
:func:`scipy.optimize.linear_sum_assignment` on the cost ``d2 + ln det S`` (plus
the height's ``d2 + ln s``) of the allowed pairs finds the one-to-one assignment
that makes the most pairs with the least total cost (greedy nearest-neighbour
can be wrong when two tracks compete for one measurement). A measurement
carrying the sensor track id that its sensor last contributed to a track gets
``same_source_bonus`` off its cost: a sensor's own association breaks near-ties,
never the gate. Confirmed tracks are assigned first, tentative tracks get what
is left.

*Initiation.* A measurement left unassigned starts a tentative track (velocity
zero, standard deviation ``initial_velocity_std_mps``), unless it is too
imprecise (bearing-only: ``max_initiation_std_m``) or inside a confirmed
track's gate. Misses are counted per look of a sensor that has hit the track
within ``source_timeout_s`` (so a sensor that never sees a target does not count
against it): a sensor's revisit period is configured or learned from its hit
intervals, each period that passes without a hit is a miss (with half a period
of slack, so detections of one rotation spread over time do not miss each
other). A tentative track is confirmed after ``confirm_hits`` (M) hits in its
first ``confirm_window`` (N) opportunities, and discarded as soon as that is
impossible or after ``tentative_timeout_s`` (at least N - M + 1.5 revisits)
without an update. Only confirmed tracks are published.

*Deletion.* A confirmed track is coasting after ``coast_after_s`` without an
update and is dropped after ``delete_after_s``, or as soon as its predicted
position standard deviation exceeds ``max_position_std_m``; each drop is
reported once (:attr:`TrackerEvents.dropped`) and the module publishes it once
as DROPPED.

*Attributes.* Classification is the latest report of the most confident
sensor; confidence is the track's hit ratio over its last ``confidence_window``
opportunities; sources are the latest sensor track of each sensor that updated
the track within ``source_timeout_s``.

Parameters, with units and defaults, are in :class:`TrackerConfig` (the core)
and :class:`FusionConfig` (the module's configuration: the core's parameters
and the module's own).
"""

from __future__ import annotations

from hardpoint_mod_fusion.config import FusionConfig, SensorSettings, TrackerConfig
from hardpoint_mod_fusion.geo import LocalFrame
from hardpoint_mod_fusion.module import FusionModule, fused_track_message
from hardpoint_mod_fusion.tracker import (
    DroppedTrack,
    Measurement,
    Source,
    Tracker,
    TrackerEvents,
    TrackerStats,
    TrackState,
)

__all__ = [
    "DroppedTrack",
    "FusionConfig",
    "FusionModule",
    "LocalFrame",
    "Measurement",
    "SensorSettings",
    "Source",
    "TrackState",
    "Tracker",
    "TrackerConfig",
    "TrackerEvents",
    "TrackerStats",
    "fused_track_message",
]
