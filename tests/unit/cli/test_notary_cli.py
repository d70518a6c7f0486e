"""``consentflow notary keygen`` and ``consentflow verify-proof`` (issue 22): the key pair written as the auditor and
the notary need it, never over a file; a proof document checked with no database, exit 0 when it holds, otherwise
non-zero with one line naming the record and what failed."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.core.checkpoint import Signer, Verifier
from consentflow.core.log_proof import build_subject_proof
from consentflow.notary.keys import read_signer
from tests.support.memory_log import MemoryLog, erasure_notice, ledger_entries

SUBJECT = "subject-3"


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _keygen(tmp_path: Path, *extra: str) -> tuple[Any, Path, Path]:
    private, public = tmp_path / "log.key", tmp_path / "log.pub"
    return _invoke("notary", "keygen", "--private-key", str(private), "--public-key", str(public), *extra), private, public


def test_keygen_writes_a_private_key_only_its_owner_reads_and_the_verifier_key(tmp_path: Path) -> None:
    result, private, public = _keygen(tmp_path, "--name", "consent.example.org/log")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    signer = read_signer(private)
    verifier = Verifier.parse(public.read_text())
    assert signer.verifier == verifier and verifier.name == "consent.example.org/log"
    assert result.output.strip() == str(verifier)


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    first, private, public = _keygen(tmp_path)
    assert first.exit_code == 0
    before = private.read_text(), public.read_text()
    again, _, _ = _keygen(tmp_path)
    assert again.exit_code == 1
    assert again.output == f"Error: {private} exists: a key is never overwritten (move it away, or give another path)\n"
    assert (private.read_text(), public.read_text()) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "has space"), "Error: key name 'has space' must be non-empty, with no spaces and no '+'\n"),
        (("--name", "a+b"), "Error: key name 'a+b' must be non-empty, with no spaces and no '+'\n"),
    ],
)
def test_keygen_refuses_a_bad_name_in_one_line_and_writes_nothing(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result, private, public = _keygen(tmp_path, *args)
    assert (result.exit_code, result.output) == (1, message)
    assert not private.exists() and not public.exists()


def test_keygen_refuses_a_missing_directory_and_one_path_for_both(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "log.key"
    result = _invoke("notary", "keygen", "--private-key", str(missing), "--public-key", str(tmp_path / "log.pub"))
    assert (result.exit_code, result.output) == (1, f"Error: {missing.parent} is not a directory\n")
    same = str(tmp_path / "log.key")
    result = _invoke("notary", "keygen", "--private-key", same, "--public-key", same)
    assert (result.exit_code, result.output) == (1, "Error: --private-key and --public-key name the same file\n")


def _proof_files(tmp_path: Path, after: int = 0) -> tuple[Path, Path, dict[str, Any]]:
    """A key pair from keygen and a proof signed with it, written where an auditor would keep them; ``after``: entries
    of the subject's appended after the checkpoint."""
    result, private, public = _keygen(tmp_path)
    assert result.exit_code == 0
    signer = read_signer(private)
    log = MemoryLog()
    for entry in ledger_entries(SUBJECT, 3) + ledger_entries("subject-4", 2):
        log.append_entry("embedded", entry)
    log.append_notice("embedded", erasure_notice(SUBJECT, "n-3"))
    log.sign("embedded", signer)
    for entry in ledger_entries(SUBJECT, 3 + after)[3:]:
        log.append_entry("embedded", entry)
    document = build_subject_proof(log, SUBJECT)
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(document))
    return proof, public, document


def test_verify_proof_exits_0_on_a_good_proof(tmp_path: Path) -> None:
    proof, public, _ = _proof_files(tmp_path)
    result = _invoke("verify-proof", str(proof), "--public-key", str(public))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"proof holds: subject {SUBJECT}; ledger entries: 3, erasure notices: 1; in the log under "
        "consentflow.example/log/embedded at 6 leaves, signed by consentflow.example/log\n"
    )


