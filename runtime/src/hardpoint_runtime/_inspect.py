"""Read the manifests of installed modules in a separate, short-lived process.

The daemon must know every module's provides and requires before it starts
anything, but must not import module code into itself (a module that crashes
on import would take the daemon down). ``python -m hardpoint_runtime._inspect
PATHS_JSON`` loads each entry point of ``hardpoint.modules`` and prints one JSON
object: ``{name: {"manifest": {...}} | {"error": "..."}}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["inspect_modules"]


def _inspect(paths: Sequence[str], names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    from hardpoint_runtime._plugins import find_modules

    out: dict[str, dict[str, Any]] = {}
    for name, dists in find_modules(paths).items():
        if names is not None and name not in names:
            continue  # importing modules the platform does not use only costs start-up time
        for dist in dists:
            out[f"{name}=={dist.version}"] = _load_manifest(name, dist.entry_point, dist.path)
    return out


def _load_manifest(name: str, entry_point: str, path: str) -> dict[str, Any]:
    """Load one version's entry point with only its own store directory in front of ``sys.path``.

    Two versions of a module share package names, so each is imported afresh: the
    package is dropped from ``sys.modules`` before and after.
    """
    import importlib.metadata as md

    import hardpoint

    top = entry_point.split(":", 1)[0].split(".", 1)[0]
    _forget_package(top)
    if path:
        sys.path.insert(0, path)
    try:
        target = md.EntryPoint(name=name, value=entry_point, group="hardpoint.modules").load()
        return {"manifest": hardpoint.ModuleHost.manifest_of(target).model_dump(mode="json")}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        if path:
            sys.path.remove(path)
        _forget_package(top)


def _forget_package(top: str) -> None:
    if top in ("hardpoint", "hardpoint_runtime"):  # never the SDK or the runtime themselves
        return
    for module in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[module]


def inspect_modules(
    paths: Sequence[str] = (), *, names: Iterable[str] | None = None, timeout_s: float = 60.0
) -> dict[str, dict[str, Any]]:
    """Manifests (or load errors) of the installed module versions, keyed ``name==version``.

    :param names: only these modules (all installed ones when ``None``).
    """
    request = {"paths": list(paths), "names": None if names is None else sorted(names)}
    proc = subprocess.run(
        [sys.executable, "-m", "hardpoint_runtime._inspect", json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"module inspection failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    result: dict[str, dict[str, Any]] = json.loads(proc.stdout)
    return result


if __name__ == "__main__":
    import os

    # Module code may print on import: keep the real stdout for the answer only.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    if isinstance(request, list):  # the older form: only the search paths
        request = {"paths": request}
    answer.write(json.dumps(_inspect(request.get("paths", []), request.get("names"))))
    answer.flush()
