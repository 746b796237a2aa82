"""The schema checks on the bus (CF-SCHEMA, ``hardpoint_runtime.conformance.checks_schema``).

Real parts: the reference ``nav`` and the broken variant ``broken_schema`` (nav built against a vendored
nav.proto whose ``fix_quality`` is a string) hosted in the real runtime worker on a private Cyclone DDS
domain; announcements read from ``hp/schemas`` and attributed to the worker's process. The pure rules are
tested on descriptor sets changed by hand, each with a case that must fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from google.protobuf import descriptor_pb2

import hardpoint
from hardpoint._contracts import file_descriptor_set
from hardpoint.alert.v1 import alert_pb2
from hardpoint_runtime.conformance._harness import HostedModule
from hardpoint_runtime.conformance.checks_schema import (
    MISSING_MESSAGE,
    UNPARSABLE,
    Announcement,
    collect_announcements,
    collect_stamps,
    latest_counters,
    missing_announcements,
    reader_findings,
    schema_findings,
    stamp_findings,
)

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"
PLATFORM = hardpoint.all_interfaces()
SETS = {name: file_descriptor_set(spec.message_type.DESCRIPTOR) for name, spec in PLATFORM.items()}


def _nav_set_with(field: str, new_type: int) -> bytes:
    """The platform's NavState descriptor set with one field's type changed."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(SETS[NAV])
    for file in fds.file:
        for msg in file.message_type:
            if f"{file.package}.{msg.name}" == NAV:
                for f in msg.field:
                    if f.name == field:
                        f.type = new_type  # type: ignore[assignment]
                        f.ClearField("type_name")
    return fds.SerializeToString()


# --------------------------------------------------------------------------- pure rules


def test_wire_breaking_type_change_names_interface_rule_and_field() -> None:
    broken = Announcement(NAV, "beef", _nav_set_with("fix_quality", descriptor_pb2.FieldDescriptorProto.TYPE_STRING))
    problems = schema_findings("acme-nav", {NAV: "provides"}, [broken], PLATFORM, SETS)
    assert problems == [
        "module 'acme-nav': provides hardpoint.nav.v1.NavState (schema beef): FIELD_WIRE_COMPATIBLE_TYPE: "
        "hardpoint.nav.v1.NavState.fix_quality: field 6 changed type from enum hardpoint.nav.v1.FixQuality to string"
    ]


def test_wire_compatible_change_passes() -> None:
    widened = _nav_set_with("satellites_used", descriptor_pb2.FieldDescriptorProto.TYPE_UINT64)  # uint32 -> uint64
    same = Announcement(NAV, PLATFORM[NAV].schema_id, SETS[NAV])
    assert schema_findings("m", {NAV: "provides"}, [Announcement(NAV, "x", widened), same], PLATFORM, SETS) == []


def test_announcement_without_the_message_or_unparsable() -> None:
    alert_only = Announcement(NAV, "x", SETS[ALERT])  # a set that does not hold NavState at all
    garbage = Announcement(NAV, "y", b"\xff\xff\xff")
    problems = schema_findings("m", {NAV: "requires"}, [alert_only, garbage], PLATFORM, SETS)
    assert len(problems) == 2
    assert f"requires {NAV} (schema x): {MISSING_MESSAGE}" in problems[0]
    assert f"(schema y): {UNPARSABLE}" in problems[1]


def test_missing_announcement_of_a_provided_interface() -> None:
    roles = {NAV: "provides", ALERT: "requires"}
    assert missing_announcements("m", roles, []) == [
        f"module 'm': provides {NAV} but announced no schema for it on hp/schemas"
    ]  # a reader announces nothing: only provided interfaces are due
    assert missing_announcements("m", roles, [Announcement(NAV, "x", b"")]) == []


