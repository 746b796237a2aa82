"""One test per attack on a running platform (issue 5, acceptance 2): refused, recorded, nothing installed.

A real :class:`Daemon` runs ``beacon`` 1.0 (a real worker process on a real DDS domain) and takes
updates from a signed directory repository (real TUF metadata, real wheels). Each test mutates that
repository the way ``test_client_attacks.py`` does at the client level, asks the daemon to apply
``beacon`` 1.1 (or the version the attack offers) and checks that the attempt is ``refused`` with the
cause class and TUF role in the journal record, listed in the history, with nothing of the new
version in the module store or the download directory, the pin still on 1.0 and the same 1.0
worker process still active.

One daemon serves the whole module: before each test the repository directory the daemon reads is
replaced by a copy of a pristine one (keys included), and the daemon's trusted metadata and download
directories are emptied, so each attempt starts from the trusted root as a fresh platform does
(the updater opens a new client, from those directories, for every attempt).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from modkit import (
    MODULE,
    SUPPLIER,
    allocate_domain,
    build_module_wheel,
    preinstall,
    wait_for,
    worker_pids,
    write_platform,
)
from tufkit import key_files, republish_snapshot, signer_for, write_signed

from hardpoint_runtime._control import UpdateRecord
from hardpoint_runtime._daemon import Daemon
from hardpoint_runtime.update import UpdateRepository

PAST = datetime(2020, 1, 1, tzinfo=UTC)
NEW = "1.1"
FUSED = "hardpoint.track.v1.FusedTrack"


def _open(work: Path) -> UpdateRepository:
    return UpdateRepository(work / "repo", key_dirs=[work / "keys", work / "root-keys", work / f"{SUPPLIER}-keys"])


@dataclass(frozen=True)
class Live:
    """The running platform and where its repository and state live."""

    daemon: Daemon
    domain_id: int
    pid: int
    #: The store's pin of beacon when 1.0 came up: None, a preinstalled module is not pinned until an update commits.
    pin: str | None
    #: Holds ``repo/`` (read by the daemon), ``root.json`` (its trusted root) and the signing keys.
    work: Path
    pristine: Path
    state: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    wheels = tmp_path_factory.getbasetemp() / "modkit-wheels"
    wheels.mkdir(exist_ok=True)
    v09, v10, v11 = (build_module_wheel(wheels, version=v) for v in ("0.9", "1.0", NEW))
    pristine = tmp_path_factory.mktemp("attacks-pristine")
    # two timestamp keys required (of three), two supplier keys (one may be revoked), threshold 1
    repo = UpdateRepository.create(
        pristine / "repo",
        keys_dir=pristine / "keys",
        root_keys_dir=pristine / "root-keys",
        thresholds={"timestamp": 2},
        key_counts={"timestamp": 3},
    )
    repo.add_supplier(SUPPLIER, keys_dir=pristine / f"{SUPPLIER}-keys", threshold=1, key_count=2)
    for wheel in (v09, v10, v11):
        repo.publish(SUPPLIER, wheel)
    (pristine / "root.json").write_bytes(repo.root_bytes())

    work = tmp_path_factory.mktemp("attacks-live")
    _reset_repository(pristine, work)
    plat = work / "plat"
    domain = allocate_domain()
    config = write_platform(plat, domain.id, work / "repo", gate_timeout_s=5.0, probation_s=1.0)
    preinstall(plat, v10, "1.0")
    daemon = Daemon(config)
    try:
        daemon.start()
        wait_for(
            lambda: daemon.get_module(MODULE).state == "active" and daemon.get_module(MODULE).health == "ok",
            timeout=60,
            what="beacon 1.0 active and healthy",
        )
        pid = daemon.get_module(MODULE).pid
        assert pid is not None
        yield Live(daemon, domain.id, pid, daemon.store.pinned_version(MODULE), work, pristine, plat / "state")
    finally:
        daemon.stop()
        domain.release()


def _reset_repository(pristine: Path, work: Path) -> None:
    for name in ("repo", "keys", "root-keys", f"{SUPPLIER}-keys", "beta-keys"):
        shutil.rmtree(work / name, ignore_errors=True)
        if (pristine / name).exists():
            shutil.copytree(pristine / name, work / name)
    shutil.copyfile(pristine / "root.json", work / "root.json")


@dataclass(frozen=True)
class Attack:
    live: Live
    repo: UpdateRepository

    @property
    def work(self) -> Path:
        return self.live.work

    @property
    def keys(self) -> Path:
        return self.work / "keys"

    @property
    def supplier_keys(self) -> Path:
        return self.work / f"{SUPPLIER}-keys"

    def target(self, version: str = NEW) -> str:
        acme = self.repo.role(SUPPLIER).signed
        (name,) = (t for t in acme.targets if f"-{version}-" in t)
        return name

    def stored_wheel(self, version: str = NEW) -> Path:
        (path,) = (self.repo.targets_dir / SUPPLIER / MODULE).glob(f"*-{version}-*.whl")
        return path

    def trust_current_state(self) -> None:
        """The platform has already seen the repository as it is now (its trusted metadata is current)."""
        offers = self.live.daemon.update_check()
        assert [o.available_version for o in offers if o.module == MODULE] == [NEW], offers


@pytest.fixture
def attack(live: Live) -> Attack:
    """The daemon's repository reset to the pristine one; its trusted metadata and downloads forgotten."""
    _reset_repository(live.pristine, live.work)
    for name in ("metadata", "downloads"):
        shutil.rmtree(live.state / "update" / name, ignore_errors=True)
    _assert_untouched(live)
    return Attack(live, _open(live.work))


