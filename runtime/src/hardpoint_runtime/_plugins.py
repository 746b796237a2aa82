"""Finding modules and hardware adapters: entry points, from the environment or the module store.

Modules are distributions with an entry point in the group ``hardpoint.modules``;
adapters in ``hardpoint.adapters``. The module store keeps each installed
version in its own directory (``<state_dir>/modules/<name>/<version>/lib``),
so two versions can sit side by side; a search path selects which are seen.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["ModuleDistribution", "find_modules", "load_adapter", "pick_version"]

MODULE_GROUP = "hardpoint.modules"
ADAPTER_GROUP = "hardpoint.adapters"


@dataclass(frozen=True, slots=True)
class ModuleDistribution:
    """An installed module: its entry point and where it was found."""

    name: str  #: entry-point name = module name
    version: str  #: distribution version
    distribution: str
    entry_point: str  #: ``module:attr``
    path: str  #: sys.path entry to add (empty for the environment)


def _entry_points(paths: Iterable[str]) -> list[tuple[md.EntryPoint, md.Distribution, str]]:
    found: list[tuple[md.EntryPoint, md.Distribution, str]] = []
    for path in paths:
        dists = md.distributions(path=[path]) if path else md.distributions()
        for dist in dists:
            for ep in dist.entry_points:
                if ep.group == MODULE_GROUP:
                    found.append((ep, dist, path))
    return found


def store_paths(store: Path) -> list[str]:
    """Every ``lib`` directory in the module store, oldest version first.

    Hidden directories (an install in progress, ``.partial-*``) are never selected.
    """
    if not store.is_dir():
        return []
    return sorted(
        str(p) for p in store.glob("*/*/lib") if p.is_dir() and not any(part.startswith(".") for part in p.parts[-3:])
    )


def find_modules(extra_paths: Iterable[str] = ()) -> dict[str, list[ModuleDistribution]]:
    """Installed modules by name, from the environment and ``extra_paths``; each list newest first."""
    out: dict[str, list[ModuleDistribution]] = {}
    seen: set[tuple[str, str, str]] = set()
    for ep, dist, path in _entry_points(["", *extra_paths]):
        # An editable install is seen twice (its dist-info and its src/*.egg-info): list it once.
        key = (ep.name, dist.version, path)
        if key in seen:
            continue
        seen.add(key)
        out.setdefault(ep.name, []).append(
            ModuleDistribution(ep.name, dist.version, dist.metadata["Name"], ep.value, path)
        )
    for versions in out.values():
        versions.sort(key=lambda d: _version_key(d.version), reverse=True)
    return out


def _version_key(version: str) -> Version:
    try:
        return Version(version)
    except InvalidVersion:
        return Version("0")


def pick_version(
    name: str, constraint: str, installed: Mapping[str, list[ModuleDistribution]], *, pinned: str | None = None
) -> tuple[ModuleDistribution | None, str]:
    """The version of ``name`` to run, or ``None`` and why not.

    The pinned (active) version when it is installed and satisfies ``constraint``; else the newest
    installed version that satisfies it. ``pinned == ""`` (an interrupted first install) picks none.
    """
    try:
        spec = SpecifierSet(constraint)
    except InvalidSpecifier:
        return None, f"version constraint {constraint!r} is not a PEP 440 specifier"
    candidates = installed.get(name, [])
    if pinned == "":
        return None, f"module {name!r} has no active version: its first install was not completed (apply it again)"
    if pinned is not None:
        for dist in candidates:
            if _version_key(dist.version) == _version_key(pinned) and _version_key(dist.version) in spec:
                return dist, ""
    for dist in candidates:
        if _version_key(dist.version) in spec:
            return dist, ""
    if not candidates:
        return None, f"no installed module is named {name!r} (entry point group {MODULE_GROUP})"
    have = ", ".join(d.version for d in candidates)
    return None, f"no installed version of {name!r} satisfies {constraint!r}; installed: {have}"


def load_adapter(driver: str, config: Mapping[str, Any]) -> Any:
    """Instantiate the adapter registered as ``driver`` in ``hardpoint.adapters`` with ``config``.

    :raises LookupError: no adapter of that name is installed.
    """
    for ep in md.entry_points(group=ADAPTER_GROUP):
        if ep.name == driver:
            factory = ep.load()
            return factory(**dict(config))
    raise LookupError(f"no adapter driver {driver!r} is installed (entry point group {ADAPTER_GROUP})")
