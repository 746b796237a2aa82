"""The update journal: the steps of one update attempt, and what to do when the daemon died in the middle.

Every attempt is one row of the daemon's state database (``update_journal``,
see ``_store.py``). The updater writes each step *before* acting on the next,
and writes the active-version pin in the same transaction as the step that
changes it (``switched``, a rollback), so the database always says which
version is meant to run. :func:`recover` is the pure decision a restarted
daemon applies to an attempt left ``in_progress`` (``spec/update.md``,
UPD-JRN-*, UPD-REC-*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "OUTCOMES",
    "STEPS",
    "JournalEntry",
    "Outcome",
    "Recovery",
    "Step",
    "recover",
    "step_index",
]

Step = Literal[
    "requested", "downloaded", "installed", "staged", "gate_passed", "switched", "probation_passed", "committed"
]
#: The journal steps, in order.
STEPS: Final[tuple[Step, ...]] = (
    "requested",
    "downloaded",
    "installed",
    "staged",
    "gate_passed",
    "switched",
    "probation_passed",
    "committed",
)
Outcome = Literal["in_progress", "committed", "rolled_back", "refused", "interrupted"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("in_progress", "committed", "rolled_back", "refused", "interrupted")


def step_index(step: str) -> int:
    """Position of ``step`` in :data:`STEPS`. :raises ValueError: not a step."""
    try:
        return STEPS.index(step)  # type: ignore[arg-type,unused-ignore]
    except ValueError:
        raise ValueError(f"{step!r} is not an update step (one of {', '.join(STEPS)})") from None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One update attempt, as stored."""

    id: int
    module: str
    #: Version active when the attempt started; "" for a first install.
    from_version: str
    to_version: str
    #: The last step written.
    step: str
    outcome: str
    cause: str = ""
    role: str = ""
    reason: str = ""
    started_ns: int = 0
    finished_ns: int = 0
    switch_gap_ms: float = -1.0
    #: TUF target path of the wheel ("" for an operator rollback to an installed version).
    target: str = ""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a restarted daemon does with an interrupted attempt."""

    #: Version to pin as active; "" means no version of the module is active (an interrupted first install).
    pin: str
    #: Outcome to record.
    outcome: Outcome
    #: Cause to record.
    cause: str
    #: Reason to record (names the module, the step and the version kept).
    reason: str


def recover(entry: JournalEntry) -> Recovery | None:
    """The recovery rule (UPD-REC-1): an unfinished attempt always returns to the version it started from.

    - outcome not ``in_progress``: nothing to do (None);
    - step before ``switched``: the old version never stopped being the active one; it stays (or is
      started again), the new version's process died with the daemon;
    - step ``switched`` or ``probation_passed``: the new version had not been committed, so the attempt
      is rolled back the same way: the old version is pinned and started, the new one is not run;
    - step ``committed`` with outcome ``in_progress`` cannot be written (the step and the outcome are
      one write), but is treated as committed: the new version stays.

    A first install (``from_version == ""``) returns to no active version: the module is left
    not started until the update is applied again.
    """
    if entry.outcome != "in_progress":
        return None
    if entry.step == "committed":
        return Recovery(entry.to_version, "committed", "", f"module {entry.module!r} {entry.to_version} committed")
    kept = entry.from_version
    what = f"version {kept}" if kept else "no version (first install not completed)"
    reason = (
        f"update of module {entry.module!r} from {entry.from_version or 'nothing'} to {entry.to_version} "
        f"interrupted at step {entry.step!r} (the daemon stopped); returned to {what}"
    )
    return Recovery(kept, "interrupted", "interrupted", reason)
