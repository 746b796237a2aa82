"""Running a call on a transport's dispatch thread from another thread, and waiting for it.

Lifecycle hooks must never run concurrently with the module's callbacks and
timers (SDK-LC-005), so the worker and the in-process host both hand
transitions to the dispatch thread this way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["on_dispatch"]


def on_dispatch(transport: Any, fn: Callable[[], Any], *, timeout_s: float | None = None) -> Any:
    """Run ``fn`` on ``transport``'s dispatch thread and return its result (or raise its error).

    :raises TimeoutError: it did not finish within ``timeout_s`` (the dispatch thread is stuck).
    """
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e
        finally:
            done.set()

    transport.call_later(0.0, run)
    if not done.wait(timeout_s):
        raise TimeoutError(f"the dispatch thread did not run the call within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")
