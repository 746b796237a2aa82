"""Helpers for the update tests: real module wheels, and the attacker's signing tools."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata, MetaFile
from tuf.api.serialization.json import JSONSerializer

from hardpoint_runtime.update import UpdateRepository

SUPPLIER = "acme"
MODULE = "blink"


def module_manifest(version: str, *, supplier: str = SUPPLIER, name: str = MODULE) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "supplier": supplier,
        "provides": ["hardpoint.blink.v1.Blink"],
        "description": "a test module released through the update repository",
    }


def build_module_wheel(
    workdir: Path,
    version: str,
    *,
    supplier: str = SUPPLIER,
    name: str = MODULE,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Build a real module wheel with ``python -m build --wheel --no-isolation``."""
    package = f"hp_upd_{name}"
    project = workdir / f"{name}-{version}-src"
    (project / package).mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "hp-upd-{name}"
            version = "{version}"

            [project.entry-points."hardpoint.modules"]
            {name} = "{package}:Module"

            [tool.setuptools]
            packages = ["{package}"]

            [tool.setuptools.package-data]
            {package} = ["hardpoint-manifest.json"]
            """
        )
    )
    (project / package / "__init__.py").write_text(
        textwrap.dedent(
            """\
            import json
            from importlib.resources import files

            MANIFEST = json.loads(files(__package__).joinpath("hardpoint-manifest.json").read_text())


            class Module:
                manifest = MANIFEST
            """
        )
    )
    data = manifest if manifest is not None else module_manifest(version, supplier=supplier, name=name)
    (project / package / "hardpoint-manifest.json").write_text(json.dumps(data))
    out = workdir / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(project)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = out.glob(f"hp_upd_{name}-{version}-*.whl")
    return wheel


@dataclass(frozen=True)
class Wheels:
    v1: Path
    v2: Path


@dataclass
class Published:
    repo: UpdateRepository
    keys: Path
    root_keys: Path
    supplier_keys: Path
    target: str


@dataclass
class Served:
    url: str
    #: Paths requested so far, in order.
    requests: list[str]


# ----- the attacker: signs with keys it holds, using the Metadata API directly ---------------


def signer_for(key_file: Path) -> CryptoSigner:
    private = load_pem_private_key(key_file.read_bytes(), None)
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), scheme="ed25519"))


def key_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pem"))


def write_signed(repo_dir: Path, role: str, md: Metadata[Any], signers: list[CryptoSigner]) -> Path:
    """Sign ``md`` with exactly ``signers`` and write it where the repository layout puts it."""
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
    path = repo_dir / "metadata" / name
    md.to_file(str(path), JSONSerializer(compact=False))
    return path


def republish_snapshot(repo_dir: Path, online_keys: Path, roles: list[str]) -> None:
    """An attacker holding the online snapshot and timestamp keys lists the latest files of ``roles``."""
    current = UpdateRepository(repo_dir, key_dirs=[])
    snapshot = current.role("snapshot")
    for role in roles:
        md = current.role(role)
        data = (repo_dir / "metadata" / f"{md.signed.version}.{role}.json").read_bytes()
        snapshot.signed.meta[f"{role}.json"] = MetaFile.from_data(md.signed.version, data, ["sha256"])
    snapshot.signed.version += 1
    root = current.role("root").signed
    ours = {f.stem: f for f in key_files(online_keys)}
    write_signed(repo_dir, "snapshot", snapshot, [signer_for(ours[k]) for k in root.roles["snapshot"].keyids])
    data = (repo_dir / "metadata" / f"{snapshot.signed.version}.snapshot.json").read_bytes()
    timestamp = current.role("timestamp")
    timestamp.signed.snapshot_meta = MetaFile.from_data(snapshot.signed.version, data, ["sha256"])
    timestamp.signed.version += 1
    write_signed(repo_dir, "timestamp", timestamp, [signer_for(ours[k]) for k in root.roles["timestamp"].keyids])


def installed(tmp_path: Path) -> set[str]:
    """Files in the client download directory (``installs``) of a test."""
    downloads = tmp_path / "installs"
    return {p.name for p in downloads.iterdir()} if downloads.exists() else set()
