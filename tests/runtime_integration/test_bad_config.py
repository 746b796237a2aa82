"""Bad platform configurations are refused whole (issue 3, acceptance 5).

Each case is a configuration that is valid but for one thing. hardpointd must
exit with code 2 and say on stderr which file, which line, which field and
why, and must not have started any module: no module process of the test's
DDS domain, no module log, no management socket. "The daemon never starts half
a platform silently."
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hp_runtime_it import Mod, Platform, platform_toml, worker_pids

pytestmark = pytest.mark.integration

#: A platform that starts when nothing is wrong with it.
GOOD = ("beacon-nav", "beacon-track", "sink", "alerter", "beacon-fused")


@dataclass(frozen=True)
class Case:
    """A bad configuration and what the error must say about it."""

    id: str
    #: Builds the configuration text from (platform name, domain id).
    text: Callable[[str, int], str]
    #: The line the error points at (1-based), found in the text by this marker (first line containing it).
    line_marker: str
    #: The field, as the error prints it (empty: none, e.g. a TOML syntax error).
    field: str
    #: Words the reason must contain.
    reason: tuple[str, ...]


def _good(name: str, domain: int, *extra: Mod | str) -> str:
    return platform_toml(name, domain, [*GOOD, *extra])


CASES = [
    Case(
        "unknown-field",
        lambda n, d: _good(n, d).replace("restart_intensity = 3", "restart_intensity = 3\nrestart_intensty = 4"),
        "restart_intensty",
        "supervision.restart_intensty",
        ("unknown field 'restart_intensty'", "did you mean 'restart_intensity'"),
    ),
    Case(
        "unknown-field-in-module",
        lambda n, d: _good(n, d).replace('name = "sink"', 'name = "sink"\nverison = "1"'),
        "verison",
        "modules[2].verison",
        ("unknown field 'verison'", "did you mean 'version'"),
    ),
    Case(
        "wrong-type",
        lambda n, d: _good(n, d).replace("heartbeat_deadline_s = 5.0", 'heartbeat_deadline_s = "5 seconds"'),
        "heartbeat_deadline_s",
        "supervision.heartbeat_deadline_s",
        ("valid number", "'5 seconds'"),
    ),
    Case(
        "unknown-module",
        lambda n, d: _good(n, d, "beacon-nva"),
        'name = "beacon-nva"',
        "modules[5].name",
        ("'beacon-nva'", "not installed"),
    ),
    Case(
        "version-unsatisfiable",
        lambda n, d: _good(n, d).replace('name = "sink"', 'name = "sink"\nversion = ">=2"'),
        'version = ">=2"',
        "modules[2].version",
        ("'sink'", "'>=2'", "installed: 1.0.0"),
    ),
    Case(
        "duplicate-single-writer",
        lambda n, d: _good(n, d, "beacon-nav-b"),
        'name = "beacon-nav-b"',
        "modules[5].name",
        ("hardpoint.nav.v1.NavState", "single-writer", "'beacon-nav'", "'beacon-nav-b'"),
    ),
    Case(
        "toml-syntax",
        lambda n, d: _good(n, d).replace("backoff_max_s = 1.0", "backoff_max_s = 1.0 s"),
        "backoff_max_s",
        "",
        ("invalid TOML",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_configuration_is_refused_and_nothing_starts(platform: Platform, case: Case) -> None:
    text = case.text(platform.name, platform.domain_id)
    assert text != _good(platform.name, platform.domain_id), "the case did not change the good configuration"
    platform.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), start=1) if case.line_marker in ln)

    t0 = time.monotonic()
    result = platform.run_daemon(timeout=60)
    took = time.monotonic() - t0
    err = result.stderr

    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{err}"
    where = f"platform.toml:{line}: {case.field}: " if case.field else f"platform.toml:{line}: "
    assert where in err, f"expected {where!r} in stderr:\n{err}"
    problem = next(ln for ln in err.splitlines() if where in ln)
    for words in case.reason:
        assert words in problem, f"expected {words!r} in {problem!r}"
    assert "Traceback" not in err, err
    assert result.stdout == "", "a refusal prints nothing on stdout"

    # Nothing was started: no module process of this domain, no module log, no management socket.
    assert worker_pids(platform.domain_id) == []
    assert not (platform.state_dir / "logs").exists(), sorted((platform.state_dir / "logs").iterdir())
    assert not platform.socket.exists()
    assert took < 30, f"refusing took {took:.1f} s"


def test_good_configuration_of_the_cases_is_accepted(platform: Platform) -> None:
    """The base configuration of the cases above is valid: hardpointd accepts it and starts every module.

    (Guards against the cases passing for a reason other than the one they test.) On SIGTERM it
    stops with exit code 0 and leaves no module process behind.
    """
    platform.write(GOOD)
    platform.start()
    platform.wait_active(GOOD)
    assert len(worker_pids(platform.domain_id)) == len(GOOD)
    # SIGTERM stops the daemon cleanly, and it takes its modules with it.
    assert platform.stop() == 0, platform.log_tail()
    assert worker_pids(platform.domain_id) == []
