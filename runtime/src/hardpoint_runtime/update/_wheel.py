"""Reading a module wheel without installing it: its distribution, entry point and manifest.

**The manifest-in-wheel rule.** A module's entry point object cannot be
imported before the wheel is installed, so a wheel that is released through
the update repository carries its manifest as a JSON file named
``hardpoint-manifest.json`` *in the package that holds the entry point*:

- the wheel has exactly one entry point in the group ``hardpoint.modules``;
- for an entry point ``"pkg.sub:Obj"`` the manifest is ``pkg/sub/hardpoint-manifest.json``
  when ``pkg/sub`` is a package (``pkg/sub/__init__.py``), else
  ``pkg/hardpoint-manifest.json`` (``pkg/sub.py`` is a module inside ``pkg``);
  a top-level single-file module cannot carry one;
- the file is a manifest that ``hardpoint.Manifest.load`` accepts, its
  ``version`` equals the wheel's version (PEP 440 comparison) and its ``name``
  equals the entry point name.

With setuptools: ``[tool.setuptools.package-data] pkg = ["hardpoint-manifest.json"]``.
The module object should build its ``Manifest`` from the same file (for example
``Manifest.load(json.loads(files(__package__).joinpath("hardpoint-manifest.json").read_text()))``)
so the two cannot disagree.
"""

from __future__ import annotations

import configparser
import json
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, Final

from packaging.version import InvalidVersion, Version

from hardpoint import HardpointError, Manifest
from hardpoint_runtime.update._errors import ReleaseError

__all__ = ["MANIFEST_FILE", "MODULE_GROUP", "ModuleWheel", "read_module_wheel"]

#: File name of the manifest inside a module wheel.
MANIFEST_FILE: Final = "hardpoint-manifest.json"
#: Entry-point group of hardpoint modules.
MODULE_GROUP: Final = "hardpoint.modules"


@dataclass(frozen=True, slots=True)
class ModuleWheel:
    """What a module wheel declares, read from the archive."""

    #: The wheel file.
    path: Path
    #: Distribution name from ``METADATA``.
    distribution: str
    #: Distribution version from ``METADATA``.
    version: str
    #: Entry-point name in ``hardpoint.modules`` (the module name).
    entry_point: str
    #: Entry-point value (``pkg.sub:Obj``).
    entry_point_value: str
    #: Archive member holding the manifest.
    manifest_member: str
    #: The manifest as found in the wheel (validated).
    manifest: dict[str, Any]


def _fail(wheel: Path, detail: str) -> ReleaseError:
    return ReleaseError(f"{wheel.name}: {detail}")


def read_module_wheel(wheel: Path) -> ModuleWheel:
    """Read and check a module wheel (see the module docstring for the rule).

    :raises ReleaseError: not a wheel, no or several module entry points, no
        manifest, an invalid manifest, or a manifest whose name or version
        differs from the entry point or the wheel.
    """
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise _fail(wheel, f"not a readable wheel: {e}") from e
    with archive:
        names = set(archive.namelist())
        dist_infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(dist_infos) != 1:
            raise _fail(wheel, f"expected one .dist-info directory, found {sorted(dist_infos)}")
        dist_info = dist_infos.pop()
        try:
            metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        except (KeyError, UnicodeDecodeError) as e:
            raise _fail(wheel, f"unreadable {dist_info}/METADATA: {e}") from e
        distribution, version = metadata.get("Name"), metadata.get("Version")
        if not distribution or not version:
            raise _fail(wheel, "METADATA lacks Name or Version")
        ep_name, ep_value, member = _entry_point_and_member(wheel, archive, dist_info, names)
        try:
            raw = archive.read(member)
        except KeyError:
            raise _fail(wheel, f"no {member} (a module wheel carries its manifest beside its entry point)") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(wheel, f"{member} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise _fail(wheel, f"{member} is not a JSON object")
    try:
        manifest = Manifest.load(data, origin=f"{wheel.name}!{member}")
    except HardpointError as e:
        raise _fail(wheel, str(e)) from e
    try:
        same_version = Version(manifest.version) == Version(version)
    except InvalidVersion as e:
        raise _fail(wheel, f"wheel version {version!r} is not PEP 440") from e
    if not same_version:
        raise _fail(wheel, f"manifest version {manifest.version!r} differs from the wheel version {version!r}")
    if manifest.name != ep_name:
        raise _fail(wheel, f"manifest name {manifest.name!r} differs from the entry point name {ep_name!r}")
    return ModuleWheel(
        path=wheel,
        distribution=distribution,
        version=version,
        entry_point=ep_name,
        entry_point_value=ep_value.strip(),
        manifest_member=member,
        manifest=data,
    )


def _entry_point_and_member(
    wheel: Path, archive: zipfile.ZipFile, dist_info: str, names: set[str]
) -> tuple[str, str, str]:
    """The module entry point (name, value) and the archive member that must hold the manifest."""
    entry_points = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    entry_points.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        entry_points.read_string(archive.read(f"{dist_info}/entry_points.txt").decode())
    except KeyError:
        raise _fail(wheel, f"no entry_points.txt: a module wheel needs an entry point in {MODULE_GROUP!r}") from None
    except (configparser.Error, UnicodeDecodeError) as e:
        raise _fail(wheel, f"unreadable entry_points.txt: {e}") from e
    group = dict(entry_points[MODULE_GROUP]) if entry_points.has_section(MODULE_GROUP) else {}
    if len(group) != 1:
        raise _fail(wheel, f"expected exactly one entry point in {MODULE_GROUP!r}, found {sorted(group)}")
    ((ep_name, ep_value),) = group.items()
    module_path = ep_value.split(":", 1)[0].strip()
    parts = module_path.split(".")
    package = "/".join(parts)
    if f"{package}/__init__.py" in names:
        member = f"{package}/{MANIFEST_FILE}"
    elif len(parts) > 1:
        member = f"{'/'.join(parts[:-1])}/{MANIFEST_FILE}"
    else:
        raise _fail(wheel, f"entry point {ep_value!r} is a top-level module; the manifest needs a package")
    return ep_name, ep_value, member
