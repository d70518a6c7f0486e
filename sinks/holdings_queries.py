"""What the platform holds of a subject and until when, from the ``subject_holdings`` table [2.3; GDPR Art. 15(1)(b), (d)].

The table keeps one ``SubjectHoldings`` record per subject, versioned by
``revision`` (the events known for the subject): read with ``FINAL``, a
subject's row is its highest revision, the record on everything known. It is
the one place that names the categories the subject provided in the profile
[2.1] beside those processed, and retention dates not yet due [2.3].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc, utc_or_none


@dataclass(frozen=True)
class PlannedRetention:
    """One retention action planned for the subject, due or not [2.3]."""

    action: str
    categories: tuple[str, ...]
    due_at: datetime
    policy_section: str
    reason: str
    basis_event_id: str | None


@dataclass(frozen=True)
class SubjectHoldings:
    """The latest ``SubjectHoldings`` record of a subject: categories held, lifecycle instants, the retention plan."""

    subject_id: str
    revision: int  # events known for the subject when the record was made
    latest_event_at: datetime
    account_kind: str | None
    categories_held: tuple[str, ...]
    registered_at: datetime | None
    last_use: datetime | None
    closed_at: datetime | None
    last_negative: datetime | None
    suspended_at: datetime | None
    archive_at: datetime | None
    archive_section: str | None
    archive_reason: str | None
    planned: tuple[PlannedRetention, ...]  # in due-date order


_HOLDINGS = """
SELECT subject_id, revision, latest_event_at, account_kind, categories_held,
       registered_at, last_use, closed_at, last_negative, suspended_at,
       archive_at, archive_section, archive_reason,
       planned_actions, planned_categories, planned_due_at, planned_sections, planned_reasons, planned_basis_event_ids
FROM {db:Identifier}.subject_holdings FINAL
WHERE subject_id = {s:String}
"""


def subject_holdings(reader: TableReader, subject_id: str) -> SubjectHoldings | None:
    """The subject's latest holdings record, or None when none was issued yet (a worker issues it at its next tick).

    ``subject_id`` must come validated (``consentflow.contracts.query_arguments``).
    """
    rows = reader.query(_HOLDINGS, {"s": subject_id})
    if not rows:
        return None
    (
        subject,
        revision,
        latest,
        account_kind,
        held,
        registered_at,
        last_use,
        closed_at,
        last_negative,
        suspended_at,
        archive_at,
        archive_section,
        archive_reason,
        actions,
        categories,
        due,
        sections,
        reasons,
        basis,
    ) = rows[0]
    return SubjectHoldings(
        subject_id=subject,
        revision=int(revision),
        latest_event_at=utc(latest),
        account_kind=account_kind,
        categories_held=tuple(held),
        registered_at=utc_or_none(registered_at),
        last_use=utc_or_none(last_use),
        closed_at=utc_or_none(closed_at),
        last_negative=utc_or_none(last_negative),
        suspended_at=utc_or_none(suspended_at),
        archive_at=utc_or_none(archive_at),
        archive_section=archive_section,
        archive_reason=archive_reason,
        planned=tuple(
            PlannedRetention(a, tuple(c), utc(d), s, r, b)
            for a, c, d, s, r, b in zip(actions, categories, due, sections, reasons, basis, strict=True)
        ),
    )
