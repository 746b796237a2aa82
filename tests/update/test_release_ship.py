"""``hardpoint release ship`` and what ``publish``/``show`` say about evidence (issue 14: defects 2 and 4, supplier CI).

``ship`` takes a module project from source to a published release in one step: build the wheel into a
fresh folder, run the certified conformance check signing the evidence, verify that evidence as a platform
would, and only then publish it. The conformance run itself is exercised end to end by the supplier's guide
(``tests/conformance/test_supplier_guide.py``); here it is replaced by a stand-in that writes real signed
evidence (passing, failing or relaxed, as each test needs) for the wheel it is given, so every refusal of
``ship`` is checked in seconds, and the checks ``ship`` makes on that evidence are the real ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import hardpoint_runtime._conformance_cli as conformance_cli
from hardpoint_runtime.cli import app
from hardpoint_runtime.conformance._evidence import (
    evidence_result,
    interface_set_version,
    load_signer,
    sign_evidence,
    suite_version,
    wheel_subject,
)

runner = CliRunner()
MODULE = "acme_alert"


def cli(*args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args)])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hardpoint new module acme_alert`` (Alert, requires FusedTrack), once for the file."""
    where = tmp_path_factory.mktemp("scaffold") / MODULE
    ok(cli("new", "module", MODULE, "--dir", where, "--supplier", "acme",
           "--provides", "hardpoint.alert.v1.Alert", "--requires", "hardpoint.track.v1.FusedTrack"))  # fmt: skip
    return where


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    made = json.loads(ok(cli("conformance", "keygen", tmp_path_factory.mktemp("keys"), "--json")).stdout)
    return Path(made["private_key"]), str(made["keyid"])


class Bench:
    """A fresh copy of the project and a repository with supplier ``acme``, in one test's folder."""

    def __init__(self, root: Path, scaffolded: Path) -> None:
        self.root = root
        self.project = root / MODULE
        shutil.copytree(scaffolded, self.project)
        self.repo = root / "update-repo"
        ok(cli("release", "init", self.repo))
        ok(cli("release", "add-supplier", self.repo, "acme"))

    def set_version(self, version: str) -> None:
        pyproject = self.project / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8")
        pyproject.write_text(text.replace('version = "0.1.0"', f'version = "{version}"'), encoding="utf-8")
        manifest = self.project / "src" / MODULE / "hardpoint-manifest.json"
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["version"] = version
        manifest.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    def targets(self) -> list[dict[str, Any]]:
        shown = json.loads(ok(cli("release", "show", self.repo, "--json")).stdout)
        targets: list[dict[str, Any]] = shown["suppliers"]["acme"]["targets"]
        return targets


@pytest.fixture
def bench(tmp_path: Path, scaffolded: Path) -> Bench:
    return Bench(tmp_path, scaffolded)


#: What the stand-in conformance run records: (wheel it was given, certified flag) per call.
Calls = list[tuple[str, bool]]


def stand_in(calls: Calls, *, verdict: str = "pass", certified_evidence: bool = True) -> Callable[..., dict[str, Any]]:
    """A ``run_check`` that signs real evidence for the wheel it is given, with the verdict asked for."""

    def run_check(module: str, *, report: Path, certified: bool, sign_key: Path, **_: Any) -> dict[str, Any]:
        calls.append((module, certified))
        outcome = "passed" if verdict == "pass" else "failed"
        checks = [
            {"check": "test_field_constraints", "requirements": ["CF-BUS-003"], "outcome": outcome, "judged": "3"},
            {"check": "test_manifest_valid", "requirements": ["CF-MAN-001"], "outcome": "passed", "judged": "1"},
        ]
        summary = {"module": MODULE, "certified": certified_evidence, "verdict": verdict, "checks": checks}
        result = evidence_result(
            summary, subject=wheel_subject(Path(module)), suite=suite_version(), interface_set=interface_set_version()
        )
        report.mkdir(parents=True, exist_ok=True)
        envelope = sign_evidence(result, load_signer(sign_key))
        (report / conformance_cli.EVIDENCE_FILE).write_text(json.dumps(envelope.to_dict()), encoding="utf-8")
        return {**summary, "subject": result["subject"], "report": {"markdown": str(report / "report.md")}}

    return run_check


def ship(bench: Bench, key: Path, *args: str | Path) -> Result:
    return cli("release", "ship", bench.project, "--repo", bench.repo, "--sign-key", key, *args)


