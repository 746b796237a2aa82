"""The recorder module: MCAP recording on the in-memory bus, decoding without hardpoint, replay, crash recovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from hardpoint import BatchPolicy, Bus, ModuleHost, State, all_interfaces, interface_spec
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint.track.v1 import track_pb2
from hardpoint_mod_geofence import GeofenceModule
from hardpoint_mod_recorder import RecorderModule, RecordingWriter, read, recover, replay
from hardpoint_mod_recorder.__main__ import main as cli
from hardpoint_mod_recorder._module import output_path

START_NS = 1_700_000_000 * 1_000_000_000


def nav(n: int) -> nav_pb2.NavState:
    return nav_pb2.NavState(platform_id="own", position=geo_pb2.GeoPosition(latitude_deg=50 + n * 1e-4))


def fused(
    tid: str, n: int, lifecycle: int = track_pb2.TRACK_LIFECYCLE_UPDATED, *, lon: float | None = None
) -> track_pb2.FusedTrack:
    lon = -0.004 + n * 0.001 if lon is None else lon
    return track_pb2.FusedTrack(
        track_id=tid,
        lifecycle=lifecycle,  # type: ignore[arg-type]
        position=geo_pb2.GeoPosition(latitude_deg=50.005, longitude_deg=lon, height_hae_m=2.5),
        last_update_time_ns=START_NS + n * 500_000_000,
        update_count=n,
    )


def sensor(n: int) -> track_pb2.SensorTrack:
    return track_pb2.SensorTrack(sensor_id="radar", track_id=f"r{n}", measurement_time_ns=START_NS + n)


class Rig:
    """A recorder on an in-memory bus, and a talker publishing on it."""

    def __init__(self, tmp: Path, config: dict[str, Any] | None = None, *, health: bool = False) -> None:
        self.t = InMemoryTransport(start_ns=START_NS)
        self.path = tmp / "rec.mcap"
        self.recorder = RecorderModule()
        self.host = ModuleHost(
            self.recorder,
            self.t,
            config={"path": str(self.path), **(config or {})},
            health_period_s=1.0 if health else None,
        )
        self.talker = Bus(self.t, module="talker")
        #: What was published, in order: (topic, message, time of validity, bus time).
        self.sent: list[tuple[str, Message, int, int]] = []

    def start(self) -> Rig:
        assert self.host.configure() is State.INACTIVE
        assert self.host.activate() is State.ACTIVE
        return self

    def publish(self, msg: Message, *, stamp: int | None = None, flush: bool = True) -> None:
        stamp = stamp if stamp is not None else self.t.now_ns() - 1000
        self.talker.publish(msg, time_of_validity_ns=stamp)
        if flush:
            self.talker.flush()
        self.sent.append((interface_spec(type(msg)).topic, msg, stamp, self.t.now_ns()))


def play_script(rig: Rig) -> None:
    """A little of everything: state, stream (a batch), event, command; bus time moves in between."""
    rig.publish(nav(0))
    rig.t.advance(0.1)
    rig.publish(fused("F1", 1))
    rig.publish(fused("F2", 1))
    rig.t.advance(0.25)
    burst = rig.talker.publisher(track_pb2.SensorTrack, batch=BatchPolicy(idle_gap_s=1e9))
    for n in range(5):  # one batch frame of five (the writer is never idle long enough to send one alone)
        msg = sensor(n)
        burst.publish(msg, time_of_validity_ns=START_NS + n)
        # one envelope per frame: the messages of a batch share its time of validity (its first's)
        rig.sent.append(("hp/track/v1/sensor", msg, START_NS, rig.t.now_ns()))
    burst.flush()
    rig.t.advance(0.5)
    rig.publish(alert_pb2.Alert(alert_id="a1", state=alert_pb2.ALERT_STATE_RAISED, text="hello"))
    rig.publish(fused("F1", 2))
    rig.t.advance(0.05)
    rig.publish(tasking_pb2.TaskRequest(task_id="t1", requester="talker", target="geofence"))
    rig.publish(nav(1))


def test_records_every_interface_and_finishes_the_file_on_deactivate(tmp_path: Path) -> None:
    rig = Rig(tmp_path).start()
    play_script(rig)
    part = tmp_path / "rec.mcap.part"
    assert part.exists()
    assert not rig.path.exists()
    assert rig.host.deactivate() is State.INACTIVE
    assert rig.path.exists()
    assert not part.exists()
    recorded = list(read(rig.path))
    assert [(r.topic, r.data) for r in recorded] == [(t, m.SerializeToString()) for t, m, _, _ in rig.sent]
    assert [r.publish_time_ns for r in recorded] == [s for _, _, s, _ in rig.sent]
    assert [r.log_time_ns for r in recorded] == [now for _, _, _, now in rig.sent]
    assert {r.source for r in recorded} == {"talker"}
    # the envelope sequence: per key for keyed state (F1: 1, 2), per writer otherwise
    seqs = [(r.topic, r.sequence) for r in recorded]
    assert seqs[:3] == [("hp/nav/v1/state", 1), ("hp/track/v1/fused", 1), ("hp/track/v1/fused", 1)]
    assert [s for t, s in seqs if t == "hp/track/v1/sensor"] == [1, 2, 3, 4, 5]
    assert [s for t, s in seqs if t == "hp/track/v1/fused"] == [1, 1, 2]
    assert rig.recorder.finished == [rig.path]


def test_shutdown_straight_from_active_finishes_the_file(tmp_path: Path) -> None:
    rig = Rig(tmp_path).start()
    rig.publish(nav(0))
    assert rig.host.shutdown() is State.FINALIZED
    assert [r.topic for r in read(rig.path)] == ["hp/nav/v1/state"]


def test_state_published_before_the_recorder_starts_is_recorded_at_activation(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.publish(fused("early", 1))
    rig.t.advance(1.0)
    rig.start()  # a late joiner gets the current state of every key
    rig.host.deactivate()
    (rec,) = read(rig.path)
    assert rec.topic == "hp/track/v1/fused"
    assert rec.log_time_ns == START_NS + 1_000_000_000


def test_interfaces_subset_and_heartbeats(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"interfaces": ["hardpoint.nav.v1.NavState", "hardpoint.core.v1.ModuleHealth"]}, health=True)
    rig.start()
    play_script(rig)
    rig.t.advance(1.0)
    rig.host.deactivate()
    topics = [r.topic for r in read(rig.path)]
    assert set(topics) == {"hp/nav/v1/state", "hp/core/v1/health"}
    assert topics.count("hp/nav/v1/state") == 2
    health_sources = {r.source for r in read(rig.path) if r.topic == "hp/core/v1/health"}
    assert health_sources == {"recorder"}  # its own heartbeat is on the bus too


def test_each_activation_writes_its_own_file_and_never_overwrites(tmp_path: Path) -> None:
    rig = Rig(tmp_path).start()
    rig.publish(nav(0))
    rig.host.deactivate()
    rig.host.activate()
    rig.publish(nav(1))
    rig.host.deactivate()
    second = tmp_path / "rec-1.mcap"
    assert rig.recorder.finished == [rig.path, second]
    assert len(list(read(rig.path))) == 1
    assert len(list(read(second))) == 2  # the state of 'own' again at activation, then the new sample


def test_output_path(tmp_path: Path) -> None:
    template = str(tmp_path / "patrol-{time}.mcap")
    assert output_path(template, START_NS, overwrite=False).name == "patrol-20231114T221320Z.mcap"
    taken = tmp_path / "x.mcap"
    taken.write_bytes(b"")
    (tmp_path / "x-1.mcap.part").write_bytes(b"")
    assert output_path(str(taken), 0, overwrite=False).name == "x-2.mcap"
    assert output_path(str(taken), 0, overwrite=True) == taken


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "path: Field required"),
        ({"path": "x.mcap", "interfaces": ["hardpoint.nav.v9.NavState"]}, "unknown interface(s) hardpoint.nav.v9"),
        ({"path": "x.mcap", "compression": "bz2"}, "compression: Input should be 'zstd', 'lz4' or 'none'"),
        ({"path": "x.mcap", "flush": 1}, "flush: Extra inputs are not permitted"),
    ],
)
def test_invalid_configuration_is_refused(config: dict[str, Any], message: str) -> None:
    host = ModuleHost(RecorderModule(), InMemoryTransport(), config=config, health_period_s=None)
    assert host.configure() is State.UNCONFIGURED
    assert message in str(host.last_error)


def test_manifest_requires_nothing_and_provides_nothing() -> None:
    m = ModuleHost.manifest_of(RecorderModule)
    assert (m.name, m.provides, m.requires) == ("recorder", (), ())
    assert m.uses == ("*",)  # what it reads, declared (CF-BUS-008); optional: it never holds up its start


# -- decoding in a process with no hardpoint code ------------------------------------------

DECODE = r"""
import json, sys
sys.path[:] = json.loads(sys.argv[1])
try:
    import hardpoint
