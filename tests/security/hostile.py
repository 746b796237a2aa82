"""A hostile DDS participant of the project's own making: it attacks a running hardpoint platform.

Usage::

    python tests/security/hostile.py --domain-id N --duration S --rate R --seed K --report FILE.json

It joins the platform's DDS domain with hardpoint's own loopback configuration (interface ``lo``,
multicast off, unicast discovery on 127.0.0.1; the program checks Cyclone DDS selected ``lo`` and
nothing else before it creates its participant), and uses nothing but plain ``cyclonedds`` (and
``google.protobuf`` to parse announced descriptors) for its bus I/O: no hardpoint code.

What it does, in order:

1. Discovers every topic from DDS discovery (the DCPSPublication and DCPSSubscription builtin
   topics, so topics that only have readers, such as the tasking requests, are found too) and the
   type of each (the type name of the endpoint, checked against the type object fetched with XTypes
   type lookup). It declares the envelope types itself, with the typenames and members the SDK uses
   (``hardpoint::bus::Envelope``, ``hardpoint::bus::KeyedEnvelope`` keyed on ``key``,
   ``hardpoint::bus::Schema`` keyed on ``schema_id``).
2. Opens a reader on every topic with the reliability and durability of the real endpoints (read
   from the discovery sample, so it matches; transient-local topics give it their current state at
   once) and a keep-last history (it never slows a real writer down), and records real samples.
3. For ``--duration`` seconds, at about ``--rate`` samples per second across all topics, writes
   with its own writers (QoS mirrored from the real endpoints) mutated copies of the real samples
   and samples with random values, on every topic including ``hp/core/v1/health``, ``hp/schemas``
   and the tasking topics. The kind of each sample is drawn at random (``--seed``): see
   :data:`ENVELOPE_KINDS`, :data:`KEYED_KINDS` and :data:`SCHEMA_KINDS`. On keyed topics it also
   disposes and unregisters real instances.
4. Writes a JSON report (``--report``): its participant GUID, the GUID of every writer it used, what
   it discovered and matched, how many samples of each kind it wrote on each topic, and the
   network interfaces Cyclone DDS selected.

Exit code 0 when the attack ran its course (even if some writes failed: they are counted), 2 when
it could not start (configuration not loopback-only, no topic discovered).
"""

# No ``from __future__ import annotations``: cyclonedds resolves the IDL member annotations at run
# time in this module's namespace.
import argparse
import json
import math
import random
import re
import string
import sys
import time
import traceback
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
from cyclonedds.core import DDSException, Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import keylist
from cyclonedds.idl.types import int64, sequence, uint8, uint32, uint64
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

REPO = Path(__file__).resolve().parents[2]
#: hardpoint's packaged loopback configuration, read as text (not imported).
LOOPBACK_XML = REPO / "sdk" / "src" / "hardpoint" / "_dds" / "loopback.xml"

U32 = 2**32 - 1
U64 = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


# -- the types on the bus, declared here ------------------------------------------------------------


@dataclass
class Envelope(IdlStruct, typename="hardpoint::bus::Envelope"):
    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    payload: sequence[uint8]


@dataclass
@keylist(["key"])
class KeyedEnvelope(IdlStruct, typename="hardpoint::bus::KeyedEnvelope"):
    key: str
    source: str
    epoch: uint32
    seq: uint64
    count: uint32
    stamp_ns: int64
    interface: str
    schema_id: str
    payload: sequence[uint8]


@dataclass
@keylist(["schema_id"])
class Schema(IdlStruct, typename="hardpoint::bus::Schema"):
    schema_id: str
    interface: str
    topic: str
    qos: str
    descriptor_set: sequence[uint8]


TYPES: dict[str, Any] = {
    "hardpoint::bus::Envelope": Envelope,
    "hardpoint::bus::KeyedEnvelope": KeyedEnvelope,
    "hardpoint::bus::Schema": Schema,
}
ENVELOPE_MEMBERS = ("key", "source", "epoch", "seq", "count", "stamp_ns", "interface", "schema_id", "payload")
MEMBERS = {
    "hardpoint::bus::Envelope": ENVELOPE_MEMBERS,
    "hardpoint::bus::KeyedEnvelope": ENVELOPE_MEMBERS,
    "hardpoint::bus::Schema": ("schema_id", "interface", "topic", "qos", "descriptor_set"),
}

