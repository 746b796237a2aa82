"""The conformance evidence gate (issue 6, acceptance 5) with real wheels, real evidence and real TUF metadata.

The evidence is produced for real: ``hardpoint conformance check --certified --sign-key`` on a
real ``beacon`` wheel (:mod:`modkit`) hosted by the real runtime. Bad variants are made from
that run's own result (re-signed, stripped, pointed at another wheel), the way a careless or
hostile supplier would.

- ``hardpoint release publish --evidence`` puts the envelope inline in the wheel's signed
  target (``custom["hardpoint"]["evidence"]``) and the update client sees it before download;
- the gate (:func:`check_evidence`) judges a target from its signed metadata alone and refuses
  missing, other-digest, unsigned, untrusted, failing and relaxed evidence, naming module and role;
- the daemon with ``[update] require_evidence = true`` refuses such releases and installs the valid one.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modkit import SUPPLIER, build_module_wheel
from securesystemslib.signer import CryptoSigner, Key
from tufkit import Served
from typer.testing import CliRunner, Result

from hardpoint_runtime.cli import app
from hardpoint_runtime.conformance._evidence import check_evidence, load_signer, load_trusted_keys, sign_evidence
from hardpoint_runtime.update import UpdateClient, UpdateRepository
from hardpoint_runtime.update._errors import (
    EvidenceDigestError,
    EvidenceError,
    EvidenceFailingError,
    EvidenceMissingError,
    EvidenceNotCertifiedError,
    EvidenceUnsignedError,
    EvidenceUntrustedError,
)

runner = CliRunner()


def cli(*args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args)])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    wheel = build_module_wheel(work / "wheels", version="1.0")
    other = build_module_wheel(work / "wheels", version="1.1")
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


def _other_digest(evidence: Evidence) -> Any:
    other = {"kind": "wheel", "name": evidence.other_wheel.name, "sha256": sha256_of(evidence.other_wheel)}
    return _resigned(evidence, lambda r: r.update(subject=other))


#: The evidence to publish with the beacon 1.0 wheel, per variant (None: no evidence).
VARIANTS: dict[str, Callable[[Evidence], Any]] = {
    "valid": lambda e: e.envelope,
    "missing": lambda e: None,
    "other_digest": _other_digest,
    "unsigned": lambda e: {**e.envelope, "signatures": []},
    "untrusted": lambda e: _resigned(e, lambda r: None, load_signer(e.stranger_key)),
    "failing": lambda e: _resigned(e, _fail_one),
    "relaxed": lambda e: _resigned(e, _relaxed),
}


REFUSALS: dict[str, tuple[type[EvidenceError], str]] = {
    "missing": (EvidenceMissingError, "no signed conformance evidence for the wheel with sha256"),
    "other_digest": (EvidenceDigestError, "the evidence is for hp_mk_beacon-1.1-py3-none-any.whl"),
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
        statement = check_evidence(info.custom, info.hashes["sha256"], evidence.trusted, target=info.path, role=role)
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


def test_gate_accepts_valid_evidence_from_the_signed_target(evidence: Evidence, tmp_path: Path) -> None:
    repo, target = publish_variant(tmp_path, evidence, "valid")
    info, role = _signed_target(repo, target, tmp_path)
    statement = check_evidence(info.custom, info.hashes["sha256"], evidence.trusted, target=target, role=role)
    assert statement.signed_by == (evidence.trusted[0].keyid,)
    assert statement.certified is True


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_gate_refuses_before_download(evidence: Evidence, tmp_path: Path, name: str) -> None:
    repo, target = publish_variant(tmp_path, evidence, name)
    info, role = _signed_target(repo, target, tmp_path)
    kind, says = REFUSALS[name]
    with pytest.raises(kind) as caught:
        check_evidence(info.custom, info.hashes["sha256"], evidence.trusted, target=target, role=role)
    message = str(caught.value)
    assert message.startswith(f"{kind.cause}, target '{target}', role 'acme': module 'beacon': "), message
    assert says in message
    assert caught.value.module == "beacon"
    assert caught.value.role == "acme"
    assert caught.value.wheel_sha256 == sha256_of(evidence.wheel)
    assert not (tmp_path / "downloads").exists()
