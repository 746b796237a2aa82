"""The module contract: lifecycle hooks a capability module implements.

A module is a plain class whose instances carry a :class:`hardpoint.Manifest`
as ``manifest`` and implement any of these hooks, marked with
:data:`hookimpl`. The host (the runtime daemon, or :class:`hardpoint.ModuleHost`
in tests) calls them one at a time, never concurrently with the module's
callbacks and timers. Hooks that are not implemented succeed.

Return ``False`` from a transition hook to refuse the transition (the state
stays as it was); raise to report an error (the module goes through
``on_error``). See :mod:`hardpoint._lifecycle` for the state machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from hardpoint._host import ModuleContext

__all__ = ["hookimpl", "hookspec"]

#: Marks a hook specification (used only here).
hookspec = pluggy.HookspecMarker("hardpoint")
#: Marks a module's hook implementation.
hookimpl = pluggy.HookimplMarker("hardpoint")

# -- transitions between primary states -------------------------------------


@hookspec(firstresult=True)
def on_configure(ctx: ModuleContext) -> bool | None:
    """UNCONFIGURED -> INACTIVE. Read ``ctx.config``, make publishers and
    subscriptions, open adapters. Must not publish."""


@hookspec(firstresult=True)
def on_activate(ctx: ModuleContext) -> bool | None:
    """INACTIVE -> ACTIVE. Start work: from here on publishing is allowed and
    timers made with ``ctx.every`` fire."""


@hookspec(firstresult=True)
def on_deactivate(ctx: ModuleContext) -> bool | None:
    """ACTIVE -> INACTIVE. Stop work; the module may still publish a last
    sample during this hook, not after it."""


@hookspec(firstresult=True)
def on_cleanup(ctx: ModuleContext) -> bool | None:
    """INACTIVE -> UNCONFIGURED. Release what ``on_configure`` made."""


@hookspec(firstresult=True)
def on_shutdown(ctx: ModuleContext) -> bool | None:
    """Any primary state -> FINALIZED. Release everything; the module will
    not be called again. A refusal is recorded but the module is finalized."""


# -- error processing -----------------------------------------------------------


@hookspec(firstresult=True)
def on_error(ctx: ModuleContext, error: BaseException) -> bool | None:
    """A hook raised ``error``. Clean up and return ``True`` (or nothing) to go
    to UNCONFIGURED, ``False`` to go to FINALIZED."""
