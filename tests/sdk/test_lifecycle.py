"""The lifecycle rules, every state against every transition."""

from __future__ import annotations

import itertools

import pytest

from hardpoint import LifecycleError, State, Transition
from hardpoint._lifecycle import next_state, path_to

ALLOWED = {
    (State.UNCONFIGURED, Transition.CONFIGURE): State.INACTIVE,
    (State.INACTIVE, Transition.ACTIVATE): State.ACTIVE,
    (State.ACTIVE, Transition.DEACTIVATE): State.INACTIVE,
    (State.INACTIVE, Transition.CLEANUP): State.UNCONFIGURED,
    (State.UNCONFIGURED, Transition.SHUTDOWN): State.FINALIZED,
    (State.INACTIVE, Transition.SHUTDOWN): State.FINALIZED,
    (State.ACTIVE, Transition.SHUTDOWN): State.FINALIZED,
}


@pytest.mark.parametrize(("state", "transition"), list(itertools.product(State, Transition)))
def test_every_state_and_transition(state: State, transition: Transition) -> None:
    expected = ALLOWED.get((state, transition))
    if expected is None:
        with pytest.raises(LifecycleError) as info:
            next_state(state, transition, module="m")
        assert info.value.state == state.value
        assert info.value.transition == transition.value
        assert "'m'" in str(info.value)
    else:
        assert next_state(state, transition) is expected


@pytest.mark.parametrize(("start", "target"), list(itertools.product(State, State)))
def test_path_to_reaches_the_target(start: State, target: State) -> None:
    try:
        path = path_to(start, target)
    except LifecycleError:
        assert start != target
        assert start in (State.FINALIZED, State.ERROR_PROCESSING) or target is State.ERROR_PROCESSING
        return
    state = start
    for transition in path:
        state = next_state(state, transition)
    assert state is target
