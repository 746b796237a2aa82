"""A generic DDS tool with no generated code: decodes hardpoint samples from the schemas on the bus.

    python -I schema_decoder.py --domain 42 --config <cyclone config> \
        --topic hp/alert/v1/alert=hardpoint::bus::Envelope \
        --topic hp/nav/v1/state=hardpoint::bus::KeyedEnvelope

It uses only ``cyclonedds`` and ``google.protobuf``: the ``hardpoint`` package
is made unimportable before anything else runs (its directories are removed
from ``sys.path`` and an import hook refuses the name), and the DDS types are
declared here from the IDL that ``cyclonedds typeof`` shows. It reads every
schema announcement on ``hp/schemas``, builds message classes from the
announced ``FileDescriptorSet`` whose schema id a sample carries, and prints one
JSON line per live sample: the envelope fields and the decoded messages
(``json_format.MessageToDict``). A sample with ``count > 1`` is parsed as the
``hardpoint.core.v1.Batch`` found in the same descriptor set; if the set does
not contain it, the line says so (``batch_from``) and the items are parsed with
the wire layout the specification documents (IF-ENV-BATCH), so that the test
can tell a missing schema from a wrong payload.

Lines printed: ``{"ready": ...}`` once the readers exist, then ``{"sample": ...}``
per sample, ``{"error": ...}`` for a sample it cannot decode, and
``{"bye": ..., "hardpoint_modules": [...]}`` when stdin ends.
"""

import importlib.abc
import os
import sys


class _NoGeneratedCode(importlib.abc.MetaPathFinder):
    """Refuses ``hardpoint`` and everything below it."""

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name == "hardpoint" or name.startswith(("hardpoint.", "hardpoint_")):
            raise ModuleNotFoundError(f"{name} is blocked: this tool has no generated code", name=name)


sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "hardpoint"))]
sys.meta_path.insert(0, _NoGeneratedCode())

# ruff: noqa: E402 - the guard above must run before any import that could pull in hardpoint
import argparse
import json
import threading
import time
from dataclasses import dataclass

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import keylist
from cyclonedds.idl.types import int64, sequence, uint8, uint32, uint64
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


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


TYPES = {"hardpoint::bus::Envelope": Envelope, "hardpoint::bus::KeyedEnvelope": KeyedEnvelope}
BATCH = "hardpoint.core.v1.Batch"
#: How long a sample may wait for its schema to arrive on hp/schemas, in seconds.
SCHEMA_WAIT_S = 5.0


def out(message):  # type: ignore[no-untyped-def]
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def documented_batch_class():  # type: ignore[no-untyped-def]
    """``message Batch { repeated bytes items = 1; }`` as the specification describes it (IF-ENV-BATCH)."""
    pool = descriptor_pool.DescriptorPool()
    f = descriptor_pb2.FileDescriptorProto(name="documented_batch.proto", package="documented", syntax="proto3")
    m = f.message_type.add(name="Batch")
    m.field.add(
        name="items",
        number=1,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    )
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("documented.Batch"))


