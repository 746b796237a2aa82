"""Interoperability with the reference modules: a provider x consumer matrix checked end to end.

Like the OMG DDS-RTPS interoperability tests, every pairing of a module that provides an interface with a
module that consumes it is one *cell* of a matrix (rows providers, columns consumers), judged by what the
pair produces together on the real bus, not by what each does alone:

==============================  =====================================================================
pairing (interface, consumer)   end-to-end judgement
==============================  =====================================================================
``SensorTrack`` -> a fusion     every scenario target the sensor reports (>= 3 samples within
(provides ``FusedTrack``)       :data:`GATE_M` of the truth) gets a fused track with the sensor among
                                its sources, within :data:`GATE_M` of the truth
``NavState`` -> a sensor        the sensor's geo-referenced tracks (positions computed with the nav
(provides ``SensorTrack``)      it was fed) lie within :data:`GATE_M` of a scenario target (>= 90 %)
``FusedTrack`` -> a geofence    every zone incursion of the scenario (truth) raises a RAISED alert for
(provides ``Alert``, ``Zone``)  that zone, on a fused track of the provider that follows the intruder
any -> the recorder             the recording (MCAP, read after the recorder is deactivated) holds
                                every interface the provider published on the bus, from it
any other                       the consumer's heartbeat counters show the interface delivered and
                                none refused (``schema_mismatch``, ``undecodable``, ``wrong_interface``)
==============================  =====================================================================

Every cell except the recorder's also needs that generic delivery judgement. A cell is ``n/a`` when the
provider published nothing on an aperiodic interface during the run (for example task answers nobody
asked for); it never hides a failure of a periodic interface.

Who is hosted (:func:`plan_for`): for the module under test, the reference providers of every interface
it consumes and the reference consumers of every interface it provides, plus the reference providers
those need (a sensor's nav, a geofence's fusion and sensors); a reference module that provides what the
module under test provides is *replaced* by it, never hosted next to it. :func:`plan_full` hosts every
reference module and judges every cell among them. All of them run in real runtime workers
(:mod:`hardpoint_runtime._worker`) on one private DDS domain, fed by the simulated adapters of one short
scenario (:data:`SCENARIO_TOML`) with a common time zero; a probe bus in this process watches.

Pure decisions (planning, judging, rendering) are separate from the rig that runs the processes.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hardpoint_runtime.conformance._harness import (
    DEFAULT_ADAPTERS,
    HarnessError,
    _dds_config,
    _locate,
    _Located,
    _manifest,
    _tail,
    contract_channel,
    free_domain_id,
    release_domain_id,
)

if TYPE_CHECKING:
    import hardpoint
    from hardpoint_runtime._process import ModuleProcess

__all__ = [
    "GATE_M",
    "OBSERVERS",
    "REFERENCE_MODULES",
    "SCENARIO_TOML",
    "Cell",
    "InteropRig",
    "Matrix",
    "Observations",
    "Party",
    "Plan",
    "judge",
    "matrix_markdown",
    "plan_for",
    "plan_full",
    "run_interop",
]

#: The reference modules (``modules/*``) a module is paired with.
REFERENCE_MODULES: Final = ("nav", "radar", "eoir", "fusion", "geofence", "recorder")
#: Reference modules that consume every interface (tools): the recorder records the whole interface set.
OBSERVERS: Final = frozenset({"recorder"})

NAV: Final = "hardpoint.nav.v1.NavState"
SENSOR_TRACK: Final = "hardpoint.track.v1.SensorTrack"
FUSED_TRACK: Final = "hardpoint.track.v1.FusedTrack"
ALERT: Final = "hardpoint.alert.v1.Alert"
ZONE: Final = "hardpoint.alert.v1.Zone"

#: A reported position this close (horizontally) to a scenario target is a report of that target (m).
GATE_M: Final = 150.0
#: Reports of a target a sensor must make before a fusion must show it.
MIN_REPORTS: Final = 3
#: Share of a sensor's geo-referenced samples that must lie on a scenario target.
GEOREF_SHARE: Final = 0.9
#: An incursion's alert must be raised within this long after the truth entry (s).
ALERT_WITHIN_S: Final = 6.0
#: Scenario time by which every judgement is due; the run ends earlier once every cell passed (s).
RUN_UNTIL_S: Final = 22.0
#: Scenario time until which a run waits for aperiodic interfaces nobody published yet (the incursion's
#: alert comes at about 9 s); task answers nobody asked for stay n/a after it (s).
SETTLE_S: Final = 12.0
#: Observation time after activation, at least, before a run may end (s): the recorder gets some data.
MIN_OBSERVE_S: Final = 2.0
#: Observation time after activation, at least, before a failing run is judged (s): a slow start-up
#: (a loaded machine) never leaves the modules no time to show what they do.
MIN_JUDGE_S: Final = 5.0
#: Time for a worker to load, and for one transition.
START_TIMEOUT_S: Final = 60.0
TRANSITION_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 10.0

#: The interoperability scenario: own ship heading east at 5 m/s; a vessel at 1.5 km on the starboard bow
#: going north; an intruder running south at 15 m/s into a 150 m keep-out circle (entry at 8 s, exit at
#: 28 s). Radar 2 Hz all round, EO/IR 5 Hz over the bow (+-60 deg); no false alarms, so every report is of
#: a target. Short on purpose: a run needs about 10 s of scenario time.
SCENARIO_TOML: Final = """\
name = "interop"
description = "hardpoint conformance interoperability: two targets, one keep-out incursion at 8 s"
duration_s = 60.0
seed = 424242
start = { lat = 54.17, lon = 11.70 }

