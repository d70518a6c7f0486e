"""The leaves of the consent log (issue 22): the canonical bytes of each record as written to its output topic.

Metadata only, as every output: ids, purposes, categories, times, hashes; never a value. Kafka coordinates are left
out, so the embedded runner and the Kafka path give the same leaves for the same records.

* A **ledger entry** is its ``ledger.canonical_encoding``, the bytes its ``entry_hash`` already covers: the leaf
  binds the subject's chain (``previous_hash`` included), and ``SHA-256(leaf) == entry_hash`` ties each ledger row
  to its leaf with no second encoding to trust.
* An **erasure notice** is a compact ASCII JSON array: ``"erasure-notice"``, then notice id, subject, recipient,
  categories and retained categories (each sorted), request id, requested and fulfilled times (µs since the epoch,
  UTC) and the revision; each revision is a leaf of its own. Ten elements, two of them arrays, where an entry's
  array holds eleven scalars: a notice's bytes never read as an entry's.
"""

from __future__ import annotations

from collections.abc import Mapping
from json import dumps
from typing import Any

from consentflow.contracts.timestamp_plan import micros
from consentflow.core.ledger import entry_encoding

ERASURE_NOTICE_TAG = "erasure-notice"


def ledger_entry_leaf(entry: Mapping[str, Any]) -> bytes:
    """The leaf bytes of a ledger entry: its canonical encoding (``ledger.HASHED_FIELDS``), written the processors'
    faster way (``ledger.entry_encoding``, the same bytes)."""
    return entry_encoding(entry)


def erasure_notice_leaf(notice: Mapping[str, Any]) -> bytes:
    """The leaf bytes of an erasure notice (module docstring), deterministic for its contents."""
    values = [
        ERASURE_NOTICE_TAG,
        notice["notice_id"],
        notice["subject_id"],
        notice["recipient_id"],
        sorted(notice["categories"]),
        sorted(notice["retained_categories"]),
        notice["request_id"],
        micros(notice["requested_at"]),
        micros(notice["fulfilled_at"]),
        notice["revision"],
    ]
    return dumps(values, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
