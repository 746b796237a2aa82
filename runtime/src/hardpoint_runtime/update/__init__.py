"""Signed software updates: a TUF repository of module wheels and the client that verifies them.

- :class:`UpdateRepository` (release tooling): create a repository, delegate a
  path to each supplier, publish module wheels, rotate and revoke keys.
- :class:`UpdateClient`: python-tuf's ``Updater`` over HTTP or a directory
  (:class:`DirectoryFetcher`), returning :class:`VerifiedTarget` files.
- :func:`read_module_wheel`: a module wheel's entry point and embedded
  manifest (the manifest-in-wheel rule is documented in ``_wheel.py``).
- Daemon side: :func:`install_wheel` (atomic, side by side in the module
  store), :func:`precheck` (whole-platform check of a candidate manifest),
  the journal steps :data:`STEPS` and the recovery rule :func:`recover`.
- Errors: :class:`UpdateError` and its subclasses, each naming the cause,
  the target and the TUF role.
"""

from hardpoint_runtime.update._client import ModuleRelease, UpdateClient, VerifiedTarget, initialize_trust
from hardpoint_runtime.update._errors import (
    FetchError,
    IntegrityError,
    ManifestMismatchError,
    MetadataExpiredError,
    MetadataVerificationError,
    ModuleRollbackError,
    ReleaseError,
    RollbackError,
    TargetNotFoundError,
    UpdateError,
)
from hardpoint_runtime.update._fetchers import DirectoryFetcher
from hardpoint_runtime.update._install import InstallError, install_wheel, sweep_partials
from hardpoint_runtime.update._journal import STEPS, JournalEntry, Recovery, recover
from hardpoint_runtime.update._precheck import Breakage, UnmetRequirementError, breakages, precheck
from hardpoint_runtime.update._repository import Expiry, UpdateRepository, target_path_for
from hardpoint_runtime.update._wheel import MANIFEST_FILE, MODULE_GROUP, ModuleWheel, read_module_wheel

__all__ = [
    "UpdateRepository",
    "Expiry",
    "target_path_for",
    "UpdateClient",
    "ModuleRelease",
    "VerifiedTarget",
    "initialize_trust",
    "DirectoryFetcher",
    "read_module_wheel",
    "ModuleWheel",
    "MANIFEST_FILE",
    "MODULE_GROUP",
    "UpdateError",
    "MetadataVerificationError",
    "MetadataExpiredError",
    "RollbackError",
    "TargetNotFoundError",
    "IntegrityError",
    "FetchError",
    "ReleaseError",
    "ManifestMismatchError",
    "ModuleRollbackError",
    "InstallError",
    "UnmetRequirementError",
    "install_wheel",
    "sweep_partials",
    "STEPS",
    "JournalEntry",
    "Recovery",
    "recover",
    "Breakage",
    "breakages",
    "precheck",
]
