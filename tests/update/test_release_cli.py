"""``hardpoint release``: the repository driven only through the command line, checked with the update client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tufkit import Wheels, module_manifest, republish_snapshot, signer_for, write_signed
from typer.testing import CliRunner, Result

from hardpoint_runtime.cli import app
from hardpoint_runtime.update import MetadataExpiredError, MetadataVerificationError, UpdateClient, UpdateRepository

runner = CliRunner()


def cli(*args: str | Path, ok: bool = True) -> Result:
    result = runner.invoke(app, ["release", *map(str, args)])
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def cli_json(*args: str | Path) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def failed(*args: str | Path) -> str:
    result = cli(*args, ok=False)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("hardpoint: error: ")
    return result.stderr


@dataclass
class Made:
    repo: Path
    keys: Path
    root_keys: Path
    acme_keys: Path
    target: str


@pytest.fixture
def made(tmp_path: Path, wheels: Wheels) -> Made:
    """init (root keys apart), add-supplier acme (2 keys, threshold 1), publish blink 1.0: all through the CLI."""
    repo, keys, root_keys, acme_keys = tmp_path / "repo", tmp_path / "keys", tmp_path / "offline", tmp_path / "acme"
    created = cli_json("init", repo, "--keys", keys, "--root-keys", root_keys, "--root-threshold", "2",
                       "--root-key-count", "3")  # fmt: skip
    assert created["trusted_root"] == str(repo / "metadata" / "1.root.json")
    assert created["roles"]["root"]["threshold"] == 2
    assert {p.stem for p in root_keys.glob("*.pem")} == set(created["roles"]["root"]["keyids"])
    added = cli_json("add-supplier", repo, "acme", "--key-count", "2", "--keys", keys, "--supplier-keys", acme_keys)
    assert {p.stem for p in acme_keys.glob("*.pem")} == set(added["keyids"])
    published = cli_json("publish", repo, "acme", wheels.v1, "--keys", keys, "--keys", acme_keys)
    return Made(repo, keys, root_keys, acme_keys, published["target"])


def _client(made: Made, tmp_path: Path, *, trusted_root: bytes | None = None) -> UpdateClient:
    return UpdateClient.from_directory(
        made.repo, tmp_path / "client-metadata", download_dir=tmp_path / "installs", trusted_root=trusted_root
    )


def test_init_add_publish_show_and_the_client_verifies(made: Made, tmp_path: Path, wheels: Wheels) -> None:
    assert made.target == "acme/blink/hp_upd_blink-1.0-py3-none-any.whl"
    shown = cli_json("show", made.repo)
    assert shown["roles"]["acme"]["version"] == 2
    assert set(shown["roles"]) == {"root", "targets", "snapshot", "timestamp", "acme"}
    (target,) = shown["suppliers"]["acme"]["targets"]
    assert (target["path"], target["version"]) == (made.target, "1.0")
    assert shown["suppliers"]["acme"]["paths"] == ["acme/*/*"]
    text = cli("show", made.repo).stdout
    assert made.target in text
    assert "supplier acme" in text
    assert "expires" in text
    with _client(made, tmp_path, trusted_root=(made.repo / "metadata" / "1.root.json").read_bytes()) as client:
        verified = client.fetch_target(made.target)
    assert verified.role == "acme"
    assert verified.manifest == module_manifest("1.0")
    assert verified.hashes["sha256"] == target["hashes"]["sha256"]
    assert verified.path.read_bytes() == wheels.v1.read_bytes()


def test_publish_prints_target_version_and_hashes(made: Made, wheels: Wheels) -> None:
    text = cli("publish", made.repo, "acme", wheels.v2, "--keys", made.keys, "--keys", made.acme_keys).stdout
    assert "published acme/blink/hp_upd_blink-1.1-py3-none-any.whl" in text
    assert "version 1.1" in text
    assert "sha256 " in text


def test_rotate_supplier_key_then_publish(made: Made, tmp_path: Path, wheels: Wheels) -> None:
    root = (made.repo / "metadata" / "1.root.json").read_bytes()
    with _client(made, tmp_path, trusted_root=root) as client:
        client.fetch_target(made.target)
    old = {p.stem for p in made.acme_keys.glob("*.pem")}
    rotated = cli_json("rotate-key", made.repo, "acme", "--keys", made.keys, "--new-keys", tmp_path / "acme-new")
    assert set(rotated["removed"]) == old
    assert len(rotated["added"]) == 2
    assert set(rotated["keyids"]) == set(rotated["added"])
    # the old key files are no use any more: publishing needs only the new directory
    published = cli_json("publish", made.repo, "acme", wheels.v2, "--keys", made.keys, "--keys", tmp_path / "acme-new")
    assert published["version"] == "1.1"
    with _client(made, tmp_path) as client:
        assert client.fetch_target(published["target"]).manifest == module_manifest("1.1")


def test_rotate_online_key(made: Made, tmp_path: Path, wheels: Wheels) -> None:
    rotated = cli_json("rotate-key", made.repo, "timestamp", "--keys", made.keys, "--keys", made.root_keys)
    assert rotated["role"] == "timestamp"
    assert rotated["threshold"] == 1
    assert cli_json("show", made.repo)["roles"]["root"]["version"] == 2
    target = cli_json("publish", made.repo, "acme", wheels.v2, "--keys", made.keys, "--keys", made.acme_keys)["target"]
    with _client(made, tmp_path, trusted_root=(made.repo / "metadata" / "1.root.json").read_bytes()) as client:
        client.fetch_target(target)
    # without the offline root keys it is refused, naming the missing keys
    assert "found 0 of the 2 private keys" in failed("rotate-key", made.repo, "snapshot", "--keys", made.keys)


def test_revoked_key_signs_nothing(made: Made, tmp_path: Path, wheels: Wheels) -> None:
    revoked, kept = cli_json("show", made.repo)["roles"]["acme"]["keyids"]
    out = cli_json("revoke-key", made.repo, "acme", revoked, "--keys", made.keys, "--keys", made.acme_keys)
    assert out["keyids"] == [kept]
    with _client(made, tmp_path, trusted_root=(made.repo / "metadata" / "1.root.json").read_bytes()) as client:
        client.fetch_target(made.target)  # the platform now trusts the state after revocation
    # the holder of the revoked key signs a new acme version; the online keys publish it
    acme = UpdateRepository(made.repo, key_dirs=[]).role("acme")
    evil = "acme/blink/hp_upd_blink-1.1-py3-none-any.whl"
    acme.signed.targets[evil] = type(acme.signed.targets[made.target]).from_data(
        evil, wheels.v2.read_bytes(), ["sha256"]
    )
    acme.signed.version += 1
    write_signed(made.repo, "acme", acme, [signer_for(made.acme_keys / f"{revoked}.pem")])
    republish_snapshot(made.repo, made.keys, ["acme"])
    with _client(made, tmp_path) as client, pytest.raises(MetadataVerificationError, match="role 'acme'") as caught:
        client.fetch_target(evil)
    assert "signed by 0/1 keys" in str(caught.value)
    # an unknown key id is refused, naming it
    assert "are not keys of 'acme'" in failed("revoke-key", made.repo, "acme", "0" * 64, "--keys", made.keys)


def test_bad_input_exits_1_naming_the_cause(made: Made, tmp_path: Path, wheels: Wheels) -> None:
    keys = ["--keys", str(made.keys), "--keys", str(made.acme_keys)]
    assert "no supplier 'zeta'" in failed("publish", made.repo, "zeta", wheels.v2, *keys)
    not_a_wheel = tmp_path / "notes.txt"
    not_a_wheel.write_text("hello")
    assert "is not a wheel (.whl)" in failed("publish", made.repo, "acme", not_a_wheel, *keys)
    broken = tmp_path / "hp_upd_blink-9.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    assert "not a readable wheel" in failed("publish", made.repo, "acme", broken, *keys)
    assert "no wheel file" in failed("publish", made.repo, "acme", tmp_path / "missing.whl", *keys)
    missing = tmp_path / "nowhere"
    for args in (("show", missing), ("publish", missing, "acme", wheels.v2), ("add-supplier", missing, "beta")):
        assert f"no update repository at {missing}" in failed(*args)
    assert "already holds a repository" in failed("init", made.repo, "--keys", made.keys)
    assert "already exists" in failed("add-supplier", made.repo, "acme", "--keys", made.keys)
    assert "not a supplier name" in failed("add-supplier", made.repo, "Bad Name", "--keys", made.keys)
    assert "no role 'zeta'" in failed("rotate-key", made.repo, "zeta", "--keys", made.keys)
    # without the supplier's keys nothing is published
    assert "found 0 of the 1 private keys" in failed("publish", made.repo, "acme", wheels.v2, "--keys", made.keys)


def test_real_subprocess(tmp_path: Path, wheels: Wheels) -> None:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hardpoint_runtime.cli", "release", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    repo = tmp_path / "repo"
    assert run("init", repo).returncode == 0
    assert (tmp_path / "repo-keys").is_dir()  # the default key directory is beside the repository, not in it
    assert not list(repo.rglob("*.pem"))
    assert run("add-supplier", repo, "acme").returncode == 0
    result = run("publish", repo, "acme", wheels.v1, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["target"] == "acme/blink/hp_upd_blink-1.0-py3-none-any.whl"
    bad = run("publish", repo, "zeta", wheels.v1)
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "hardpoint: error: release refused, role 'zeta': no supplier 'zeta'" in bad.stderr


def test_help_does_not_import_tuf() -> None:
    code = "import sys, hardpoint_runtime.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'tuf'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- metadata expiry


def _expires(shown: dict[str, Any], role: str) -> datetime:
    return datetime.fromisoformat(shown["roles"][role]["expires"])


def _close_to(when: datetime, delta: timedelta) -> bool:
    """``when`` is ``delta`` from now, give or take a minute (the test may run slowly)."""
    return abs(when - (datetime.now(UTC) + delta)) < timedelta(minutes=1)


def test_init_expires_in_sets_each_roles_validity(tmp_path: Path) -> None:
    """UPD-REL-001."""
    repo = tmp_path / "repo"
    cli("init", repo, "--expires-in", "timestamp=2h", "--expires-in", "snapshot=3d", "--expires-in", "root=4w")
    shown = cli_json("show", repo)
    assert _close_to(_expires(shown, "timestamp"), timedelta(hours=2))
    assert _close_to(_expires(shown, "snapshot"), timedelta(days=3))
    assert _close_to(_expires(shown, "root"), timedelta(weeks=4))
    assert _close_to(_expires(shown, "targets"), timedelta(days=90))  # the default


def test_publish_expires_in_sets_the_supplier_snapshot_and_timestamp_validity(made: Made, wheels: Wheels) -> None:
    """UPD-REL-001."""
    cli("publish", made.repo, "acme", wheels.v2, "--keys", made.keys, "--keys", made.acme_keys,
        "--expires-in", "acme=2d", "--expires-in", "timestamp=30m")  # fmt: skip
    shown = cli_json("show", made.repo)
    assert _close_to(_expires(shown, "acme"), timedelta(days=2))
    assert _close_to(_expires(shown, "timestamp"), timedelta(minutes=30))
    assert _close_to(_expires(shown, "snapshot"), timedelta(days=7))


def test_bump_renews_an_expired_timestamp_and_platforms_accept_it_again(made: Made, tmp_path: Path) -> None:
    """UPD-REL-002."""
    root = (made.repo / "metadata" / "1.root.json").read_bytes()
    bumped = cli_json("bump", made.repo, "timestamp", "--expires-in", "2s", "--keys", made.keys)
    assert list(bumped["bumped"]) == ["timestamp"]
    with _client(made, tmp_path, trusted_root=root) as client:
        client.refresh()
    time.sleep(3.5)  # the timestamp (whole seconds) is now past its expiry
    with _client(made, tmp_path) as client, pytest.raises(MetadataExpiredError, match="role 'timestamp'"):
        client.refresh()
    text = cli("bump", made.repo, "--keys", made.keys).stdout  # ROLE defaults to timestamp, expiry to 1 d
    assert text.startswith("re-signed timestamp as version ")
    assert _close_to(_expires(cli_json("show", made.repo), "timestamp"), timedelta(days=1))
    with _client(made, tmp_path) as client:
        client.refresh()
        assert client.fetch_target(made.target).version == "1.0"


def test_bump_snapshot_and_a_supplier_role_sign_new_versions(made: Made) -> None:
    """UPD-REL-002."""
    before = cli_json("show", made.repo)["roles"]
    bumped = cli_json("bump", made.repo, "snapshot", "--expires-in", "3d", "--keys", made.keys)["bumped"]
    assert list(bumped) == ["snapshot", "timestamp"]
    assert bumped["snapshot"]["version"] == before["snapshot"]["version"] + 1
    assert bumped["timestamp"]["version"] == before["timestamp"]["version"] + 1
    assert _close_to(datetime.fromisoformat(bumped["snapshot"]["expires"]), timedelta(days=3))
    acme = cli_json("bump", made.repo, "acme", "--expires-in", "12h", "--keys", made.keys, "--keys", made.acme_keys)
    assert acme["bumped"]["acme"]["version"] == before["acme"]["version"] + 1
    assert _close_to(datetime.fromisoformat(acme["bumped"]["acme"]["expires"]), timedelta(hours=12))


def test_bad_expiry_options_exit_1_naming_the_cause(made: Made, tmp_path: Path, wheels: Wheels) -> None:
    """UPD-REL-001, UPD-REL-002."""
    new = tmp_path / "new"
    assert "write ROLE=DURATION" in failed("init", new, "--expires-in", "1d")
    assert "'3x' is not a duration" in failed("init", new, "--expires-in", "timestamp=3x")
    assert "must be more than zero" in failed("init", new, "--expires-in", "timestamp=0s")
    assert "role 'acme' is not one this command signs" in failed("init", new, "--expires-in", "acme=1d")
    assert not new.exists()  # nothing was created
    keys = ["--keys", str(made.keys), "--keys", str(made.acme_keys)]
    assert "role 'targets' is not one this command signs (acme, snapshot, timestamp)" in failed(
        "publish", made.repo, "acme", wheels.v2, *keys, "--expires-in", "targets=1d"
    )
    assert "rotate-key root" in failed("bump", made.repo, "root", *keys)
    assert "no role 'zeta'" in failed("bump", made.repo, "zeta", *keys)
    assert "--expires-in: 'soon' is not a duration" in failed("bump", made.repo, "--expires-in", "soon", *keys)
    assert "found 0 of the 1 private keys" in failed("bump", made.repo, "acme", "--keys", made.keys)
