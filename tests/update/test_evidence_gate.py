"""The conformance evidence gate (issue 6, acceptance 5) with real wheels, real evidence and real TUF metadata.

The evidence is produced for real: ``hardpoint conformance check --certified --sign-key`` on a
real ``beacon`` wheel (:mod:`modkit`, behaviour ``gnss``: a navigation module that publishes the
platform's GNSS solution, which the reference sensors can use, so it passes every check, the
interoperability matrix included) hosted by the real runtime. Bad variants are made from
that run's own result (re-signed, stripped, pointed at another wheel), the way a careless or
hostile supplier would.

- ``hardpoint release publish --evidence`` puts the envelope inline in the wheel's signed
  target (``custom["hardpoint"]["evidence"]``) and the update client sees it before download;
- the gate (:func:`check_evidence`) judges a target from its signed metadata alone and refuses
  missing, other-digest, other-interface-set, unsigned, untrusted, failing and relaxed evidence,
  naming module and role;
- the daemon with ``[update] require_evidence = true`` refuses such releases and installs the valid one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from modkit import GNSS, SUPPLIER, allocate_domain, build_module_wheel, preinstall, wait_for, worker_pids
from securesystemslib.signer import CryptoSigner, Key
from tufkit import Served
from typer.testing import CliRunner, Result

from hardpoint_runtime._daemon import Daemon
from hardpoint_runtime.cli import app
from hardpoint_runtime.conformance._evidence import (
    check_evidence,
    interface_set_version,
    load_signer,
    load_trusted_keys,
    sign_evidence,
)
from hardpoint_runtime.update import UpdateClient, UpdateRepository
from hardpoint_runtime.update._errors import (
    EvidenceDigestError,
    EvidenceError,
    EvidenceFailingError,
    EvidenceInterfaceSetError,
    EvidenceMissingError,
    EvidenceNotCertifiedError,
    EvidenceUnsignedError,
    EvidenceUntrustedError,
)

#: A certified conformance run (in the session fixture) takes a minute or more on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(600)

runner = CliRunner()


def cli(*args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args)])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@cache
def platform_interfaces() -> str:
    """The interface set of this process's SDK: the daemon under test runs in this process too."""
    digest: str = interface_set_version()["descriptor_set_sha256"]
    return digest


#: ``descriptor_set_sha256`` of another interface set (an older SDK whose NavState differs, say).
OTHER_INTERFACES = hashlib.sha256(b"hardpoint 0.0.1 FileDescriptorSet, NavState without a covariance").hexdigest()


@dataclass(frozen=True)
class Evidence:
    """A real certified, signed conformance run on the beacon 1.0 wheel."""

    wheel: Path
    other_wheel: Path
    #: The signed envelope (JSON object) and the run's JSON result it signs.
    envelope: dict[str, Any]
    result: dict[str, Any]
    private_key: Path
    public_key: Path
    stranger_key: Path

    @property
    def signer(self) -> CryptoSigner:
        return load_signer(self.private_key)

    @property
    def trusted(self) -> list[Key]:
        return load_trusted_keys([self.public_key])


@pytest.fixture(scope="session")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    work = tmp_path_factory.mktemp("evidence-gate")
    wheels = tmp_path_factory.getbasetemp() / "modkit-wheels"  # the build cache the other update tests use
    wheels.mkdir(exist_ok=True)
    wheel = build_module_wheel(wheels, version="2.0", behaviour=GNSS)
    other = build_module_wheel(wheels, version="1.1")
    keys = cli("conformance", "keygen", work / "keys", "--json")
    assert keys.exit_code == 0, keys.stderr
    made = json.loads(keys.stdout)
    stranger = cli("conformance", "keygen", work / "stranger", "--json")
    assert stranger.exit_code == 0, stranger.stderr
    report = work / "report"
    run = cli("conformance", "check", wheel, "--certified", "--report", report, "--sign-key", made["private_key"])
    log = (report / "pytest.log").read_text()[-4000:] if (report / "pytest.log").exists() else ""
    assert run.exit_code == 0, f"the beacon wheel must pass certified conformance:\n{run.stdout}{run.stderr}\n{log}"
    return Evidence(
        wheel=wheel,
        other_wheel=other,
        envelope=json.loads((report / "evidence.dsse.json").read_text()),
        result=json.loads((report / "hardpoint-result.json").read_text()),
        private_key=Path(made["private_key"]),
        public_key=Path(made["public_key"]),
        stranger_key=Path(json.loads(stranger.stdout)["private_key"]),
    )


