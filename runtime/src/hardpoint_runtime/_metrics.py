"""Prometheus metrics of a platform, read from the daemon at scrape time.

Off by default; when on, it listens on loopback unless the configuration
explicitly allows a remote address.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["MetricsServer", "start_metrics"]


class _Collector:
    def __init__(self, control: Any) -> None:
        self.control = control

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        restarts = CounterMetricFamily(
            "hardpoint_module_restarts", "Restarts of a module by the supervisor", labels=["module", "node"]
        )
        up = GaugeMetricFamily(
            "hardpoint_module_active", "1 when the module is in state active", labels=["module", "node"]
        )
        beat = GaugeMetricFamily(
            "hardpoint_module_heartbeat_age_seconds", "Seconds since the last heartbeat", labels=["module", "node"]
        )
        samples = CounterMetricFamily(
            "hardpoint_bus_messages",
            "Bus counters reported in module heartbeats",
            labels=["module", "channel", "counter"],
        )
        for s in self.control.list_modules():
            restarts.add_metric([s.name, s.node], s.restarts)
            up.add_metric([s.name, s.node], 1.0 if s.state == "active" else 0.0)
            beat.add_metric([s.name, s.node], s.heartbeat_age_s)
            for key, value in s.counters.items():
                channel, _, counter = key.rpartition(".")
                samples.add_metric([s.name, channel, counter], value)
        yield from (restarts, up, beat, samples)


class MetricsServer:
    """A running ``/metrics`` endpoint."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread
        #: The port it listens on (the real one when 0 was asked for).
        self.server_port: int = server.server_port

    def shutdown(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics(control: Any, address: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on ``address:port`` (0 picks a free port)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Collector(control))
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsServer(server, thread)
