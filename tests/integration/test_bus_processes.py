"""Two SDK processes on real Cyclone DDS (loopback): every QoS class, end to end.

Acceptance 3 of issue 2. A *talker* process publishes one interface of each
QoS class (STATE ``NavState``, EVENT ``Alert``, STREAM ``SensorTrack``,
COMMAND ``TaskRequest``); a *listener* process subscribes to them. Both are
``_procs/node.py``: a :class:`hardpoint.Bus` on a :class:`hardpoint.CycloneTransport`.

Synchronisation never sleeps blindly: before the measured run the talker sends
probe messages on every interface until the listener has received one of each
(so every writer/reader pair is matched in both directions), and the test then
waits, with a deadline, until the listener holds what it must hold.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

import pytest
from _procs.harness import Node, wait_until
from google.protobuf import any_pb2

from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint.track.v1 import track_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"
TRACK = "hardpoint.track.v1.SensorTrack"
TASK = "hardpoint.tasking.v1.TaskRequest"
ALL = (NAV, ALERT, TRACK, TASK)
IFACES = ("nav", "alert", "track", "task")

#: Longest wait for anything to arrive, in seconds (a deadline, not an expected time).
WAIT_S = 20.0

N_EVENTS = 2000
EVENT_BURST = 100
N_COMMANDS = 500
N_STREAM = 500
N_STATE_KEYS = 200
N_OWNSHIP = 100

BAD_COUNTERS = ("undecodable", "wrong_interface", "schema_mismatch", "duplicates", "callback_errors")


def alert(alert_id: str) -> alert_pb2.Alert:
    return alert_pb2.Alert(
        alert_id=alert_id,
        state=alert_pb2.ALERT_STATE_RAISED,
        severity=alert_pb2.ALERT_SEVERITY_ADVISORY,
        category=alert_pb2.ALERT_CATEGORY_SYSTEM,
        text=f"alert {alert_id}",
        raised_time_ns=time.time_ns(),
    )


def nav(platform_id: str, version: int) -> nav_pb2.NavState:
    """A navigation state; ``satellites_used`` carries the version so the listener can tell values apart."""
    return nav_pb2.NavState(
        platform_id=platform_id,
        position=geo_pb2.GeoPosition(latitude_deg=51.0 + version * 1e-5, longitude_deg=-1.0),
        fix_quality=nav_pb2.FIX_QUALITY_3D,
        satellites_used=version,
    )


def track(sensor_id: str, track_id: str) -> track_pb2.SensorTrack:
    return track_pb2.SensorTrack(
        sensor_id=sensor_id,
        track_id=track_id,
        lifecycle=track_pb2.TRACK_LIFECYCLE_UPDATED,
        measurement_time_ns=time.time_ns(),
    )


def task(task_id: str) -> tasking_pb2.TaskRequest:
    params = any_pb2.Any()
    params.Pack(geo_pb2.GeoPosition(latitude_deg=50.0, longitude_deg=-1.5))
    return tasking_pb2.TaskRequest(task_id=task_id, requester="talker", target="listener", parameters=params)


def probe(iface: str, k: int) -> Any:
    return {
        "nav": lambda: nav("probe", k),
        "alert": lambda: alert(f"probe-{k}"),
        "track": lambda: track("probe", str(k)),
        "task": lambda: task(f"probe-{k}"),
    }[iface]()


def is_probe(item: dict[str, Any]) -> bool:
    return str(item["id"]).startswith("probe")


class Received:
    """Everything the listener has delivered so far, by interface, fetched incrementally."""

    def __init__(self, listener: Node) -> None:
        self.listener = listener
        self.items: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def poll(self) -> Received:
        for iface in IFACES:
            self.items[iface].extend(self.listener.new_items(iface))
        return self

    def ids(self, iface: str, *, probes: bool = False) -> list[str]:
        return [i["id"] for i in self.items[iface] if probes or not is_probe(i)]


def sync(talker: Node, received: Received, ifaces: tuple[str, ...] = IFACES) -> dict[str, int]:
    """Probe every interface until the listener has received a probe on each; returns probes sent per interface.

    A delivered probe proves that the writer and the reader of that topic have
    matched each other, so everything written afterwards on a reliable topic
    must arrive.
    """
    sent = dict.fromkeys(ifaces, 0)
    deadline = time.monotonic() + WAIT_S
    while True:
        missing = [i for i in ifaces if not received.poll().ids(i, probes=True)]
        if not missing:
            return sent
        if time.monotonic() > deadline:
            raise AssertionError(f"no probe arrived on {missing} within {WAIT_S:g} s (discovery failed?)")
        for iface in missing:
            sent[iface] += 1
            talker.publish(iface, [probe(iface, sent[iface])])
        time.sleep(0.05)


def gaps(seqs: list[int]) -> int:
    """Sequence numbers skipped between consecutive received ones (what IF-ENV-RX-GAP counts as lost)."""
    return sum(b - a - 1 for a, b in itertools.pairwise(seqs))


def assert_clean(counters: dict[str, int], iface: str) -> None:
    bad = {k: counters[k] for k in BAD_COUNTERS if counters[k]}
    assert not bad, f"{iface}: the listener refused or failed messages: {bad}"


def test_every_qos_class_between_two_processes(spawn: Any) -> None:
    """Reliable topics deliver every message in order with no loss or duplicate; the stream delivers cleanly.

    EVENT (IF-QOS-EVENT): 2000 alerts in bursts of 100, which the publisher
    batches (IF-ENV-BATCH), all arrive, in order, with consecutive sequence
    numbers (IF-ENV-SEQ), ``lost == duplicates == 0`` (IF-ENV-RX-GAP, IF-ENV-RX-DUP).
    COMMAND (IF-QOS-COMMAND): 500 task requests, the same. STATE
    (IF-QOS-STATE): 200 distinct keys published once each all arrive with
    sequence 1 (IF-ENV-KEY); one key updated 100 times arrives in order and
    ends on its last value; the only losses the listener may count are
    overwritten updates of one key (keep-last 1), and it counts exactly those.
    STREAM (IF-QOS-STREAM): best effort, so only: some arrive, in order, none
    twice, none undecodable, and the loss counter equals the sequence gaps.
    """
    talker = spawn.node("talker", provides=ALL)
    listener = spawn.node("listener", requires=ALL)
    talker.wait_ready()
    listener.wait_ready()
    for iface in IFACES:
        listener.call("subscribe", iface=iface)
    received = Received(listener)
    probes = sync(talker, received)

    track_pub = talker.publish("track", [track("s1", f"t{i}") for i in range(N_STREAM)], burst=50, pause_s=0.002)
    alert_pub = talker.publish("alert", [alert(f"e{i}") for i in range(N_EVENTS)], burst=EVENT_BURST, pause_s=0.005)
    task_pub = talker.publish("task", [task(f"c{i}") for i in range(N_COMMANDS)])
    talker.publish("nav", [nav(f"k{i:03d}", 1) for i in range(N_STATE_KEYS)])
    talker.publish("nav", [nav("ownship", v) for v in range(1, N_OWNSHIP + 1)], burst=1, pause_s=0.001)

    def complete() -> bool:
        r = received.poll()
        nav_ids = set(r.ids("nav"))
        return (
            len(r.ids("alert")) >= N_EVENTS
            and len(r.ids("task")) >= N_COMMANDS
            and f"ownship@{N_OWNSHIP}" in nav_ids
            and all(f"k{i:03d}@1" in nav_ids for i in range(N_STATE_KEYS))
        )

    wait_until(complete, WAIT_S, "every reliable message at the listener")

    def settled() -> dict[str, dict[str, int]] | None:
        """The counters, once they agree with the messages fetched (no stream sample still in flight)."""
        counters = listener.counters()
        received.poll()
        ok = all(counters[i]["delivered"] == len(received.items[i]) for i in IFACES)
        return counters if ok else None

    counters = wait_until(settled, WAIT_S, "the listener's counters to settle")
    items = received.items

    # EVENT: all, in order, consecutive sequence numbers from the first probe seen on.
    assert received.ids("alert") == [f"e{i}" for i in range(N_EVENTS)]
    seqs = [i["seq"] for i in items["alert"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert {(i["source"], i["epoch"]) for i in items["alert"]} == {("talker", items["alert"][0]["epoch"])}
    assert counters["alert"]["lost"] == 0
    assert_clean(counters["alert"], "alert")
    assert counters["alert"]["delivered"] == len(items["alert"])
    assert alert_pub["published"] == N_EVENTS + probes["alert"]
    assert alert_pub["frames"] < N_EVENTS // 4 + probes["alert"], f"the bursts were not batched: {alert_pub}"

    # COMMAND: all, in order; commands are never batched.
    assert received.ids("task") == [f"c{i}" for i in range(N_COMMANDS)]
    seqs = [i["seq"] for i in items["task"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert counters["task"]["lost"] == 0
    assert_clean(counters["task"], "task")
    assert task_pub["frames"] == task_pub["published"] == N_COMMANDS + probes["task"]

    # STATE: every distinct key once, with its own sequence (per key); one key's updates in order.
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items["nav"]:
        assert item["id"].split("@")[0] == item["key"], "the envelope key is the key field (IF-ENV-KEY)"
        by_key[item["key"]].append(item)
    for i in range(N_STATE_KEYS):
        assert [(x["id"], x["seq"]) for x in by_key[f"k{i:03d}"]] == [(f"k{i:03d}@1", 1)]
    ownship = [(int(x["id"].split("@")[1]), x["seq"]) for x in by_key["ownship"]]
    assert all(version == seq for version, seq in ownship), "the n-th update of a key has sequence n"
    versions = [v for v, _ in ownship]
    assert versions == sorted(set(versions))
    assert versions[-1] == N_OWNSHIP
    expected_lost = sum(gaps([x["seq"] for x in xs]) for xs in by_key.values())
    assert counters["nav"]["lost"] == expected_lost
    assert_clean(counters["nav"], "nav")
    assert counters["nav"]["delivered"] == len(items["nav"])

    # STREAM: best effort; what arrives is clean and in order, and losses show as gaps.
    stream = received.ids("track")
    assert stream, f"no stream sample arrived of {N_STREAM} published ({track_pub})"
    assert len(stream) == len(set(stream))
    assert set(stream) <= {f"s1/t{i}" for i in range(N_STREAM)}
    seqs = [i["seq"] for i in items["track"]]
    assert seqs == sorted(set(seqs))
    assert counters["track"]["lost"] == gaps(seqs)
    assert_clean(counters["track"], "track")

    assert talker.alive()
    assert listener.alive()
    assert "Traceback" not in listener.stderr_text()


def test_late_joiner_gets_the_last_value_of_every_state_key(spawn: Any) -> None:
    """A subscriber started after the publisher went idle receives exactly the last value of each key.

    IF-QOS-STATE: a reader that joins late receives the current sample of
    every live key at once. The talker publishes five values for each of three
    keys and goes idle; only then is the listener started. A fourth key is
    published after the listener has joined as a fence: when it has arrived,
    the history has been delivered (a DDS writer delivers in order), so the
    listener's list is complete: the last value of each old key, then the new key.
    """
    talker = spawn.node("talker", provides=(NAV,))
    talker.wait_ready()
    keys = ("alpha", "bravo", "charlie")
    history = [nav(k, v) for v in range(1, 6) for k in keys]
    counters = talker.publish("nav", history)
    assert counters["published"] == counters["frames"] == len(history)

    late = spawn.node("late-listener", requires=(NAV,))
    late.wait_ready()
    late.call("subscribe", iface="nav")
    talker.publish("nav", [nav("delta", 1)])

    got: list[dict[str, Any]] = []

    def fence_arrived() -> bool:
        got.extend(late.new_items("nav"))
        return any(i["id"] == "delta@1" for i in got)

    wait_until(fence_arrived, WAIT_S, "the fence sample at the late joiner")
    ids = [i["id"] for i in got]
    assert sorted(ids[:-1]) == ["alpha@5", "bravo@5", "charlie@5"], ids
    assert ids[-1] == "delta@1"
    assert [i["seq"] for i in got] == [5, 5, 5, 1]
    c = late.counters()["nav"]
    assert c["delivered"] == 4
    assert c["lost"] == 0, "the first sample of a key seen late is not a loss"
    assert_clean(c, "nav")