class Decoder:
    def __init__(self) -> None:
        self.schemas = {}  # schema_id -> Schema sample
        self.classes = {}  # schema_id -> (message class, batch class or None)
        self.documented_batch = documented_batch_class()

    def add_schema(self, s) -> None:  # type: ignore[no-untyped-def]
        self.schemas[s.schema_id] = s

    def classes_for(self, schema_id):  # type: ignore[no-untyped-def]
        if schema_id not in self.classes:
            record = self.schemas[schema_id]
            fds = descriptor_pb2.FileDescriptorSet.FromString(bytes(record.descriptor_set))
            pool = descriptor_pool.DescriptorPool()
            for file in fds.file:
                pool.Add(file)
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(record.interface))
            try:
                batch = message_factory.GetMessageClass(pool.FindMessageTypeByName(BATCH))
            except KeyError:
                batch = None
            self.classes[schema_id] = (cls, batch, [f.name for f in fds.file])
        return self.classes[schema_id]

    def decode(self, topic, env):  # type: ignore[no-untyped-def]
        cls, batch, files = self.classes_for(env.schema_id)
        payload = bytes(env.payload)
        batch_from = None
        if env.count == 1:
            messages = [cls.FromString(payload)]
        else:
            if batch is not None:
                batch_from = "bus-schema"
                items = batch.FromString(payload).items
            else:
                batch_from = "documented-layout"
                items = self.documented_batch.FromString(payload).items
            messages = [cls.FromString(item) for item in items]
        return {
            "sample": {
                "topic": topic,
                "key": env.key,
                "source": env.source,
                "epoch": env.epoch,
                "seq": env.seq,
                "count": env.count,
                "stamp_ns": env.stamp_ns,
                "interface": env.interface,
                "schema_id": env.schema_id,
            },
            "message_type": cls.DESCRIPTOR.full_name,
            "batch_from": batch_from,
            "schema_files": files,
            "messages": [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages],
        }


def reliable(durability):  # type: ignore[no-untyped-def]
    """A reliable reader, keeping everything, accepting both data representations."""
    return Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=1)),
        durability,
        Policy.History.KeepAll,
        Policy.DataRepresentation(use_cdrv0_representation=True, use_xcdrv2_representation=True),
    )


def main() -> int:  # noqa: PLR0912 - a tool's main loop, kept in one piece to read top-down
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--topic", action="append", default=[], help="NAME=IDL typename, as `cyclonedds ls` shows")
    args = parser.parse_args()

    domain = Domain(args.domain, args.config)
    participant = DomainParticipant(args.domain)
    schema_reader = DataReader(
        participant,
        Topic(participant, "hp/schemas", Schema),
        Qos(
            Policy.Reliability.Reliable(max_blocking_time=duration(seconds=1)),
            Policy.Durability.TransientLocal,
            Policy.History.KeepLast(1),
            Policy.DataRepresentation(use_cdrv0_representation=True, use_xcdrv2_representation=True),
        ),
    )
    readers = []
    for spec in args.topic:
        name, typename = spec.split("=", 1)
        cls = TYPES[typename]
        # State topics (keyed) are transient-local: a late reader gets the current value of every key.
        durability = Policy.Durability.TransientLocal if cls is KeyedEnvelope else Policy.Durability.Volatile
        readers.append((name, DataReader(participant, Topic(participant, name, cls), reliable(durability))))

    stop = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == '{"op": "exit"}':
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    out({"ready": True, "hardpoint_importable": importable("hardpoint")})

    decoder = Decoder()
    pending = []  # (topic, envelope, first seen) waiting for their schema
    while not stop.is_set():
        for s in schema_reader.take(N=64):
            if isinstance(s, Schema):
                decoder.add_schema(s)
        for name, reader in readers:
            for env in reader.take(N=256):
                if isinstance(env, (Envelope, KeyedEnvelope)):
                    pending.append((name, env, time.monotonic()))
        waiting = []
        for name, env, since in pending:
            if env.schema_id not in decoder.schemas:
                if time.monotonic() - since < SCHEMA_WAIT_S:
                    waiting.append((name, env, since))
                else:
                    out({"error": f"no schema {env.schema_id} on hp/schemas", "topic": name, "seq": env.seq})
                continue
            try:
                out(decoder.decode(name, env))
            except Exception as e:
                out({"error": f"{type(e).__name__}: {e}", "topic": name, "seq": env.seq})
        pending = waiting
        time.sleep(0.01)

    for entity in (*(r for _, r in readers), schema_reader, participant, domain):
        entity.__del__()
    loaded = sorted(m for m in sys.modules if m == "hardpoint" or m.startswith("hardpoint."))
    out({"bye": True, "hardpoint_modules": loaded})
    return 0


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
