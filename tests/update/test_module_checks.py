"""Module checks of ``UpdateClient.fetch_module``: the embedded manifest matches the signed one, no version rollback.

Every case runs over HTTP on 127.0.0.1 and through the directory fetcher (removable media).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tufkit import Published, Wheels, installed, key_files, republish_snapshot, signer_for, write_signed

from hardpoint_runtime.update import UpdateClient, UpdateRepository
from hardpoint_runtime.update._errors import ManifestMismatchError, ModuleRollbackError


@pytest.fixture
def client_for(client_for: Callable[..., UpdateClient]) -> Callable[[UpdateRepository], UpdateClient]:
    """Clients here trust the repository's current root (the conftest fixture, over HTTP and directory)."""
    return lambda repo: client_for(repo, trusted_root=repo.root_bytes())


def test_a_newer_module_is_fetched_and_its_manifest_checked(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path, wheels: Wheels
) -> None:
    newer = published.repo.publish("acme", wheels.v2)
    result = client_for(published.repo).fetch_module(newer, installed_version="1.0")
    assert result.role == "acme"
    assert result.version == "1.1"
    assert result.manifest is not None
    assert result.manifest["version"] == "1.1"
    assert result.path.read_bytes() == wheels.v2.read_bytes()
    assert installed(tmp_path) == {result.path.name}


def test_a_first_install_needs_no_installed_version(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    result = client_for(published.repo).fetch_module(published.target)
    assert result.version == "1.0"
    assert installed(tmp_path) == {result.path.name}


def test_wheel_whose_embedded_manifest_differs_from_the_signed_one(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    # the attacker holds acme's key: it re-signs the target with a manifest claiming more than the wheel provides
    acme = published.repo.role("acme")
    custom = acme.signed.targets[published.target].custom
    custom["hardpoint"]["manifest"]["provides"] = ["hardpoint.blink.v1.Blink", "hardpoint.admin.v1.Shell"]
    acme.signed.version += 1
    write_signed(published.repo.path, "acme", acme, [signer_for(f) for f in key_files(published.supplier_keys)])
    republish_snapshot(published.repo.path, published.keys, ["acme"])

    with pytest.raises(ManifestMismatchError) as caught:
        client_for(published.repo).fetch_module(published.target)
    error = caught.value
    assert error.fields == ("provides",)
    assert error.target == published.target
    assert error.role == "acme"
    assert "provides" in str(error)
    assert error.cause in str(error)
    assert f"role {'acme'!r}" in str(error)
    assert installed(tmp_path) == set(), "a wheel whose manifest was not the signed one must be removed"


def test_signed_version_differing_from_the_wheel_is_a_mismatch(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    acme = published.repo.role("acme")
    acme.signed.targets[published.target].custom["hardpoint"]["version"] = "9.0"
    acme.signed.version += 1
    write_signed(published.repo.path, "acme", acme, [signer_for(f) for f in key_files(published.supplier_keys)])
    republish_snapshot(published.repo.path, published.keys, ["acme"])

    with pytest.raises(ManifestMismatchError) as caught:
        client_for(published.repo).fetch_module(published.target, installed_version="1.0")
    assert caught.value.fields == ("hardpoint.version",)
    assert caught.value.role == "acme"
    assert installed(tmp_path) == set()


def test_module_version_rollback_is_refused(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    with pytest.raises(ModuleRollbackError) as caught:
        client_for(published.repo).fetch_module(published.target, installed_version="1.1")
    error = caught.value
    assert (error.installed_version, error.offered_version) == ("1.1", "1.0")
    assert "1.1" in str(error)
    assert "1.0" in str(error)
    assert error.target == published.target
    assert error.role == "acme"
    assert error.cause in str(error)
    assert installed(tmp_path) == set(), "a rollback is refused before anything is downloaded"


def test_same_version_is_not_reinstalled_unless_asked(
    published: Published, client_for: Callable[..., UpdateClient], tmp_path: Path
) -> None:
    client = client_for(published.repo)
    with pytest.raises(ModuleRollbackError) as caught:
        client.fetch_module(published.target, installed_version="1.0.0")  # PEP 440: 1.0.0 == 1.0
    assert caught.value.offered_version == "1.0"
    assert caught.value.role == "acme"
    assert installed(tmp_path) == set()

    result = client.fetch_module(published.target, installed_version="1.0", allow_reinstall=True)
    assert result.version == "1.0"
    assert installed(tmp_path) == {result.path.name}


def test_installed_version_must_be_pep_440(published: Published, client_for: Callable[..., UpdateClient]) -> None:
    with pytest.raises(ValueError, match="not-a-version"):
        client_for(published.repo).fetch_module(published.target, installed_version="not-a-version")