def _assert_untouched(live: Live) -> None:
    store = live.state / "modules" / MODULE
    assert sorted(p.name for p in store.iterdir()) == ["1.0"], "only 1.0 (no partial or new version) in the store"
    downloads = live.state / "update" / "downloads"
    assert not downloads.exists() or not any(downloads.iterdir()), list(downloads.iterdir())
    assert live.daemon.store.pinned_version(MODULE) == live.pin, "the pin must not move"
    status = live.daemon.get_module(MODULE)
    assert (status.version, status.state, status.pid) == ("1.0", "active", live.pid)
    assert worker_pids(live.domain_id, MODULE) == [live.pid]


def _refused(attack: Attack, cause: str, role: str, *, version: str = NEW, words: str = "") -> UpdateRecord:
    live = attack.live
    record = live.daemon.update_apply(MODULE, version)
    assert (record.outcome, record.cause, record.role) == ("refused", cause, role), record.reason
    assert record.from_version == "1.0"
    if role:
        assert f"role {role!r}" in record.reason
    assert words in record.reason
    (last,) = live.daemon.update_history(MODULE, limit=1)
    assert (last.id, last.outcome, last.cause, last.role, last.reason) == (
        record.id, "refused", cause, role, record.reason,
    )  # fmt: skip
    _assert_untouched(live)
    return record


def _forge_supplier(attack: Attack, edit: Any, signers: list[Path]) -> None:
    """``edit(acme_metadata)``, then a new acme version signed by ``signers``, published with the online keys."""
    acme = attack.repo.role(SUPPLIER)
    edit(acme)
    acme.signed.version += 1
    write_signed(attack.repo.path, SUPPLIER, acme, [signer_for(f) for f in signers])
    republish_snapshot(attack.repo.path, attack.keys, [SUPPLIER])


# ----------------------------------------------------------------------------- the attacks


def test_tampered_wheel(attack: Attack) -> None:
    stored = attack.stored_wheel()
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF
    stored.write_bytes(bytes(data))
    _refused(attack, "IntegrityError", SUPPLIER, words=attack.target())


def test_tampered_metadata(attack: Attack) -> None:
    attack.trust_current_state()
    timestamp = attack.repo.role("timestamp")
    signatures = dict(timestamp.signatures)
    timestamp.signed.version += 1  # a forged timestamp: the old signatures no longer match
    path = write_signed(attack.repo.path, "timestamp", timestamp, [])
    forged = type(timestamp).from_file(str(path))
    forged.signatures.update(signatures)
    forged.to_file(str(path))
    _refused(attack, "MetadataVerificationError", "timestamp", words="signed by 0/2 keys")


def test_metadata_signed_by_too_few_keys(attack: Attack) -> None:
    attack.trust_current_state()
    timestamp = attack.repo.role("timestamp")
    timestamp.signed.version += 1
    keyids = attack.repo.role("root").signed.roles["timestamp"].keyids
    stolen = next(f for f in key_files(attack.keys) if f.stem in keyids)  # one of the two required
    write_signed(attack.repo.path, "timestamp", timestamp, [signer_for(stolen)])
    _refused(attack, "MetadataVerificationError", "timestamp", words="signed by 1/2 keys")


def test_expired_timestamp(attack: Attack) -> None:
    attack.repo.bump_timestamp(expires=PAST)
    _refused(attack, "MetadataExpiredError", "timestamp")


def test_expired_snapshot(attack: Attack) -> None:
    attack.repo.bump_snapshot(expires=PAST)
    _refused(attack, "MetadataExpiredError", "snapshot")


