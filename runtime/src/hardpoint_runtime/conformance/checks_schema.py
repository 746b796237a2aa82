"""Conformance checks on the schemas a module announces on the bus and stamps on its samples.

The module under test runs in the real runtime worker (:func:`~._fixtures.hosted_module`). What it
announces on ``hp/schemas`` (transient-local, one ``FileDescriptorSet`` per schema id) is read with a
keep-all DDS reader of this process, and each announcement is attributed to the process that wrote it
(the writer's participant carries Cyclone's ``__Pid`` property), so announcements of the probe or of the
reference feeders are never taken for the module's. Then:

* ``CF-SCHEMA-001``: every interface the module provides is announced by it (``SDK-BUS-006``: the
  SDK announces what a module publishes; a subscriber announces nothing);
* ``CF-SCHEMA-002``: every descriptor set it announces for an interface it provides or requires is
  wire-compatible with the platform's for that interface
  (:func:`hardpoint.conformance.check_wire_compatibility`, buf's ``WIRE`` rules); a failure names the
  interface, the rule id and the field;
* ``CF-SCHEMA-003``: the schema id stamped on every sample the module publishes equals the platform's
  (a receiver drops any other, ``IF-ENV-RX-SCHEMA``);
* ``CF-SCHEMA-004``: the module's readers of its required interfaces accept the platform's samples: fed
  by the reference providers, its heartbeat counters (``sub:<interface>.schema_mismatch``) stay at zero.
  This is how a consumer's compiled-in schema shows on the bus, since a reader announces none.

The comparisons are pure functions (:func:`schema_findings`, :func:`stamp_findings`); only the fixtures
touch DDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import pytest

from hardpoint.conformance.plugin import judged, not_applicable
from hardpoint_runtime.conformance import _fixtures
from hardpoint_runtime.conformance._harness import contract_channel

if TYPE_CHECKING:
    from hardpoint import InterfaceSpec, Manifest
    from hardpoint_runtime.conformance._harness import HostedModule

# The fixtures this module's checks use (pytest finds fixtures in the module's namespace).
hosted_module = _fixtures.hosted_module
hosted_options = _fixtures.hosted_options

#: How long to wait for the module's announcements of every interface it declares (s).
ANNOUNCE_TIMEOUT_S: Final = 10.0
#: How long to wait for a first sample of each periodic provided interface (s).
SAMPLE_TIMEOUT_S: Final = 10.0
#: Pseudo rule id of an announcement that lacks the interface's message altogether.
MISSING_MESSAGE: Final = "INTERFACE_MESSAGE_MISSING"
#: Pseudo rule id of an announcement whose descriptor set does not parse.
UNPARSABLE: Final = "DESCRIPTOR_SET_UNPARSABLE"


@dataclass(frozen=True, slots=True)
class Announcement:
    """One ``hp/schemas`` sample written by the module's process."""

    interface: str
    schema_id: str
    descriptor_set: bytes


@dataclass
class _Stamps:
    """Schema ids seen on the module's samples, per interface (filled on the dispatch thread)."""

    seen: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, interface: str, schema_id: str) -> None:
        with self.lock:
            self.seen.setdefault(interface, set()).add(schema_id)

    def snapshot(self) -> dict[str, set[str]]:
        with self.lock:
            return {k: set(v) for k, v in self.seen.items()}


# --------------------------------------------------------------------------- pure decisions


def declared(manifest: Manifest) -> dict[str, str]:
    """Interfaces the module declares, with its role: ``{name: "provides" | "requires" | "uses"}``."""
    roles = dict.fromkeys((n for n in manifest.uses if n != "*"), "uses")
    roles.update(dict.fromkeys(manifest.requires, "requires"))
    roles.update(dict.fromkeys(manifest.provides, "provides"))
    return roles


def missing_announcements(module: str, roles: Mapping[str, str], announced: Sequence[Announcement]) -> list[str]:
    """One line per provided interface the module did not announce (CF-SCHEMA-001)."""
    have = {a.interface for a in announced}
    return [
        f"module {module!r}: provides {name} but announced no schema for it on hp/schemas"
        for name in sorted(n for n, role in roles.items() if role == "provides")
        if name not in have
    ]


