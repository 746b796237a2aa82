"""``hardpoint new``: start new projects; ``hardpoint new module NAME`` writes a module project.

The project is complete and installable: ``pyproject.toml`` (setuptools, entry point
in ``hardpoint.modules``, depends on ``hardpoint``), the module in
``src/<package>/__init__.py`` with its manifest file beside it (the manifest-in-wheel
rule of :mod:`hardpoint_runtime.update._wheel`), unit tests on the in-memory bus, a
``platform.toml`` to run it with simulated hardware, and a README. With the default
``--provides`` it publishes ``hardpoint.nav.v1.NavState`` at the contract's rate and
passes the conformance checks as generated; ``docs/supplier-guide.md`` takes it from
here to a certified run and a release.

What is generated is decided by :mod:`hardpoint_runtime._scaffold` (pure); this module
only validates the target directory and writes the files. Import-light like the rest
of the CLI: the interface set (protobuf) is loaded only when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

__all__ = ["new_app"]

new_app = typer.Typer(
    help="Start new projects: a capability module with tests, manifest and platform file.", no_args_is_help=True
)


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"hardpoint: error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(1)


@new_app.callback()
def _new() -> None:
    """Start new projects: a capability module with tests, manifest and platform file."""


def _target(directory: Path) -> Path:
    """The project directory: absent, or an empty directory (never overwrite someone's files)."""
    if directory.exists() and not directory.is_dir():
        _fail(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        _fail(f"{directory} is not empty; refusing to overwrite it (choose another --dir or remove it)")
    return directory


def _check_import_name(package: str) -> None:
    """Refuse a package name an installed distribution already uses: one of the two would shadow the other."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        where = spec.origin or ", ".join(spec.submodule_search_locations or []) or "?"
        _fail(
            f"the Python package name {package!r} is already taken by an installed package ({where}); "
            "choose another name"
        )


def _write(directory: Path, tree: dict[str, str]) -> None:
    try:
        for relative, text in tree.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as e:
        _fail(f"cannot write the project into {directory}: {e.strerror or e}")


@new_app.command()
def module(
    name: Annotated[str, typer.Argument(help="Module name: lower case, digits, '-', '_' (for example acme_nav).")],
    *,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Project directory (default: ./NAME); must be absent or empty.")
    ] = None,
    provides: Annotated[
        list[str] | None,
        typer.Option(
            "--provides", help="Interface the module publishes (repeatable). Default: hardpoint.nav.v1.NavState."
        ),
    ] = None,
    requires: Annotated[
        list[str] | None, typer.Option("--requires", help="Interface the module subscribes to (repeatable).")
    ] = None,
    supplier: Annotated[
        str, typer.Option("--supplier", help="Your supplier name: your signing role in the update repository.")
    ] = "example",
) -> None:
    """Write a new module project NAME: module, manifest, unit tests, platform file, README."""
    import hardpoint
    from hardpoint_runtime._scaffold import DEFAULT_PROVIDES, ScaffoldError, plan_module, render_module

    interfaces = hardpoint.all_interfaces()
    # --requires alone means a pure consumer; no option at all means the default provider.
    chosen = provides if provides is not None else ([] if requires else list(DEFAULT_PROVIDES))
    try:
        plan = plan_module(name, supplier=supplier, provides=chosen, requires=requires or [], interfaces=interfaces)
        tree = render_module(plan, interfaces)
    except ScaffoldError as e:
        _fail(str(e))
    _check_import_name(plan.package)
    target = _target(directory if directory is not None else Path(name))
    _write(target, tree)
    sys.stdout.write(
        f"created module {plan.name!r} (package {plan.package}, distribution {plan.distribution}) in {target}\n"
        f"  provides: {', '.join(plan.provides) or '-'}\n"
        f"  requires: {', '.join(plan.requires) or '-'}\n"
        f"next: cd {target} && python -m pip install --no-build-isolation -e . && python -m pytest -q\n"
    )
