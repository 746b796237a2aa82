"""``hardpoint release``: the platform authority's and the suppliers' tooling for the update repository.

A thin command line over :class:`hardpoint_runtime.update.UpdateRepository`;
``ship`` is the supplier's CI in one step (build the wheel into a fresh folder,
certified conformance run with signed evidence, publish only what a platform's
evidence gate would accept; spec/update.md UPD-REL-003).
Private keys live in key directories *outside* the repository directory (the
repository is what mirrors serve): by default ``<REPO_DIR>-keys`` beside it;
``--keys DIR`` (repeatable) names others, and ``init --root-keys DIR`` puts the
root keys apart (offline media). Every command prints text, or JSON only with
``--json``; any refusal exits 1 with ``hardpoint: error: <cause>`` on stderr.

Import-light like the rest of the CLI: python-tuf is loaded only inside the commands.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from hardpoint_runtime.update import UpdateRepository

__all__ = ["release_app"]

release_app = typer.Typer(
    help="Release tooling: create the update repository, add suppliers, publish module wheels, rotate keys.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
RepoArg = Annotated[Path, typer.Argument(help="Repository directory (holds metadata/ and targets/).")]
KeysOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--keys",
        help="Directory of private keys to sign with (repeatable). Default: <REPO_DIR>-keys.",
    ),
]
_TOP_LEVEL = ("root", "targets", "snapshot", "timestamp")
ExpiresOption = Annotated[
    list[str] | None,
    typer.Option(
        "--expires-in",
        metavar="ROLE=DURATION",
        help="How long ROLE's new metadata stays valid, e.g. timestamp=1d, snapshot=12h (units s m h d w; repeatable).",
    ),
]
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"hardpoint: error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(1)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")
    sys.stdout.flush()


def _warn(message: str) -> None:
    sys.stderr.write(f"hardpoint: warning: {message}\n")
    sys.stderr.flush()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _default_keys(repo_dir: Path) -> Path:
    return repo_dir.parent / f"{repo_dir.name}-keys"


def _key_dirs(repo_dir: Path, keys: list[Path] | None) -> list[Path]:
    return list(keys) if keys else [_default_keys(repo_dir)]


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` as a positive :class:`timedelta`. :raises ValueError: anything else."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit s, m, h, d or w (e.g. 12h, 7d)")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be more than zero")
    return timedelta(seconds=seconds)


def _expiry_options(values: list[str] | None, allowed: list[str]) -> dict[str, timedelta]:
    """``ROLE=DURATION`` options by role; a role outside ``allowed`` or a bad duration ends the command."""
    out: dict[str, timedelta] = {}
    for value in values or []:
        role, sep, duration = value.partition("=")
        role = role.strip()
        if not sep or not role:
            _fail(f"--expires-in {value!r}: write ROLE=DURATION, e.g. timestamp=1d")
        if role not in allowed:
            _fail(f"--expires-in {value!r}: role {role!r} is not one this command signs ({', '.join(allowed)})")
        try:
            out[role] = parse_duration(duration)
        except ValueError as e:
            _fail(f"--expires-in {value!r}: {e}")
    return out


def _deadlines(durations: dict[str, timedelta]) -> dict[str, datetime]:
    """Expiry dates from now, whole seconds (as TUF metadata stores them)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {role: now + duration for role, duration in durations.items()}


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the update errors (and file errors) into ``_fail``: exit 1 naming the cause."""
    from hardpoint_runtime.update import UpdateError

    try:
        yield
    except UpdateError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))


def _open(repo_dir: Path, key_dirs: list[Path]) -> UpdateRepository:
    from hardpoint_runtime.update import UpdateRepository

    if not (repo_dir / "metadata").is_dir():
        _fail(f"no update repository at {repo_dir} (no metadata directory): run 'hardpoint release init' first")
    return UpdateRepository(repo_dir, key_dirs=key_dirs)


def _key_ids(repo: UpdateRepository, role: str) -> tuple[list[str], int]:
    if role in _TOP_LEVEL:
        entry = repo.role("root").signed.roles[role]
        return list(entry.keyids), entry.threshold
    delegated = repo.role("targets").signed.delegations.roles[role]
    return list(delegated.keyids), delegated.threshold


def _evidence_of(envelope: Any, wheel_sha256: str) -> dict[str, Any] | None:
    """What a target's conformance evidence says (None: it carries none), its signatures not judged.

    ``for_this_wheel``: one of its subjects is the target's sha256. ``problem``: it cannot be read as evidence.
    """
    if envelope is None:
        return None
    from hardpoint_runtime.conformance._evidence import describe_evidence
    from hardpoint_runtime.update._errors import EvidenceError

    try:
        described = describe_evidence(envelope)
    except EvidenceError as e:
        return {"problem": e.detail}
    described["for_this_wheel"] = any(sha == wheel_sha256.lower() for _, sha in described["subjects"])
    return described


def _evidence_text(evidence: dict[str, Any] | None) -> str:
    """One line: what a release carries, as a platform that requires evidence will see it."""
    if evidence is None:
        return "evidence: none (a platform with [update] require_evidence = true refuses this release)"
    if "problem" in evidence:
        return f"evidence: unreadable ({evidence['problem']})"
    run = "certified" if evidence["certified"] else "relaxed (not certified)"
    outcome = (
        f"{evidence['checks']} checks passed"
        if evidence["verdict"] == "pass" and not evidence["failing"]
        else f"{evidence['failing']} of {evidence['checks']} checks did not pass"
    )
    keys = ", ".join(evidence["signed_by"]) or "nobody (unsigned)"
    other = "" if evidence["for_this_wheel"] else "; NOT for this wheel (another sha256)"
    return f"evidence: {run}, {outcome}, signed by key {keys}{other}"


def _describe(repo: UpdateRepository) -> dict[str, Any]:
    roles: dict[str, Any] = {}
    for role in [*_TOP_LEVEL, *repo.suppliers]:
        md = repo.role(role)
        keyids, threshold = _key_ids(repo, role)
        roles[role] = {
            "version": md.signed.version,
            "expires": md.signed.expires.isoformat(),
            "threshold": threshold,
            "keyids": keyids,
        }
    suppliers: dict[str, Any] = {}
    for name in repo.suppliers:
        delegated = repo.role("targets").signed.delegations.roles[name]
        targets = []
        for path, info in sorted(repo.role(name).signed.targets.items()):
            hardpoint = info.custom.get("hardpoint", {}) if isinstance(info.custom, dict) else {}
            targets.append(
                {
                    "path": path,
                    "version": hardpoint.get("version"),
                    "length": info.length,
                    "hashes": info.hashes,
                    "evidence": _evidence_of(hardpoint.get("evidence"), info.hashes.get("sha256", "")),
                }
            )
        suppliers[name] = {"paths": list(delegated.paths or []), "targets": targets}
    return {"repository": str(repo.path), "roles": roles, "suppliers": suppliers}


# --------------------------------------------------------------------------- commands


@release_app.command()
def init(
    repo_dir: RepoArg,
    *,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="Where the targets/snapshot/timestamp keys go. Default: <REPO_DIR>-keys."),
    ] = None,
    root_keys: Annotated[
        Path | None, typer.Option("--root-keys", help="Where the root keys go (offline media). Default: --keys.")
    ] = None,
    root_threshold: Annotated[int, typer.Option("--root-threshold", min=1)] = 1,
    root_key_count: Annotated[int | None, typer.Option("--root-key-count", help="Default: the threshold.")] = None,
    targets_threshold: Annotated[int, typer.Option("--targets-threshold", min=1)] = 1,
    targets_key_count: Annotated[int | None, typer.Option("--targets-key-count")] = None,
    online_threshold: Annotated[
        int, typer.Option("--online-threshold", min=1, help="Threshold of snapshot and timestamp.")
    ] = 1,
    online_key_count: Annotated[int | None, typer.Option("--online-key-count")] = None,
    expires_in: ExpiresOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create an update repository: new keys and version 1 of root, targets, snapshot and timestamp.

    Default validity: root 365 d, targets 90 d, snapshot 7 d, timestamp 1 d; --expires-in changes it
    for this first version (later versions are signed with the defaults or their own --expires-in).
    """
    from dataclasses import replace

    from hardpoint_runtime.update import Expiry, UpdateRepository

    expiry = replace(Expiry(), **_expiry_options(expires_in, list(_TOP_LEVEL)))

    keys_dir = keys or _default_keys(repo_dir)
    thresholds = {
        "root": root_threshold,
        "targets": targets_threshold,
        "snapshot": online_threshold,
        "timestamp": online_threshold,
    }
    counts = {
        role: count
        for role, count in (
            ("root", root_key_count),
            ("targets", targets_key_count),
            ("snapshot", online_key_count),
            ("timestamp", online_key_count),
        )
        if count is not None
    }
    with _errors():
        repo = UpdateRepository.create(
            repo_dir,
            keys_dir=keys_dir,
            root_keys_dir=root_keys,
            thresholds=thresholds,
            key_counts=counts,
            expiry=expiry,
        )
    info = _describe(repo)
    out = {
        "repository": str(repo_dir),
        "trusted_root": str(repo.metadata_dir / "1.root.json"),
        "keys": str(keys_dir),
        "root_keys": str(root_keys or keys_dir),
        "roles": info["roles"],
    }
    if json_out:
        _print_json(out)
        return
    _say(f"created update repository {repo_dir}")
    _say(f"  platforms' first trusted root: {out['trusted_root']}")
    _say(f"  root keys in {out['root_keys']}, other keys in {keys_dir}")


