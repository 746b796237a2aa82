"""The patrol platform under attack by a hostile DDS participant, compared with an undisturbed run.

Acceptance 1 of the bus-intrusion issue. Two patrol demos run at the same time, each on a DDS
domain of its own, with the same duration (so the same scenario): one undisturbed, one attacked.
Once every module of the attacked platform is active, ``hostile.py`` (plain ``cyclonedds``, the
packaged loopback configuration, no hardpoint code on the bus) joins its domain and for
:data:`ATTACK_S` seconds writes about :data:`RATE` samples per second on every topic it discovers:
mutated copies of real samples (sequence numbers, sources, epochs, interfaces, schema ids, payload
bytes, counts), verbatim replays, random values, forged schema announcements, and disposes and
unregisters of real instances (see its docstring). When it is done (and the daemon's rate window
has passed), the test asks the attacked daemon ``modules``, ``topics`` and ``events``, and the
undisturbed one ``topics``, then lets both demos finish.

Then, each its own test below:

- the attacker really did what it should (ran at least 30 s with the platform up, on every real
  topic including health, schemas and tasking, matched by the platform's readers, loopback only);
- every module is active with 0 restarts;
- the daemon log holds no traceback (nor do the modules' logs);
- ``hardpoint topics`` still lists the real interfaces, with the publishers and about the rates of
  the undisturbed run, and nothing the attacker made up;
- the patrol's outputs are those of the undisturbed run: as many fused tracks formed, the same
  zone alerts raised and cleared (each alert mapped to the scenario's vessel and zone);
- last, in a block of its own: the intrusion counters (``topics --json``: ``refused``,
  ``intrusions``) and events (``bus_intrusion``) name the attacker's writers, and only them.

Everything the run produced (summaries, CLI outputs, the attacker's report, logs) is kept in the
folder printed with each failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hardpoint_runtime.conformance._harness import free_domain_id, release_domain_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).resolve().with_name("hostile.py")
HARDPOINT = [sys.executable, "-m", "hardpoint_runtime.cli"]
MODULES = {"nav", "radar", "eoir", "fusion", "geofence", "recorder"}

#: Seconds of scenario time of both demos. Within 48 s the patrol raises three zone alerts (cargo-1
#: and ferry-1 into the anchorage, fast-1 into the platform zone) and clears one (fast-1 leaves at
#: 41 s); cargo-1 leaves the anchorage only at 52 s. Long enough for the attack, the daemon's rate
#: window after it and the queries, before the demo stops.
DURATION_S = 48.0
#: Seconds the attacker writes (the acceptance asks for at least 30).
ATTACK_S = 32.0
#: Samples per second the attacker writes, all topics together (the attack in the issue: ~550/s).
RATE = 550.0
SEED = 20240611
#: The daemon measures topic rates over this window (hardpoint_runtime._topics.RATE_WINDOW_S); the
#: test asks for topics once the window holds nothing of the attack.
RATE_WINDOW_S = 5.0
#: Topics the patrol platform has on its bus whoever publishes: the attacker must hit every one.
EXPECTED_TOPICS = {
    "hp/core/v1/health",
    "hp/schemas",
    "hp/nav/v1/state",
    "hp/track/v1/sensor",
    "hp/track/v1/fused",
    "hp/alert/v1/alert",
    "hp/alert/v1/ack",
    "hp/alert/v1/zone",
    "hp/tasking/v1/request",
    "hp/tasking/v1/cancel",
    "hp/tasking/v1/ack",
    "hp/tasking/v1/progress",
    "hp/tasking/v1/result",
}
#: Refusal counters of a topic in ``topics --json`` (the intrusion reporting's interface).
REFUSED_KINDS = (
    "impersonation",
    "forged_heartbeat",
    "implausible",
    "duplicates",
    "undecodable",
    "schema_mismatch",
    "wrong_interface",
)


# -- running the two demos and the attacker ---------------------------------------------------------


def _demo(out: Path, domain: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARDPOINT, "demo", "--duration", str(DURATION_S), "--no-live", "--json", "--out", str(out),
         "--domain-id", str(domain)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[dict[str, Any], str, int]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {}, err + "\n[test: the demo did not finish in time and was killed]", -9
    try:
        summary = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    return summary, err, proc.returncode


def _cli(socket: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HARDPOINT, "--socket", str(socket), *args, "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _result(proc: subprocess.Popen[str], timeout: float = 30) -> Any:
    """The JSON a CLI command printed, or ``{"error": ...}``."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"timed out: {err[-2000:]}"}
    if proc.returncode != 0:
        return {"error": f"exit code {proc.returncode}: {err[-2000:]}"}
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return {"error": f"not JSON: {out[-2000:]}"}


