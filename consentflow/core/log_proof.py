"""A subject's proof of record (issue 22): each of their ledger entries and erasure notices, its leaf and inclusion path
in the consent log, with the signed checkpoints the paths lead to; built from a ``LogReader``, checked with the log's
public key alone. No I/O.

The document (JSON Schema ``schemas/SubjectLogProof/v1.schema.json``)::

    {"schema": "SubjectLogProof/v1", "subject_id": ..., "pending": <leaves after their log's latest checkpoint>,
     "checkpoints": [{"log": ..., "note": <the signed checkpoint>}, ...],
     "leaves": [{"log": ..., "index": ..., "kind": "ledger-entry" | "erasure-notice", "record": ...,
                 "leaf": <base64 leaf bytes>, "inclusion": [<base64 hash>, ...]}, ...]}

Each path is against its log's checkpoint in the document, whose signed size and root are the only ones trusted
(``merkle.verify_inclusion``: a path alone does not fix the tree's size). A ledger entry's leaf is the bytes its
``entry_hash`` covers, so ``SHA-256(leaf) == record`` ties the ledger row to its leaf; every leaf must name the
document's subject, so a proof cannot lend another subject's records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consentflow.core.checkpoint import Checkpoint, NoteError, Verifier, open_checkpoint
from consentflow.core.ledger import HASHED_FIELDS
from consentflow.core.log_leaves import ERASURE_NOTICE_TAG
from consentflow.core.log_reader import LeafKind, LogReader, notice_record
from consentflow.core.merkle import ProofError, leaf_hash, verify_inclusion

SCHEMA_NAME = "SubjectLogProof"
SCHEMA_VERSION = 1
SCHEMA_ID = f"{SCHEMA_NAME}/v{SCHEMA_VERSION}"
# Where a notice's leaf array (log_leaves.erasure_notice_leaf) holds its id, subject and revision, and its length.
_NOTICE_ID, _NOTICE_SUBJECT, _NOTICE_REVISION = 1, 2, 9
_NOTICE_LENGTH = _NOTICE_REVISION + 1
_SUBJECT_FIELD = {LeafKind.LEDGER_ENTRY: HASHED_FIELDS.index("subject_id"), LeafKind.ERASURE_NOTICE: _NOTICE_SUBJECT}


class ProofRefused(ValueError):
    """A proof document that does not hold; the message names the first failure: which record, what failed."""


@dataclass(frozen=True)
class ProofSummary:
    """What a verified proof showed: the subject, how many of each kind of record, and under which checkpoints."""

    subject_id: str
    ledger_entries: int
    erasure_notices: int
    checkpoints: tuple[Checkpoint, ...]
    pending: int


def unsigned_checkpoint(note: str) -> Checkpoint:
    """The checkpoint in a note read without checking its signature: the builder's size, the verifier checks it."""
    try:
        return Checkpoint.parse(note[: note.rfind("\n\n") + 1])
    except NoteError as error:
        raise ProofError(f"the store's latest checkpoint is unreadable: {error}") from error


def build_subject_proof(reader: LogReader, subject_id: str) -> dict[str, Any]:
    """The proof document of ``subject_id``: every leaf of theirs under its log's latest checkpoint, with its path.

    Leaves appended since that checkpoint are counted in ``pending``; the next checkpoint covers them.
    """
    leaves = reader.leaves_of(subject_id)
    sizes: dict[str, int] = {}
    checkpoints: list[dict[str, str]] = []
    for log in sorted({leaf.log for leaf in leaves}):
        note = reader.latest_checkpoint(log)
        if note is not None:
            sizes[log] = unsigned_checkpoint(note).size
            checkpoints.append({"log": log, "note": note})
    proven = [leaf for leaf in leaves if leaf.index < sizes.get(leaf.log, 0)]
    return {
        "schema": SCHEMA_ID,
        "subject_id": subject_id,
        "pending": len(leaves) - len(proven),
        "checkpoints": checkpoints,
        "leaves": [
            {
                "log": leaf.log,
                "index": leaf.index,
                "kind": leaf.kind.value,
                "record": leaf.record,
                "leaf": base64.b64encode(leaf.data).decode("ascii"),
                "inclusion": [
                    base64.b64encode(h).decode("ascii") for h in reader.inclusion(leaf.log, leaf.index, sizes[leaf.log])
                ],
            }
            for leaf in proven
        ],
    }


