"""Hosting one module: its bus, its context, and its lifecycle.

:class:`ModuleHost` is what the runtime daemon runs inside each module
process, and what a module author uses in unit tests with the in-memory
transport. It registers the module with pluggy against
:mod:`hardpoint.hookspecs`, drives transitions by the pure rules of
:mod:`hardpoint._lifecycle`, and gates publishing and timers on the state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import pluggy

from hardpoint import hookspecs
from hardpoint._bus import Bus
from hardpoint._errors import LifecycleError, ManifestError, ModuleError
from hardpoint._lifecycle import HOOK_OF, State, Transition, next_state
from hardpoint._manifest import Manifest
from hardpoint._transport import Timer, Transport

__all__ = ["ModuleContext", "ModuleHost"]

_STATUS_NAMES: Final = frozenset({"ok", "degraded", "failed"})


class ModuleContext:
    """What a module's hooks get: its bus, configuration, adapters, timers and log."""

    def __init__(self, host: ModuleHost, config: Mapping[str, Any], adapters: Mapping[str, Any]) -> None:
        self._host = host
        #: The module's manifest.
        self.manifest: Manifest = host.manifest
        #: Module name.
        self.name: str = host.manifest.name
        #: The module's bus: publish what it provides, subscribe to what it requires.
        self.bus: Bus = host.bus
        #: The module's configuration from the platform configuration.
        self.config: Mapping[str, Any] = config
        #: Hardware adapters bound by the platform, by abstract name.
        self.adapters: Mapping[str, Any] = adapters
        #: Logger named ``hardpoint.module.<name>``.
        self.log = logging.getLogger(f"hardpoint.module.{self.name}")

    def every(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` every ``period_s`` seconds while the module is active."""
        return self._host._timer(period_s, callback)

    def now_ns(self) -> int:
        """Current time of the bus clock (the manual clock under the in-memory transport)."""
        return self._host.transport.now_ns()

    def set_health(self, status: str, reason: str = "") -> None:
        """Report the module's own judgement: ``"ok"``, ``"degraded"`` or ``"failed"``, with a reason.

        The heartbeat carries it from the next beat on (at once when it changes).
        """
        if status not in _STATUS_NAMES:
            raise ValueError(f"health status must be one of {sorted(_STATUS_NAMES)}, not {status!r}")
        changed = (status, reason) != (self._host.health_status, self._host.health_reason)
        self._host.health_status, self._host.health_reason = status, reason
        if changed:
            self._host.beat()


class ModuleHost:
    """Runs one module on a transport and drives its lifecycle.

    :param module: an object with a ``manifest`` and hook implementations.
    :param transport: the bus to put the module on.
    :param config: the module's configuration.
    :param adapters: hardware adapters by abstract name.
    :param node: name of the compute node, carried in the heartbeat.
    :param health_period_s: heartbeat period (``hardpoint.core.v1.ModuleHealth``); ``None`` for none.
    :param write_prefix: run *staged*: every sample the module publishes, its
        heartbeat included, goes to ``write_prefix`` + the contract topic
        (:data:`hardpoint.STAGED_PREFIX`), while it reads the normal topics;
        :meth:`promote` moves it onto the normal topics.
    :raises ManifestError: ``module.manifest`` is missing or invalid.
    :raises ModuleError: a hook implementation does not match its specification.
    :raises ValueError: ``write_prefix`` is not a valid topic prefix.
    """

    def __init__(
        self,
        module: object,
        transport: Transport,
        *,
        config: Mapping[str, Any] | None = None,
        adapters: Mapping[str, Any] | None = None,
        node: str = "",
        health_period_s: float | None = 1.0,
        write_prefix: str = "",
    ) -> None:
        self.module = module
        self.transport = transport
        self.manifest = _manifest_of(module)
        self.bus = Bus(
            transport,
            module=self.manifest.name,
            provides=self.manifest.provides,
            requires=self.manifest.requires,
            uses=self.manifest.uses,
            write_prefix=write_prefix,
        )
        self.bus.active = False
        self._pm = pluggy.PluginManager("hardpoint")
        self._pm.add_hookspecs(hookspecs)
        try:
            self._pm.register(module, name=self.manifest.name)
            # A @hookimpl whose name is no hook (on_activte) would otherwise never be called (SDK-LC-008).
            self._pm.check_pending()
        except pluggy.PluginValidationError as e:
            raise ModuleError(_hook_error(self.manifest.name, module, e), module=self.manifest.name) from e
        self._timers: list[Timer] = []
        self.state = State.UNCONFIGURED
        #: The last error a hook raised, if any.
        self.last_error: BaseException | None = None
        self.ctx = ModuleContext(self, config or {}, adapters or {})
        self.node = node
        self.health_status = "ok"
        self.health_reason = ""
        self._started = time.monotonic()
        self._health_bus: Bus | None = None
        self._lost: set[str] = set()
        self._watch_reason = ""
        if health_period_s is not None:
            # The heartbeat is the SDK's, not the module's: it needs no manifest entry.
            self._health_bus = Bus(transport, module=self.manifest.name, write_prefix=write_prefix)
            transport.call_later(0.0, self.beat, period_s=health_period_s)
            transport.call_later(0.1, self._watch_providers, period_s=0.1)

    def _watch_providers(self) -> None:
        """Degrade health while a continuous required interface has gone silent past its deadline (provider lost).

        Only continuous interfaces count: on the others (tracks, alerts, commands) silence may
        just mean there is nothing to report.
        """
        if self.state is not State.ACTIVE:
            return
        silent = {
            sub.spec.name: (sub.silent_for(), sub.spec.deadline_ms)
            for sub in self.bus.subscriptions
            if sub.spec.continuous
        }
        lost = {name: s for name, (s, deadline) in silent.items() if deadline and s * 1000 > deadline}
        if set(lost) == self._lost:
            return
        self._lost = set(lost)
        if lost:
            self._watch_reason = "; ".join(
                f"{name}: nothing received for {s * 1000:.0f} ms (deadline {silent[name][1]} ms): provider lost"
                for name, s in sorted(lost.items())
            )
            self.ctx.set_health("degraded", self._watch_reason)
        elif self.health_reason == self._watch_reason:
            # Only undo what this watch said; a module's own judgement stays.
            self.ctx.set_health("ok")

    def beat(self) -> None:
        """Publish one heartbeat now (the timer does it every period and on every change)."""
        if self._health_bus is None:
            return
        from hardpoint._health import health_message

        self._health_bus.publish(health_message(self))

    # -- staged publishing --------------------------------------------------------

    @property
    def staged(self) -> bool:
        """True while the module's writers are on a prefixed topic (see ``write_prefix``)."""
        return self.bus.write_prefix != ""

    def promote(self) -> None:
        """Move every writer of the module, heartbeat included, to the normal topics (SDK-BUS-STAGED-004).

        Nothing the module publishes is lost or sent twice; a heartbeat goes out
        on the normal topic at once. Does nothing when the module is not staged.
        Call it on the dispatch thread (as the runtime does) so that no module
        callback runs in the middle of the move.

        :raises TransportError: a writer could not be moved (see :meth:`Bus.retarget_writers`).
        """
        if not self.staged and (self._health_bus is None or self._health_bus.write_prefix == ""):
            return
        self.bus.retarget_writers("")
        if self._health_bus is not None:
            self._health_bus.retarget_writers("")
        self.beat()

    @staticmethod
    def manifest_of(module: object) -> Manifest:
        """The validated manifest of a module object.

        :raises ManifestError: it has none, or it is invalid.
        """
        return _manifest_of(module)

    # -- transitions ------------------------------------------------------------

    def configure(self) -> State:
        return self.trigger(Transition.CONFIGURE)

    def activate(self) -> State:
        return self.trigger(Transition.ACTIVATE)

    def deactivate(self) -> State:
        return self.trigger(Transition.DEACTIVATE)

    def cleanup(self) -> State:
        return self.trigger(Transition.CLEANUP)

    def shutdown(self) -> State:
        return self.trigger(Transition.SHUTDOWN)

    def trigger(self, transition: Transition) -> State:
        """Run ``transition``'s hook and move to the resulting state.

        :returns: the new state (unchanged when the hook refused).
        :raises LifecycleError: the transition is not allowed in the current state.
        """
        target = next_state(self.state, transition, module=self.manifest.name)
        if transition is Transition.ACTIVATE:
            self.bus.active = True
        hook = getattr(self._pm.hook, HOOK_OF[transition])
        try:
            result = hook(ctx=self.ctx)
        except Exception as e:
            self.bus.active = False
            self._stop_timers()
            return self._error(e)
        refused = result is False and transition is not Transition.SHUTDOWN
        if refused:
            self.bus.active = self.state is State.ACTIVE
            return self.state
        self._enter(target)
        return self.state

    def _enter(self, state: State) -> None:
        self.state = state
        self.bus.active = state is State.ACTIVE
        if state in (State.UNCONFIGURED, State.FINALIZED):
            self._stop_timers()
        self.beat()
        if state is State.FINALIZED:
            self.bus.close()
            if self._health_bus is not None:
                self._health_bus.close()
                self._health_bus = None

    def _error(self, error: Exception) -> State:
        self.last_error = error
        self.state = State.ERROR_PROCESSING
        self.health_status, self.health_reason = "failed", f"{type(error).__name__}: {error}"
        self.beat()
        try:
            recovered = self._pm.hook.on_error(ctx=self.ctx, error=error)
        except Exception as e:
            self.ctx.log.exception("on_error raised while handling %r", error)
            self.last_error = e
            recovered = False
        self._enter(State.FINALIZED if recovered is False else State.UNCONFIGURED)
        return self.state

    # -- timers -------------------------------------------------------------------

    def _timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        if self.state is State.FINALIZED:
            raise LifecycleError(
                f"module {self.manifest.name!r} is finalized", module=self.manifest.name, state="finalized"
            )

        def tick() -> None:
            if self.state is State.ACTIVE:
                try:
                    callback()
                except Exception as e:
                    self.bus._report_callback_error("timer", e)

        timer = self.transport.call_later(period_s, tick, period_s=period_s)
        self._timers.append(timer)
        return timer

    def _stop_timers(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()


def _manifest_of(module: object) -> Manifest:
    raw = getattr(module, "manifest", None)
    where = f"module object {type(module).__qualname__}"
    if isinstance(raw, Manifest):
        return raw
    if isinstance(raw, Mapping):
        return Manifest.load(raw, origin=where)
    raise ManifestError(f"{where} has no 'manifest' (a hardpoint.Manifest)")


def _hook_error(name: str, module: object, error: Exception) -> str:
    """The refusal of a module's hooks, naming the module, the hook and, for a misspelling, the hook meant."""
    import difflib

    hooks = sorted(n for n in dir(hookspecs) if n.startswith("on_"))
    unknown = [n for n in dir(module) if _is_hookimpl(getattr(module, n, None)) and n not in hooks]
    if not unknown:
        return f"module {name!r}: {error}"
    hints = []
    for n in unknown:
        close = difflib.get_close_matches(n, hooks, n=1)
        hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"module {name!r}: @hookimpl on {', '.join(hints)}, which is no hook; the hooks are {', '.join(hooks)}"


def _is_hookimpl(fn: object) -> bool:
    return hasattr(fn, "hardpoint_impl")
