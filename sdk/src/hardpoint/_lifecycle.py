"""Managed-module lifecycle: states, transitions, and the pure rules between them.

The states and transitions follow ROS 2 managed nodes (and FACE LCM)::

    UNCONFIGURED --configure--> INACTIVE --activate--> ACTIVE
         ^  <------cleanup-------  |  <----deactivate----  |
         |                         |                       |
         +----------shutdown (from any of the three)-------+--> FINALIZED

A hook that returns ``False`` refuses its transition and the state does not
change. A hook that raises sends the module to ERROR_PROCESSING: its
``on_error`` hook decides between UNCONFIGURED (recovered, the default) and
FINALIZED (it returns ``False`` or raises).
"""

from __future__ import annotations

import enum
from typing import Final

from hardpoint._errors import LifecycleError

__all__ = ["State", "Transition", "next_state", "path_to"]


class State(enum.Enum):
    """Primary lifecycle states (plus ERROR_PROCESSING while ``on_error`` runs)."""

    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"
    ERROR_PROCESSING = "error_processing"


class Transition(enum.Enum):
    """Transitions an operator or the daemon can ask for."""

    CONFIGURE = "configure"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    CLEANUP = "cleanup"
    SHUTDOWN = "shutdown"


_TABLE: Final[dict[tuple[State, Transition], State]] = {
    (State.UNCONFIGURED, Transition.CONFIGURE): State.INACTIVE,
    (State.INACTIVE, Transition.ACTIVATE): State.ACTIVE,
    (State.ACTIVE, Transition.DEACTIVATE): State.INACTIVE,
    (State.INACTIVE, Transition.CLEANUP): State.UNCONFIGURED,
    (State.UNCONFIGURED, Transition.SHUTDOWN): State.FINALIZED,
    (State.INACTIVE, Transition.SHUTDOWN): State.FINALIZED,
    (State.ACTIVE, Transition.SHUTDOWN): State.FINALIZED,
}

#: Hook called for each transition.
HOOK_OF: Final = {
    Transition.CONFIGURE: "on_configure",
    Transition.ACTIVATE: "on_activate",
    Transition.DEACTIVATE: "on_deactivate",
    Transition.CLEANUP: "on_cleanup",
    Transition.SHUTDOWN: "on_shutdown",
}


def next_state(state: State, transition: Transition, *, module: str = "") -> State:
    """The state ``transition`` leads to from ``state``.

    :raises LifecycleError: the transition is not allowed in ``state``.
    """
    target = _TABLE.get((state, transition))
    if target is None:
        allowed = sorted(t.value for (s, t) in _TABLE if s is state)
        raise LifecycleError(
            f"module {module!r}: cannot {transition.value} in state {state.value} "
            f"(allowed: {', '.join(allowed) or 'none'})",
            module=module,
            state=state.value,
            transition=transition.value,
        )
    return target


_FORWARD: Final = {
    State.UNCONFIGURED: 0,
    State.INACTIVE: 1,
    State.ACTIVE: 2,
}


def path_to(state: State, target: State) -> list[Transition]:
    """Transitions that drive a module from ``state`` to ``target``.

    Used to bring a restarted module back to where it was. FINALIZED is reached
    by one shutdown; nothing leaves FINALIZED or ERROR_PROCESSING.

    :raises LifecycleError: ``target`` cannot be reached from ``state``.
    """
    if state is target:
        return []
    if target is State.FINALIZED and state in _FORWARD:
        return [Transition.SHUTDOWN]
    if state not in _FORWARD or target not in _FORWARD:
        raise LifecycleError(
            f"no path from {state.value} to {target.value}", state=state.value, transition=target.value
        )
    here, there = _FORWARD[state], _FORWARD[target]
    up = [Transition.CONFIGURE, Transition.ACTIVATE]
    down = [Transition.CLEANUP, Transition.DEACTIVATE]
    if there > here:
        return up[here:there]
    return list(reversed(down[there:here]))
