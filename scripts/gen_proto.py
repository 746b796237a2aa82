#!/usr/bin/env python3
"""Generate the Python code of the interface protos into ``sdk/src/``.

Usage (from anywhere; paths are relative to the repository root)::

    scripts/gen-proto            # (re)generate, touching only files that change
    scripts/gen-proto --check    # exit 1 and list stale files if sdk/src is out of date
    .venv/bin/python scripts/gen_proto.py [--check]

Every ``proto/**/*.proto`` is compiled (found by walking ``proto/``, never by
a hand-kept list, so a new or removed proto cannot be missed) with
``python -m grpc_tools.protoc`` and the plugins ``--python_out``,
``--mypy_out`` (typed ``.pyi`` stubs from mypy-protobuf), ``--grpc_python_out``
and ``--mypy_grpc_out``. ``proto/hardpoint/nav/v1/nav.proto`` becomes
``sdk/src/hardpoint/nav/v1/nav_pb2.py`` + ``nav_pb2.pyi``; a proto that
declares a gRPC service also gets ``*_pb2_grpc.py`` + ``*_pb2_grpc.pyi``
(for the others the gRPC plugins emit only a version check, which is
dropped). An empty ``__init__.py`` is written into every
generated package directory below ``sdk/src/hardpoint/``; the hand-written
``sdk/src/hardpoint/__init__.py`` is never touched.

The generated set is computed in a temporary directory and then compared with
``sdk/src/hardpoint/``: files that differ are rewritten, missing ones written,
and generated files with no proto behind them any more (``*_pb2*.py[i]`` and
the empty ``__init__.py`` of purely generated packages) removed. Output is a
pure function of ``proto/`` and the pinned tool versions, so a second run
changes nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "sdk" / "src"
#: The generated code lives in this package; its own __init__.py is hand-written.
PACKAGE = "hardpoint"
PACKAGE_DIR = OUT_DIR / PACKAGE
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
INIT = "__init__.py"


class GenError(Exception):
    """A problem that stops generation; the message says what to do."""


def rel(path: Path) -> str:
    """``path`` relative to the repository root, with forward slashes."""
    return path.relative_to(ROOT).as_posix()


def proto_files() -> list[str]:
    """Every proto under ``proto/``, as include-relative paths, sorted."""
    files = sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))
    if not files:
        raise GenError(f"no .proto files found under {rel(PROTO_DIR)}/")
    outside = [f for f in files if not f.startswith(PACKAGE + "/")]
    if outside:
        raise GenError(
            f"protos outside proto/{PACKAGE}/ would generate code outside the {PACKAGE} package: " + ", ".join(outside)
        )
    return files


def _wkt_include() -> Path:
    """grpc_tools' bundled well-known types (google/protobuf/*.proto)."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise GenError(
            f"grpc_tools is not importable by {sys.executable}; run this script with the project venv "
            "(.venv/bin/python scripts/gen_proto.py, or scripts/gen-proto)"
        )
    return Path(spec.origin).resolve().parent / "_proto"


def _plugin(name: str) -> str:
    """Path of a protoc plugin executable: next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise GenError(f"protoc plugin {name} not found (install mypy-protobuf into the venv)")
    return found


def protoc(*args: str, files: list[str] | None = None) -> None:
    """Run grpc_tools' protoc on ``files`` (default: every proto) with the project include path."""
    files = proto_files() if files is None else files
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--proto_path={_wkt_include()}",
        *args,
        *files,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GenError(f"protoc failed (exit {proc.returncode}):\n{proc.stderr.strip() or proc.stdout.strip()}")


def descriptor_set(*, source_info: bool = True) -> bytes:
    """A serialized FileDescriptorSet of every proto and its imports (with comments if ``source_info``)."""
    with tempfile.TemporaryDirectory(prefix="hp-fds-") as tmp:
        out = Path(tmp) / "set.binpb"
        args = [f"--descriptor_set_out={out}", "--include_imports"]
        if source_info:
            args.append("--include_source_info")
        protoc(*args)
        return out.read_bytes()


def _files_without_services(fds_path: Path) -> set[str]:
    """Generated-module stems ("hardpoint/nav/v1/nav") of the protos that declare no service."""
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(fds_path.read_bytes())
    return {f.name.removesuffix(".proto") for f in fds.file if not f.service}