def test_verify_proof_says_how_many_records_wait_for_the_next_checkpoint(tmp_path: Path) -> None:
    proof, public, _ = _proof_files(tmp_path, after=2)
    result = _invoke("verify-proof", str(proof), "--public-key", str(public))
    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "at 6 leaves, signed by consentflow.example/log; 2 more after the latest checkpoint, not proved here\n"
    )


def _rewrite(proof: Path, document: dict[str, Any]) -> None:
    proof.write_text(json.dumps(document))


def test_verify_proof_names_a_tampered_leaf(tmp_path: Path) -> None:
    proof, public, document = _proof_files(tmp_path)
    leaf = document["leaves"][1]
    leaf["leaf"] = base64.b64encode(base64.b64decode(leaf["leaf"]).replace(b'"web"', b'"app"')).decode()
    _rewrite(proof, document)
    result = _invoke("verify-proof", str(proof), "--public-key", str(public))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: proof refused: ledger entry {leaf['record']} (leaf {leaf['index']} of log 'embedded'): "
        "its leaf does not hash to its entry_hash (the leaf or the entry altered)\n"
    )


def test_verify_proof_refuses_a_checkpoint_signed_with_another_key(tmp_path: Path) -> None:
    proof, _, _ = _proof_files(tmp_path)
    other = tmp_path / "other.pub"
    other.write_text(f"{Signer.generate('consentflow.example/log').verifier}\n")
    result = _invoke("verify-proof", str(proof), "--public-key", str(other))
    assert result.exit_code == 1
    assert result.output.startswith("Error: proof refused: the checkpoint of log 'embedded' is refused: no signature by")
    assert result.output.endswith(": signed with another key\n")


def test_verify_proof_refuses_an_edited_size(tmp_path: Path) -> None:
    proof, public, document = _proof_files(tmp_path)
    item = document["checkpoints"][0]
    item["note"] = item["note"].replace("\n6\n", "\n7\n", 1)
    _rewrite(proof, document)
    result = _invoke("verify-proof", str(proof), "--public-key", str(public))
    assert result.exit_code == 1
    assert result.output.startswith("Error: proof refused: the checkpoint of log 'embedded' is refused: the signature by")
    assert result.output.endswith("does not verify: the note was altered\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        (
            '{"schema": "SubjectLogProof/v1"}',
            "is not a SubjectLogProof/v1 proof: the document: 'subject_id' is a required property",
        ),
        ("[]", "is not a SubjectLogProof/v1 proof: the document: [] is not of type 'object'"),
    ],
)
def test_verify_proof_refuses_what_is_not_a_proof_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    _, public, _ = _proof_files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = _invoke("verify-proof", str(bad), "--public-key", str(public))
    assert result.exit_code == 1 and result.output.startswith(f"Error: {bad} {message}"), result.output
    assert result.output.count("\n") == 1


def test_verify_proof_names_a_malformed_leaf_hash_where_it_is(tmp_path: Path) -> None:
    proof, public, document = _proof_files(tmp_path)
    document["leaves"][0]["inclusion"][0] = "short"
    _rewrite(proof, document)
    result = _invoke("verify-proof", str(proof), "--public-key", str(public))
    assert result.exit_code == 1 and result.output.startswith(
        f"Error: {proof} is not a SubjectLogProof/v1 proof: leaves/0/inclusion/0:"
    )


def test_verify_proof_refuses_a_missing_or_bad_public_key(tmp_path: Path) -> None:
    proof, _, _ = _proof_files(tmp_path)
    missing = tmp_path / "none.pub"
    result = _invoke("verify-proof", str(proof), "--public-key", str(missing))
    assert (result.exit_code, result.output) == (1, f"Error: cannot read the public key: No such file or directory: {missing}\n")
    bad = tmp_path / "bad.pub"
    bad.write_text("nonsense\n")
    result = _invoke("verify-proof", str(proof), "--public-key", str(bad))
    assert result.exit_code == 1 and result.output.startswith(f"Error: {bad}: a verifier key is <name>+")
