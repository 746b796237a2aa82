"""Issue 12 (B1): times of validity (``checks_time``, CF-TIME) and resources while active (``checks_resources``,
CF-RES), judged on the hosted module.

Three layers:

- the pure judgements (bounds, offsets, growth) on made-up numbers, and the ``/proc`` sampling on this
  process: fast, no DDS;
- the bounded form, in CI: each variant of ``tests/fixtures/broken_variants_more`` built as a wheel (the
  variant's package and its one entry point, as a supplier's wheel) and run through the real CLI with
  ``--only`` its check module and ``--sign-key``, in parallel with the reference nav's wheel through both
  check modules; each variant must fail exactly its check, with the check's name and requirement ID in the
  JSON summary, in the signed evidence's full text and in what verifying that evidence says; the reference
  nav must pass every check of both, each having judged something;
- the full form (``-m slow``): every variant through every check module, each failing its check and the
  consequences pinned below, and nothing else.

The other reference modules pass both check modules in their certified runs (``test_reference_modules.py``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from wheelkit import REPO, nav_copy_wheel, write_wheel

import hardpoint
from hardpoint_runtime.conformance import checks_resources as res
from hardpoint_runtime.conformance import checks_time as tm
from hardpoint_runtime.conformance._active import process_tree, sample_resources

NAV = "hardpoint.nav.v1.NavState"
SENSOR = "hardpoint.track.v1.SensorTrack"
VARIANTS_SRC = REPO / "tests" / "fixtures" / "broken_variants_more"
#: One ``hardpoint conformance check`` run may take this long on a loaded 2-core machine.
RUN_TIMEOUT_S = 600
#: Runs at once (each mostly waits for its observation window).
PARALLEL = 6
TIME_CHECKS = {
    "test_time_of_validity_not_in_future": "CF-TIME-002",
    "test_time_of_validity_not_stale": "CF-TIME-003",
    "test_content_times_within_bounds": "CF-TIME-004",
}
RESOURCE_CHECKS = {
    "test_memory_bounded": "CF-RES-002",
    "test_threads_bounded": "CF-RES-003",
    "test_open_files_bounded": "CF-RES-004",
}


# --------------------------------------------------------------------------- pure judgements


def test_age_bounds_follow_the_contract() -> None:
    specs = hardpoint.all_interfaces()
    # A continuous interface: its deadline (500 ms) + 1 s.
    assert tm.age_bound(specs[NAV])[0] == pytest.approx(1.5)
    assert "continuous" in tm.age_bound(specs[NAV])[1]
    # Tracks and events: the longer of 30 s and ten deadlines.
    for name in (SENSOR, "hardpoint.track.v1.FusedTrack", "hardpoint.alert.v1.Alert", "hardpoint.tasking.v1.TaskAck"):
        assert tm.age_bound(specs[name])[0] == pytest.approx(30.0), name


def test_judge_times_separates_future_stale_and_unjudged() -> None:
    w = 1_765_000_000_000_000_000  # a write time in 2025
    items = [
        ("ok now", w, w),
        ("ok late", w + 400_000_000, w),  # 0.4 s after: within the tolerance
        ("future", w + 600_000_000, w),  # 0.6 s after
        ("ok old", w - 1_400_000_000, w),
        ("stale", w - 1_600_000_000, w),
        ("ms unit", w // 1_000_000, w),  # milliseconds read as nanoseconds: 1970
        ("unset", 0, w),
        ("no write time", w - 10**12, 0),  # not judged
    ]
    future, stale, count = tm.judge_times(items, future_s=0.5, past_s=1.5)
    assert count == 7
    assert [p.split(":")[0] for p in future] == ["future"]
    assert [p.split(":")[0] for p in stale] == ["stale", "ms unit", "unset"]
    assert "0.600 s after its write" in future[0]
    assert "1970-01-" in stale[1]
    assert "days" in stale[1]
    # Minutes are said in minutes, with both times in UTC.
    _, stale, _ = tm.judge_times([("seq 1", w - 300 * 10**9, w)], future_s=0.5, past_s=1.5)
    assert stale == [
        "seq 1: valid at 2025-12-06T05:41:40.000+00:00, written 2025-12-06T05:46:40.000+00:00: "
        "300.0 s (5.0 min) before its write"
    ]


def test_content_times_are_read_from_every_message_of_a_batch() -> None:
    from hardpoint.core.v1 import header_pb2
    from hardpoint.track.v1 import track_pb2
    from hardpoint_runtime.conformance._harness import Observed

    spec = hardpoint.all_interfaces()[SENSOR]
    w = 1_765_000_000_000_000_000
    fresh = track_pb2.SensorTrack(sensor_id="s", track_id="1", measurement_time_ns=w - 100_000_000)
    old = track_pb2.SensorTrack(sensor_id="s", track_id="2", measurement_time_ns=w - 600 * 10**9)
    batch = header_pb2.Batch(items=[fresh.SerializeToString(), old.SerializeToString()]).SerializeToString()

    def frame(seq: int, count: int, payload: bytes) -> Observed:
        return Observed(0.0, spec.topic, "", "radar", 1, seq, count, w, SENSOR, spec.schema_id, payload, w)

    frames = [frame(7, 2, batch), frame(9, 1, fresh.SerializeToString()), frame(10, 1, b"\xff\xff")]
    times = tm.content_times(spec, "measurement_time_ns", frames)
    assert [where for where, _, _ in times] == [
        "sample seq 7 measurement_time_ns",
        "sample seq 8 measurement_time_ns",
        "sample seq 9 measurement_time_ns",
    ]  # the undecodable one is the header check's
    future, stale, count = tm.judge_times(times, future_s=0.5, past_s=tm.age_bound(spec)[0])
    assert (future, count) == ([], 3)
    assert len(stale) == 1
    assert stale[0].startswith("sample seq 8 measurement_time_ns: ")
    assert "600.0 s (10.0 min) before its write" in stale[0]


def _series(values: list[float], start: float = 0.0, step: float = 0.25) -> list[tuple[float, float]]:
    return [(start + i * step, v) for i, v in enumerate(values)]


def test_growth_fails_a_steady_leak_only() -> None:
    memory = res.LIMITS["memory"]
    steady = _series([50.0 + 5.0 * i for i in range(25)])  # 20 MiB/s over 6 s
    growth = res.measure(steady, 0.0, 6.0)
    assert growth is not None
    assert growth.samples == 25
    assert (growth.first, growth.middle, growth.last) == (55.0, 110.0, 165.0)
    assert res.judge_growth(growth, memory)
    # The same growth at once (a buffer allocated once): only in one half, not a leak.
    step = _series([50.0] * 12 + [170.0] * 13)
    once = res.measure(step, 0.0, 6.0)
    assert once is not None
    assert once.total == 120.0
    assert not res.judge_growth(once, memory)
    # Flat, with one transient spike at each edge: the medians ignore it.
    spiky = _series([500.0] + [50.0] * 23 + [500.0])
    flat = res.measure(spiky, 0.0, 6.0)
    assert flat is not None
    assert flat.total == 0.0
    assert not res.judge_growth(flat, memory)
    # Slower than the limit over the window: not seen.
    slow = res.measure(_series([50.0 + 1.0 * i for i in range(25)]), 0.0, 6.0)
    assert slow is not None
    assert not res.judge_growth(slow, memory)
    # Threads: one per second fails; three at once passes.
    threads = res.LIMITS["threads"]
    one_per_s = res.measure(_series([7.0 + (i // 4) for i in range(25)]), 0.0, 6.0)
    assert one_per_s is not None
    assert res.judge_growth(one_per_s, threads)
    pool = res.measure(_series([7.0] * 10 + [13.0] * 15), 0.0, 6.0)
    assert pool is not None
    assert not res.judge_growth(pool, threads)
    # Samples outside the window do not count; too few is no judgement.
    assert res.measure(_series([1.0] * 8), 0.0, 6.0) is None
    assert res.measure(_series([1.0] * 40), 100.0, 106.0) is None


def test_sampling_reads_this_process_and_its_children() -> None:
    before = sample_resources(os.getpid())
    assert before is not None
    assert before.rss_kib > 10_000
    assert before.threads >= 1
    assert before.fds >= 3
    assert before.processes >= 1
    files = [open(os.devnull, "rb") for _ in range(20)]  # noqa: SIM115 - held open on purpose
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while child.pid not in process_tree(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in process_tree(os.getpid())
        after = sample_resources(os.getpid())
        assert after is not None
        assert after.processes >= 2  # this process and the child at least
        assert after.fds >= before.fds + 20
        alone = sample_resources(child.pid)
        assert alone is not None
        assert alone.processes == 1
        assert alone.threads >= 1
        assert after.rss_kib >= before.rss_kib + alone.rss_kib // 2  # the child's memory counts too
    finally:
        child.kill()
        child.wait()
        for f in files:
            f.close()
    assert process_tree(child.pid) == []
    assert sample_resources(child.pid) is None


# --------------------------------------------------------------------------- variants as wheels


@dataclass(frozen=True)
class Variant:
    """A variant and what the suite must say about it."""

    name: str
    #: The failing check this variant exists for, with the requirement ID it must name.
    fails: Mapping[str, str]
    #: The check module the bounded form runs (``--only``).
    only: str
    #: Other checks that fail as a direct consequence of the same fault (full form).
    consequences: Mapping[str, str] = field(default_factory=dict)


#: A navigation state stamped minutes off: the sensors that geo-reference their tracks with it find no NavState
#: within their 0.5 s gap of any measurement, and publish nothing geo-referenced.
_NAV_UNUSABLE = {"test_interop_as_provider": "CF-IOP-002"}

VARIANTS = [
    Variant(
        "broken_stale_time",
        {"test_time_of_validity_not_stale": "CF-TIME-003"},
        "checks_time",
        _NAV_UNUSABLE,
    ),
    Variant(
        "broken_future_time",
        {"test_time_of_validity_not_in_future": "CF-TIME-002"},
        "checks_time",
        _NAV_UNUSABLE,
    ),
    Variant("broken_memory_leak", {"test_memory_bounded": "CF-RES-002"}, "checks_resources"),
    Variant("broken_thread_leak", {"test_threads_bounded": "CF-RES-003"}, "checks_resources"),
    Variant("broken_fd_leak", {"test_open_files_bounded": "CF-RES-004"}, "checks_resources"),
]


def variant_wheel(directory: Path, name: str, *, version: str = "1.0.0") -> Path:
    """A wheel of one variant: the package ``hardpoint_broken_variants_more`` and the entry point ``name`` only."""
    project = tomllib.loads((VARIANTS_SRC / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    value = project["entry-points"]["hardpoint.modules"][name]
    source = VARIANTS_SRC / "src"
    files = {
        str(path.relative_to(source)): path.read_bytes()
        for path in sorted((source / "hardpoint_broken_variants_more").rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return write_wheel(
        directory, distribution=f"hardpoint_{name}", version=version, entry_points={name: value}, files=files
    )


@dataclass(frozen=True)
class Run:
    wheel: Path
    report: Path
    code: int
    result: dict[str, Any]
    stderr: str
    seconds: float

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["check"]: c for c in self.result.get("checks", [])}

    def signed_text(self) -> str:
        """The signed evidence's payload (the in-toto statement), as text."""
        envelope = json.loads((self.report / "evidence.dsse.json").read_text(encoding="utf-8"))
        return base64.b64decode(envelope["payload"]).decode("utf-8")

    def signed_checks(self) -> dict[str, dict[str, Any]]:
        return {c["check"]: c for c in json.loads(self.signed_text())["predicate"]["checks"]}


