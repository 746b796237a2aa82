"""The errors of the update client and the release tooling.

::

    HardpointRuntimeError
    └── UpdateError                    an update cannot be fetched, verified or published
        ├── MetadataVerificationError  TUF metadata refused (signatures under threshold, malformed,
        │   │                          version mix-and-match between snapshot and targets)
        │   ├── MetadataExpiredError   the metadata of a role has expired (freeze attack or stale mirror)
        │   └── RollbackError          the repository offers an older version than the one trusted
        ├── TargetNotFoundError        no role lists the target, or no role is delegated its path
        ├── IntegrityError             downloaded data differs from what the metadata declares
        │                              (hash or length mismatch, endless data)
        ├── FetchError                 the mirror or the directory cannot be read
        ├── ManifestMismatchError      the wheel's embedded manifest differs from the signed one
        ├── ModuleRollbackError        the offered module version is not newer than the installed one
        ├── ReleaseError               the release tooling refuses an operation (bad wheel, unknown supplier, ...)
        └── EvidenceError              the release's conformance evidence is missing or not acceptable (gate)
            ├── EvidenceMissingError       no evidence travels with the target
            ├── EvidenceMalformedError     not a DSSE envelope of an in-toto statement, or a wrong predicate type
            ├── EvidenceUntrustedError     no signature of a trusted conformance key
            │   └── EvidenceUnsignedError  no signature at all
            ├── EvidenceSignatureError     a trusted key's signature does not verify (tampered payload)
            ├── EvidenceDigestError        the evidence is for another wheel digest
            ├── EvidenceInterfaceSetError  the evidence is for another interface set than the platform's
            ├── EvidenceFailingError       a verdict is not a pass
            ├── EvidenceNotCertifiedError  the run was not certified (skips allowed)
            └── EvidenceKeyError           a signing or trusted key file cannot be used

Each names the cause, the target (when there is one) and the TUF role, and
keeps them as attributes; the python-tuf exception is chained as ``__cause__``.
"""

from __future__ import annotations

from hardpoint_runtime._errors import HardpointRuntimeError

__all__ = [
    "EvidenceDigestError",
    "EvidenceError",
    "EvidenceFailingError",
    "EvidenceInterfaceSetError",
    "EvidenceKeyError",
    "EvidenceMalformedError",
    "EvidenceMissingError",
    "EvidenceNotCertifiedError",
    "EvidenceSignatureError",
    "EvidenceUnsignedError",
    "EvidenceUntrustedError",
    "FetchError",
    "IntegrityError",
    "ManifestMismatchError",
    "MetadataExpiredError",
    "MetadataVerificationError",
    "ModuleRollbackError",
    "ReleaseError",
    "RollbackError",
    "TargetNotFoundError",
    "UpdateError",
]


class UpdateError(HardpointRuntimeError):
    """An update cannot be fetched, verified or published.

    The message reads ``<cause>: target '<t>', role '<r>': <detail>``, the
    target and role parts left out when unknown.
    """

    #: Short name of the cause, the same for every instance of a class.
    cause: str = "update refused"

    def __init__(self, detail: str, *, target: str | None = None, role: str | None = None) -> None:
        parts = [self.cause]
        if target is not None:
            parts.append(f"target {target!r}")
        if role is not None:
            parts.append(f"role {role!r}")
        super().__init__(f"{', '.join(parts)}: {detail}")
        #: What went wrong, in words (the text of the underlying error).
        self.detail = detail
        #: The TUF target path (``acme/nav/hardpoint_mod_nav-1.0-py3-none-any.whl``), or None.
        self.target = target
        #: The TUF role whose metadata or target was refused (``timestamp``, ``acme``), or None.
        self.role = role


class MetadataVerificationError(UpdateError):
    """TUF metadata failed verification: too few valid signatures, malformed, or inconsistent versions."""

    cause = "metadata verification failed"


class MetadataExpiredError(MetadataVerificationError):
    """The metadata of a role has expired: the mirror is stale or someone replays old metadata (freeze)."""

    cause = "metadata expired"


class RollbackError(MetadataVerificationError):
    """The repository offers metadata older than the version already trusted."""

    cause = "rollback attempt"


class TargetNotFoundError(UpdateError):
    """No trusted role lists the target (or no role is delegated its path)."""

    cause = "target not found or not delegated"


class IntegrityError(UpdateError):
    """Downloaded data differs from what the signed metadata declares (hash, length, endless data)."""

    cause = "hash or length mismatch"


class FetchError(UpdateError):
    """The mirror or directory could not be read (unreachable, file missing, I/O error)."""

    cause = "fetch failed"


