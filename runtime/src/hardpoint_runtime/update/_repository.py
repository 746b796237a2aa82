"""Release tooling: a TUF update repository on python-tuf's Metadata API.

Layout of a repository directory (consistent snapshots)::

    <repo>/metadata/N.root.json        every root version, kept (clients walk them)
    <repo>/metadata/N.targets.json     the authority's targets role: delegations to suppliers
    <repo>/metadata/N.<supplier>.json  one delegated targets role per supplier, paths ["<supplier>/*/*"]
    <repo>/metadata/N.snapshot.json
    <repo>/metadata/timestamp.json     the only unversioned file
    <repo>/targets/<supplier>/<module>/<sha256>.<wheel>

Private keys are PEM (PKCS#8, unencrypted, mode 0600) files named
``<keyid>.pem`` in key directories. The root keys can live in a directory of
their own (offline: removable media plugged in only for root operations); every
other operation needs only the directories holding the keys of the roles it
signs. A role is signed with every key of it that is found; fewer than its
threshold is refused before anything is written.

All signing, hashing and serialisation is python-tuf's and securesystemslib's.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from hardpoint_runtime.update._errors import ReleaseError
from hardpoint_runtime.update._wheel import read_module_wheel

__all__ = ["Expiry", "UpdateRepository", "target_path_for"]

_TOP_LEVEL: Final = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
_SUPPLIER_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_VERSIONED_RE: Final = re.compile(r"^(\d+)\.(.+)\.json$")
_HASH: Final = "sha256"


@dataclass(frozen=True, slots=True)
class Expiry:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    #: Delegated supplier roles.
    suppliers: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def for_role(self, role: str) -> timedelta:
        if role in _TOP_LEVEL:
            value: timedelta = getattr(self, role)
            return value
        return self.suppliers


def target_path_for(supplier: str, module: str, filename: str) -> str:
    """The TUF target path of a module wheel: ``<supplier>/<module>/<file>``."""
    return f"{supplier}/{module}/{filename}"


def _check_evidence_subject(evidence: dict[str, Any], wheel: str, sha256: str, supplier: str) -> None:
    """Refuse evidence that is no DSSE envelope or is about another wheel (its signature is the platform's to judge)."""
    # imported here: the conformance package imports the update errors, so a top-level import would be circular
    from hardpoint_runtime.conformance._evidence import envelope_subjects
    from hardpoint_runtime.update._errors import EvidenceError

    try:
        subjects = envelope_subjects(evidence)
    except EvidenceError as e:
        raise ReleaseError(f"{wheel}: {e.detail}", role=supplier) from e
    if sha256 not in [digest for _, digest in subjects]:
        named = ", ".join(f"{name} (sha256 {digest})" for name, digest in subjects) or "no subject digest"
        raise ReleaseError(f"{wheel}: the evidence is for {named}, not for this wheel (sha256 {sha256})", role=supplier)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class UpdateRepository:
    """A TUF repository of module wheels, in a directory.

    Open an existing one with ``UpdateRepository(path, key_dirs=[...])`` or
    make a new one with :meth:`create`. Every change writes new metadata
    versions and then a new snapshot and timestamp, so clients always see a
    consistent repository.
    """

    def __init__(self, path: Path, *, key_dirs: Sequence[Path], expiry: Expiry | None = None) -> None:
        self.path = path
        self.key_dirs = tuple(key_dirs)
        self.expiry = expiry or Expiry()
        self._md: dict[str, Metadata[Any]] = {}
        self._serializer = JSONSerializer(compact=False)
        if self.metadata_dir.is_dir():
            self._load()

    # ----- layout -----------------------------------------------------

    @property
    def metadata_dir(self) -> Path:
        return self.path / "metadata"

    @property
    def targets_dir(self) -> Path:
        return self.path / "targets"

    def root_bytes(self, version: int = 1) -> bytes:
        """The signed root of ``version``: what a platform is given as its first trusted root."""
        return (self.metadata_dir / f"{version}.root.json").read_bytes()

    def role(self, name: str) -> Metadata[Any]:
        """The current metadata of a role (a copy is not made: do not modify)."""
        try:
            return self._md[name]
        except KeyError:
            raise ReleaseError(f"no role {name!r} in {self.path}", role=name) from None

    @property
    def suppliers(self) -> list[str]:
        delegations = self._targets.delegations
        return list(delegations.roles or {}) if delegations else []

    @property
    def _root(self) -> Root:
        signed: Root = self._md[Root.type].signed
        return signed

    @property
    def _targets(self) -> Targets:
        signed: Targets = self._md[Targets.type].signed
        return signed

    def _load(self) -> None:
        latest: dict[str, tuple[int, Path]] = {}
        for file in self.metadata_dir.iterdir():
            match = _VERSIONED_RE.match(file.name)
            if match:
                version, role = int(match.group(1)), match.group(2)
                if role not in latest or latest[role][0] < version:
                    latest[role] = (version, file)
        for role, (_, file) in latest.items():
            self._md[role] = Metadata.from_file(str(file))
        timestamp = self.metadata_dir / "timestamp.json"
        if timestamp.is_file():
            self._md[Timestamp.type] = Metadata.from_file(str(timestamp))
        missing = [r for r in _TOP_LEVEL if r not in self._md]
        if missing:
            raise ReleaseError(f"{self.metadata_dir} lacks metadata for {missing}")

    # ----- keys ---------------------------------------------------------

    @staticmethod
    def _generate(count: int, directory: Path) -> list[SSlibKey]:
        directory.mkdir(parents=True, exist_ok=True)
        keys = []
        for _ in range(count):
            signer = CryptoSigner.generate_ed25519()
            key = signer.public_key
            file = directory / f"{key.keyid}.pem"
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(signer.private_bytes)
            keys.append(key)
        return keys

    def _signer(self, key: Key) -> CryptoSigner | None:
        if not isinstance(key, SSlibKey):
            return None
        for directory in self.key_dirs:
            file = directory / f"{key.keyid}.pem"
            if file.is_file():
                return CryptoSigner(load_pem_private_key(file.read_bytes(), None), key)
        return None

    def _delegations(self) -> dict[str, DelegatedRole]:
        """The targets role's delegated roles (every repository made here has the mapping)."""
        delegations = self._targets.delegations
        if delegations is None or delegations.roles is None:
            raise ReleaseError("targets has no delegated roles mapping", role=Targets.type)
        return delegations.roles

    def _keys_of(self, role: str) -> tuple[list[Key], int]:
        """Keys and threshold of ``role`` as its delegator states them."""
        if role in _TOP_LEVEL:
            root = self._root
            return [root.get_key(k) for k in root.roles[role].keyids], root.roles[role].threshold
        delegations = self._targets.delegations
        if delegations is None or delegations.roles is None or role not in delegations.roles:
            raise ReleaseError(f"no supplier {role!r} is delegated in targets", role=role)
        delegated = delegations.roles[role]
        return [delegations.keys[k] for k in delegated.keyids], delegated.threshold

    def _sign(self, role: str, md: Metadata[Any], keys: Iterable[Key], threshold: int) -> None:
        md.signatures.clear()
        signed = 0
        for key in {k.keyid: k for k in keys}.values():
            signer = self._signer(key)
            if signer is not None:
                md.sign(signer, append=True)
                signed += 1
        if signed < threshold:
            raise ReleaseError(
                f"found {signed} of the {threshold} private keys needed in {[str(d) for d in self.key_dirs]}",
                role=role,
            )

    # ----- writing ------------------------------------------------------

    def _write(self, role: str, md: Metadata[Any]) -> None:
        name = "timestamp.json" if role == Timestamp.type else f"{md.signed.version}.{role}.json"
        final = self.metadata_dir / name
        temp = final.with_name(f".{name}.tmp")
        md.to_file(str(temp), self._serializer)
        os.replace(temp, final)
        self._md[role] = md

    def _expires(self, role: str, expires: dict[str, datetime] | None) -> datetime:
        if expires and role in expires:
            return expires[role]
        return _now() + self.expiry.for_role(role)

    def check_keys(self, roles: Iterable[str]) -> None:
        """Refuse unless enough private keys are at hand to commit ``roles`` (with a new snapshot and timestamp).

        What :meth:`commit` checks before it writes; a caller about to do long work first (a conformance
        run before a publish) asks early.

        :raises ReleaseError: a role is unknown or lacks keys (naming the role and where keys were looked for).
        """
        for role in [*roles, Snapshot.type, Timestamp.type]:
            keys, threshold = self._keys_of(role)
            available = sum(1 for k in keys if self._signer(k) is not None)
            if available < threshold:
                raise ReleaseError(
                    f"found {available} of the {threshold} private keys needed in {[str(d) for d in self.key_dirs]}",
                    role=role,
                )

    def commit(self, roles: Iterable[str] = (), *, expires: dict[str, datetime] | None = None) -> None:
        """Sign new versions of ``roles`` (targets or supplier roles), then a new snapshot and timestamp.

        ``expires`` overrides the expiry of any role by name (``snapshot``,
        ``timestamp`` too): the way to publish short-lived metadata.

        :raises ReleaseError: a role lacks enough private keys; nothing is written then.
        """
        changed = list(dict.fromkeys(roles))
        for role in changed:
            if role in (Root.type, Snapshot.type, Timestamp.type):
                raise ReleaseError(f"{role} is not a targets role: use rotate_keys or commit()", role=role)
        self.check_keys(changed)  # every key first, so a missing key writes nothing
        snapshot_md = self._md[Snapshot.type]
        for role in changed:
            md = self._md[role]
            if (self.metadata_dir / f"{md.signed.version}.{role}.json").exists():
                md.signed.version += 1  # a role just created is written as version 1
            md.signed.expires = self._expires(role, expires)
            self._sign(role, md, *self._keys_of(role))
            self._write(role, md)
            data = (self.metadata_dir / f"{md.signed.version}.{role}.json").read_bytes()
            snapshot_md.signed.meta[f"{role}.json"] = MetaFile.from_data(md.signed.version, data, [_HASH])
        self._new_snapshot_and_timestamp(expires)

    def _new_snapshot_and_timestamp(self, expires: dict[str, datetime] | None) -> None:
        snapshot_md = self._md[Snapshot.type]
        snapshot_md.signed.version += 1
        snapshot_md.signed.expires = self._expires(Snapshot.type, expires)
        self._sign(Snapshot.type, snapshot_md, *self._keys_of(Snapshot.type))
        self._write(Snapshot.type, snapshot_md)
        data = (self.metadata_dir / f"{snapshot_md.signed.version}.snapshot.json").read_bytes()
        timestamp_md = self._md[Timestamp.type]
        timestamp_md.signed.snapshot_meta = MetaFile.from_data(snapshot_md.signed.version, data, [_HASH])
        timestamp_md.signed.version += 1
        timestamp_md.signed.expires = self._expires(Timestamp.type, expires)
        self._sign(Timestamp.type, timestamp_md, *self._keys_of(Timestamp.type))
        self._write(Timestamp.type, timestamp_md)

    def bump_timestamp(self, *, expires: datetime | None = None) -> None:
        """Sign a new timestamp only (the online key's routine job before the old one expires)."""
        md = self._md[Timestamp.type]
        md.signed.version += 1
        md.signed.expires = expires or self._expires(Timestamp.type, None)
        self._sign(Timestamp.type, md, *self._keys_of(Timestamp.type))
        self._write(Timestamp.type, md)

    def bump_snapshot(self, *, expires: datetime | None = None) -> None:
        """Sign a new snapshot (same contents) and a timestamp pointing at it."""
        self._new_snapshot_and_timestamp({Snapshot.type: expires} if expires else None)

    # ----- creation -----------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        keys_dir: Path,
        root_keys_dir: Path | None = None,
        thresholds: dict[str, int] | None = None,
        key_counts: dict[str, int] | None = None,
        expiry: Expiry | None = None,
    ) -> UpdateRepository:
        """Create a repository: new keys for the four top-level roles, version 1 of each.

        Root keys go to ``root_keys_dir`` (default ``keys_dir``), the others to
        ``keys_dir``. ``thresholds`` and ``key_counts`` map a top-level role
        to its threshold (default 1) and its number of keys (default: the threshold).

        :raises ReleaseError: ``path`` already holds metadata, or a threshold exceeds its key count.
        """
        if (path / "metadata").exists():
            raise ReleaseError(f"{path} already holds a repository")
        root_dir = root_keys_dir or keys_dir
        repo = cls(path, key_dirs=[keys_dir, root_dir] if root_dir != keys_dir else [keys_dir], expiry=expiry)
        thresholds = thresholds or {}
        key_counts = key_counts or {}
        for role in [*thresholds, *key_counts]:
            if role not in _TOP_LEVEL:
                raise ReleaseError(f"{role!r} is not a top-level role {list(_TOP_LEVEL)}", role=role)
        plan = {}
        for role in _TOP_LEVEL:
            threshold = thresholds.get(role, 1)
            count = key_counts.get(role, threshold)
            if threshold < 1 or count < threshold:
                raise ReleaseError(f"threshold {threshold} with {count} keys", role=role)
            plan[role] = (threshold, count)
        repo.metadata_dir.mkdir(parents=True)
        repo.targets_dir.mkdir(parents=True, exist_ok=True)
        root = Root(expires=repo._expires(Root.type, None), consistent_snapshot=True)
        for role, (threshold, count) in plan.items():
            for key in cls._generate(count, root_dir if role == Root.type else keys_dir):
                root.add_key(key, role)
            root.roles[role].threshold = threshold
        repo._md[Root.type] = Metadata(root)
        repo._md[Targets.type] = Metadata(
            Targets(expires=repo._expires(Targets.type, None), delegations=Delegations(keys={}, roles={}))
        )
        repo._md[Snapshot.type] = Metadata(Snapshot(expires=repo._expires(Snapshot.type, None)))
        repo._md[Timestamp.type] = Metadata(Timestamp(expires=repo._expires(Timestamp.type, None)))
        for role in (Root.type, Targets.type):
            repo._sign(role, repo._md[role], *repo._keys_of(role))
            repo._write(role, repo._md[role])
        targets_data = (repo.metadata_dir / "1.targets.json").read_bytes()
        repo._md[Snapshot.type].signed.meta["targets.json"] = MetaFile.from_data(1, targets_data, [_HASH])
        repo._sign(Snapshot.type, repo._md[Snapshot.type], *repo._keys_of(Snapshot.type))
        repo._write(Snapshot.type, repo._md[Snapshot.type])
        snapshot_data = (repo.metadata_dir / "1.snapshot.json").read_bytes()
        repo._md[Timestamp.type].signed.snapshot_meta = MetaFile.from_data(1, snapshot_data, [_HASH])
        repo._sign(Timestamp.type, repo._md[Timestamp.type], *repo._keys_of(Timestamp.type))
        repo._write(Timestamp.type, repo._md[Timestamp.type])
        return repo

    # ----- suppliers ----------------------------------------------------

    def add_supplier(self, name: str, *, keys_dir: Path, threshold: int = 1, key_count: int | None = None) -> list[str]:
        """Delegate ``<name>/*/*`` to a new role ``name`` with new keys (written to ``keys_dir``).

        Targets are ``<supplier>/<module>/<file>``; a TUF path pattern's ``*``
        does not cross ``/``, so the delegated pattern is ``<name>/*/*``:
        the supplier can sign files one module directory deep under its own name, nothing else.

        Signs a new targets version (the authority's targets keys are needed),
        version 1 of the supplier's role, and a new snapshot and timestamp.
        Returns the supplier's key ids.

        :raises ReleaseError: a bad name, an existing supplier, or a threshold above the key count.
        """
        if not _SUPPLIER_RE.match(name) or name in _TOP_LEVEL:
            raise ReleaseError(f"{name!r} is not a supplier name (lower case, digits, '-', '_')", role=name)
        if name in self.suppliers:
            raise ReleaseError(f"supplier {name!r} already exists", role=name)
        count = threshold if key_count is None else key_count
        if threshold < 1 or count < threshold:
            raise ReleaseError(f"threshold {threshold} with {count} keys", role=name)
        keys = self._generate(count, keys_dir)
        if keys_dir not in self.key_dirs:
            self.key_dirs = (*self.key_dirs, keys_dir)
        delegations = self._delegations()
        delegations[name] = DelegatedRole(
            name=name, keyids=[], threshold=threshold, terminating=True, paths=[f"{name}/*/*"]
        )
        for key in keys:
            self._targets.add_key(key, name)
        supplier = Metadata(Targets(expires=self._expires(name, None)))
        self._md[name] = supplier
        self.commit([Targets.type, name])
        return [k.keyid for k in keys]

    def publish(
        self,
        supplier: str,
        wheel: Path,
        *,
        expires: dict[str, datetime] | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> str:
        """Publish a module wheel under ``<supplier>/<module>/<file>``, signed by the supplier's role.

        The wheel's manifest (read by the manifest-in-wheel rule) and version go
        into the target's custom metadata as ``{"hardpoint": {"manifest": ..., "version": ...}}``.
        ``evidence``, signed conformance evidence (a DSSE envelope as a JSON object),
        goes there too, inline as ``custom["hardpoint"]["evidence"]``: signed with the
        target, so a platform judges it before downloading the wheel. It must name the
        wheel's sha256 as its subject; whether its signer is trusted is the platform's call.
        Returns the target path.

        :raises ReleaseError: unknown supplier, a wheel breaking the rule, the
            manifest's supplier differing, evidence for another wheel, or missing keys.
        """
        if supplier not in self.suppliers:
            raise ReleaseError(f"no supplier {supplier!r} in this repository", role=supplier)
        module = read_module_wheel(wheel)
        if module.manifest.get("supplier") != supplier:
            raise ReleaseError(
                f"{wheel.name}: manifest supplier {module.manifest.get('supplier')!r} is not {supplier!r}",
                role=supplier,
            )
        path = target_path_for(supplier, module.entry_point, wheel.name)
        data = wheel.read_bytes()
        info = TargetFile.from_data(path, data, [_HASH])
        custom: dict[str, Any] = {"manifest": module.manifest, "version": module.version}
        if evidence is not None:
            _check_evidence_subject(evidence, wheel.name, info.hashes[_HASH], supplier)
            custom["evidence"] = evidence
        info.unrecognized_fields["custom"] = {"hardpoint": custom}
        destination = self.targets_dir / supplier / module.entry_point / f"{info.hashes[_HASH]}.{wheel.name}"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, destination)
        self._md[supplier].signed.targets[path] = info
        try:
            self.commit([supplier], expires=expires)
        except ReleaseError:
            del self._md[supplier].signed.targets[path]
            raise
        return path

    # ----- keys: rotation and revocation ----------------------------------

    def rotate_keys(  # noqa: PLR0912 - top-level and delegated roles share the checks
        self,
        role: str,
        *,
        add: int = 0,
        remove: Sequence[str] = (),
        threshold: int | None = None,
        keys_dir: Path,
    ) -> list[str]:
        """Rotate the keys of a role: add ``add`` new keys (written to ``keys_dir``), remove key ids, set the threshold.

        - ``root``: a new root version, signed by the old keys (old threshold)
          and the new ones (new threshold), as clients require.
        - ``targets``, ``snapshot``, ``timestamp``: a new root version (root
          keys needed), then new metadata signed with the new keys.
        - a supplier: its delegator (``targets``) signs a new version with the
          changed delegation, and the supplier's role is re-signed with its new keys.

        Returns the key ids added.

        :raises ReleaseError: unknown role, a threshold above the key count, or missing keys.
        """
        if role not in _TOP_LEVEL and role not in self.suppliers:
            raise ReleaseError(f"no role {role!r}", role=role)
        current, old_threshold = self._keys_of(role)
        current_ids = [k.keyid for k in current]
        unknown = [k for k in remove if k not in current_ids]
        if unknown:
            raise ReleaseError(f"key ids {unknown} are not keys of {role!r}", role=role)
        new_threshold = old_threshold if threshold is None else threshold
        remaining = len(current_ids) - len(set(remove)) + add
        if new_threshold < 1 or remaining < new_threshold:
            raise ReleaseError(f"threshold {new_threshold} with {remaining} keys", role=role)
        if role == Root.type or role in _TOP_LEVEL:
            self._check_keys(Root.type)
        else:
            self._check_keys(Targets.type)
        new_keys = self._generate(add, keys_dir)
        if add and keys_dir not in self.key_dirs:
            self.key_dirs = (*self.key_dirs, keys_dir)
        if role in _TOP_LEVEL:
            root_md = self._md[Root.type]
            old_keys, old_root_threshold = self._keys_of(Root.type)
            for keyid in remove:
                root_md.signed.revoke_key(keyid, role)
            for key in new_keys:
                root_md.signed.add_key(key, role)
            root_md.signed.roles[role].threshold = new_threshold
            root_md.signed.version += 1
            root_md.signed.expires = self._expires(Root.type, None)
            new_root_keys, new_root_threshold = self._keys_of(Root.type)
            self._sign_root(root_md, old_keys, old_root_threshold, new_root_keys, new_root_threshold)
            self._write(Root.type, root_md)
            if role == Targets.type:
                self.commit([Targets.type])
            elif role != Root.type:
                self._new_snapshot_and_timestamp(None)
        else:
            for keyid in remove:
                self._targets.revoke_key(keyid, role)
            for key in new_keys:
                self._targets.add_key(key, role)
            self._delegations()[role].threshold = new_threshold
            self.commit([Targets.type, role])
        return [k.keyid for k in new_keys]

    def revoke_supplier_key(self, supplier: str, keyid: str) -> None:
        """Remove ``keyid`` from the supplier's delegation: a new targets version; the key signs nothing any more.

        The supplier's role is re-signed with its remaining keys, so a
        revocation that leaves it below its threshold is refused.
        """
        if supplier not in self.suppliers:
            raise ReleaseError(f"no supplier {supplier!r}", role=supplier)
        self.rotate_keys(supplier, remove=[keyid], keys_dir=self.key_dirs[0])

    def _check_keys(self, role: str) -> None:
        keys, threshold = self._keys_of(role)
        available = sum(1 for k in keys if self._signer(k) is not None)
        if available < threshold:
            raise ReleaseError(
                f"found {available} of the {threshold} private keys needed in {[str(d) for d in self.key_dirs]}",
                role=role,
            )

    def _sign_root(
        self,
        md: Metadata[Any],
        old_keys: list[Key],
        old_threshold: int,
        new_keys: list[Key],
        new_threshold: int,
    ) -> None:
        md.signatures.clear()
        signed_old = signed_new = 0
        for key in {k.keyid: k for k in [*old_keys, *new_keys]}.values():
            signer = self._signer(key)
            if signer is None:
                continue
            md.sign(signer, append=True)
            signed_old += key.keyid in {k.keyid for k in old_keys}
            signed_new += key.keyid in {k.keyid for k in new_keys}
        if signed_old < old_threshold or signed_new < new_threshold:
            raise ReleaseError(
                f"a new root needs {old_threshold} signatures of the old keys and {new_threshold} of the new; "
                f"found keys for {signed_old} and {signed_new}",
                role=Root.type,
            )