def _decoded(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ProofRefused(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ProofRefused(f"{what} is not standard base64") from error


def _checkpoints(document: Mapping[str, Any], verifier: Verifier) -> dict[str, Checkpoint]:
    """Each log's checkpoint, once its signature by ``verifier`` verifies."""
    opened: dict[str, Checkpoint] = {}
    for item in document["checkpoints"]:
        log = item["log"]
        if log in opened:
            raise ProofRefused(f"log {log!r} has two checkpoints in the proof")
        try:
            opened[log] = open_checkpoint(item["note"], verifier)
        except NoteError as error:
            raise ProofRefused(f"the checkpoint of log {log!r} is refused: {error}") from error
    return opened


def _leaf_fault(kind: LeafKind, data: bytes, record: str, subject_id: str) -> str | None:
    """What is wrong with a leaf's bytes for the record it claims to be (None: nothing)."""
    try:
        values = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return "its leaf is not a record's canonical JSON"
    if kind is LeafKind.LEDGER_ENTRY:
        if hashlib.sha256(data).hexdigest() != record:
            return "its leaf does not hash to its entry_hash (the leaf or the entry altered)"
    elif not (isinstance(values, list) and values[:1] == [ERASURE_NOTICE_TAG] and len(values) == _NOTICE_LENGTH):
        return "its leaf is not an erasure notice's"
    elif notice_record(values[_NOTICE_ID], values[_NOTICE_REVISION]) != record:
        return f"its leaf is of notice {notice_record(values[_NOTICE_ID], values[_NOTICE_REVISION])}"
    field = _SUBJECT_FIELD[kind]
    if not isinstance(values, list) or len(values) <= field or values[field] != subject_id:
        return f"its leaf is not of subject {subject_id}"
    return None


def verify_subject_proof(document: Mapping[str, Any], verifier: Verifier) -> ProofSummary:
    """Check a proof document (already valid against its JSON Schema) with the log's verifier key: every checkpoint's
    signature, each leaf's bytes against its record and subject, each leaf's inclusion under its log's checkpoint.

    Raises ``ProofRefused`` naming the first failure.
    """
    if document.get("schema") != SCHEMA_ID:
        raise ProofRefused(f"the document is not a {SCHEMA_ID} proof (schema {document.get('schema')!r})")
    subject_id = document["subject_id"]
    opened = _checkpoints(document, verifier)
    counts = dict.fromkeys(LeafKind, 0)
    for item in document["leaves"]:
        kind, log, index, record = LeafKind(item["kind"]), item["log"], item["index"], item["record"]
        name = f"{kind.value.replace('-', ' ')} {record} (leaf {index} of log {log!r})"
        checkpoint = opened.get(log)
        if checkpoint is None:
            raise ProofRefused(f"{name}: no checkpoint of its log in the proof")
        data = _decoded(item["leaf"], f"{name}: the leaf")
        path = [_decoded(h, f"{name}: inclusion hash {n}") for n, h in enumerate(item["inclusion"])]
        wrong = _leaf_fault(kind, data, record, subject_id)
        if wrong is not None:
            raise ProofRefused(f"{name}: {wrong}")
        try:
            verify_inclusion(index, checkpoint.size, leaf_hash(data), path, checkpoint.root)
        except ProofError as error:
            raise ProofRefused(f"{name}: not in the signed tree of {checkpoint.size} leaves: {error}") from error
        counts[kind] += 1
    return ProofSummary(
        subject_id,
        counts[LeafKind.LEDGER_ENTRY],
        counts[LeafKind.ERASURE_NOTICE],
        tuple(opened[log] for log in sorted(opened)),
        document["pending"],
    )