[own]
height_m = 0.0
route = [{ heading_deg = 90.0, speed_mps = 5.0, duration_s = 600.0 }]

[gnss]
rate_hz = 10.0
position_std_m = 1.0
height_std_m = 2.0
velocity_std_mps = 0.05
heading_std_deg = 0.05
correlation_time_s = 0.0

[sensors.radar]
kind = "radar"
fov_deg = 360.0
min_range_m = 50.0
max_range_m = 8000.0
update_rate_hz = 2.0
range_std_m = 10.0
bearing_std_deg = 0.3
elevation_std_deg = 1.0
detection_probability = 0.95
false_alarms_per_scan = 0.0
latency_s = 0.05
track_ids = true

[sensors.eoir]
kind = "eoir"
mount_yaw_deg = 0.0
fov_deg = 120.0
max_range_m = 8000.0
update_rate_hz = 5.0
range_std_m = 20.0
bearing_std_deg = 0.05
elevation_std_deg = 0.05
detection_probability = 0.9
false_alarms_per_scan = 0.0
latency_s = 0.1
track_ids = true
classification_accuracy = 0.9

[[targets]]
id = "vessel-1"
classification = "SURFACE_VESSEL"
start = { lat = 54.176737, lon = 11.719927 }
velocity = { course_deg = 0.0, speed_mps = 4.0 }

[[targets]]
id = "intruder-1"
classification = "SURFACE_VESSEL"
start = { lat = 54.168738, lon = 11.717297 }
velocity = { course_deg = 180.0, speed_mps = 15.0 }

[[zones]]
zone_id = "box"
name = "Interop keep-out circle"
kind = "keep_out"
severity = "warning"
circle = { lat = 54.166313, lon = 11.717297, radius_m = 150.0 }
"""


# --------------------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class Party:
    """What the matrix needs of a module's manifest."""

    name: str
    provides: tuple[str, ...]
    requires: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    observer: bool = False

    @classmethod
    def of(cls, manifest: hardpoint.Manifest, *, name: str | None = None, observer: bool = False) -> Party:
        return cls(
            name=name or manifest.name,
            provides=tuple(manifest.provides),
            requires=tuple(manifest.requires),
            uses=tuple(u for u in manifest.uses if u != "*"),
            observer=observer,
        )

    def consumes(self, interface: str) -> bool:
        return self.observer or interface in self.requires or interface in self.uses


@dataclass(frozen=True)
class Plan:
    """Who runs (in activation order: providers first) and which cells are judged."""

    subject: str | None
    members: tuple[Party, ...]
    #: (provider, consumer, interface)
    pairs: tuple[tuple[str, str, str], ...]


def _activation_order(members: Sequence[Party]) -> tuple[Party, ...]:
    """Providers before their consumers (observers last); a cycle keeps the given order."""
    done: list[Party] = []
    todo = list(members)
    while todo:
        provided = {i for p in done for i in p.provides}
        wanted = {i for p in todo for i in p.provides}
        ready = [p for p in todo if not p.observer and all(r in provided or r not in wanted for r in p.requires)]
        nxt = ready[0] if ready else next((p for p in todo if not p.observer), todo[0])
        done.append(nxt)
        todo.remove(nxt)
    return tuple(done)


def _support(members: list[Party], available: Sequence[Party]) -> None:
    """Add the reference providers that members' required interfaces still lack (transitively)."""
    changed = True
    while changed:
        changed = False
        provided = {i for p in members for i in p.provides}
        for party in list(members):
            for interface in party.requires:
                if interface in provided:
                    continue
                provider = next((r for r in available if interface in r.provides and r not in members), None)
                if provider is not None:
                    members.append(provider)
                    provided |= set(provider.provides)
                    changed = True