class ManifestMismatchError(UpdateError):
    """A module wheel's embedded manifest differs from the manifest signed in the target's custom metadata.

    Also raised when either manifest is missing or unreadable: the signed one
    is what the platform trusts, the embedded one is what the module will use.
    """

    cause = "manifest mismatch"

    def __init__(
        self, detail: str, *, fields: tuple[str, ...] = (), target: str | None = None, role: str | None = None
    ) -> None:
        super().__init__(detail, target=target, role=role)
        #: The differing manifest fields (``provides``; ``hardpoint.version`` for the signed version).
        self.fields = fields


class ModuleRollbackError(UpdateError):
    """The repository offers a module version not newer than the installed one (PEP 440 comparison)."""

    cause = "module version rollback"

    def __init__(
        self,
        detail: str,
        *,
        installed_version: str,
        offered_version: str,
        target: str | None = None,
        role: str | None = None,
    ) -> None:
        super().__init__(detail, target=target, role=role)
        #: The version installed on the platform.
        self.installed_version = installed_version
        #: The version the signed target declares.
        self.offered_version = offered_version


class ReleaseError(UpdateError):
    """The release tooling refuses an operation: a bad wheel, an unknown role, a missing key."""

    cause = "release refused"


class EvidenceError(UpdateError):
    """The conformance evidence of a module release is missing or not acceptable (the evidence gate).

    The message reads ``<cause>: target '<t>', role '<r>': module '<m>': <detail>``;
    ``detail`` names what is missing (a trusted signature, a passing verdict, ...).
    """

    cause = "conformance evidence refused"

    def __init__(
        self,
        detail: str,
        *,
        module: str | None = None,
        wheel_sha256: str | None = None,
        target: str | None = None,
        role: str | None = None,
    ) -> None:
        super().__init__(f"module {module!r}: {detail}" if module else detail, target=target, role=role)
        self.detail = detail
        #: The module the evidence is (or should be) about, when known.
        self.module = module
        #: The digest of the wheel the gate was asked about.
        self.wheel_sha256 = wheel_sha256


class EvidenceMissingError(EvidenceError):
    """No conformance evidence travels with the release (``custom["hardpoint"]["evidence"]`` absent)."""

    cause = "conformance evidence missing"


class EvidenceMalformedError(EvidenceError):
    """The evidence is not a DSSE envelope holding an in-toto Statement v1 with the hardpoint conformance predicate."""

    cause = "conformance evidence malformed"


class EvidenceUntrustedError(EvidenceError):
    """The evidence carries no valid signature of a trusted conformance key (threshold not met)."""

    cause = "conformance evidence not signed by a trusted key"


class EvidenceUnsignedError(EvidenceUntrustedError):
    """The evidence envelope carries no signature at all."""

    cause = "conformance evidence unsigned"


class EvidenceSignatureError(EvidenceError):
    """A trusted key's signature on the evidence does not verify: the payload or signature was altered."""

    cause = "conformance evidence signature invalid"


class EvidenceDigestError(EvidenceError):
    """The evidence is about another wheel (its subject digest differs from the wheel's sha256)."""

    cause = "conformance evidence for another wheel"


class EvidenceInterfaceSetError(EvidenceError):
    """The evidence was produced against another interface set than the platform's (another SDK's contracts)."""

    cause = "conformance evidence for another interface set"

    def __init__(
        self,
        detail: str,
        *,
        evidence_interface_set: str | None = None,
        platform_interface_set: str | None = None,
        module: str | None = None,
        wheel_sha256: str | None = None,
        target: str | None = None,
        role: str | None = None,
    ) -> None:
        super().__init__(detail, module=module, wheel_sha256=wheel_sha256, target=target, role=role)
        #: The ``descriptor_set_sha256`` the evidence names (None when it names none).
        self.evidence_interface_set = evidence_interface_set
        #: The platform's own ``descriptor_set_sha256``.
        self.platform_interface_set = platform_interface_set


class EvidenceFailingError(EvidenceError):
    """The evidence records a failing run: its verdict, or a check's outcome, is not a pass."""

    cause = "conformance evidence not passing"

    def __init__(
        self,
        detail: str,
        *,
        failing: tuple[str, ...] = (),
        module: str | None = None,
        wheel_sha256: str | None = None,
        target: str | None = None,
        role: str | None = None,
    ) -> None:
        super().__init__(detail, module=module, wheel_sha256=wheel_sha256, target=target, role=role)
        #: The checks that did not pass, with their requirement IDs (``check [REQ-1, REQ-2]``).
        self.failing = failing


class EvidenceNotCertifiedError(EvidenceError):
    """The evidence records a relaxed run (skips allowed); the gate needs a certified one."""

    cause = "conformance evidence not certified"


class EvidenceKeyError(EvidenceError):
    """A conformance signing key or trusted public key file cannot be read or is not a supported key."""

    cause = "conformance key unusable"