except ImportError:
    pass
else:
    raise SystemExit("hardpoint is importable: " + hardpoint.__file__)
for name in ("hardpoint_mod_recorder", "hardpoint_mod_geofence"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(name + " is importable")
from google.protobuf import descriptor_pool
from google.protobuf.json_format import MessageToDict
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

out = []
with open(sys.argv[2], "rb") as f:
    reader = make_reader(f, decoder_factories=[DecoderFactory()])
    for schema, channel, message, proto in reader.iter_decoded_messages(log_time_order=False):
        out.append({
            "topic": channel.topic,
            "schema": schema.name,
            "type": proto.DESCRIPTOR.full_name,
            "default_pool": proto.DESCRIPTOR.file.pool is descriptor_pool.Default(),
            "metadata": dict(channel.metadata),
            "log_time": message.log_time,
            "publish_time": message.publish_time,
            "sequence": message.sequence,
            "fields": MessageToDict(proto, preserving_proto_field_name=True),
        })
    summary = reader.get_summary()
    out.append({"messages": summary.statistics.message_count, "channels": len(summary.channels)})
print(json.dumps(out))
"""


def bare_sys_path() -> list[str]:
    """The stdlib and the site-packages dirs holding mcap, mcap_protobuf, google.protobuf and their deps."""
    import google.protobuf
    import lz4  # type: ignore[import-untyped]
    import mcap
    import mcap_protobuf
    import zstandard

    stdlib = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import json, sys; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        check=True,
    )
    dirs: list[str] = json.loads(stdlib.stdout)
    for mod in (mcap, mcap_protobuf, zstandard, lz4):
        dirs.append(str(Path(mod.__file__ or "").parent.parent))
    dirs.append(str(Path(google.protobuf.__file__ or "").parent.parent.parent))
    return list(dict.fromkeys(dirs))


def test_recording_decodes_from_its_own_schemas_without_hardpoint(tmp_path: Path) -> None:
    rig = Rig(tmp_path).start()
    play_script(rig)
    rig.host.deactivate()
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", DECODE, json.dumps(bare_sys_path()), str(rig.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    *decoded, summary = json.loads(proc.stdout)
    assert summary == {"messages": len(rig.sent), "channels": 5}
    assert len(decoded) == len(rig.sent)
    for got, (topic, msg, stamp, now) in zip(decoded, rig.sent, strict=True):
        spec = interface_spec(type(msg))
        assert got["topic"] == topic == spec.topic
        assert got["schema"] == got["type"] == spec.name
        assert got["default_pool"] is False  # the type was built from the file's own descriptors
        assert got["metadata"] == {
            "interface": spec.name,
            "schema_id": spec.schema_id,
            "qos": spec.qos.name,
            "source": "talker",
        }
        assert (got["log_time"], got["publish_time"]) == (now, stamp)
        assert got["fields"] == MessageToDict(msg, preserving_proto_field_name=True)
        assert got["fields"]  # not trivially empty


# -- replay --------------------------------------------------------------------------------


def record_script(tmp_path: Path) -> Path:
    rig = Rig(tmp_path).start()
    play_script(rig)
    rig.host.deactivate()
    return rig.path


class Listener:
    def __init__(self, t: InMemoryTransport, topics: list[type[Message]]) -> None:
        self.t = t
        self.got: list[tuple[str, bytes, int, int, str]] = []
        bus = Bus(t, module="listener")
        for cls in topics:
            topic = interface_spec(cls).topic
            bus.subscribe(
                cls,
                lambda m, i, topic=topic: self.got.append(
                    (topic, m.SerializeToString(), i.stamp_ns, t.now_ns(), i.source)
                ),
                with_info=True,
            )


ALL_TYPES: list[type[Message]] = [
    nav_pb2.NavState,
    track_pb2.FusedTrack,
    track_pb2.SensorTrack,
    alert_pb2.Alert,
    tasking_pb2.TaskRequest,
]


def test_replay_reproduces_messages_order_and_relative_timing(tmp_path: Path) -> None:
    path = record_script(tmp_path)
    recorded = list(read(path))
    t = InMemoryTransport(start_ns=5 * START_NS)  # another day: timing is relative
    listener = Listener(t, ALL_TYPES)
    stats = replay(path, Bus(t, module="replay", requires=()), clock=t.now_ns, sleep=t.advance)
    assert stats.total == len(recorded)
    assert not stats.skipped
    assert [(g[0], g[1], g[2]) for g in listener.got] == [(r.topic, r.data, r.publish_time_ns) for r in recorded]
    base = recorded[0].log_time_ns
    assert [g[3] - 5 * START_NS for g in listener.got] == [r.log_time_ns - base for r in recorded]
    assert {g[4] for g in listener.got} == {"replay"}
    assert stats.span_ns == recorded[-1].log_time_ns - base


def test_replay_speed_topics_and_determinism(tmp_path: Path) -> None:
    path = record_script(tmp_path)
    runs = []
    for _ in range(2):
        t = InMemoryTransport(start_ns=START_NS)
        listener = Listener(t, ALL_TYPES)
        replay(
            path,
            Bus(t, module="replay", requires=()),
            speed=2.0,
            topics=["hp/track/v1/fused", "hardpoint.nav.v1.NavState"],
            clock=t.now_ns,
            sleep=t.advance,
        )
        runs.append(listener.got)
    assert runs[0] == runs[1]
    assert [g[0] for g in runs[0]] == [
        "hp/nav/v1/state",
        "hp/track/v1/fused",
        "hp/track/v1/fused",
        "hp/track/v1/fused",
        "hp/nav/v1/state",
    ]
    recorded = [r for r in read(path) if r.topic in ("hp/track/v1/fused", "hp/nav/v1/state")]
    assert [g[3] - START_NS for g in runs[0]] == [(r.log_time_ns - recorded[0].log_time_ns) // 2 for r in recorded]


def test_replay_skips_heartbeats_unless_asked(tmp_path: Path) -> None:
    rig = Rig(tmp_path, health=True).start()
    rig.publish(nav(0))
    rig.t.advance(2.0)
    rig.host.deactivate()
    assert any(r.topic == "hp/core/v1/health" for r in read(rig.path))
    t = InMemoryTransport()
    stats = replay(rig.path, Bus(t, module="replay", requires=()), speed=0)
    assert set(stats.published) == {"hp/nav/v1/state"}
    stats = replay(rig.path, Bus(t, module="replay2", requires=()), speed=0, exclude=())
    assert set(stats.published) == {"hp/nav/v1/state", "hp/core/v1/health"}


def test_replaying_a_modules_inputs_reproduces_its_outputs(tmp_path: Path) -> None:
    """The acceptance pattern for fusion, shown with the geofence: record a live run, replay only the
    module's input into a fresh instance of it, and get the recorded outputs again."""
    zone = {"zone_id": "box", "polygon": [[50.0, 0.0], [50.01, 0.0], [50.01, 0.01], [50.0, 0.01]]}
    rig = Rig(tmp_path).start()
    live = ModuleHost(GeofenceModule(), rig.t, config={"zones": [zone]}, health_period_s=None)
    live.configure()
    live.activate()
    for n in range(16):
        rig.publish(fused("F1", n))  # west to east, through the box
        rig.publish(fused("F2", n, lon=0.012 - n * 0.0005))  # from the east into the box, and stays
        rig.t.advance(0.5)
    rig.publish(fused("F2", 16, track_pb2.TRACK_LIFECYCLE_DROPPED, lon=0.004))
    rig.t.advance(0.5)
    rig.host.deactivate()
    recorded_alerts = [r.data for r in read(rig.path, topics=["hp/alert/v1/alert"])]
    assert len(recorded_alerts) == 4  # F1 in and out, F2 in and dropped

    t = InMemoryTransport(start_ns=START_NS)
    again = ModuleHost(GeofenceModule(), t, config={"zones": [zone]}, health_period_s=None)
    again.configure()
    again.activate()
    listener = Listener(t, [alert_pb2.Alert])
    replay(
        rig.path,
        Bus(t, module="replay", requires=()),
        topics=["hardpoint.track.v1.FusedTrack"],
        clock=t.now_ns,
        sleep=t.advance,
    )
    assert [g[1] for g in listener.got] == recorded_alerts


def test_replay_skips_messages_whose_schema_differs(tmp_path: Path) -> None:
    path = record_script(tmp_path)
    out = tmp_path / "other.mcap"
    w = RecordingWriter(out)
    for r in read(path):
        cls = all_interfaces()[r.interface].message_type
        schema_id = "0000000000000000" if r.topic == "hp/nav/v1/state" else r.schema_id
        ch = w.channel(cls, topic=r.topic, source=r.source, metadata={"interface": r.interface, "schema_id": schema_id})
        w.write(ch, log_time_ns=r.log_time_ns, publish_time_ns=r.publish_time_ns, sequence=r.sequence, data=r.data)
    w.finish()
    stats = replay(out, Bus(InMemoryTransport(), module="replay", requires=()), speed=0)
    assert stats.skipped == {"schema of hardpoint.nav.v1.NavState differs": 2}
    assert "hp/nav/v1/state" not in stats.published


# -- crash and recovery ----------------------------------------------------------------------


def test_a_crash_leaves_a_part_file_that_recovers_up_to_the_last_flush(tmp_path: Path) -> None:
    rig = Rig(tmp_path, {"flush_period_s": 0.5}).start()
    for n in range(10):
        rig.publish(fused("F1", n))
        rig.t.advance(0.1)
    # 1.0 s: the flush timer closed chunks at 0.5 s and 1.0 s. Then the process dies mid-chunk:
    rig.publish(fused("F1", 99))
    assert rig.recorder._writer is not None
    rig.recorder._writer.abandon()  # what SIGKILL leaves: no summary, no footer, the open chunk lost
    part = tmp_path / "rec.mcap.part"
    assert part.exists()
    assert not rig.path.exists()
    with pytest.raises(Exception):  # noqa: B017, PT011 - any reader error: the file has no footer
        list(read(part))
    out = tmp_path / "recovered.mcap"
    assert recover(part, out) == 10
    assert [r.data for r in read(out)] == [m.SerializeToString() for _, m, _, _ in rig.sent[:10]]
    # Cut anywhere (the crash hit while a chunk was being written): recovery never fails and keeps
    # exactly the chunks that are complete: 0, 5 (the chunk closed at 0.5 s) or all 10 messages.
    data = part.read_bytes()
    torn = tmp_path / "torn.mcap.part"
    counts = []
    for size in range(16, len(data), max(1, len(data) // 80)):
        torn.write_bytes(data[:size])
        counts.append(recover(torn, tmp_path / "torn.mcap"))
        assert [r.data for r in read(tmp_path / "torn.mcap")] == [
            m.SerializeToString() for _, m, _, _ in rig.sent[: counts[-1]]
        ]
    assert set(counts) == {0, 5, 10}
    assert counts == sorted(counts)


def test_an_io_error_reports_failed_health_and_stops_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, health=True).start()
    rig.publish(nav(0))

    def disk_full(self: RecordingWriter) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(RecordingWriter, "flush", disk_full)
    rig.t.advance(1.5)  # the flush timer hits the error
    assert rig.host.health_status == "failed"
    assert "No space left on device" in rig.host.health_reason
    rig.publish(nav(1))  # no longer recorded, and nothing raises
    assert rig.host.deactivate() is State.INACTIVE
    assert (tmp_path / "rec.mcap.part").exists()
    assert not rig.path.exists()


# -- command line ------------------------------------------------------------------------------


def test_cli_info_and_recover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = record_script(tmp_path)
    assert cli(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hp/track/v1/fused  hardpoint.track.v1.FusedTrack  from talker" in out
    assert "hardpoint.recording: " in out
    assert "12 message(s)" in out
    assert cli(["info", str(tmp_path / "missing.mcap")]) == 1
    assert "No such file" in capsys.readouterr().err
    assert cli(["recover", str(path), str(tmp_path / "copy.mcap")]) == 0
    assert len(list(read(tmp_path / "copy.mcap"))) == 12
