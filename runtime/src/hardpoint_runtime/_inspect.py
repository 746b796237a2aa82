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
    import importlib.metadata as md

    import hardpoint
    from hardpoint_runtime._plugins import find_modules

    for path in reversed(paths):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    out: dict[str, dict[str, Any]] = {}
    for name, dists in find_modules(paths).items():
        if names is not None and name not in names:
            continue  # importing modules the platform does not use only costs start-up time
        for dist in dists:
            key = f"{name}=={dist.version}"
            try:
                target = md.EntryPoint(name=name, value=dist.entry_point, group="hardpoint.modules").load()
                manifest = hardpoint.ModuleHost.manifest_of(target)
                out[key] = {"manifest": manifest.model_dump(mode="json")}
            except Exception as e:
                out[key] = {"error": f"{type(e).__name__}: {e}"}
    return out


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