def test_stamps_and_reader_counters() -> None:
    provided = {NAV: PLATFORM[NAV], ALERT: PLATFORM[ALERT]}
    problems, notes = stamp_findings("m", provided, {NAV: {PLATFORM[NAV].schema_id, "ece29f7b5b919d7a"}})
    assert len(problems) == 1
    assert "samples stamped with schema id ece29f7b5b919d7a" in problems[0]
    assert notes == [f"{ALERT}: aperiodic, no sample published during the check: schema id not applicable"]
    problems, _ = stamp_findings("m", {NAV: PLATFORM[NAV]}, {})
    assert "published no sample" in problems[0]  # periodic and silent: not a pass
    problems, notes = reader_findings("m", [NAV, ALERT], {f"sub:{NAV}.schema_mismatch": 7, f"sub:{NAV}.delivered": 0})
    assert "dropped 7 platform sample(s)" in problems[0]
    assert notes == [f"{ALERT}: no sample reached the module's reader (no provider hosted): not exercised"]
    assert reader_findings("m", [NAV], {f"sub:{NAV}.delivered": 12}) == ([], [])


# --------------------------------------------------------------------------- on the bus, for real


@pytest.fixture(scope="module")
def nav_host() -> Iterator[HostedModule]:
    with HostedModule("nav") as host:
        host.probe  # noqa: B018 - the probe's transport holds the domain's configuration
        host.activate()
        yield host


def test_announcements_are_attributed_to_the_writing_process(nav_host: HostedModule) -> None:
    # The probe (this process) announces Alert; nav's worker announces NavState (and its heartbeat).
    nav_host.probe.publisher(alert_pb2.Alert)
    by_nav = collect_announcements(nav_host.domain_id, nav_host.pid, [NAV], timeout_s=10)
    by_me = collect_announcements(nav_host.domain_id, os.getpid(), [ALERT], timeout_s=10)
    assert {a.interface for a in by_nav} >= {NAV}
    assert ALERT not in {a.interface for a in by_nav}
    assert {a.interface for a in by_me} == {ALERT}
    assert schema_findings("nav", {NAV: "provides"}, by_nav, PLATFORM, SETS) == []


def test_reference_nav_stamps_the_platform_schema_id(nav_host: HostedModule) -> None:
    stamps = collect_stamps(nav_host, {NAV: PLATFORM[NAV]}, timeout_s=10)
    assert stamps == {NAV: {PLATFORM[NAV].schema_id}}


def test_reference_radar_reads_the_platform_nav() -> None:
    with HostedModule("radar") as host:  # fed by the reference nav
        host.probe  # noqa: B018
        host.activate()
        counters = latest_counters(host, [NAV], timeout_s=10)
    assert counters.get(f"sub:{NAV}.delivered", 0) > 0
    assert reader_findings("radar", [NAV], counters) == ([], [])


def test_broken_schema_variant_is_caught_on_the_bus() -> None:
    with HostedModule("broken_schema") as host:
        host.probe  # noqa: B018
        host.activate()
        announced = collect_announcements(host.domain_id, host.pid, [NAV], timeout_s=10)
        stamps = collect_stamps(host, {NAV: PLATFORM[NAV]}, timeout_s=10)
    problems = schema_findings("broken_schema", {NAV: "provides"}, announced, PLATFORM, SETS)
    assert len(problems) == 1
    assert "FIELD_WIRE_COMPATIBLE_TYPE: hardpoint.nav.v1.NavState.fix_quality" in problems[0]
    assert "provides hardpoint.nav.v1.NavState" in problems[0]
    wrong, _ = stamp_findings("broken_schema", {NAV: PLATFORM[NAV]}, stamps)
    assert len(wrong) == 1
    assert "every platform reader drops them" in wrong[0]


def test_collect_announcements_refuses_a_domain_no_transport_holds() -> None:
    # A bare participant would create the domain with Cyclone's defaults (not loopback-only): refused.
    with pytest.raises(RuntimeError, match="no hardpoint transport of this process holds domain 231"):
        collect_announcements(231, os.getpid(), [NAV], timeout_s=1)
