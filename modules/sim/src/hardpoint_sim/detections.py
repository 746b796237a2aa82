"""A simulated sensor front end: one sensor of the scenario (``sim-detections``).

It implements :class:`hardpoint.adapters.DetectionSensor`. The sensor scans
at ``update_rate_hz`` from scenario time zero; scan ``k`` is a snapshot at
``t_k = k / rate`` (every detection of a scan has that measurement time) and
becomes available at ``t_k + latency_s``. :meth:`SimDetectionSensor.poll`
returns every scan that became available since the last call.

Per scan and target (exact WGS84 geometry from the true platform to the true
target, the sensor at the platform's navigation reference point):

- visible when ``min_range_m <= range <= max_range_m``, the elevation is in
  ``[min_elevation_deg, max_elevation_deg]`` and the bearing off the
  boresight (``mount_yaw_deg`` from the bow) is within ``fov_deg / 2``;
- detected with probability ``detection_probability``;
- measured with Gaussian noise on range (``range_std_m``; none measured, NaN,
  for a bearing-only sensor), bearing and elevation; the bearing is reported
  from the bow, clockwise, as the adapter protocol says;
- labelled with the sensor's own track id when ``track_ids`` is on:
  ``t<k>.<i>``, from the scan ``k`` of the track's first detection and the
  target's index ``i`` in the scenario, so ids are never reused, not even by
  a new adapter instance after a module restart (with the same time zero);
  an object not detected for ``track_timeout_s`` gets a new id when seen
  again;
- classified right with probability ``classification_accuracy`` (else
  ``UNKNOWN``) when that is set.

False alarms: a Poisson number per scan with mean ``false_alarms_per_scan``,
uniform in range over ``[min_range_m, max_range_m]`` and in azimuth over the
field of view (as from per-cell CFAR), at elevation 0 plus noise, without
track id or classification.

Randomness: scan ``k`` draws from its own stream seeded by
``(seed, sensor name, k)``, and every target always consumes the same draws,
so the output is a function of the seed and the scan number only.
:attr:`SimDetectionSensor.truth_log` keeps, for tests and analysis, which
target (or ``None`` for a false alarm) each detection came from.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Final

from hardpoint.adapters import Detection
from hardpoint_sim._clock import Clock, ScenarioClock
from hardpoint_sim.geodesy import ned_between
from hardpoint_sim.scenario import Scenario, SensorSpec

__all__ = ["SimDetectionSensor"]

_NAN: Final = float("nan")
_TRUTH_LOG: Final = 100_000


class SimDetectionSensor:
    """Simulated radar or EO/IR tracker. Usually made by the ``sim-detections`` adapter factory.

    :param max_backlog_s: scans that became available longer ago than this when polled are dropped
        (a driver's bounded buffer), for instance after the module was inactive for a while.
    """

    def __init__(
        self,
        scenario: Scenario,
        sensor: str,
        *,
        seed: int,
        sensor_id: str | None = None,
        start_ns: int | None = None,
        clock: Clock | None = None,
        max_backlog_s: float = 5.0,
    ) -> None:
        if sensor not in scenario.sensors:
            known = ", ".join(sorted(scenario.sensors)) or "none"
            raise ValueError(f"scenario {scenario.name!r} has no sensor {sensor!r} (it has: {known})")
        self.scenario = scenario
        self.name = sensor
        self.spec: SensorSpec = scenario.sensors[sensor]
        #: Stable identifier of the sensor (the protocol's ``sensor_id``).
        self.sensor_id = sensor_id or sensor
        self.time = ScenarioClock(start_ns, clock)
        self.max_backlog_s = max_backlog_s
        self._seed = seed
        self._next_k: int | None = None
        self._tracks: dict[str, tuple[str, float]] = {}  # target id -> (track id, last detection time s)
        #: ``(detection, target id or None)`` of recent detections, oldest first.
        self.truth_log: deque[tuple[Detection, str | None]] = deque(maxlen=_TRUTH_LOG)

    @property
    def update_rate_hz(self) -> float:
        return self.spec.update_rate_hz

    def scan_time_ns(self, k: int) -> int:
        """Measurement time of scan ``k``."""
        return self.time.start_ns + round(k * 1e9 / self.spec.update_rate_hz)

    def poll(self) -> list[Detection]:
        """Detections of every scan that became available since the last call, oldest first."""
        now = self.time.now_ns()
        latency_ns = round(self.spec.latency_s * 1e9)
        backlog_ns = round(self.max_backlog_s * 1e9)
        if self._next_k is None:
            # first use: start at the oldest scan still within the backlog
            t0 = now - latency_ns - backlog_ns - self.time.start_ns
            self._next_k = max(0, math.ceil(t0 * self.spec.update_rate_hz / 1e9))
        out: list[Detection] = []
        while (t_k := self.scan_time_ns(self._next_k)) + latency_ns <= now:
            scan = self._scan(self._next_k, t_k)
            self._next_k += 1
            if t_k + latency_ns >= now - backlog_ns:
                out.extend(scan)
        return out

    def _scan(self, k: int, t_ns: int) -> list[Detection]:
        spec = self.spec
        rng = random.Random(f"{self._seed}/{self.name}/{k}")
        t_s = (t_ns - self.time.start_ns) / 1e9
        own = self.scenario.platform_at(t_s)
        h0 = self.scenario.own.height_m
        sig_r = spec.range_std_m
        sig_b = math.radians(spec.bearing_std_deg)
        sig_e = math.radians(spec.elevation_std_deg)
        half_fov = math.radians(spec.fov_deg) / 2.0
        mount = math.radians(spec.mount_yaw_deg)
        el_min, el_max = math.radians(spec.min_elevation_deg), math.radians(spec.max_elevation_deg)
        found: list[tuple[Detection, str | None]] = []
        for index, target in enumerate(self.scenario.targets):
            # fixed draws per target, used or not: the streams of the others do not shift
            u_pd, n_r, n_b, n_e, u_cls = rng.random(), rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1), rng.random()
            truth = self.scenario.target_at(target.id, t_s)
            if truth is None:
                continue
            v = ned_between((own.lat, own.lon, h0), (truth.lat, truth.lon, truth.height_m))
            horiz = math.hypot(v.x, v.y)
            rng_m = math.hypot(horiz, v.z)
            bearing = _wrap(math.atan2(v.y, v.x) - own.yaw_rad)
            elevation = math.atan2(-v.z, horiz)
            visible = (
                spec.min_range_m <= rng_m <= spec.max_range_m
                and el_min <= elevation <= el_max
                and (spec.fov_deg >= 360.0 or abs(_wrap(bearing - mount)) <= half_fov)
            )
            if not visible or u_pd >= spec.detection_probability:
                continue
            classification, confidence = "", 0.0
            if spec.classification_accuracy is not None:
                ok = u_cls < spec.classification_accuracy
                classification = truth.classification if ok else "UNKNOWN"
                confidence = spec.classification_accuracy
            det = Detection(
                time_ns=t_ns,
                range_m=_NAN if sig_r is None else rng_m + sig_r * n_r,
                bearing_rad=_wrap(bearing + sig_b * n_b),
                elevation_rad=elevation + sig_e * n_e,
                range_std_m=_NAN if sig_r is None else sig_r,
                bearing_std_rad=sig_b,
                elevation_std_rad=sig_e,
                sensor_track_id=self._track_id(target.id, index, k, t_s) if spec.track_ids else "",
                classification=classification,
                classification_confidence=confidence,
            )
            found.append((det, target.id))
        for _ in range(_poisson(rng, spec.false_alarms_per_scan)):
            u_r, u_b, n_e = rng.random(), rng.random(), rng.gauss(0, 1)
            if spec.fov_deg >= 360.0:
                bearing = _wrap(2.0 * math.pi * (u_b - 0.5))
            else:
                bearing = _wrap(mount + (u_b - 0.5) * 2.0 * half_fov)
            det = Detection(
                time_ns=t_ns,
                range_m=_NAN if sig_r is None else spec.min_range_m + u_r * (spec.max_range_m - spec.min_range_m),
                bearing_rad=bearing,
                elevation_rad=sig_e * n_e,
                range_std_m=_NAN if sig_r is None else sig_r,
                bearing_std_rad=sig_b,
                elevation_std_rad=sig_e,
            )
            found.append((det, None))
        found.sort(key=lambda d: (d[0].bearing_rad + 2.0 * math.pi) % (2.0 * math.pi))
        self.truth_log.extend(found)
        return [d for d, _ in found]

    def _track_id(self, target_id: str, index: int, k: int, t_s: float) -> str:
        known = self._tracks.get(target_id)
        followed = known is not None and t_s - known[1] <= self.spec.track_timeout
        track_id = known[0] if known is not None and followed else f"t{k}.{index}"
        self._tracks[target_id] = (track_id, t_s)
        return track_id


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; fine for the small means of false alarms per scan."""
    if mean <= 0.0:
        return 0
    if mean > 30.0:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))
