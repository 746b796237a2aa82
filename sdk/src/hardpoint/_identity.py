"""Who wrote a sample: every claimed source bound to the writer that carries it (SDK-BUS-ID-*).

A frame's header *claims* a source (a module name); the transport *knows*
which writer sent it (``Frame.writer``, the DDS publication handle, and
through it the writer's GUID and its participant's). :class:`SourceBinding`
decides, per topic, whether a writer may speak for the source it claims:

- With a **roster** entry for the source (the participants the local daemon
  started for that module, pushed to every module it supervises), a writer is
  admitted when its participant is listed, and refused otherwise.
- A roster also says which interfaces the platform's modules provide: on
  those, a source that is no module of the platform is refused (a stranger
  cannot add tracks or alerts under a name of its own choosing).
- Otherwise (a module of another node, a tool, an interface no module
  provides such as an operator's tasking), the first live writer to claim a
  source owns it (trust on first use). Another writer claiming it while the
  owner is alive is an impersonator; once the owner is gone from discovery (a
  restarted module, a closed publisher), the next claimant takes it over.

Refused writers are remembered as :class:`Intruder` records (bounded), which
name the offending writer and the one it tried to speak for. The decisions are
pure apart from the two lookups handed in, so they are tested without a bus.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Final

from hardpoint._transport import WriterIdentity

__all__ = ["MAX_INTRUDERS", "NOBODY", "Intruder", "Roster", "SourceBinding"]

#: Refused writers remembered per topic; past this, refusals are only counted (``Intruder`` "others").
MAX_INTRUDERS: Final = 64
#: Writer identities cached per topic (a handle's identity never changes); the cache is cleared past this.
_MAX_IDENTITIES: Final = 4096

#: What a roster allows a source that is no module of the platform, on an interface its modules provide.
NOBODY: Final = frozenset[str]()


class Roster:
    """Who may write as which module: the local daemon's word (SDK-BUS-ID-004). Immutable, so shared across threads.

    :param modules: module name -> GUIDs of the participants allowed to write as it; ``None`` for a
        module of another node, whose participants this daemon does not know (first live writer).
    :param provided: interface -> the modules that provide it on the platform. On these interfaces a
        source that is not a module of the platform is refused; other interfaces (an operator's
        commands, acknowledgements) are open to any source, first live writer.
    """

    __slots__ = ("_modules", "_provided")

    def __init__(
        self,
        modules: Mapping[str, Collection[str] | None] | None = None,
        provided: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._modules = {name: None if g is None else frozenset(g) for name, g in (modules or {}).items()}
        self._provided = frozenset(provided or ())

    def allowed(self, interface: str, source: str) -> Collection[str] | None:
        """The participants allowed to write ``source`` on ``interface``; ``None``: the first live writer."""
        if source in self._modules:
            return self._modules[source]
        return NOBODY if interface in self._provided else None

    def as_json(self) -> dict[str, object]:
        """The roster as the worker protocol carries it (``Roster.from_json`` reads it back)."""
        return {
            "modules": {n: None if g is None else sorted(g) for n, g in sorted(self._modules.items())},
            "provided": sorted(self._provided),
        }

    @classmethod
    def from_json(cls, data: object) -> Roster:
        """Read :meth:`as_json`'s form; :raises ValueError: it is not that form."""
        if not isinstance(data, dict):
            raise ValueError("a roster is an object with 'modules' and 'provided'")
        modules, provided = data.get("modules", {}), data.get("provided", [])
        if not isinstance(modules, dict) or not isinstance(provided, list):
            raise ValueError("roster 'modules' must be an object and 'provided' a list")
        for name, guids in modules.items():
            ok = guids is None or (isinstance(guids, list) and all(isinstance(g, str) for g in guids))
            if not isinstance(name, str) or not ok:
                raise ValueError(f"roster entry {name!r}: a list of participant GUIDs or null")
        if not all(isinstance(i, str) for i in provided):
            raise ValueError("roster 'provided' must list interface names")
        return cls(modules, dict.fromkeys(provided, ()))


