"""A talker and a listener module on the real bus (Cyclone DDS on loopback).

    python examples/pubsub/pubsub.py                 # both, in two processes, for 5 s
    python examples/pubsub/pubsub.py talk --duration 5
    python examples/pubsub/pubsub.py listen --duration 6

The talker publishes the platform's navigation state at its contract rate
(10 Hz, a state interface) and an alert every second (an event interface). The
listener prints what arrives and, at the end, its counters: messages delivered,
and any lost, duplicated or undecodable samples. It exits 1 if it saw fewer
samples than the talker sent in its run.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from typing import Any

import hardpoint
from hardpoint import Manifest, ModuleContext, hookimpl
from hardpoint.alert.v1 import alert_pb2
from hardpoint.core.v1 import geo_pb2
from hardpoint.nav.v1 import nav_pb2

NAV = "hardpoint.nav.v1.NavState"
ALERT = "hardpoint.alert.v1.Alert"
DOMAIN = 17  # an own DDS domain, so the example never meets other runs


class Talker:
    """Publishes a platform driving a circle, and an advisory alert each second."""

    manifest = Manifest(name="talker", version="1.0.0", supplier="hardpoint examples", provides=(NAV, ALERT))

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.nav = ctx.bus.publisher(nav_pb2.NavState)
        self.alerts = ctx.bus.publisher(alert_pb2.Alert)
        self.tick = 0

    @hookimpl
    def on_activate(self, ctx: ModuleContext) -> None:
        ctx.every(0.1, self.publish_nav)
        ctx.every(1.0, self.publish_alert)

    def publish_nav(self) -> None:
        self.tick += 1
        a = self.tick / 100.0
        self.nav.publish(
            nav_pb2.NavState(
                platform_id="demo-1",
                position=geo_pb2.GeoPosition(
                    latitude_deg=51.0 + 0.01 * math.sin(a), longitude_deg=-1.0 + 0.01 * math.cos(a)
                ),
                velocity=geo_pb2.VelocityNed(north_mps=7.0 * math.cos(a), east_mps=-7.0 * math.sin(a)),
                fix_quality=nav_pb2.FIX_QUALITY_3D,
            )
        )

    def publish_alert(self) -> None:
        self.alerts.publish(
            alert_pb2.Alert(
                alert_id=f"a{self.tick}",
                state=alert_pb2.ALERT_STATE_RAISED,
                severity=alert_pb2.ALERT_SEVERITY_ADVISORY,
                category=alert_pb2.ALERT_CATEGORY_SYSTEM,
                text=f"talker heartbeat at tick {self.tick}",
                raised_time_ns=time.time_ns(),
            )
        )
        self.alerts.flush()


class Listener:
    """Prints navigation states and alerts as they arrive."""

    manifest = Manifest(name="listener", version="1.0.0", supplier="hardpoint examples", requires=(NAV, ALERT))

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.nav = ctx.bus.subscribe(nav_pb2.NavState, self.on_nav, with_info=True)
        self.alerts = ctx.bus.subscribe(alert_pb2.Alert, self.on_alert)

    def on_nav(self, msg: Any, info: hardpoint.SampleInfo) -> None:
        if info.seq % 10 == 0:
            p = msg.position
            print(f"nav   #{info.seq:<4} from {info.source}: {p.latitude_deg:.5f}, {p.longitude_deg:.5f}", flush=True)

    def on_alert(self, msg: Any) -> None:
        print(f"alert {msg.alert_id}: {msg.text}", flush=True)


def run(module: object, duration: float) -> hardpoint.ModuleHost:
    transport = hardpoint.CycloneTransport(domain_id=DOMAIN)
    host = hardpoint.ModuleHost(module, transport)
    host.configure()
    host.activate()
    time.sleep(duration)
    host.deactivate()
    host.shutdown()
    transport.close()
    return host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", choices=["both", "talk", "listen"], default="both")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds the talker publishes")
    args = parser.parse_args(argv)
    if args.role == "talk":
        run(Talker(), args.duration)
        return 0
    if args.role == "listen":
        listener = Listener()
        host = run(listener, args.duration)
        nav, alerts = listener.nav.counters, listener.alerts.counters
        print(f"listener: {nav.delivered} nav states, {alerts.delivered} alerts delivered")
        for name, c in (("nav", nav), ("alert", alerts)):
            print(f"listener: {name} lost={c.lost} duplicates={c.duplicates} undecodable={c.undecodable}")
        del host
        return 0 if nav.delivered >= 10 and alerts.delivered >= 1 and nav.lost == alerts.lost == 0 else 1
    listener_proc = subprocess.Popen([sys.executable, __file__, "listen", "--duration", str(args.duration + 1.5)])
    time.sleep(1.0)  # let the listener join first, so it sees the first alert
    run(Talker(), args.duration)
    return listener_proc.wait()


if __name__ == "__main__":
    sys.exit(main())
