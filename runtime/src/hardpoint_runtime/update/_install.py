"""Installing a verified module wheel into the daemon's module store, side by side, atomically.

The store keeps each version in its own directory, ``<state_dir>/modules/<name>/<version>/lib``
(what ``_plugins.store_paths`` searches). A wheel is unpacked with ``installer`` (no pip) into a
hidden sibling ``<name>/.partial-<version>-<pid>``, every file and directory is fsynced, and the
sibling is renamed to ``<version>`` in one ``rename``: a crash leaves either no version directory
or a complete one, and a hidden partial directory that :func:`sweep_partials` removes and the
store search never selects. A version already present is not installed again. Nothing outside
the store is written (no scripts or data outside the version directory).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hardpoint_runtime.update._errors import UpdateError

__all__ = ["PARTIAL_PREFIX", "InstallError", "install_wheel", "installed_lib", "sweep_partials"]

#: Name prefix of an install in progress inside ``<store>/<name>/``.
PARTIAL_PREFIX: Final = ".partial-"


class InstallError(UpdateError):
    """A verified wheel could not be installed into the module store (disk full, bad archive, ...)."""

    cause = "install failed"


def installed_lib(store: Path, name: str, version: str) -> Path:
    """The ``lib`` directory of ``name`` ``version`` in the store (it may not exist)."""
    return store / name / version / "lib"


def install_wheel(
    wheel: Path,
    store: Path,
    name: str,
    version: str,
    *,
    target: str | None = None,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Install ``wheel`` as ``name`` ``version`` into ``store``; return its ``lib`` directory.

    :param target: the TUF target path, for error messages; its last part is the wheel's file name
        (the verified download is stored under a quoted name, which ``installer`` would not accept).
    :param before_rename: called when the partial directory is complete, just before the rename
        (the crash-safety test kills the daemon there).
    :raises InstallError: the wheel could not be unpacked or the store not written; the store is unchanged.
    """
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    final = store / name / version
    if (final / "lib").is_dir():
        return final / "lib"
    if "/" in version or version.startswith(".") or not version:
        raise InstallError(f"module {name!r}: version {version!r} cannot name a store directory", target=target)
    partial = store / name / f"{PARTIAL_PREFIX}{version}-{os.getpid()}"
    try:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        scheme = {k: str(partial / "lib") for k in ("purelib", "platlib")}
        scheme.update({k: str(partial / k) for k in ("headers", "scripts", "data")})
        destination = SchemeDictionaryDestination(scheme, interpreter=sys.executable, script_kind="posix")
        named = partial / "wheel" / (target.rsplit("/", 1)[-1] if target else wheel.name)
        named.parent.mkdir()
        os.symlink(wheel.absolute(), named)
        with WheelFile.open(named) as source:
            install(source, destination, {"INSTALLER": b"hardpointd"})
        shutil.rmtree(named.parent)
        _fsync_tree(partial)
        if before_rename is not None:
            before_rename()
        os.rename(partial, final)
        _fsync_dir(final.parent)
    except Exception as e:  # installer raises many kinds; the store must stay as it was
        shutil.rmtree(partial, ignore_errors=True)
        raise InstallError(
            f"module {name!r} {version}: cannot install {wheel.name} into {store}: {type(e).__name__}: {e}",
            target=target,
        ) from e
    return final / "lib"


def sweep_partials(store: Path) -> list[Path]:
    """Remove installs a crash interrupted (hidden ``.partial-*`` directories); return what was removed."""
    removed: list[Path] = []
    if not store.is_dir():
        return removed
    for partial in store.glob(f"*/{PARTIAL_PREFIX}*"):
        shutil.rmtree(partial, ignore_errors=True)
        removed.append(partial)
    return removed


def _fsync_tree(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