# ----- the variants: what a careless or hostile supplier could put in the signed target -------------------------


def _resigned(evidence: Evidence, change: Callable[[dict[str, Any]], None], signer: CryptoSigner | None = None) -> Any:
    result = copy.deepcopy(evidence.result)
    change(result)
    return sign_evidence(result, signer or evidence.signer).to_dict()


def _fail_one(result: dict[str, Any]) -> None:
    result["checks"][0]["outcome"] = "failed"
    result["checks"][0]["message"] = "made to fail for the test"
    result["verdict"] = "fail"


def _relaxed(result: dict[str, Any]) -> None:
    result["certified"] = False


def _other_interfaces(result: dict[str, Any]) -> None:
    assert result["interface_set"]["descriptor_set_sha256"] == platform_interfaces()  # the real run's, until now
    result["interface_set"]["descriptor_set_sha256"] = OTHER_INTERFACES


def _other_digest(evidence: Evidence) -> Any:
    other = {"kind": "wheel", "name": evidence.other_wheel.name, "sha256": sha256_of(evidence.other_wheel)}
    return _resigned(evidence, lambda r: r.update(subject=other))


#: The evidence to publish with the beacon 1.0 wheel, per variant (None: no evidence).
VARIANTS: dict[str, Callable[[Evidence], Any]] = {
    "valid": lambda e: e.envelope,
    "missing": lambda e: None,
    "other_digest": _other_digest,
    "other_interfaces": lambda e: _resigned(e, _other_interfaces),
    "unsigned": lambda e: {**e.envelope, "signatures": []},
    "untrusted": lambda e: _resigned(e, lambda r: None, load_signer(e.stranger_key)),
    "failing": lambda e: _resigned(e, _fail_one),
    "relaxed": lambda e: _resigned(e, _relaxed),
}


REFUSALS: dict[str, tuple[type[EvidenceError], str]] = {
    "missing": (EvidenceMissingError, "no signed conformance evidence for the wheel with sha256"),
    "other_digest": (EvidenceDigestError, "the evidence is for hp_mk_beacon-1.1-py3-none-any.whl"),
    "other_interfaces": (
        EvidenceInterfaceSetError,
        f"evidence for interface set {OTHER_INTERFACES[:12]}, platform has ",
    ),
    "unsigned": (EvidenceUnsignedError, "the DSSE envelope carries no signature"),
    "untrusted": (EvidenceUntrustedError, "signed only by untrusted key"),
    "failing": (EvidenceFailingError, "did not pass: test_manifest_valid [SDK-LC-001] failed: made to fail"),
    "relaxed": (EvidenceNotCertifiedError, "the gate needs a certified run"),
}


def publish_variant(root: Path, evidence: Evidence, name: str) -> tuple[UpdateRepository, str]:
    """A repository (supplier acme) with beacon 1.0 published carrying the evidence of variant ``name``.

    ``other_digest`` evidence is refused by the release tooling, so it is written the way a supplier
    bypassing the tooling would: into the target's custom metadata, signed with the supplier's key.
    """
    repo = UpdateRepository.create(root / "repo", keys_dir=root / "keys")
    repo.add_supplier(SUPPLIER, keys_dir=root / "acme-keys")
    envelope = VARIANTS[name](evidence)
    if name == "other_digest":
        target = repo.publish(SUPPLIER, evidence.wheel)
        repo.role(SUPPLIER).signed.targets[target].unrecognized_fields["custom"]["hardpoint"]["evidence"] = envelope
        repo.commit([SUPPLIER])
    else:
        target = repo.publish(SUPPLIER, evidence.wheel, evidence=envelope)
    return repo, target


# ----- release tooling and the client -----------------------------------------------------------------------------


