"""A simulated GNSS/INS receiver on the own platform's scripted route (``sim-gnss``).

It implements :class:`hardpoint.adapters.GnssReceiver`. Solutions come at
``rate_hz`` epochs counted from scenario time zero; :meth:`SimGnss.read`
returns the latest epoch at or before the clock. Errors:

- horizontal position (north and east, each ``position_std_m``), height and
  heading: first-order Gauss-Markov processes with time constant
  ``correlation_time_s`` and exactly the configured stationary standard
  deviation (white when the time constant is 0);
- velocity: white, ``velocity_std_mps`` per axis.

The fix reports ``horizontal_std_m = sqrt(2) * position_std_m`` (the radial
RMS error, as ``hardpoint.nav.v1.NavAccuracy`` asks), ``vertical_std_m``,
``velocity_std_mps`` and ``heading_std_rad`` as configured. During an outage
the fix is ``"none"``: position held at the last good fix, velocity zero,
accuracies NaN, no satellites. Random draws are made epoch by epoch from one
seeded stream, so the output depends only on the seed and the epoch, not on
when ``read`` is called.
"""

from __future__ import annotations

import math
import random
from typing import Final

from hardpoint.adapters import GnssFix
from hardpoint_sim._clock import Clock, ScenarioClock
from hardpoint_sim.geodesy import offset_by_ned
from hardpoint_sim.scenario import GnssSpec, Scenario

__all__ = ["SimGnss"]

_NAN: Final = float("nan")


class SimGnss:
    """Simulated GNSS/INS receiver. Usually made by the ``sim-gnss`` adapter factory."""

    def __init__(
        self, scenario: Scenario, spec: GnssSpec, *, seed: int, start_ns: int | None = None, clock: Clock | None = None
    ) -> None:
        self.scenario = scenario
        self.spec = spec
        self.time = ScenarioClock(start_ns, clock)
        self._seed = seed
        self._rng = random.Random(f"{seed}/gnss")
        self._k = -1  # last epoch whose errors are drawn
        # error state: north, east, down (m), heading (rad)
        self._err = [0.0, 0.0, 0.0, 0.0]
        self._verr = [0.0, 0.0, 0.0]
        self._fix: GnssFix | None = None
        self._last_good: tuple[float, float, float] | None = None

    def _epoch_ns(self, k: int) -> int:
        return self.time.start_ns + round(k * 1e9 / self.spec.rate_hz)

    def read(self) -> GnssFix | None:
        """The latest solution, or ``None`` before time zero."""
        now = self.time.now_ns()
        start = self.time.start_ns
        if now < start:
            return None
        k = math.floor((now - start) * self.spec.rate_hz / 1e9)
        while k > 0 and self._epoch_ns(k) > now:
            k -= 1
        while self._epoch_ns(k + 1) <= now:
            k += 1
        if k != self._k or self._fix is None:
            self._advance(k)
        return self._fix

    def _advance(self, k: int) -> None:
        spec = self.spec
        dt = 1.0 / spec.rate_hz
        tau = spec.correlation_time_s
        phi = math.exp(-dt / tau) if tau > 0 else 0.0
        q = math.sqrt(max(0.0, 1.0 - phi * phi))
        sig = (spec.position_std_m, spec.position_std_m, spec.height_std_m, math.radians(spec.heading_std_deg))
        g = self._rng.gauss
        first = self._k < 0
        if k < self._k:  # the clock went back: start the stream again
            self._k, first = -1, True
            self._rng = random.Random(f"{self._seed}/gnss")
            g = self._rng.gauss
        # Jump far ahead without drawing every epoch in between would change the stream; epochs are cheap.
        for _ in range(self._k + 1, k + 1):
            if first:
                self._err = [s * g(0.0, 1.0) for s in sig]
                first = False
            else:
                self._err = [phi * e + q * s * g(0.0, 1.0) for e, s in zip(self._err, sig, strict=True)]
            self._verr = [spec.velocity_std_mps * g(0.0, 1.0) for _ in range(3)]
        self._k = k
        self._fix = self._make_fix(k)

    def _make_fix(self, k: int) -> GnssFix:
        spec = self.spec
        t_ns = self._epoch_ns(k)
        t_s = (t_ns - self.time.start_ns) / 1e9
        truth = self.scenario.platform_at(t_s)
        h0 = self.scenario.own.height_m
        if any(a <= t_s < b for a, b in spec.outages):
            lat, lon, h = self._last_good if self._last_good is not None else (truth.lat, truth.lon, h0)
            return GnssFix(
                time_ns=t_ns,
                latitude_deg=lat,
                longitude_deg=lon,
                height_m=h,
                north_mps=0.0,
                east_mps=0.0,
                down_mps=0.0,
                roll_rad=0.0,
                pitch_rad=0.0,
                yaw_rad=_wrap(truth.yaw_rad + self._err[3]),
                horizontal_std_m=_NAN,
                vertical_std_m=_NAN,
                velocity_std_mps=_NAN,
                heading_std_rad=_NAN,
                fix="none",
                satellites=0,
            )
        en, ee, ed, eh = self._err
        lat, lon, h = offset_by_ned((truth.lat, truth.lon, h0), (en, ee, ed))
        self._last_good = (lat, lon, h)
        return GnssFix(
            time_ns=t_ns,
            latitude_deg=lat,
            longitude_deg=lon,
            height_m=h,
            north_mps=truth.north_mps + self._verr[0],
            east_mps=truth.east_mps + self._verr[1],
            down_mps=self._verr[2],
            roll_rad=0.0,
            pitch_rad=0.0,
            yaw_rad=_wrap(truth.yaw_rad + eh),
            horizontal_std_m=math.sqrt(2.0) * spec.position_std_m,
            vertical_std_m=spec.height_std_m,
            velocity_std_mps=spec.velocity_std_mps,
            heading_std_rad=math.radians(spec.heading_std_deg),
            fix=spec.fix,
            satellites=spec.satellites,
        )


def _wrap(a: float) -> float:
    return math.atan2(math.sin(a), math.cos(a))
