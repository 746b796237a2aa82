"""Where a module's code comes from, and whether a platform that requires evidence may run it (RT-PROV-*).

A platform with ``require_evidence = true`` runs a module only when its code is
one the authority vouched for (DESIGN.md, decision 9):

- ``store``: installed through the evidence gate into the daemon's module
  store (``<state_dir>/modules/<name>/<version>/lib``);
- ``baseline``: named in the platform's baseline (``[[baseline]]`` entries of
  the configuration: module, version and distribution digest, the factory
  image), and its files are unchanged.

Anything else that is merely importable (a development install in the
daemon's environment) is ``environment``: run on a platform that does not
require evidence, refused with its name and why on one that does.

The *distribution digest* is the SHA-256 of the distribution's ``RECORD``
file, which lists every installed file with its own SHA-256; the files are
checked against it. An editable install has no such record of its code and
can never be pinned.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Provenance", "admissible", "distribution_digest", "provenance"]


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the daemon knows of one installed module distribution."""

    #: ``store``, ``baseline`` or ``environment``.
    origin: str
    #: ``sha256:<hex>`` of its RECORD; "" when it has none (an editable install).
    digest: str
    #: Why it cannot be pinned or vouched for ("" when nothing is wrong with it).
    problem: str = ""


def _distribution(name: str, version: str, path: str) -> md.Distribution | None:
    dists = md.distributions(path=[path]) if path else md.distributions()
    for dist in dists:
        ours = any(ep.group == "hardpoint.modules" and ep.name == name for ep in dist.entry_points)
        if ours and dist.version == version:
            return dist
    return None


def _editable(dist: md.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        info = json.loads(text)
    except ValueError:
        return False
    return bool(isinstance(info, dict) and info.get("dir_info", {}).get("editable"))


def _changed_files(dist: md.Distribution) -> list[str]:
    """Files whose content differs from the hash RECORD gives them (missing files included)."""
    changed = []
    for f in dist.files or ():
        if f.hash is None or f.hash.mode != "sha256":
            continue
        path = Path(str(f.locate()))
        try:
            data = path.read_bytes()
        except OSError:
            changed.append(str(f))
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if digest != f.hash.value:
            changed.append(str(f))
    return changed


def distribution_digest(dist: md.Distribution) -> tuple[str, str]:
    """(``sha256:<hex>`` of the RECORD, problem); the digest is "" and the problem says why when it has none."""
    if _editable(dist):
        return "", "an editable (development) install: its code is not recorded, so it cannot be pinned"
    record = dist.read_text("RECORD")
    if record is None:
        return "", "no RECORD file: its files are not recorded, so it cannot be pinned"
    changed = _changed_files(dist)
    digest = "sha256:" + hashlib.sha256(record.encode()).hexdigest()
    if changed:
        return digest, f"{len(changed)} file(s) differ from its RECORD, for example {changed[0]}"
    return digest, ""


def provenance(
    name: str, version: str, path: str, *, store: Path, baseline: Mapping[tuple[str, str], str]
) -> Provenance:
    """The origin and digest of module ``name`` ``version`` found on ``path`` ("" for the environment).

    :param store: the daemon's module store; a distribution under it was installed by the daemon.
    :param baseline: (name, version) -> pinned digest, from the configuration's ``[[baseline]]``.
    """
    dist = _distribution(name, version, path)
    if dist is None:
        return Provenance("environment", "", f"module {name!r} {version} is not found on its path any more")
    digest, problem = distribution_digest(dist)
    if path and _inside(Path(path), store):
        return Provenance("store", digest, problem)
    pinned = baseline.get((name, version))
    if pinned is None:
        return Provenance("environment", digest, problem)
    if problem:
        return Provenance("environment", digest, f"named in the baseline, but {problem}")
    if pinned != digest:
        return Provenance("environment", digest, f"named in the baseline with digest {pinned}, but it is {digest}")
    return Provenance("baseline", digest)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def admissible(name: str, version: str, prov: Provenance, *, require_evidence: bool) -> str:
    """Why module ``name`` ``version`` may not run ("" when it may): RT-PROV-002."""
    if not require_evidence:
        return ""
    if prov.origin == "store" and not prov.problem:
        return ""
    if prov.origin == "baseline":
        return ""
    if prov.origin == "store":
        return f"module {name!r} {version} in the module store is not as installed: {prov.problem}"
    why = prov.problem or "neither installed through the evidence gate nor named in the platform baseline"
    return (
        f"module {name!r} {version} is importable from the daemon's environment but not certified: {why}; "
        "this platform requires evidence (install it with 'hardpoint update apply', or pin it in [[baseline]])"
    )


def baseline_map(entries: Iterable[object]) -> dict[tuple[str, str], str]:
    """``[[baseline]]`` entries as (name, version) -> digest."""
    return {(str(e.name), str(e.version)): str(e.digest) for e in entries}  # type: ignore[attr-defined]