@release_app.command("add-supplier")
def add_supplier(
    repo_dir: RepoArg,
    name: Annotated[str, typer.Argument(help="Supplier name (lower case, digits, '-', '_').")],
    *,
    threshold: Annotated[int, typer.Option("--threshold", min=1)] = 1,
    key_count: Annotated[int | None, typer.Option("--key-count", help="Default: the threshold.")] = None,
    keys: KeysOption = None,
    supplier_keys: Annotated[
        Path | None,
        typer.Option("--supplier-keys", help="Where the supplier's new keys go. Default: the first --keys."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Delegate <NAME>/*/* to a new supplier role with new keys (the authority's targets keys sign)."""
    key_dirs = _key_dirs(repo_dir, keys)
    destination = supplier_keys or key_dirs[0]
    with _errors():
        repo = _open(repo_dir, key_dirs)
        keyids = repo.add_supplier(name, keys_dir=destination, threshold=threshold, key_count=key_count)
    out = {
        "supplier": name,
        "keyids": keyids,
        "threshold": threshold,
        "keys": str(destination),
        "paths": [f"{name}/*/*"],
    }
    if json_out:
        _print_json(out)
        return
    _say(f"supplier {name} delegated {name}/*/* (threshold {threshold}); keys in {destination}:")
    for keyid in keyids:
        _say(f"  {keyid}")


def _read_evidence(path: Path) -> dict[str, Any]:
    """The evidence file's JSON object (a DSSE envelope); its content is checked by the repository."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        _fail(f"cannot read evidence file {path}: {e.strerror or e}")
    except ValueError as e:
        _fail(f"evidence file {path} is not JSON: {e}")
    if not isinstance(data, dict):
        _fail(f"evidence file {path} is not a DSSE envelope (a JSON object)")
    return data


@release_app.command()
def publish(
    repo_dir: RepoArg,
    supplier: Annotated[str, typer.Argument(help="The supplier whose role signs the wheel.")],
    wheel: Annotated[Path, typer.Argument(help="The module wheel (.whl).")],
    *,
    keys: KeysOption = None,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Signed conformance evidence (evidence.dsse.json) to carry in the target."),
    ] = None,
    expires_in: ExpiresOption = None,
    json_out: JsonOption = False,
) -> None:
    """Publish a module wheel under <SUPPLIER>/<module>/<file>, its manifest in the target's custom metadata."""
    if not wheel.is_file():
        _fail(f"no wheel file {wheel}")
    if wheel.suffix != ".whl":
        _fail(f"{wheel} is not a wheel (.whl)")
    envelope = _read_evidence(evidence) if evidence is not None else None
    durations = _expiry_options(expires_in, [supplier, "snapshot", "timestamp"])
    with _errors():
        repo = _open(repo_dir, _key_dirs(repo_dir, keys))
        path = repo.publish(supplier, wheel, evidence=envelope, expires=_deadlines(durations) or None)
    info = repo.role(supplier).signed.targets[path]
    hardpoint = info.custom.get("hardpoint", {})
    out = {
        "target": path,
        "supplier": supplier,
        "version": hardpoint.get("version"),
        "length": info.length,
        "hashes": info.hashes,
        "role_version": repo.role(supplier).signed.version,
        "evidence": envelope is not None,
    }
    if envelope is None:
        _warn(
            f"{path} (version {out['version']}) is published without conformance evidence: a platform with "
            "[update] require_evidence = true refuses it. Certify the wheel (hardpoint conformance check WHEEL "
            "--certified --sign-key KEY) and publish it with --evidence, or do both with hardpoint release ship."
        )
    if json_out:
        _print_json(out)
        return
    _say(f"published {path}")
    _say(f"  version {out['version']}, {info.length} bytes")
    for algorithm, digest in info.hashes.items():
        _say(f"  {algorithm} {digest}")
    if envelope is not None:
        _say(f"  conformance evidence from {evidence} carried in the signed target")


@release_app.command("rotate-key")
def rotate_key(
    repo_dir: RepoArg,
    role: Annotated[str, typer.Argument(help="root, targets, snapshot, timestamp or a supplier.")],
    *,
    key_count: Annotated[
        int | None, typer.Option("--key-count", min=1, help="New keys to make. Default: as many as now.")
    ] = None,
    threshold: Annotated[int | None, typer.Option("--threshold", min=1, help="Default: unchanged.")] = None,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Keep the old keys beside the new ones.")] = False,
    keys: KeysOption = None,
    new_keys: Annotated[
        Path | None, typer.Option("--new-keys", help="Where the new keys go. Default: the first --keys.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Replace the keys of a role with new ones (its delegator, or root, signs the change)."""
    key_dirs = _key_dirs(repo_dir, keys)
    destination = new_keys or key_dirs[0]
    with _errors():
        repo = _open(repo_dir, key_dirs)
        if role not in _TOP_LEVEL and role not in repo.suppliers:
            _fail(f"no role {role!r} in {repo_dir} (roles: {[*_TOP_LEVEL, *repo.suppliers]})")
        old, _ = _key_ids(repo, role)
        added = repo.rotate_keys(
            role,
            add=key_count or len(old),
            remove=[] if keep_old else old,
            threshold=threshold,
            keys_dir=destination,
        )
        current, current_threshold = _key_ids(repo, role)
    removed = [] if keep_old else old
    out = {
        "role": role,
        "added": added,
        "removed": removed,
        "keyids": current,
        "threshold": current_threshold,
        "keys": str(destination),
    }
    if json_out:
        _print_json(out)
        return
    _say(f"rotated the keys of {role} (threshold {current_threshold}); new keys in {destination}:")
    for keyid in added:
        _say(f"  + {keyid}")
    for keyid in removed:
        _say(f"  - {keyid}")


@release_app.command("revoke-key")
def revoke_key(
    repo_dir: RepoArg,
    supplier: Annotated[str, typer.Argument(help="The supplier.")],
    keyid: Annotated[str, typer.Argument(help="The key id to revoke.")],
    keys: KeysOption = None,
    json_out: JsonOption = False,
) -> None:
    """Remove a key from a supplier's delegation: it signs nothing any more (the targets keys sign)."""
    with _errors():
        repo = _open(repo_dir, _key_dirs(repo_dir, keys))
        repo.revoke_supplier_key(supplier, keyid)
        current, threshold = _key_ids(repo, supplier)
    out = {"supplier": supplier, "revoked": keyid, "keyids": current, "threshold": threshold}
    if json_out:
        _print_json(out)
        return
    _say(f"revoked key {keyid} of supplier {supplier}; remaining: {', '.join(current)}")


@release_app.command()
def bump(
    repo_dir: RepoArg,
    role: Annotated[
        str, typer.Argument(help="timestamp (default), snapshot (and timestamp), targets or a supplier.")
    ] = "timestamp",
    *,
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in", metavar="DURATION", help="New validity of ROLE, e.g. 1d, 12h. Default: the role's."
        ),
    ] = None,
    keys: KeysOption = None,
    json_out: JsonOption = False,
) -> None:
    """Re-sign ROLE unchanged with a new expiry (the routine job before metadata expires).

    A new snapshot and timestamp follow, so platforms see the new version; bumping the timestamp
    needs only the timestamp key (the online key kept on the repository host).
    """
    duration = None
    if expires_in is not None:
        try:
            duration = parse_duration(expires_in)
        except ValueError as e:
            _fail(f"--expires-in: {e}")
    with _errors():
        repo = _open(repo_dir, _key_dirs(repo_dir, keys))
        if role == "root":
            _fail("root is re-signed by 'hardpoint release rotate-key root' (it needs the offline root keys)")
        if role not in _TOP_LEVEL and role not in repo.suppliers:
            _fail(f"no role {role!r} in {repo_dir} (roles: {[*_TOP_LEVEL, *repo.suppliers]})")
        expires = _deadlines({role: duration})[role] if duration is not None else None
        if role == "timestamp":
            repo.bump_timestamp(expires=expires)
        elif role == "snapshot":
            repo.bump_snapshot(expires=expires)
        else:
            repo.commit([role], expires={role: expires} if expires is not None else None)
        info = _describe(repo)
    changed = list(dict.fromkeys([role, "snapshot", "timestamp"] if role != "timestamp" else [role]))
    out = {"bumped": {r: info["roles"][r] for r in changed}}
    if json_out:
        _print_json(out)
        return
    for name, entry in out["bumped"].items():
        _say(f"re-signed {name} as version {entry['version']}, expires {entry['expires']}")


@release_app.command()
def show(repo_dir: RepoArg, json_out: JsonOption = False) -> None:
    """Roles (version, expiry, threshold, keys), suppliers and their targets."""
    with _errors():
        info = _describe(_open(repo_dir, []))
    if json_out:
        _print_json(info)
        return
    _say(f"update repository {repo_dir}")
    for role, entry in info["roles"].items():
        _say(
            f"  {role:<12} v{entry['version']:<4} expires {entry['expires']}  "
            f"threshold {entry['threshold']} of {len(entry['keyids'])} keys"
        )
    if not info["suppliers"]:
        _say("no suppliers")
    for name, supplier in info["suppliers"].items():
        _say(f"supplier {name} ({', '.join(supplier['paths'])}): {len(supplier['targets'])} targets")
        for target in supplier["targets"]:
            _say(f"  {target['path']}  version {target['version']}  sha256 {target['hashes'].get('sha256', '-')}")
            _say(f"    {_evidence_text(target['evidence'])}")


# --------------------------------------------------------------------------- ship: source to published release


#: Where ``ship`` keeps each release (the wheel, its conformance report and evidence), under the project.
RELEASES_DIR = "release"


class _Steps:
    """The steps of ``ship``, each said when it starts and when it ends, with its time (stdout, or silent)."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total = total
        self.quiet = quiet
        self.done: list[dict[str, Any]] = []
        self._t0 = 0.0

    def start(self, name: str, what: str) -> None:
        import time

        self._t0 = time.monotonic()
        if not self.quiet:
            _say(f"[{len(self.done) + 1}/{self.total}] {name}: {what}")

    def end(self, name: str, result: str) -> None:
        import time

        seconds = round(time.monotonic() - self._t0, 1)
        self.done.append({"step": name, "seconds": seconds, "result": result})
        if not self.quiet:
            _say(f"      {result} ({seconds:.1f} s)")


def _build_wheel(project: Path, into: Path) -> Path:
    """``python -m build --wheel --no-isolation`` of ``project`` into the empty folder ``into``: its one wheel."""
    import subprocess

    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(into), str(project)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    except subprocess.TimeoutExpired:
        _fail(f"building the wheel of {project} took more than 15 minutes: {' '.join(command)}")
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        hint = (
            " (the 'build' package is not installed: python -m pip install build)"
            if "No module named build" in output
            else ""
        )
        tail = "\n".join(output.splitlines()[-15:])
        _fail(f"building the wheel of {project} failed{hint}: {' '.join(command)} exited {proc.returncode}:\n{tail}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        _fail(f"building {project} made {len(wheels)} wheels in {into}, expected one: {[w.name for w in wheels]}")
    return wheels[0]


@release_app.command()
def ship(  # noqa: PLR0915 - one straight sequence of steps, each said as it runs
    project: Annotated[Path, typer.Argument(help="The module project: the folder with its pyproject.toml.")],
    *,
    repo_dir: Annotated[Path, typer.Option("--repo", help="The update repository to publish to.")],
    sign_key: Annotated[
        Path,
        typer.Option("--sign-key", help="Private key (PEM) that signs the conformance evidence (conformance keygen)."),
    ],
    keys: KeysOption = None,
    supplier: Annotated[
        str | None, typer.Option("--supplier", help="The supplier role that signs. Default: the manifest's supplier.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=f"Folder for the wheel, the conformance report and the evidence. Default: "
            f"PROJECT/{RELEASES_DIR}/<module>-<version>.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML for the conformance run: [config] and [adapters.<name>] (as check)."),
    ] = None,
    expires_in: ExpiresOption = None,
    json_out: JsonOption = False,
) -> None:
    """Build, certify and publish a module project in one step: the supplier's CI.

    Builds the wheel into a fresh folder (no earlier wheel is ever picked up), runs the conformance
    suite on it in certified mode and signs the evidence with --sign-key, verifies that evidence as a
    platform will (signed by that key, certified, every check passed, for exactly this wheel), and only
    then publishes the wheel with its evidence under the supplier's role. A failing or uncertified run,
    a version already published, or missing signing keys publish nothing (exit 1, naming why). Prints
    each step with its time; the release folder keeps the wheel, report.md and evidence.dsse.json.
    """
    import shutil
    import tempfile
    import time

    from hardpoint_runtime.conformance._evidence import load_signer, verify_evidence, wheel_subject
    from hardpoint_runtime.update import UpdateError, read_module_wheel
    from hardpoint_runtime.update._errors import EvidenceError
    from hardpoint_runtime.update._repository import target_path_for

    started = time.monotonic()
    project = project.resolve()
    if not (project / "pyproject.toml").is_file():
        _fail(f"{project} is not a module project: it has no pyproject.toml")
    if config is not None and not config.is_file():
        _fail(f"no configuration file {config}")
    try:
        signer = load_signer(sign_key)  # a bad key fails before anything runs
    except EvidenceError as e:
        _fail(str(e))
    with _errors():
        repo = _open(repo_dir, _key_dirs(repo_dir, keys))
    steps = _Steps(3, quiet=json_out)

    # 1. build, into a fresh folder
    steps.start("build", f"python -m build --wheel of {project}")
    with tempfile.TemporaryDirectory(prefix="hardpoint-ship-") as tmp:
        built = _build_wheel(project, Path(tmp))
        with _errors():
            module = read_module_wheel(built)
        role = supplier or str(module.manifest.get("supplier") or "")
        name, version = module.entry_point, module.version
        release = (out or project / RELEASES_DIR / f"{name}-{version}").resolve()
        release.mkdir(parents=True, exist_ok=True)
        for stale in release.glob("*.whl"):
            stale.unlink()
        wheel = release / built.name
        shutil.copyfile(built, wheel)
    steps.end("build", f"{wheel.name} in {release}")

    # Before the long run: the role, its keys, the expiry options, and that this version is new.
    durations = _expiry_options(expires_in, [role, "snapshot", "timestamp"])
    with _errors():
        if role not in repo.suppliers:
            _fail(
                f"{wheel.name}: its manifest names supplier {role!r}, which has no role in {repo_dir} "
                f"(suppliers: {', '.join(repo.suppliers) or 'none'}; the authority adds one with release add-supplier)"
            )
        repo.check_keys([role])
        target = target_path_for(role, name, wheel.name)
        if target in repo.role(role).signed.targets:
            _fail(
                f"{name} {version} is already published in {repo_dir} ({target}): a release is never replaced; "
                "raise the version in pyproject.toml and hardpoint-manifest.json"
            )

    # 2. certify: the conformance suite in certified mode, signed, then verified as a platform will
    from hardpoint_runtime._conformance_cli import EVIDENCE_FILE, _print_summary, run_check

    steps.start("certify", "hardpoint conformance check --certified (progress on stderr)")
    summary = run_check(str(wheel), report=release, certified=True, sign_key=sign_key, config=config)
    if summary["verdict"] != "pass":
        if not json_out:
            _print_summary(summary, str(wheel), certified=True)
        failing = [c["check"] for c in summary["checks"] if c["outcome"] != "passed"]
        _fail(
            f"{name} {version} is not published: the certified conformance run failed "
            f"({len(failing)} of {len(summary['checks'])} checks: {', '.join(failing) or 'no check ran'}); "
            f"report: {release / 'report.md'}"
        )
    evidence_file = release / EVIDENCE_FILE
    envelope = _read_evidence(evidence_file)
    try:
        verified = verify_evidence(
            envelope, wheel_sha256=wheel_subject(wheel).sha256, trusted_keys=[signer.public_key], threshold=1
        )
    except EvidenceError as e:
        _fail(f"{name} {version} is not published: its evidence would be refused: {e}")
    steps.end(
        "certify",
        f"PASS (certified), {len(verified.checks)} checks; evidence signed by key {', '.join(verified.signed_by)}",
    )

    # 3. publish, with the evidence
    steps.start("publish", f"under role {role} in {repo_dir}, with its evidence")
    try:
        path = repo.publish(role, wheel, evidence=envelope, expires=_deadlines(durations) or None)
    except UpdateError as e:
        _fail(str(e))
    info = repo.role(role).signed.targets[path]
    steps.end("publish", f"{path} (role {role} v{repo.role(role).signed.version})")

    total = round(time.monotonic() - started, 1)
    result = {
        "module": name,
        "version": version,
        "supplier": role,
        "wheel": str(wheel),
        "sha256": info.hashes.get("sha256"),
        "release_dir": str(release),
        "report": str(release / "report.md"),
        "evidence": {"file": str(evidence_file), "signed_by": list(verified.signed_by), "checks": len(verified.checks)},
        "target": path,
        "repository": str(repo_dir),
        "steps": steps.done,
        "seconds": total,
    }
    if json_out:
        _print_json(result)
        return
    _say(f"shipped {name} {version} in {total:.1f} s: certified, signed and published with its evidence")
    _say(f"  release folder {release} (wheel, report.md, evidence.dsse.json)")
