"""Platform resolution, a pure function: one test per rule, and properties on random platforms (RT-RES-*)."""

from __future__ import annotations

import ast
import itertools
import random
from collections.abc import Sequence
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import hardpoint_runtime._resolve as resolve_module
from hardpoint import Manifest
from hardpoint_runtime._errors import ResolutionError
from hardpoint_runtime._resolve import Candidate, InterfaceInfo, Resolution, Unmet, resolve

NAV1 = "hardpoint.nav.v1.NavState"
NAV2 = "hardpoint.nav.v2.NavState"
TRACK = "hardpoint.track.v1.Track"
ALERT = "hardpoint.alert.v1.Alert"
TASK = "hardpoint.tasking.v1.Task"
UNKNOWN = "hardpoint.sonar.v1.Ping"

INTERFACES = {
    NAV1: InterfaceInfo(NAV1, single_writer=True),
    NAV2: InterfaceInfo(NAV2, single_writer=True),
    TRACK: InterfaceInfo(TRACK),
    ALERT: InterfaceInfo(ALERT),
    TASK: InterfaceInfo(TASK),
}


def mod(name: str, provides: Sequence[str] = (), requires: Sequence[str] = (), *, node: str = "main") -> Candidate:
    manifest = Manifest(name=name, version="1.0.0", supplier="test", provides=tuple(provides), requires=tuple(requires))
    return Candidate(name=name, node=node, manifest=manifest)


def missing(name: str, reason: str = "") -> Candidate:
    return Candidate(name=name, node="main", manifest=None, reason_missing=reason)


def test_providers_start_before_consumers_whatever_the_input_order() -> None:
    """RT-RES-001, RT-RES-006."""
    entries = [mod("alerter", [ALERT], [TRACK]), mod("tracker", [TRACK], [NAV1]), mod("nav", [NAV1])]
    result = resolve(entries, INTERFACES)
    assert result.start_order == ["nav", "tracker", "alerter"]
    assert result.start_groups == [["nav"], ["tracker"], ["alerter"]]
    assert result.blocked == {}
    assert result.errors == []
    assert result.ok
    assert result.complete
    assert result.providers == {ALERT: ["alerter"], NAV1: ["nav"], TRACK: ["tracker"]}


def test_ties_are_broken_by_name() -> None:
    """RT-RES-006: independent modules start in name order; a consumer comes as soon as it can."""
    entries = [mod("zulu"), mod("nav", [NAV1]), mod("bravo", requires=[NAV1]), mod("alpha")]
    assert resolve(entries, INTERFACES).start_order == ["alpha", "nav", "bravo", "zulu"]


def test_requirement_met_on_another_node() -> None:
    """RT-RES-002: resolution is platform-wide, a provider on any node counts."""
    entries = [mod("nav", [NAV1], node="mast"), mod("tracker", [TRACK], [NAV1], node="hull")]
    assert resolve(entries, INTERFACES).start_order == ["nav", "tracker"]


def test_no_provider() -> None:
    """RT-RES-003."""
    result = resolve([mod("tracker", [TRACK], [NAV1]), mod("alerter", [ALERT])], INTERFACES)
    assert result.start_order == ["alerter"]
    assert result.blocked == {"tracker": [Unmet(NAV1, 1, "no module provides it")]}
    assert result.ok
    assert not result.complete


def test_only_another_major_is_provided() -> None:
    """RT-RES-004: the major is in the name; a different major is reported as such."""
    result = resolve([mod("nav2", [NAV2]), mod("tracker", [TRACK], [NAV1])], INTERFACES)
    assert result.blocked["tracker"] == [Unmet(NAV1, 1, f"only major 2 is provided ({NAV2} by nav2)")]
    assert result.start_order == ["nav2"]


def test_transitive_provider_not_started() -> None:
    """RT-RES-005: the reason follows the chain down to its cause."""
    entries = [mod("alerter", [ALERT], [TRACK]), mod("tracker", [TRACK], [NAV1])]
    result = resolve(entries, INTERFACES)
    assert result.blocked["tracker"] == [Unmet(NAV1, 1, "no module provides it")]
    assert result.blocked["alerter"] == [
        Unmet(TRACK, 1, f"its provider 'tracker' is not started: requires {NAV1}: no module provides it")
    ]
    assert result.start_order == []


def test_module_not_installed() -> None:
    """RT-RES-007: a configured module with no installed version is blocked with the installer's reason."""
    why = "no installed version of 'nav' satisfies '>=2'; installed: 1.0.0"
    result = resolve([missing("nav", why), mod("tracker", [TRACK], [NAV1])], INTERFACES)
    assert result.blocked["nav"] == [Unmet("", 0, f"module not installed: {why}")]
    assert str(result.blocked["nav"][0]) == f"module not installed: {why}"
    # nav's manifest is unknown, so the consumer is told that it may be the provider.
    assert result.blocked["tracker"] == [
        Unmet(NAV1, 1, "no module provides it (not installed, so not known to provide it: 'nav')")
    ]
    assert result.errors == [f"module 'nav' is not installed: {why}"]
    assert not result.ok


