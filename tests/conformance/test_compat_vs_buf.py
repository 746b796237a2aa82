"""The wire-compatibility checker agrees with ``buf breaking`` (WIRE category) on a corpus of schema changes.

Issue 6, acceptance point 3.  Every case under ``compat_corpus/<case>/`` is a pair of ``old/x.proto`` and
``new/x.proto`` plus ``expected.json`` (the verdict and buf's rule ids, recorded from buf 1.x).  For each
case both sides are compiled with grpc_tools' bundled protoc, checked with
:func:`hardpoint.conformance.check_wire_compatibility` and with ``buf breaking new --against old`` under a
``breaking: use: [WIRE]`` config; the verdicts and the sets of rule ids must be equal, except for the cases
listed with a justification in ``DISAGREEMENTS``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from hardpoint.conformance import check_wire_compatibility

CORPUS = Path(__file__).parent / "compat_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "old" / "x.proto").is_file())
BUF = Path(sys.executable).parent / "buf"
BUF_YAML = "version: v2\nbreaking:\n  use:\n    - WIRE\n"

# case name -> why our verdict or rule ids legitimately differ from buf's.  Empty: full agreement.
DISAGREEMENTS: dict[str, str] = {}


@dataclass(frozen=True)
class Outcome:
    ours: frozenset[str]
    buf: frozenset[str] | None  # None when buf is not installed
    buf_breaking: bool | None


def _protoc(src: Path, out: Path) -> bytes:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", "--include_imports"]
    subprocess.run([*cmd, f"--descriptor_set_out={out}", "x.proto"], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def _buf(work: Path) -> tuple[bool, frozenset[str]]:
    proc = subprocess.run(
        [str(BUF), "breaking", "new", "--against", "old", "--error-format", "json"],
        check=False,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode in (0, 100), f"buf failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
    rules = frozenset(json.loads(line)["type"] for line in proc.stdout.splitlines() if line.strip())
    return proc.returncode == 100, rules


def _run_case(case: str, tmp: Path) -> Outcome:
    work = tmp / case
    for side in ("old", "new"):
        shutil.copytree(CORPUS / case / side, work / side)
        (work / side / "buf.yaml").write_text(BUF_YAML)
    old = _protoc(work / "old", work / "old.pb")
    new = _protoc(work / "new", work / "new.pb")
    ours = frozenset(f.rule for f in check_wire_compatibility(old, new))
    if not BUF.is_file():
        return Outcome(ours, None, None)
    breaking, rules = _buf(work)
    return Outcome(ours, rules, breaking)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    tmp = tmp_path_factory.mktemp("compat")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(lambda case: (case, _run_case(case, tmp)), CASES)
        return dict(results)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    verdicts = [json.loads((CORPUS / c / "expected.json").read_text())["breaking"] for c in CASES]
    assert any(verdicts), "corpus needs breaking cases"
    assert not all(verdicts), "corpus needs compatible cases"


@pytest.mark.parametrize("case", CASES)
def test_checker_matches_recorded_verdict(case: str, outcomes: dict[str, Outcome]) -> None:
    expected = json.loads((CORPUS / case / "expected.json").read_text())
    ours = outcomes[case].ours
    if case in DISAGREEMENTS:
        pytest.skip(DISAGREEMENTS[case])
    assert bool(ours) == expected["breaking"], f"{case}: ours={sorted(ours)} expected={expected}"
    assert sorted(ours) == expected["rules"]


@pytest.mark.skipif(not BUF.is_file(), reason="buf (PyPI buf-bin) is not installed next to the interpreter")
def test_checker_agrees_with_buf(outcomes: dict[str, Outcome]) -> None:
    verdict_mismatch = {
        case: (sorted(o.ours), sorted(o.buf or ()))
        for case, o in outcomes.items()
        if bool(o.ours) != o.buf_breaking and case not in DISAGREEMENTS
    }
    rule_mismatch = {
        case: (sorted(o.ours), sorted(o.buf or ()))
        for case, o in outcomes.items()
        if o.ours != o.buf and case not in DISAGREEMENTS
    }
    assert not verdict_mismatch, f"verdicts differ from buf (ours, buf): {verdict_mismatch}"
    assert not rule_mismatch, f"rule ids differ from buf (ours, buf): {rule_mismatch}"
    stale = set(DISAGREEMENTS) - set(outcomes)
    assert not stale, f"DISAGREEMENTS names unknown cases: {stale}"


@pytest.mark.skipif(not BUF.is_file(), reason="buf (PyPI buf-bin) is not installed next to the interpreter")
def test_recorded_verdicts_are_bufs(outcomes: dict[str, Outcome]) -> None:
    """expected.json was recorded from buf; catches a buf upgrade that changes the WIRE rules."""
    for case, o in outcomes.items():
        expected = json.loads((CORPUS / case / "expected.json").read_text())
        assert (o.buf_breaking, sorted(o.buf or ())) == (expected["breaking"], expected["rules"]), case


def _compiled(case: str, tmp_path: Path) -> tuple[bytes, bytes]:
    return (
        _protoc(CORPUS / case / "old", tmp_path / "old.pb"),
        _protoc(CORPUS / case / "new", tmp_path / "new.pb"),
    )


def test_findings_name_the_element(tmp_path: Path) -> None:
    old, new = _compiled("field_deleted", tmp_path)
    [finding] = check_wire_compatibility(old, new)
    assert (finding.rule, finding.element) == ("FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "hp.compat.v1.Msg.b")
    assert "2" in finding.message


def test_messages_restricts_to_reachable_types(tmp_path: Path) -> None:
    old, new = _compiled("field_deleted", tmp_path)
    assert check_wire_compatibility(old, new, messages=["hp.compat.v1.Inner"]) == []
    assert len(check_wire_compatibility(old, new, messages=["hp.compat.v1.Msg"])) == 1
    # Leaf is nested in Outer and used by it: reached through Outer
    old, new = _compiled("nested_field_deleted", tmp_path)
    [finding] = check_wire_compatibility(old, new, messages=[".hp.compat.v1.Outer"])
    assert finding.element == "hp.compat.v1.Outer.Leaf.w"
    # a package change is a file rule: not checked when restricted to messages
    old, new = _compiled("package_changed", tmp_path)
    assert check_wire_compatibility(old, new, messages=["hp.compat.v1.Msg"]) == []


def test_accepts_descriptor_set_objects(tmp_path: Path) -> None:
    from google.protobuf.descriptor_pb2 import FileDescriptorSet

    old, new = _compiled("int32_to_double", tmp_path)
    old_set, new_set = FileDescriptorSet.FromString(old), FileDescriptorSet.FromString(new)
    [finding] = check_wire_compatibility(old_set, new_set)
    assert finding.rule == "FIELD_WIRE_COMPATIBLE_TYPE"
    assert check_wire_compatibility(old_set, old_set) == []
