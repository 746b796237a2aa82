"""Descriptor-driven Hypothesis strategies of the robustness checks (``_strategies``), on every interface.

Valid and boundary messages pass the field check, invalid ones fail it, malformed payloads do not
decode, wrong-type payloads decode without their required field. The field check itself is tested
on hand-made messages, and the boundary strategies are shown to reach their edges.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

import hardpoint
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint.track.v1 import track_pb2
from hardpoint_runtime.conformance import _strategies as S

INTERFACES = hardpoint.all_interfaces()
TYPES = [spec.message_type for spec in INTERFACES.values()]
IDS = list(INTERFACES)
FAST = settings(
    max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
#: Searching for an edge: generation only (no shrinking, which would cost far more than the search).
SEARCH = settings(
    max_examples=3000,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def test_every_interface_is_covered() -> None:
    assert len(INTERFACES) >= 12
    for t in TYPES:
        for make in (S.valid_messages, S.boundary_messages, S.invalid_messages, S.malformed_payloads):
            assert isinstance(make(t), st.SearchStrategy), (make.__name__, t)


@pytest.mark.parametrize("message_type", TYPES, ids=IDS)
def test_valid_and_boundary_messages_pass_the_field_check(message_type: type[Message]) -> None:
    @FAST
    @given(st.one_of(S.valid_messages(message_type), S.boundary_messages(message_type)))
    def check(message: Message) -> None:
        assert type(message) is message_type
        assert S.field_violations(message) == [], message
        again = message_type.FromString(message.SerializeToString())
        assert S.field_violations(again) == []

    check()


@pytest.mark.parametrize("message_type", TYPES, ids=IDS)
def test_invalid_messages_fail_the_field_check(message_type: type[Message]) -> None:
    @FAST
    @given(S.invalid_messages(message_type))
    def check(message: Message) -> None:
        # The violation survives the wire: the receiver sees it too.
        assert S.field_violations(message_type.FromString(message.SerializeToString())), message

    check()


@pytest.mark.parametrize("message_type", TYPES, ids=IDS)
def test_malformed_payloads_do_not_decode(message_type: type[Message]) -> None:
    @FAST
    @given(S.malformed_payloads(message_type))
    def check(payload: bytes) -> None:
        with pytest.raises(DecodeError):
            message_type.FromString(payload)
        assert S.decode_violations(message_type, payload) is None

    check()


@pytest.mark.parametrize("message_type", TYPES, ids=IDS)
def test_wrong_type_payloads_decode_without_their_required_field(message_type: type[Message]) -> None:
    @FAST
    @given(S.wrong_type_payloads(message_type))
    def check(payload: bytes) -> None:
        violations = S.decode_violations(message_type, payload)
        assert violations is not None
        assert any(v.rule == "required" for v in violations), violations

    check()


# -- the edges are reached -------------------------------------------------------------------------------


class _Found(Exception):
    def __init__(self, example: Any) -> None:
        super().__init__("found")
        self.example = example


def _finds(strategy: st.SearchStrategy[Any], condition: Any) -> Any:
    """An example of ``strategy`` that meets ``condition``; fails when none is generated in the search budget."""

    @SEARCH
    @given(strategy)
    def search(example: Any) -> None:
        if condition(example):
            raise _Found(example)

    try:
        with warnings.catch_warnings():
            # Hypothesis describes the "failing" (found) example; a long one makes it warn about the repr size.
            warnings.simplefilter("ignore", HypothesisWarning)
            search()
    except _Found as found:
        return found.example
    pytest.fail("no generated example met the condition")


def test_boundary_messages_reach_nan_infinity_and_range_ends() -> None:
    nav = S.boundary_messages(nav_pb2.NavState)
    assert math.isnan(_finds(nav, lambda m: math.isnan(m.position.height_hae_m)).position.height_hae_m)
    _finds(nav, lambda m: m.position.height_hae_m == -math.inf)
    _finds(nav, lambda m: m.position.latitude_deg == 90.0)
    _finds(nav, lambda m: m.position.longitude_deg == -180.0)
    _finds(nav, lambda m: m.satellites_used == 255)
    _finds(nav, lambda m: m.attitude.pitch_rad == math.pi / 2)


def test_boundary_messages_reach_extreme_timestamps_long_strings_and_long_lists() -> None:
    track = S.boundary_messages(track_pb2.FusedTrack)
    _finds(track, lambda m: m.last_update_time_ns == 2**63 - 1)
    _finds(track, lambda m: m.last_update_time_ns == -(2**63))
    _finds(track, lambda m: len(m.track_id) == S.LONG_STRING)
    _finds(track, lambda m: len(m.covariance.upper_triangle) == S.LONG_REPEATED)
    _finds(track, lambda m: len(m.sources) == S.LONG_REPEATED)


def test_float32_bounds_are_rounded_inwards() -> None:
    """``percent`` is a float32 in [0, 100]; confidence in [0, 1]: the edge values are representable and inside."""
    progress = _finds(S.boundary_messages(tasking_pb2.TaskProgress), lambda m: m.percent == 100.0)
    assert S.field_violations(progress) == []
    track = _finds(S.boundary_messages(track_pb2.FusedTrack), lambda m: 0.99 < m.confidence < 1.0)
    assert S.field_violations(track) == []


def test_any_fields_pack_interface_messages() -> None:
    request = _finds(S.valid_messages(tasking_pb2.TaskRequest), lambda m: m.parameters.Is(alert_pb2.Zone.DESCRIPTOR))
    zone = alert_pb2.Zone()
    assert request.parameters.Unpack(zone)
    assert S.field_violations(zone) == []


def test_oneof_members_are_exclusive_and_proto3_optionals_are_independent() -> None:
    zones = S.valid_messages(alert_pb2.Zone)
    _finds(zones, lambda z: z.HasField("circle") and z.HasField("floor_hae_m") and z.HasField("ceiling_hae_m"))
    _finds(zones, lambda z: z.HasField("polygon"))
    _finds(zones, lambda z: z.WhichOneof("shape") is None)


def test_invalid_messages_break_each_kind_of_rule() -> None:
    bad = S.invalid_messages(nav_pb2.NavState)
    rules = {"required", "min", "max", "range", "enum"}
    for rule in rules:
        found = _finds(bad, lambda m, rule=rule: any(v.rule == rule for v in S.field_violations(m)))
        assert any(v.rule == rule for v in S.field_violations(found))


def test_a_type_without_rules_has_no_invalid_messages() -> None:
    with pytest.raises(ValueError, match="has no field rule"):
        S.invalid_messages(geo_pb2.PositionNed)


# -- the field check -----------------------------------------------------------------------------------------


def _nav(**fields: Any) -> nav_pb2.NavState:
    nav = nav_pb2.NavState(
        platform_id="p1",
        position=geo_pb2.GeoPosition(latitude_deg=50.0, longitude_deg=-1.0),
        fix_quality=nav_pb2.FIX_QUALITY_RTK_FIXED,
    )
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(nav, name).CopyFrom(value)
        else:
            setattr(nav, name, value)
    return nav


def test_field_check_accepts_a_good_message() -> None:
    assert S.field_violations(_nav()) == []


def test_field_check_names_nested_paths_and_rules() -> None:
    nav = _nav(attitude=geo_pb2.Attitude(pitch_rad=2.0), satellites_used=300)
    nav.position.latitude_deg = math.nan
    found = {(v.path, v.rule) for v in S.field_violations(nav)}
    assert found == {("attitude.pitch_rad", "max"), ("satellites_used", "max"), ("position.latitude_deg", "range")}
    assert "NaN is outside [-90, 90]" in str(next(v for v in S.field_violations(nav) if v.rule == "range"))


def test_field_check_required_fields() -> None:
    nav = _nav()
    nav.ClearField("position")
    nav.platform_id = ""
    nav.fix_quality = nav_pb2.FIX_QUALITY_UNSPECIFIED
    found = {(v.path, v.rule) for v in S.field_violations(nav)}
    assert found == {("position", "required"), ("platform_id", "required"), ("fix_quality", "required")}


def test_field_check_unknown_enum_values_and_repeated_elements() -> None:
    nav = _nav(fix_quality=77)
    assert [(v.path, v.rule) for v in S.field_violations(nav)] == [("fix_quality", "enum")]
    zone = alert_pb2.Zone(zone_id="z", kind=alert_pb2.ZONE_KIND_KEEP_OUT)
    zone.polygon.vertices.add(latitude_deg=10.0)
    zone.polygon.vertices.add(latitude_deg=95.0)
    assert [(v.path, v.rule) for v in S.field_violations(zone)] == [("polygon.vertices[1].latitude_deg", "max")]


def test_field_check_does_not_look_inside_any() -> None:
    request = tasking_pb2.TaskRequest(task_id="t", requester="r", target="m")
    request.parameters.Pack(_nav(satellites_used=999))
    assert S.field_violations(request) == []


def test_decode_violations_tells_undecodable_from_invalid() -> None:
    assert S.decode_violations(nav_pb2.NavState, b"\x0a\x05ab") is None
    violations = S.decode_violations(nav_pb2.NavState, b"")
    assert violations is not None
    assert {v.path for v in violations} == {"platform_id", "position", "fix_quality"}


# -- the edge sweep --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", TYPES, ids=IDS)
def test_minimal_valid_and_every_sweep_message_pass_the_field_check(message_type: type[Message]) -> None:
    assert S.field_violations(S.minimal_valid(message_type)) == []
    sweep = S.edge_sweep(message_type)
    assert len(sweep) >= 20
    for message in sweep:
        assert S.field_violations(message) == [], message
        message_type.FromString(message.SerializeToString())


def test_edge_sweep_sets_each_edge_of_each_field() -> None:
    sweep = S.edge_sweep(track_pb2.SensorTrack)
    north = [m.relative_position.north_m for m in sweep if m.HasField("relative_position")]
    assert any(math.isnan(v) for v in north)
    assert math.inf in north
    assert -math.inf in north
    assert {m.measurement_time_ns for m in sweep} >= {2**63 - 1, -(2**63)}
    assert any(m.confidence == 1.0 for m in sweep)
    assert any(len(m.sensor_id) == S.LONG_STRING for m in sweep)
    assert any(len(m.covariance.upper_triangle) == S.LONG_REPEATED for m in sweep)
    # Required fields never take their default value, even in the sweep.
    assert all(m.sensor_id and m.track_id and m.lifecycle for m in sweep)
