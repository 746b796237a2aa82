"""Small defects named by the architecture issue (13), each with the case that showed it.

- the daemon's log lines are JSON whatever the message holds (quotes, newlines, a traceback);
- a misspelled ``@hookimpl`` is refused at registration, naming the module, the hook and the hook meant;
- ``WorkerError`` is in the runtime's error tree;
- ``hardpoint --version`` prints the versions.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from hardpoint import HardpointError, Manifest, ModuleContext, ModuleError, ModuleHost, hookimpl
from hardpoint.testing import InMemoryTransport
from hardpoint_runtime import HardpointRuntimeError, WorkerError
from hardpoint_runtime._daemon import JsonFormatter


def test_daemon_log_lines_are_json_for_any_message() -> None:
    """A message with quotes, a newline and a traceback is one line that parses, with everything in it."""
    try:
        raise ValueError('a "quoted"\nmulti-line cause')
    except ValueError:
        record = logging.getLogger("hardpoint.daemon").makeRecord(
            "hardpoint.daemon", logging.ERROR, __file__, 1, 'msg with "quotes"\nand a newline', (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == 'msg with "quotes"\nand a newline'
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exc"]
    assert 'a "quoted"\nmulti-line cause' in entry["exc"]


def test_hardpointd_logs_through_the_json_formatter(tmp_path: Path) -> None:
    """A real daemon (no module, a free domain, a node name with a quote) writes its log lines as JSON objects.

    The former format string wrote ``"msg":"daemon_started - {'node': 'a"b', ...}"``: not JSON.
    """
    from hardpoint_runtime.conformance._harness import free_domain_id, release_domain_id

    domain = free_domain_id()
    config = tmp_path / "platform.toml"
    config.write_text(
        f'[platform]\nname = "p"\ndomain_id = {domain}\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardpoint_runtime._daemon", str(config), "--node", 'a"b'],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "daemon_started" in line:
                break
        started = [json.loads(line) for line in lines if "daemon_started" in line]
        assert started, "".join(lines)
        assert 'a"b' in started[0]["msg"]  # the node's name, quote and all, inside valid JSON
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # drains and closes the pipe
        release_domain_id(domain)


class _Misspelled:
    manifest = Manifest(name="nav", version="1.0.0", supplier="acme")

    @hookimpl
    def on_activte(self, ctx: ModuleContext) -> None:  # the hook meant is on_activate
        del ctx


def test_a_misspelled_hook_is_refused_at_registration() -> None:
    with pytest.raises(ModuleError) as raised:
        ModuleHost(_Misspelled(), InMemoryTransport())
    text = str(raised.value)
    assert "'nav'" in text
    assert "'on_activte'" in text
    assert "did you mean 'on_activate'" in text
    assert raised.value.module == "nav"


def test_worker_error_is_in_the_error_tree() -> None:
    assert issubclass(WorkerError, HardpointRuntimeError)
    assert issubclass(WorkerError, HardpointError)


def test_hardpoint_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime.cli", "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.strip()
        == f"hardpoint-runtime {version('hardpoint-runtime')} (hardpoint SDK {version('hardpoint')})"
    )