def plan_for(subject: Party, references: Sequence[Party], interfaces: Iterable[str]) -> Plan:
    """The rig for one module under test: its reference counterparts and the cells it takes part in.

    ``interfaces`` is the platform interface set (what an observer consumes).
    """
    everything = tuple(interfaces)
    replaced = {r.name for r in references if r.name == subject.name or set(r.provides) & set(subject.provides)}
    available = [r for r in references if r.name not in replaced]
    inputs = everything if subject.observer else (*subject.requires, *subject.uses)
    providers = [r for r in available if set(r.provides) & set(inputs)]
    consumers = [r for r in available if r not in providers and any(r.consumes(i) for i in subject.provides)]
    consumers += [r for r in providers if any(r.consumes(i) for i in subject.provides)]
    members = [subject, *providers, *(c for c in consumers if c not in providers)]
    _support(members, available)
    pairs = [(p.name, subject.name, i) for p in providers for i in p.provides if i in inputs]
    pairs += [(subject.name, c.name, i) for c in consumers for i in subject.provides if c.consumes(i)]
    return Plan(subject.name, _activation_order(members), tuple(pairs))


def plan_full(references: Sequence[Party]) -> Plan:
    """Every reference module on one bus, and every provider x consumer cell among them."""
    pairs = [
        (p.name, c.name, i) for p in references for c in references if p is not c for i in p.provides if c.consumes(i)
    ]
    return Plan(None, _activation_order(references), tuple(pairs))


# --------------------------------------------------------------------------- observations


@dataclass
class Observations:
    """What the probe saw during a run (filled on the probe's dispatch thread; read under ``lock``)."""

    #: (source, sensor_id, track_id, measurement time ns, lat, lon) of every SensorTrack with a position.
    sensor_tracks: list[tuple[str, str, str, int, float, float]] = field(default_factory=list)
    #: (source, track_id, time of validity ns, lat, lon, source sensor ids) of every measured FusedTrack.
    fused: list[tuple[str, str, int, float, float, frozenset[str]]] = field(default_factory=list)
    #: (source, zone_id, track_id, raised_time_ns) of every RAISED geofence Alert.
    alerts: list[tuple[str, str, str, int]] = field(default_factory=list)
    #: (interface, source) of every sample on a member's provided interfaces.
    published: set[tuple[str, str]] = field(default_factory=set)
    #: Latest heartbeat counters by module.
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    #: (interface, source) of every message in the recording; None until the recording was read.
    recorded: set[tuple[str, str]] | None = None
    recording_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def copy(self) -> Observations:
        with self.lock:
            return Observations(
                list(self.sensor_tracks),
                list(self.fused),
                list(self.alerts),
                set(self.published),
                {k: dict(v) for k, v in self.counters.items()},
                None if self.recorded is None else set(self.recorded),
                self.recording_error,
            )


# --------------------------------------------------------------------------- judging (pure)


