"""Field constraints of interfaces, nested messages included, checked on real messages (``hardpoint._contracts``)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import hardpoint
from hardpoint._contracts import field_violations, nested_field_rules

SPEC = Path(__file__).resolve().parents[2] / "spec" / "interfaces.md"


def test_every_rule_has_the_requirement_id_that_the_generated_spec_states() -> None:
    stated = set(re.findall(r"\*\*(IF-[A-Z0-9_.-]+-FIELD-[A-Z0-9_.]+)\*\*", SPEC.read_text(encoding="utf-8")))
    ours = set()
    for spec in hardpoint.all_interfaces().values():
        for rule in nested_field_rules(spec.message_type.DESCRIPTOR):
            ours.add(f"{spec.id}-FIELD-{rule.field.upper()}")
    assert ours == stated


def _nav() -> object:
    from hardpoint.nav.v1 import nav_pb2

    msg = nav_pb2.NavState(platform_id="own", fix_quality=nav_pb2.FIX_QUALITY_3D)
    msg.position.latitude_deg = 54.0
    msg.position.longitude_deg = 11.0
    return msg


def test_a_valid_message_has_no_violation() -> None:
    assert field_violations(_nav()) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "path", "requirement", "reason"),
    [
        (
            lambda m: setattr(m.position, "latitude_deg", 90.5),
            "position.latitude_deg",
            "POSITION.LATITUDE_DEG",
            "within",
        ),
        (lambda m: setattr(m.attitude, "yaw_rad", math.nan), "attitude.yaw_rad", "ATTITUDE.YAW_RAD", "within"),
        (lambda m: setattr(m, "platform_id", ""), "platform_id", "PLATFORM_ID", "non-empty"),
        (lambda m: m.ClearField("position"), "position", "POSITION", "must be present"),
        (lambda m: setattr(m, "fix_quality", 0), "fix_quality", "FIX_QUALITY", "UNSPECIFIED"),
        (
            lambda m: setattr(m.accuracy, "velocity_std_mps", -1.0),
            "accuracy.velocity_std_mps",
            "ACCURACY.VELOCITY_STD_MPS",
            "at least 0",
        ),
    ],
)
def test_each_broken_value_is_named_with_its_path_and_requirement(
    change: object, path: str, requirement: str, reason: str
) -> None:
    msg = _nav()
    change(msg)  # type: ignore[operator]
    (violation,) = field_violations(msg)  # type: ignore[arg-type]
    assert violation.path == path
    assert violation.requirement("IF-NAV-STATE") == f"IF-NAV-STATE-FIELD-{requirement}"
    assert reason in violation.reason


def test_rules_of_an_absent_nested_message_do_not_apply_and_repeated_elements_are_indexed() -> None:
    from hardpoint.alert.v1 import alert_pb2

    zone = alert_pb2.Zone(zone_id="z", kind=alert_pb2.ZONE_KIND_KEEP_OUT)
    assert field_violations(zone) == []  # no polygon, no circle: their rules do not apply
    zone.polygon.vertices.add(latitude_deg=1.0, longitude_deg=2.0)
    zone.polygon.vertices.add(latitude_deg=-91.0, longitude_deg=2.0)
    (violation,) = field_violations(zone)
    assert violation.path == "polygon.vertices[1].latitude_deg"
    assert violation.requirement("IF-ALERT-ZONE") == "IF-ALERT-ZONE-FIELD-POLYGON.VERTICES.LATITUDE_DEG"
