"""Modules installed into the daemon's own store, side by side, are found by version.

The store keeps each version in its own directory (``<state>/modules/<name>/<version>/lib``);
a real wheel is built and installed there with ``installer`` (no pip), twice, as two versions.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from hardpoint_runtime._inspect import inspect_modules
from hardpoint_runtime._plugins import find_modules, pick_version, store_paths


def build_wheel(tmp: Path, version: str) -> Path:
    project = tmp / f"src-{version}"
    pkg = project / "src" / "hp_store_probe"
    pkg.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "hp-store-probe"
        version = "{version}"
        [project.entry-points."hardpoint.modules"]
        store-probe = "hp_store_probe:Probe"
        """)
    )
    (pkg / "__init__.py").write_text(
        textwrap.dedent(f"""
        from hardpoint import Manifest

        class Probe:
            manifest = Manifest(name="store-probe", version="{version}", supplier="tests")
        """)
    )
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(project)],
        check=True,
        capture_output=True,
    )
    return next(out.glob(f"hp_store_probe-{version}-*.whl"))


def install_into_store(wheel: Path, store: Path, version: str) -> Path:
    lib = store / "store-probe" / version / "lib"
    scheme = {k: str(lib) for k in ("purelib", "platlib")}
    scheme.update({k: str(lib.parent / k) for k in ("headers", "scripts", "data")})
    with WheelFile.open(wheel) as source:
        install(source, SchemeDictionaryDestination(scheme, interpreter=sys.executable, script_kind="posix"), {})
    return lib


def test_two_versions_side_by_side_are_found_and_picked_by_constraint(tmp_path: Path) -> None:
    store = tmp_path / "state" / "modules"
    for version in ("1.0.0", "1.1.0"):
        install_into_store(build_wheel(tmp_path, version), store, version)
    paths = store_paths(store)
    assert [Path(p).parent.name for p in paths] == ["1.0.0", "1.1.0"]
    found = find_modules(paths)["store-probe"]
    assert [d.version for d in found] == ["1.1.0", "1.0.0"]  # newest first
    newest, _ = pick_version("store-probe", "", {"store-probe": found})
    older, _ = pick_version("store-probe", "<1.1", {"store-probe": found})
    assert newest is not None
    assert older is not None
    assert (newest.version, older.version) == ("1.1.0", "1.0.0")
    assert Path(older.path).parent.name == "1.0.0"
    none, why = pick_version("store-probe", ">=2", {"store-probe": found})
    assert none is None
    assert "installed: 1.1.0, 1.0.0" in why
    # The manifests are read in a separate process from the store, per version.
    manifests = inspect_modules(paths, names=["store-probe"])
    assert manifests["store-probe==1.0.0"]["manifest"]["version"] == "1.0.0"
    assert manifests["store-probe==1.1.0"]["manifest"]["version"] == "1.1.0"