def _all_active(socket: Path) -> bool:
    found = _result(_cli(socket, "modules"), timeout=20)
    if not isinstance(found, list):
        return False
    return {m["name"] for m in found} >= MODULES and all(m["state"] == "active" for m in found)


@dataclass
class Runs:
    """Everything the two demos and the attacker produced."""

    folder: Path
    undisturbed: dict[str, Any] = field(default_factory=dict)  # the demo's JSON summary
    attacked: dict[str, Any] = field(default_factory=dict)
    undisturbed_err: str = ""
    attacked_err: str = ""
    undisturbed_rc: int = 0
    attacked_rc: int = 0
    start_ns: dict[str, int] = field(default_factory=dict)  # scenario time zero of each run
    hostile: dict[str, Any] = field(default_factory=dict)  # the attacker's report
    hostile_rc: int = 0
    hostile_err: str = ""
    queried_while_up: bool = False
    seconds_left_at_query: float = 0.0
    after: dict[str, Any] = field(default_factory=dict)  # attacked daemon: modules, topics, events
    baseline: dict[str, Any] = field(default_factory=dict)  # undisturbed daemon: modules, topics
    daemon_log: str = ""
    module_logs: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def where(self) -> str:
        return f"(everything of this run is in {self.folder})"


def _start_ns(out: Path) -> int:
    try:
        return int((out / "scenario-start").read_text())
    except (OSError, ValueError):
        return 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Both demos and the attack, once for every test of this file (about 60 s)."""
    folder = tmp_path_factory.mktemp("hostile-platform")
    r = Runs(folder)
    t0 = time.monotonic()
    # Domain ids as the ``domain_id`` fixture (tests/conftest.py) takes them: from the machine's lock folder.
    quiet_domain, attacked_domain = free_domain_id(), free_domain_id()
    quiet_out, attacked_out = folder / "undisturbed", folder / "attacked"
    socket = attacked_out / "state" / "hardpointd.sock"
    quiet_socket = quiet_out / "state" / "hardpointd.sock"
    report = folder / "hostile-report.json"
    quiet = _demo(quiet_out, quiet_domain)
    attacked = _demo(attacked_out, attacked_domain)
    hostile: subprocess.Popen[str] | None = None
    try:
        # The platform is up: the demo started the scenario (every module active) and the daemon says so.
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline and attacked.poll() is None and not (attacked_out / "scenario-start").exists()
        ):
            time.sleep(0.2)
        while time.monotonic() < deadline and attacked.poll() is None and not _all_active(socket):
            time.sleep(0.3)
        r.timings["platform_up_s"] = time.monotonic() - t0
        if attacked.poll() is None and (attacked_out / "scenario-start").exists():
            hostile = subprocess.Popen(
                [sys.executable, str(HOSTILE), "--domain-id", str(attacked_domain), "--duration", str(ATTACK_S),
                 "--rate", str(RATE), "--seed", str(SEED), "--report", str(report)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
            try:
                _, r.hostile_err = hostile.communicate(timeout=ATTACK_S + 60)
            except subprocess.TimeoutExpired:
                os.killpg(hostile.pid, signal.SIGKILL)
                _, r.hostile_err = hostile.communicate()
            r.hostile_rc = hostile.returncode
            r.timings["attack_done_s"] = time.monotonic() - t0
            if report.is_file():
                r.hostile = json.loads(report.read_text())
            # Ask once the daemon's rate window holds none of the attack; the demo must still be running.
            ended = float(r.hostile.get("ended") or time.time())
            time.sleep(max(0.0, ended + RATE_WINDOW_S + 0.5 - time.time()))
            start_ns = _start_ns(attacked_out)
            r.seconds_left_at_query = start_ns / 1e9 + DURATION_S - time.time() if start_ns else 0.0
            r.queried_while_up = attacked.poll() is None
            procs = {c: _cli(socket, c) for c in ("modules", "topics", "events")}
            quiet_procs = {c: _cli(quiet_socket, c) for c in ("modules", "topics")}
            r.after = {c: _result(p) for c, p in procs.items()}
            r.baseline = {c: _result(p) for c, p in quiet_procs.items()}
            r.queried_while_up = r.queried_while_up and attacked.poll() is None
        remaining = DURATION_S + 60
        r.attacked, r.attacked_err, r.attacked_rc = _finish(attacked, remaining)
        r.undisturbed, r.undisturbed_err, r.undisturbed_rc = _finish(quiet, remaining)
    finally:
        for proc in (hostile, attacked, quiet):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        release_domain_id(quiet_domain)
        release_domain_id(attacked_domain)
    r.timings["total_s"] = time.monotonic() - t0
    r.start_ns = {"undisturbed": _start_ns(quiet_out), "attacked": _start_ns(attacked_out)}
    daemon_log = attacked_out / "hardpointd.log"
    r.daemon_log = daemon_log.read_text(errors="replace") if daemon_log.is_file() else ""
    r.module_logs = {
        p.stem: p.read_text(errors="replace") for p in sorted((attacked_out / "state" / "logs").glob("*.log"))
    }
    (folder / "runs.json").write_text(
        json.dumps(
            {k: v for k, v in r.__dict__.items() if k not in ("folder", "daemon_log", "module_logs")},
            indent=2,
            default=str,
        )
    )
    return r


# -- what the summaries say ---------------------------------------------------------------------------


def _truth_events() -> list[Any]:
    from hardpoint_sim.scenario import load_scenario

    return load_scenario("builtin:patrol").zone_events(until_s=DURATION_S)


def _zone_alerts(alert_ids: list[str], start_ns: int) -> list[tuple[str, str]]:
    """Each alert id (``geofence/<zone>/<track>/<time ns>``) as (vessel, zone), sorted.

    The vessel is the scenario target whose truth entry into that zone is nearest the alert's time
    (at most 5 s apart); an alert that matches no entry is ``("? at <t> s", zone)``, one that is
    not a geofence alert id at all ``("?", alert id)``.
    """
    entries = [e for e in _truth_events() if e.entered]
    out = []
    for alert_id in alert_ids:
        parts = alert_id.split("/")
        try:
            if len(parts) != 4 or parts[0] != "geofence":
                raise ValueError(alert_id)
            zone, t_s = parts[1], (int(parts[3]) - start_ns) / 1e9
        except ValueError:
            out.append(("?", alert_id))
            continue
        near = [e for e in entries if e.zone_id == zone and abs(e.t_s - t_s) <= 5.0]
        vessel = min(near, key=lambda e: abs(e.t_s - t_s)).target_id if near else f"? at {t_s:.1f} s"
        out.append((vessel, zone))
    return sorted(out)


def _topics_by_name(listing: Any) -> dict[str, dict[str, Any]]:
    return {t["topic"]: t for t in listing} if isinstance(listing, list) else {}


def _hex(guid: str) -> str:
    return uuid.UUID(guid).hex


# -- the tests ----------------------------------------------------------------------------------------


def test_the_attacker_hit_every_topic_for_30_s_with_the_platform_up(runs: Runs) -> None:
    r = runs
    assert r.hostile, f"the attacker wrote no report (exit {r.hostile_rc}): {r.hostile_err[-3000:]} {r.where()}"
    assert not r.hostile["error"], f"the attacker failed: {r.hostile['error']} {r.where()}"
    assert r.hostile["network"]["selected_interfaces"].split()[0] == "lo", r.hostile["network"]
    assert r.hostile["attack_s"] >= 30.0, r.hostile["attack_s"]
    assert r.hostile["total_written"] >= 0.8 * RATE * ATTACK_S, (r.hostile["total_written"], r.hostile["per_kind"])
    start = r.start_ns["attacked"] / 1e9
    assert start, f"the attacked demo never started its scenario {r.where()}"
    assert start <= r.hostile["started"] < r.hostile["ended"] <= start + DURATION_S, (
        f"the attack ({r.hostile['started']:.1f}..{r.hostile['ended']:.1f}) is not within the scenario "
        f"({start:.1f}..{start + DURATION_S:.1f}) {r.where()}"
    )
    assert r.queried_while_up, f"the demo ended before the test asked its daemon ({r.seconds_left_at_query:.1f} s left)"
    topics = r.hostile["topics"]
    missing = EXPECTED_TOPICS - set(topics)
    assert not missing, f"the attacker did not discover {sorted(missing)}; it found {sorted(topics)}"
    for name in sorted(EXPECTED_TOPICS):
        t = topics[name]
        assert t["written"] > 0, (name, t)
        assert t["matched_readers"] >= 1, (name, t)
        assert t["incompatible_qos"] == 0, (name, t)
    kinds = set(r.hostile["per_kind"])
    for kind in ("seq_max", "seq_next", "replay", "source_swap", "payload_flip", "random_message", "dispose",
                 "unregister", "schema_bogus_qos", "schema_illegal_topic", "schema_forged_descriptor"):  # fmt: skip
        assert kind in kinds, f"the attacker never wrote {kind}: {r.hostile['per_kind']}"
    # Whether the platform's readers acknowledged everything (disposes included) is in the report
    # ("acked"), not asserted: a module restarted by the attack leaves samples unacknowledged.


def test_every_module_stays_active_with_no_restart(runs: Runs) -> None:
    modules = runs.after.get("modules")
    assert isinstance(modules, list), f"`hardpoint modules --json` after the attack: {modules} {runs.where()}"
    states = {m["name"]: (m["state"], m["restarts"]) for m in modules}
    events = runs.after.get("events")
    why = [
        (e["module"], e["detail"])
        for e in (events if isinstance(events, list) else [])
        if e["kind"] in ("module_restarting", "module_failed")
    ]
    assert states == dict.fromkeys(MODULES, ("active", 0)), (
        f"after the attack (state, restarts): {states}; {len(why)} restarting/failed events, the first: "
        f"{why[:6]} {runs.where()}"
    )
    assert runs.attacked.get("restarts") == dict.fromkeys(MODULES, 0), runs.attacked.get("restarts")
    assert runs.attacked.get("ok") is True, runs.attacked_err[-3000:]


def test_no_traceback_in_the_daemon_log(runs: Runs) -> None:
    assert runs.daemon_log, f"no daemon log {runs.where()}"
    count = runs.daemon_log.count("Traceback")
    at = runs.daemon_log.find("Traceback")
    first = runs.daemon_log[max(0, at - 300) : at + 2500]
    assert count == 0, f"{count} tracebacks in the daemon log; the first:\n{first}\n{runs.where()}"
    for name, log in runs.module_logs.items():
        at = log.find("Traceback")
        assert at < 0, f"a traceback in the log of module {name}:\n{log[max(0, at - 300) : at + 2500]}\n{runs.where()}"


def _short(values: Any, n: int = 8) -> str:
    """The first ``n`` values, each cut to 60 characters, and how many more."""
    values = list(values)
    shown = [v[:60] + "..." if isinstance(v, str) and len(v) > 60 else v for v in values[:n]]
    return f"{shown!r}{f' and {len(values) - n} more' if len(values) > n else ''}"


def test_topics_still_lists_the_real_interfaces_with_their_rates(runs: Runs) -> None:
    """Every topic of the undisturbed run, same interface, QoS and publishers, about the same rate; nothing else."""
    baseline = _topics_by_name(runs.baseline.get("topics"))
    after = _topics_by_name(runs.after.get("topics"))
    assert baseline, f"`hardpoint topics` of the undisturbed run: {runs.baseline.get('topics')} {runs.where()}"
    assert after, f"`hardpoint topics` after the attack: {runs.after.get('topics')} {runs.where()}"
    problems = []
    for name, real in sorted(baseline.items()):
        got = after.get(name)
        if got is None:
            problems.append(f"{name} is no longer listed")
            continue
        if (got["interface"], got["qos"]) != (real["interface"], real["qos"]):
            problems.append(f"{name}: {got['interface']} {got['qos']}, undisturbed {real['interface']} {real['qos']}")
        if sorted(got["publishers"]) != sorted(real["publishers"]):
            extra = sorted(set(got["publishers"]) - set(real["publishers"]))
            problems.append(
                f"{name}: publishers {real['publishers']} undisturbed; after the attack {len(got['publishers'])}, "
                f"made up: {_short(extra)}"
            )
        if real["nominal_rate_hz"] and not 0.5 * real["rate_hz"] <= got["rate_hz"] <= 1.5 * real["rate_hz"]:
            problems.append(f"{name}: {got['rate_hz']} Hz after the attack, {real['rate_hz']} Hz undisturbed")
    made_up = sorted(set(after) - set(baseline))
    if made_up:
        problems.append(f"topics only the attacker announced are listed: {_short(made_up)}")
    assert not problems, "\n".join(["`hardpoint topics` after the attack:", *problems, runs.where()])


def test_the_patrol_outputs_are_those_of_the_undisturbed_run(runs: Runs) -> None:
    """As many fused tracks formed; the same zone alerts raised and cleared, as (vessel, zone)."""
    quiet, attacked = runs.undisturbed, runs.attacked
    assert quiet.get("ok") is True, f"the undisturbed run failed: {quiet} {runs.undisturbed_err[-3000:]} {runs.where()}"
    assert not any(quiet["restarts"].values()), f"the undisturbed run restarted modules: {quiet['restarts']}"
    assert attacked, f"the attacked demo printed no summary: {runs.attacked_err[-3000:]} {runs.where()}"
    q_start, a_start = runs.start_ns["undisturbed"], runs.start_ns["attacked"]
    expected = _zone_alerts(quiet["alerts_raised"], q_start)
    assert len(expected) == 3, f"undisturbed alerts: {quiet['alerts_raised']}"
    assert all(v != "?" for v, _ in expected), f"undisturbed alerts: {quiet['alerts_raised']} as {expected}"
    problems = []
    if attacked["tracks_formed"] != quiet["tracks_formed"]:
        problems.append(f"fused tracks formed: {attacked['tracks_formed']}, undisturbed {quiet['tracks_formed']}")
    raised = _zone_alerts(attacked["alerts_raised"], a_start)
    if raised != expected:
        problems.append(f"zone alerts raised: {len(raised)} {_short(raised, 12)}, undisturbed {expected}")
    cleared, expected_cleared = (
        _zone_alerts(attacked["alerts_cleared"], a_start),
        _zone_alerts(quiet["alerts_cleared"], q_start),
    )
    if cleared != expected_cleared:
        problems.append(f"zone alerts cleared: {len(cleared)} {_short(cleared, 12)}, undisturbed {expected_cleared}")
    assert not problems, "\n".join(["the attacked patrol's outputs differ:", *problems, runs.where()])


# -- the intrusion reporting: the counters and events name the hostile writer --------------------------
#
# The interface of the intrusion reporting (RT-BUS-ID-003; hardpoint_runtime._control): events of kind
# ``bus_intrusion`` whose detail names the offending ``writer`` and its ``participant`` (DDS GUIDs as
# ``uuid.hex``: 32 lowercase hex digits), the ``interface`` and the ``kind``; entries of ``topics --json``
# with ``refused`` (counts by kind, only the kinds that occurred) and ``intrusions`` (one per writer and
# kind: ``writer``, ``participant``, ``kind``, ``claimed_source``, ``count``). Adapt this block if that
# interface changes.


def _intruders(entry: dict[str, Any]) -> set[str]:
    """Writer GUIDs a ``topics --json`` entry names (``intrusions``; ``intruders``, a plain list, also read)."""
    named = {str(i.get("writer", "")).lower() for i in entry.get("intrusions", [])}
    return named | {str(w).lower() for w in entry.get("intruders", [])}


def test_the_intrusion_counters_and_events_name_the_hostile_writer(runs: Runs) -> None:
    hostile = runs.hostile
    assert hostile, f"no attacker report {runs.where()}"
    ours = {_hex(w) for w in hostile["writers"]}
    participant = _hex(hostile["participant"])
    writer_of = {name: _hex(t["writer"]) for name, t in hostile["topics"].items()}
    events = runs.after.get("events")
    assert isinstance(events, list), f"`hardpoint events --json`: {events} {runs.where()}"
    intrusions = [e for e in events if e["kind"] == "bus_intrusion"]
    assert intrusions, f"no bus_intrusion event; event kinds: {sorted({e['kind'] for e in events})} {runs.where()}"
    named = {str(e["detail"].get("writer", "")).lower() for e in intrusions}
    assert named <= ours, f"bus_intrusion events name writers that are not the attacker's: {sorted(named - ours)}"
    participants = {str(e["detail"].get("participant", "")).lower() for e in intrusions}
    assert participants == {participant}, f"bus_intrusion events name participants {participants}, not {participant}"
    baseline = _topics_by_name(runs.baseline.get("topics"))
    after = _topics_by_name(runs.after.get("topics"))
    problems = []
    for name in sorted(baseline):
        entry = after.get(name, {})
        refused = entry.get("refused")
        if not isinstance(refused, dict) or not refused:
            problems.append(f"{name}: no `refused` counts after {hostile['topics'][name]['written']} hostile samples")
        elif not set(refused) <= set(REFUSED_KINDS):
            problems.append(f"{name}: refused kinds {sorted(refused)} not among {REFUSED_KINDS}")
        intruders = _intruders(entry)
        if writer_of[name] not in intruders:
            problems.append(f"{name}: the attacker's writer {writer_of[name]} is not named; named: {sorted(intruders)}")
        if not intruders <= ours:
            problems.append(f"{name}: writers named that are not the attacker's: {sorted(intruders - ours)}")
    assert not problems, "\n".join(["`hardpoint topics` after the attack:", *problems, runs.where()])
