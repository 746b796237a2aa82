"""The worker's ``promote`` op as a reply (RT-WORKER-STAGED-002), on the in-memory transport.

The happy path over Cyclone DDS with a real worker process is in
``tests/integration/test_staged_promote.py``; this covers the answer when the
move fails, which needs a writer that fails on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hardpoint import (
    STAGED_PREFIX,
    BatchPolicy,
    Channel,
    FrameWriter,
    Manifest,
    ModuleContext,
    ModuleHost,
    TransportError,
    hookimpl,
)
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport
from hardpoint_runtime._worker import promote

ALERT = "hardpoint.alert.v1.Alert"


class _FailingWriter(FrameWriter):
    """Wraps a writer; every write fails once ``broken`` is set (a reliable reader that stopped reading)."""

    def __init__(self, inner: FrameWriter) -> None:
        self.inner = inner
        self.broken = False

    def write(self, key: str, seq: int, count: int, stamp_ns: int, payload: bytes) -> None:
        if self.broken:
            raise TransportError("write on topic hp-staged/hp/alert/v1/alert timed out after 1 s of flow control")
        self.inner.write(key, seq, count, stamp_ns, payload)

    def close(self) -> None:
        self.inner.close()


class _Transport(InMemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writers: list[_FailingWriter] = []

    def open_writer(self, channel: Channel) -> FrameWriter:
        writer = _FailingWriter(super().open_writer(channel))
        self.writers.append(writer)
        return writer


class _Batcher:
    manifest = Manifest(name="batcher", version="1.0", supplier="tests", provides=(ALERT,))

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.pub = ctx.bus.publisher(alert_pb2.Alert, batch=BatchPolicy(idle_gap_s=60.0, max_delay_s=60.0))


def _direct(fn: Callable[[], Any]) -> Any:
    return fn()


def test_promote_answers_ok_and_not_staged() -> None:
    host = ModuleHost(_Batcher(), InMemoryTransport(), write_prefix=STAGED_PREFIX, health_period_s=None)
    host.configure()
    assert promote(host, _direct) == {"ok": True, "state": "inactive", "staged": False, "error": ""}
    assert promote(host, _direct) == {"ok": True, "state": "inactive", "staged": False, "error": ""}


def test_a_failed_move_is_answered_with_its_cause() -> None:
    t = _Transport()
    module = _Batcher()
    host = ModuleHost(module, t, write_prefix=STAGED_PREFIX, health_period_s=None)
    host.configure()
    host.activate()
    module.pub.publish(alert_pb2.Alert(alert_id="1"))
    module.pub.publish(alert_pb2.Alert(alert_id="2"))  # waits in the batch
    staged_writer = t.writers[0]
    staged_writer.broken = True
    reply = promote(host, _direct)
    assert reply["ok"] is False
    assert reply["staged"] is False  # every writer has moved; only the waiting batch is lost
    assert reply["state"] == "active"
    assert "module batcher" in reply["error"]
    assert ALERT in reply["error"]
    assert "flow control" in reply["error"]
    module.pub.publish(alert_pb2.Alert(alert_id="3"))  # and the module goes on publishing, on the normal topic
    module.pub.flush()
    assert [f.seq for f in t.written["hp/alert/v1/alert"]] == [3]
