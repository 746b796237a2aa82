"""An SDK module process for the integration tests, driven by JSON lines on stdin.

    python node.py --domain 42 --config <cyclone config> --module talker \
        --provides hardpoint.alert.v1.Alert --requires hardpoint.nav.v1.NavState

It makes one :class:`hardpoint.Bus` on one :class:`hardpoint.CycloneTransport`
and prints ``{"ok": true, "ready": ...}``. Then every line on stdin is a command
``{"op": ..., ...}`` and gets exactly one JSON line back (``{"ok": false,
"error": ...}`` when it fails):

* ``subscribe {iface, record}``: subscribe to an interface (``alert``, ``nav``,
  ``track``, ``task``, or a full interface name); every delivered message is
  recorded with its header, and with ``record: "hex"`` its deterministic
  serialization too.
* ``publisher {iface}``: make the publisher now (announces the schema).
* ``publish {iface, messages, burst, pause_s}``: publish serialized messages
  (hex), ``burst`` at a time with ``pause_s`` between bursts, then flush.
* ``periodic {iface, messages, period_s}``: publish the messages in a cycle in
  the background until ``stop``.
* ``items {iface, start}``: recorded messages from index ``start`` on.
* ``counters``: every subscription's counters.
* ``exit``: close the bus and the transport and exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from typing import Any

import hardpoint
from hardpoint import Bus, CycloneTransport, SampleInfo
from hardpoint.alert.v1 import alert_pb2
from hardpoint.nav.v1 import nav_pb2
from hardpoint.tasking.v1 import tasking_pb2
from hardpoint.track.v1 import track_pb2

TYPES: dict[str, Any] = {
    "alert": alert_pb2.Alert,
    "nav": nav_pb2.NavState,
    "track": track_pb2.SensorTrack,
    "task": tasking_pb2.TaskRequest,
}


def ident(iface: str, msg: Any) -> str:
    """A short identity of a message, for the tests to compare."""
    if iface == "alert":
        return str(msg.alert_id)
    if iface == "nav":
        return f"{msg.platform_id}@{msg.satellites_used}"
    if iface == "track":
        return f"{msg.sensor_id}/{msg.track_id}"
    if iface == "task":
        return str(msg.task_id)
    return msg.SerializeToString(deterministic=True).hex()[:32]


def message_type(iface: str) -> Any:
    if iface in TYPES:
        return TYPES[iface]
    for cls in TYPES.values():
        if hardpoint.interface_spec(cls).name == iface:
            return cls
    raise KeyError(f"unknown interface {iface!r}")


def iface_key(iface: str) -> str:
    cls = message_type(iface)
    return next(k for k, c in TYPES.items() if c is cls)


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        self.transport = CycloneTransport(domain_id=args.domain, config=args.config)
        self.bus = Bus(
            self.transport,
            module=args.module,
            provides=args.provides or [],
            requires=args.requires or [],
        )
        self.lock = threading.Lock()
        self.items: dict[str, list[dict[str, Any]]] = {}
        self.subs: dict[str, hardpoint.Subscription[Any]] = {}
        self.periodic: list[tuple[threading.Event, threading.Thread]] = []

    # -- commands ---------------------------------------------------------------

    def op_subscribe(self, iface: str, record: str = "ident") -> dict[str, Any]:
        key = iface_key(iface)
        cls = TYPES[key]
        with self.lock:
            self.items.setdefault(key, [])
        keep_hex = record == "hex"

        def on_message(msg: Any, info: SampleInfo) -> None:
            item: dict[str, Any] = {
                "id": ident(key, msg),
                "seq": info.seq,
                "key": info.key,
                "source": info.source,
                "epoch": info.epoch,
            }
            if keep_hex:
                item["hex"] = msg.SerializeToString(deterministic=True).hex()
            with self.lock:
                self.items[key].append(item)

        self.subs[key] = self.bus.subscribe(cls, on_message, with_info=True)
        return {}

    def op_publisher(self, iface: str) -> dict[str, Any]:
        pub = self.bus.publisher(message_type(iface))
        return {"counters": pub.counters.as_dict()}

    def op_publish(self, iface: str, messages: list[str], burst: int = 0, pause_s: float = 0.0) -> dict[str, Any]:
        cls = message_type(iface)
        pub = self.bus.publisher(cls)
        msgs = [cls.FromString(bytes.fromhex(h)) for h in messages]
        step = burst or len(msgs) or 1
        for i in range(0, len(msgs), step):
            if i and pause_s:
                time.sleep(pause_s)
            for m in msgs[i : i + step]:
                pub.publish(m)
        pub.flush()
        return {"counters": pub.counters.as_dict()}

    def op_periodic(self, iface: str, messages: list[str], period_s: float) -> dict[str, Any]:
        cls = message_type(iface)
        pub = self.bus.publisher(cls)
        msgs = [cls.FromString(bytes.fromhex(h)) for h in messages]
        stop = threading.Event()

        def run() -> None:
            i = 0
            while not stop.is_set():
                pub.publish(msgs[i % len(msgs)])
                pub.flush()
                i += 1
                stop.wait(period_s)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.periodic.append((stop, thread))
        return {}

    def op_stop(self) -> dict[str, Any]:
        self._stop_periodic()
        return {}

    def op_items(self, iface: str, start: int = 0) -> dict[str, Any]:
        key = iface_key(iface)
        with self.lock:
            items = list(self.items.get(key, [])[start:])
        return {"items": items}

    def op_counters(self) -> dict[str, Any]:
        with self.lock:
            counters = {key: sub.counters.as_dict() for key, sub in self.subs.items()}
            counts = {key: len(items) for key, items in self.items.items()}
        return {"counters": counters, "counts": counts}

    # -- loop -------------------------------------------------------------------

    def _stop_periodic(self) -> None:
        for stop, thread in self.periodic:
            stop.set()
            thread.join(5)
        self.periodic.clear()

    def close(self) -> None:
        self._stop_periodic()
        self.bus.close()
        self.transport.close()

    def serve(self) -> None:
        reply({"ok": True, "ready": self.bus.module, "domain": self.transport.domain_id})
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            op = command.pop("op")
            if op == "exit":
                break
            try:
                answer = getattr(self, f"op_{op}")(**command)
            except Exception as e:
                traceback.print_exc()
                reply({"ok": False, "error": f"{type(e).__name__}: {e}"})
            else:
                reply({"ok": True, **answer})
        self.close()


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--provides", action="append")
    parser.add_argument("--requires", action="append")
    Node(parser.parse_args()).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