def schema_findings(
    module: str,
    roles: Mapping[str, str],
    announced: Sequence[Announcement],
    platform: Mapping[str, InterfaceSpec],
    platform_sets: Mapping[str, bytes],
) -> list[str]:
    """One line per wire-breaking difference of an announced schema from the platform's (CF-SCHEMA-002).

    Each line names the module, the interface and its role, the schema id, the buf rule id and the field.
    Announcements of interfaces outside the platform set are left to the manifest checks.
    """
    from google.protobuf.descriptor_pb2 import FileDescriptorSet
    from google.protobuf.message import DecodeError

    from hardpoint.conformance import check_wire_compatibility

    problems: list[str] = []
    for a in sorted(announced, key=lambda a: (a.interface, a.schema_id)):
        if a.interface not in platform:
            continue
        head = f"module {module!r}: {roles.get(a.interface, 'announces')} {a.interface} (schema {a.schema_id})"
        fds = FileDescriptorSet()
        try:
            fds.ParseFromString(a.descriptor_set)
        except DecodeError as e:
            problems.append(f"{head}: {UNPARSABLE}: the announced descriptor set does not parse: {e}")
            continue
        names = {f"{f.package}.{m.name}" if f.package else m.name for f in fds.file for m in f.message_type}
        if a.interface not in names:
            problems.append(f"{head}: {MISSING_MESSAGE}: the announced descriptor set has no message {a.interface}")
            continue
        for finding in check_wire_compatibility(platform_sets[a.interface], fds, messages=[a.interface]):
            problems.append(f"{head}: {finding.rule}: {finding.element}: {finding.message}")
    return problems


def stamp_findings(
    module: str, provided: Mapping[str, InterfaceSpec], stamps: Mapping[str, set[str]]
) -> tuple[list[str], list[str]]:
    """Problems and notes about the schema ids on the module's samples (CF-SCHEMA-003).

    A provided interface with samples must carry only the platform's schema id; a periodic one without
    samples is a problem (its rate check fails too); an aperiodic one without samples is a note.
    """
    problems: list[str] = []
    notes: list[str] = []
    for name, spec in sorted(provided.items()):
        seen = stamps.get(name, set())
        wrong = sorted(seen - {spec.schema_id})
        if wrong:
            problems.append(
                f"module {module!r}: provides {name}: samples stamped with schema id {', '.join(wrong)}, "
                f"the platform's is {spec.schema_id}; every platform reader drops them (IF-ENV-RX-SCHEMA)"
            )
        elif not seen and spec.nominal_rate_hz > 0:
            problems.append(
                f"module {module!r}: provides {name} ({spec.nominal_rate_hz:g} Hz) but published no sample "
                f"within {SAMPLE_TIMEOUT_S:g} s"
            )
        elif not seen:
            notes.append(f"{name}: aperiodic, no sample published during the check: schema id not applicable")
    return problems, notes


def reader_findings(module: str, required: Sequence[str], counters: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """Problems and notes about the module's readers of its required interfaces (CF-SCHEMA-004).

    ``counters`` is the latest heartbeat's counter map. A reader that refused samples for their schema id
    is a problem; one that got no sample at all (no provider of the interface was hosted) is a note.
    """
    problems: list[str] = []
    notes: list[str] = []
    for name in sorted(required):
        mismatched = counters.get(f"sub:{name}.schema_mismatch", 0)
        delivered = counters.get(f"sub:{name}.delivered", 0)
        if mismatched:
            problems.append(
                f"module {module!r}: requires {name}: its reader dropped {mismatched} platform sample(s) for their "
                f"schema id (sub:{name}.schema_mismatch; {delivered} delivered): it was built against another schema"
            )
        elif not delivered:
            notes.append(f"{name}: no sample reached the module's reader (no provider hosted): not exercised")
    return problems, notes


# --------------------------------------------------------------------------- bus IO


def _participant_pids(participant: Any) -> dict[Any, int]:
    """``{participant GUID: pid}`` of every participant discovered so far (Cyclone's ``__Pid`` property)."""
    from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant

    reader = BuiltinDataReader(participant, BuiltinTopicDcpsParticipant)
    pids: dict[Any, int] = {}
    for sample in reader.read(N=1024):
        for policy in sample.qos:
            if getattr(policy, "key", None) == "__Pid":
                try:
                    pids[sample.key] = int(policy.value)
                except (TypeError, ValueError):
                    continue
    return pids


def collect_announcements(domain_id: int, pid: int, interfaces: Sequence[str], timeout_s: float) -> list[Announcement]:
    """The ``hp/schemas`` samples written by process ``pid`` on ``domain_id``, waiting for ``interfaces``.

    Must run while a hardpoint transport of this process holds ``domain_id`` (it fixes the domain's
    configuration: loopback, the run's discovery tag).
    """
    from cyclonedds.core import Policy, Qos
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from hardpoint._dds import _transport
    from hardpoint._dds._envelope import Schema
    from hardpoint._dds._transport import SCHEMA_TOPIC

    with _transport._domains_lock:
        held = domain_id in _transport._domains
    if not held:  # a bare participant would create the domain with Cyclone's defaults: not loopback-only
        raise RuntimeError(f"collect_announcements: no hardpoint transport of this process holds domain {domain_id}")
    participant = DomainParticipant(domain_id)
    qos = Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=1)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepAll,  # every writer's sample of a schema id, not the last one of any writer
        Policy.Liveliness.Automatic(lease_duration=duration(infinite=True)),
        Policy.DataRepresentation(use_cdrv0_representation=True, use_xcdrv2_representation=True),
    )
    reader = DataReader(participant, Topic(participant, SCHEMA_TOPIC, Schema), qos)
    writers: dict[int, int] = {}  # publication handle -> pid
    found: dict[tuple[str, str], Announcement] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            pending = list(reader.take(N=256))
            if pending:
                pids = _participant_pids(participant)
                for sample in pending:
                    handle = sample.sample_info.publication_handle  # type: ignore[attr-defined]
                    if handle not in writers:
                        endpoint = reader.get_matched_publication_data(handle)
                        writers[handle] = pids.get(endpoint.participant_key, 0) if endpoint is not None else 0
                    if writers[handle] == pid:
                        key = (sample.interface, sample.schema_id)
                        found[key] = Announcement(sample.interface, sample.schema_id, bytes(sample.descriptor_set))
            if {i for i, _ in found} >= set(interfaces) or time.monotonic() > deadline:
                return list(found.values())
            time.sleep(0.05)
    finally:
        participant.__del__()  # delete the participant (and its reader) now, not at garbage collection


