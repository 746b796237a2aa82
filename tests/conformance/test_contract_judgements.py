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
    JITTER_MS,
    declared_rate_problems,
    ends_key,
    judge_header,
    judge_key,
    judge_qos,
    judge_rate,
    window_s,
)
from hardpoint_runtime.conformance.checks_lifecycle import judge_heartbeat_gaps

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
    times = _ticks(10.0, 3.0) + _ticks(10.0, 3.0, start=103.8)  # one 800 ms hole; 500 ms deadline
    problems, _ = judge_rate(NAV, {"own": times}, 7.0)
    assert any("800 ms between two samples" in p and "deadline 500 ms" in p for p in problems)
    assert problems[0].startswith("IF-NAV-STATE-DEADLINE: key 'own'")


def test_the_deadline_allows_only_the_scheduling_jitter() -> None:
    # 650 ms of silence on a 500 ms deadline: the old 1.5 x allowance (750 ms) passed it; J is 100 ms.
    assert JITTER_MS == 100
    late = _ticks(10.0, 3.0) + _ticks(10.0, 3.0, start=103.65)
    problems, _ = judge_rate(NAV, {"own": late}, 7.0)
    assert [p for p in problems if "650 ms between two samples" in p and "600 ms allowed" in p]
    in_time = _ticks(10.0, 3.0) + _ticks(10.0, 3.0, start=103.59)  # 590 ms: within deadline + J
    assert judge_rate(NAV, {"own": in_time}, 7.0)[0] == []


def test_bursts_at_the_right_average_rate_fail_on_their_gaps_only() -> None:
    # 7 samples at once every 700 ms (broken_bursty): 10 Hz on average, inside 8..12 Hz, gaps of 700 ms.
    bursts = [100.0 + 0.7 * b + 0.0001 * i for b in range(9) for i in range(7)]
    problems, summary = judge_rate(NAV, {"own": bursts}, 6.0)
    assert len(problems) == 1, problems
    assert problems[0].startswith("IF-NAV-STATE-DEADLINE: key 'own': 699 ms between two samples (8 of 62 gaps")
    assert "longest gap 699 ms" in summary


def test_a_continuous_key_silent_to_the_end_of_the_window_fails() -> None:
    # broken_goes_silent: 3 s at 10 Hz, then nothing for the last 3 s; the rate while it published was right.
    times = _ticks(10.0, 3.0)
    problems, _ = judge_rate(NAV, {"own": times}, 6.0, until=106.0)
    assert problems == [
        "IF-NAV-STATE-LIVE: key 'own': nothing for the last 3000 ms of the window (continuous: a sample at "
        "least every 500 ms while active, 600 ms allowed)"
    ]
    assert judge_rate(NAV, {"own": times}, 3.0, until=103.05)[0] == []


def test_a_new_key_every_sample_is_no_continuous_key_kept_up() -> None:
    churn = {f"own-{n}": [100.0 + n / 10] for n in range(60)}
    problems, _ = judge_rate(NAV, churn, 6.0)
    assert problems
    assert all(p.startswith("IF-NAV-STATE-LIVE: ") and "only 1 samples" in p for p in problems)


def test_nothing_received_fails_for_a_periodic_interface() -> None:
    problems, _ = judge_rate(NAV, {}, 6.0)
    assert problems == ["IF-NAV-STATE-RATE: no sample in 6.0 s: the rate cannot be measured"]


def test_tracks_are_held_to_the_rate_of_record_declared_or_nominal() -> None:
    radar = {"radar/t1": _ticks(2.0, 6.0), "radar/t2": _ticks(2.0, 6.0)}
    # The reference radar (2 Hz per track) passes with its declared 2 Hz ...
    assert judge_rate(TRACK, radar, 6.0, declared=2.0)[0] == []
    # ... and fails without it: no track at 10 Hz - 50 % (broken_slow_radar).
    (slow,) = judge_rate(TRACK, radar, 6.0)[0]
    assert slow.startswith("IF-TRACK-SENSOR-RATE: no key is published at the rate of record")
    assert "2.00 Hz, below 5 Hz (nominal 10 Hz" in slow
    # Above the rate of record + tolerance fails, declared or not.
    too_fast, _ = judge_rate(TRACK, {"radar/t1": _ticks(40.0, 6.0)}, 6.0)
    assert any("at most 15 Hz" in p for p in too_fast)
    above_declared, _ = judge_rate(TRACK, {"radar/t1": _ticks(5.0, 6.0)}, 6.0, declared=2.0)
    assert any("at most 3 Hz (declared 2 Hz in the manifest" in p for p in above_declared)


