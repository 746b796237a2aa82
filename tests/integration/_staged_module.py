"""A module for ``test_staged_promote.py``, loaded by a real worker process from its entry point value.

``Counter`` publishes ``Alert(alert_id="1")``, ``"2"``, ... on a reliable event
interface, ``burst`` of them every ``period_s`` seconds of its configuration,
from a timer (on the dispatch thread, like most modules) while it is active. A
burst is batched by the SDK: the first goes at once, the rest wait for the
batch timer, so a promote can find a batch waiting.
"""

from __future__ import annotations

from hardpoint import Manifest, ModuleContext, Publisher, hookimpl
from hardpoint.alert.v1 import alert_pb2


class Counter:
    manifest = Manifest(
        name="staged-counter", version="2.0.0", supplier="hardpoint tests", provides=("hardpoint.alert.v1.Alert",)
    )

    def __init__(self) -> None:
        self.n = 0
        self.pub: Publisher[alert_pb2.Alert] | None = None

    @hookimpl
    def on_configure(self, ctx: ModuleContext) -> None:
        self.pub = ctx.bus.publisher(alert_pb2.Alert)
        self.burst = int(ctx.config.get("burst", 1))
        ctx.every(float(ctx.config.get("period_s", 0.002)), self.tick)

    def tick(self) -> None:
        assert self.pub is not None
        for _ in range(self.burst):
            self.n += 1
            self.pub.publish(alert_pb2.Alert(alert_id=str(self.n), text="staged counter"))