def test_release_publish_evidence_travels_in_the_signed_target(
    evidence: Evidence, tmp_path: Path, serve: Callable[[Path], Served]
) -> None:
    repo, keys, acme = tmp_path / "repo", tmp_path / "keys", tmp_path / "acme"
    assert cli("release", "init", repo, "--keys", keys).exit_code == 0
    assert cli("release", "add-supplier", repo, SUPPLIER, "--keys", keys, "--supplier-keys", acme).exit_code == 0
    evidence_file = tmp_path / "evidence.dsse.json"
    evidence_file.write_text(json.dumps(evidence.envelope))
    published = cli("release", "publish", repo, SUPPLIER, evidence.wheel, "--keys", keys, "--keys", acme,
                    "--evidence", evidence_file, "--json")  # fmt: skip
    assert published.exit_code == 0, (published.stdout, published.stderr)
    out = json.loads(published.stdout)
    assert out["evidence"] is True
    assert out["hashes"]["sha256"] == sha256_of(evidence.wheel)

    served = serve(repo)
    client = UpdateClient(
        tmp_path / "client-metadata",
        metadata_url=f"{served.url}/metadata/",
        target_url=f"{served.url}/targets/",
        download_dir=tmp_path / "downloads",
        trusted_root=(repo / "metadata" / "1.root.json").read_bytes(),
    )
    with client:
        info, role = client.target_info(out["target"])
        assert info.custom["hardpoint"]["evidence"] == evidence.envelope
        # the gate judges the release from the signed metadata alone: nothing under targets/ was fetched
        statement = check_evidence(
            info.custom,
            info.hashes["sha256"],
            evidence.trusted,
            interface_set_sha256=platform_interfaces(),
            target=info.path,
            role=role,
        )
        assert not [path for path in served.requests if path.startswith("/targets/")]
        assert statement.module == "beacon"
        assert statement.subject.sha256 == sha256_of(evidence.wheel)
        fetched = client.fetch_module(out["target"])
        assert fetched.custom["hardpoint"]["evidence"] == evidence.envelope
        assert sha256_of(fetched.path) == info.hashes["sha256"]


def test_release_publish_refuses_evidence_of_another_wheel(evidence: Evidence, tmp_path: Path) -> None:
    repo, keys = tmp_path / "repo", tmp_path / "keys"
    assert cli("release", "init", repo, "--keys", keys).exit_code == 0
    assert cli("release", "add-supplier", repo, SUPPLIER, "--keys", keys).exit_code == 0
    evidence_file = tmp_path / "evidence.dsse.json"
    evidence_file.write_text(json.dumps(evidence.envelope))
    refused = cli("release", "publish", repo, SUPPLIER, evidence.other_wheel, "--keys", keys,
                  "--evidence", evidence_file)  # fmt: skip
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        "hardpoint: error: release refused, role 'acme': hp_mk_beacon-1.1-py3-none-any.whl"
    )
    assert f"the evidence is for {evidence.wheel.name} (sha256 {sha256_of(evidence.wheel)})" in refused.stderr
    assert f"not for this wheel (sha256 {sha256_of(evidence.other_wheel)})" in refused.stderr

    not_envelope = tmp_path / "not-envelope.json"
    not_envelope.write_text('{"hello": "world"}')
    refused = cli("release", "publish", repo, SUPPLIER, evidence.wheel, "--keys", keys, "--evidence", not_envelope)
    assert refused.exit_code == 1
    assert "not a DSSE envelope: it lacks payload, payloadType, signatures" in refused.stderr
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    refused = cli("release", "publish", repo, SUPPLIER, evidence.wheel, "--keys", keys, "--evidence", not_json)
    assert refused.exit_code == 1
    assert f"evidence file {not_json} is not JSON" in refused.stderr

    shown = json.loads(cli("release", "show", repo, "--json").stdout)
    assert shown["suppliers"][SUPPLIER]["targets"] == []  # nothing was published


# ----- the gate on real TUF metadata ----------------------------------------------------------------------------


def _signed_target(repo: UpdateRepository, target: str, tmp_path: Path) -> tuple[Any, str | None]:
    with UpdateClient.from_directory(
        repo.path, tmp_path / "client-metadata", download_dir=tmp_path / "downloads", trusted_root=repo.root_bytes()
    ) as client:
        return client.target_info(target)


def _gate(evidence: Evidence, repo: UpdateRepository, target: str, tmp_path: Path) -> Any:
    """The daemon's gate on ``target`` as the signed metadata carries it, against this platform's interfaces."""
    info, role = _signed_target(repo, target, tmp_path)
    return check_evidence(
        info.custom,
        info.hashes["sha256"],
        evidence.trusted,
        interface_set_sha256=platform_interfaces(),
        target=target,
        role=role,
    )