@dataclass(frozen=True)
class Cell:
    provider: str
    consumer: str
    interface: str
    verdict: str  #: "pass", "fail" or "n/a"
    detail: str


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Horizontal distance, equirectangular (well under a metre of error at a few km)."""
    north = math.radians(lat2 - lat1) * 6_371_000.0
    east = math.radians(lon2 - lon1) * 6_371_000.0 * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(north, east)


class Truth:
    """Scenario ground truth: which target a report at a time and place is of."""

    def __init__(self, scenario: Any, start_ns: int, active_ns: int = 0) -> None:
        self.scenario = scenario
        self.start_ns = start_ns
        #: When every hosted module was active: nothing can react to the scenario earlier.
        self.active_ns = active_ns

    def t_s(self, time_ns: int) -> float:
        return (time_ns - self.start_ns) / 1e9

    def target_of(self, time_ns: int, lat: float, lon: float) -> str | None:
        best: tuple[float, str] | None = None
        for target_id, truth in self.scenario.targets_at(self.t_s(time_ns)).items():
            d = _distance_m(lat, lon, truth.lat, truth.lon)
            if d <= GATE_M and (best is None or d < best[0]):
                best = (d, target_id)
        return None if best is None else best[1]

    def entries(self, until_s: float) -> list[Any]:
        return [e for e in self.scenario.zone_events(until_s=until_s) if e.entered]


def _delivery(consumer: str, interface: str, obs: Observations) -> tuple[bool, str]:
    counters = obs.counters.get(consumer)
    if counters is None:
        return False, f"no heartbeat from {consumer}"
    delivered = counters.get(f"sub:{interface}.delivered", 0)
    refused = {
        cause: counters.get(f"sub:{interface}.{cause}", 0)
        for cause in ("schema_mismatch", "undecodable", "wrong_interface")
    }
    bad = ", ".join(f"{n} {cause}" for cause, n in refused.items() if n)
    if bad:
        return False, f"{consumer} refused samples of {interface}: {bad} ({delivered} delivered)"
    if not delivered:
        return False, f"{consumer} received no sample of {interface}"
    return True, f"{delivered} delivered"


def _judge_fusion(provider: str, consumer: str, obs: Observations, truth: Truth) -> tuple[bool, str]:
    reports: dict[str, int] = {}
    sensor_ids: set[str] = set()
    for source, sensor_id, _, t_ns, lat, lon in obs.sensor_tracks:
        if source != provider:
            continue
        sensor_ids.add(sensor_id)
        target = truth.target_of(t_ns, lat, lon)
        if target is not None:
            reports[target] = reports.get(target, 0) + 1
    seen = {t for t, n in reports.items() if n >= MIN_REPORTS}
    if not seen:
        return False, f"{provider} reported no scenario target ({MIN_REPORTS}+ samples within {GATE_M:g} m)"
    fused = {
        target
        for source, _, t_ns, lat, lon, sources in obs.fused
        if source == consumer and sources & sensor_ids
        for target in [truth.target_of(t_ns, lat, lon)]
        if target is not None
    }
    missing = sorted(seen - fused)
    if missing:
        return False, (
            f"{consumer} published no fused track with {provider} ({', '.join(sorted(sensor_ids))}) among its sources "
            f"within {GATE_M:g} m of {', '.join(missing)} (reported by {provider}: {', '.join(sorted(seen))})"
        )
    return True, f"fused tracks for {', '.join(sorted(seen))} with {provider} among the sources"


def _judge_georef(consumer: str, obs: Observations, truth: Truth) -> tuple[bool, str]:
    samples = [s for s in obs.sensor_tracks if s[0] == consumer]
    if not samples:
        return False, f"{consumer} published no geo-referenced SensorTrack"
    hits = [truth.target_of(t_ns, lat, lon) for _, _, _, t_ns, lat, lon in samples]
    share = sum(h is not None for h in hits) / len(hits)
    targets = sorted({h for h in hits if h is not None})
    if share < GEOREF_SHARE or not targets:
        return False, (
            f"only {share:.0%} of {consumer}'s {len(samples)} SensorTrack positions lie within {GATE_M:g} m of a "
            f"scenario target (needed {GEOREF_SHARE:.0%}): geo-referencing with this NavState is off"
        )
    return True, f"{share:.0%} of {len(samples)} positions on targets {', '.join(targets)}"


def _judge_alerts(
    provider: str, consumer: str, obs: Observations, truth: Truth, until_s: float
) -> tuple[bool | None, str]:
    """None while an incursion's alert may still come (or none happened yet); False once one is overdue."""
    entries = truth.entries(until_s)
    if not entries:
        return None, f"no zone incursion in the scenario before {until_s:.1f} s"
    tracks_of: dict[str, set[str]] = {}
    for source, track_id, t_ns, lat, lon, _ in obs.fused:
        target = truth.target_of(t_ns, lat, lon) if source == provider else None
        if target is not None:
            tracks_of.setdefault(target, set()).add(track_id)
    overdue: list[str] = []
    pending: list[str] = []
    for e in entries:
        entered_ns = max(truth.start_ns + int(e.t_s * 1e9), truth.active_ns)
        due_ns = entered_ns + int(ALERT_WITHIN_S * 1e9)
        ok = any(
            source == consumer and zone == e.zone_id and track in tracks_of.get(e.target_id, set()) and raised <= due_ns
            for source, zone, track, raised in obs.alerts
        )
        if ok:
            continue
        what = (
            f"{e.target_id} entered zone {e.zone_id} at {e.t_s:.1f} s but {consumer} raised no alert on a "
            f"{provider} track of it within {ALERT_WITHIN_S:g} s"
        )
        (pending if truth.start_ns + int(until_s * 1e9) < due_ns else overdue).append(what)
    if overdue:
        return False, "; ".join(overdue)
    if pending:
        return None, "; ".join(pending)
    return True, "alerts raised for " + ", ".join(f"{e.target_id} in {e.zone_id}" for e in entries)


def _judge_recording(provider: str, interface: str, obs: Observations) -> tuple[bool | None, str]:
    if obs.recorded is None:
        return False, f"no recording to read{': ' + obs.recording_error if obs.recording_error else ''}"
    if (interface, provider) in obs.recorded:
        return True, f"{interface} from {provider} recorded"
    return False, f"the recording has no {interface} from {provider}, which published it on the bus"


