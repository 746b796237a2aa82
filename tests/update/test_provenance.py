"""A platform that requires evidence knows exactly what it runs (issue 14: defect 3, acceptance 2; RT-PROV-*).

The module's 1.2 is installed as a real (not editable) distribution in a folder on the daemon's
``sys.path``: what a development install or a stray ``pip install`` leaves importable. The
repository offers 1.0 without evidence.

- With ``require_evidence = true`` the importable 1.2 is refused with its name and why; the module
  waits for its first install; ``update check`` lists the repository's 1.0 as refused by the
  evidence gate (not as available with an empty reason, not as older than 1.2).
- Named in ``[[baseline]]`` with its digest (``hardpoint baseline`` prints it), the same 1.2 runs,
  and the platform's software state (``hardpoint status --json``) gives its origin and digest.
- A baseline entry with another digest does not vouch for it.
- Without ``require_evidence`` it runs, and says it comes from the environment.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from modkit import Domain, allocate_domain, build_module_wheel, publish_repo, wait_for
from typer.testing import CliRunner

from hardpoint_runtime._daemon import Daemon
from hardpoint_runtime.cli import app
from hardpoint_runtime.update._install import install_wheel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("keys")
    made = CliRunner().invoke(app, ["conformance", "keygen", str(work / "keys"), "--json"])
    assert made.exit_code == 0, made.stderr
    return Path(json.loads(made.stdout)["public_key"])


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """beacon 1.2 installed (not editable) in a folder put on sys.path: importable by the daemon."""
    out = tmp_path_factory.getbasetemp() / "modkit-wheels"
    out.mkdir(exist_ok=True)
    wheel = build_module_wheel(out, version="1.2")
    return install_wheel(wheel, tmp_path_factory.mktemp("factory"), "beacon", "1.2")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.getbasetemp() / "modkit-wheels"
    out.mkdir(exist_ok=True)
    return publish_repo(tmp_path_factory.mktemp("release"), [build_module_wheel(out, version="1.0")])


@pytest.fixture
def domain() -> Iterator[Domain]:
    held = allocate_domain()
    yield held
    held.release()


def _digest(lib: Path) -> str:
    record = next(lib.glob("*.dist-info/RECORD"))
    import hashlib

    return "sha256:" + hashlib.sha256(record.read_bytes()).hexdigest()


def _config(root: Path, domain: int, repo: Path, keys: Path, *, require: bool, baseline: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "platform.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [platform]
            name = "prov"
            domain_id = {domain}
            state_dir = "state"

            [update]
            directory = "{repo}"
            trusted_root = "{repo.parent / "root.json"}"
            require_evidence = {"true" if require else "false"}
            conformance_keys = ["{keys}"]

            [[modules]]
            name = "beacon"
            """
        )
        + baseline
    )
    return config


def _baseline(digest: str) -> str:
    return f'\n[[baseline]]\nname = "beacon"\nversion = "1.2"\ndigest = "{digest}"\n'


@pytest.fixture
def on_path(factory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(factory))  # the daemon's own process
    # ... and the processes it starts (the manifest reader, the module's worker)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(factory), os.environ.get("PYTHONPATH")])))
    return factory


def test_an_uncertified_importable_module_is_refused_with_its_name_and_why(
    tmp_path: Path, domain: Domain, repo: Path, keys: Path, on_path: Path
) -> None:
    d = Daemon(_config(tmp_path / "plat", domain.id, repo, keys, require=True))
    try:
        d.start()
        status = d.get_module("beacon")
        assert (status.state, status.pid, status.origin) == ("awaiting_install", 0, ""), status
        assert "module 'beacon' 1.2 is importable from the daemon's environment but not certified" in status.reason
        assert "neither installed through the evidence gate nor named in the platform baseline" in status.reason
        refused = [e for e in d.events() if e.kind == "module_refused" and e.module == "beacon"]
        assert refused, "no module_refused event"
        (offer,) = d.update_check()
        # The repository's 1.0 is what the platform could run: not 'older than 1.2', but refused by the
        # evidence gate, said before anyone applies it (defect 4).
        assert (offer.installed_version, offer.available_version, offer.status) == ("", "1.0", "refused")
        assert "evidence" in offer.reason
    finally:
        d.stop()


def test_a_module_pinned_by_the_baseline_runs_and_the_software_state_says_so(
    tmp_path: Path, domain: Domain, repo: Path, keys: Path, on_path: Path
) -> None:
    digest = _digest(on_path)
    printed = CliRunner().invoke(app, ["baseline", "beacon"])
    assert printed.exit_code == 0, printed.stderr
    assert f'digest = "{digest}"' in printed.stdout  # what the authority pastes into platform.toml
    config = _config(tmp_path / "plat", domain.id, repo, keys, require=True, baseline=_baseline(digest))
    d = Daemon(config)
    try:
        d.start()
        wait_for(lambda: d.get_module("beacon").state == "active", timeout=60, what="beacon 1.2 active")
        status = d.get_module("beacon")
        assert (status.version, status.origin, status.digest) == ("1.2", "baseline", digest)
        socket = d.config.management.socket
        shown = CliRunner().invoke(app, ["--socket", str(socket), "status", "--json"])
        assert shown.exit_code == 0, shown.stderr
        software = json.loads(shown.stdout)["software"]
        assert software == [
            {"module": "beacon", "version": "1.2", "node": "main", "origin": "baseline", "digest": digest}
        ]
    finally:
        d.stop()


def test_a_baseline_entry_with_another_digest_vouches_for_nothing(
    tmp_path: Path, domain: Domain, repo: Path, keys: Path, on_path: Path
) -> None:
    wrong = "sha256:" + "0" * 64
    d = Daemon(_config(tmp_path / "plat", domain.id, repo, keys, require=True, baseline=_baseline(wrong)))
    try:
        d.start()
        status = d.get_module("beacon")
        assert status.state == "awaiting_install"
        assert f"named in the baseline with digest {wrong}, but it is {_digest(on_path)}" in status.reason
    finally:
        d.stop()


def test_without_require_evidence_it_runs_from_the_environment(
    tmp_path: Path, domain: Domain, repo: Path, keys: Path, on_path: Path
) -> None:
    d = Daemon(_config(tmp_path / "plat", domain.id, repo, keys, require=False))
    try:
        d.start()
        wait_for(lambda: d.get_module("beacon").state == "active", timeout=60, what="beacon 1.2 active")
        status = d.get_module("beacon")
        assert (status.version, status.origin, status.digest) == ("1.2", "environment", _digest(on_path))
    finally:
        d.stop()
