"""A short history of the platform's navigation states, to geo-reference measurements made in the past."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["NavHistory", "NavSample"]


@dataclass(frozen=True, slots=True)
class NavSample:
    """One usable ``NavState``, flattened; accuracies are 0 when the state carries none."""

    time_ns: int
    lat_deg: float
    lon_deg: float
    height_m: float
    vn: float
    ve: float
    vd: float
    yaw_rad: float
    horizontal_std_m: float  #: radial (as NavAccuracy): per-axis variance is half its square
    vertical_std_m: float
    velocity_std_mps: float
    heading_std_rad: float

    @classmethod
    def from_nav_state(cls, msg: Any, time_ns: int) -> NavSample:
        """From a ``hardpoint.nav.v1.NavState`` valid at ``time_ns``."""
        acc = msg.accuracy

        def finite(x: float) -> float:
            return x if math.isfinite(x) and x >= 0 else 0.0

        return cls(
            time_ns=time_ns,
            lat_deg=msg.position.latitude_deg,
            lon_deg=msg.position.longitude_deg,
            height_m=msg.position.height_hae_m,
            vn=msg.velocity.north_mps,
            ve=msg.velocity.east_mps,
            vd=msg.velocity.down_mps,
            yaw_rad=msg.attitude.yaw_rad,
            horizontal_std_m=finite(acc.horizontal_position_std_m),
            vertical_std_m=finite(acc.vertical_position_std_m),
            velocity_std_mps=finite(acc.velocity_std_mps),
            heading_std_rad=finite(acc.heading_std_rad),
        )


class NavHistory:
    """Navigation samples of the last ``span_s`` seconds (by time of validity), in time order."""

    def __init__(self, span_s: float) -> None:
        self.span_ns = round(span_s * 1e9)
        self._times: list[int] = []
        self._samples: list[NavSample] = []

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: NavSample) -> None:
        """Keep ``sample`` (a repeated time of validity replaces the older sample)."""
        i = bisect.bisect_left(self._times, sample.time_ns)
        if i < len(self._times) and self._times[i] == sample.time_ns:
            self._samples[i] = sample
        else:
            self._times.insert(i, sample.time_ns)
            self._samples.insert(i, sample)
        cut = bisect.bisect_left(self._times, self._times[-1] - self.span_ns)
        if cut:
            del self._times[:cut]
            del self._samples[:cut]

    def clear(self) -> None:
        self._times.clear()
        self._samples.clear()

    def latest(self) -> NavSample | None:
        return self._samples[-1] if self._samples else None

    def nearest(self, time_ns: int, max_gap_s: float) -> NavSample | None:
        """The sample closest in time to ``time_ns``, if it is at most ``max_gap_s`` away."""
        if not self._samples:
            return None
        i = bisect.bisect_left(self._times, time_ns)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._times)]
        best = min(candidates, key=lambda j: abs(self._times[j] - time_ns))
        if abs(self._times[best] - time_ns) > max_gap_s * 1e9:
            return None
        return self._samples[best]
