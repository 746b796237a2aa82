"""Scenario time zero, shared by every simulated adapter of a run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final

__all__ = ["START_ENV", "Clock", "ScenarioClock"]

#: Environment variable with the scenario's time zero (ns since the Unix epoch) when ``start_ns`` is not given.
#: Module processes inherit it from the daemon, so adapters in different processes agree on time zero.
START_ENV: Final = "HARDPOINT_SIM_START_NS"

Clock = Callable[[], int]


class ScenarioClock:
    """Maps the adapter's clock (ns) to scenario time (s).

    Time zero is ``start_ns`` if given, else ``$HARDPOINT_SIM_START_NS``, else the clock at first use.
    """

    def __init__(self, start_ns: int | None, clock: Clock | None) -> None:
        self.clock: Clock = clock if clock is not None else time.time_ns
        if start_ns is None:
            env = os.environ.get(START_ENV, "").strip()
            if env:
                try:
                    start_ns = int(env)
                except ValueError:
                    raise ValueError(
                        f"${START_ENV} must be an integer (ns since the Unix epoch), not {env!r}"
                    ) from None
        self._start_ns = start_ns

    def now_ns(self) -> int:
        """The clock now; fixes time zero on the first call if nothing else did."""
        now = self.clock()
        if self._start_ns is None:
            self._start_ns = now
        return now

    @property
    def start_ns(self) -> int:
        """Time zero (ns); fixed on first use when not configured."""
        if self._start_ns is None:
            self._start_ns = self.clock()
        return self._start_ns
