"""CPU cost of the SDK's receive checks per message, without DDS: what the writer-identity checks add.

Feeds ``Subscription._on_frames`` (the dispatch thread's entry point) with
frames exactly as the Cyclone transport makes them (its ``_DdsFrame`` named
tuple, with the writer's publication handle when the code has one), in
deliveries of 256, and reports nanoseconds per message for three shapes:

- ``single``: one message per frame, consecutive sequence numbers of one
  writer (the fast path every periodic interface takes);
- ``batch64``: batches of 64 messages (event and stream publishers batch);
- ``two_writers``: two writers of two sources, interleaved.

Run it on two trees to compare (``PYTHONPATH=<other tree>/sdk/src python
bench/receive_path.py``); ``--json`` prints the figures as JSON. Timing is the
best of ``--repeat`` rounds (the least disturbed), each of ``--messages``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from hardpoint import Bus, interface_spec
from hardpoint._batch import batch_type
from hardpoint._dds._transport import _DdsFrame
from hardpoint.alert.v1 import alert_pb2
from hardpoint.testing import InMemoryTransport

SPEC = interface_spec(alert_pb2.Alert)
DELIVERY = 256


def _frame(source: str, seq: int, count: int, payload: bytes, writer: int) -> Any:
    fields = ("", source, 7, seq, count, 0, SPEC.name, SPEC.schema_id, payload)
    if "writer" in _DdsFrame._fields:
        return _DdsFrame(*fields, writer)
    return _DdsFrame(*fields)


def _deliveries(n_messages: int, shape: str) -> list[list[Any]]:
    one = alert_pb2.Alert(alert_id="a-1", text="x" * 40).SerializeToString()
    frames: list[Any] = []
    if shape == "single":
        frames = [_frame("geofence", s, 1, one, 11) for s in range(1, n_messages + 1)]
    elif shape == "two_writers":
        frames = [_frame(("radar", "eoir")[s % 2], s // 2 + 1, 1, one, 11 + s % 2) for s in range(n_messages)]
    else:
        batch = batch_type(alert_pb2.Alert)()
        for _ in range(64):
            batch.items.add().ParseFromString(one)  # type: ignore[attr-defined]
        payload = batch.SerializeToString()
        frames = [_frame("geofence", 1 + 64 * i, 64, payload, 11) for i in range(n_messages // 64)]
    return [frames[i : i + DELIVERY] for i in range(0, len(frames), DELIVERY)]


def _round(shape: str, n_messages: int) -> float:
    """Nanoseconds per message of one round on a fresh subscription."""
    received = 0

    def on(_msg: Any) -> None:
        nonlocal received
        received += 1

    sub = Bus(InMemoryTransport(), module="bench").subscribe(alert_pb2.Alert, on)
    deliveries = _deliveries(n_messages, shape)
    deliver: Callable[[Any], None] = sub._on_frames
    start = time.perf_counter_ns()
    for frames in deliveries:
        deliver(frames)
    elapsed = time.perf_counter_ns() - start
    if received != n_messages:
        raise SystemExit(f"{shape}: {received} of {n_messages} messages delivered; counters {sub.counters}")
    return elapsed / n_messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=64 * 4096, help="messages per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per shape; the best is reported")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = {
        shape: round(min(_round(shape, args.messages) for _ in range(args.repeat)), 1)
        for shape in ("single", "batch64", "two_writers")
    }
    result["writer_identity"] = "writer" in _DdsFrame._fields
    print(json.dumps(result) if args.json else "  ".join(f"{k} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
