"""hardpoint-tuf-client with its clock moved forward (libfaketime): expiry as the client sees it.

The repository signs with its normal lifetimes (timestamp 1 day, snapshot 7 days,
targets 90 days, root 365 days: :class:`hardpoint_runtime.update.Expiry`); the
client process runs under ``faketime`` so that, from its point of view, days have
passed. Each case checks the refusal names the expired role and that the trusted
metadata on disk is unchanged, then that the client recovers once the repository
publishes metadata that is valid at the client's time (a freeze attack ends when
fresh metadata appears, and no earlier).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tufkit import Published

CLIENT = Path(sys.executable).parent / "hardpoint-tuf-client"
FAKETIME = shutil.which("faketime")


def run(*args: str | Path, days_ahead: int = 0) -> subprocess.CompletedProcess[str]:
    """Run the client, its clock ``days_ahead`` days in the future (libfaketime, relative offset)."""
    assert FAKETIME is not None, "faketime is missing: scripts/setup installs it (Debian package faketime)"
    prefix = [FAKETIME, "-f", f"+{days_ahead}d"] if days_ahead else []
    command = [*prefix, str(CLIENT), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _refreshed(tmp_path: Path, published: Published, url: str) -> Path:
    """A client metadata dir initialised with the root and refreshed once, today."""
    metadata = tmp_path / "client-metadata"
    root = tmp_path / "trusted-root.json"
    root.write_bytes(published.repo.root_bytes())
    assert run("--metadata-dir", metadata, "init", root).returncode == 0
    result = run("--metadata-dir", metadata, "--metadata-url", url, "refresh")
    assert result.returncode == 0, result.stderr
    return metadata


def _trusted(metadata: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(metadata.iterdir()) if p.is_file()}


def _at(days_ahead: int, margin: int = 30) -> datetime:
    """An expiry still valid ``days_ahead`` days from now, with ``margin`` days to spare."""
    return datetime.now(UTC) + timedelta(days=days_ahead + margin)


@pytest.mark.parametrize(
    ("days_ahead", "role"),
    [(2, "timestamp"), (400, "root")],
    ids=["timestamp-after-2-days", "root-after-400-days"],
)
def test_client_in_the_future_refuses_expired_metadata(
    tmp_path: Path, published: Published, serve: Any, days_ahead: int, role: str
) -> None:
    served = serve(published.repo.path)
    url = f"{served.url}/metadata"
    metadata = _refreshed(tmp_path, published, url)
    before = _trusted(metadata)
    result = run("--metadata-dir", metadata, "--metadata-url", url, "refresh", days_ahead=days_ahead)
    assert result.returncode == 1
    assert "metadata expired" in result.stderr
    assert f"role '{role}'" in result.stderr
    assert _trusted(metadata) == before, "a refused refresh leaves the trusted metadata as it was"


def test_fresh_timestamp_but_expired_snapshot_refused(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    url = f"{served.url}/metadata"
    metadata = _refreshed(tmp_path, published, url)
    # The online timestamp key keeps signing, but the snapshot it points at is 7-day metadata.
    published.repo.bump_timestamp(expires=_at(10))
    result = run("--metadata-dir", metadata, "--metadata-url", url, "refresh", days_ahead=10)
    assert result.returncode == 1
    assert "metadata expired" in result.stderr
    assert "role 'snapshot'" in result.stderr


def test_fresh_snapshot_but_expired_targets_refused(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    url = f"{served.url}/metadata"
    metadata = _refreshed(tmp_path, published, url)
    published.repo.bump_snapshot(expires=_at(100))
    published.repo.bump_timestamp(expires=_at(100))
    result = run("--metadata-dir", metadata, "--metadata-url", url, "refresh", days_ahead=100)
    assert result.returncode == 1
    assert "metadata expired" in result.stderr
    assert "role 'targets'" in result.stderr


def test_client_recovers_when_the_repository_is_fresh_again(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    url = f"{served.url}/metadata"
    metadata = _refreshed(tmp_path, published, url)
    assert run("--metadata-dir", metadata, "--metadata-url", url, "refresh", days_ahead=3).returncode == 1
    # The authority re-signs every role the client will need at its time (targets and the supplier role too).
    fresh = _at(3)
    published.repo.commit(
        ["targets", "acme"], expires={"targets": fresh, "acme": fresh, "snapshot": fresh, "timestamp": fresh}
    )
    result = run("--metadata-dir", metadata, "--metadata-url", url, "refresh", days_ahead=3)
    assert result.returncode == 0, result.stderr
    targets = tmp_path / "targets"
    result = run(
        "--metadata-dir", metadata, "--metadata-url", url, "--target-name", published.target,
        "--target-base-url", f"{served.url}/targets", "--target-dir", targets, "download",
        days_ahead=3,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list(targets.iterdir())) == 1


def test_expired_supplier_role_refuses_download(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    url = f"{served.url}/metadata"
    metadata = _refreshed(tmp_path, published, url)
    # Top-level metadata fresh at day 100, the supplier's delegated role still the 90-day one.
    fresh = _at(100)
    published.repo.commit(["targets"], expires={"targets": fresh, "snapshot": fresh, "timestamp": fresh})
    assert run("--metadata-dir", metadata, "--metadata-url", url, "refresh", days_ahead=100).returncode == 0
    targets = tmp_path / "targets"
    result = run(
        "--metadata-dir", metadata, "--metadata-url", url, "--target-name", published.target,
        "--target-base-url", f"{served.url}/targets", "--target-dir", targets, "download",
        days_ahead=100,
    )  # fmt: skip
    assert result.returncode == 1
    assert "metadata expired" in result.stderr
    assert "role 'acme'" in result.stderr
    assert not targets.exists() or not list(targets.iterdir())
