"""The update client: python-tuf's ``ngclient.Updater``, with errors that name cause, target and role.

Everything is verified by python-tuf (signatures and thresholds, versions,
expiry, lengths and hashes, delegations); this module only chooses the fetcher,
places verified files and translates python-tuf's exceptions into the
:class:`UpdateError` family. A target is written to the download directory
only after it has been verified, and atomically (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from packaging.version import InvalidVersion, Version
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from hardpoint_runtime.update._errors import (
    FetchError,
    IntegrityError,
    ManifestMismatchError,
    MetadataExpiredError,
    MetadataVerificationError,
    ModuleRollbackError,
    RollbackError,
    TargetNotFoundError,
    UpdateError,
)
from hardpoint_runtime.update._fetchers import DirectoryFetcher, RecordingFetcher
from hardpoint_runtime.update._wheel import read_module_wheel

__all__ = ["ModuleRelease", "UpdateClient", "VerifiedTarget", "initialize_trust"]

_VERSIONED = re.compile(r"^\d+\.")
#: Last part of the path looked up to load a supplier role (no target is ever named so).
MODULE_PROBE = ".hardpoint-list-probe"


@dataclass(frozen=True, slots=True)
class VerifiedTarget:
    """A target downloaded and verified against the repository's signed metadata."""

    #: TUF target path (``acme/nav/hardpoint_mod_nav-1.0-py3-none-any.whl``).
    name: str
    #: The verified local file.
    path: Path
    #: The delegated role that lists (signed) the target, as far as it could be found.
    role: str | None
    length: int
    hashes: dict[str, str]
    #: The target's custom metadata, as signed.
    custom: dict[str, Any] = field(default_factory=dict)
    #: True when a verified copy was already in the download directory and nothing was fetched.
    cached: bool = False

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The module manifest from ``custom["hardpoint"]["manifest"]``, or None."""
        hardpoint = self.custom.get("hardpoint")
        manifest = hardpoint.get("manifest") if isinstance(hardpoint, dict) else None
        return manifest if isinstance(manifest, dict) else None

    @property
    def version(self) -> str | None:
        """The module version from ``custom["hardpoint"]["version"]``, or None."""
        hardpoint = self.custom.get("hardpoint")
        version = hardpoint.get("version") if isinstance(hardpoint, dict) else None
        return version if isinstance(version, str) else None


@dataclass(frozen=True, slots=True)
class ModuleRelease:
    """A module wheel that a trusted targets role lists (metadata only: nothing downloaded)."""

    #: TUF target path, ``<supplier>/<module>/<wheel file>``.
    target: str
    #: The delegated role that lists it (the supplier).
    role: str
    #: ``custom["hardpoint"]["version"]``.
    version: str
    length: int
    #: The signed sha256 of the wheel ("" when the target declares none).
    sha256: str
    #: ``custom["hardpoint"]["manifest"]``.
    manifest: dict[str, Any]
    #: The whole signed custom metadata (evidence travels here).
    custom: dict[str, Any]


def _release_key(release: ModuleRelease) -> Version:
    try:
        return Version(release.version)
    except InvalidVersion:
        return Version("0")


def initialize_trust(metadata_dir: Path, trusted_root: bytes) -> None:
    """Start trusting a repository: store its root as ``root.json`` in ``metadata_dir``; no request is made."""
    metadata_dir.mkdir(parents=True, exist_ok=True)
    final = metadata_dir / "root.json"
    with tempfile.NamedTemporaryFile(dir=metadata_dir, delete=False, prefix=".root-") as out:
        out.write(trusted_root)
    if final.is_symlink():
        final.unlink()
    os.replace(out.name, final)


def _role_from_url(url: str | None) -> str | None:
    """``.../metadata/3.snapshot.json`` → ``snapshot``; None for a non-metadata URL."""
    if not url:
        return None
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not name.endswith(".json"):
        return None
    return _VERSIONED.sub("", name[: -len(".json")], count=1)


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


class UpdateClient:
    """Fetch verified targets from one TUF repository.

    One client is one python-tuf ``Updater``: its first use refreshes the
    top-level metadata once; targets are then looked up and downloaded in
    order against that consistent state.

    :param metadata_dir: trusted metadata, kept between runs (``root.json``, ``timestamp.json``, ...).
    :param metadata_url: base URL of the repository's metadata (``http://…/metadata/`` or ``file://…``).
    :param target_url: base URL of its targets.
    :param download_dir: where verified targets are placed.
    :param fetcher: python-tuf fetcher; None for HTTP(S) through python-tuf's ``Urllib3Fetcher``.
    :param trusted_root: root bytes to start from; None trusts ``metadata_dir/root.json``.
    """

    def __init__(
        self,
        metadata_dir: Path,
        *,
        metadata_url: str,
        target_url: str | None,
        download_dir: Path | None,
        fetcher: FetcherInterface | None = None,
        trusted_root: bytes | None = None,
        config: UpdaterConfig | None = None,
    ) -> None:
        self.metadata_dir = metadata_dir
        self.download_dir = download_dir
        self._owned_fetcher: FetcherInterface | None = None
        if fetcher is None:
            from tuf.ngclient import Urllib3Fetcher

            fetcher = self._owned_fetcher = Urllib3Fetcher(app_user_agent="hardpoint-update")
        self._fetcher = RecordingFetcher(fetcher)
        self._refreshed = False
        try:
            self._updater = Updater(
                str(metadata_dir),
                metadata_url,
                str(download_dir) if download_dir is not None else None,
                target_url,
                self._fetcher,
                config,
                bootstrap=trusted_root,
            )
        except FileNotFoundError as e:
            raise UpdateError(f"no trusted root in {metadata_dir}: initialize first", role="root") from e
        except (tuf_errors.RepositoryError, OSError, ValueError) as e:
            raise self._translate(e, target=None, role="root") from e

    @classmethod
    def from_directory(
        cls,
        media: Path,
        metadata_dir: Path,
        *,
        download_dir: Path | None,
        trusted_root: bytes | None = None,
    ) -> UpdateClient:
        """A client for a repository copied to a directory (removable media).

        The directory holds ``metadata/`` and ``targets/`` as the repository does.
        """
        fetcher = DirectoryFetcher(media)
        return cls(
            metadata_dir,
            metadata_url=fetcher.url_for("metadata"),
            target_url=fetcher.url_for("targets"),
            download_dir=download_dir,
            fetcher=fetcher,
            trusted_root=trusted_root,
        )

    # ----- public API ---------------------------------------------------

    def close(self) -> None:
        """Close the HTTP connections this client opened (a no-op for a directory or a caller's fetcher)."""
        # python-tuf's Urllib3Fetcher has no close(); its pools are reached through a private attribute,
        # looked up defensively so a change in python-tuf only leaves sockets to the garbage collector
        self._fetcher.close_streams()
        environment = getattr(self._owned_fetcher, "_proxy_env", None)
        for manager in getattr(environment, "_pool_managers", {}).values():
            manager.clear()

    def __enter__(self) -> UpdateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """Update the top-level metadata (root, timestamp, snapshot, targets); once per client.

        :raises UpdateError: a subclass naming the cause and the role.
        """
        if self._refreshed:
            return
        try:
            self._updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as e:
            raise self._translate(e, target=None, role=None) from e
        finally:
            self._fetcher.close_streams()
        self._refreshed = True

    def target_info(self, name: str) -> tuple[TargetFile, str | None]:
        """The signed information on target ``name`` and the role that lists it (delegations walked).

        :raises TargetNotFoundError: no trusted role lists ``name`` within its delegated paths.
        :raises UpdateError: refreshing or loading delegated metadata failed.
        """
        self.refresh()
        try:
            info = self._updater.get_targetinfo(name)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as e:
            raise self._translate(e, target=name, role=None) from e
        finally:
            self._fetcher.close_streams()
        if info is None:
            roles = self._delegated_roles(name)
            if roles:
                detail = f"delegated to {', '.join(repr(r) for r in roles)}, which does not list it"
            else:
                detail = "no role is delegated this path, so no key may sign it"
            raise TargetNotFoundError(detail, target=name, role=roles[-1] if roles else None)
        return info, self._signing_role(name)

    def module_releases(self, module: str) -> list[ModuleRelease]:
        """Every release of ``module`` that a supplier role lists under its own path, newest first.

        Each supplier role delegated by the top-level targets role is loaded (and verified by
        python-tuf) by looking up a path under ``<role>/<module>/``; a role that cannot be
        loaded is skipped here, and any download still goes through :meth:`fetch_module`,
        which verifies again. Targets without a signed version and manifest are left out.

        :raises UpdateError: the top-level metadata cannot be refreshed.
        """
        self.refresh()
        top = self._cached("targets")
        delegations = top.delegations if top is not None else None
        roles = [r.name for r in delegations.roles.values()] if delegations and delegations.roles else []
        found = []
        for role in roles:
            # The lookup loads the role's metadata; the probe path itself is never listed.
            with contextlib.suppress(UpdateError):
                self.target_info(f"{role}/{module}/{MODULE_PROBE}")
            signed = self._cached(role)
            if signed is None:
                continue
            for path, info in signed.targets.items():
                release = self._release(role, module, path, info)
                if release is not None:
                    found.append(release)
        return sorted(found, key=_release_key, reverse=True)

    @staticmethod
    def _release(role: str, module: str, path: str, info: TargetFile) -> ModuleRelease | None:
        if not path.startswith(f"{role}/{module}/"):
            return None
        custom = info.custom if isinstance(info.custom, dict) else {}
        raw = custom.get("hardpoint")
        hardpoint: dict[str, Any] = raw if isinstance(raw, dict) else {}
        version, manifest = hardpoint.get("version"), hardpoint.get("manifest")
        if not isinstance(version, str) or not isinstance(manifest, dict):
            return None
        sha256 = info.hashes.get("sha256", "")
        return ModuleRelease(path, role, version, info.length, sha256, manifest, custom)

    def fetch_target(self, name: str) -> VerifiedTarget:
        """Download target ``name`` into the download directory, verified, and return where it is.

        A verified copy already in the directory (matching length and hashes) is
        not downloaded again.

        :raises UpdateError: a subclass naming the cause, the target and the role; nothing is written then.
        """
        if self.download_dir is None:
            raise UpdateError("the client has no download directory", target=name)
        info, role = self.target_info(name)
        return self._download(name, info, role)

    def fetch_module(
        self, name: str, *, installed_version: str | None = None, allow_reinstall: bool = False
    ) -> VerifiedTarget:
        """Fetch module wheel ``name`` as :meth:`fetch_target` does, then check it is the module that was signed.

        Before the download, with ``installed_version`` given, a target whose signed
        version (``custom["hardpoint"]["version"]``) is lower than the installed one,
        or equal to it unless ``allow_reinstall``, is refused (PEP 440 comparison).
        After it, the manifest embedded in the wheel (:func:`read_module_wheel`) must
        equal the signed ``custom["hardpoint"]["manifest"]``, and the wheel's version
        the signed version; otherwise the downloaded file is removed.

        :raises ModuleRollbackError: the offered version is not newer than ``installed_version``; nothing fetched.
        :raises ManifestMismatchError: the embedded and signed manifests differ, or either is missing.
        :raises UpdateError: any refusal of :meth:`fetch_target`; nothing is written then.
        :raises ValueError: ``installed_version`` is not a PEP 440 version.
        """
        if self.download_dir is None:
            raise UpdateError("the client has no download directory", target=name)
        installed = Version(installed_version) if installed_version is not None else None
        info, role = self.target_info(name)
        if installed is not None:
            self._check_not_older(name, info, role, installed, allow_reinstall=allow_reinstall)
        result = self._download(name, info, role)
        try:
            self._check_manifest(result)
        except ManifestMismatchError:
            result.path.unlink(missing_ok=True)
            raise
        return result

    # ----- downloading and module checks -----------------------------------

    def _download(self, name: str, info: TargetFile, role: str | None) -> VerifiedTarget:
        assert self.download_dir is not None
        final = self.download_dir / quote(name, "")
        custom = info.custom if isinstance(info.custom, dict) else {}
        result = VerifiedTarget(
            name=name, path=final, role=role, length=info.length, hashes=dict(info.hashes), custom=custom
        )
        if self._updater.find_cached_target(info, str(final)) is not None:
            return replace(result, cached=True)
        self.download_dir.mkdir(parents=True, exist_ok=True)
        temp = self.download_dir / f".partial-{os.getpid()}-{quote(name, '')}"
        try:
            self._updater.download_target(info, str(temp))
            os.replace(temp, final)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as e:
            raise self._translate(e, target=name, role=role, downloading_target=True) from e
        finally:
            self._fetcher.close_streams()
            temp.unlink(missing_ok=True)
        return result

    @staticmethod
    def _check_not_older(
        name: str, info: TargetFile, role: str | None, installed: Version, *, allow_reinstall: bool
    ) -> None:
        hardpoint = info.custom.get("hardpoint") if isinstance(info.custom, dict) else None
        signed = hardpoint.get("version") if isinstance(hardpoint, dict) else None
        if not isinstance(signed, str):
            raise ManifestMismatchError(
                "the signed target declares no module version", fields=("hardpoint.version",), target=name, role=role
            )
        try:
            offered = Version(signed)
        except InvalidVersion as e:
            raise ManifestMismatchError(
                f"the signed module version {signed!r} is not PEP 440",
                fields=("hardpoint.version",),
                target=name,
                role=role,
            ) from e
        if offered < installed or (offered == installed and not allow_reinstall):
            relation = "older than" if offered < installed else "the same as"
            raise ModuleRollbackError(
                f"offered version {signed} is {relation} installed version {installed}",
                installed_version=str(installed),
                offered_version=signed,
                target=name,
                role=role,
            )

    @staticmethod
    def _check_manifest(result: VerifiedTarget) -> None:
        signed = result.manifest
        if signed is None:
            raise ManifestMismatchError(
                "the signed target carries no module manifest",
                fields=("manifest",),
                target=result.name,
                role=result.role,
            )
        try:
            wheel = read_module_wheel(result.path)
        except UpdateError as e:
            raise ManifestMismatchError(
                f"the wheel carries no valid manifest: {e.detail}",
                fields=("manifest",),
                target=result.name,
                role=result.role,
            ) from e
        embedded = wheel.manifest
        fields = [key for key in sorted(signed.keys() | embedded.keys()) if signed.get(key) != embedded.get(key)]
        if result.version is None or not _same_version(result.version, wheel.version):
            fields.append("hardpoint.version")
        if fields:
            differences = "; ".join(
                f"hardpoint.version: signed {result.version!r}, wheel {wheel.version!r}"
                if key == "hardpoint.version"
                else f"{key}: signed {signed.get(key)!r}, wheel {embedded.get(key)!r}"
                for key in fields
            )
            raise ManifestMismatchError(
                f"the wheel's manifest differs from the signed one in {', '.join(fields)} ({differences})",
                fields=tuple(fields),
                target=result.name,
                role=result.role,
            )

    # ----- roles, for error messages --------------------------------------

    def _cached(self, role: str) -> Targets | None:
        try:
            md = Metadata[Targets].from_file(str(self.metadata_dir / f"{quote(role, '')}.json"))
        except (OSError, tuf_errors.RepositoryError, ValueError):
            return None
        return md.signed if isinstance(md.signed, Targets) else None

    def _walk(self, name: str) -> tuple[str | None, list[str]]:
        """Pre-order walk of the trusted (persisted) targets roles: the role listing ``name`` and every role visited."""
        stack, visited = ["targets"], []
        while stack:
            role = stack.pop()
            if role in visited:
                continue
            visited.append(role)
            signed = self._cached(role)
            if signed is None:
                continue
            if name in signed.targets:
                return role, visited
            if signed.delegations is not None:
                children = []
                for child, terminating in signed.delegations.get_roles_for_target(name):
                    children.append(child)
                    if terminating:
                        break
                stack.extend(reversed(children))
        return None, visited

    def _signing_role(self, name: str) -> str | None:
        return self._walk(name)[0]

    def _delegated_roles(self, name: str) -> list[str]:
        return [r for r in self._walk(name)[1] if r != "targets"]

    # ----- exceptions -----------------------------------------------------

    def _translate(  # noqa: PLR0911 - one exit per kind of python-tuf failure
        self,
        error: Exception,
        *,
        target: str | None,
        role: str | None,
        downloading_target: bool = False,
    ) -> UpdateError:
        """Map a python-tuf (or OS) exception to the UpdateError family, naming the role."""
        message = str(error) or type(error).__name__
        url_role = None if downloading_target else _role_from_url(self._fetcher.last_url)
        named = role or url_role
        if isinstance(error, tuf_errors.ExpiredMetadataError):
            match = re.match(r"(?:Final |New )?(\S+?)(?:\.json)? is expired", message)
            return MetadataExpiredError(message, target=target, role=match.group(1) if match else named)
        if isinstance(error, tuf_errors.BadVersionNumberError):
            return self._version_error(message, target=target, role=named)
        if isinstance(error, tuf_errors.UnsignedMetadataError):
            match = re.match(r"(\S+) was signed by", message)
            return MetadataVerificationError(message, target=target, role=match.group(1) if match else named)
        if isinstance(error, tuf_errors.LengthOrHashMismatchError | tuf_errors.DownloadLengthMismatchError):
            what = "target" if downloading_target else "metadata"
            return IntegrityError(
                f"{what} differs from its signed length or hashes: {message}", target=target, role=named
            )
        if isinstance(error, tuf_errors.DownloadError):
            where = self._fetcher.last_url or "the repository"
            return FetchError(f"{where}: {message}", target=target, role=named)
        if isinstance(error, tuf_errors.RepositoryError):
            return MetadataVerificationError(message, target=target, role=named)
        return UpdateError(f"{type(error).__name__}: {message}", target=target, role=named)

    @staticmethod
    def _version_error(message: str, *, target: str | None, role: str | None) -> UpdateError:
        # python-tuf's messages (trusted_metadata_set.py), by the check that failed:
        #   "New timestamp version 2 must be >= 3"             timestamp rolled back
        #   "New snapshot version must be >= 3, got version 2" timestamp points at an older snapshot
        #   "Expected targets.json version 1, got 2."          snapshot lists an older targets role
        #   "Expected snapshot version 3, got 2"               snapshot differs from the timestamp's (mix-and-match)
        #   "Expected acme v3, got v2."                        targets role differs from the snapshot's
        #   "Expected root version 3 instead got version 4"    root versions out of sequence
        if match := re.match(r"New (\S+) version (?:\d+ )?must be >=", message):
            return RollbackError(message, target=target, role=match.group(1))
        if match := re.match(r"Expected (\S+)\.json version", message):
            return RollbackError(message, target=target, role=match.group(1))
        if match := re.match(r"Expected (\S+?)(?: version| v\d)", message):
            return MetadataVerificationError(
                f"version differs from the one its delegator signed (mix-and-match): {message}",
                target=target,
                role=match.group(1),
            )
        return MetadataVerificationError(message, target=target, role=role)
