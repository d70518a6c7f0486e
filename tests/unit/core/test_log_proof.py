"""A subject's proof of record (issue 22): built from a ``LogReader`` (the log in memory), valid against its JSON
Schema, verified with the public key alone; each tampering refused by name; the checkpoint's signature held against
PyNaCl, a second Ed25519 implementation."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import jsonschema
import nacl.exceptions
import nacl.signing
import pytest

from consentflow.core.checkpoint import Signer
from consentflow.core.log_proof import SCHEMA_ID, ProofRefused, build_subject_proof, verify_subject_proof
from consentflow.core.merkle import MerkleTree, leaf_hash
from tests.support.memory_log import MemoryLog, erasure_notice, ledger_entries

SUBJECT = "subject-7"
LEDGER_LOG = "ledger-entries/3"
NOTICE_LOG = "erasure-notices/1"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("consentflow.test/log")


def _log(signer: Signer) -> MemoryLog:
    """Two logs with the subject's records among others', each signed; then one more entry, after the checkpoint."""
    log = MemoryLog()
    others = ledger_entries("subject-8", 5)
    mine = ledger_entries(SUBJECT, 4)
    for theirs, ours in zip(others, mine, strict=False):
        log.append_entry(LEDGER_LOG, theirs)
        log.append_entry(LEDGER_LOG, ours)
    log.append_notice(NOTICE_LOG, erasure_notice("subject-8", "n-8"))
    log.append_notice(NOTICE_LOG, erasure_notice(SUBJECT, "n-7"))
    log.append_notice(NOTICE_LOG, erasure_notice(SUBJECT, "n-7", revision=1))
    log.sign(LEDGER_LOG, signer)
    log.sign(NOTICE_LOG, signer)
    log.append_entry(LEDGER_LOG, ledger_entries(SUBJECT, 5)[-1])  # after the latest checkpoint: pending
    return log


@pytest.fixture(scope="module")
def proof(signer: Signer) -> dict[str, Any]:
    return build_subject_proof(_log(signer), SUBJECT)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    path = resources.files("consentflow.schemas") / "SubjectLogProof" / "v1.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_proof_holds_every_record_of_the_subject_under_a_checkpoint(
    proof: dict[str, Any], signer: Signer, validator: jsonschema.protocols.Validator
) -> None:
    validator.validate(proof)
    assert proof["schema"] == SCHEMA_ID and proof["subject_id"] == SUBJECT and proof["pending"] == 1
    kinds = [(leaf["kind"], leaf["log"]) for leaf in proof["leaves"]]
    assert kinds == [("erasure-notice", NOTICE_LOG)] * 2 + [("ledger-entry", LEDGER_LOG)] * 4
    assert [leaf["record"] for leaf in proof["leaves"][:2]] == ["n-7@0", "n-7@1"]
    assert [cp["log"] for cp in proof["checkpoints"]] == [NOTICE_LOG, LEDGER_LOG]
    summary = verify_subject_proof(json.loads(json.dumps(proof)), signer.verifier)
    assert (summary.subject_id, summary.ledger_entries, summary.erasure_notices) == (SUBJECT, 4, 2)
    assert [cp.size for cp in summary.checkpoints] == [3, 8]


def test_a_subject_the_log_does_not_hold_has_an_empty_proof_that_holds(signer: Signer) -> None:
    empty = build_subject_proof(_log(signer), "nobody")
    assert empty["leaves"] == [] and empty["checkpoints"] == [] and empty["pending"] == 0
    assert verify_subject_proof(empty, signer.verifier).ledger_entries == 0


def test_leaves_of_a_log_never_signed_are_pending(signer: Signer) -> None:
    log = MemoryLog()
    for entry in ledger_entries(SUBJECT, 2):
        log.append_entry("embedded", entry)
    unsigned = build_subject_proof(log, SUBJECT)
    assert unsigned["pending"] == 2 and unsigned["leaves"] == [] and unsigned["checkpoints"] == []


def _ledger(document: dict[str, Any], n: int = 0) -> dict[str, Any]:
    leaf: dict[str, Any] = [item for item in document["leaves"] if item["kind"] == "ledger-entry"][n]
    return leaf


def _notice(document: dict[str, Any]) -> dict[str, Any]:
    leaf: dict[str, Any] = next(item for item in document["leaves"] if item["kind"] == "erasure-notice")
    return leaf


def _tamper_ledger_leaf(document: dict[str, Any]) -> None:
    leaf = _ledger(document, 1)
    data = base64.b64decode(leaf["leaf"]).replace(b'"withdrawn"', b'"granted"')
    leaf["leaf"] = base64.b64encode(data).decode()


def _tamper_ledger_leaf_and_hash(document: dict[str, Any]) -> None:
    import hashlib

    _tamper_ledger_leaf(document)
    leaf = _ledger(document, 1)
    leaf["record"] = hashlib.sha256(base64.b64decode(leaf["leaf"])).hexdigest()  # as a rewrite of the row would


def _tamper_notice_leaf(document: dict[str, Any]) -> None:
    leaf = _notice(document)
    data = base64.b64decode(leaf["leaf"]).replace(b'"email",', b"")
    leaf["leaf"] = base64.b64encode(data).decode()


def _path_from_another_tree(document: dict[str, Any]) -> None:
    leaf = _ledger(document, 2)
    other = MerkleTree()
    other.extend(f"another leaf {n}".encode() for n in range(8))  # the shape of the signed tree, other leaves
    leaf["inclusion"] = [base64.b64encode(h).decode() for h in other.inclusion_proof(leaf["index"], 8)]


def _another_key(document: dict[str, Any]) -> None:
    forger = MemoryLog()
    for entry in ledger_entries(SUBJECT, 1):
        forger.append_entry(LEDGER_LOG, entry)
    note = forger.sign(LEDGER_LOG, Signer.generate("consentflow.test/log"))  # same name, another key
    document["checkpoints"][1]["note"] = note


def _edit_size(document: dict[str, Any]) -> None:
    item = document["checkpoints"][1]
    origin, size, rest = item["note"].split("\n", 2)
    item["note"] = f"{origin}\n{int(size) + 1}\n{rest}"


def _another_subjects_leaf(document: dict[str, Any]) -> None:
    document["subject_id"] = "subject-8"


def _leaf_index_moved(document: dict[str, Any]) -> None:
    _ledger(document)["index"] += 2


def _notice_renamed(document: dict[str, Any]) -> None:
    _notice(document)["record"] = "n-9@0"


def _leaf_not_a_record(document: dict[str, Any]) -> None:
    _notice(document)["leaf"] = base64.b64encode(b"\xff not json").decode()


def _checkpoint_dropped(document: dict[str, Any]) -> None:
    del document["checkpoints"][0]


TAMPERINGS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (
        _tamper_ledger_leaf,
        r"ledger entry [0-9a-f]{64} \(leaf 3 of log 'ledger-entries/3'\): its leaf does not hash to its entry_hash",
    ),
    (
        _tamper_ledger_leaf_and_hash,
        r"ledger entry [0-9a-f]{64} \(leaf 3 of log 'ledger-entries/3'\): not in the signed tree of 8 leaves: the inclusion proof of leaf 3 does not lead",
    ),
    (_tamper_notice_leaf, r"erasure notice n-7@0 \(leaf 1 of log 'erasure-notices/1'\): not in the signed tree of 3 leaves"),
    (_path_from_another_tree, r"ledger entry [0-9a-f]{64} \(leaf 5 of log 'ledger-entries/3'\): not in the signed tree"),
    (
        _another_key,
        r"the checkpoint of log 'ledger-entries/3' is refused: no signature by the trusted key .*: signed with another key",
    ),
    (_edit_size, r"the checkpoint of log 'ledger-entries/3' is refused: .* does not verify: the note was altered"),
    (_another_subjects_leaf, r"erasure notice n-7@0 \(leaf 1 of log 'erasure-notices/1'\): its leaf is not of subject subject-8"),
    (_leaf_index_moved, r"ledger entry [0-9a-f]{64} \(leaf 3 of log 'ledger-entries/3'\): not in the signed tree"),
    (_notice_renamed, r"erasure notice n-9@0 \(leaf 1 of log 'erasure-notices/1'\): its leaf is of notice n-7@0$"),
    (
        _leaf_not_a_record,
        r"erasure notice n-7@0 \(leaf 1 of log 'erasure-notices/1'\): its leaf is not a record's canonical JSON",
    ),
    (_checkpoint_dropped, r"erasure notice n-7@0 \(leaf 1 of log 'erasure-notices/1'\): no checkpoint of its log in the proof"),
]


@pytest.mark.parametrize(("tamper", "named"), TAMPERINGS, ids=[t.__name__.lstrip("_") for t, _ in TAMPERINGS])
def test_each_tampering_is_refused_by_name(
    proof: dict[str, Any], signer: Signer, tamper: Callable[[dict[str, Any]], None], named: str
) -> None:
    document = copy.deepcopy(proof)
    tamper(document)
    with pytest.raises(ProofRefused, match=named):
        verify_subject_proof(document, signer.verifier)


def test_a_signature_by_the_trusted_key_over_other_text_is_refused_as_altered(proof: dict[str, Any], signer: Signer) -> None:
    document = copy.deepcopy(proof)
    item = document["checkpoints"][0]
    item["note"] = item["note"].replace("time 2026", "time 2025")
    with pytest.raises(ProofRefused, match=r"the checkpoint of log 'erasure-notices/1' is refused: .* the note was altered"):
        verify_subject_proof(document, signer.verifier)


def test_the_checkpoint_signature_verifies_with_pynacl(proof: dict[str, Any], signer: Signer) -> None:
    note = proof["checkpoints"][1]["note"]
    text, signature_line = note.split("\n\n")
    signature = base64.b64decode(signature_line.removesuffix("\n").split(" ")[-1])
    assert signature[:4] == signer.verifier.key_id.to_bytes(4, "big")
    key = nacl.signing.VerifyKey(signer.verifier.public_key)
    key.verify(text.encode() + b"\n", signature[4:])  # the signed text ends with its last line's newline
    origin, size, root = text.split("\n")[:3]
    with pytest.raises(nacl.exceptions.BadSignatureError):
        key.verify(f"{origin}\n{int(size) + 1}\n{root}".encode(), signature[4:])


def test_a_leaf_hash_in_the_proof_is_the_rfc_9162_leaf_hash_of_its_bytes(proof: dict[str, Any], signer: Signer) -> None:
    log = _log(signer)
    leaf = _ledger(proof)
    assert log.trees[LEDGER_LOG].leaf_hash(leaf["index"]) == leaf_hash(base64.b64decode(leaf["leaf"]))
