"""Platform resolution: which modules can start, in which order, and why the others cannot.

:func:`resolve` is a pure function of the configured modules (with the
manifests of the installed versions that satisfy them) and of the platform
interface set. It does no IO and imports neither DDS nor gRPC, so every rule
is unit-tested on plain data. It sees the whole platform (every node): a
requirement is met by a provider on any node, because DDS carries the data
between nodes.

Rules (normative text: ``spec/runtime.md``, RT-RES-*):

* A module *starts* when it is installed and every interface it requires is
  provided by a module that starts. This is a greatest fixed point: modules
  that require each other in a cycle start, as long as nothing outside the
  cycle is missing.
* A module that does not start is *blocked*, with one :class:`Unmet` per
  reason (the missing interface and why), never silently dropped.
* Interface names carry the major version (``hardpoint.nav.v1.NavState``), so a
  requirement is met only by the same name: another major is reported as such.
* Platform-level errors (two providers of a single-writer interface, an
  interface outside the interface set, a module listed twice) make the whole
  platform invalid: the daemon starts nothing while :attr:`Resolution.errors`
  is not empty.
* Start order puts providers before consumers. Modules in a dependency cycle
  form one group and start together (in name order, none waiting for the
  others); groups are ordered by dependencies, ties by the smallest name.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec, Manifest

__all__ = ["Candidate", "InterfaceInfo", "Resolution", "Unmet", "resolve"]

_INTERFACE_PARTS_RE: Final = re.compile(r"^(?P<package>.+)\.v(?P<major>\d+)\.(?P<message>[^.]+)$")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A configured (enabled) module, with the manifest of the version that would run."""

    #: Module name from the configuration.
    name: str
    #: Node the module is placed on.
    node: str
    #: Manifest of the installed version that satisfies the configured constraint; None when there is none.
    manifest: Manifest | None
    #: Why there is no manifest, e.g. ``no installed version of 'nav' satisfies '>=2'; installed: 1.0.0``.
    reason_missing: str = ""
    #: Not installed yet, and the platform takes signed updates: the module is blocked until it is
    #: installed (a first install through ``hardpoint update apply``), not a platform-level error.
    awaiting_install: bool = False


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """What resolution needs to know about an interface of the platform interface set."""

    #: Full protobuf name, with the major version: ``hardpoint.nav.v1.NavState``.
    name: str
    #: At most one module of the platform may provide it.
    single_writer: bool = False

    @classmethod
    def from_spec(cls, spec: InterfaceSpec) -> InterfaceInfo:
        """The resolution view of an SDK :class:`hardpoint.InterfaceSpec`.

        :param spec: an entry of :func:`hardpoint.all_interfaces`.
        """
        return cls(name=spec.name, single_writer=spec.single_writer)

    @property
    def major(self) -> int:
        """Major version, from the ``.vN.`` part of the name (0 when the name has none)."""
        return _major(self.name)


@dataclass(frozen=True, slots=True)
class Unmet:
    """Why a blocked module cannot start: one unmet requirement, or the module itself missing."""

    #: Full name of the required interface; empty when the module itself is not installed.
    interface: str
    #: Major version of that interface (0 when ``interface`` is empty).
    major: int
    #: Why, in words: ``no module provides it``, ``only major 2 is provided (...)``,
    #: ``its provider 'nav' is not started: ...``, ``module not installed: ...``.
    reason: str

    def __str__(self) -> str:
        return f"requires {self.interface}: {self.reason}" if self.interface else self.reason


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of :func:`resolve` for a whole platform."""

    #: Modules that can start, providers before consumers (the flattening of :attr:`start_groups`).
    start_order: list[str]
    #: Modules to start together, in order; a group of several is a dependency cycle.
    start_groups: list[list[str]]
    #: Modules that cannot start, each with at least one reason.
    blocked: dict[str, list[Unmet]]
    #: Platform-level configuration errors; the daemon starts nothing while there is one.
    errors: list[str]
    #: For each interface provided on the platform: the modules (installed ones) that provide it.
    providers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the platform may start: no platform-level error (some modules may still be blocked)."""
        return not self.errors

    @property
    def complete(self) -> bool:
        """True when the platform may start and every configured module starts."""
        return self.ok and not self.blocked