def judge(
    plan: Plan,
    obs: Observations,
    truth: Truth,
    specs: Mapping[str, hardpoint.InterfaceSpec],
    *,
    until_s: float,
) -> list[Cell]:
    """The verdict of every cell of ``plan`` from what was observed up to scenario time ``until_s``."""
    parties = {p.name: p for p in plan.members}
    cells: list[Cell] = []
    for provider, consumer, interface in plan.pairs:
        spec = specs.get(interface)
        periodic = spec is not None and spec.nominal_rate_hz > 0
        if (interface, provider) not in obs.published:
            if periodic:
                cells.append(
                    Cell(provider, consumer, interface, "fail", f"{provider} published no {interface} on the bus")
                )
            else:
                cells.append(
                    Cell(provider, consumer, interface, "n/a", f"{provider} published no {interface} (aperiodic)")
                )
            continue
        verdict = _verdict(provider, parties[consumer], interface, obs, truth=truth, until_s=until_s)
        cells.append(Cell(provider, consumer, interface, *verdict))
    return cells


def _verdict(
    provider: str, consumer: Party, interface: str, obs: Observations, *, truth: Truth, until_s: float
) -> tuple[str, str]:
    if consumer.observer:
        ok, detail = _judge_recording(provider, interface, obs)
        return ("pass" if ok else "fail"), detail
    delivered, how = _delivery(consumer.name, interface, obs)
    if not delivered:
        return "fail", how
    result: tuple[bool | None, str]
    if interface == SENSOR_TRACK and FUSED_TRACK in consumer.provides:
        result = _judge_fusion(provider, consumer.name, obs, truth)
    elif interface == NAV and SENSOR_TRACK in consumer.provides:
        result = _judge_georef(consumer.name, obs, truth)
    elif interface == FUSED_TRACK and {ALERT, ZONE} <= set(consumer.provides):  # a geofence: zones and alerts
        result = _judge_alerts(provider, consumer.name, obs, truth, until_s)
    else:
        return "pass", f"delivered to {consumer.name} ({how}), none refused"
    ok, detail = result
    if ok is None:
        return "fail", f"not judged: {detail}"
    return ("pass" if ok else "fail"), f"{detail} ({how})"


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Matrix:
    #: The module under test by its module name (the name its cells carry), whatever form it was given in
    #: (entry-point name, installed distribution, wheel file); None for the full matrix (CF-IOP-004).
    subject: str | None
    members: tuple[str, ...]
    cells: tuple[Cell, ...]
    scenario_s: float
    wall_s: float
    #: What the module under test was given as (``--hardpoint-module``: its entry-point name or a wheel path).
    target: str | None = None

    def cells_of(self, role: str) -> list[Cell]:
        """The subject's cells as ``consumer`` or ``provider`` (none for the full matrix)."""
        if self.subject is None:
            return []
        if role == "consumer":
            return [c for c in self.cells if c.consumer == self.subject]
        if role == "provider":
            return [c for c in self.cells if c.provider == self.subject]
        raise ValueError(f"role {role!r}: consumer or provider")

    @property
    def providers(self) -> list[str]:
        return sorted({c.provider for c in self.cells}, key=self._order)

    @property
    def consumers(self) -> list[str]:
        return sorted({c.consumer for c in self.cells}, key=self._order)

    def _order(self, name: str) -> tuple[int, str]:
        return (self.members.index(name) if name in self.members else len(self.members), name)

    @property
    def ok(self) -> bool:
        return all(c.verdict != "fail" for c in self.cells)

    def failures(self) -> list[Cell]:
        return [c for c in self.cells if c.verdict == "fail"]

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "target": self.target,
            "members": list(self.members),
            "providers": self.providers,
            "consumers": self.consumers,
            "verdict": "pass" if self.ok else "fail",
            "scenario_s": round(self.scenario_s, 2),
            "wall_s": round(self.wall_s, 2),
            "cells": [asdict(c) for c in self.cells],
        }

    def write(self, directory: Path, stem: str = "interop-matrix") -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        js, md = directory / f"{stem}.json", directory / f"{stem}.md"
        js.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")
        md.write_text(matrix_markdown(self), encoding="utf-8")
        return js, md


def _short(interface: str) -> str:
    return interface.rsplit(".", 1)[-1]


def matrix_markdown(matrix: Matrix) -> str:
    """Rows providers, columns consumers; a cell lists ``verdict interface`` per interface, ``-`` for none."""
    by_pair: dict[tuple[str, str], list[Cell]] = {}
    for c in matrix.cells:
        by_pair.setdefault((c.provider, c.consumer), []).append(c)
    title = f"module under test `{matrix.subject}`" if matrix.subject else "all reference modules"
    if matrix.target and matrix.target != matrix.subject:
        title += f" (from `{matrix.target}`)"
    lines = [
        f"# Interoperability matrix: {title}",
        "",
        f"Verdict: **{'PASS' if matrix.ok else 'FAIL'}**. Hosted: {', '.join(matrix.members)}. "
        f"Scenario time observed: {matrix.scenario_s:.1f} s (wall {matrix.wall_s:.1f} s).",
        "",
        "| provider \\ consumer | " + " | ".join(matrix.consumers) + " |",
        "|---|" + "---|" * len(matrix.consumers),
    ]
    for provider in matrix.providers:
        row = []
        for consumer in matrix.consumers:
            cells = by_pair.get((provider, consumer), [])
            row.append("<br>".join(f"{x.verdict} {_short(x.interface)}" for x in cells) or "-")
        lines.append(f"| **{provider}** | " + " | ".join(row) + " |")
    lines += ["", "## Cells", ""]
    lines += [f"- {x.provider} -> {x.consumer} `{x.interface}`: **{x.verdict}**: {x.detail}" for x in matrix.cells]
    return "\n".join(lines) + "\n"


