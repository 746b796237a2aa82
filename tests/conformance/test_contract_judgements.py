"""The pure judgements behind the bus checks (``checks_contract``), on hand-made frames and QoS.

The checks themselves run against real modules (``test_reference_modules.py``, ``test_broken_variants.py``);
these pin down the edge cases of each rule without a bus.
"""

from __future__ import annotations

import hardpoint
from hardpoint.core.v1 import header_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.track.v1 import track_pb2
from hardpoint_runtime.conformance._harness import Observed
from hardpoint_runtime.conformance.checks_contract import (
    judge_header,
    judge_key,
    judge_qos,
    judge_rate,
    window_s,
)

SPECS = hardpoint.all_interfaces()
NAV = SPECS["hardpoint.nav.v1.NavState"]
TRACK = SPECS["hardpoint.track.v1.SensorTrack"]
FUSED = SPECS["hardpoint.track.v1.FusedTrack"]


def _frame(spec: hardpoint.InterfaceSpec, payload: bytes, **header: object) -> Observed:
    fields: dict[str, object] = {
        "at": 0.0,
        "topic": spec.topic,
        "key": "",
        "source": "mod",
        "epoch": 7,
        "seq": 1,
        "count": 1,
        "stamp_ns": 1,
        "interface": spec.name,
        "schema_id": spec.schema_id,
        "payload": payload,
    }
    fields.update(header)
    return Observed(**fields)  # type: ignore[arg-type]


def _nav(platform: str = "own") -> bytes:
    return nav_pb2.NavState(platform_id=platform).SerializeToString()


def _ticks(rate_hz: float, seconds: float, start: float = 100.0) -> list[float]:
    return [start + i / rate_hz for i in range(int(seconds * rate_hz) + 1)]


# -- rate -------------------------------------------------------------------------------------


def test_a_continuous_interface_at_its_nominal_rate_passes() -> None:
    problems, summary = judge_rate(NAV, {"own": _ticks(10.0, 6.0)}, 6.0)
    assert problems == []
    assert "10.00..10.00 Hz" in summary


def test_a_continuous_interface_too_slow_or_too_fast_fails_with_the_measured_rate() -> None:
    slow, _ = judge_rate(NAV, {"own": _ticks(5.0, 6.0)}, 6.0)
    assert any("measured 5.00 Hz" in p and "8..12 Hz" in p for p in slow)
    fast, _ = judge_rate(NAV, {"own": _ticks(20.0, 6.0)}, 6.0)
    assert any("measured 20.00 Hz" in p for p in fast)


def test_a_gap_beyond_the_deadline_and_its_allowance_fails() -> None:
    times = _ticks(10.0, 3.0) + _ticks(10.0, 3.0, start=103.8)  # one 800 ms hole; 500 ms deadline, 750 allowed
    problems, _ = judge_rate(NAV, {"own": times}, 7.0)
    assert any("800 ms between two samples" in p and "deadline 500 ms" in p for p in problems)


def test_nothing_received_fails_for_a_periodic_interface() -> None:
    problems, _ = judge_rate(NAV, {}, 6.0)
    assert problems == ["no sample in 6.0 s: the rate cannot be measured"]


def test_tracks_below_nominal_pass_but_above_the_upper_bound_fail() -> None:
    # A 1 Hz radar that republishes its tracks at 2 Hz honours the deadline (1000 ms): it passes.
    ok, _ = judge_rate(TRACK, {"radar/t1": _ticks(2.0, 6.0), "radar/t2": _ticks(2.0, 6.0)}, 6.0)
    assert ok == []
    too_fast, _ = judge_rate(TRACK, {"radar/t1": _ticks(40.0, 6.0)}, 6.0)
    assert any("at most 15 Hz" in p for p in too_fast)


def test_short_lived_keys_are_not_rated_but_a_window_without_any_rated_key_fails() -> None:
    problems, _ = judge_rate(FUSED, {"t1": [100.0, 100.01]}, 6.0)  # created and at once updated: no rate yet
    assert problems
    assert "cannot be measured" in problems[0]


