"""The whole-platform pre-check: would this release leave any module's requirement unmet?

Pure: the signed manifest of the candidate release (from the target's custom
metadata, so nothing is downloaded yet) replaces the module's current manifest
among the platform's candidates, and the pure resolver runs on both. The
release is refused when a module that starts today would be blocked with it,
when the module itself could not start with its new requirements (an update;
a first install is allowed, as configuration would be), or when the platform
would become invalid (an unknown interface, a second writer of a single-writer
interface). See ``spec/update.md`` (UPD-PRE-*).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hardpoint_runtime._resolve import Candidate, InterfaceInfo, resolve
from hardpoint_runtime.update._errors import UpdateError

if TYPE_CHECKING:
    from hardpoint import Manifest

__all__ = ["Breakage", "UnmetRequirementError", "breakages", "precheck"]


@dataclass(frozen=True, slots=True)
class Breakage:
    """One module the candidate release would break, and how."""

    module: str
    #: The interface it would miss ("" for a platform-level error).
    interface: str
    reason: str

    def __str__(self) -> str:
        if not self.interface:
            return self.reason
        return f"module {self.module!r} would lose {self.interface}: {self.reason}"


class UnmetRequirementError(UpdateError):
    """The release would leave a module's requirement unmet (or make the platform invalid): refused."""

    cause = "platform check failed"

    def __init__(
        self,
        breaks: Sequence[Breakage],
        *,
        module: str,
        version: str,
        target: str | None = None,
        role: str | None = None,
    ) -> None:
        detail = f"installing module {module!r} {version} would break the platform: " + "; ".join(
            str(b) for b in breaks
        )
        super().__init__(detail, target=target, role=role)
        self.breakages = tuple(breaks)
        self.module = module
        self.version = version


def breakages(
    module: str,
    candidate: Manifest,
    current: Sequence[Candidate],
    interfaces: Mapping[str, InterfaceInfo],
) -> list[Breakage]:
    """What installing ``candidate`` as ``module`` would break (empty: nothing)."""
    before = resolve(current, interfaces)
    first_install = not any(c.name == module and c.manifest is not None for c in current)
    after_entries = [replace(c, manifest=candidate, reason_missing="") if c.name == module else c for c in current]
    if not any(c.name == module for c in current):
        after_entries.append(Candidate(name=module, node="", manifest=candidate))
    after = resolve(after_entries, interfaces)
    found: list[Breakage] = [Breakage(module, "", e) for e in after.errors if e not in before.errors]
    started_before = set(before.start_order)
    for name, unmets in sorted(after.blocked.items()):
        if name == module and first_install:
            continue
        if name != module and name not in started_before:
            continue  # it did not start before either: not this release's doing
        for unmet in unmets:
            found.append(Breakage(name, unmet.interface, unmet.reason))
    return found


def precheck(
    module: str,
    candidate: Manifest,
    current: Sequence[Candidate],
    interfaces: Mapping[str, InterfaceInfo],
    *,
    target: str | None = None,
    role: str | None = None,
) -> None:
    """Refuse ``candidate`` when :func:`breakages` finds anything.

    :raises UnmetRequirementError: naming each module that would break, the interface and the candidate.
    """
    found = breakages(module, candidate, current, interfaces)
    if found:
        raise UnmetRequirementError(found, module=module, version=candidate.version, target=target, role=role)