@dataclass(slots=True)
class Intruder:
    """A writer refused for claiming a source that is not its own."""

    #: GUID of the refused writer ("" when it was gone before it could be identified).
    writer: str
    #: GUID of its participant.
    participant: str
    #: The source its samples claimed.
    claimed: str
    #: Who the source is bound to: the owning writer's GUID, or ``roster:`` and the allowed participants.
    holder: str
    #: Messages refused from it.
    count: int = 0

    def as_dict(self) -> dict[str, str | int]:
        return {
            "writer": self.writer,
            "participant": self.participant,
            "claimed": self.claimed,
            "holder": self.holder,
            "count": self.count,
        }


class SourceBinding:
    """The source-to-writer binding of one topic, as one reader sees it.

    :param identify: the reader's ``writer_identity``: a writer's identity while it lives, else ``None``.
    :param roster: the allowed participants of a source, or ``None`` when the roster does not name it.
    :param on_refuse: called with the intruder's record and the count of each refusal.
    """

    __slots__ = ("_identify", "_ids", "_on_refuse", "_owner", "_roster", "intruders", "others")

    def __init__(
        self,
        identify: Callable[[int], WriterIdentity | None],
        roster: Callable[[str], Collection[str] | None],
        on_refuse: Callable[[Intruder, int], None] | None = None,
    ) -> None:
        self._identify = identify
        self._roster = roster
        self._on_refuse = on_refuse
        #: Source -> handle of the writer that owns it (trust on first use).
        self._owner: dict[str, int] = {}
        self._ids: dict[int, WriterIdentity] = {}
        #: Refused writers by GUID.
        self.intruders: dict[str, Intruder] = {}
        #: Messages refused from writers past :data:`MAX_INTRUDERS`.
        self.others = 0

    def reset(self) -> None:
        """Forget every owner (the roster changed): each writer is judged again on its next frame."""
        self._owner.clear()

    def identity(self, writer: int) -> WriterIdentity | None:
        """The identity of ``writer``, cached once known (a handle always names the same writer)."""
        found = self._ids.get(writer)
        if found is not None:
            return found
        found = self._identify(writer)
        if found is not None:
            if len(self._ids) >= _MAX_IDENTITIES:
                self._ids.clear()
            self._ids[writer] = found
        return found

    def admit(self, writer: int, source: str, count: int) -> bool:
        """True when ``writer`` may speak for ``source``; otherwise the ``count`` messages are recorded as refused.

        A transport that cannot tell writers apart stamps ``writer`` 0: such frames are admitted unchecked.
        """
        if writer == 0 or self._owner.get(source) == writer:
            return True
        allowed = self._roster(source)
        ident = self.identity(writer)
        if allowed is not None:
            if ident is not None and ident.participant in allowed:
                self._owner[source] = writer
                return True
            holder = "roster:" + ",".join(sorted(allowed)) if allowed else "roster: no module of the platform"
            self._refuse(writer, ident, source, holder, count)
            return False
        owner = self._owner.get(source)
        owner_ident = None if owner is None else self._identify(owner)
        if owner_ident is None:  # unclaimed, or its owner is gone from discovery: a restart, a new publisher
            if ident is None and owner is not None:
                # A writer already gone cannot prove anything; it takes over nothing.
                self._refuse(writer, ident, source, "", count)
                return False
            self._owner[source] = writer
            return True
        self._refuse(writer, ident, source, owner_ident.guid, count)
        return False

    def _refuse(self, writer: int, ident: WriterIdentity | None, source: str, holder: str, count: int) -> None:
        guid = ident.guid if ident is not None else ""
        participant = ident.participant if ident is not None else ""
        record = self.intruders.get(guid)
        if record is None:
            if len(self.intruders) >= MAX_INTRUDERS:
                self.others += count
                record = Intruder(guid, participant, source, holder)  # reported, not kept
            else:
                record = self.intruders[guid] = Intruder(guid, participant, source, holder)
        record.claimed, record.holder = source, holder
        record.count += count
        if self._on_refuse is not None:
            self._on_refuse(record, count)

    def snapshot(self) -> list[Intruder]:
        """Copies of the intruder records, most refused first."""
        return sorted(
            (Intruder(r.writer, r.participant, r.claimed, r.holder, r.count) for r in self.intruders.values()),
            key=lambda r: -r.count,
        )
