"""Signed conformance evidence: an in-toto Statement v1 in a DSSE envelope, and the evidence gate.

**What a run binds.** The JSON result of ``hardpoint conformance check`` (the
*predicate*, :func:`evidence_result`) holds:

- ``subject``: what was tested. For a wheel, its file name and the sha256 of the
  file (the *wheel digest*), the same digest TUF signs in the target's hashes.
  For an installed module there is no wheel file: the subject is the
  distribution (``installed:<dist>==<version>``) and the sha256 of its
  ``RECORD`` (which lists the hash of every installed file). Such evidence
  documents a run but **cannot pass the gate**, which needs a wheel digest.
- ``suite``: the SDK and runtime versions and a sha256 over the source of every
  module of the two conformance packages (checks, plugin, harness), so two runs
  with different checks never look alike.
- ``interface_set``: a sha256 of the platform ``FileDescriptorSet`` (every
  interface of :func:`hardpoint.all_interfaces` and its imports, files sorted by
  name, deterministic serialisation) and the proto package versions
  (``hardpoint.nav.v1``, ...).
- ``certified``, the overall ``verdict``, and every check with its requirement IDs and outcome.

**Envelope.** :func:`sign_evidence` wraps the result as an in-toto Statement v1
(``subject = [{name: <wheel file>, digest: {sha256: ...}}]``, ``predicateType``
:data:`PREDICATE_TYPE`) in a DSSE envelope (payload type
``application/vnd.in-toto+json``) signed with a ``securesystemslib`` signer.
:func:`verify_evidence` checks, in this order, so no unsigned content is ever
judged: envelope shape, trusted signatures (threshold), statement and predicate
type, subject digest, interface set (when the caller names the platform's),
verdicts, certified flag. :func:`check_evidence` is the gate the daemon runs on
a TUF target's signed custom metadata before download; it always compares the
evidence's interface set with the platform's (:func:`check_interface_set`).

The sign/verify/gate functions are pure (no IO besides their arguments); the
IO helpers (digests of files, key files, the suite and interface-set versions)
are kept apart at the end.
"""

from __future__ import annotations

import binascii
import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import FormatError, UnverifiedSignatureError, VerificationError
from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from hardpoint_runtime.update._errors import (
    EvidenceDigestError,
    EvidenceError,
    EvidenceFailingError,
    EvidenceInterfaceSetError,
    EvidenceKeyError,
    EvidenceMalformedError,
    EvidenceMissingError,
    EvidenceNotCertifiedError,
    EvidenceSignatureError,
    EvidenceUnsignedError,
    EvidenceUntrustedError,
)

__all__ = [
    "EVIDENCE_FILE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "EvidenceStatement",
    "Subject",
    "check_evidence",
    "check_interface_set",
    "describe_evidence",
    "envelope_subjects",
    "evidence_from_custom",
    "evidence_result",
    "generate_key_pair",
    "installed_subject",
    "interface_set_version",
    "load_signer",
    "load_trusted_keys",
    "sign_evidence",
    "statement_subjects",
    "suite_version",
    "verify_evidence",
    "wheel_subject",
]

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://hardpoint.dev/conformance/v1"
#: DSSE payload type of an in-toto statement.
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
#: File name of the signed envelope in a report directory.
EVIDENCE_FILE: Final = "evidence.dsse.json"
#: Packages whose source the suite digest covers.
SUITE_PACKAGES: Final = ("hardpoint.conformance", "hardpoint_runtime.conformance")

SubjectKind = Literal["wheel", "installed"]


@dataclass(frozen=True, slots=True)
class Subject:
    """What a conformance run tested: a wheel file (gate-able) or an installed distribution (not)."""

    kind: SubjectKind
    #: The wheel file name, or ``installed:<dist>==<version>``.
    name: str
    #: sha256 of the wheel file, or of the installed distribution's ``RECORD``.
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class EvidenceStatement:
    """Evidence that verified: the signed statement and what it says."""

    subject: Subject
    module: str
    certified: bool
    verdict: str
    #: Every check: ``{"check", "requirements", "outcome"[, "judged"][, "message"]}``.
    checks: tuple[dict[str, Any], ...]
    suite: dict[str, Any]
    interface_set: dict[str, Any]
    #: Key ids of the trusted keys whose signatures verified.
    signed_by: tuple[str, ...]
    #: The whole in-toto statement, as signed.
    statement: dict[str, Any]


