"""The Prometheus endpoint: loopback, and what the daemon reports per module."""

from __future__ import annotations

import urllib.request

from fakes import FakeControl
from prometheus_client.parser import text_string_to_metric_families

from hardpoint_runtime._metrics import start_metrics


def scrape(control: FakeControl) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    server = start_metrics(control, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_report_restarts_state_and_bus_counters_per_module() -> None:
    control = FakeControl()
    samples = scrape(control)
    for status in control.list_modules():
        who = (("module", status.name), ("node", status.node))
        assert samples[("hardpoint_module_restarts_total", who)] == status.restarts
        assert samples[("hardpoint_module_active", who)] == (1.0 if status.state == "active" else 0.0)
        for key, value in status.counters.items():
            channel, _, counter = key.rpartition(".")
            labels = (("channel", channel), ("counter", counter), ("module", status.name))
            assert samples[("hardpoint_bus_messages_total", labels)] == value
