"""Release tooling: repository creation, suppliers, publishing, key rotation and revocation, expiry settings."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tufkit import Published, Wheels, build_module_wheel, module_manifest

from hardpoint_runtime.update import (
    Expiry,
    MetadataVerificationError,
    ReleaseError,
    UpdateClient,
    UpdateRepository,
    read_module_wheel,
)


def _fetch(repo: UpdateRepository, tmp_path: Path, target: str, *, root: bytes | None = None) -> UpdateClient:
    client = UpdateClient.from_directory(
        repo.path, tmp_path / "client-metadata", download_dir=tmp_path / "installs", trusted_root=root
    )
    client.fetch_target(target)
    return client


def test_create_with_thresholds_and_offline_root_keys(tmp_path: Path) -> None:
    keys, root_keys = tmp_path / "online", tmp_path / "offline"
    repo = UpdateRepository.create(
        tmp_path / "repo", keys_dir=keys, root_keys_dir=root_keys,
        thresholds={"root": 2, "targets": 2}, key_counts={"root": 3},
    )  # fmt: skip
    root = repo.role("root").signed
    assert root.consistent_snapshot
    assert (root.roles["root"].threshold, len(root.roles["root"].keyids)) == (2, 3)
    assert (root.roles["targets"].threshold, len(root.roles["targets"].keyids)) == (2, 2)
    assert {p.stem for p in root_keys.glob("*.pem")} == set(root.roles["root"].keyids)
    assert not set(root.roles["root"].keyids) & {p.stem for p in keys.glob("*.pem")}
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in keys.glob("*.pem"))
    names = {p.name for p in repo.metadata_dir.iterdir()}
    assert {"1.root.json", "1.targets.json", "1.snapshot.json", "timestamp.json"} <= names
    assert len(repo.role("root").signatures) == 3


def test_bad_thresholds_and_existing_repository_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="threshold 3 with 2 keys"):
        UpdateRepository.create(tmp_path / "r", keys_dir=tmp_path / "k", thresholds={"root": 3}, key_counts={"root": 2})
    UpdateRepository.create(tmp_path / "ok", keys_dir=tmp_path / "k")
    with pytest.raises(ReleaseError, match="already holds"):
        UpdateRepository.create(tmp_path / "ok", keys_dir=tmp_path / "k")


def test_publish_without_root_keys_and_custom_metadata(published: Published, tmp_path: Path, wheels: Wheels) -> None:
    # the root keys stay offline: reopening with the online and supplier keys is enough to publish
    repo = UpdateRepository(published.repo.path, key_dirs=[published.keys, published.supplier_keys])
    target = repo.publish("acme", wheels.v2)
    assert target == "acme/blink/hp_upd_blink-1.1-py3-none-any.whl"
    info = repo.role("acme").signed.targets[target]
    assert info.custom == {"hardpoint": {"manifest": module_manifest("1.1"), "version": "1.1"}}
    assert repo.role("targets").signed.delegations.roles["acme"].paths == ["acme/*/*"]
    client = _fetch(repo, tmp_path, target, root=repo.root_bytes())
    client.close()


def test_publish_refuses_unknown_supplier_and_foreign_manifest(published: Published, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="no supplier 'zeta'"):
        published.repo.publish("zeta", build_module_wheel(tmp_path, "2.0"))
    foreign = build_module_wheel(tmp_path / "f", "2.0", supplier="other")
    with pytest.raises(ReleaseError, match="manifest supplier 'other' is not 'acme'"):
        published.repo.publish("acme", foreign)


def test_missing_supplier_key_writes_nothing(published: Published, tmp_path: Path, wheels: Wheels) -> None:
    repo = UpdateRepository(published.repo.path, key_dirs=[published.keys])
    before = sorted(p.name for p in repo.metadata_dir.iterdir())
    with pytest.raises(ReleaseError, match="found 0 of the 1 private keys") as caught:
        repo.publish("acme", wheels.v2)
    assert caught.value.role == "acme"
    assert sorted(p.name for p in repo.metadata_dir.iterdir()) == before


def test_manifest_in_wheel_rule(tmp_path: Path, wheels: Wheels) -> None:
    module = read_module_wheel(wheels.v1)
    assert (module.entry_point, module.version, module.manifest_member) == (
        "blink", "1.0", "hp_upd_blink/hardpoint-manifest.json",
    )  # fmt: skip
    bad_version = build_module_wheel(tmp_path, "3.0", manifest=module_manifest("2.0"))
    with pytest.raises(ReleaseError, match=r"manifest version '2\.0' differs from the wheel version '3\.0'"):
        read_module_wheel(bad_version)
    stripped = tmp_path / "stripped.whl"
    with zipfile.ZipFile(wheels.v1) as src, zipfile.ZipFile(stripped, "w") as out:
        for item in src.infolist():
            if not item.filename.endswith("hardpoint-manifest.json"):
                out.writestr(item, src.read(item))
    with pytest.raises(ReleaseError, match=r"no hp_upd_blink/hardpoint-manifest\.json"):
        read_module_wheel(stripped)
    invalid = build_module_wheel(tmp_path / "i", "1.0", manifest={**module_manifest("1.0"), "provides": ["nope"]})
    with pytest.raises(ReleaseError, match="invalid manifest"):
        read_module_wheel(invalid)
    assert json.loads(json.dumps(module.manifest)) == module_manifest("1.0")


def test_root_key_rotation_followed_by_client(published: Published, tmp_path: Path, wheels: Wheels) -> None:
    repo = published.repo
    first_root = repo.root_bytes()
    _fetch(repo, tmp_path, published.target, root=first_root).close()
    (old,) = repo.role("root").signed.roles["root"].keyids
    new_ids = repo.rotate_keys("root", add=2, remove=[old], threshold=2, keys_dir=tmp_path / "new-root-keys")
    root2 = repo.role("root")
    assert root2.signed.version == 2
    assert set(root2.signed.roles["root"].keyids) == set(new_ids)
    assert old in root2.signatures  # signed by the old threshold too
    target = repo.publish("acme", wheels.v2)
    client = _fetch(repo, tmp_path, target)  # the client trusts root 1 and walks to root 2
    client.close()
    assert json.loads((tmp_path / "client-metadata" / "root.json").read_bytes())["signed"]["version"] == 2


def test_online_key_rotation(published: Published, tmp_path: Path, wheels: Wheels) -> None:
    repo = published.repo
    _fetch(repo, tmp_path, published.target, root=repo.root_bytes()).close()
    (old,) = repo.role("root").signed.roles["timestamp"].keyids
    repo.rotate_keys("timestamp", add=1, remove=[old], keys_dir=tmp_path / "new-online")
    target = repo.publish("acme", wheels.v2)
    _fetch(repo, tmp_path, target).close()


def test_supplier_key_rotation(published: Published, tmp_path: Path, wheels: Wheels) -> None:
    repo = published.repo
    _fetch(repo, tmp_path, published.target, root=repo.root_bytes()).close()
    old_ids = list(repo.role("targets").signed.delegations.roles["acme"].keyids)
    targets_version = repo.role("targets").signed.version
    new_ids = repo.rotate_keys("acme", add=1, remove=old_ids, keys_dir=tmp_path / "acme-new")
    assert repo.role("targets").signed.delegations.roles["acme"].keyids == new_ids
    assert repo.role("targets").signed.version == targets_version + 1  # the delegator re-signed
    assert set(repo.role("acme").signatures) == set(new_ids)
    # the old key files are gone from the supplier's hands: publishing uses only the new one
    fresh = UpdateRepository(repo.path, key_dirs=[published.keys, tmp_path / "acme-new"])
    target = fresh.publish("acme", wheels.v2)
    _fetch(fresh, tmp_path, target).close()


def test_revoke_supplier_key(published: Published, tmp_path: Path, wheels: Wheels) -> None:
    repo = published.repo
    revoked, kept = repo.role("targets").signed.delegations.roles["acme"].keyids
    version = repo.role("targets").signed.version
    repo.revoke_supplier_key("acme", revoked)
    assert repo.role("targets").signed.delegations.roles["acme"].keyids == [kept]
    assert revoked not in repo.role("targets").signed.delegations.keys
    assert repo.role("targets").signed.version == version + 1
    assert list(repo.role("acme").signatures) == [kept]
    with pytest.raises(ReleaseError, match="threshold 1 with 0 keys"):
        repo.revoke_supplier_key("acme", kept)


def test_expiry_settings(tmp_path: Path, wheels: Wheels) -> None:
    expiry = Expiry(timestamp=timedelta(hours=1), snapshot=timedelta(days=2), suppliers=timedelta(days=30))
    repo = UpdateRepository.create(tmp_path / "repo", keys_dir=tmp_path / "k", expiry=expiry)
    repo.add_supplier("acme", keys_dir=tmp_path / "a")
    now = datetime.now(UTC)
    assert abs(repo.role("timestamp").signed.expires - (now + timedelta(hours=1))) < timedelta(minutes=1)
    assert abs(repo.role("snapshot").signed.expires - (now + timedelta(days=2))) < timedelta(minutes=1)
    assert abs(repo.role("acme").signed.expires - (now + timedelta(days=30))) < timedelta(minutes=1)
    version = repo.role("timestamp").signed.version
    repo.bump_timestamp()
    assert repo.role("timestamp").signed.version == version + 1


def test_short_lived_timestamp_is_refused_once_expired(published: Published, tmp_path: Path) -> None:
    published.repo.bump_timestamp(expires=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(MetadataVerificationError, match="role 'timestamp'"):
        _fetch(published.repo, tmp_path, published.target, root=published.repo.root_bytes())
