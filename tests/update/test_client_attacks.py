"""One test per attack: the update client refuses, names the cause, the target and the role, and writes nothing.

Every attack runs twice: over HTTP on 127.0.0.1 and through the directory fetcher (removable media).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tufkit import Published, Wheels, installed, key_files, republish_snapshot, signer_for, write_signed

from hardpoint_runtime.update import (
    IntegrityError,
    MetadataExpiredError,
    MetadataVerificationError,
    RollbackError,
    TargetNotFoundError,
    UpdateClient,
    UpdateError,
    UpdateRepository,
)

PAST = datetime(2020, 1, 1, tzinfo=UTC)


def _refused(
    tmp_path: Path, client: UpdateClient, target: str, kind: type[UpdateError], role: str | None
) -> UpdateError:
    before = installed(tmp_path)
    with pytest.raises(kind) as caught:
        client.fetch_target(target)
    error = caught.value
    assert error.role == role, error
    assert error.cause in str(error)
    if role is not None:
        assert f"role {role!r}" in str(error)
    if kind is not TargetNotFoundError:  # python-tuf returns None there; elsewhere its exception is chained
        assert error.__cause__ is not None
    assert installed(tmp_path) == before, "nothing may be written when an update is refused"
    return error


def _trust_current_state(published: Published, client_for: Callable[..., UpdateClient]) -> None:
    """A platform that has already fetched 1.0: it trusts the repository's current metadata versions."""
    client_for(published.repo, trusted_root=published.repo.root_bytes()).fetch_target(published.target)


def test_a_good_update_is_fetched_with_its_signed_manifest(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    result = client_for(published.repo, trusted_root=published.repo.root_bytes()).fetch_target(published.target)
    assert result.role == "acme"
    assert result.version == "1.0"
    assert result.manifest is not None
    assert result.manifest["name"] == "blink"
    assert (
        result.path.read_bytes()
        == (published.repo.targets_dir / "acme" / "blink").glob("*.whl").__next__().read_bytes()
    )
    assert installed(tmp_path) == {result.path.name}


def test_tampered_wheel(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    (stored,) = (published.repo.targets_dir / "acme" / "blink").glob("*.whl")
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))
    error = _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        IntegrityError,
        "acme",
    )
    assert error.target == published.target


def test_tampered_metadata(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    _trust_current_state(published, client_for)
    timestamp = published.repo.role("timestamp")
    timestamp.signed.version += 1  # a forged timestamp: the old signatures no longer match
    path = published.repo.metadata_dir / "timestamp.json"
    signatures = dict(timestamp.signatures)
    write_signed(published.repo.path, "timestamp", timestamp, [])
    forged = type(timestamp).from_file(str(path))
    forged.signatures.update(signatures)
    forged.to_file(str(path))
    error = _refused(tmp_path, client_for(published.repo), published.target, MetadataVerificationError, "timestamp")
    assert "signed by 0/1 keys" in str(error)


def test_tampered_supplier_metadata(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path, wheels: Wheels
) -> None:
    # the attacker edits acme's metadata (a target's hash) and holds the online keys, but not acme's
    acme = published.repo.role("acme")
    acme.signed.version += 1
    info = acme.signed.targets[published.target]
    info.hashes["sha256"] = "0" * 64
    acme.to_file(str(published.repo.metadata_dir / f"{acme.signed.version}.acme.json"))
    republish_snapshot(published.repo.path, published.keys, ["acme"])
    _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        MetadataVerificationError,
        "acme",
    )


def test_metadata_signed_by_too_few_keys(
    tmp_path: Path, wheels: Wheels, client_for: Callable[..., UpdateClient]
) -> None:
    keys = tmp_path / "keys"
    repo = UpdateRepository.create(
        tmp_path / "repo", keys_dir=keys, thresholds={"timestamp": 2}, key_counts={"timestamp": 3}
    )
    repo.add_supplier("acme", keys_dir=tmp_path / "acme-keys")
    target = repo.publish("acme", wheels.v1)
    client_for(repo, trusted_root=repo.root_bytes()).fetch_target(target)
    # one stolen timestamp key signs a new timestamp: 1 of the 2 required
    timestamp = repo.role("timestamp")
    timestamp.signed.version += 1
    stolen = next(f for f in key_files(keys) if f.stem in repo.role("root").signed.roles["timestamp"].keyids)
    write_signed(repo.path, "timestamp", timestamp, [signer_for(stolen)])
    error = _refused(tmp_path, client_for(repo), target, MetadataVerificationError, "timestamp")
    assert "signed by 1/2 keys" in str(error)


def test_expired_timestamp(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    published.repo.bump_timestamp(expires=PAST)
    _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        MetadataExpiredError,
        "timestamp",
    )


def test_expired_snapshot(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    published.repo.bump_snapshot(expires=PAST)
    _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        MetadataExpiredError,
        "snapshot",
    )


def test_expired_targets(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    published.repo.commit(["targets"], expires={"targets": PAST})
    _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        MetadataExpiredError,
        "targets",
    )


def test_expired_supplier_targets(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    published.repo.commit(["acme"], expires={"acme": PAST})
    _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        MetadataExpiredError,
        "acme",
    )