def collect_stamps(host: HostedModule, provided: Mapping[str, InterfaceSpec], timeout_s: float) -> dict[str, set[str]]:
    """Schema ids on the samples the module publishes on each provided interface.

    The module's samples are those its participants wrote (CF-HOST-004), whatever source they claim.
    """
    from hardpoint import Frame, FrameReader

    stamps = _Stamps()
    readers: list[FrameReader] = []
    theirs: dict[tuple[str, int], bool] = {}  # (interface, writer handle) -> written by the module

    def module_wrote(interface: str, reader: FrameReader, frame: Frame) -> bool:
        key = (interface, frame.writer)
        if key not in theirs:
            identity = reader.writer_identity(frame.writer)
            mine = host.wrote(identity, frame.source)
            if identity is None:
                return mine  # judged by its claimed source this once; a later frame may resolve its writer
            theirs[key] = mine
        return theirs[key]

    for name, spec in provided.items():
        channel = contract_channel(spec)
        box: list[FrameReader] = []

        def deliver(frames: Sequence[Frame], interface: str = name, box: list[FrameReader] = box) -> None:
            for frame in frames:
                if frame.count > 0 and box and module_wrote(interface, box[0], frame):
                    stamps.add(interface, frame.schema_id)

        box.append(host.transport.open_reader(channel, deliver))
        readers.append(box[0])
    periodic = {n for n, s in provided.items() if s.nominal_rate_hz > 0}
    try:
        deadline = time.monotonic() + timeout_s
        # Every periodic interface, and at least one sample of anything: a module that provides only
        # aperiodic interfaces (an alerter waiting for tracks) is judged on its first output, not on none.
        while (not periodic <= set(stamps.snapshot()) or not stamps.snapshot()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a little more, for samples of the aperiodic interfaces already on their way
    finally:
        for reader in readers:
            reader.close()
    return stamps.snapshot()


def latest_counters(host: HostedModule, required: Sequence[str], timeout_s: float) -> dict[str, int]:
    """Counters of the module's latest heartbeat, once every required interface shows a delivery (or timeout)."""
    from hardpoint import Frame, interface_spec
    from hardpoint.core.v1 import health_pb2

    spec = interface_spec(health_pb2.ModuleHealth)
    latest: dict[str, int] = {}
    lock = threading.Lock()

    def deliver(frames: Sequence[Frame]) -> None:
        for frame in frames:
            if frame.source != host.name or frame.count != 1:
                continue
            beat = health_pb2.ModuleHealth.FromString(frame.payload)
            with lock:
                latest.clear()
                latest.update(beat.counters)

    def settled() -> bool:
        with lock:
            return bool(latest) and all(
                latest.get(f"sub:{n}.delivered", 0) or latest.get(f"sub:{n}.schema_mismatch", 0) for n in required
            )

    channel = contract_channel(spec)
    reader = host.transport.open_reader(channel, deliver)
    try:
        deadline = time.monotonic() + timeout_s
        while not settled() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        reader.close()
    with lock:
        return dict(latest)


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class SchemaObservation:
    module: str
    roles: dict[str, str]
    announced: list[Announcement]
    platform: dict[str, InterfaceSpec]
    platform_sets: dict[str, bytes]


@pytest.fixture(scope="session")
def schema_observation(hosted_module: HostedModule) -> SchemaObservation:
    """What the hosted module announced on ``hp/schemas``, with the platform's schemas to compare to."""
    import hardpoint
    from hardpoint._contracts import file_descriptor_set

    hosted_module.transport  # noqa: B018 - a transport of this process holds the domain's configuration
    roles = declared(hosted_module.manifest)
    platform = hardpoint.all_interfaces()
    sets = {name: file_descriptor_set(spec.message_type.DESCRIPTOR) for name, spec in platform.items()}
    provided = [name for name, role in roles.items() if role == "provides"]
    announced = collect_announcements(hosted_module.domain_id, hosted_module.pid, provided, ANNOUNCE_TIMEOUT_S)
    return SchemaObservation(hosted_module.name, roles, announced, platform, sets)


# --------------------------------------------------------------------------- checks


@pytest.mark.hardpoint("CF-SCHEMA-001", "SDK-BUS-006")
def test_provided_interfaces_announced(schema_observation: SchemaObservation, record_property: Any) -> None:
    """The module's process announces a schema for every interface it provides."""
    obs = schema_observation
    provided = {n for n, role in obs.roles.items() if role == "provides"}
    if not provided:
        not_applicable(record_property, "the module provides no interface: nothing to announce")
        return
    problems = missing_announcements(obs.module, obs.roles, obs.announced)
    if problems:
        pytest.fail("CF-SCHEMA-001 " + "; ".join(problems), pytrace=False)
    judged(record_property, len(provided & {a.interface for a in obs.announced}), "provided interfaces announced")


@pytest.mark.hardpoint("CF-SCHEMA-002", "IF-ENV-SCHEMA")
def test_announced_schemas_wire_compatible(
    schema_observation: SchemaObservation, request: pytest.FixtureRequest
) -> None:
    """Every schema the module announces is wire-compatible with the platform's (buf WIRE rules)."""
    obs = schema_observation
    problems = schema_findings(obs.module, obs.roles, obs.announced, obs.platform, obs.platform_sets)
    if problems:
        pytest.fail("CF-SCHEMA-002 " + "; ".join(problems), pytrace=False)
    compared = [a for a in obs.announced if a.interface in obs.platform]
    if not compared and "provides" not in obs.roles.values():
        # SDK-BUS-006: only what a module publishes is announced; a pure consumer announces nothing.
        not_applicable(request, "the module provides no interface, so it announces no schema")
        return
    judged(request, len(compared), "announced schemas compared with the platform's")


@pytest.mark.hardpoint("CF-SCHEMA-003", "IF-ENV-SCHEMA", "IF-ENV-RX-SCHEMA")
def test_sample_schema_ids_match_platform(
    hosted_module: HostedModule, schema_observation: SchemaObservation, record_property: Any
) -> None:
    """Every sample the module publishes carries the platform's schema id of its interface."""
    provided = {
        n: schema_observation.platform[n] for n in hosted_module.manifest.provides if n in schema_observation.platform
    }
    if not provided:
        not_applicable(record_property, "the module provides no interface: no samples to check")
        return
    stamps = collect_stamps(hosted_module, provided, SAMPLE_TIMEOUT_S)
    problems, notes = stamp_findings(hosted_module.name, provided, stamps)
    for note in notes:
        record_property("note", note)
    judged(record_property, sum(bool(stamps.get(n)) for n in provided), "provided interfaces with samples")
    if problems:
        pytest.fail("CF-SCHEMA-003 " + "; ".join(problems), pytrace=False)


@pytest.mark.hardpoint("CF-SCHEMA-004", "IF-ENV-RX-SCHEMA")
def test_required_interfaces_read_with_platform_schema(hosted_module: HostedModule, record_property: Any) -> None:
    """Fed the platform's samples, the module's readers of its required interfaces drop none for the schema id."""
    required = list(hosted_module.manifest.requires)
    if not required:
        not_applicable(record_property, "the module requires no interface: no readers to check")
        return
    counters = latest_counters(hosted_module, required, SAMPLE_TIMEOUT_S)
    if not counters:
        pytest.fail(
            f"CF-SCHEMA-004 module {hosted_module.name!r}: no heartbeat (hp/core/v1/health) within "
            f"{SAMPLE_TIMEOUT_S:g} s: its reader counters cannot be read",
            pytrace=False,
        )
    problems, notes = reader_findings(hosted_module.name, required, counters)
    for note in notes:
        record_property("note", note)
    read = [n for n in required if counters.get(f"sub:{n}.delivered", 0) or counters.get(f"sub:{n}.schema_mismatch", 0)]
    judged(record_property, len(read), "required interfaces read")
    if problems:
        pytest.fail("CF-SCHEMA-004 " + "; ".join(problems), pytrace=False)