def resolve(entries: Sequence[Candidate], interfaces: Mapping[str, InterfaceInfo]) -> Resolution:
    """Resolve a whole platform.

    :param entries: every enabled module of the platform, on every node.
    :param interfaces: the platform interface set, by full name (``hardpoint.all_interfaces()``
        through :meth:`InterfaceInfo.from_spec`).
    :returns: the start order, the blocked modules with their reasons, and the platform-level errors.
    """
    platform = _Platform.of(entries, interfaces)
    errors = _duplicate_errors(entries) + platform.interface_errors()
    primary, started = platform.fixed_point()
    blocked = {
        name: platform.unmets(candidate, started, primary)
        for name, candidate in sorted(platform.candidates.items())
        if name not in started
    }
    groups = _start_groups(started, platform.installed, platform.providers)
    return Resolution(
        start_order=[name for group in groups for name in group],
        start_groups=groups,
        blocked=blocked,
        errors=errors,
        providers={iface: sorted(names) for iface, names in sorted(platform.providers.items())},
    )


def _major(interface: str) -> int:
    match = _INTERFACE_PARTS_RE.match(interface)
    return int(match.group("major")) if match else 0


def _stem(interface: str) -> str:
    """The interface name without its major: ``hardpoint.nav.v1.NavState`` -> ``hardpoint.nav.NavState``."""
    match = _INTERFACE_PARTS_RE.match(interface)
    return f"{match.group('package')}.{match.group('message')}" if match else interface


def _duplicate_errors(entries: Sequence[Candidate]) -> list[str]:
    seen: set[str] = set()
    errors = []
    for entry in entries:
        if entry.name in seen:
            errors.append(f"module {entry.name!r} is configured twice")
        seen.add(entry.name)
    return errors


_UNKNOWN: Final = "unknown interface: it is not in the platform interface set"


