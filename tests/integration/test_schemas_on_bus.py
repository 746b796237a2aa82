"""A tool with no generated code decodes live samples using only the schemas taken from the bus.

Acceptance 5 of issue 2 (second half), IF-ENV-SCHEMA. ``_procs/schema_decoder.py``
runs as ``python -I`` with ``hardpoint`` made unimportable; it knows only the
envelope IDL (what ``cyclonedds typeof`` shows) and the topic names with their
IDL type names (what ``cyclonedds ls`` shows). It reads ``hp/schemas``, builds
protobuf classes from the announced ``FileDescriptorSet`` of each sample's
schema id, and prints what it decoded; the test compares that with what the
SDK publisher (``_procs/node.py``) sent, using the generated classes on its side.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest
from _procs.harness import SCHEMA_DECODER, Child, Dds, Node
from google.protobuf import json_format

from hardpoint import interface_spec
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ALERT = interface_spec(alert_pb2.Alert)
NAV = interface_spec(nav_pb2.NavState)
WAIT_S = 15.0
N_BURST = 60


def as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def alert(alert_id: str, i: int = 0) -> alert_pb2.Alert:
    return alert_pb2.Alert(
        alert_id=alert_id,
        state=alert_pb2.ALERT_STATE_RAISED,
        severity=alert_pb2.ALERT_SEVERITY_WARNING,
        category=alert_pb2.ALERT_CATEGORY_THREAT,
        text=f"contact bearing {i:03d}",
        track_id=f"T{i}",
        position=geo_pb2.GeoPosition(latitude_deg=50.5 + i * 1e-4, longitude_deg=-1.5, height_hae_m=12.5),
        raised_time_ns=1_700_000_000_000_000_000 + i,
    )


STATE = nav_pb2.NavState(
    platform_id="decoded-1",
    position=geo_pb2.GeoPosition(latitude_deg=51.25, longitude_deg=-1.75, height_hae_m=80.0),
    velocity=geo_pb2.VelocityNed(north_mps=3.5, east_mps=-2.0, down_mps=0.25),
    fix_quality=nav_pb2.FIX_QUALITY_RTK_FIXED,
    satellites_used=14,
)


class Session:
    """A publisher module and the generic decoder, both in this test's domain."""

    def __init__(self, spawn: Any, dds: Dds) -> None:
        self.talker: Node = spawn.node("schema-talker", provides=(ALERT.name, NAV.name))
        self.talker.wait_ready()
        self.talker.call("publisher", iface="alert")  # announces the alert schema
        self.talker.publish("nav", [STATE])
        self.decoder: Child = spawn.child(
            "schema-decoder",
            [
                sys.executable,
                "-I",
                str(SCHEMA_DECODER),
                "--domain",
                str(dds.domain_id),
                "--config",
                dds.config,
                "--topic",
                f"{ALERT.topic}=hardpoint::bus::Envelope",
                "--topic",
                f"{NAV.topic}=hardpoint::bus::KeyedEnvelope",
            ],
        )
        hello = self.decoder.recv(WAIT_S)
        assert hello == {"ready": True, "hardpoint_importable": False}, hello
        self.lines: list[dict[str, Any]] = []

    def read_until(self, done: Any, what: str, timeout: float = WAIT_S) -> bool:
        """Collect the decoder's lines until ``done()``; with ``timeout`` < WAIT_S, return False on time-out."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                assert timeout < WAIT_S, f"timed out waiting for {what}; decoder printed {self.lines[-5:]}"
                return False
            line = self.decoder.poll(left)
            if line is None:
                continue
            assert "error" not in line, f"the decoder failed: {line}"
            self.lines.append(line)
        return True

    def samples(self, topic: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["sample"]["topic"] == topic]

    def alert_ids(self) -> list[str]:
        return [m["alert_id"] for line in self.samples(ALERT.topic) for m in line["messages"]]

    def sync_alerts(self) -> None:
        """Publish probe alerts until the decoder has decoded one (its volatile reader is then matched)."""
        deadline = time.monotonic() + WAIT_S
        k = 0
        while True:
            k += 1
            self.talker.publish("alert", [alert(f"probe-{k}")])
            if self.read_until(lambda: any(i.startswith("probe") for i in self.alert_ids()), "a probe", 0.1):
                return
            assert time.monotonic() < deadline, "no probe alert reached the decoder"

    def finish(self) -> list[str]:
        """Stop the decoder; the ``hardpoint`` modules it had loaded (none, or it used generated code)."""
        self.decoder.send({"op": "exit"})
        self.read_until(lambda: bool(self.lines) and "bye" in self.lines[-1], "the decoder to stop")
        bye = self.lines.pop()
        modules: list[str] = bye["hardpoint_modules"]
        return modules


def check_envelope(sample: dict[str, Any], spec: Any, key: str) -> None:
    """IF-ENV-SOURCE, IF-ENV-INTERFACE, IF-ENV-SCHEMA, IF-ENV-KEY as the decoder saw them."""
    assert (sample["source"], sample["interface"], sample["schema_id"], sample["key"]) == (
        "schema-talker",
        spec.name,
        spec.schema_id,
        key,
    )


def test_single_samples_decoded_with_only_the_schemas_on_the_bus(spawn: Any, dds: Dds) -> None:
    """A state sample (transient-local, already there when the tool starts) and live events, one message each."""
    s = Session(spawn, dds)
    s.read_until(lambda: bool(s.samples(NAV.topic)), "the current navigation state")
    (nav,) = s.samples(NAV.topic)
    check_envelope(nav["sample"], NAV, "decoded-1")
    assert nav["message_type"] == NAV.name
    assert nav["messages"] == [as_dict(STATE)]
    assert "hardpoint/core/v1/geo.proto" in nav["schema_files"]

    s.sync_alerts()
    sent = [alert(f"single-{i}", i) for i in range(5)]
    for msg in sent:
        s.talker.publish("alert", [msg])
        time.sleep(0.002)  # idle between publishes: each goes alone (count 1)
    s.read_until(lambda: "single-4" in s.alert_ids(), "the single alerts")
    singles = [line for line in s.samples(ALERT.topic) if line["messages"][0]["alert_id"].startswith("single")]
    assert [line["messages"] for line in singles] == [[as_dict(m)] for m in sent]
    for line in singles:
        check_envelope(line["sample"], ALERT, "")
        assert line["sample"]["count"] == 1
    assert s.finish() == [], "the decoder imported hardpoint"


def test_batched_samples_decoded_with_only_the_schemas_on_the_bus(spawn: Any, dds: Dds) -> None:
    """A burst of events, batched by the publisher (count > 1), decodes item by item from the bus schemas.

    IF-ENV-BATCH and IF-ENV-SCHEMA: a batched payload is a
    ``hardpoint.core.v1.Batch``, so the descriptor set announced for the
    interface must let a tool find ``Batch`` as well as the interface message.
    """
    s = Session(spawn, dds)
    s.sync_alerts()
    sent = [alert(f"burst-{i}", i) for i in range(N_BURST)]
    s.talker.publish("alert", sent)
    s.read_until(lambda: f"burst-{N_BURST - 1}" in s.alert_ids(), "the burst")
    lines = [line for line in s.samples(ALERT.topic) if line["messages"][0]["alert_id"].startswith("burst")]
    decoded = [m for line in lines for m in line["messages"]]
    assert decoded == [as_dict(m) for m in sent], "the batch items are not the published messages"
    batched = [line for line in lines if line["sample"]["count"] > 1]
    assert batched, "the burst was not batched: nothing to decode as a Batch"
    for line in lines:
        check_envelope(line["sample"], ALERT, "")
        assert line["sample"]["count"] == len(line["messages"])
    assert s.finish() == [], "the decoder imported hardpoint"
    sources = {line["batch_from"] for line in batched}
    assert sources == {"bus-schema"}, (
        "hardpoint.core.v1.Batch is not in the FileDescriptorSet announced on hp/schemas for "
        f"{ALERT.name} (files: {batched[0]['schema_files']}); a tool without generated code can decode the "
        "batch items only by knowing the Batch layout out of band"
    )