def matrix_text(matrix: Matrix) -> str:
    """A plain-text table of the matrix (for a terminal)."""
    by_pair: dict[tuple[str, str], list[str]] = {}
    for c in matrix.cells:
        by_pair.setdefault((c.provider, c.consumer), []).append(f"{c.verdict} {_short(c.interface)}")
    consumers = matrix.consumers
    rows = [["provider \\ consumer", *consumers]]
    rows += [[p, *(", ".join(by_pair.get((p, c), [])) or "-" for c in consumers)] for p in matrix.providers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)


# --------------------------------------------------------------------------- the rig (IO)


@dataclass
class Member:
    """One hosted module of the rig."""

    party: Party
    located: _Located
    config: dict[str, Any]
    adapters: dict[str, dict[str, Any]]
    process: ModuleProcess | None = None


def reference_config(name: str, workdir: Path, scenario: Any) -> dict[str, Any]:
    """The configuration a reference counterpart runs with in the rig."""
    if name == "geofence":
        return {"zones": [z.model_dump(exclude_none=True) for z in scenario.zones], "margin_m": 30.0}
    if name == "recorder":
        return {"path": str(workdir / "interop.mcap"), "overwrite": True, "flush_period_s": 0.5}
    return {}


def scenario_adapters(needed: Iterable[str], scenario_path: Path, start_ns: int) -> dict[str, dict[str, Any]]:
    """Simulated bindings of ``needed`` on the interoperability scenario, all with time zero ``start_ns``."""
    bindings: dict[str, dict[str, Any]] = {}
    for name in needed:
        default = DEFAULT_ADAPTERS.get(name)
        if default is None:
            raise HarnessError(
                f"adapter {name!r} has no simulated default (known: {', '.join(sorted(DEFAULT_ADAPTERS))})"
            )
        config = {**default["config"], "scenario": str(scenario_path), "start_ns": start_ns}
        bindings[name] = {"driver": default["driver"], "config": config}
    return bindings