#: What it writes on an envelope topic, one kind per sample (each a mutated copy of a real sample of
#: the topic, or of a sample built from the topic's schema announcement when none was seen yet).
ENVELOPE_KINDS = (
    "seq_max",  # sequence 2**64-1: every later real sample of that source looks like a duplicate
    "seq_zero",
    "seq_negative",  # -1 .. -1000 as a uint64
    "seq_jump",  # far ahead of the real sequence
    "seq_next",  # the real source's next sequence number, real payload: a plausible impersonation
    "replay",  # an old real sample, verbatim
    "source_swap",  # another real module's name
    "source_empty",
    "source_random",
    "epoch_change",
    "interface_swap",  # the interface name of another topic
    "interface_empty",
    "schema_swap",  # the schema id of another interface
    "schema_empty",
    "payload_flip",
    "payload_truncate",
    "payload_extend",
    "payload_splice",  # the head of this payload, the tail of another topic's
    "payload_empty",
    "count_wrong",
    "stamp_wild",
    "random_envelope",  # every member random
    "random_message",  # a valid message of the interface with random field values, real header
)
#: Kinds only keyed (STATE) topics get.
KEYED_KINDS = ("key_swap", "key_random", "dispose", "unregister")
#: What it writes on ``hp/schemas``.
SCHEMA_KINDS = (
    "schema_replay",
    "schema_bogus_qos",  # "BOGUS", "", lower case, ...
    "schema_empty_topic",
    "schema_illegal_topic",
    "schema_garbage_descriptor",
    "schema_forged_descriptor",  # a real schema id with another schema's (or a corrupted) descriptor set
    "schema_swap_interface",
    "schema_swap_topic",  # a real record pointing at another interface's topic
    "schema_empty_id",
    "schema_random",
    "schema_dispose",
    "schema_unregister",
)
ILLEGAL_TOPICS = ("hp/track v1/fused", "hp/../../etc", "hp/\u00e9\u00e8/x", "*", "hp/alert/v1/alert\n", "/", "a" * 300)
BOGUS_QOS = ("BOGUS", "", "state", "STATE ", "EVENT|STREAM", "\u0411OGUS", "COMMAND" * 40)


def random_text(rng: random.Random, max_len: int = 24) -> str:
    """Any text an IDL string can carry: no NUL, no surrogates."""
    pick = rng.random()
    if pick < 0.4:
        return "".join(rng.choices(string.ascii_letters + string.digits + "/._- ", k=rng.randint(0, max_len)))
    if pick < 0.8:
        return "".join(
            chr(rng.choice([rng.randint(1, 0xD7FF), rng.randint(0xE000, 0x10FFFF)]))
            for _ in range(rng.randint(1, max_len))
        )
    return rng.choice(["x" * rng.randint(500, 5000), " ", "\t\n", "\u202e", "\ufeff", "%s%n", "${jndi:x}", "'; --"])


def random_bytes(rng: random.Random, max_len: int = 256) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 2, 7, rng.randint(0, max_len), rng.randint(0, 8 * max_len)]))


# -- random protobuf messages from announced descriptors ------------------------------------------------


class Descriptors:
    """Message classes of the interfaces announced on ``hp/schemas`` (parsed with google.protobuf only)."""

    def __init__(self) -> None:
        self._classes: dict[str, Any] = {}  # schema id -> message class (None: could not be built)

    def message_class(self, record: dict[str, Any]) -> Any:
        sid = record["schema_id"]
        if sid not in self._classes:
            self._classes[sid] = self._build(record)
        return self._classes[sid]

    @staticmethod
    def _build(record: dict[str, Any]) -> Any:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        try:
            fds = descriptor_pb2.FileDescriptorSet.FromString(record["descriptor_set"])
            pool = descriptor_pool.DescriptorPool()
            pending = list(fds.file)
            while pending:  # dependencies first, whatever the order in the set
                progress = False
                for f in list(pending):
                    try:
                        pool.Add(f)
                    except Exception:
                        continue
                    pending.remove(f)
                    progress = True
                if not progress:
                    break
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(record["interface"]))
        except Exception:
            return None