def _check(wheel: Path, work: Path, key: Path, only: tuple[str, ...]) -> Run:
    report = work / "report"
    args = [arg for module in only for arg in ("--only", module)]
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime.cli", "conformance", "check", str(wheel), "--json",
         "--report", str(report), "--sign-key", str(key), *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result = {}
    return Run(wheel, report, proc.returncode, result, proc.stderr[-3000:], time.monotonic() - began)


def _runs(root: Path, key: Path, *, bounded: bool) -> dict[str, Run]:
    """Every variant (bounded: with ``--only`` its check module) and, bounded, the reference nav through both."""
    jobs: dict[str, tuple[Path, Path, tuple[str, ...]]] = {}
    for v in VARIANTS:
        work = root / v.name
        work.mkdir(parents=True)
        jobs[v.name] = (variant_wheel(work, v.name), work, (v.only,) if bounded else ())
    if bounded:
        work = root / "nav"
        work.mkdir(parents=True)
        jobs["nav"] = (nav_copy_wheel(work), work, ("checks_time", "checks_resources"))
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {name: pool.submit(_check, wheel, work, key, only) for name, (wheel, work, only) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def bounded_runs(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Run]:
    return _runs(tmp_path_factory.mktemp("time-resources-bounded"), keys[0], bounded=True)


@pytest.fixture(scope="module")
def full_runs(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Run]:
    return _runs(tmp_path_factory.mktemp("time-resources-full"), keys[0], bounded=False)


def _assert_fails_as_expected(variant: Variant, run: Run, public_key: Path, *, full: bool) -> None:
    from hardpoint_runtime.conformance._evidence import load_trusted_keys, verify_evidence
    from hardpoint_runtime.update._errors import EvidenceFailingError

    assert run.result, f"{variant.name}: no JSON result (exit {run.code}):\n{run.stderr}"
    checks = run.checks
    failing = {name for name, c in checks.items() if c["outcome"] != "passed"}
    summary = {name: checks[name].get("message", "")[:400] for name in sorted(failing)}
    assert run.code == 1, f"{variant.name}: exit {run.code}, verdict {run.result['verdict']}"
    assert run.result["verdict"] == "fail"
    assert run.result["subject"]["kind"] == "wheel"
    ran = set(TIME_CHECKS if variant.only == "checks_time" else RESOURCE_CHECKS)
    assert ran <= set(checks), f"{variant.name}: the checks of {variant.only} did not all run: {sorted(checks)}"
    consequences = dict(variant.consequences) if full else {}
    if full:
        assert set(TIME_CHECKS) | set(RESOURCE_CHECKS) | set(consequences) <= set(checks)
    assert failing == set(variant.fails) | set(consequences), json.dumps(summary, indent=1)
    signed = run.signed_checks()
    text = run.signed_text()
    for name, requirement in {**variant.fails, **consequences}.items():
        check = checks[name]
        assert check["outcome"] == "failed", f"{name}: {check['outcome']} (an error is not a verdict): {check}"
        assert requirement in check["requirements"], f"{name} does not cite {requirement}: {check['requirements']}"
        assert check["message"].startswith(f"Failed: {requirement}"), f"{name}: {check['message'][:300]}"
        # The signed evidence's full text names the check and its requirement, with the whole reason.
        assert signed[name]["outcome"] == "failed"
        assert requirement in signed[name]["requirements"]
        assert signed[name]["message"] == check["message"]
        assert name in text
        assert requirement in text
    # Verified with the signer's key, the evidence is genuine and refused for exactly these failures.
    digest = run.result["subject"]["sha256"]
    with pytest.raises(EvidenceFailingError) as refused:
        verify_evidence(
            (run.report / "evidence.dsse.json").read_text(encoding="utf-8"),
            wheel_sha256=digest,
            trusted_keys=load_trusted_keys([public_key]),
        )
    named = {entry.split(" [", 1)[0] for entry in refused.value.failing}
    assert named == failing
    for name, requirement in variant.fails.items():
        assert any(e.startswith(f"{name} [") and requirement in e for e in refused.value.failing), refused.value
    if full:  # one fault: every other check ran and passed
        assert len(checks) - len(failing) >= 20, sorted(checks)


@pytest.mark.integration
@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_fails_its_check_in_signed_evidence(
    variant: Variant, bounded_runs: dict[str, Run], keys: tuple[Path, Path]
) -> None:
    """The bounded form: the variant's wheel through its check module only."""
    run = bounded_runs[variant.name]
    _assert_fails_as_expected(variant, run, keys[1], full=False)
    print(f"{variant.name}: {sorted(variant.fails)} failed as expected in {run.seconds:.0f} s")


@pytest.mark.integration
@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
def test_reference_nav_passes_time_and_resources(bounded_runs: dict[str, Run]) -> None:
    """The reference nav's wheel through both check modules: every check passes, each having judged something."""
    run = bounded_runs["nav"]
    assert run.result, f"nav: no JSON result (exit {run.code}):\n{run.stderr}"
    checks = run.checks
    failing = {name: c.get("message", c["outcome"]) for name, c in checks.items() if c["outcome"] != "passed"}
    assert not failing, json.dumps(failing, indent=1)
    assert run.code == 0
    assert run.result["verdict"] == "pass"
    assert set(checks) == set(TIME_CHECKS) | set(RESOURCE_CHECKS)
    for name, requirement in {**TIME_CHECKS, **RESOURCE_CHECKS}.items():
        assert requirement in checks[name]["requirements"], checks[name]
    # NavState is judged in every sample; tracks' content times do not apply to a navigation module.
    assert f"of {NAV} (time of validity -0." in checks["test_time_of_validity_not_stale"]["judged"]
    assert checks["test_content_times_within_bounds"]["judged"].startswith("not applicable: ")
    for name in RESOURCE_CHECKS:
        assert " samples of the " in checks[name]["judged"], checks[name]
        assert " -> " in checks[name]["judged"], checks[name]
    assert run.signed_checks().keys() == checks.keys()
    print(
        f"nav: {len(checks)} checks passed in {run.seconds:.0f} s: " + "; ".join(c["judged"] for c in checks.values())
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S * 2)
@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant_fails_its_check_and_only_its_consequences(
    variant: Variant, full_runs: dict[str, Run], keys: tuple[Path, Path]
) -> None:
    """The full form: every check module on the variant's wheel; its check and the consequences pinned fail."""
    run = full_runs[variant.name]
    _assert_fails_as_expected(variant, run, keys[1], full=True)
    print(f"{variant.name}: full run in {run.seconds:.0f} s")