@dataclass(frozen=True, slots=True)
class _Platform:
    """The inputs of one resolution, indexed."""

    #: Configured modules by name (the first entry of a name listed twice).
    candidates: dict[str, Candidate]
    #: Manifests of the installed ones.
    installed: dict[str, Manifest]
    #: Interface -> installed modules that provide it.
    providers: dict[str, set[str]]
    interfaces: Mapping[str, InterfaceInfo]

    @classmethod
    def of(cls, entries: Iterable[Candidate], interfaces: Mapping[str, InterfaceInfo]) -> _Platform:
        """Index ``entries``.

        :param entries: configured modules.
        :param interfaces: the platform interface set.
        """
        candidates: dict[str, Candidate] = {}
        for entry in entries:
            candidates.setdefault(entry.name, entry)
        installed = {c.name: c.manifest for c in candidates.values() if c.manifest is not None}
        providers: dict[str, set[str]] = {}
        for name, manifest in installed.items():
            for interface in manifest.provides:
                providers.setdefault(interface, set()).add(name)
        return cls(candidates, installed, providers, interfaces)

    def interface_errors(self) -> list[str]:
        """Two providers of a single-writer interface; interfaces outside the interface set."""
        errors = []
        for interface, names in sorted(self.providers.items()):
            info = self.interfaces.get(interface)
            if info is not None and info.single_writer and len(names) > 1:
                both = " and ".join(repr(n) for n in sorted(names))
                errors.append(
                    f"interface {interface} is single-writer but is provided by {both}: "
                    "disable all but one of them in the configuration"
                )
        # A provided interface outside the set is a configuration error (nobody could check its
        # contract); a *required* one only blocks its consumer, like any unmet requirement.
        for name, manifest in sorted(self.installed.items()):
            errors.extend(
                f"module {name!r} provides {interface}, which is not in the platform interface set"
                for interface in manifest.provides
                if interface not in self.interfaces
            )
        # A configured module that is not installed is a configuration error: the platform
        # would run without it.
        errors.extend(
            f"module {name!r} is not installed: {c.reason_missing or 'no installed distribution'}"
            for name, c in sorted(self.candidates.items())
            if c.manifest is None and not c.awaiting_install
        )
        return errors

    def fixed_point(self) -> tuple[dict[str, str], set[str]]:
        """Remove modules with an unmet requirement until none is left to remove.

        :returns: for each removed module the *primary* reason it was removed,
            which only mentions modules removed before it (so reasons never
            loop), and the set of modules that start.
        """
        primary = {
            name: f"module not installed: {c.reason_missing or 'no installed distribution'}"
            for name, c in self.candidates.items()
            if c.manifest is None
        }
        started = set(self.installed)
        while True:
            removed: dict[str, str] = {}
            for name in sorted(started):
                for interface in sorted(self.installed[name].requires):
                    if interface not in self.interfaces:
                        removed[name] = f"requires {interface}: {self.unknown_reason(interface)}"
                        break
                    if not self.providers.get(interface, set()) & started:
                        removed[name] = f"requires {interface}: {self.why_not_provided(interface, started, primary)}"
                        break
            if not removed:
                return primary, started
            # Remove a whole round at once, so the outcome does not depend on iteration order.
            started -= removed.keys()
            primary.update(removed)

    def unknown_reason(self, interface: str) -> str:
        """Why a required interface outside the interface set is unmet, naming the majors that exist."""
        others = sorted(i for i in self.interfaces if _stem(i) == _stem(interface))
        if others:
            return f"{_UNKNOWN} (it has {', '.join(others)})"
        return _UNKNOWN

    def why_not_provided(self, interface: str, started: set[str], primary: Mapping[str, str]) -> str:
        """Why no started module provides ``interface``: its providers were removed, or there are none.

        :param interface: a required interface of the interface set.
        :param started: modules still starting.
        :param primary: primary reasons of the modules removed so far.
        """
        # Every provider is installed, so one that is not started was removed and has a primary reason.
        stopped = sorted(self.providers.get(interface, set()) - started)
        if len(stopped) == 1:
            return f"its provider {stopped[0]!r} is not started: {primary[stopped[0]]}"
        if stopped:
            listed = "; ".join(f"{n!r}: {primary[n]}" for n in stopped)
            return f"none of its providers is started ({listed})"
        return self.no_provider(interface)

    def no_provider(self, interface: str) -> str:
        """Reason for an interface that no installed module provides, pointing at other majors or missing modules.

        :param interface: a required interface.
        """
        stem = _stem(interface)
        others = sorted((i for i in self.providers if i != interface and _stem(i) == stem), key=_major)
        if others:
            majors = ", ".join(str(_major(i)) for i in others)
            who = "; ".join(f"{i} by {', '.join(sorted(self.providers[i]))}" for i in others)
            noun, verb = ("major", "is") if len(others) == 1 else ("majors", "are")
            return f"only {noun} {majors} {verb} provided ({who})"
        missing = sorted(n for n in self.candidates if n not in self.installed)
        if missing:
            # Their manifests are unknown: any of them may be the intended provider.
            listed = ", ".join(repr(n) for n in missing)
            return f"no module provides it (not installed, so not known to provide it: {listed})"
        return "no module provides it"

    def unmets(self, candidate: Candidate, started: set[str], primary: Mapping[str, str]) -> list[Unmet]:
        """Every reason a blocked module cannot start, in interface order.

        Reasons about a stopped provider quote that provider's primary reason, a
        finished string, so a dependency cycle cannot make a reason loop.

        :param candidate: a module that does not start.
        :param started: the modules that start.
        :param primary: primary reasons of every module that does not start.
        """
        if candidate.manifest is None:
            return [Unmet(interface="", major=0, reason=primary[candidate.name])]
        unmet = []
        for interface in sorted(candidate.manifest.requires):
            if interface not in self.interfaces:
                unmet.append(Unmet(interface, _major(interface), self.unknown_reason(interface)))
            elif not self.providers.get(interface, set()) & started:
                unmet.append(Unmet(interface, _major(interface), self.why_not_provided(interface, started, primary)))
        return unmet


def _start_groups(
    started: set[str], installed: Mapping[str, Manifest], providers: Mapping[str, set[str]]
) -> list[list[str]]:
    """Strongly connected components of the provider -> consumer graph, in dependency order."""
    needs = {
        name: sorted({p for i in installed[name].requires for p in providers.get(i, set()) & started} - {name})
        for name in sorted(started)
    }
    components = _strongly_connected(needs)
    component_of = {name: i for i, comp in enumerate(components) for name in comp}
    waits_for: dict[int, set[int]] = {i: set() for i in range(len(components))}
    for name, deps in needs.items():
        waits_for[component_of[name]].update(component_of[d] for d in deps if component_of[d] != component_of[name])
    return _kahn(components, waits_for)


def _kahn(components: list[list[str]], waits_for: dict[int, set[int]]) -> list[list[str]]:
    """Topological order of components; among ready ones, the one with the smallest name first."""
    unblocks: dict[int, list[int]] = {i: [] for i in waits_for}
    for i, deps in waits_for.items():
        for d in deps:
            unblocks[d].append(i)
    pending = {i: len(deps) for i, deps in waits_for.items()}
    ready = [(components[i][0], i) for i, n in pending.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(components[i])
        for j in unblocks[i]:
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, (components[j][0], j))
    return order


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a platform may have many modules); each component sorted by name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            edges = graph[node]
            if child < len(edges):
                work.append((node, child + 1))
                nxt = edges[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components
