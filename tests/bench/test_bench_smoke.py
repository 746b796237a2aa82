"""bench/pubsub.py runs end to end and prints the promised JSON shape; reliable contenders lose nothing.

Speed is never asserted: only that every figure is there and that no sample of a
reliable interface (SDK event, raw cyclonedds-python) went missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pubsub.py"

#: Keys the issue promises, plus the figures they are computed from.
KEYS = {
    "throughput_ratio_1k",
    "throughput_ratio_64k",
    "latency_p50_ratio",
    "latency_p99_ratio",
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


def test_pubsub_bench_prints_every_figure_and_loses_nothing_reliable() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", "--seconds", "0.5", "--sizes", "80", "--round-trips", "100"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, f"bench/pubsub.py failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout)  # one JSON object and nothing else on stdout

    missing = KEYS - result.keys()
    assert not missing, missing
    assert result["lost_reliable"] == 0, result["lost"]
    assert result["sdk_event_counters"]["lost"] == 0
    for kind in ("sdk_event", "raw", "sdk_state", "sdk_stream", "zenoh"):
        assert result["throughput_msgs_per_s"][kind]["80"] > 0, kind
    for kind in ("sdk_event", "raw", "zenoh"):
        assert result["latency_us"][kind]["80"]["n"] == 100, kind
    # Measured at 80 B only: the 80 B ratios are numbers, the others are null rather than missing.
    assert result["stream_vs_zenoh_80b"] is not None
    assert result["latency_p99_ratio"] is not None
    assert result["throughput_ratio_1k"] is None
    assert set(result["targets"]) == {
        "throughput_ratio_1k",
        "throughput_ratio_64k",
        "latency_p99_ratio",
        "stream_vs_zenoh_1k",
        "stream_vs_zenoh_80b",
        "lost_reliable",
    }
    assert result["machine"]["nproc"] >= 1
    assert result["machine"]["versions"]["cyclonedds"]
