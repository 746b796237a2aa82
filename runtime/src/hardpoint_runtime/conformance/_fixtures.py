"""pytest fixtures for the bus checks: the module under test hosted by the real runtime worker.

A check module imports the fixtures it uses (pytest finds fixtures in the module's namespace)::

    from hardpoint_runtime.conformance._fixtures import hosted_module  # noqa: F401

``hosted_module``
    session-scoped, ACTIVE :class:`~._harness.HostedModule` of ``--hardpoint-module`` (a wheel is
    installed with ``installer`` into a temporary directory and hosted from there), fed its
    required interfaces by the reference modules; stopped at the end of the session.
``hosted_options``
    the keyword arguments for :class:`~._harness.HostedModule`: ``config`` and ``adapters`` from
    ``--hardpoint-config``; checks that need fresh workers make their own HostedModule with them.
``manifest_under_test(config)``
    the manifest at collection time, to parametrize checks by interface.

Without ``--hardpoint-module`` every fixture skips (the plugin stays inert).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hardpoint_runtime.conformance._harness import HarnessError, HostedModule

if TYPE_CHECKING:
    from hardpoint import Manifest

__all__ = ["hosted_module", "hosted_options", "load_options", "manifest_under_test"]


def load_options(path: Path) -> dict[str, Any]:
    """``config`` and ``adapters`` from a ``--hardpoint-config`` TOML file.

    :raises HarnessError: unreadable file, bad TOML, or tables of the wrong shape; names the file and the field.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HarnessError(f"--hardpoint-config {path}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise HarnessError(f"--hardpoint-config {path}: invalid TOML: {e}") from e
    unknown = sorted(set(data) - {"config", "adapters"})
    if unknown:
        raise HarnessError(
            f"--hardpoint-config {path}: unknown table(s) {', '.join(unknown)} (allowed: config, adapters)"
        )
    options: dict[str, Any] = {}
    if "config" in data:
        if not isinstance(data["config"], dict):
            raise HarnessError(f"--hardpoint-config {path}: config must be a table")
        options["config"] = data["config"]
    if "adapters" in data:
        options["adapters"] = _adapters(path, data["adapters"])
    return options


def _adapters(path: Path, raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise HarnessError(f"--hardpoint-config {path}: adapters must be a table of bindings")
    bindings: dict[str, dict[str, Any]] = {}
    for name, binding in raw.items():
        if not isinstance(binding, dict) or not isinstance(binding.get("driver"), str):
            raise HarnessError(f'--hardpoint-config {path}: adapters.{name}: needs driver = "<adapter driver name>"')
        config = binding.get("config", {})
        if not isinstance(config, dict):
            raise HarnessError(f"--hardpoint-config {path}: adapters.{name}.config must be a table")
        extra = sorted(set(binding) - {"driver", "config"})
        if extra:
            raise HarnessError(f"--hardpoint-config {path}: adapters.{name}: unknown key(s) {', '.join(extra)}")
        bindings[name] = {"driver": binding["driver"], "config": config}
    return bindings


_MANIFESTS: dict[str, Any] = {}


def manifest_under_test(config: pytest.Config) -> Manifest | None:
    """The manifest of ``--hardpoint-module`` at collection time (to parametrize checks); None without one.

    A module that cannot be loaded gives None here: the fixtures then fail with the cause.
    """
    module = config.getoption("hardpoint_module", None)
    if module is None:
        return None
    if module not in _MANIFESTS:
        from hardpoint._host import _manifest_of
        from hardpoint.conformance.plugin import _load_module

        try:
            _MANIFESTS[module] = _manifest_of(_load_module(str(module)))
        except BaseException:  # pytest.fail's Failed, ManifestError, the supplier's import errors
            _MANIFESTS[module] = None
    manifest: Manifest | None = _MANIFESTS[module]
    return manifest


def _module_under_test(config: pytest.Config) -> str:
    module = config.getoption("hardpoint_module", None)
    if module is None:
        pytest.skip("no module under test: pass --hardpoint-module")
    return str(module)


@pytest.fixture(scope="session")
def hosted_options(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """``config`` and ``adapters`` keyword arguments for :class:`HostedModule` (from ``--hardpoint-config``)."""
    _module_under_test(request.config)
    path = request.config.getoption("hardpoint_config", None)
    if path is None:
        return {}
    try:
        return load_options(Path(path))
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def hosted_module(request: pytest.FixtureRequest, hosted_options: Mapping[str, Any]) -> Iterator[HostedModule]:
    """The module under test, ACTIVE in a real worker on a private DDS domain, with its feeders."""
    module = _module_under_test(request.config)
    try:
        host = HostedModule(module, **hosted_options)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        host.probe  # noqa: B018 - the probe joins before the module publishes anything
        host.activate()
    except HarnessError as e:
        host.close()
        pytest.fail(str(e), pytrace=False)
    yield host
    host.close()
