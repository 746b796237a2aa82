"""Restart policy: exponential back-off and bounded restart intensity (pure).

Like an Erlang/OTP supervisor: more than ``intensity`` restarts within
``period_s`` seconds means the module is failed and is not restarted again;
the rest of the platform keeps running. Between restarts the delay doubles
from ``backoff_initial_s`` up to ``backoff_max_s``, and falls back to the
initial delay once the module has run for a whole period without a crash.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["RestartDecision", "RestartPolicy"]


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """What to do after a module died: restart after ``delay_s``, or give up."""

    restart: bool
    delay_s: float
    reason: str


@dataclass(slots=True)
class RestartPolicy:
    """Restart bookkeeping of one module; ``now`` is any monotonic clock in seconds."""

    intensity: int = 5
    period_s: float = 30.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    _crashes: deque[float] = field(default_factory=deque)
    _next_delay: float = -1.0
    _last_crash: float = float("-inf")

    def on_exit(self, now: float, cause: str) -> RestartDecision:
        """Record a death at ``now`` (``cause`` names it) and decide."""
        while self._crashes and now - self._crashes[0] > self.period_s:
            self._crashes.popleft()
        if now - self._last_crash > self.period_s:
            self._next_delay = self.backoff_initial_s
        self._last_crash = now
        self._crashes.append(now)
        restarts = len(self._crashes)
        if restarts > self.intensity:
            return RestartDecision(
                False,
                0.0,
                f"{cause}; {restarts} deaths within {self.period_s:g} s exceed the restart intensity "
                f"of {self.intensity}: module marked failed",
            )
        delay = self._next_delay
        self._next_delay = min(self.backoff_max_s, delay * 2)
        return RestartDecision(True, delay, f"{cause}; restart {restarts} of {self.intensity} in {delay:.2f} s")

    def reset(self) -> None:
        """Forget the history (an operator restarted a failed module on purpose)."""
        self._crashes.clear()
        self._next_delay = self.backoff_initial_s
        self._last_crash = float("-inf")