def test_two_providers_of_a_single_writer_interface_is_an_error() -> None:
    """RT-RES-010: names both modules and the interface."""
    result = resolve([mod("nav", [NAV1]), mod("backup-nav", [NAV1]), mod("tracker", requires=[NAV1])], INTERFACES)
    assert not result.ok
    assert result.errors == [
        f"interface {NAV1} is single-writer but is provided by 'backup-nav' and 'nav': "
        "disable all but one of them in the configuration"
    ]


def test_several_providers_of_a_shared_interface_are_fine_and_all_start_first() -> None:
    result = resolve([mod("t2", [TRACK]), mod("alerter", requires=[TRACK]), mod("t1", [TRACK])], INTERFACES)
    assert result.ok
    assert result.start_order == ["t1", "t2", "alerter"]
    assert result.providers[TRACK] == ["t1", "t2"]


def test_one_of_several_providers_missing_is_enough() -> None:
    result = resolve([mod("t1", [TRACK], [NAV1]), mod("t2", [TRACK]), mod("alerter", requires=[TRACK])], INTERFACES)
    assert result.start_order == ["t2", "alerter"]
    assert list(result.blocked) == ["t1"]


def test_all_providers_blocked_are_listed() -> None:
    result = resolve([mod("t1", [TRACK], [NAV1]), mod("t2", [TRACK], [NAV2]), mod("a", requires=[TRACK])], INTERFACES)
    (unmet,) = result.blocked["a"]
    assert unmet.reason.startswith("none of its providers is started ('t1': requires ")
    assert "'t2': requires hardpoint.nav.v2.NavState" in unmet.reason


def test_unknown_interfaces_provided_are_errors_required_block_the_consumer() -> None:
    """RT-RES-011."""
    result = resolve([mod("sonar", [UNKNOWN]), mod("plotter", requires=[UNKNOWN])], INTERFACES)
    assert result.errors == [
        f"module 'sonar' provides {UNKNOWN}, which is not in the platform interface set",
    ]
    assert result.blocked["plotter"] == [
        Unmet(UNKNOWN, 1, "unknown interface: it is not in the platform interface set")
    ]


def test_module_listed_twice_is_an_error() -> None:
    result = resolve([mod("nav", [NAV1]), mod("nav", [NAV1])], INTERFACES)
    assert result.errors == ["module 'nav' is configured twice"]


def test_cycle_starts_together() -> None:
    """RT-RES-006: modules that require each other form one start group, in name order."""
    entries = [mod("nav", [NAV1], [TASK]), mod("tasker", [TASK], [NAV1]), mod("alerter", [ALERT], [TASK])]
    result = resolve(entries, INTERFACES)
    assert result.start_groups == [["nav", "tasker"], ["alerter"]]
    assert result.start_order == ["nav", "tasker", "alerter"]


def test_cycle_blocked_from_outside_gives_finite_reasons() -> None:
    """A cycle cut off by a missing interface: every member is blocked, and reasons do not loop."""
    entries = [mod("nav", [NAV1], [TASK, TRACK]), mod("tasker", [TASK], [NAV1])]
    result = resolve(entries, INTERFACES)
    assert result.start_order == []
    track_reason = f"requires {TRACK}: no module provides it"
    assert result.blocked["nav"] == [
        Unmet(
            TASK,
            1,
            f"its provider 'tasker' is not started: requires {NAV1}: its provider 'nav' is not started: {track_reason}",
        ),
        Unmet(TRACK, 1, "no module provides it"),
    ]
    assert result.blocked["tasker"] == [Unmet(NAV1, 1, f"its provider 'nav' is not started: {track_reason}")]


def test_a_module_may_consume_what_it_provides() -> None:
    assert resolve([mod("nav", [NAV1], [NAV1])], INTERFACES).start_order == ["nav"]


def test_every_unmet_requirement_is_listed() -> None:
    result = resolve([mod("fusion", requires=[TRACK, NAV1, UNKNOWN])], INTERFACES)
    assert [u.interface for u in result.blocked["fusion"]] == [NAV1, UNKNOWN, TRACK]  # interface order


def test_empty_platform() -> None:
    assert resolve([], INTERFACES) == Resolution([], [], {}, [], {})


def test_interface_info_from_the_sdk_contracts() -> None:
    """The daemon builds the interface set from the SDK's contracts."""
    from hardpoint import all_interfaces

    specs = all_interfaces()
    infos = {name: InterfaceInfo.from_spec(spec) for name, spec in specs.items()}
    assert infos
    for name, info in infos.items():
        assert info.single_writer == specs[name].single_writer
        assert info.major == specs[name].major


