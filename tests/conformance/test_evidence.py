"""Signed conformance evidence: an in-toto statement in a DSSE envelope, verified and refused for each cause.

The first part drives the pure functions with real securesystemslib keys; the
second runs ``hardpoint conformance check --sign-key`` on a real wheel of the
reference module ``nav`` (built once per session) and ``hardpoint conformance verify``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from refkit import Run
from securesystemslib.signer import CryptoSigner, Key
from typer.testing import CliRunner, Result
from wheelkit import nav_copy_wheel, write_wheel

from hardpoint_runtime.cli import app
from hardpoint_runtime.conformance._evidence import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Subject,
    check_evidence,
    check_interface_set,
    envelope_subjects,
    evidence_result,
    generate_key_pair,
    installed_subject,
    interface_set_version,
    load_signer,
    load_trusted_keys,
    sign_evidence,
    suite_version,
    verify_evidence,
    wheel_subject,
)
from hardpoint_runtime.update import UpdateError
from hardpoint_runtime.update._errors import (
    EvidenceDigestError,
    EvidenceError,
    EvidenceFailingError,
    EvidenceInterfaceSetError,
    EvidenceMalformedError,
    EvidenceMissingError,
    EvidenceNotCertifiedError,
    EvidenceSignatureError,
    EvidenceUnsignedError,
    EvidenceUntrustedError,
)

REPO = Path(__file__).resolve().parents[2]
SHA = hashlib.sha256(b"the wheel").hexdigest()
OTHER_SHA = hashlib.sha256(b"another wheel").hexdigest()
#: ``descriptor_set_sha256`` of the interface set the evidence below was made against, and of another one.
IFACES = hashlib.sha256(b"the platform's FileDescriptorSet").hexdigest()
OTHER_IFACES = hashlib.sha256(b"an older SDK's FileDescriptorSet").hexdigest()
WHEEL = "hp_mod-1.0.0-py3-none-any.whl"
CHECKS = [
    {"check": "test_manifest_valid", "requirements": ["SDK-LC-001"], "outcome": "passed"},
    {"check": "test_rate", "requirements": ["IF-NAV-NAVSTATE-RATE"], "outcome": "passed"},
]


def summary(*, certified: bool = True, checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    checks = CHECKS if checks is None else checks
    verdict = "pass" if checks and all(c["outcome"] == "passed" for c in checks) else "fail"
    return {"module": "nav", "certified": certified, "verdict": verdict, "checks": checks}


def result(*, sha256: str = SHA, kind: str = "wheel", interfaces: str = IFACES, **kwargs: Any) -> dict[str, Any]:
    subject = Subject(kind="installed" if kind == "installed" else "wheel", name=WHEEL, sha256=sha256)
    interface_set = {"descriptor_set_sha256": interfaces, "packages": ["x.v1"]}
    return evidence_result(
        summary(**kwargs), subject=subject, suite={"hardpoint": "0.1.0"}, interface_set=interface_set
    )


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@pytest.fixture(scope="module")
def stranger() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@pytest.fixture
def trusted(signer: CryptoSigner) -> list[Key]:
    return [signer.public_key]


def signed(signer: CryptoSigner, **kwargs: Any) -> dict[str, Any]:
    envelope: dict[str, Any] = sign_evidence(result(**kwargs), signer).to_dict()
    return envelope


def refused(kind: type[EvidenceError], call: Callable[[], object]) -> str:
    with pytest.raises(kind) as caught:
        call()
    assert isinstance(caught.value, UpdateError)
    return str(caught.value)


# ----- round trip ---------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(signer: CryptoSigner, trusted: list[Key]) -> None:
    envelope = signed(signer)
    assert envelope["payloadType"] == PAYLOAD_TYPE
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == [{"name": WHEEL, "digest": {"sha256": SHA}}]
    assert statement["predicate"]["checks"] == CHECKS

    verified = verify_evidence(json.dumps(envelope), wheel_sha256=SHA, trusted_keys=trusted)
    assert verified.subject == Subject(kind="wheel", name=WHEEL, sha256=SHA)
    assert verified.module == "nav"
    assert verified.certified is True
    assert verified.signed_by == (signer.public_key.keyid,)
    assert [c["check"] for c in verified.checks] == ["test_manifest_valid", "test_rate"]
    assert verified.suite == {"hardpoint": "0.1.0"}
    assert verified.statement == statement
    # a dict given is left as it was (securesystemslib's Envelope.from_dict consumes the signature dicts it reads)
    before = copy.deepcopy(envelope)
    assert verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted).signed_by == verified.signed_by
    assert envelope == before


def test_threshold_counts_distinct_trusted_signers(signer: CryptoSigner, stranger: CryptoSigner) -> None:
    both = [signer.public_key, stranger.public_key]
    envelope = sign_evidence(result(), signer, stranger).to_dict()
    assert len(verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=both, threshold=2).signed_by) == 2
    one = signed(signer)
    message = refused(EvidenceUntrustedError, lambda: verify_evidence(one, wheel_sha256=SHA, trusted_keys=both,
                                                                       threshold=2))  # fmt: skip
    assert "needs 2 signature(s)" in message
    assert "(1 found)" in message


def test_gate_accepts_evidence_carried_in_target_custom(signer: CryptoSigner, trusted: list[Key]) -> None:
    custom = {"hardpoint": {"manifest": {"name": "nav"}, "version": "1.0.0", "evidence": signed(signer)}}
    assert check_evidence(custom, SHA, trusted, interface_set_sha256=IFACES).subject.sha256 == SHA


# ----- each refusal -----------------------------------------------------------------------------------


def test_missing_evidence_is_refused_naming_module_target_and_role(trusted: list[Key]) -> None:
    custom = {"hardpoint": {"manifest": {"name": "nav"}, "version": "1.0.0"}}
    message = refused(EvidenceMissingError, lambda: check_evidence(custom, SHA, trusted, interface_set_sha256=IFACES,
                                                                   target="acme/nav/x.whl", role="acme"))  # fmt: skip
    assert message.startswith("conformance evidence missing, target 'acme/nav/x.whl', role 'acme': module 'nav': ")
    assert f"no signed conformance evidence for the wheel with sha256 {SHA}" in message
    assert 'custom["hardpoint"]["evidence"]' in message
    refused(EvidenceMissingError, lambda: check_evidence({}, SHA, trusted, interface_set_sha256=IFACES))
    refused(EvidenceMissingError, lambda: check_evidence(None, SHA, trusted, interface_set_sha256=IFACES))


def test_evidence_for_another_digest_is_refused(signer: CryptoSigner, trusted: list[Key]) -> None:
    envelope = signed(signer, sha256=OTHER_SHA)
    message = refused(EvidenceDigestError, lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted))
    assert f"the evidence is for {WHEEL} (sha256 {OTHER_SHA}), not for the wheel with sha256 {SHA}" in message
    assert "module 'nav'" in message


def test_evidence_for_another_interface_set_is_refused(signer: CryptoSigner, trusted: list[Key]) -> None:
    # the pure comparison: the same set passes, another one is refused naming both (short) digests
    check_interface_set(result(), IFACES)
    check_interface_set(result(interfaces=IFACES.upper()), IFACES)  # hex digests compare case-insensitively
    with pytest.raises(EvidenceInterfaceSetError) as caught:
        check_interface_set(result(interfaces=OTHER_IFACES), IFACES, target="acme/nav/x.whl", role="acme")
    message = str(caught.value)
    assert message.startswith(
        "conformance evidence for another interface set, target 'acme/nav/x.whl', role 'acme': module 'nav': "
    ), message
    assert f"evidence for interface set {OTHER_IFACES[:12]}, platform has {IFACES[:12]}" in message
    assert "another hardpoint SDK" in message
    assert (caught.value.evidence_interface_set, caught.value.platform_interface_set) == (OTHER_IFACES, IFACES)
    assert isinstance(caught.value, EvidenceError)

    # evidence naming no interface set cannot be shown to match: refused the same way
    nameless = result()
    del nameless["interface_set"]["descriptor_set_sha256"]
    message = refused(EvidenceInterfaceSetError, lambda: check_interface_set(nameless, IFACES))
    assert f"evidence for interface set (none), platform has {IFACES[:12]}" in message

    # the gate always compares: signed, passing evidence of another set is refused, and passes on a platform
    # carrying that set
    custom = {"hardpoint": {"manifest": {"name": "nav"}, "evidence": signed(signer, interfaces=OTHER_IFACES)}}
    refused(EvidenceInterfaceSetError, lambda: check_evidence(custom, SHA, trusted, interface_set_sha256=IFACES))
    assert check_evidence(custom, SHA, trusted, interface_set_sha256=OTHER_IFACES).module == "nav"
    # the interface set is judged before the verdicts: they were reached against other contracts
    relaxed = {"hardpoint": {"evidence": signed(signer, interfaces=OTHER_IFACES, certified=False)}}
    refused(EvidenceInterfaceSetError, lambda: check_evidence(relaxed, SHA, trusted, interface_set_sha256=IFACES))
    refused(EvidenceNotCertifiedError, lambda: check_evidence(relaxed, SHA, trusted, interface_set_sha256=OTHER_IFACES))
    # away from a platform (no interface set given) verify_evidence does not judge it
    other = signed(signer, interfaces=OTHER_IFACES)
    assert verify_evidence(other, wheel_sha256=SHA, trusted_keys=trusted).interface_set["descriptor_set_sha256"] == (
        OTHER_IFACES
    )
    refused(
        EvidenceInterfaceSetError,
        lambda: verify_evidence(other, wheel_sha256=SHA, trusted_keys=trusted, interface_set_sha256=IFACES),
    )


def test_evidence_of_an_installed_module_cannot_pass_the_gate(signer: CryptoSigner, trusted: list[Key]) -> None:
    envelope = signed(signer, kind="installed")
    message = refused(EvidenceDigestError, lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted))
    assert "the evidence is for an installed module" in message
    assert "run the check on the wheel file" in message


def test_unsigned_evidence_is_refused(signer: CryptoSigner, trusted: list[Key]) -> None:
    envelope = {**signed(signer), "signatures": []}
    message = refused(EvidenceUnsignedError, lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted))
    assert message == "conformance evidence unsigned: the DSSE envelope carries no signature"


def test_evidence_signed_by_an_untrusted_key_is_refused(stranger: CryptoSigner, signer: CryptoSigner) -> None:
    envelope = signed(stranger)
    message = refused(
        EvidenceUntrustedError,
        lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=[signer.public_key]),
    )
    assert message.startswith("conformance evidence not signed by a trusted key: ")
    assert f"signed only by untrusted key {stranger.public_key.keyid}" in message
    assert f"trusted conformance keys {signer.public_key.keyid}" in message
    message = refused(EvidenceUntrustedError, lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=[]))
    assert "no trusted conformance key is configured" in message


def _with_statement(envelope: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    statement = json.loads(base64.b64decode(envelope["payload"]))
    change(statement)
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    return {**envelope, "payload": payload}


def test_tampered_payload_is_refused(signer: CryptoSigner, trusted: list[Key]) -> None:
    # a failing run, its verdict rewritten to pass after signing
    envelope = signed(signer, checks=[{**CHECKS[0], "outcome": "failed"}])

    def to_pass(statement: dict[str, Any]) -> None:
        statement["predicate"]["verdict"] = "pass"
        statement["predicate"]["checks"][0]["outcome"] = "passed"

    forged = _with_statement(envelope, to_pass)
    message = refused(EvidenceSignatureError, lambda: verify_evidence(forged, wheel_sha256=SHA, trusted_keys=trusted))
    assert f"the signature of trusted key {signer.public_key.keyid} does not verify" in message
    assert "altered after signing" in message
    # the digest rewritten to another wheel's
    moved = _with_statement(signed(signer, sha256=OTHER_SHA), lambda s: s["subject"][0]["digest"].update(sha256=SHA))
    refused(EvidenceSignatureError, lambda: verify_evidence(moved, wheel_sha256=SHA, trusted_keys=trusted))


def test_a_stranger_signing_under_a_trusted_key_id_is_refused(
    signer: CryptoSigner, stranger: CryptoSigner, trusted: list[Key]
) -> None:
    envelope = signed(stranger)
    envelope["signatures"][0]["keyid"] = signer.public_key.keyid
    refused(EvidenceSignatureError, lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted))


def test_failing_verdict_is_refused_naming_the_checks(signer: CryptoSigner, trusted: list[Key]) -> None:
    failed = {**CHECKS[1], "outcome": "failed", "message": "NavState at 2.0 Hz, nominal 10 Hz"}
    envelope = signed(signer, checks=[CHECKS[0], failed])
    with pytest.raises(EvidenceFailingError) as caught:
        verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted)
    message = str(caught.value)
    assert message.startswith("conformance evidence not passing: module 'nav': 1 of 2 checks did not pass: ")
    assert "test_rate [IF-NAV-NAVSTATE-RATE] failed: NavState at 2.0 Hz, nominal 10 Hz" in message
    assert caught.value.failing == ("test_rate [IF-NAV-NAVSTATE-RATE] failed: NavState at 2.0 Hz, nominal 10 Hz",)
    nothing = signed(signer, checks=[])
    assert "records no check at all" in refused(
        EvidenceFailingError, lambda: verify_evidence(nothing, wheel_sha256=SHA, trusted_keys=trusted)
    )


def test_relaxed_run_is_refused(signer: CryptoSigner, trusted: list[Key]) -> None:
    envelope = signed(signer, certified=False)
    message = refused(
        EvidenceNotCertifiedError, lambda: verify_evidence(envelope, wheel_sha256=SHA, trusted_keys=trusted)
    )
    assert "relaxed run (skips allowed); the gate needs a certified run" in message


def test_wrong_predicate_or_statement_is_refused(signer: CryptoSigner, trusted: list[Key]) -> None:
    from securesystemslib.dsse import Envelope

    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": WHEEL, "digest": {"sha256": SHA}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"checks": []},
    }
    envelope = Envelope(json.dumps(statement).encode(), PAYLOAD_TYPE, {})
    envelope.sign(signer)
    message = refused(
        EvidenceMalformedError, lambda: verify_evidence(envelope.to_dict(), wheel_sha256=SHA, trusted_keys=trusted)
    )
    assert (
        "predicateType is 'https://slsa.dev/provenance/v1', expected 'https://hardpoint.dev/conformance/v1'" in message
    )
    other = Envelope(b"{}", "text/plain", {})
    other.sign(signer)
    message = refused(
        EvidenceMalformedError, lambda: verify_evidence(other.to_dict(), wheel_sha256=SHA, trusted_keys=trusted)
    )
    assert "payload type is 'text/plain'" in message


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("not json", "the evidence is not JSON"),
        ("[1, 2]", "not a DSSE envelope (a JSON object)"),
        ({"payload": "e30="}, "it lacks payloadType, signatures"),
        (
            {"payload": "%%%", "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": "k", "sig": "AA=="}]},
            "cannot be read",
        ),
    ],
)
def test_malformed_envelopes_are_refused(data: Any, says: str, trusted: list[Key]) -> None:
    message = refused(EvidenceMalformedError, lambda: verify_evidence(data, wheel_sha256=SHA, trusted_keys=trusted))
    assert message.startswith("conformance evidence malformed: ")
    assert says in message


def test_envelope_subjects_reads_without_trusting(stranger: CryptoSigner) -> None:
    assert envelope_subjects(signed(stranger)) == [(WHEEL, SHA)]
    refused(EvidenceMalformedError, lambda: envelope_subjects({"payload": "x"}))


# ----- keys, digests, versions ---------------------------------------------------------------------------


def test_key_pair_files_sign_and_verify(tmp_path: Path) -> None:
    private, public, keyid = generate_key_pair(tmp_path / "keys")
    assert private.stat().st_mode & 0o777 == 0o600
    signer = load_signer(private)
    (key,) = load_trusted_keys([public])
    assert signer.public_key.keyid == key.keyid == keyid
    assert verify_evidence(signed(signer), wheel_sha256=SHA, trusted_keys=[key]).signed_by == (keyid,)
    message = refused(EvidenceError, lambda: generate_key_pair(tmp_path / "keys"))
    assert "refusing to overwrite existing key file" in message


def test_bad_key_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    assert f"{junk} is not a PEM public key" in refused(EvidenceError, lambda: load_trusted_keys([junk]))
    assert f"{junk} is not an unencrypted PEM private key" in refused(EvidenceError, lambda: load_signer(junk))
    absent = tmp_path / "absent.pem"
    assert f"cannot read trusted key file {absent}" in refused(EvidenceError, lambda: load_trusted_keys([absent]))


def test_subjects_suite_and_interface_set(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL
    wheel.write_bytes(b"the wheel")
    assert wheel_subject(wheel) == Subject(kind="wheel", name=WHEEL, sha256=SHA)
    installed = installed_subject("nav")
    assert installed.kind == "installed"
    assert installed.name.startswith("installed:hardpoint-mod-nav==")

    suite = suite_version()
    evidence_py = REPO / "runtime/src/hardpoint_runtime/conformance/_evidence.py"
    assert (
        suite["sources"]["hardpoint_runtime.conformance._evidence"]
        == hashlib.sha256(evidence_py.read_bytes()).hexdigest()
    )
    assert "hardpoint.conformance.checks_manifest" in suite["sources"]
    assert "hardpoint.conformance.plugin" in suite["sources"]
    assert suite == suite_version()  # stable between calls

    interfaces = interface_set_version()
    assert "hardpoint.nav.v1" in interfaces["packages"]
    assert len(interfaces["descriptor_set_sha256"]) == 64
    assert interfaces == interface_set_version()


# ----- the CLI: check --sign-key on a real wheel of the reference module nav, then verify ----------------

runner = CliRunner()


def cli(*args: str | Path) -> Result:
    return runner.invoke(app, ["conformance", *map(str, args)])


@pytest.fixture(scope="session")
def nav_wheel(reference_runs: dict[str, Run]) -> Path:
    """The nav wheel certified by the shared ``reference_runs`` (conftest.py)."""
    return reference_runs["nav"].wheel


@pytest.fixture(scope="session")
def nav_run(reference_runs: dict[str, Run]) -> tuple[Run, Path]:
    """The certified, signed run on the nav wheel (shared with the reference-module acceptance test)."""
    run = reference_runs["nav"]
    return run, run.report


@pytest.mark.timeout(600)  # the certified run in the session fixture takes a minute or more
def test_check_sign_key_on_the_nav_wheel_writes_verifiable_evidence(
    nav_run: tuple[Run, Path], nav_wheel: Path, keys: tuple[Path, Path]
) -> None:
    result, report = nav_run
    assert result.exit_code == 0, (result.stdout, result.stderr, (report / "pytest.log").read_text()[-3000:])
    summary = json.loads(result.stdout)
    digest = hashlib.sha256(nav_wheel.read_bytes()).hexdigest()
    assert summary["subject"] == {"kind": "wheel", "name": nav_wheel.name, "sha256": digest}
    assert summary["report"]["evidence"] == str(report / "evidence.dsse.json")

    bound = json.loads((report / "hardpoint-result.json").read_text())
    assert bound["module"] == "nav"
    assert bound["subject"]["sha256"] == digest
    assert bound["certified"] is True
    assert bound["verdict"] == "pass"
    assert bound["interface_set"] == interface_set_version()
    assert bound["suite"]["checks_sha256"] == suite_version()["checks_sha256"]
    assert bound["checks"]
    assert all(c["requirements"] and c["outcome"] == "passed" for c in bound["checks"])

    markdown = (report / "report.md").read_text()
    assert f"- Wheel: `{nav_wheel.name}` sha256 `{digest}`" in markdown
    assert "evidence.dsse.json" in markdown

    (key,) = load_trusted_keys([keys[1]])
    verified = verify_evidence((report / "evidence.dsse.json").read_text(), wheel_sha256=digest, trusted_keys=[key])
    assert verified.module == "nav"
    assert len(verified.checks) == len(bound["checks"])

    ok = cli("verify", report / "evidence.dsse.json", "--wheel", nav_wheel, "--trusted-key", keys[1])
    assert ok.exit_code == 0, (ok.stdout, ok.stderr)
    assert ok.stdout.startswith(f"OK: {nav_wheel.name} (sha256 {digest})")
    assert f"module nav: certified, {len(bound['checks'])} checks passed" in ok.stdout


@pytest.mark.timeout(600)  # the certified run in the session fixture takes a minute or more
def test_verify_refuses_another_wheel_and_an_untrusted_key(
    nav_run: tuple[Run, Path], nav_wheel: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    evidence = nav_run[1] / "evidence.dsse.json"
    other = tmp_path / nav_wheel.name
    other.write_bytes(b"a different wheel")
    wrong = cli("verify", evidence, "--wheel", other, "--trusted-key", keys[1])
    assert wrong.exit_code == 1
    assert wrong.stdout == ""
    assert wrong.stderr.startswith("hardpoint: error: conformance evidence for another wheel: module 'nav': ")
    assert f"not for the wheel with sha256 {hashlib.sha256(b'a different wheel').hexdigest()}" in wrong.stderr

    _, stranger_public, _ = generate_key_pair(tmp_path / "stranger")
    untrusted = cli("verify", evidence, "--wheel", nav_wheel, "--trusted-key", stranger_public)
    assert untrusted.exit_code == 1
    assert untrusted.stderr.startswith("hardpoint: error: conformance evidence not signed by a trusted key: ")

    absent = cli("verify", evidence, "--wheel", tmp_path / "absent.whl", "--trusted-key", keys[1])
    assert absent.exit_code == 1
    assert absent.stderr.startswith("hardpoint: error: no wheel file ")


def test_check_with_a_bad_sign_key_fails_before_running(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    result = cli("check", "nav", "--report", tmp_path / "evidence", "--sign-key", junk)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"hardpoint: error: conformance key unusable: {junk} is not an unencrypted PEM private key"
    )
    assert not (tmp_path / "evidence").exists()


_FAILING_MODULE = b"""
from hardpoint import Manifest