def test_ship_builds_into_a_fresh_folder_certifies_and_publishes_with_evidence(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 2: an earlier wheel in dist/ (the guide's old ``dist/*.whl``) never matters."""
    key, keyid = signing_key
    calls: Calls = []
    monkeypatch.setattr(conformance_cli, "run_check", stand_in(calls))
    dist = bench.project / "dist"
    dist.mkdir()
    stale = dist / f"{MODULE}-0.0.9-py3-none-any.whl"
    stale.write_bytes(b"an earlier release's wheel")
    bench.set_version("0.2.0")

    result = ok(ship(bench, key))

    wheel = bench.project / "release" / f"{MODULE}-0.2.0" / f"{MODULE}-0.2.0-py3-none-any.whl"
    assert calls == [(str(wheel), True)], "the certified run is on the freshly built wheel, nothing else"
    assert stale.read_bytes() == b"an earlier release's wheel", "dist/ is left alone"
    with zipfile.ZipFile(wheel) as zf:
        assert json.loads(zf.read(f"{MODULE}/hardpoint-manifest.json"))["version"] == "0.2.0"
    (target,) = bench.targets()
    assert target["path"] == f"acme/{MODULE}/{MODULE}-0.2.0-py3-none-any.whl"
    assert target["hashes"]["sha256"] == wheel_subject(wheel).sha256
    assert target["evidence"]["signed_by"] == [keyid]
    assert (target["evidence"]["certified"], target["evidence"]["for_this_wheel"]) == (True, True)
    # What it did and how long each step took.
    for step in ("[1/3] build", "[2/3] certify", "[3/3] publish"):
        assert step in result.stdout, result.stdout
    assert f"shipped {MODULE} 0.2.0 in " in result.stdout
    assert result.stdout.count(" s)\n") == 3, result.stdout


def test_ship_json_lists_the_steps_with_their_times(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conformance_cli, "run_check", stand_in([]))
    out = json.loads(ok(ship(bench, signing_key[0], "--json")).stdout)
    assert [s["step"] for s in out["steps"]] == ["build", "certify", "publish"]
    assert all(s["seconds"] >= 0 for s in out["steps"])
    assert (out["module"], out["version"], out["supplier"]) == (MODULE, "0.1.0", "acme")
    assert out["evidence"]["signed_by"] == [signing_key[1]]


@pytest.mark.parametrize(
    "case",
    [
        ("fail", True, "the certified conformance run failed (1 of 2 checks: test_field_constraints)"),
        ("pass", False, "its evidence would be refused"),
    ],
    ids=["failing", "uncertified"],
)
def test_ship_publishes_nothing_when_the_run_fails_or_is_not_certified(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, case: tuple[str, bool, str]
) -> None:
    verdict, certified, why = case
    monkeypatch.setattr(conformance_cli, "run_check", stand_in([], verdict=verdict, certified_evidence=certified))
    result = ship(bench, signing_key[0])
    assert result.exit_code == 1, result.stdout
    assert f"hardpoint: error: {MODULE} 0.1.0 is not published: {why}" in result.stderr
    if not certified:
        assert "relaxed run" in result.stderr
    assert bench.targets() == []


def test_ship_refuses_a_version_already_published_before_certifying_it(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Calls = []
    monkeypatch.setattr(conformance_cli, "run_check", stand_in(calls))
    ok(ship(bench, signing_key[0]))
    again = ship(bench, signing_key[0])
    assert again.exit_code == 1
    assert f"{MODULE} 0.1.0 is already published" in again.stderr
    assert "raise the version" in again.stderr
    assert len(calls) == 1, "no second certified run for a release that cannot be published"


def test_ship_refuses_missing_supplier_keys_before_certifying(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: Calls = []
    monkeypatch.setattr(conformance_cli, "run_check", stand_in(calls))
    result = ship(bench, signing_key[0], "--keys", tmp_path / "no-keys-here")
    assert result.exit_code == 1
    assert "private keys needed" in result.stderr
    assert calls == []


def test_publish_without_evidence_warns_and_show_says_which_release_carries_evidence(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 4: missing evidence shows when publishing and in ``release show``, not only at ``apply``."""
    monkeypatch.setattr(conformance_cli, "run_check", stand_in([]))
    ok(ship(bench, signing_key[0]))  # 0.1.0, with evidence
    bench.set_version("0.2.0")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(bench.root / "dist"),
         str(bench.project)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    plain = bench.root / "dist" / f"{MODULE}-0.2.0-py3-none-any.whl"

    published = ok(cli("release", "publish", bench.repo, "acme", plain, "--json"))
    json.loads(published.stdout)  # stdout stays JSON only: the warning goes to stderr
    assert published.stderr.startswith("hardpoint: warning: "), published.stderr
    assert f"acme/{MODULE}/{MODULE}-0.2.0-py3-none-any.whl (version 0.2.0) is published without conformance " in (
        " ".join(published.stderr.split())
    )
    assert "require_evidence = true refuses it" in published.stderr
    assert "hardpoint release ship" in published.stderr

    by_version = {t["version"]: t for t in bench.targets()}
    assert by_version["0.2.0"]["evidence"] is None
    assert by_version["0.1.0"]["evidence"]["signed_by"] == [signing_key[1]]
    shown = ok(cli("release", "show", bench.repo)).stdout
    lines = shown.splitlines()
    at = next(i for i, line in enumerate(lines) if f"{MODULE}-0.2.0-py3-none-any.whl" in line)
    assert lines[at + 1].strip() == (
        "evidence: none (a platform with [update] require_evidence = true refuses this release)"
    ), shown


def test_show_names_the_key_that_signed_the_evidence(
    bench: Bench, signing_key: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conformance_cli, "run_check", stand_in([]))
    ok(ship(bench, signing_key[0]))
    shown = ok(cli("release", "show", bench.repo)).stdout
    assert f"evidence: certified, 2 checks passed, signed by key {signing_key[1]}" in shown, shown