def random_message(cls: Any, rng: random.Random, depth: int = 0) -> Any:
    """A message of ``cls`` with random values in random fields (valid protobuf, nonsense content)."""
    from google.protobuf import message_factory
    from google.protobuf.descriptor import FieldDescriptor as F

    msg = cls()
    for field in msg.DESCRIPTOR.fields:
        if rng.random() < 0.25:
            continue
        repeated = _repeated(field)
        if field.type == F.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry or depth > 3:
                continue
            sub = message_factory.GetMessageClass(field.message_type)
            if repeated:
                for _ in range(rng.randint(0, 3)):
                    getattr(msg, field.name).add().CopyFrom(random_message(sub, rng, depth + 1))
            else:
                getattr(msg, field.name).CopyFrom(random_message(sub, rng, depth + 1))
            continue
        values = [_random_scalar(field, rng) for _ in range(rng.randint(0, 3) if repeated else 1)]
        try:
            if repeated:
                getattr(msg, field.name).extend(values)
            else:
                setattr(msg, field.name, values[0])
        except (TypeError, ValueError):
            pass
    return msg


def _repeated(field: Any) -> bool:
    from google.protobuf.descriptor import FieldDescriptor as F

    flag = getattr(field, "is_repeated", None)  # protobuf >= 6; ``label`` is gone in 7
    return bool(flag) if flag is not None else field.label == F.LABEL_REPEATED


def _random_scalar(field: Any, rng: random.Random) -> Any:  # noqa: PLR0911 - one return per field type
    from google.protobuf.descriptor import FieldDescriptor as F

    t = field.type
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308 if t == F.TYPE_DOUBLE else 3e38,
                           rng.uniform(-1e6, 1e6), rng.uniform(-180, 180)])  # fmt: skip
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return rng.choice([0, -1, 2**31 - 1, -(2**31), rng.randint(-(2**31), 2**31 - 1)])
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return rng.choice([0, -1, I64_MAX, I64_MIN, rng.randint(I64_MIN, I64_MAX), time.time_ns()])
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return rng.choice([0, U32, rng.randint(0, U32)])
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return rng.choice([0, U64, rng.randint(0, U64), time.time_ns()])
    if t == F.TYPE_BOOL:
        return rng.random() < 0.5
    if t == F.TYPE_STRING:
        return random_text(rng, 40)
    if t == F.TYPE_BYTES:
        return random_bytes(rng, 64)
    if t == F.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return rng.choice([*numbers, rng.randint(-5, 1000)]) if not field.enum_type.is_closed else rng.choice(numbers)
    return None


# -- the attacker -------------------------------------------------------------------------------------


@dataclass
class Seen:
    """A real sample as it was read (envelope fields, or schema fields), and when."""

    at: float
    fields: dict[str, Any]


class TopicAttack:
    """One discovered topic: its reader of real samples and the writer of forged ones."""

    def __init__(self, name: str, typename: str, found_on: str) -> None:
        self.name = name
        self.typename = typename
        self.cls = TYPES[typename]
        self.keyed = typename != "hardpoint::bus::Envelope"
        self.found_on = found_on  # "publication" or "subscription"
        self.topic: Any = None
        self.reader: Any = None
        self.writer: Any = None
        self.recent: deque[Seen] = deque(maxlen=256)
        self.old: deque[Seen] = deque(maxlen=64)  # older samples, for replays
        self.last_by_key: dict[str, Seen] = {}
        #: Last (epoch, seq) of each real source seen on this topic.
        self.tracks: dict[str, tuple[int, int]] = {}
        self.real_count = 0
        self.invalid_count = 0  # disposes / unregisters observed (valid_data false)


