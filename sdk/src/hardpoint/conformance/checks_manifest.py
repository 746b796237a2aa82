"""Conformance checks on a module's manifest and its interfaces.

Collected by pytest with the hardpoint plugin active::

    pytest --hardpoint-module NAME --pyargs hardpoint.conformance.checks_manifest

Without ``--hardpoint-module`` every check is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec, Manifest

_MAJOR: Final = re.compile(r"\.v([1-9][0-9]*)\.")


def _family(name: str) -> str:
    """``hardpoint.nav.v2.NavState`` -> ``hardpoint.nav.v*.NavState``: the interface whatever its major."""
    return _MAJOR.sub(".v*.", name, count=1)


def _missing(names: Iterable[str], interfaces: Mapping[str, InterfaceSpec], role: str) -> list[str]:
    """One line per name not in the interface set, with the majors of that interface the set does have."""
    problems = []
    for name in names:
        if name in interfaces:
            continue
        family = _family(name)
        others = sorted(other for other in interfaces if _family(other) == family)
        if others:
            majors = ", ".join(f"{_MAJOR.search(o).group(1)} ({o})" for o in others)  # type: ignore[union-attr]
            problems.append(
                f"{role} {name}: incompatible major; the platform interface set has major {majors} of {family}"
            )
        else:
            problems.append(f"{role} {name}: not in the platform interface set (no major of {family} exists)")
    return problems


@pytest.mark.hardpoint("SDK-LC-001")
def test_manifest_valid(hardpoint_module: object, request: pytest.FixtureRequest) -> None:
    """The module object carries a valid ``hardpoint.Manifest``."""
    from hardpoint import ManifestError
    from hardpoint._host import _manifest_of

    try:
        _manifest_of(hardpoint_module)
    except ManifestError as e:
        pytest.fail(f"SDK-LC-001: {e}", pytrace=False)
    judged(request, 1, "manifest")


@pytest.mark.hardpoint("RT-RES-011")
def test_provided_interfaces_in_interface_set(
    hardpoint_manifest: Manifest, hardpoint_interfaces: Mapping[str, InterfaceSpec], request: pytest.FixtureRequest
) -> None:
    """Every provided interface is in the platform interface set, at the same major."""
    problems = _missing(hardpoint_manifest.provides, hardpoint_interfaces, "provides")
    if problems:
        pytest.fail(f"RT-RES-011 module {hardpoint_manifest.name!r}: " + "; ".join(problems), pytrace=False)
    if hardpoint_manifest.provides:
        judged(request, len(hardpoint_manifest.provides), "provided interfaces")
    else:
        not_applicable(request, "the module provides no interface")


@pytest.mark.hardpoint("RT-RES-004", "RT-RES-011")
def test_required_interfaces_in_interface_set(
    hardpoint_manifest: Manifest, hardpoint_interfaces: Mapping[str, InterfaceSpec], request: pytest.FixtureRequest
) -> None:
    """Every required (and optionally used) interface is in the platform interface set, at the same major."""
    used = [name for name in hardpoint_manifest.uses if name != "*"]
    problems = _missing(hardpoint_manifest.requires, hardpoint_interfaces, "requires")
    problems += _missing(used, hardpoint_interfaces, "uses")
    if problems:
        pytest.fail(f"RT-RES-004 module {hardpoint_manifest.name!r}: " + "; ".join(problems), pytrace=False)
    if hardpoint_manifest.requires or used:
        judged(request, len(hardpoint_manifest.requires) + len(used), "required and used interfaces")
    else:
        not_applicable(request, "the module requires and uses no named interface")
