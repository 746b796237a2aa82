"""The module process: one module, its ModuleHost on Cyclone DDS, driven by the daemon.

The daemon starts ``python -m hardpoint_runtime._worker SPEC_JSON`` and talks
to it over the worker's stdin and stdout, one JSON object per line:

- daemon -> worker: ``{"id": 1, "op": "transition", "transition": "configure"}``,
  ``{"id": 2, "op": "status"}``, ``{"id": 3, "op": "promote"}``,
  ``{"id": 4, "op": "roster", "roster": {"modules": {"nav": ["<participant guid>"], ...}, "provided": [...]}}``,
  ``{"id": 5, "op": "exit"}``;
- worker -> daemon: ``{"event": "ready", "pid": ..., "manifest": {...}, "participant": "<guid>"}`` once,
  then ``{"id": 1, "ok": true, "state": "inactive", "error": ""}`` per request;
  ``{"event": "load_failed", "error": "..."}`` before exiting with code 3.

Staged start (RT-WORKER-STAGED-001): with ``"write_prefix": "hp-staged/"`` in
the spec, the module writes every sample, heartbeat included, to
``hp-staged/`` + the contract topic and reads the normal topics; the ``ready``
event then says ``"staged": true``. ``promote`` moves every writer to the
normal topics on the dispatch thread (no sample lost or sent twice) and answers
``{"ok": true, "state": ..., "staged": false, "error": ""}``; it does nothing on
a module that is not staged. If a writer cannot be moved the answer is
``ok: false`` with the cause, and the module keeps running.

Writer identity (RT-BUS-ID-001): ``ready`` names the GUID of the worker's DDS
participant, which the daemon binds the module's heartbeats to; ``roster``
hands the module the participants allowed to write as each supervised module
(``Bus.set_roster``), so that its subscriptions refuse impersonators.

The module's own prints go to stderr, so they can never corrupt the protocol.
End of input (the daemon died) shuts the module down in order. The heartbeat
travels on the bus (``hp/core/v1/health``) like every other interface, so a
module whose dispatch thread hangs stops beating and the daemon sees it.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, Final

from hardpoint_runtime._dispatch import on_dispatch

__all__ = ["main"]

LOAD_FAILED_EXIT: Final = 3


def _protocol_stream() -> IO[str]:
    # Keep the real stdout for the protocol; point fd 1 (and sys.stdout) at stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _load_module(spec: dict[str, Any]) -> object:
    for path in reversed(spec.get("paths", [])):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    name, value = spec["module"], spec["entry_point"]
    ep = md.EntryPoint(name=name, value=value, group="hardpoint.modules")
    target = ep.load()
    return target() if isinstance(target, type) or callable(target) else target


def _load_adapters(spec: dict[str, Any], needed: tuple[str, ...]) -> dict[str, Any]:
    from hardpoint_runtime._plugins import load_adapter

    bindings: dict[str, Any] = spec.get("adapters", {})
    adapters = {}
    for name in needed:
        if name not in bindings:
            raise LookupError(f"module {spec['module']!r} needs adapter {name!r}, but the platform binds none")
        binding = bindings[name]
        adapters[name] = load_adapter(binding["driver"], binding.get("config", {}))
    return adapters


def promote(host: Any, run: Callable[[Callable[[], Any]], Any]) -> dict[str, Any]:
    """The ``promote`` op: ``host.promote()`` through ``run`` (onto the dispatch thread), as a reply."""
    from hardpoint import HardpointError

    try:
        run(host.promote)
    except HardpointError as e:
        return {"ok": False, "state": host.state.value, "staged": host.staged, "error": str(e)}
    return {"ok": True, "state": host.state.value, "staged": host.staged, "error": ""}


def set_roster(host: Any, data: object, run: Callable[[Callable[[], Any]], Any]) -> dict[str, Any]:
    """The ``roster`` op: ``host.bus.set_roster`` on the dispatch thread (where subscriptions judge writers)."""
    from hardpoint import Roster

    try:
        roster = Roster.from_json(data)
    except ValueError as e:
        return {"ok": False, "state": host.state.value, "error": f"invalid roster: {e}"}
    run(lambda: host.bus.set_roster(roster))
    return {"ok": True, "state": host.state.value, "error": ""}


class _Worker:
    def __init__(self, spec: dict[str, Any], out: IO[str]) -> None:
        import hardpoint

        self.out = out
        self.lock = threading.Lock()
        module = _load_module(spec)
        manifest = hardpoint.ModuleHost.manifest_of(module)
        adapters = _load_adapters(spec, manifest.adapters)
        self.transport = hardpoint.CycloneTransport(
            domain_id=int(spec.get("domain_id", 0)), config=spec.get("dds_config")
        )
        self.host = hardpoint.ModuleHost(
            module,
            self.transport,
            config=spec.get("config", {}),
            adapters=adapters,
            node=spec.get("node", ""),
            health_period_s=float(spec.get("health_period_s", 1.0)),
            write_prefix=str(spec.get("write_prefix", "")),
        )
        self.send(
            {
                "event": "ready",
                "pid": os.getpid(),
                "manifest": manifest.model_dump(mode="json"),
                "staged": self.host.staged,
                "participant": self.transport.participant,
            }
        )

    def send(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()

    def on_dispatch(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the transport's dispatch thread (hooks never race callbacks) and return its result."""
        return on_dispatch(self.transport, fn)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        from hardpoint import HardpointError, Transition

        op = request.get("op")
        if op == "transition":
            try:
                transition = Transition(request.get("transition"))
                state = self.on_dispatch(lambda: self.host.trigger(transition))
            except (ValueError, HardpointError) as e:
                return {"ok": False, "state": self.host.state.value, "error": str(e)}
            error = str(self.host.last_error) if self.host.last_error is not None else ""
            return {"ok": True, "state": state.value, "error": error}
        if op == "status":
            return {"ok": True, "state": self.host.state.value, "staged": self.host.staged, "error": ""}
        if op == "promote":
            return promote(self.host, self.on_dispatch)
        if op == "roster":
            return set_roster(self.host, request.get("roster"), self.on_dispatch)
        return {"ok": False, "state": self.host.state.value, "error": f"unknown op {op!r}"}

    def serve(self, requests: IO[str]) -> None:
        from hardpoint import State

        for line in requests:
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("op") == "exit":
                break
            reply = self.handle(request)
            self.send({"id": request.get("id"), **reply})
        self.stop(State)

    def stop(self, state_enum: Any) -> None:
        if self.host.state not in (state_enum.FINALIZED, state_enum.ERROR_PROCESSING):
            try:
                self.on_dispatch(self.host.shutdown)
            except Exception as e:  # shutting down anyway
                print(f"hardpoint worker: shutdown hook failed: {e!r}", file=sys.stderr)
        self.transport.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of a module process; ``argv[0]`` is the JSON spec from the daemon."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    out = _protocol_stream()
    signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
    try:
        worker = _Worker(spec, out)
    except Exception as e:
        out.write(json.dumps({"event": "load_failed", "error": f"{type(e).__name__}: {e}"}) + "\n")
        out.flush()
        return LOAD_FAILED_EXIT
    try:
        worker.serve(sys.stdin)
    except ValueError:  # stdin closed by SIGTERM
        worker.stop(__import__("hardpoint").State)
    return 0


if __name__ == "__main__":
    sys.exit(main())
