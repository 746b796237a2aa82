"""hardpoint-tuf-client, driven as a subprocess through the tuf-conformance protocol against 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tufkit import Published, Wheels

CLIENT = Path(sys.executable).parent / "hardpoint-tuf-client"
PAST = datetime(2020, 1, 1, tzinfo=UTC)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLIENT), *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def _init(tmp_path: Path, published: Published) -> Path:
    metadata = tmp_path / "client-metadata"
    root = tmp_path / "trusted-root.json"
    root.write_bytes(published.repo.root_bytes())
    assert run("--metadata-dir", metadata, "init", root).returncode == 0
    return metadata


def test_init_makes_no_request_and_stores_root(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    metadata = _init(tmp_path, published)
    assert (metadata / "root.json").read_bytes() == published.repo.root_bytes()
    assert served.requests == []


def test_refresh_keeps_non_versioned_metadata(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    metadata = _init(tmp_path, published)
    result = run("--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata", "refresh")
    assert result.returncode == 0, result.stderr
    names = {p.name for p in metadata.iterdir() if p.is_file()}
    assert {"root.json", "timestamp.json", "snapshot.json", "targets.json"} <= names
    assert not any(n[0].isdigit() for n in names)


def test_download_in_order_and_cached(tmp_path: Path, published: Published, wheels: Wheels, serve: Any) -> None:
    second = published.repo.publish("acme", wheels.v2)
    served = serve(published.repo.path)
    metadata, targets = _init(tmp_path, published), tmp_path / "targets"
    args = [
        "--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata",
        "--target-name", published.target, "--target-name", second,
        "--target-base-url", f"{served.url}/targets", "--target-dir", targets, "download",
    ]  # fmt: skip
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert len(list(targets.iterdir())) == 2
    target_requests = [r for r in served.requests if r.startswith("/targets/")]
    assert len(target_requests) == 2
    assert target_requests[0].endswith("hp_upd_blink-1.0-py3-none-any.whl")
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert "already present" in result.stdout
    assert len([r for r in served.requests if r.startswith("/targets/")]) == 2, "cached artifacts are not fetched again"


def test_download_stops_at_first_failure(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    metadata, targets = _init(tmp_path, published), tmp_path / "targets"
    result = run(
        "--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata",
        "--target-name", "acme/blink/missing.whl", "--target-name", published.target,
        "--target-base-url", f"{served.url}/targets", "--target-dir", targets, "download",
    )  # fmt: skip
    assert result.returncode == 1
    assert "target not found" in result.stderr
    assert not targets.exists() or not list(targets.iterdir())


def test_expired_timestamp_refused(tmp_path: Path, published: Published, serve: Any) -> None:
    served = serve(published.repo.path)
    metadata = _init(tmp_path, published)
    assert run("--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata", "refresh").returncode == 0
    trusted = (metadata / "timestamp.json").read_bytes()
    published.repo.bump_timestamp(expires=PAST)  # the repository's clock is past the timestamp's expiry
    result = run("--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata", "refresh")
    assert result.returncode == 1
    assert "metadata expired" in result.stderr
    assert "role 'timestamp'" in result.stderr
    assert (metadata / "timestamp.json").read_bytes() == trusted


def test_rollback_refused(tmp_path: Path, published: Published, wheels: Wheels, serve: Any) -> None:
    served = serve(published.repo.path)
    metadata = _init(tmp_path, published)
    old = (published.repo.metadata_dir / "timestamp.json").read_bytes()
    published.repo.publish("acme", wheels.v2)
    assert run("--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata", "refresh").returncode == 0
    trusted = (metadata / "timestamp.json").read_bytes()
    (published.repo.metadata_dir / "timestamp.json").write_bytes(old)
    result = run("--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata", "refresh")
    assert result.returncode == 1
    assert "rollback attempt" in result.stderr
    assert "role 'timestamp'" in result.stderr
    assert (metadata / "timestamp.json").read_bytes() == trusted


def test_tampered_target_not_stored(tmp_path: Path, published: Published, serve: Any) -> None:
    (stored,) = (published.repo.targets_dir / "acme" / "blink").glob("*.whl")
    stored.write_bytes(stored.read_bytes()[:-1] + b"x")
    served = serve(published.repo.path)
    metadata, targets = _init(tmp_path, published), tmp_path / "targets"
    result = run(
        "--metadata-dir", metadata, "--metadata-url", f"{served.url}/metadata", "--target-name", published.target,
        "--target-base-url", f"{served.url}/targets", "--target-dir", targets, "download",
    )  # fmt: skip
    assert result.returncode == 1
    assert "hash or length mismatch" in result.stderr
    assert not targets.exists() or not list(targets.iterdir())


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    assert run("--metadata-dir", tmp_path, "refresh").returncode == 1
    assert run("refresh").returncode == 1
    assert run("--metadata-dir", tmp_path / "none", "init", tmp_path / "missing-root.json").returncode == 1
    shutil.rmtree(tmp_path / "none", ignore_errors=True)