class Hostile:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.topics: dict[str, TopicAttack] = {}
        self.skipped: dict[str, str] = {}  # topic -> why it is not attacked
        self.type_lookup: dict[str, str] = {}
        self.schemas: dict[str, dict[str, Any]] = {}  # real schema announcements by schema id
        self.sources: set[str] = set()  # real module names seen (sources and health keys)
        self.descriptors = Descriptors()
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)  # topic -> kind -> written
        self.failed: dict[str, Counter[str]] = defaultdict(Counter)  # topic -> error -> count
        self.participant: Any = None
        self.domain: Any = None
        self.selected_interfaces = ""
        self.started = self.ended = 0.0
        self._random_keys = [random_text(self.rng, 12) for _ in range(16)]

    # -- setting up -------------------------------------------------------------------------------

    def join(self) -> None:
        xml = self.args.config.read_text(encoding="utf-8")
        if (
            not re.search(r'<NetworkInterface\s+name="lo"\s*/>', xml)
            or "<AllowMulticast>false</AllowMulticast>" not in xml
        ):
            raise SystemExit(f"refusing to run: {self.args.config} is not a loopback-only, multicast-off configuration")
        trace = self.args.report.with_suffix(".dds-config.log")
        trace.unlink(missing_ok=True)
        # Cyclone's configuration trace says which interfaces it selected; checked before any participant exists.
        tracing = f"<Tracing><Verbosity>config</Verbosity><OutputFile>{trace}</OutputFile></Tracing>"
        xml = xml.replace("</Domain>", tracing + "</Domain>", 1)
        self.domain = Domain(self.args.domain_id, xml)
        lines = [line for line in trace.read_text(errors="replace").splitlines() if "selected interfaces:" in line]
        self.selected_interfaces = lines[-1].split("selected interfaces:", 1)[1].strip() if lines else ""
        if not self.selected_interfaces.startswith("lo ") or "," in self.selected_interfaces:
            raise SystemExit(
                f"refusing to run: Cyclone DDS selected interfaces {self.selected_interfaces!r}, not only lo"
            )
        self.participant = DomainParticipant(self.args.domain_id)
        self.pubs = BuiltinDataReader(self.participant, BuiltinTopicDcpsPublication)
        self.subs = BuiltinDataReader(self.participant, BuiltinTopicDcpsSubscription)

    def discover(self) -> int:
        """Take new discovery samples; set up every new topic. Returns how many topics are new."""
        new = 0
        me = self.participant.guid
        for reader, found_on in ((self.pubs, "publication"), (self.subs, "subscription")):
            try:
                samples = reader.take(N=256)
            except DDSException:
                continue
            for ep in samples:
                if not getattr(ep, "topic_name", None) or ep.participant_key == me or ep.topic_name.startswith("DCPS"):
                    continue
                existing = self.topics.get(ep.topic_name)
                if existing is not None:
                    if found_on == "publication" and existing.found_on == "subscription":
                        existing.found_on = "publication+subscription"
                    continue
                if ep.topic_name in self.skipped:
                    continue
                if ep.type_name not in TYPES:
                    self.skipped[ep.topic_name] = f"unknown type {ep.type_name}"
                    continue
                self._check_type(ep)
                try:
                    self._setup(ep, found_on)
                    new += 1
                except DDSException as e:
                    self.skipped[ep.topic_name] = f"cannot open: {e}"
        return new

    def _check_type(self, ep: Any) -> None:
        """XTypes type lookup: the type object the real endpoint announces has the members declared here."""
        if ep.type_name in self.type_lookup:
            return
        if ep.type_id is None:
            self.type_lookup[ep.type_name] = "no type id announced"
            return
        try:
            from cyclonedds.dynamic import get_types_for_typeid

            cls, _ = get_types_for_typeid(self.participant, ep.type_id, duration(seconds=2))
            members = tuple(getattr(cls, "__annotations__", {}))
            ok = members == MEMBERS[ep.type_name]
            self.type_lookup[ep.type_name] = "matches" if ok else f"differs: {members}"
        except Exception as e:
            self.type_lookup[ep.type_name] = f"lookup failed: {e}"

    def _setup(self, ep: Any, found_on: str) -> None:
        t = TopicAttack(ep.topic_name, ep.type_name, found_on)
        qos = ep.qos
        reliable = isinstance(qos[Policy.Reliability], Policy.Reliability.Reliable)
        durability = qos[Policy.Durability] or Policy.Durability.Volatile
        # Mirrors the real endpoint's reliability, with a short blocking time: a full reader of the
        # platform makes a write fail (counted) instead of stalling the attack for a second.
        reliability = (
            Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=50))
            if reliable
            else Policy.Reliability.BestEffort
        )
        liveliness = Policy.Liveliness.Automatic(lease_duration=duration(infinite=True))
        writer_policies = [
            reliability,
            durability,
            liveliness,
            Policy.DataRepresentation(use_cdrv0_representation=True),
        ]
        history = qos[Policy.History]
        limits = qos[Policy.ResourceLimits]
        if history == Policy.History.KeepAll:
            writer_policies += [Policy.History.KeepAll] + ([limits] if limits is not None else [])
        else:
            writer_policies.append(Policy.History.KeepLast(1))
        reader_policies = [
            reliability,
            durability,
            liveliness,
            Policy.History.KeepLast(64),
            Policy.IgnoreLocal.Participant,  # only the platform's samples, never its own
            Policy.DataRepresentation(use_cdrv0_representation=True, use_xcdrv2_representation=True),
        ]
        t.topic = Topic(self.participant, t.name, t.cls)
        t.reader = DataReader(self.participant, t.topic, Qos(*reader_policies))
        t.writer = DataWriter(self.participant, t.topic, Qos(*writer_policies))
        self.topics[t.name] = t

    # -- reading real samples -----------------------------------------------------------------------

    def read_real(self) -> None:
        now = time.monotonic()
        for t in self.topics.values():
            try:
                samples = t.reader.take(N=256)
            except Exception as e:  # a sample its own deserializer cannot read (another attacker?)
                self.failed[t.name][f"take: {type(e).__name__}"] += 1
                continue
            for s in samples:
                if not s.sample_info.valid_data:
                    t.invalid_count += 1
                    continue
                t.real_count += 1
                if t.cls is Schema:
                    fields = {
                        "schema_id": s.schema_id,
                        "interface": s.interface,
                        "topic": s.topic,
                        "qos": s.qos,
                        "descriptor_set": bytes(s.descriptor_set),
                    }
                    self.schemas.setdefault(s.schema_id, fields)
                else:
                    fields = {name: getattr(s, name) for name in ENVELOPE_MEMBERS}
                    fields["payload"] = bytes(fields["payload"])
                    if fields["source"]:
                        self.sources.add(fields["source"])
                        t.tracks[fields["source"]] = (fields["epoch"], fields["seq"] + max(fields["count"], 1) - 1)
                    if t.name == "hp/core/v1/health" and fields["key"]:
                        self.sources.add(fields["key"])
                seen = Seen(now, fields)
                if len(t.recent) == t.recent.maxlen:
                    oldest = t.recent[0]
                    if not t.old or now - t.old[-1].at > 0.5:
                        t.old.append(oldest)
                t.recent.append(seen)
                key = fields.get("key", fields.get("schema_id", ""))
                t.last_by_key[key] = seen

    # -- forging ----------------------------------------------------------------------------------

    def _schema_of(self, t: TopicAttack) -> dict[str, Any] | None:
        for record in self.schemas.values():
            if record["topic"] == t.name:
                return record
        return None

    def _base(self, t: TopicAttack) -> dict[str, Any]:
        """A real sample of ``t`` to mutate, or one built from its schema announcement."""
        if t.recent:
            return dict(self.rng.choice(t.recent).fields)
        record = self._schema_of(t)
        payload = b""
        if record is not None:
            cls = self.descriptors.message_class(record)
            if cls is not None:
                payload = random_message(cls, self.rng).SerializeToString()
        source = self.rng.choice(sorted(self.sources)) if self.sources else "geofence"
        return {
            "key": "",
            "source": source,
            "epoch": self.rng.randint(0, U32),
            "seq": self.rng.randint(1, 1000),
            "count": 1,
            "stamp_ns": time.time_ns(),
            "interface": record["interface"] if record else "",
            "schema_id": record["schema_id"] if record else "",
            "payload": payload,
        }

    def _other_payload(self, t: TopicAttack) -> bytes:
        others = [o for o in self.topics.values() if o.recent and o.cls is not Schema and o is not t]
        if not others:
            return random_bytes(self.rng)
        return bytes(self.rng.choice(others[self.rng.randrange(len(others))].recent).fields["payload"])

    def forge_envelope(self, t: TopicAttack) -> tuple[str, dict[str, Any], str]:  # noqa: PLR0912 - a branch per kind
        """(kind, fields, action) for one hostile sample on an envelope topic; action: write, dispose, unregister."""
        rng = self.rng
        kinds = ENVELOPE_KINDS + (KEYED_KINDS if t.keyed else ())
        kind = rng.choice(kinds)
        f = self._base(t)
        p = f["payload"]
        action = "write"
        if kind == "seq_max":
            f["seq"] = U64
        elif kind == "seq_zero":
            f["seq"] = 0
        elif kind == "seq_negative":
            f["seq"] = U64 + 1 - rng.randint(1, 1000)
        elif kind == "seq_jump":
            f["seq"] = min(U64, f["seq"] + rng.choice([2, 1000, 2**20, 2**32, 2**40]))
        elif kind == "seq_next":
            epoch, last = t.tracks.get(f["source"], (f["epoch"], f["seq"]))
            f["epoch"], f["seq"] = epoch, min(U64, last + 1)
        elif kind == "replay":
            pool = t.old or t.recent
            if pool:
                f = dict(rng.choice(pool).fields)
        elif kind == "source_swap":
            others = sorted(self.sources - {f["source"]}) or ["nav"]
            f["source"] = rng.choice(others)
        elif kind == "source_empty":
            f["source"] = ""
        elif kind == "source_random":
            f["source"] = random_text(rng)
        elif kind == "epoch_change":
            f["epoch"] = rng.choice([0, U32, (f["epoch"] + 1) & U32, rng.randint(0, U32)])
        elif kind == "interface_swap":
            f["interface"] = rng.choice(
                [r["interface"] for r in self.schemas.values()] or ["hardpoint.nav.v1.NavState"]
            )
        elif kind == "interface_empty":
            f["interface"] = ""
        elif kind == "schema_swap":
            f["schema_id"] = rng.choice([r["schema_id"] for r in self.schemas.values()] or [random_text(rng)])
        elif kind == "schema_empty":
            f["schema_id"] = ""
        elif kind == "payload_flip":
            if p:
                b = bytearray(p)
                for _ in range(rng.randint(1, 8)):
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                f["payload"] = bytes(b)
            else:
                f["payload"] = random_bytes(rng)
        elif kind == "payload_truncate":
            f["payload"] = p[: rng.randint(0, max(0, len(p) - 1))]
        elif kind == "payload_extend":
            f["payload"] = p + random_bytes(rng, 64)
        elif kind == "payload_splice":
            other = self._other_payload(t)
            f["payload"] = p[: rng.randint(0, len(p))] + other[rng.randint(0, len(other)) :]
        elif kind == "payload_empty":
            f["payload"] = b""
        elif kind == "count_wrong":
            f["count"] = rng.choice([0, 2, 3, 1000, 4097, U32])
        elif kind == "stamp_wild":
            f["stamp_ns"] = rng.choice([0, -1, I64_MIN, I64_MAX, f["stamp_ns"] - 3600 * 10**9, f["stamp_ns"] + 10**15])
        elif kind == "random_envelope":
            f = {
                "key": random_text(rng) if t.keyed else rng.choice(["", random_text(rng)]),
                "source": rng.choice([*sorted(self.sources), random_text(rng)]),
                "epoch": rng.randint(0, U32),
                "seq": rng.randint(0, U64),
                "count": rng.choice([0, 1, 1, 2, rng.randint(0, U32)]),
                "stamp_ns": rng.randint(I64_MIN, I64_MAX),
                "interface": rng.choice([f["interface"], random_text(rng)]),
                "schema_id": rng.choice([f["schema_id"], random_text(rng)]),
                "payload": random_bytes(rng),
            }
        elif kind == "random_message":
            record = self.schemas.get(f["schema_id"]) or self._schema_of(t)
            cls = self.descriptors.message_class(record) if record else None
            if cls is not None:
                f["payload"] = random_message(cls, rng).SerializeToString()
                f["count"] = 1
                epoch, last = t.tracks.get(f["source"], (f["epoch"], f["seq"]))
                f["epoch"], f["seq"], f["stamp_ns"] = epoch, min(U64, last + rng.randint(1, 3)), time.time_ns()
            else:
                f["payload"] = random_bytes(rng)
        elif kind == "key_swap":
            keys = [k for k in t.last_by_key if k != f["key"]]
            f["key"] = rng.choice(keys) if keys else random_text(rng)
        elif kind == "key_random":
            f["key"] = rng.choice(self._random_keys)
        elif kind in ("dispose", "unregister"):
            keys = list(t.last_by_key) or [f["key"]]
            f["key"] = rng.choice(keys)
            action = kind
        if not t.keyed and kind != "random_envelope" and rng.random() < 0.05:
            f["key"] = random_text(rng)  # a key on a keyless topic
        return kind, f, action

    def forge_schema(self, t: TopicAttack) -> tuple[str, dict[str, Any], str]:  # noqa: PLR0912 - a branch per kind
        rng = self.rng
        kind = rng.choice(SCHEMA_KINDS)
        real = list(self.schemas.values())
        if real:
            f = dict(rng.choice(real))
        else:
            f = {"schema_id": random_text(rng), "interface": random_text(rng), "topic": "hp/x", "qos": "EVENT",
                 "descriptor_set": random_bytes(rng)}  # fmt: skip
        action = "write"
        if kind == "schema_replay":
            pass
        elif kind == "schema_bogus_qos":
            f["qos"] = rng.choice(BOGUS_QOS)
        elif kind == "schema_empty_topic":
            f["topic"] = ""
        elif kind == "schema_illegal_topic":
            f["topic"] = rng.choice([*ILLEGAL_TOPICS, random_text(rng)])
        elif kind == "schema_garbage_descriptor":
            f["descriptor_set"] = random_bytes(rng, 512)
        elif kind == "schema_forged_descriptor":
            others = [r for r in real if r["schema_id"] != f["schema_id"]]
            if others and rng.random() < 0.5:
                f["descriptor_set"] = rng.choice(others)["descriptor_set"]
            else:
                b = bytearray(f["descriptor_set"] or b"\0")
                for _ in range(rng.randint(1, 16)):
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                f["descriptor_set"] = bytes(b[: rng.randint(1, len(b))])
        elif kind == "schema_swap_interface":
            f["interface"] = rng.choice([r["interface"] for r in real] + [random_text(rng)])
        elif kind == "schema_swap_topic":
            f["topic"] = rng.choice([r["topic"] for r in real] + ["hp/core/v1/health"])
        elif kind == "schema_empty_id":
            f["schema_id"] = ""
        elif kind == "schema_random":
            f = {
                "schema_id": rng.choice([f["schema_id"], random_text(rng)]),
                "interface": random_text(rng),
                "topic": rng.choice(["hp/" + random_text(rng), random_text(rng)]),
                "qos": rng.choice(["STATE", "EVENT", "STREAM", "COMMAND", *BOGUS_QOS]),
                "descriptor_set": random_bytes(rng, 512),
            }
        elif kind in ("schema_dispose", "schema_unregister"):
            action = kind.removeprefix("schema_")
        return kind, f, action

    def attack_one(self, t: TopicAttack) -> None:
        try:
            if t.cls is Schema:
                kind, f, action = self.forge_schema(t)
                sample = Schema(f["schema_id"], f["interface"], f["topic"], f["qos"], list(f["descriptor_set"]))
            else:
                kind, f, action = self.forge_envelope(t)
                sample = t.cls(*(list(f["payload"]) if m == "payload" else f[m] for m in ENVELOPE_MEMBERS))
        except Exception as e:  # a bug in this program: counted (and reported), the attack goes on
            self.failed[t.name][f"forge: {type(e).__name__}: {e}"[:160]] += 1
            return
        try:
            if action == "dispose":
                t.writer.dispose(sample)
            elif action == "unregister":
                t.writer.unregister_instance(sample)
            else:
                t.writer.write(sample)
        except DDSException as e:
            self.failed[t.name][f"{action}: {DDSException.error_message_mapping.get(e.code, (e.code,))[0]}"] += 1
            return
        except Exception as e:  # a value the serializer refuses: a bug in this program, but keep attacking
            self.failed[t.name][f"{action}: {type(e).__name__}: {e}"[:160]] += 1
            return
        self.counts[t.name][kind] += 1

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        deadline = time.monotonic() + args.discover_s
        quiet_since = time.monotonic()
        first = time.monotonic()
        while time.monotonic() < deadline:
            if self.discover():
                quiet_since = time.monotonic()
            self.read_real()
            if self.topics and time.monotonic() - quiet_since > 1.0 and time.monotonic() - first > 2.0:
                break
            time.sleep(0.1)
        if not self.topics:
            raise SystemExit(f"no topic discovered on domain {args.domain_id} within {args.discover_s:g} s")
        interval = 1.0 / args.rate
        self.started = time.time()
        start = time.monotonic()
        end = start + args.duration
        next_write = start
        next_poll = start
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_poll:
                self.discover()
                self.read_real()
                next_poll = now + 0.2
            t = self.topics[self.rng.choice(sorted(self.topics))]
            self.attack_one(t)
            next_write += interval
            delay = next_write - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:
                next_write = time.monotonic()  # fell behind (blocked writes): do not burst to catch up
        self.ended = time.time()

    def report(self, error: str = "") -> dict[str, Any]:
        written = sum(sum(c.values()) for c in self.counts.values())
        per_kind: Counter[str] = Counter()
        for c in self.counts.values():
            per_kind.update(c)
        topics = {}
        for name, t in sorted(self.topics.items()):
            entry: dict[str, Any] = {
                "type": t.typename,
                "found_on": t.found_on,
                "writer": str(t.writer.guid) if t.writer is not None else "",
                "real_samples_read": t.real_count,
                "invalid_samples_read": t.invalid_count,
                "written": sum(self.counts[name].values()),
                "kinds": dict(sorted(self.counts[name].items())),
                "failed": dict(self.failed.get(name, {})),
            }
            try:
                matched = t.writer.get_publication_matched_status()
                entry["matched_readers"] = matched.current_count
                entry["incompatible_qos"] = t.writer.get_offered_incompatible_qos_status().total_count
            except Exception as e:
                entry["matched_readers"] = f"unknown: {e}"
            topics[name] = entry
        elapsed = (self.ended or time.time()) - self.started if self.started else 0.0
        return {
            "domain_id": self.args.domain_id,
            "seed": self.args.seed,
            "participant": str(self.participant.guid) if self.participant is not None else "",
            "writers": sorted(str(t.writer.guid) for t in self.topics.values() if t.writer is not None),
            "network": {"config": str(self.args.config), "selected_interfaces": self.selected_interfaces},
            "started": self.started,
            "ended": self.ended,
            "attack_s": round(elapsed, 3),
            "total_written": written,
            "rate": round(written / elapsed, 1) if elapsed else 0.0,
            "per_kind": dict(sorted(per_kind.items())),
            "topics": topics,
            "skipped_topics": self.skipped,
            "type_lookup": self.type_lookup,
            "real_sources": sorted(self.sources),
            "real_schemas": len(self.schemas),
            "error": error,
        }

    def acked(self, timeout_s: float) -> dict[str, bool]:
        """Whether every matched reliable reader acknowledged everything written (disposes included).

        Waits at most ``timeout_s`` in all.
        """
        out = {}
        deadline = time.monotonic() + timeout_s
        for name, t in sorted(self.topics.items()):
            left = max(0.0, deadline - time.monotonic())
            try:
                out[name] = bool(t.writer.wait_for_acks(duration(milliseconds=int(left * 1000))))
            except Exception:
                out[name] = False
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain-id", type=int, required=True)
    parser.add_argument("--duration", type=float, default=45.0, help="seconds of attack (after discovery)")
    parser.add_argument("--rate", type=float, default=550.0, help="samples per second, all topics together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, required=True, help="JSON report written at the end")
    parser.add_argument("--discover-s", type=float, default=8.0, help="longest wait for discovery before attacking")
    parser.add_argument("--config", type=Path, default=LOOPBACK_XML, help="Cyclone DDS configuration (loopback only)")
    args = parser.parse_args(argv)
    hostile = Hostile(args)
    error = ""
    acks: dict[str, bool] = {}
    try:
        hostile.join()
        hostile.run()
        acks = hostile.acked(3.0)
    except SystemExit as e:
        error = str(e)
    except Exception:
        error = traceback.format_exc()
    report = hostile.report(error)
    report["acked"] = acks
    args.report.write_text(json.dumps(report, indent=2))
    print(
        f"hostile: {report['total_written']} samples in {report['attack_s']} s on {len(report['topics'])} topics "
        f"({report['rate']}/s); report {args.report}" + (f"; error: {error}" if error else ""),
        file=sys.stderr,
    )
    return 2 if error else 0


if __name__ == "__main__":
    sys.exit(main())