def test_coasting_tracks_may_be_slower_than_the_fastest() -> None:
    # A track updated at 4 Hz and one coasting at once per 900 ms (within the 1000 ms deadline): both fine.
    tracks = {"eoir/t1": _ticks(4.0, 6.0), "eoir/t2": [100.0 + 0.9 * i for i in range(7)]}
    assert judge_rate(TRACK, tracks, 6.0, declared=5.0)[0] == []


def test_a_flood_of_fused_tracks_fails_the_upper_bound() -> None:
    problems, _ = judge_rate(FUSED, {"F-1": _ticks(20.0, 5.0)}, 6.0)
    assert problems == [
        "IF-TRACK-FUSED-RATE: key 'F-1': measured 20.00 Hz over 5.0 s (101 samples); allowed at most 2.4 Hz "
        "(nominal 2 Hz ± 20%)"
    ]


def test_the_silence_after_a_dropped_track_is_no_gap() -> None:
    times = [*_ticks(2.0, 3.0), 110.0, 110.5, 111.0]  # DROPPED at 103.0, the same id again 7 s later
    assert any("DEADLINE" in p for p in judge_rate(FUSED, {"F-1": times}, 12.0)[0])
    assert judge_rate(FUSED, {"F-1": times}, 12.0, ended={"F-1": [103.0]})[0] == []


def test_ends_key_is_a_dropped_lifecycle() -> None:
    assert ends_key(track_pb2.FusedTrack(lifecycle=track_pb2.TRACK_LIFECYCLE_DROPPED))
    assert not ends_key(track_pb2.FusedTrack(lifecycle=track_pb2.TRACK_LIFECYCLE_COASTING))
    assert not ends_key(nav_pb2.NavState(platform_id="own"))  # no lifecycle field


def test_a_declared_rate_must_be_possible_under_the_contract() -> None:
    assert declared_rate_problems(TRACK, None) == []
    assert declared_rate_problems(TRACK, 2.0) == []
    (above,) = declared_rate_problems(TRACK, 12.0)
    assert above.startswith("CF-BUS-007: the manifest declares 12 Hz for hardpoint.track.v1.SensorTrack, above")
    (slow,) = declared_rate_problems(TRACK, 0.5)
    assert "one sample every 2000 ms: longer than the contract's deadline of 1000 ms" in slow
    (aperiodic,) = declared_rate_problems(SPECS["hardpoint.alert.v1.Alert"], 1.0)
    assert "which is aperiodic" in aperiodic


def test_short_lived_keys_are_not_rated_but_a_window_without_any_rated_key_fails() -> None:
    problems, _ = judge_rate(FUSED, {"t1": [100.0, 100.01]}, 6.0)  # created and at once updated: no rate yet
    assert problems
    assert "cannot be measured" in problems[0]


def test_the_window_covers_the_slowest_rate_and_the_longest_deadline() -> None:
    assert window_s([NAV]) == 6.0
    assert window_s([SPECS["hardpoint.core.v1.ModuleHealth"]]) == 9.0  # 3 x 3000 ms deadline


def test_heartbeat_silences_are_judged_from_the_first_transition_to_the_last_answer() -> None:
    beats = [100.0, 101.0, 102.0, 103.0]
    assert judge_heartbeat_gaps(beats, 100.5, 103.5, 3000) == []
    # Nothing after 101 s until the end at 104.5 s (a hook that blocked): 3500 ms of silence.
    (silent,) = judge_heartbeat_gaps([100.0, 101.0], 100.5, 104.5, 3000)
    assert silent == "no heartbeat for 3500 ms from +0.5 s (deadline 3000 ms, 3100 ms allowed)"
    # None at all (the heartbeat turned off): the whole walk is one silence.
    assert judge_heartbeat_gaps([], 100.0, 104.2, 3000) == [
        "no heartbeat for 4200 ms from +0.0 s (deadline 3000 ms, 3100 ms allowed)"
    ]


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
