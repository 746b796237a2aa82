"""The ``cyclonedds`` CLI shipped in the cyclonedds wheel sees the hardpoint bus.

Acceptance 5 of issue 2 (first half). An SDK module process publishes an
EVENT interface (``Alert``) and a STATE interface (``NavState``) ten times a
second; the CLI runs with the same loopback configuration (``CYCLONEDDS_URI``:
the packaged ``loopback.xml`` plus this test's discovery tag, which also
proves the CLI really uses that configuration: without the tag it would see
nothing) and the test's domain id (``-i``).

* ``cyclonedds ls`` lists the topics with their IDL type names;
* ``cyclonedds typeof`` rebuilds the envelope IDL over XTypes type lookup;
* ``cyclonedds subscribe <topic> --qos scan-random`` decodes live samples
  dynamically and prints every envelope field (IF-ENV-HEADER): source, epoch,
  seq, count, stamp, interface, schema id, and the payload as a list of bytes,
  which parse as the protobuf message that was published.

The CLI never exits by itself from ``subscribe`` (``--runtime`` bounds only its
discovery), so the test reads its output until the samples it waits for are
there and then interrupts it with SIGINT, as a user would with Ctrl-C.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _procs.harness import Dds, Node, wait_until

from hardpoint import interface_spec
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CLI = Path(sys.executable).with_name("cyclonedds")
ALERT = interface_spec(alert_pb2.Alert)
NAV = interface_spec(nav_pb2.NavState)
WAIT_S = 15.0
TOPICS = {ALERT.topic: "hardpoint::bus::Envelope", NAV.topic: "hardpoint::bus::KeyedEnvelope",
          "hp/schemas": "hardpoint::bus::Schema"}  # fmt: skip

#: One printed envelope (``Envelope(...)`` or ``KeyedEnvelope(...)``), on one line or pretty-printed over several.
ENVELOPE = re.compile(
    r"(?P<type>KeyedEnvelope|Envelope)\(\s*key='(?P<key>[^']*)',\s*source='(?P<source>[^']*)',\s*"
    r"epoch=(?P<epoch>\d+),\s*seq=(?P<seq>\d+),\s*count=(?P<count>\d+),\s*stamp_ns=(?P<stamp_ns>-?\d+),\s*"
    r"interface='(?P<interface>[^']*)',\s*schema_id='(?P<schema_id>[^']*)',\s*payload=\[(?P<payload>[\d,\s]*)\]"
)


def cli_args(dds: Dds, command: str, *args: str) -> list[str]:
    return [str(CLI), command, *args, "--id", str(dds.domain_id), "--color", "none"]


def envelopes(text: str) -> list[dict[str, Any]]:
    """The live samples in ``subscribe`` output (the empty key sample printed when a writer leaves is skipped)."""
    out = []
    for m in ENVELOPE.finditer(text):
        d: dict[str, Any] = m.groupdict()
        for name in ("epoch", "seq", "count", "stamp_ns"):
            d[name] = int(d[name])
        d["payload"] = bytes(int(b) for b in d["payload"].replace(",", " ").split())
        if d["seq"] > 0:
            out.append(d)
    return out


def subscribe(dds: Dds, topic: str, want: int) -> tuple[list[dict[str, Any]], str]:
    """Run ``cyclonedds subscribe`` until it has printed ``want`` live samples, then interrupt it."""
    proc = subprocess.Popen(
        cli_args(dds, "subscribe", topic, "--qos", "scan-random", "--runtime", "1s", "--suppress-progress-bar"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dds.env(),
        text=True,
    )
    chunks: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        try:
            wait_until(lambda: len(envelopes("".join(chunks))) >= want, WAIT_S, f"{want} samples from the CLI")
        except AssertionError as e:
            raise AssertionError(f"{e}; cyclonedds subscribe {topic} printed:\n{''.join(chunks)[-3000:]}") from None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        reader.join(5)
        proc.stdout.close()
    text = "".join(chunks)
    got = envelopes(text)
    # The CLI prints through rich; the SIGINT that ends it can land inside a print, and the print at its
    # exit then writes rich's unflushed buffer again: the sample being printed shows twice, last.
    if len(got) > want and got[-1] == got[-2]:
        got.pop()
    return got, text


def run_cli(dds: Dds, command: str, *args: str) -> str:
    done = subprocess.run(
        cli_args(dds, command, *args), capture_output=True, text=True, env=dds.env(), timeout=30, check=False
    )
    assert done.returncode == 0, f"cyclonedds {command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def start_talker(spawn: Any) -> Node:
    talker = spawn.node("cli-talker", provides=(ALERT.name, NAV.name))
    talker.wait_ready()
    alerts = [
        alert_pb2.Alert(
            alert_id=f"cli-{i}",
            state=alert_pb2.ALERT_STATE_RAISED,
            severity=alert_pb2.ALERT_SEVERITY_CAUTION,
            category=alert_pb2.ALERT_CATEGORY_SYSTEM,
            text="seen by the cyclonedds CLI",
            raised_time_ns=1_700_000_000_000_000_000 + i,
        )
        .SerializeToString()
        .hex()
        for i in range(1000)
    ]
    state = nav_pb2.NavState(
        platform_id="cli-1",
        position=geo_pb2.GeoPosition(latitude_deg=51.5, longitude_deg=-1.25),
        fix_quality=nav_pb2.FIX_QUALITY_3D,
        satellites_used=9,
    )
    talker.call("periodic", iface="alert", messages=alerts, period_s=0.1)
    talker.call("periodic", iface="nav", messages=[state.SerializeToString().hex()], period_s=0.1)
    return talker


def test_ls_lists_the_hardpoint_topics(spawn: Any, dds: Dds) -> None:
    """``cyclonedds ls`` shows each hardpoint topic with its envelope type; ``typeof`` shows the envelope's fields.

    IF-ALERT-ALERT-TOPIC, IF-NAV-STATE-TOPIC, IF-ENV-HEADER, IF-ENV-SCHEMA (``hp/schemas`` is on the bus).
    """
    start_talker(spawn)
    args = ("--runtime", "2s", "--suppress-progress-bar")
    seen: list[str] = []
    wait_until(
        lambda: seen.append(run_cli(dds, "ls", *args)) or all(t in seen[-1] for t in TOPICS),
        3 * WAIT_S,
        "cyclonedds ls to list every hardpoint topic",
        interval=0,
    )
    listing = seen[-1]
    for topic, typename in TOPICS.items():
        block = listing[listing.index(topic) :]
        assert typename in block.split("Typename", 2)[1].split("\n", 1)[0], f"{topic} is not of type {typename}"

    idl = run_cli(dds, "typeof", ALERT.topic, "--runtime", "2s", "--suppress-progress-bar")
    compact = re.sub(r"\s+", " ", idl).replace("< ", "<").replace(" >", ">")
    assert "module bus" in compact, idl
    assert "struct Envelope" in compact, idl
    for member in ("string key;", "string source;", "unsigned long epoch;", "unsigned long long seq;",
                   "unsigned long count;", "long long stamp_ns;", "string interface;", "string schema_id;",
                   "sequence<octet> payload;"):  # fmt: skip
        assert member in compact, f"{member!r} missing from the IDL the CLI rebuilt:\n{idl}"


def test_subscribe_prints_the_envelope_of_live_event_samples(spawn: Any, dds: Dds) -> None:
    """``cyclonedds subscribe hp/alert/v1/alert`` prints source, seq, interface and schema id of live alerts.

    IF-ENV-HEADER, IF-ENV-SOURCE, IF-ENV-SEQ, IF-ENV-INTERFACE, IF-ENV-SCHEMA,
    IF-ENV-KEY (empty on an EVENT topic); the printed payload bytes are the
    published protobuf message.
    """
    start_talker(spawn)
    got, text = subscribe(dds, ALERT.topic, want=3)
    assert {e["type"] for e in got} == {"Envelope"}
    assert {(e["key"], e["source"], e["interface"], e["schema_id"], e["count"]) for e in got} == {
        ("", "cli-talker", ALERT.name, ALERT.schema_id, 1)
    }, text
    assert len({e["epoch"] for e in got}) == 1
    seqs = [e["seq"] for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "one alert per 100 ms, idle in between: no batches"
    now = time.time_ns()
    for e in got:
        assert now - 60e9 < e["stamp_ns"] <= now
        msg = alert_pb2.Alert.FromString(e["payload"])
        assert msg.text == "seen by the cyclonedds CLI"
        assert msg.alert_id == f"cli-{e['seq'] - 1}", "the n-th alert the talker published has sequence n"


def test_subscribe_gets_the_current_state_and_its_key(spawn: Any, dds: Dds) -> None:
    """``cyclonedds subscribe hp/nav/v1/state`` prints keyed envelopes whose key is the instance key.

    IF-QOS-STATE (the CLI, picking the writer's QoS with ``scan-random``, is
    a transient-local reader and starts with the current sample), IF-ENV-KEY, IF-ENV-SCHEMA.
    """
    start_talker(spawn)
    got, text = subscribe(dds, NAV.topic, want=2)
    assert {(e["type"], e["key"], e["source"], e["interface"], e["schema_id"]) for e in got} == {
        ("KeyedEnvelope", "cli-1", "cli-talker", NAV.name, NAV.schema_id)
    }, text
    for e in got:
        msg = nav_pb2.NavState.FromString(e["payload"])
        assert (msg.platform_id, msg.satellites_used, msg.position.latitude_deg) == ("cli-1", 9, 51.5)
