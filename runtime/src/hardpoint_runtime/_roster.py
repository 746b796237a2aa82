"""The platform's roster: which participants may write as which module (RT-BUS-ID-004).

Built from the daemon's records (the processes it started) or from what its
management API reports (a tool such as ``hardpoint demo``), by one pure
function, so both judge the bus the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hardpoint import Roster

__all__ = ["HEALTH_INTERFACE", "RosterEntry", "platform_roster"]

#: Every module's heartbeat: the SDK publishes it for each module, whatever its manifest provides.
HEALTH_INTERFACE = "hardpoint.core.v1.ModuleHealth"


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One module of the platform as the roster needs it."""

    name: str
    #: True when it runs on the node whose daemon knows its processes.
    local: bool
    #: GUIDs of the DDS participants of its live processes (none: it is not running).
    participants: tuple[str, ...]
    provides: tuple[str, ...]


def platform_roster(entries: Iterable[RosterEntry], *, daemon: tuple[str, str] | None = None) -> Roster:
    """The roster of a platform: local modules by their participants, remote ones by first live writer.

    :param daemon: the daemon's own source name and participant, when it writes on the bus.
    """
    modules: dict[str, list[str] | None] = {}
    provided: dict[str, list[str]] = {}
    for e in entries:
        modules[e.name] = sorted(set(e.participants) - {""}) if e.local else None
        for interface in (*e.provides, HEALTH_INTERFACE):
            provided.setdefault(interface, []).append(e.name)
    if daemon is not None:
        name, participant = daemon
        modules[name] = [participant]
    return Roster(modules, provided)