# ----- building and signing (pure) ------------------------------------------------------------


def evidence_result(
    summary: Mapping[str, Any],
    *,
    subject: Subject,
    suite: Mapping[str, Any],
    interface_set: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON result of a run: ``summary`` (module, certified, verdict, checks) bound to what was tested.

    ``summary`` is the conformance CLI's summary: ``module``, ``certified``,
    ``verdict`` (``pass``/``fail``), ``check_modules`` (the modules run) and
    ``checks`` (each ``check``, ``requirements``, ``outcome``, what it ``judged`` (CF-JDG-001) and, for a
    failure, ``message``: the whole reason, CF-EV-007).
    """
    checks = [
        {key: check[key] for key in ("check", "requirements", "outcome", "judged", "message") if key in check}
        for check in summary.get("checks", [])
    ]
    return {
        "module": str(summary.get("module")),
        "subject": subject.to_dict(),
        "suite": dict(suite),
        "interface_set": dict(interface_set),
        "certified": bool(summary.get("certified", False)),
        "verdict": str(summary.get("verdict", "fail")),
        "check_modules": [str(name) for name in summary.get("check_modules", [])],
        "checks": checks,
    }


def _statement(result: Mapping[str, Any]) -> dict[str, Any]:
    subject = result.get("subject")
    if not isinstance(subject, Mapping) or not subject.get("name") or not subject.get("sha256"):
        raise ValueError("the result has no subject with a name and a sha256: build it with evidence_result()")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": str(subject["name"]), "digest": {"sha256": str(subject["sha256"])}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(result),
    }


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_evidence(result: Mapping[str, Any], signer: Signer, *more_signers: Signer) -> Envelope:
    """Wrap ``result`` (from :func:`evidence_result`) as an in-toto statement in a DSSE envelope and sign it.

    :raises ValueError: ``result`` has no subject.
    """
    envelope = Envelope(_canonical(_statement(result)), PAYLOAD_TYPE, {})
    for each in (signer, *more_signers):
        envelope.sign(each)
    return envelope


# ----- verifying (pure) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """What the errors name: the module (when known), the wheel digest asked about, the TUF target and role."""

    module: str | None = None
    wheel_sha256: str | None = None
    target: str | None = None
    role: str | None = None

    def error(self, kind: type[EvidenceError], detail: str, *, module: str | None = None) -> EvidenceError:
        return kind(
            detail,
            module=module or self.module,
            wheel_sha256=self.wheel_sha256,
            target=self.target,
            role=self.role,
        )


def _envelope(data: str | bytes | Mapping[str, Any], ctx: _Context) -> Envelope:
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ctx.error(EvidenceMalformedError, f"the evidence is not JSON: {e}") from e
    if not isinstance(data, Mapping):
        raise ctx.error(EvidenceMalformedError, "the evidence is not a DSSE envelope (a JSON object)")
    missing = [key for key in ("payload", "payloadType", "signatures") if key not in data]
    if missing:
        raise ctx.error(EvidenceMalformedError, f"the evidence is not a DSSE envelope: it lacks {', '.join(missing)}")
    if not isinstance(data["signatures"], list):
        raise ctx.error(EvidenceMalformedError, "the DSSE envelope's signatures are not a list")
    try:
        # Envelope.from_dict consumes the signature dicts it is given: hand it a copy.
        envelope = Envelope.from_dict(copy.deepcopy(dict(data)))
    except (KeyError, TypeError, ValueError, binascii.Error, FormatError) as e:
        raise ctx.error(EvidenceMalformedError, f"the DSSE envelope cannot be read: {type(e).__name__}: {e}") from e
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ctx.error(
            EvidenceMalformedError,
            f"the DSSE payload type is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r} (an in-toto statement)",
        )
    return envelope


def _verify_signatures(envelope: Envelope, trusted_keys: Sequence[Key], threshold: int, ctx: _Context) -> list[str]:
    """Key ids of the trusted keys whose signatures verify; at least ``threshold`` of them, else raise."""
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold}")
    if not envelope.signatures:
        raise ctx.error(EvidenceUnsignedError, "the DSSE envelope carries no signature")
    trusted = {key.keyid: key for key in trusted_keys}
    if not trusted:
        raise ctx.error(EvidenceUntrustedError, "no trusted conformance key is configured, so no signature can count")
    pae = envelope.pae()
    accepted: list[str] = []
    invalid: list[str] = []
    for keyid, signature in envelope.signatures.items():
        key = trusted.get(keyid)
        if key is None:
            continue
        try:
            key.verify_signature(signature, pae)
        except (UnverifiedSignatureError, VerificationError):
            invalid.append(keyid)
        else:
            accepted.append(keyid)
    if len(accepted) >= threshold:
        return accepted
    if invalid:
        raise ctx.error(
            EvidenceSignatureError,
            f"the signature of trusted key {', '.join(invalid)} does not verify: the payload or the signature "
            f"was altered after signing ({len(accepted)} valid of the {threshold} needed)",
        )
    others = sorted(set(envelope.signatures) - set(trusted))
    raise ctx.error(
        EvidenceUntrustedError,
        f"signed only by untrusted key {', '.join(others) or '-'}; needs {threshold} signature(s) of the "
        f"trusted conformance keys {', '.join(sorted(trusted))} ({len(accepted)} found)",
    )


def _statement_of(envelope: Envelope, ctx: _Context) -> dict[str, Any]:
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ctx.error(EvidenceMalformedError, f"the signed payload is not JSON: {e}") from e
    if not isinstance(statement, dict):
        raise ctx.error(EvidenceMalformedError, "the signed payload is not an in-toto statement (a JSON object)")
    if statement.get("_type") != STATEMENT_TYPE:
        raise ctx.error(
            EvidenceMalformedError,
            f"the signed payload's _type is {statement.get('_type')!r}, expected {STATEMENT_TYPE!r}",
        )
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise ctx.error(
            EvidenceMalformedError,
            f"the statement's predicateType is {statement.get('predicateType')!r}, expected {PREDICATE_TYPE!r} "
            "(hardpoint conformance evidence)",
        )
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict) or not isinstance(predicate.get("checks"), list):
        raise ctx.error(EvidenceMalformedError, "the statement's predicate has no list of checks")
    if not isinstance(statement.get("subject"), list):
        raise ctx.error(EvidenceMalformedError, "the statement has no subject list")
    return statement


def envelope_subjects(envelope_json: str | bytes | Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, sha256)`` of each subject of the statement in an envelope, **without** checking signatures.

    For tooling that catches mistakes early (publishing evidence of another
    wheel); a decision to trust evidence is :func:`verify_evidence`'s.

    :raises EvidenceMalformedError: not a DSSE envelope of hardpoint conformance evidence.
    """
    ctx = _Context()
    return statement_subjects(_statement_of(_envelope(envelope_json, ctx), ctx))


def describe_evidence(envelope_json: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """What an envelope of conformance evidence says, **without** judging its signatures (for ``release show``).

    ``module``, ``certified``, ``verdict``, ``checks`` (how many), ``failing`` (how many did not pass),
    ``signed_by`` (the key ids of its signatures, none verified here: trust is the platform's call, made
    with its ``conformance_keys``), ``subjects`` (``[name, sha256]``) and ``interface_set`` (its sha256).

    :raises EvidenceMalformedError: not a DSSE envelope of hardpoint conformance evidence.
    """
    ctx = _Context()
    envelope = _envelope(envelope_json, ctx)
    statement = _statement_of(envelope, ctx)
    predicate = statement["predicate"]
    interfaces = predicate.get("interface_set")
    return {
        "module": str(predicate.get("module") or ""),
        "certified": predicate.get("certified") is True,
        "verdict": str(predicate.get("verdict") or ""),
        "checks": len(predicate["checks"]),
        "failing": len(_failing(predicate["checks"])),
        "signed_by": sorted(envelope.signatures),
        "subjects": [list(subject) for subject in statement_subjects(statement)],
        "interface_set": interfaces.get("descriptor_set_sha256") if isinstance(interfaces, Mapping) else None,
    }


def statement_subjects(statement: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, sha256)`` of each subject of an in-toto statement (entries without a sha256 left out)."""
    found = []
    for entry in statement.get("subject", []):
        digest = entry.get("digest") if isinstance(entry, Mapping) else None
        sha256 = digest.get("sha256") if isinstance(digest, Mapping) else None
        if isinstance(sha256, str):
            found.append((str(entry.get("name", "")), sha256.lower()))
    return found


def _check_subject(statement: dict[str, Any], wheel_sha256: str, ctx: _Context, module: str) -> Subject:
    predicate = statement["predicate"]
    subject = predicate.get("subject") if isinstance(predicate.get("subject"), dict) else {}
    kind: SubjectKind = "installed" if subject.get("kind") == "installed" else "wheel"
    subjects = statement_subjects(statement)
    for name, sha256 in subjects:
        if sha256 == wheel_sha256.lower():
            if kind == "installed":
                break  # a RECORD digest equal to a wheel digest is impossible; refuse below all the same
            return Subject(kind="wheel", name=name, sha256=sha256)
    described = ", ".join(f"{name} (sha256 {sha256})" for name, sha256 in subjects) or "no subject digest"
    if kind == "installed":
        raise ctx.error(
            EvidenceDigestError,
            f"the evidence is for an installed module, {described}, not a wheel: the gate needs evidence "
            f"for the wheel with sha256 {wheel_sha256} (run the check on the wheel file)",
            module=module,
        )
    raise ctx.error(
        EvidenceDigestError,
        f"the evidence is for {described}, not for the wheel with sha256 {wheel_sha256}",
        module=module,
    )


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "(none)"


def _check_interface_set(predicate: Mapping[str, Any], platform_sha256: str, ctx: _Context, module: str) -> None:
    interface_set = predicate.get("interface_set")
    named = interface_set.get("descriptor_set_sha256") if isinstance(interface_set, Mapping) else None
    evidence_sha256 = named.lower() if isinstance(named, str) and named else None
    platform = platform_sha256.lower()
    if evidence_sha256 == platform:
        return
    # verdicts reached against other contracts (another hardpoint SDK) say nothing about this platform's
    why = (
        "the checks ran against other interface contracts (another hardpoint SDK): certify the module "
        "with this platform's SDK"
        if evidence_sha256
        else "the evidence names no interface_set.descriptor_set_sha256, so it cannot be shown to match"
    )
    raise EvidenceInterfaceSetError(
        f"evidence for interface set {_short(evidence_sha256)}, platform has {_short(platform)}: {why}",
        evidence_interface_set=evidence_sha256,
        platform_interface_set=platform,
        module=module,
        wheel_sha256=ctx.wheel_sha256,
        target=ctx.target,
        role=ctx.role,
    )


def check_interface_set(
    predicate: Mapping[str, Any],
    platform_sha256: str,
    *,
    module: str | None = None,
    wheel_sha256: str | None = None,
    target: str | None = None,
    role: str | None = None,
) -> None:
    """Refuse evidence whose ``interface_set.descriptor_set_sha256`` is not the platform's (CF-EV-033).

    ``predicate`` is the signed statement's predicate (the run's JSON result);
    ``platform_sha256`` is ``interface_set_version()["descriptor_set_sha256"]``
    of the platform's process. Pure: the caller computes the platform's digest.

    :raises EvidenceInterfaceSetError: the digests differ, or the evidence names none.
    """
    ctx = _Context(module=module, wheel_sha256=wheel_sha256, target=target, role=role)
    _check_interface_set(predicate, platform_sha256, ctx, str(predicate.get("module") or module or ""))


def _failing(checks: Iterable[Any]) -> list[str]:
    failing = []
    for check in checks:
        if not isinstance(check, Mapping):
            failing.append(f"{check!r}: not a check record")
            continue
        if check.get("outcome") != "passed":
            requirements = ", ".join(map(str, check.get("requirements", [])))
            message = f": {check['message']}" if check.get("message") else ""
            failing.append(f"{check.get('check')} [{requirements}] {check.get('outcome')}{message}")
    return failing


def _check_verdicts(predicate: dict[str, Any], ctx: _Context, module: str) -> None:
    checks = predicate["checks"]
    failing = _failing(checks)
    if predicate.get("verdict") == "pass" and checks and not failing:
        # a failing run is the bigger problem, so it is named first; a passing one must also be certified
        if predicate.get("certified") is not True:
            raise ctx.error(
                EvidenceNotCertifiedError,
                "the evidence records a relaxed run (skips allowed); the gate needs a certified run "
                "(hardpoint conformance check --certified)",
                module=module,
            )
        return
    if not checks:
        detail = "the evidence records no check at all"
    elif failing:
        detail = f"{len(failing)} of {len(checks)} checks did not pass: {'; '.join(failing)}"
    else:
        detail = f"the run's verdict is {predicate.get('verdict')!r}, not 'pass'"
    raise EvidenceFailingError(
        detail,
        failing=tuple(failing),
        module=module,
        wheel_sha256=ctx.wheel_sha256,
        target=ctx.target,
        role=ctx.role,
    )


def _verify(
    envelope_json: str | bytes | Mapping[str, Any],
    *,
    wheel_sha256: str,
    trusted_keys: Sequence[Key],
    threshold: int,
    interface_set_sha256: str | None,
    ctx: _Context,
) -> EvidenceStatement:
    envelope = _envelope(envelope_json, ctx)
    signed_by = _verify_signatures(envelope, trusted_keys, threshold, ctx)
    statement = _statement_of(envelope, ctx)
    predicate = statement["predicate"]
    module = str(predicate.get("module") or ctx.module or "")
    subject = _check_subject(statement, wheel_sha256, ctx, module)
    if interface_set_sha256 is not None:
        _check_interface_set(predicate, interface_set_sha256, ctx, module)
    _check_verdicts(predicate, ctx, module)
    return EvidenceStatement(
        subject=subject,
        module=module,
        certified=True,
        verdict="pass",
        checks=tuple(predicate["checks"]),
        suite=dict(predicate.get("suite") or {}),
        interface_set=dict(predicate.get("interface_set") or {}),
        signed_by=tuple(signed_by),
        statement=statement,
    )


def verify_evidence(
    envelope_json: str | bytes | Mapping[str, Any],
    *,
    wheel_sha256: str,
    trusted_keys: Sequence[Key],
    threshold: int = 1,
    interface_set_sha256: str | None = None,
) -> EvidenceStatement:
    """Verify signed evidence for the wheel whose sha256 is ``wheel_sha256``.

    Passes only when at least ``threshold`` distinct ``trusted_keys`` signed the
    envelope, the statement is hardpoint conformance evidence whose subject has
    this digest, the run was certified and every check passed. With
    ``interface_set_sha256`` (a platform's ``descriptor_set_sha256``) the
    evidence must also name that interface set; without it (verifying away from
    the platform) the interface set is not judged.

    :raises EvidenceMalformedError: not a DSSE envelope of an in-toto statement with :data:`PREDICATE_TYPE`.
    :raises EvidenceUnsignedError: no signature.
    :raises EvidenceUntrustedError: fewer than ``threshold`` signatures of trusted keys.
    :raises EvidenceSignatureError: a trusted key's signature does not verify (tampered).
    :raises EvidenceDigestError: the evidence is for another wheel, or for an installed module.
    :raises EvidenceInterfaceSetError: ``interface_set_sha256`` given and the evidence names another (or none).
    :raises EvidenceNotCertifiedError: a relaxed run.
    :raises EvidenceFailingError: a check did not pass (they are named with their requirement IDs).
    :raises ValueError: ``threshold`` is below 1.
    """
    ctx = _Context(wheel_sha256=wheel_sha256)
    return _verify(
        envelope_json,
        wheel_sha256=wheel_sha256,
        trusted_keys=trusted_keys,
        threshold=threshold,
        interface_set_sha256=interface_set_sha256,
        ctx=ctx,
    )


def evidence_from_custom(target_custom: Mapping[str, Any] | None) -> Any:
    """The envelope in a TUF target's custom metadata (``custom["hardpoint"]["evidence"]``), or None."""
    hardpoint = target_custom.get("hardpoint") if isinstance(target_custom, Mapping) else None
    return hardpoint.get("evidence") if isinstance(hardpoint, Mapping) else None


def check_evidence(
    target_custom: Mapping[str, Any] | None,
    wheel_sha256: str,
    trusted_keys: Sequence[Key],
    *,
    interface_set_sha256: str,
    threshold: int = 1,
    target: str | None = None,
    role: str | None = None,
) -> EvidenceStatement:
    """The evidence gate: refuse a release without valid signed passing evidence for exactly this wheel.

    ``target_custom`` is the signed TUF target's custom metadata; the envelope is
    ``custom["hardpoint"]["evidence"]`` (put there by ``hardpoint release publish
    --evidence``). ``wheel_sha256`` is the wheel digest, which is the ``sha256``
    of the signed target's hashes, so the gate runs before the payload is
    downloaded. ``interface_set_sha256`` is the platform's own interface set
    (``interface_set_version()["descriptor_set_sha256"]`` in the daemon's
    process), required so the gate never skips the comparison. ``target`` and
    ``role`` (TUF target path and signing role) only go into the error messages.

    :raises EvidenceMissingError: the target carries no evidence.
    :raises EvidenceInterfaceSetError: the evidence is for another interface set than ``interface_set_sha256``.
    :raises EvidenceError: any refusal of :func:`verify_evidence`, naming the module and what is missing.
    """
    hardpoint = target_custom.get("hardpoint") if isinstance(target_custom, Mapping) else None
    manifest = hardpoint.get("manifest") if isinstance(hardpoint, Mapping) else None
    module = str(manifest["name"]) if isinstance(manifest, Mapping) and manifest.get("name") else None
    ctx = _Context(module=module, wheel_sha256=wheel_sha256, target=target, role=role)
    envelope = evidence_from_custom(target_custom)
    if envelope is None:
        raise ctx.error(
            EvidenceMissingError,
            f"no signed conformance evidence for the wheel with sha256 {wheel_sha256} "
            '(expected custom["hardpoint"]["evidence"]: publish with hardpoint release publish --evidence)',
        )
    return _verify(
        envelope,
        wheel_sha256=wheel_sha256,
        trusted_keys=trusted_keys,
        threshold=threshold,
        interface_set_sha256=interface_set_sha256,
        ctx=ctx,
    )


# ----- IO helpers: digests, keys, versions ------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_subject(wheel: Path) -> Subject:
    """The subject of a run on ``wheel``: its file name and sha256 (the digest TUF signs for it)."""
    return Subject(kind="wheel", name=wheel.name, sha256=_sha256_file(wheel))


def installed_subject(module: str, group: str = "hardpoint.modules") -> Subject:
    """The subject of a run on an installed module: its distribution and the sha256 of its ``RECORD``.

    :raises LookupError: no entry point ``module`` in ``group``, or its distribution is unknown.
    """
    import importlib.metadata as md

    for dist in md.distributions():
        if any(ep.group == group and ep.name == module for ep in dist.entry_points):
            record = dist.read_text("RECORD") or ""
            name = f"installed:{dist.metadata['Name']}=={dist.version}"
            return Subject(kind="installed", name=name, sha256=hashlib.sha256(record.encode()).hexdigest())
    raise LookupError(f"no installed distribution declares {module!r} in entry-point group {group}")


def suite_version(packages: Sequence[str] = SUITE_PACKAGES) -> dict[str, Any]:
    """SDK and runtime versions and a sha256 over the source of every module of the conformance packages.

    The sources are read, not imported (the check modules load DDS).
    """
    import importlib.metadata as md
    import importlib.util

    sources: dict[str, str] = {}
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            for file in sorted(Path(location).glob("*.py")):
                name = package if file.stem == "__init__" else f"{package}.{file.stem}"
                sources[name] = _sha256_file(file)
    combined = hashlib.sha256(_canonical(sorted(sources.items()))).hexdigest()
    return {
        "hardpoint": md.version("hardpoint"),
        "hardpoint-runtime": md.version("hardpoint-runtime"),
        "checks_sha256": combined,
        "sources": dict(sorted(sources.items())),
    }


def interface_set_version() -> dict[str, Any]:
    """The platform interface set's identity: a sha256 of its ``FileDescriptorSet`` and its proto packages."""
    from google.protobuf import descriptor_pb2

    import hardpoint

    specs = hardpoint.all_interfaces()
    files: dict[str, Any] = {}

    def visit(file: Any) -> None:
        if file.name not in files:
            files[file.name] = file
            for dep in file.dependencies:
                visit(dep)

    for spec in specs.values():
        visit(spec.message_type.DESCRIPTOR.file)
    fds = descriptor_pb2.FileDescriptorSet()
    for name in sorted(files):
        fds.file.add().MergeFromString(files[name].serialized_pb)
    return {
        "descriptor_set_sha256": hashlib.sha256(fds.SerializeToString(deterministic=True)).hexdigest(),
        "packages": sorted({name.rsplit(".", 1)[0] for name in specs}),
        "interfaces": len(specs),
    }


def load_trusted_keys(paths: Iterable[Path]) -> list[Key]:
    """Public keys (PEM, SubjectPublicKeyInfo: Ed25519, ECDSA or RSA) of trusted conformance signers.

    :raises EvidenceKeyError: a file cannot be read or holds no supported public key (the file is named).
    """
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys: list[Key] = []
    for path in paths:
        try:
            public = load_pem_public_key(Path(path).read_bytes())
            keys.append(SSlibKey.from_crypto(public))
        except OSError as e:
            raise EvidenceKeyError(f"cannot read trusted key file {path}: {e.strerror or e}") from e
        except (ValueError, TypeError) as e:
            raise EvidenceKeyError(f"{path} is not a PEM public key of a supported type: {e}") from e
    return keys


def load_signer(path: Path) -> CryptoSigner:
    """A signer from an unencrypted PEM (PKCS#8) private key file.

    :raises EvidenceKeyError: the file cannot be read or holds no supported private key.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        private = load_pem_private_key(Path(path).read_bytes(), None)
        return CryptoSigner(private)
    except OSError as e:
        raise EvidenceKeyError(f"cannot read signing key file {path}: {e.strerror or e}") from e
    except (ValueError, TypeError) as e:
        raise EvidenceKeyError(f"{path} is not an unencrypted PEM private key of a supported type: {e}") from e


def generate_key_pair(directory: Path, name: str = "conformance-signer") -> tuple[Path, Path, str]:
    """A new Ed25519 signer: ``<name>.pem`` (private, mode 0600) and ``<name>.pub.pem``; returns them and the key id.

    :raises EvidenceKeyError: either file exists already (keys are never overwritten).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private_file, public_file = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    existing = [str(p) for p in (private_file, public_file) if p.exists()]
    if existing:
        raise EvidenceKeyError(f"refusing to overwrite existing key file {', '.join(existing)}")
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    signer = CryptoSigner(private)
    fd = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(signer.private_bytes)
    public_file.write_bytes(private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private_file, public_file, signer.public_key.keyid