def test_resolution_error_lists_errors() -> None:
    error = ResolutionError.from_errors(["a is wrong", "b is wrong"])
    assert error.errors == ("a is wrong", "b is wrong")
    assert str(error).splitlines()[1:] == ["  a is wrong", "  b is wrong"]


def test_resolver_is_pure() -> None:
    """RT-RES-012: no IO and no transport in the resolver: only the standard library and typing imports."""
    tree = ast.parse(Path(resolve_module.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "collections", "dataclasses", "heapq", "re", "typing", "hardpoint"}
    runtime_hardpoint = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hardpoint")
    ]
    assert runtime_hardpoint == [], "hardpoint is imported for type checking only"


# --------------------------------------------------------------------------- properties on random platforms

POOL = [NAV1, NAV2, TRACK, ALERT, TASK, UNKNOWN]


@st.composite
def platforms(draw: st.DrawFn) -> tuple[list[Candidate], dict[str, InterfaceInfo]]:
    known = POOL[:-1]
    interfaces = {name: InterfaceInfo(name, single_writer=draw(st.booleans())) for name in known}
    count = draw(st.integers(min_value=0, max_value=7))
    entries = []
    for i in range(count):
        name = f"m{i}"
        if draw(st.integers(0, 9)) == 0:
            entries.append(missing(name, "not installed"))
            continue
        # The unknown interface is rare, so that most platforms have no error.
        weights = st.sampled_from(POOL if draw(st.integers(0, 9)) == 0 else known)
        provides = draw(st.lists(weights, max_size=2, unique=True))
        requires = draw(st.lists(weights, max_size=3, unique=True))
        entries.append(mod(name, provides, requires))
    return entries, interfaces


def _self_sufficient(group: set[str], entries: dict[str, Candidate]) -> bool:
    provided = {i for n in group for i in entries[n].manifest.provides}  # type: ignore[union-attr]
    return all(set(entries[n].manifest.requires) <= provided for n in group)  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(platforms())
def test_properties_on_random_platforms(platform: tuple[list[Candidate], dict[str, InterfaceInfo]]) -> None:
    """RT-RES-001..007 on random platforms."""
    entries, interfaces = platform
    result = resolve(entries, interfaces)
    by_name = {c.name: c for c in entries}
    installed = {n for n, c in by_name.items() if c.manifest is not None}

    # start_order and blocked partition the candidates; those with a manifest are split between them.
    assert set(result.start_order).isdisjoint(result.blocked)
    assert set(result.start_order) | set(result.blocked) == set(by_name)
    assert set(result.start_order) <= installed
    assert len(result.start_order) == len(set(result.start_order))

    # Every started module's requirements are provided earlier or in its own start group.
    group_of = {n: i for i, g in enumerate(result.start_groups) for n in g}
    for name in result.start_order:
        manifest = by_name[name].manifest
        assert manifest is not None
        for interface in manifest.requires:
            providers = [p for p in result.start_order if interface in by_name[p].manifest.provides]  # type: ignore[union-attr]
            assert providers, f"{name} started without a provider of {interface}"
            assert all(group_of[p] <= group_of[name] for p in providers)

    # Every blocked module has a reason, about one of its requirements (or itself when not installed).
    for name, unmet in result.blocked.items():
        assert unmet
        manifest = by_name[name].manifest
        allowed = set(manifest.requires) if manifest is not None else {""}
        assert {u.interface for u in unmet} <= allowed

    # The started set is the largest self-sufficient set of installed modules (checked by brute force).
    largest: set[str] = set()
    for size in range(len(installed) + 1):
        for group in itertools.combinations(sorted(installed), size):
            if all(i in interfaces for n in group for i in by_name[n].manifest.requires) and _self_sufficient(  # type: ignore[union-attr]
                set(group), by_name
            ):
                largest |= set(group)
    assert set(result.start_order) == largest

    # Errors exactly when a single-writer interface has two providers, an unknown interface is
    # provided, or a configured module is not installed.
    doubled = any(
        info.single_writer and sum(interface in by_name[n].manifest.provides for n in installed) > 1  # type: ignore[union-attr]
        for interface, info in interfaces.items()
    )
    unknown = any(
        i not in interfaces
        for n in installed
        for i in by_name[n].manifest.provides  # type: ignore[union-attr]
    )
    not_installed = any(c.manifest is None for c in entries)
    assert bool(result.errors) == (doubled or unknown or not_installed)

    # Deterministic: the input order does not matter.
    shuffled = list(entries)
    random.Random(len(entries)).shuffle(shuffled)
    assert resolve(shuffled, interfaces) == result