def test_gate_accepts_valid_evidence_from_the_signed_target(evidence: Evidence, tmp_path: Path) -> None:
    repo, target = publish_variant(tmp_path, evidence, "valid")
    statement = _gate(evidence, repo, target, tmp_path)
    assert statement.signed_by == (evidence.trusted[0].keyid,)
    assert statement.certified is True


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_gate_refuses_before_download(evidence: Evidence, tmp_path: Path, name: str) -> None:
    repo, target = publish_variant(tmp_path, evidence, name)
    kind, says = REFUSALS[name]
    with pytest.raises(kind) as caught:
        _gate(evidence, repo, target, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{kind.cause}, target '{target}', role 'acme': module 'beacon': "), message
    assert says in message
    assert caught.value.module == "beacon"
    assert caught.value.role == "acme"
    assert caught.value.wheel_sha256 == sha256_of(evidence.wheel)
    assert not (tmp_path / "downloads").exists()


# ----- the daemon: [update] require_evidence = true ------------------------------------------------------------

#: Version of beacon published with each kind of evidence; 2.0 carries the real, valid evidence.
DAEMON_RELEASES = {
    "1.1": "missing",
    "1.2": "other_digest",
    "1.3": "unsigned",
    "1.4": "untrusted",
    "1.5": "failing",
    "1.6": "other_interfaces",
}


def _for_wheel(evidence: Evidence, wheel: Path, name: str) -> Any:
    """Evidence of kind ``name`` made for ``wheel``: the real run's result re-bound to that wheel, then spoiled."""
    subject = {"kind": "wheel", "name": wheel.name, "sha256": sha256_of(wheel)}
    if name == "missing":
        return None
    if name == "other_digest":
        return evidence.envelope  # the real evidence of the 2.0 wheel
    if name == "unsigned":
        return {**_resigned(evidence, lambda r: r.update(subject=subject)), "signatures": []}
    if name == "untrusted":
        return _resigned(evidence, lambda r: r.update(subject=subject), load_signer(evidence.stranger_key))
    if name == "failing":
        return _resigned(evidence, lambda r: (r.update(subject=subject), _fail_one(r)))
    if name == "other_interfaces":  # certified against another SDK's contracts, signed by the trusted signer
        return _resigned(evidence, lambda r: (r.update(subject=subject), _other_interfaces(r)))
    raise ValueError(name)


@dataclass(frozen=True)
class GatedRepo:
    path: Path
    root: Path
    v10: Path


@pytest.fixture(scope="module")
def gated_repo(evidence: Evidence, tmp_path_factory: pytest.TempPathFactory) -> GatedRepo:
    """beacon 1.1-1.6 each with bad evidence, 2.0 with the real evidence, signed by the supplier acme."""
    work = tmp_path_factory.mktemp("gated-repo")
    wheels = tmp_path_factory.getbasetemp() / "modkit-wheels"
    repo = UpdateRepository.create(work / "repo", keys_dir=work / "keys")
    repo.add_supplier(SUPPLIER, keys_dir=work / "acme-keys")
    for version, name in DAEMON_RELEASES.items():
        wheel = build_module_wheel(wheels, version=version)
        envelope = _for_wheel(evidence, wheel, name)
        if name == "other_digest":  # the tooling refuses it; a supplier bypassing it signs it all the same
            target = repo.publish(SUPPLIER, wheel)
            repo.role(SUPPLIER).signed.targets[target].unrecognized_fields["custom"]["hardpoint"]["evidence"] = envelope
            repo.commit([SUPPLIER])
        else:
            repo.publish(SUPPLIER, wheel, evidence=envelope)
    repo.publish(SUPPLIER, evidence.wheel, evidence=evidence.envelope)
    (work / "root.json").write_bytes(repo.root_bytes())
    return GatedRepo(work / "repo", work / "root.json", build_module_wheel(wheels, version="1.0"))


def _platform_toml(root: Path, domain_id: int, repo: GatedRepo, public_key: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "platform.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [platform]
            name = "gated"
            domain_id = {domain_id}
            state_dir = "state"

            [supervision]
            heartbeat_deadline_s = 6.0

            [update]
            directory = "{repo.path}"
            trusted_root = "{repo.root}"
            gate_timeout_s = 10.0
            probation_s = 1.0
            require_evidence = true
            conformance_keys = ["{public_key}"]

            # beacon 2.0, the release with valid evidence, reads the GNSS receiver.
            [adapters.gnss]
            driver = "sim-gnss"
            config = {{ scenario = "builtin:patrol", seed = 1 }}

            [[modules]]
            name = "beacon"
            """
        )
    )
    return config


@dataclass
class Gated:
    daemon: Daemon
    domain_id: int
    state: Path


@pytest.fixture(scope="module")
def gated_platform(
    gated_repo: GatedRepo, evidence: Evidence, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gated]:
    """A daemon running beacon 1.0 with the evidence gate on (one per module: the refusals change nothing)."""
    root = tmp_path_factory.mktemp("gated-platform")
    domain = allocate_domain()
    preinstall(root, gated_repo.v10, "1.0")
    daemon = Daemon(_platform_toml(root, domain.id, gated_repo, evidence.public_key))
    try:
        daemon.start()
        wait_for(
            lambda: daemon.get_module("beacon").state == "active" and daemon.get_module("beacon").health == "ok",
            timeout=60,
            what="beacon 1.0 active and healthy",
        )
        yield Gated(daemon, domain.id, root / "state")
    finally:
        daemon.stop()
        domain.release()


def _downloaded(platform: Gated) -> list[str]:
    """Files in the daemon's download directory (``<state_dir>/update/downloads`` by default)."""
    downloads = platform.state / "update" / "downloads"
    return sorted(p.name for p in downloads.iterdir()) if downloads.is_dir() else []


DAEMON_REFUSALS = {
    "1.1": ("EvidenceMissingError", "conformance evidence missing"),
    "1.2": ("EvidenceDigestError", "the evidence is for hp_mk_beacon-2.0-py3-none-any.whl"),
    "1.3": ("EvidenceUnsignedError", "the DSSE envelope carries no signature"),
    "1.4": ("EvidenceUntrustedError", "signed only by untrusted key"),
    "1.5": ("EvidenceFailingError", "test_manifest_valid [SDK-LC-001] failed"),
    "1.6": (
        "EvidenceInterfaceSetError",
        f"evidence for interface set {OTHER_INTERFACES[:12]}, platform has {platform_interfaces()[:12]}",
    ),
}


@pytest.mark.parametrize("version", sorted(DAEMON_REFUSALS), ids=[DAEMON_RELEASES[v] for v in sorted(DAEMON_REFUSALS)])
def test_daemon_refuses_a_release_without_valid_evidence(gated_platform: Gated, version: str) -> None:
    daemon = gated_platform.daemon
    before = daemon.get_module("beacon")
    record = daemon.update_apply("beacon", version)
    cause, says = DAEMON_REFUSALS[version]
    assert (record.outcome, record.cause, record.role) == ("refused", cause, "acme"), record.reason
    assert "module 'beacon'" in record.reason
    assert says in record.reason
    assert f"acme/beacon/hp_mk_beacon-{version}-py3-none-any.whl" in record.reason
    # refused before download: nothing fetched, nothing installed, 1.0 still running in the same process
    assert not [name for name in _downloaded(gated_platform) if f"hp_mk_beacon-{version}-" in name]
    assert not (gated_platform.state / "modules" / "beacon" / version).exists()
    after = daemon.get_module("beacon")
    assert (after.version, after.state, after.pid) == ("1.0", "active", before.pid)
    assert daemon.store.pinned_version("beacon") in (None, "1.0")
    (last,) = daemon.update_history("beacon", limit=1)
    assert (last.id, last.outcome, last.cause) == (record.id, "refused", cause)


def test_daemon_installs_a_release_with_valid_evidence(gated_platform: Gated) -> None:
    daemon = gated_platform.daemon
    record = daemon.update_apply("beacon", "2.0")
    assert (record.outcome, record.cause) == ("committed", ""), record.reason
    status = daemon.get_module("beacon")
    assert (status.version, status.state) == ("2.0", "active")
    assert daemon.store.pinned_version("beacon") == "2.0"
    assert (gated_platform.state / "modules" / "beacon" / "2.0").is_dir()
    # the same place the refusals were checked in does receive a release that passes the gate
    assert [name for name in _downloaded(gated_platform) if "hp_mk_beacon-" in name] == [
        "acme%2Fbeacon%2Fhp_mk_beacon-2.0-py3-none-any.whl"
    ]
    wait_for(lambda: len(worker_pids(gated_platform.domain_id, "beacon")) == 1, timeout=15, what="one beacon process")
