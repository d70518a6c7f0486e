"""Rights requests as tracked objects, from the ``rights_requests`` table [8.2; GDPR Art. 12(3), 12(4)].

Each request's row at its highest revision (``FINAL``) is the request folded from all its events known
(``core/requests.py``); whether it is overdue depends on the instant asked about, so it is decided here: answered late
(``late``), or on the one-month clock, still open, with its time limit expired at that instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from consentflow.contracts.query_arguments import now_unless
from consentflow.sinks.answers import RightsRequestRow
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc_or_none as _utc
from consentflow.sinks.tables import DATETIME

_T = DATETIME
_COLUMNS = (
    "subject_id, request_id, right, clock, state, purpose, received_at, first_due_at, due_at, last_day, extension_months, "
    "extension_reason, extension_refused, identity_requested_at, identity_verified_at, outcome, outcome_at, "
    "outcome_reason, late"
)
# As it stood at {at}: the requests received by then; one answered later was open then. Overdue at {at}: answered late
# by then, or open then with its time limit expired. Filters after FINAL, as the other revisable tables are read.
_OPEN_AT = f"(outcome_at IS NULL OR outcome_at > {{at:{_T}}})"
_REQUESTS = f"""
SELECT {_COLUMNS}
FROM (SELECT * FROM {{db:Identifier}}.rights_requests FINAL)
WHERE ({{subject:String}} = '' OR subject_id = {{subject:String}})
  AND (received_at IS NULL OR received_at <= {{at:{_T}}})
  AND ({{open:UInt8}} = 0 OR (clock = 'one_month' AND {_OPEN_AT}))
  AND ({{overdue:UInt8}} = 0 OR (late = 1 AND outcome_at <= {{at:{_T}}})
       OR (clock = 'one_month' AND {_OPEN_AT} AND due_at IS NOT NULL AND due_at <= {{at:{_T}}}))
  AND ({{before:UInt8}} = 0 OR (due_at IS NOT NULL AND due_at < {{due_before:{_T}}}))
ORDER BY due_at IS NULL, due_at, received_at, subject_id, request_id
"""


def rights_requests(
    reader: TableReader,
    *,
    open_only: bool = False,
    overdue_only: bool = False,
    due_before: datetime | None = None,
    as_of: datetime | None = None,
    subject_id: str | None = None,
) -> list[RightsRequestRow]:
    """The rights requests as they stood at ``as_of`` (default: now), earliest due first (those with no due date last):
    those received by then, an outcome given later left out (the request was open then). ``open_only``: on the
    one-month clock with no outcome then; ``overdue_only``: answered late by then, or open then with its time limit
    expired; ``due_before``: whose time limit expires before that instant; ``subject_id``: one subject's. Due dates
    are on every event known (an extension notified after ``as_of`` counts)."""
    at = now_unless(as_of)
    parameters = {
        "subject": "" if subject_id is None else subject_id,
        "open": int(open_only),
        "overdue": int(overdue_only),
        "at": at,
        "before": int(due_before is not None),
        "due_before": at if due_before is None else due_before,
    }
    out = []
    for row in reader.query(_REQUESTS, parameters):
        (subject, request_id, right, clock, state, purpose, received, first_due, due, last_day, months) = row[:11]
        (reason, refused, asked, verified, outcome, outcome_at, outcome_reason, late) = row[11:]
        due_at, answered = _utc(due), _utc(outcome_at)
        if answered is not None and answered > at:  # answered after the instant asked about: open then
            state = "open" if clock == "one_month" else "recorded"
            outcome, answered, outcome_reason, late = None, None, None, False
        out.append(
            RightsRequestRow(
                subject_id=subject,
                request_id=request_id,
                right=right,
                clock=clock,
                state=state,
                purpose=purpose,
                received_at=_utc(received),
                first_due_at=_utc(first_due),
                due_at=due_at,
                last_day=last_day,
                extension_months=int(months),
                extension_reason=reason,
                extension_refused=bool(refused),
                identity_requested_at=_utc(asked),
                identity_verified_at=_utc(verified),
                outcome=outcome,
                outcome_at=answered,
                outcome_reason=outcome_reason,
                late=bool(late),
                overdue=bool(late) or (clock == "one_month" and outcome is None and due_at is not None and due_at <= at),
            )
        )
    return out


@dataclass(frozen=True)
class RequestCounts:
    """The DPO overview's figures on rights requests at an instant [8.2; GDPR Art. 12(3)]."""

    open: int  # on the one-month clock, no outcome yet
    due_this_week: int  # open, their time limit expiring within the next seven days
    overdue: int  # open past their due date, or answered late


def request_counts(reader: TableReader, as_of: datetime | None = None) -> RequestCounts:
    """How many requests are open, due within seven days, and overdue at ``as_of`` (default: now), as ``rights_requests``
    lists them (for the DPO overview's panel)."""
    at = now_unless(as_of)
    rows = rights_requests(reader, open_only=False, as_of=at)
    open_rows = [r for r in rows if r.clock == "one_month" and r.outcome is None]
    week = at + timedelta(days=7)
    return RequestCounts(
        open=len(open_rows),
        due_this_week=sum(1 for r in open_rows if r.due_at is not None and at < r.due_at <= week),
        overdue=sum(1 for r in rows if r.overdue),
    )