class Wheeled:
    manifest = Manifest(name="wheeled", version="1.0.0", supplier="tests", requires=("hardpoint.nav.v2.NavState",))
"""


def test_a_failing_run_is_signed_and_its_evidence_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    wheel = write_wheel(
        tmp_path,
        distribution="wheeled",
        version="1.0.0",
        entry_points={"wheeled": "hardpoint_wheeled:Wheeled"},
        files={"hardpoint_wheeled/__init__.py": _FAILING_MODULE},
    )
    # the static checks are enough to fail it; a failing run is named before a relaxed one
    run = cli("check", wheel, "--only", "checks_manifest", "--report", tmp_path / "report", "--sign-key", keys[0])
    assert run.exit_code == 1, (run.stdout, run.stderr)
    assert (tmp_path / "report" / "evidence.dsse.json").is_file()
    refusal = cli("verify", tmp_path / "report" / "evidence.dsse.json", "--wheel", wheel, "--trusted-key", keys[1])
    assert refusal.exit_code == 1
    assert refusal.stderr.startswith("hardpoint: error: conformance evidence not passing: module 'wheeled': ")
    assert "test_required_interfaces_in_interface_set [RT-RES-004, RT-RES-011] failed" in refusal.stderr
    assert "hardpoint.nav.v2.NavState" in refusal.stderr


def test_a_relaxed_passing_run_is_signed_and_refused_as_not_certified(keys: tuple[Path, Path], tmp_path: Path) -> None:
    wheel = nav_copy_wheel(tmp_path)
    run = cli("check", wheel, "--only", "checks_manifest", "--report", tmp_path / "report", "--sign-key", keys[0])
    assert run.exit_code == 0, (run.stdout, run.stderr)
    refusal = cli("verify", tmp_path / "report" / "evidence.dsse.json", "--wheel", wheel, "--trusted-key", keys[1])
    assert refusal.exit_code == 1
    assert refusal.stderr.startswith("hardpoint: error: conformance evidence not certified: module 'nav': ")


def test_a_wheel_changed_during_the_run_gets_no_evidence(
    keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hardpoint_runtime._conformance_cli as conformance_cli

    wheel = nav_copy_wheel(tmp_path)
    real_popen = subprocess.Popen
    runs: list[list[str]] = []

    class RunThenChangeTheWheel(real_popen):  # type: ignore[misc,valid-type]
        """The checks' pytest process; once it is done, someone rewrites the wheel."""

        def wait(self, timeout: float | None = None) -> int:
            code: int = super().wait(timeout)
            with wheel.open("ab") as f:
                f.write(b"\0")
            return code

    def popen(args: list[str], **kwargs: Any) -> Any:
        runs.append(args)
        return RunThenChangeTheWheel(args, **kwargs)

    monkeypatch.setattr(conformance_cli.subprocess, "Popen", popen)
    report = tmp_path / "report"
    result = cli("check", wheel, "--only", "checks_manifest", "--report", report, "--sign-key", keys[0])
    assert len(runs) == 1, runs  # the checks ran, and the wheel changed meanwhile
    assert result.exit_code == 1
    # The error comes after the run's progress (stderr) and before any result.
    error = result.stderr[result.stderr.index("hardpoint: error: ") :]
    assert error.startswith(f"hardpoint: error: {wheel.resolve()} changed during the run (sha256 was ")
    assert not (report / "evidence.dsse.json").exists()
