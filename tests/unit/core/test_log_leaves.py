"""The consent log's leaves (issue 22): a ledger entry's leaf is the encoding its entry hash covers; an erasure
notice's is fixed, deterministic, metadata only."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from consentflow.contracts.records import ErasureNotice
from consentflow.core.ledger import canonical_encoding
from consentflow.core.log_leaves import erasure_notice_leaf, ledger_entry_leaf
from tests.support.builders import feed, processor_with
from tests.support.samples import subject_events

NOTICE: ErasureNotice = {
    "notice_id": "req-cand-000042:acme-corp",
    "subject_id": "cand-000042",
    "recipient_id": "acme-corp",
    "categories": ["professional_cv", "hard_skills"],
    "retained_categories": [],
    "request_id": "req-cand-000042",
    "requested_at": datetime(2024, 3, 1, 9, 36, 0, 123456, tzinfo=UTC),
    "fulfilled_at": datetime(2024, 3, 2, 0, 0, tzinfo=UTC),
    "revision": (1 << 32) | 1,
}


def test_a_ledger_leaf_is_what_its_entry_hash_covers() -> None:
    """SHA-256 of the leaf is the entry's own ``entry_hash``: each ledger row names its leaf; Kafka's coordinates,
    which only Kafka runs have, stay out."""
    source = {"topic": "consentflow.consent", "partition": 3, "offset": 41}
    entries = feed(processor_with(), *subject_events(), source=source).ledger
    assert len(entries) == 2
    for entry in entries:
        leaf = ledger_entry_leaf(entry)
        assert leaf == canonical_encoding(entry)
        assert hashlib.sha256(leaf).hexdigest() == entry["entry_hash"]
        assert leaf == ledger_entry_leaf({**entry, "source": None})


def test_an_erasure_notice_leaf_is_fixed() -> None:
    assert erasure_notice_leaf(NOTICE) == (
        b'["erasure-notice","req-cand-000042:acme-corp","cand-000042","acme-corp",["hard_skills","professional_cv"],'
        b'[],"req-cand-000042",1709285760123456,1709337600000000,4294967297]'
    )


def test_an_erasure_notice_leaf_depends_on_contents_not_order() -> None:
    reordered: dict[str, Any] = {**NOTICE, "categories": ["hard_skills", "professional_cv"]}
    assert erasure_notice_leaf(reordered) == erasure_notice_leaf(NOTICE)
    assert erasure_notice_leaf({**NOTICE, "revision": NOTICE["revision"] + 1}) != erasure_notice_leaf(NOTICE)


def test_a_notice_leaf_never_reads_as_a_ledger_leaf() -> None:
    """Ten elements with two arrays against an entry's eleven scalars, so one log holds both without ambiguity."""
    entry = feed(processor_with(), *subject_events()).ledger[0]
    notice, ledger = json.loads(erasure_notice_leaf(NOTICE)), json.loads(ledger_entry_leaf(entry))
    assert (len(notice), len(ledger)) == (10, 11)
    assert any(isinstance(v, list) for v in notice) and not any(isinstance(v, list) for v in ledger)


def test_leaves_hold_only_the_records_fields() -> None:
    """Every leaf value comes from the record's own fields (metadata only); ASCII bytes."""
    leaf = erasure_notice_leaf(NOTICE)
    assert leaf.isascii()
    values = json.loads(leaf)[1:]
    flat = {str(v) for value in values for v in (value if isinstance(value, list) else [value])}
    fields = {str(v) for value in NOTICE.values() for v in (value if isinstance(value, list) else [value])}
    assert flat - fields <= {str(1709285760123456), str(1709337600000000)}