def generate(out: Path) -> dict[str, bytes]:
    """Generate into ``out`` (an empty directory); return {path relative to sdk/src: content}.

    The gRPC plugins write a ``*_pb2_grpc.py[i]`` for every proto, even one
    without services; those hold nothing but a grpcio version check and are
    left out, so only protos that declare a service get gRPC modules.
    """
    fds_path = out.parent / (out.name + ".binpb")
    protoc(
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        f"--descriptor_set_out={fds_path}",
    )
    no_services = _files_without_services(fds_path)
    result: dict[str, bytes] = {}
    package_dirs: set[Path] = set()
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        relpath = path.relative_to(out)
        if not relpath.name.endswith(GENERATED_SUFFIXES) or relpath.parts[0] != PACKAGE:
            raise GenError(f"protoc produced an unexpected file: {relpath.as_posix()}")
        stem, _, suffix = relpath.as_posix().rpartition("_pb2")
        if suffix.startswith("_grpc") and stem in no_services:
            continue
        result[relpath.as_posix()] = path.read_bytes()
        parent = relpath.parent
        while parent != Path(PACKAGE):
            package_dirs.add(parent)
            parent = parent.parent
    for d in sorted(package_dirs):
        result[(d / INIT).as_posix()] = b""
    return dict(sorted(result.items()))


def _is_generated_dir(d: Path) -> bool:
    """A package directory holding nothing but generated code (and byte-code caches)."""
    for entry in d.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            if not _is_generated_dir(entry):
                return False
        elif entry.name == INIT:
            if entry.stat().st_size != 0:
                return False
        elif not entry.name.endswith(GENERATED_SUFFIXES):
            return False
    return True


def existing_generated() -> set[str]:
    """Generated-looking files currently below sdk/src/hardpoint/ (paths relative to sdk/src)."""
    found: set[str] = set()
    if not PACKAGE_DIR.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(PACKAGE_DIR):
        dirnames[:] = sorted(n for n in dirnames if n != "__pycache__")
        d = Path(dirpath)
        for name in filenames:
            if name.endswith(GENERATED_SUFFIXES):
                found.add((d / name).relative_to(OUT_DIR).as_posix())
        if d != PACKAGE_DIR and INIT in filenames and _is_generated_dir(d):
            found.add((d / INIT).relative_to(OUT_DIR).as_posix())
    return found


def compare(expected: dict[str, bytes]) -> list[tuple[str, str]]:
    """(kind, path) for every generated file that is stale: "changed", "missing" or "extra"."""
    stale: list[tuple[str, str]] = []
    for path in sorted(set(expected) | existing_generated()):
        target = OUT_DIR / path
        have = target.read_bytes() if target.is_file() else None
        want = expected.get(path)
        if want is None:
            stale.append(("extra", path))
        elif have is None:
            stale.append(("missing", path))
        elif have != want:
            stale.append(("changed", path))
    return stale


def _remove_empty_dirs(start: Path) -> None:
    """Remove ``start`` and its parents up to sdk/src/hardpoint while they hold nothing but caches."""
    d = start
    while d != PACKAGE_DIR and PACKAGE_DIR in d.parents and d.is_dir():
        if any(e.name != "__pycache__" for e in d.iterdir()):
            return
        shutil.rmtree(d)
        d = d.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 and list stale generated files if sdk/src is out of date",
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="hp-gen-") as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            expected = generate(out)
        stale = compare(expected)
    except GenError as exc:
        print(f"gen-proto: error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        if stale:
            print("gen-proto --check: generated code in sdk/src is stale; run scripts/gen-proto", file=sys.stderr)
            for kind, path in stale:
                print(f"  {kind:8} sdk/src/{path}", file=sys.stderr)
            return 1
        print(f"gen-proto --check: {len(expected)} generated files up to date")
        return 0

    for kind, path in stale:
        target = OUT_DIR / path
        if kind == "extra":
            target.unlink()
            _remove_empty_dirs(target.parent)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(expected[path])
        print(f"  {'removed' if kind == 'extra' else 'wrote':8} sdk/src/{path}")
    print(f"gen-proto: {len(expected)} generated files, {len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
