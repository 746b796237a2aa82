"""Scenario time zero, shared by every simulated adapter of a run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final

__all__ = ["START_ENV", "Clock", "ScenarioClock"]

#: Environment variable naming a file that will hold time zero (ns): the scenario waits until it exists.
#: An operator tool (``hardpoint demo``) writes it once every module is up, so no module misses the start.
START_FILE_ENV: Final = "HARDPOINT_SIM_START_FILE"
#: Time zero while the start file does not exist yet: far in the future, so nothing has happened.
NOT_STARTED_NS: Final = 2**62
#: Environment variable with the scenario's time zero (ns since the Unix epoch) when ``start_ns`` is not given.
#: Module processes inherit it from the daemon, so adapters in different processes agree on time zero.
START_ENV: Final = "HARDPOINT_SIM_START_NS"

Clock = Callable[[], int]


class ScenarioClock:
    """Maps the adapter's clock (ns) to scenario time (s).

    Time zero is ``start_ns`` if given, else ``$HARDPOINT_SIM_START_NS``, else the content of the
    file ``$HARDPOINT_SIM_START_FILE`` once it exists (until then the scenario has not started),
    else the clock at first use.
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
        self._start_file = None if start_ns is not None else os.environ.get(START_FILE_ENV, "").strip() or None

    def now_ns(self) -> int:
        """The clock now; fixes time zero on the first call if nothing else did."""
        now = self.clock()
        if self._start_ns is None and self._start_file is None:
            self._start_ns = now
        return now

    @property
    def start_ns(self) -> int:
        """Time zero (ns); fixed on first use when not configured."""
        if self._start_ns is None:
            if self._start_file is not None:
                return self._read_start_file(self._start_file)
            self._start_ns = self.clock()
        return self._start_ns

    def _read_start_file(self, path: str) -> int:
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except FileNotFoundError:
            return NOT_STARTED_NS
        try:
            self._start_ns = int(text)
        except ValueError:  # written half-way: try again next time
            return NOT_STARTED_NS
        return self._start_ns
