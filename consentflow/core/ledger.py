"""The consent ledger: consent state over event time, and a tamper-evident record of it [6].

Two views of the same facts:

* the **timeline** per subject and purpose, in event time: ``state_at`` answers
  for any past instant, whatever order the events arrived in (a withdrawal at
  10:00 that arrives before the grant at 09:00 still leaves consent withdrawn;
  a grant and a withdrawal or refusal at the very same instant leave it
  withdrawn or refused: ``fact_order``);
* the **chain**, append-only in processing order: each ``LedgerEntry`` carries
  the SHA-256 of the subject's previous entry, computed over a canonical
  encoding that leaves out the Kafka coordinates (only Kafka runs have them),
  so ``verify_chain`` detects any altered, removed, inserted or reordered entry
  and names the first bad one.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from json import dumps
from json.encoder import encode_basestring_ascii as _json_string
from operator import itemgetter
from typing import Any

from consentflow.contracts.records import ConsentEvent, LedgerEntry, SourceCoordinates
from consentflow.contracts.timestamp_plan import micros
from consentflow.core.state import EVENT_ID, FACT_ACTION, GENESIS_HASH, OCCURRED_AT, ConsentFact, FactRow, SubjectState
from consentflow.policy.vocabulary import ConsentAction, ConsentState

_TIME = itemgetter(OCCURRED_AT)
_GRANTED_ACTION = ConsentAction.GRANTED.value
#: Fields of a LedgerEntry covered by its hash, in this order (source excluded).
HASHED_FIELDS = (
    "subject_id",
    "sequence",
    "event_id",
    "occurred_at",
    "purpose",
    "action",
    "channel",
    "policy_version",
    "source_service",
    "notice_id",
    "previous_hash",
)
_STATE_OF_ACTION = {
    ConsentAction.GRANTED.value: ConsentState.GRANTED,
    ConsentAction.WITHDRAWN.value: ConsentState.WITHDRAWN,
    ConsentAction.REFUSED.value: ConsentState.REFUSED,
}


def canonical_encoding(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: a compact JSON array of ``HASHED_FIELDS``, times in microseconds.

    The definition, written plainly: ``json.dumps`` of the field values, compact and
    ASCII-only. ``_canonical`` writes the same bytes faster for the processors.
    """
    values = [entry[name] for name in HASHED_FIELDS]
    values[3] = micros(values[3])  # occurred_at
    return dumps(values, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def _canonical(values: tuple[Any, ...]) -> bytes:
    """``canonical_encoding`` of ``values`` (``HASHED_FIELDS`` in order, ``occurred_at`` still a datetime).

    One f-string over the C string escaper, cheaper than a JSON encoder call for eleven
    values (bench/RESULTS.md §16), and every consent event is hashed [6]. Only ``notice_id``
    may be null; ``sequence`` is the one integer (JSON writes an int as ``str`` does).
    """
    subject_id, sequence, event_id, occurred_at, purpose, action, channel, version, service, notice_id, previous = values
    notice = "null" if notice_id is None else _json_string(notice_id)
    return (
        f"[{_json_string(subject_id)},{sequence},{_json_string(event_id)},{micros(occurred_at)},{_json_string(purpose)},"
        f"{_json_string(action)},{_json_string(channel)},{_json_string(version)},{_json_string(service)},{notice},"
        f"{_json_string(previous)}]"
    ).encode("ascii")


def entry_encoding(entry: Mapping[str, Any]) -> bytes:
    """``canonical_encoding`` of ``entry`` written as the processors write it (``_canonical``): for the consent log's
    notary, which encodes every ledger entry it reads."""
    return _canonical(
        (
            entry["subject_id"],
            entry["sequence"],
            entry["event_id"],
            entry["occurred_at"],
            entry["purpose"],
            entry["action"],
            entry["channel"],
            entry["policy_version"],
            entry["source_service"],
            entry["notice_id"],
            entry["previous_hash"],
        )
    )


def entry_hash(entry: Mapping[str, Any]) -> str:
    """Hex SHA-256 of an entry's canonical encoding."""
    return hashlib.sha256(canonical_encoding(entry)).hexdigest()


def append_entry(state: SubjectState, record: ConsentEvent, source: SourceCoordinates | None) -> LedgerEntry:
    """Chain a consent event onto the subject's ledger and return the new ``LedgerEntry``."""
    subject_id, sequence, previous = state.subject_id, state.ledger_sequence + 1, state.ledger_head
    event_id, occurred_at, purpose, action = record["event_id"], record["occurred_at"], record["purpose"], record["action"]
    channel, version, service = record["channel"], record["policy_version"], record["source_service"]
    notice_id = record.get("notice_id")
    digest = hashlib.sha256(
        _canonical((subject_id, sequence, event_id, occurred_at, purpose, action, channel, version, service, notice_id, previous))
    ).hexdigest()  # over HASHED_FIELDS, in order
    state.ledger_sequence = sequence
    state.ledger_head = digest
    return {
        "subject_id": subject_id,
        "sequence": sequence,
        "event_id": event_id,
        "occurred_at": occurred_at,
        "purpose": purpose,
        "action": action,
        "channel": channel,
        "policy_version": version,
        "source_service": service,
        "notice_id": notice_id,
        "previous_hash": previous,
        "entry_hash": digest,
        "source": None if source is None else source.copy(),
    }


def fact_order(row: FactRow) -> tuple[datetime, bool, str]:
    """Where a consent fact sits in its purpose's timeline: by event time; at the same instant a withdrawal or refusal
    after a grant, so the refusal is in force; then by event id, so every arrival order gives one timeline.

    [6] and GDPR Art. 7(1): the controller must be able to demonstrate consent, and a grant withdrawn or refused at
    the very same instant demonstrates none.
    """
    return row[OCCURRED_AT], row[FACT_ACTION] != _GRANTED_ACTION, row[EVENT_ID]


def record_fact(state: SubjectState, record: ConsentEvent) -> FactRow:
    """Insert a consent event into the subject's timeline for its purpose, in event-time order."""
    row: FactRow = (
        record["occurred_at"],
        record["event_id"],
        record["action"],
        record["channel"],
        record["policy_version"],
        record["source_service"],
        record.get("notice_id"),
    )  # ConsentFact's fields, kept as a plain tuple (see FactRow)
    timeline = state.consents.setdefault(record["purpose"], [])
    bisect.insort(timeline, row, key=fact_order)
    return row


def fact_index_at(state: SubjectState, purpose: str, t: datetime) -> int:
    """Index in the purpose's timeline of the latest consent fact at or before ``t``; -1 if none."""
    timeline = state.consents.get(purpose)
    if not timeline:
        return -1
    if timeline[-1][OCCURRED_AT] <= t:  # the common case: the processing is newer than every fact
        return len(timeline) - 1
    return bisect.bisect_right(timeline, t, key=_TIME) - 1


def fact_at(state: SubjectState, purpose: str, t: datetime) -> ConsentFact | None:
    """The latest consent fact for ``purpose`` at or before ``t``."""
    index = fact_index_at(state, purpose, t)
    return None if index < 0 else ConsentFact._make(state.consents[purpose][index])


def state_at(state: SubjectState | None, purpose: str, t: datetime) -> ConsentState:
    """Consent state of ``purpose`` at instant ``t``: granted, withdrawn, refused or never asked."""
    if state is None:
        return ConsentState.NEVER_ASKED
    fact = fact_at(state, purpose, t)
    return ConsentState.NEVER_ASKED if fact is None else _STATE_OF_ACTION.get(fact.action, ConsentState.NEVER_ASKED)


def granted_at(state: SubjectState | None, purpose: str, t: datetime) -> bool:
    """Whether consent for ``purpose`` is in force at ``t``."""
    return state_at(state, purpose, t) is ConsentState.GRANTED


@dataclass(frozen=True)
class ChainVerdict:
    """The result of verifying a subject's chain: ``ok``, or the first bad entry and why."""

    ok: bool
    entries: int
    first_bad: int | None = None  # index into the entries given
    reason: str = ""

    def __str__(self) -> str:
        return f"ok ({self.entries} entries)" if self.ok else f"entry {self.first_bad}: {self.reason}"


def verify_chain(entries: Sequence[Mapping[str, Any]], head: tuple[int, str] | None = None) -> ChainVerdict:
    """Recompute one subject's chain, entries in sequence order.

    ``head`` — the ``(sequence, hash)`` the ledger last recorded — also catches
    entries removed from the end, which a chain alone cannot show. Two entries
    at one sequence (the table keeps both: its key holds the entry hash) are a
    fork: a forged copy beside the genuine entry, or a second history.
    """
    previous = GENESIS_HASH
    subject = entries[0]["subject_id"] if entries else None
    for index, entry in enumerate(entries):
        event = entry.get("event_id")
        if entry["subject_id"] != subject:
            return ChainVerdict(
                False, len(entries), index, f"event {event} belongs to subject {entry['subject_id']}, not {subject}"
            )
        if index and entry["sequence"] == entries[index - 1]["sequence"]:
            other = entries[index - 1]
            return ChainVerdict(
                False,
                len(entries),
                index,
                f"fork at sequence {entry['sequence']}: two entries, event {other.get('event_id')} "
                f"(hash {other['entry_hash'][:16]}) and event {event} (hash {entry['entry_hash'][:16]})",
            )
        if entry["sequence"] != index:
            return ChainVerdict(
                False,
                len(entries),
                index,
                f"event {event} has sequence {entry['sequence']}, expected {index} (entry removed, inserted or moved)",
            )
        if entry["previous_hash"] != previous:
            return ChainVerdict(False, len(entries), index, f"event {event}: previous_hash does not match the entry before it")
        if entry_hash(entry) != entry["entry_hash"]:
            return ChainVerdict(False, len(entries), index, f"event {event}: contents do not match entry_hash (entry altered)")
        previous = entry["entry_hash"]
    if head is not None and entries and (entries[-1]["sequence"], previous) != head:
        return ChainVerdict(
            False,
            len(entries),
            len(entries) - 1,
            f"chain ends at sequence {entries[-1]['sequence']}, the ledger head is at {head[0]} (entries removed from the end)",
        )
    if head is not None and not entries and head[0] >= 0:
        return ChainVerdict(False, 0, 0, f"no entries, the ledger head is at sequence {head[0]}")
    return ChainVerdict(True, len(entries))