class InteropRig:
    """The modules of a :class:`Plan` in real runtime workers on one private DDS domain, with a probe.

    :param subject: the module under test (entry-point name or wheel) or None for the full matrix.
    :param subject_config: its configuration (None: the reference one for its name, else empty).
    :param subject_adapters: its adapter bindings (None: simulated, on the interoperability scenario).
    :raises HarnessError: a module cannot be found or loaded; names it and the cause.
    """

    def __init__(
        self,
        subject: str | None,
        workdir: Path,
        *,
        subject_config: Mapping[str, Any] | None = None,
        subject_adapters: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        import hardpoint
        from hardpoint_sim import load_scenario

        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scenario_path = self.workdir / "interop-scenario.toml"
        self.scenario_path.write_text(SCENARIO_TOML, encoding="utf-8")
        self.scenario = load_scenario(self.scenario_path)
        self.specs = hardpoint.all_interfaces()
        located = {name: _locate(name, self.workdir) for name in REFERENCE_MODULES}
        references = [Party.of(_manifest(loc), name=name, observer=name in OBSERVERS) for name, loc in located.items()]
        subject_located: _Located | None = None
        if subject is None:
            self.plan = plan_full(references)
        else:
            subject_located = _locate(subject, self.workdir)
            manifest = _manifest(subject_located)
            observer = subject_located.name in OBSERVERS and manifest.name in OBSERVERS
            party = Party.of(manifest, name=subject_located.name, observer=observer)
            self.plan = plan_for(party, references, self.specs)
        self.start_ns = time.time_ns()
        self.members: list[Member] = []
        for party in self.plan.members:
            is_subject = subject_located is not None and party.name == subject_located.name
            loc = subject_located if is_subject and subject_located is not None else located[party.name]
            manifest = _manifest(loc)
            config = dict(subject_config) if is_subject and subject_config is not None else None
            if config is None:
                config = reference_config(party.name, self.workdir, self.scenario)
            adapters = (
                {k: {"driver": v["driver"], "config": dict(v.get("config", {}))} for k, v in subject_adapters.items()}
                if is_subject and subject_adapters is not None
                else scenario_adapters(manifest.adapters, self.scenario_path, self.start_ns)
            )
            self.members.append(Member(party, loc, config, adapters))
        self.domain_id = free_domain_id()
        self.dds_config = _dds_config(f"hp-iop-{self.domain_id}-{self.start_ns % 10**9}")
        self.obs = Observations()
        self._transport: hardpoint.CycloneTransport | None = None
        self._bus: hardpoint.Bus | None = None
        self._readers: list[Any] = []
        self.activated_ns = 0

    # -- processes ---------------------------------------------------------------

    def _spec(self, m: Member) -> dict[str, Any]:
        return {
            "module": m.located.name,
            "entry_point": m.located.entry_point,
            "paths": m.located.paths,
            "domain_id": self.domain_id,
            "dds_config": self.dds_config,
            "node": "interop",
            "config": m.config,
            "adapters": m.adapters,
            "health_period_s": 0.5,
        }

    def _launch(self, m: Member) -> None:
        from hardpoint_runtime._process import ModuleProcess, WorkerError

        log = self.workdir / "logs" / f"{m.party.name}.log"
        proc = ModuleProcess(m.located.name, self._spec(m), log)
        try:
            proc.start(timeout_s=START_TIMEOUT_S)
        except WorkerError as e:
            raise HarnessError(f"interop: module {m.party.name!r} did not load: {e}\n{_tail(log, 30)}") from e
        m.process = proc

    def _transition(self, m: Member, step: str) -> None:
        from hardpoint_runtime._process import WorkerError

        assert m.process is not None
        try:
            reply = m.process.request("transition", transition=step, timeout_s=TRANSITION_TIMEOUT_S)
        except WorkerError as e:
            raise HarnessError(f"interop: module {m.party.name!r} did not answer {step}: {e}") from e
        if not reply.get("ok") or reply.get("error"):
            raise HarnessError(
                f"interop: module {m.party.name!r}: {step} failed (state {reply.get('state')!r}): "
                f"{reply.get('error') or reply}\n{_tail(m.process.log_path, 20)}"
            )

    def start(self) -> None:
        """Open the probe, load every worker (in parallel), then configure and activate them, providers first."""
        self._open_probe()
        with ThreadPoolExecutor(max_workers=len(self.members), thread_name_prefix="interop") as pool:
            errors = [f.exception() for f in [pool.submit(self._launch, m) for m in self.members]]
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]
        for m in self.members:
            self._transition(m, "configure")
        for m in self.members:
            self._transition(m, "activate")
        self.activated_ns = time.time_ns()

    def close(self) -> None:
        """Stop every worker, close the probe and give back the domain id; safe to call twice."""
        procs = [m.process for m in self.members if m.process is not None]
        if procs:
            with ThreadPoolExecutor(max_workers=len(procs)) as pool:
                list(pool.map(lambda p: p.stop(timeout_s=STOP_TIMEOUT_S), procs))
        for m in self.members:
            m.process = None
        for reader in self._readers:
            reader.close()
        self._readers = []
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        release_domain_id(self.domain_id)

    def __enter__(self) -> InteropRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the probe -----------------------------------------------------------------

    def _open_probe(self) -> None:
        import hardpoint
        from hardpoint.alert.v1 import alert_pb2
        from hardpoint.core.v1 import health_pb2
        from hardpoint.track.v1 import track_pb2

        try:
            self._transport = hardpoint.CycloneTransport(domain_id=self.domain_id, config=self.dds_config)
        except hardpoint.TransportError as e:
            raise HarnessError(f"interop: cannot open the probe on domain {self.domain_id}: {e}") from e
        bus = self._bus = hardpoint.Bus(self._transport, module="conformance.interop")
        obs = self.obs
        measured = (track_pb2.TRACK_LIFECYCLE_NEW, track_pb2.TRACK_LIFECYCLE_UPDATED)

        def on_sensor(msg: track_pb2.SensorTrack, info: hardpoint.SampleInfo) -> None:
            if msg.HasField("position") and msg.lifecycle in measured:
                p = msg.position
                row = (info.source, msg.sensor_id, msg.track_id, info.stamp_ns, p.latitude_deg, p.longitude_deg)
                with obs.lock:
                    obs.sensor_tracks.append(row)

        def on_fused(msg: track_pb2.FusedTrack, info: hardpoint.SampleInfo) -> None:
            if msg.lifecycle in measured:
                p = msg.position
                sources = frozenset(s.sensor_id for s in msg.sources)
                with obs.lock:
                    obs.fused.append(
                        (info.source, msg.track_id, info.stamp_ns, p.latitude_deg, p.longitude_deg, sources)
                    )

        def on_alert(msg: alert_pb2.Alert, info: hardpoint.SampleInfo) -> None:
            if (
                msg.state == alert_pb2.ALERT_STATE_RAISED
                and msg.category == alert_pb2.ALERT_CATEGORY_GEOFENCE_INTRUSION
            ):
                with obs.lock:
                    obs.alerts.append((info.source, msg.zone_id, msg.track_id, msg.raised_time_ns))

        def on_health(msg: health_pb2.ModuleHealth, info: hardpoint.SampleInfo) -> None:
            with obs.lock:
                obs.counters[info.source] = dict(msg.counters)

        bus.subscribe(track_pb2.SensorTrack, on_sensor, with_info=True)
        bus.subscribe(track_pb2.FusedTrack, on_fused, with_info=True)
        bus.subscribe(alert_pb2.Alert, on_alert, with_info=True)
        bus.subscribe(health_pb2.ModuleHealth, on_health, with_info=True)
        provided = {i for p in self.plan.members for i in p.provides if i in self.specs}
        for interface in sorted(provided):
            self._readers.append(self._watch(self.specs[interface]))

    def _watch(self, spec: hardpoint.InterfaceSpec) -> Any:
        """A raw reader that notes who publishes ``spec`` (whatever the sample's schema)."""
        from hardpoint import Frame

        assert self._transport is not None
        obs = self.obs
        channel = contract_channel(spec)

        def deliver(frames: Sequence[Frame]) -> None:
            with obs.lock:
                obs.published.update((spec.name, f.source) for f in frames if f.count > 0)

        return self._transport.open_reader(channel, deliver)

    # -- running -------------------------------------------------------------------

    def scenario_s(self) -> float:
        return (time.time_ns() - self.start_ns) / 1e9

    def evaluate(self) -> list[Cell]:
        return judge(
            self.plan,
            self.obs.copy(),
            Truth(self.scenario, self.start_ns, self.activated_ns),
            self.specs,
            until_s=self.scenario_s(),
        )

    def observe(self, until_s: float = RUN_UNTIL_S) -> list[Cell]:
        """Watch until every cell passes (recorder cells aside) or scenario time ``until_s``, then judge.

        The recorder, if hosted, is deactivated at the end (which completes its file) and its recording read.
        """
        recorder = next((m for m in self.members if m.party.observer), None)
        while True:
            elapsed = (time.time_ns() - self.activated_ns) / 1e9
            cells = self.evaluate()
            judged = [c for c in cells if recorder is None or c.consumer != recorder.party.name]
            # An aperiodic interface (an alert) may still come from the scenario: give it until SETTLE_S.
            quiet = [c for c in cells if c.verdict == "n/a"]
            settled = not quiet or self.scenario_s() >= SETTLE_S
            done = elapsed >= MIN_OBSERVE_S and settled and all(c.verdict != "fail" for c in judged)
            if done or (self.scenario_s() >= until_s and elapsed >= MIN_JUDGE_S):
                break
            time.sleep(0.25)
        until_s = self.scenario_s()  # the judgement's time: the recorder's read-out below adds nothing
        if recorder is not None:
            self._read_recording(recorder)
        truth = Truth(self.scenario, self.start_ns, self.activated_ns)
        return judge(self.plan, self.obs.copy(), truth, self.specs, until_s=until_s)

    def _read_recording(self, recorder: Member) -> None:
        try:
            self._transition(recorder, "deactivate")
        except HarnessError as e:
            with self.obs.lock:
                self.obs.recording_error = str(e)
            return
        path = Path(str(recorder.config.get("path", "")))
        try:
            from hardpoint_mod_recorder import read

            recorded = {(r.interface, r.source) for r in read(path)}
        except Exception as e:  # an unreadable recording is the verdict, with its cause
            with self.obs.lock:
                self.obs.recording_error = f"cannot read the recording {path}: {type(e).__name__}: {e}"
            return
        with self.obs.lock:
            self.obs.recorded = recorded


def run_interop(
    subject: str | None,
    workdir: Path,
    *,
    subject_config: Mapping[str, Any] | None = None,
    subject_adapters: Mapping[str, Mapping[str, Any]] | None = None,
    until_s: float = RUN_UNTIL_S,
) -> Matrix:
    """Host the plan for ``subject`` (None: every reference module), observe, and return the judged matrix.

    ``until_s``: scenario time by which every cell must have passed (the run ends earlier when they have).

    :raises HarnessError: a module could not be hosted (not a verdict: the run did not happen).
    """
    t0 = time.monotonic()
    with InteropRig(subject, workdir, subject_config=subject_config, subject_adapters=subject_adapters) as rig:
        rig.start()
        cells = rig.observe(until_s)
        scenario_s = rig.scenario_s()
        members = tuple(p.name for p in rig.plan.members)
        # The cells carry the module's name, not the wheel path or entry point it was given as (CF-IOP-004).
        name = rig.plan.subject
    return Matrix(name, members, tuple(cells), scenario_s, time.monotonic() - t0, target=subject)