def test_the_window_covers_the_slowest_rate_and_the_longest_deadline() -> None:
    assert window_s([NAV]) == 6.0
    assert window_s([SPECS["hardpoint.core.v1.ModuleHealth"]]) == 9.0  # 3 x 3000 ms deadline


# -- QoS ----------------------------------------------------------------------------------------


def test_qos_of_the_sdk_writer_matches_and_another_class_does_not() -> None:
    from hardpoint._contracts import QosClass
    from hardpoint._dds._qos import writer_qos
    from hardpoint._transport import Channel

    def qos(cls: QosClass, depth: int) -> object:
        return writer_qos(Channel(NAV.topic, cls, True, depth, NAV.name, NAV.schema_id))

    assert judge_qos(NAV, qos(QosClass.STATE, 1)) == []
    wrong = judge_qos(NAV, qos(QosClass.EVENT, 1))
    assert any("durability Policy.Durability.Volatile (contract: TransientLocal)" in p for p in wrong)
    assert any("history Policy.History.KeepAll" in p for p in wrong)
    assert any("reliability Policy.Reliability.BestEffort" in p for p in judge_qos(NAV, qos(QosClass.STREAM, 1)))


# -- header and key -----------------------------------------------------------------------------


def test_a_good_stream_passes_the_header_rules() -> None:
    frames = [_frame(NAV, _nav(), key="own", seq=n) for n in (1, 2, 4)]  # a gap is loss, not a header fault
    assert judge_header(NAV, "mod", frames) == []


def test_each_header_fault_is_named_with_its_requirement() -> None:
    frames = [
        _frame(NAV, _nav(), key="own", seq=5),
        _frame(NAV, _nav(), key="own", seq=5),  # repeated sequence
        _frame(NAV, _nav(), key="own", seq=6, source="other"),
        _frame(NAV, _nav(), key="own", seq=7, schema_id="0000"),
        _frame(NAV, _nav(), key="own", seq=8, interface="hardpoint.nav.v1.Other"),
        _frame(NAV, _nav(), key="own", seq=9, count=2),  # STATE is never batched
        _frame(NAV, b"\xff\xff\xff", key="own", seq=10),
    ]
    problems = " | ".join(judge_header(NAV, "mod", frames))
    for requirement in ("IF-ENV-SEQ", "IF-ENV-SOURCE", "IF-ENV-SCHEMA", "IF-ENV-INTERFACE", "IF-ENV-BATCH"):
        assert requirement in problems
    assert "does not parse" in problems


def test_a_batch_must_hold_exactly_count_messages() -> None:
    item = track_pb2.SensorTrack(sensor_id="s", track_id="t").SerializeToString()
    good = header_pb2.Batch(items=[item, item]).SerializeToString()
    assert judge_header(TRACK, "mod", [_frame(TRACK, good, count=2)]) == []
    problems = judge_header(TRACK, "mod", [_frame(TRACK, good, count=3)])
    assert problems == ["sample seq 1: batch of count 3 holds 2 messages (IF-ENV-BATCH)"]


def test_sequences_are_per_key_for_keyed_interfaces() -> None:
    frames = [_frame(NAV, _nav("a"), key="a", seq=1), _frame(NAV, _nav("b"), key="b", seq=1)]
    assert judge_header(NAV, "mod", frames) == []


def test_the_envelope_key_must_be_the_payload_key() -> None:
    assert judge_key(NAV, [_frame(NAV, _nav("own"), key="own")]) == []
    (problem,) = judge_key(NAV, [_frame(NAV, _nav("own"), key="own-v2")])
    assert "envelope key 'own-v2', should be 'own'" in problem
    # Keyless interfaces (a STREAM, even with key fields) carry an empty envelope key.
    track = track_pb2.SensorTrack(sensor_id="s", track_id="t").SerializeToString()
    (keyless,) = judge_key(TRACK, [_frame(TRACK, track, key="s/t")])
    assert "should be ''" in keyless
