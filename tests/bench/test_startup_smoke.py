"""bench/startup.py runs end to end and prints the promised JSON shape (speed is never asserted)."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "startup.py"


def test_startup_bench_prints_start_time_and_memory_per_count() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--counts", "1", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert proc.returncode == 0, f"bench/startup.py failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(proc.stdout)  # one JSON object and nothing else on stdout

    for key in ("start_s", "rss_mb", "pss_mb", "daemon_rss_mb", "daemon_cpu_s", "stop_s", "breakdown"):
        assert set(result[key]) == {"1"}, key
    assert result["start_s"]["1"] > 0
    assert result["rss_mb"]["1"] > result["daemon_rss_mb"]["1"] > 0  # the daemon plus its module's worker
    assert result["rss_per_module_mb"] > 0
    assert result["worker_cpu_s"] >= 0
    assert result["start_per_module_s"] is None  # one count gives no slope
    phases = result["breakdown"]["1"]
    assert {"boot_s", "launch_s", "drive_s", "transitions_s", "serve_s", "modules_s"} <= set(phases)
    assert phases["processes"] == 2
    assert "incomplete_log" not in phases
    assert [r["count"] for r in result["runs"]] == [1]
    assert {"python_s", "worker_imports_s", "worker_imports_and_participant_s"} <= set(result["baseline"])
    assert result["env"]["cpus"] >= 1


def test_the_trivial_copies_are_installed_under_their_manifest_names() -> None:
    """pyproject.toml lists trivial-1..trivial-N statically; the package makes the classes in a loop: in step."""
    import hardpoint
    import hardpoint_testmods

    eps = {ep.name: ep for ep in md.entry_points(group="hardpoint.modules") if ep.name.startswith("trivial-")}
    assert sorted(eps, key=lambda n: int(n.split("-")[1])) == [
        f"trivial-{i}" for i in range(1, hardpoint_testmods.TRIVIAL_COPIES + 1)
    ]
    for name, ep in eps.items():
        module = ep.load()
        assert hardpoint.ModuleHost.manifest_of(module).name == name
        assert isinstance(module(), hardpoint_testmods.Trivial)