def test_expired_targets(attack: Attack) -> None:
    attack.repo.commit(["targets"], expires={"targets": PAST})
    _refused(attack, "MetadataExpiredError", "targets")


def test_rollback_of_metadata(attack: Attack) -> None:
    stale = (attack.repo.metadata_dir / "timestamp.json").read_bytes()
    attack.repo.bump_timestamp()
    attack.trust_current_state()
    (attack.repo.metadata_dir / "timestamp.json").write_bytes(stale)  # a mirror replays the older timestamp
    _refused(attack, "RollbackError", "timestamp", words="must be >=")


def test_rollback_of_module_version(attack: Attack) -> None:
    # 0.9 is properly signed by acme, but older than the running 1.0
    _refused(attack, "ModuleRollbackError", SUPPLIER, version="0.9", words="older than installed version 1.0")


def test_mix_and_match_of_snapshot_and_targets(attack: Attack) -> None:
    # the mirror serves an older targets file under the name of the version the snapshot lists
    version = attack.repo.role("targets").signed.version
    metadata = attack.repo.metadata_dir
    shutil.copyfile(metadata / f"{version - 1}.targets.json", metadata / f"{version}.targets.json")
    _refused(attack, "IntegrityError", "targets", words="metadata differs")


def test_endless_data_target(attack: Attack) -> None:
    with attack.stored_wheel().open("ab") as out:
        out.write(b"\0" * 1_000_000)
    record = _refused(attack, "IntegrityError", SUPPLIER, words=attack.target())
    assert "length" in record.reason.lower()


def test_supplier_signing_outside_its_path(attack: Attack) -> None:
    attack.repo.add_supplier("beta", keys_dir=attack.work / "beta-keys")
    # acme (its own key, legitimately held) lists a beacon 2.0 under beta's path; the online keys publish it
    stolen = f"beta/{MODULE}/hp_mk_{MODULE}-2.0-py3-none-any.whl"

    def list_under_beta(acme: Any) -> None:
        info = acme.signed.targets[attack.target()]
        forged = type(info).from_data(stolen, attack.stored_wheel().read_bytes(), ["sha256"])
        forged.unrecognized_fields["custom"] = {"hardpoint": {**info.custom["hardpoint"], "version": "2.0"}}
        acme.signed.targets[stolen] = forged

    _forge_supplier(attack, list_under_beta, key_files(attack.supplier_keys))
    # beta does not list it and acme may not sign for beta/: the daemon is offered no 2.0 at all
    _refused(attack, "TargetNotFoundError", "", version="2.0", words="offers no version 2.0")


def test_revoked_supplier_key(attack: Attack) -> None:
    revoked, kept = attack.repo.role("targets").signed.delegations.roles[SUPPLIER].keyids
    attack.repo.revoke_supplier_key(SUPPLIER, revoked)
    attack.trust_current_state()
    evil = attack.stored_wheel("0.9").read_bytes()

    def point_at_other_bytes(acme: Any) -> None:
        # 1.1's signed entry now names other bytes (which the mirror serves): only the revoked key signs it
        target = attack.target()
        info = acme.signed.targets[target]
        forged = type(info).from_data(target, evil, ["sha256"])
        forged.unrecognized_fields["custom"] = info.custom
        acme.signed.targets[target] = forged

    _forge_supplier(attack, point_at_other_bytes, [attack.supplier_keys / f"{revoked}.pem"])
    attack.stored_wheel().write_bytes(evil)
    _refused(attack, "MetadataVerificationError", SUPPLIER, words="signed by 0/1 keys")
    assert kept != revoked


def test_wheel_whose_embedded_manifest_differs_from_the_signed_one(attack: Attack) -> None:
    # acme's key re-signs 1.1 with a manifest claiming FusedTrack, which the wheel does not provide
    def claim_more(acme: Any) -> None:
        manifest = acme.signed.targets[attack.target()].custom["hardpoint"]["manifest"]
        manifest["provides"] = [*manifest["provides"], FUSED]

    _forge_supplier(attack, claim_more, key_files(attack.supplier_keys))
    _refused(attack, "ManifestMismatchError", SUPPLIER, words="provides")


def test_the_unattacked_repository_is_accepted_by_the_same_checks(attack: Attack) -> None:
    """Control: the pristine repository the attacks start from is fine (the refusals come from the attacks)."""
    offers = attack.live.daemon.update_check()
    (offer,) = (o for o in offers if o.module == MODULE)
    assert (offer.available_version, offer.status, offer.supplier) == (NEW, "available", SUPPLIER)
    wheel = attack.stored_wheel()
    info = attack.repo.role(SUPPLIER).signed.targets[attack.target()]
    assert info.hashes["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    _assert_untouched(attack.live)
