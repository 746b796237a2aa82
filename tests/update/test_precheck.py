"""The whole-platform pre-check on a running daemon (UPD-PRE-001): a release that would leave another
module's requirement unmet is refused before its payload is downloaded, naming the module that would
break, the interface, the candidate and the role; the history records it and nothing changes.

``beacon`` 1.0 provides NavState and ``listener`` requires it; ``beacon`` 2.0 (signed, published)
provides only FusedTrack, so it would leave ``listener`` without NavState.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from modkit import allocate_domain, build_module_wheel, preinstall, publish_repo, wait_for, write_platform

from hardpoint_runtime._daemon import Daemon

NAV = "hardpoint.nav.v1.NavState"
FUSED = "hardpoint.track.v1.FusedTrack"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.getbasetemp() / "modkit-wheels"
    out.mkdir(exist_ok=True)
    return {
        "beacon-1.0": build_module_wheel(out, version="1.0"),
        "beacon-2.0": build_module_wheel(out, version="2.0", primary=False, extra_provides=[FUSED]),
        "listener-1.0": build_module_wheel(out, name="listener", version="1.0", primary=False, requires=[NAV]),
    }


@pytest.fixture
def daemon(tmp_path: Path, wheels: dict[str, Path]) -> Iterator[Daemon]:
    repo = publish_repo(tmp_path / "release", [wheels["beacon-1.0"], wheels["beacon-2.0"]])
    domain = allocate_domain()
    root = tmp_path / "plat"
    config = write_platform(root, domain.id, repo, extra='\n[[modules]]\nname = "listener"\n')
    preinstall(root, wheels["beacon-1.0"], "1.0")
    preinstall(root, wheels["listener-1.0"], "1.0", module="listener")
    d = Daemon(config)
    try:
        d.start()
        wait_for(
            lambda: all(d.get_module(n).state == "active" for n in ("beacon", "listener")),
            timeout=60,
            what="beacon and listener active",
        )
        yield d
    finally:
        d.stop()
        domain.release()


def test_release_that_breaks_a_consumer_is_refused_before_download(daemon: Daemon) -> None:
    pid = daemon.get_module("beacon").pid
    offers = {o.module: o for o in daemon.update_check()}
    assert (offers["beacon"].available_version, offers["beacon"].status) == ("2.0", "refused")
    assert "'listener'" in offers["beacon"].reason
    record = daemon.update_apply("beacon", "2.0")
    assert (record.outcome, record.cause, record.role, record.step) == (
        "refused", "UnmetRequirementError", "acme", "requested",
    ), record.reason  # fmt: skip
    for named in ("'listener'", NAV, "'beacon' 2.0", "role 'acme'"):
        assert named in record.reason
    # Nothing was downloaded or installed, and both modules run on as before.
    downloads = daemon.state_dir / "update" / "downloads"
    assert not downloads.exists() or not any("2.0" in p.name for p in downloads.iterdir())
    assert not (daemon.state_dir / "modules" / "beacon" / "2.0").exists()
    beacon = daemon.get_module("beacon")
    assert (beacon.version, beacon.state, beacon.pid) == ("1.0", "active", pid)
    assert daemon.get_module("listener").state == "active"
    (last,) = daemon.update_history("beacon", limit=1)
    assert (last.id, last.outcome, last.cause) == (record.id, "refused", "UnmetRequirementError")
    refused = [e for e in daemon.events() if e.kind == "update_refused"]
    assert refused
    assert refused[-1].module == "beacon"
