"""A trusted module hosted inside the daemon's own process (``isolation = "in-process"``).

Same face as :class:`~hardpoint_runtime._process.ModuleProcess`, so the
supervisor treats both alike. The price of skipping a process: the module
shares the daemon's fate and its dispatch thread, so only light modules whose
supplier is trusted should be hosted this way. A hook that raises is handled
by the SDK's error processing; there is no process to kill, so ``kill`` shuts
the module down. It takes the same spec (``write_prefix`` for a staged start)
and the same ops (``transition``, ``status``, ``promote``) as the worker.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from collections.abc import Callable
from typing import Any

from hardpoint_runtime._dispatch import on_dispatch
from hardpoint_runtime._process import WorkerError

__all__ = ["InProcessModule"]


class InProcessModule:
    """One module on the daemon's own transport."""

    def __init__(self, name: str, spec: dict[str, Any], transport: Any) -> None:
        self.name = name
        self.spec = spec
        self.transport = transport
        self.host: Any = None
        self.manifest: dict[str, Any] = {}
        self._stopped = False

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def participant(self) -> str:
        """The daemon's own participant: an in-process module writes through the daemon's transport."""
        return str(self.transport.participant)

    def start(self, *, timeout_s: float) -> None:
        """Load the module into this process and make its host.

        :raises WorkerError: the entry point does not load or the module is invalid.
        """
        import hardpoint
        from hardpoint_runtime._worker import _load_adapters

        for path in self.spec.get("paths", []):
            if path and path not in sys.path:
                sys.path.insert(0, path)
        try:
            target = md.EntryPoint(name=self.name, value=self.spec["entry_point"], group="hardpoint.modules").load()
            module = target() if callable(target) else target
            manifest = hardpoint.ModuleHost.manifest_of(module)
            adapters = _load_adapters(self.spec, manifest.adapters)
            self.host = hardpoint.ModuleHost(
                module,
                self.transport,
                config=self.spec.get("config", {}),
                adapters=adapters,
                node=self.spec.get("node", ""),
                health_period_s=float(self.spec.get("health_period_s", 1.0)),
                write_prefix=str(self.spec.get("write_prefix", "")),
            )
        except Exception as e:
            raise WorkerError(f"module {self.name!r} does not load in-process: {type(e).__name__}: {e}") from e
        self.manifest = manifest.model_dump(mode="json")

    def _on_dispatch(self, fn: Callable[[], Any], timeout_s: float) -> Any:
        try:
            return on_dispatch(self.transport, fn, timeout_s=timeout_s)
        except TimeoutError as e:
            raise WorkerError(f"module {self.name!r} did not answer within {timeout_s:g} s") from e

    def request(self, op: str, *, timeout_s: float, **fields: Any) -> dict[str, Any]:
        """Drive a transition (or answer ``status``, ``promote``) on the dispatch thread, like the worker does."""
        from hardpoint import HardpointError, Transition
        from hardpoint_runtime._worker import promote, set_roster

        if self.host is None or self._stopped:
            raise WorkerError(f"module {self.name!r} is not running")
        if op == "status":
            return {"ok": True, "state": self.host.state.value, "staged": self.host.staged, "error": ""}
        if op == "promote":
            return promote(self.host, lambda fn: self._on_dispatch(fn, timeout_s))
        if op == "roster":
            return set_roster(self.host, fields.get("roster"), lambda fn: self._on_dispatch(fn, timeout_s))
        if op != "transition":
            return {"ok": False, "state": self.host.state.value, "error": f"unknown op {op!r}"}
        try:
            transition = Transition(fields.get("transition"))
            state = self._on_dispatch(lambda: self.host.trigger(transition), timeout_s)
        except (ValueError, HardpointError) as e:
            return {"ok": False, "state": self.host.state.value, "error": str(e)}
        error = str(self.host.last_error) if self.host.last_error is not None else ""
        return {"ok": True, "state": state.value, "error": error}

    def exit_code(self) -> int | None:
        """Never exits on its own: failures show as lifecycle errors and missed heartbeats."""
        return None

    def stop(self, *, timeout_s: float) -> None:
        from hardpoint import State

        if self.host is not None and not self._stopped:
            self._stopped = True
            if self.host.state not in (State.FINALIZED, State.ERROR_PROCESSING):
                try:
                    self._on_dispatch(self.host.shutdown, timeout_s)
                except Exception as e:  # stopping anyway; the reason goes to the log
                    print(f"hardpointd: in-process module {self.name!r} shutdown failed: {e!r}", file=sys.stderr)

    def kill(self) -> None:
        self.stop(timeout_s=5.0)