def test_rollback_of_timestamp(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path, wheels: Wheels
) -> None:
    old = (published.repo.metadata_dir / "timestamp.json").read_bytes()
    target = published.repo.publish("acme", wheels.v2)
    client_for(published.repo, trusted_root=published.repo.root_bytes()).fetch_target(target)
    (published.repo.metadata_dir / "timestamp.json").write_bytes(old)  # a mirror replays the older timestamp
    error = _refused(tmp_path, client_for(published.repo), target, RollbackError, "timestamp")
    assert "must be >=" in error.detail


def test_rollback_of_supplier_metadata(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path, wheels: Wheels
) -> None:
    target = published.repo.publish("acme", wheels.v2)
    client_for(published.repo, trusted_root=published.repo.root_bytes()).fetch_target(target)
    # the online keys list acme's older version again (hiding 1.1): the snapshot rolls acme back
    current = published.repo.role("acme").signed.version
    snapshot = published.repo.role("snapshot")
    older = published.repo.metadata_dir / f"{current - 1}.acme.json"
    from tuf.api.metadata import MetaFile

    snapshot.signed.meta["acme.json"] = MetaFile.from_data(current - 1, older.read_bytes(), ["sha256"])
    snapshot.signed.version += 1
    snapshot.to_file(str(published.repo.metadata_dir / f"{snapshot.signed.version}.snapshot.json"))
    ours = {f.stem: f for f in key_files(published.keys)}
    root = published.repo.role("root").signed
    write_signed(
        published.repo.path, "snapshot", snapshot, [signer_for(ours[k]) for k in root.roles["snapshot"].keyids]
    )
    timestamp = published.repo.role("timestamp")
    data = (published.repo.metadata_dir / f"{snapshot.signed.version}.snapshot.json").read_bytes()
    timestamp.signed.snapshot_meta = MetaFile.from_data(snapshot.signed.version, data, ["sha256"])
    timestamp.signed.version += 1
    write_signed(
        published.repo.path, "timestamp", timestamp, [signer_for(ours[k]) for k in root.roles["timestamp"].keyids]
    )
    _refused(tmp_path, client_for(published.repo), target, RollbackError, "acme")


def test_mix_and_match_of_snapshot_and_targets(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    # the mirror serves an older targets file under the name of the version the snapshot lists
    version = published.repo.role("targets").signed.version
    metadata = published.repo.metadata_dir
    shutil.copyfile(metadata / f"{version - 1}.targets.json", metadata / f"{version}.targets.json")
    error = _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        IntegrityError,
        "targets",
    )
    assert "metadata differs" in error.detail


def test_endless_data_target(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    (stored,) = (published.repo.targets_dir / "acme" / "blink").glob("*.whl")
    with stored.open("ab") as out:
        out.write(b"\0" * 1_000_000)
    error = _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        IntegrityError,
        "acme",
    )
    assert "length" in error.detail.lower()


def test_endless_data_metadata(published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path) -> None:
    with (published.repo.metadata_dir / "timestamp.json").open("ab") as out:
        out.write(b" " * 100_000)  # past python-tuf's 16 384-byte bound for a timestamp
    _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        published.target,
        IntegrityError,
        "timestamp",
    )


def test_supplier_signing_outside_its_path(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path, wheels: Wheels
) -> None:
    published.repo.add_supplier("beta", keys_dir=tmp_path / "beta-keys")
    # acme (its own key, legitimately held) lists a module under beta's path; the online keys publish it
    acme = published.repo.role("acme")
    stolen_path = "beta/blink/hp_upd_blink-1.1-py3-none-any.whl"
    info = type(acme.signed.targets[published.target]).from_data(stolen_path, wheels.v2.read_bytes(), ["sha256"])
    acme.signed.targets[stolen_path] = info
    acme.signed.version += 1
    write_signed(published.repo.path, "acme", acme, [signer_for(f) for f in key_files(published.supplier_keys)])
    republish_snapshot(published.repo.path, published.keys, ["acme"])
    error = _refused(
        tmp_path,
        client_for(published.repo, trusted_root=published.repo.root_bytes()),
        stolen_path,
        TargetNotFoundError,
        "beta",
    )
    assert "does not list it" in error.detail


def test_revoked_supplier_key(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path, wheels: Wheels
) -> None:
    delegation = published.repo.role("targets").signed.delegations.roles["acme"]
    revoked, kept = delegation.keyids
    published.repo.revoke_supplier_key("acme", revoked)
    _trust_current_state(published, client_for)
    # the revoked key signs a new acme version listing a malicious wheel; the online keys publish it
    acme = published.repo.role("acme")
    evil = "acme/blink/hp_upd_blink-1.1-py3-none-any.whl"
    acme.signed.targets[evil] = type(acme.signed.targets[published.target]).from_data(
        evil, wheels.v2.read_bytes(), ["sha256"]
    )
    acme.signed.version += 1
    write_signed(published.repo.path, "acme", acme, [signer_for(published.supplier_keys / f"{revoked}.pem")])
    republish_snapshot(published.repo.path, published.keys, ["acme"])
    error = _refused(tmp_path, client_for(published.repo), evil, MetadataVerificationError, "acme")
    assert "signed by 0/1 keys" in str(error)
    assert kept != revoked
