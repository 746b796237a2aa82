"""bench/pubsub.py runs end to end and prints the promised JSON shape; reliable contenders lose nothing.

Speed is never asserted: only that every figure is there, that the issue's
ratios (against plain cyclonedds-python, ``raw``) and the same ratios against
hardpoint's shim (``raw_shim``, keys ending in ``_vs_shim``) are both reported,
and that no sample of a reliable interface (SDK event, both raw contenders)
went missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pubsub.py"

#: The ratios computed against one baseline; each is reported plain (``raw``) and with ``_vs_shim``.
RATIOS = (
    "throughput_ratio_80b",
    "throughput_ratio_1k",
    "throughput_ratio_64k",
    "latency_p50_ratio",
    "latency_p99_ratio",
    "latency_ratio_by_size",
)
#: Keys the issue promises, plus the figures they are computed from.
KEYS = {
    *RATIOS,
    *(f"{k}_vs_shim" for k in RATIOS),
    "stream_vs_zenoh_1k",
    "stream_vs_zenoh_80b",
    "lost_reliable",
    "targets",
    "throughput_msgs_per_s",
    "latency_us",
    "lost",
    "machine",
    "config",
    "duration_s",
}
ROUND_TRIPS = 100


def _is_ratio(value: Any) -> bool:
    return isinstance(value, float) and value > 0


def test_pubsub_bench_prints_every_figure_and_loses_nothing_reliable() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--json",
            "--seconds",
            "0.5",
            "--sizes",
            "80",
            "--round-trips",
            str(ROUND_TRIPS),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"bench/pubsub.py failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout)  # one JSON object and nothing else on stdout

    missing = KEYS - result.keys()
    assert not missing, missing
    assert result["lost_reliable"] == 0, result["lost"]
    assert result["sdk_event_counters"]["lost"] == 0
    for kind in ("sdk_event", "raw", "raw_shim"):
        assert result["lost"][kind] == {"80": 0}, (kind, result["lost"])
    for kind in ("sdk_event", "raw", "raw_shim", "sdk_state", "sdk_stream", "zenoh"):
        assert result["throughput_msgs_per_s"][kind]["80"] > 0, kind
    for kind in ("sdk_event", "raw", "raw_shim", "zenoh"):
        assert result["latency_us"][kind]["80"]["n"] == ROUND_TRIPS, kind

    # Measured at 80 B only: the 80 B ratios are numbers against both baselines, the others null rather than missing.
    for suffix in ("", "_vs_shim"):
        for key in ("throughput_ratio_80b", "latency_p50_ratio", "latency_p99_ratio"):
            assert _is_ratio(result[key + suffix]), (key + suffix, result[key + suffix])
        assert result["throughput_ratio_1k" + suffix] is None
        assert result["throughput_ratio_64k" + suffix] is None
        by_size = result["latency_ratio_by_size" + suffix]
        assert set(by_size) == {"80b"}, by_size
        assert _is_ratio(by_size["80b"]["p50"]), by_size
        assert _is_ratio(by_size["80b"]["p99"]), by_size
        assert by_size["80b"]["p99"] == result["latency_p99_ratio" + suffix]
    # The ratios divide by plain cyclonedds-python's figure, the _vs_shim ones by the shim's.
    tput = result["throughput_msgs_per_s"]
    assert result["throughput_ratio_80b"] == tput["sdk_event"]["80"] / tput["raw"]["80"]
    assert result["throughput_ratio_80b_vs_shim"] == tput["sdk_event"]["80"] / tput["raw_shim"]["80"]
    assert result["stream_vs_zenoh_80b"] is not None

    # Only the keys are judged.
    assert set(result["targets"]) == {
        "throughput_ratio_1k",
        "throughput_ratio_64k",
        "latency_p99_ratio",
        "stream_vs_zenoh_1k",
        "stream_vs_zenoh_80b",
        "lost_reliable",
    }
    assert result["targets"]["latency_p99_ratio"]["value"] == result["latency_p99_ratio"]
    assert {"raw", "raw_shim"} <= result["config"].keys()
    assert result["machine"]["nproc"] >= 1
    assert result["machine"]["versions"]["cyclonedds"]
