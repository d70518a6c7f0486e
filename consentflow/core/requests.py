"""Rights requests as tracked objects, against the law's clock [8.2, 8.3; GDPR Art. 7(3), 12(3), 12(4), 12(6), 21(3)].

Every rights event of a request is kept in the subject's state (``SubjectState.request_events``); a request's
``Timeline`` is folded from all of them in event-time order (time, then event id), so the same events give the same
timeline whatever order they arrived in, and a replay agrees. The choices, with their sections (README, "Rights
requests and their deadlines"):

* **Which clock.** A request under Art. 15-22 (access, rectification, erasure, restriction, portability, objection)
  is on the one-month clock of Art. 12(3). A consent withdrawal (Art. 7(3): "at any time", [6]) and an objection to
  direct marketing (Art. 21(3): the ``marketing`` purpose [3.8, 6]) act at once through the consent ledger: the
  withdrawal itself is the consent event the service sends with the request (topic ``consent``, channel
  ``contact_request`` [6 (iii)]), which every later processing for that purpose is judged against; the request is
  recorded (``at_once``) with no time limit. The processor writes no ledger entry from the rights topic: a subject's
  chain depends on the consent topic's order alone, which is what keeps the embedded and Kafka chains equal.
  Post-mortem directives [8.3] follow French law (loi Informatique et Libertés, art. 85) and are recorded with no
  time limit.
* **Receipt.** The earliest ``requested`` event. The time limit is ``[rights] time_limit`` (one month) counted by
  Regulation 1182/71 in the controller's calendar: the day of receipt does not count (Art. 3(1)), the same date a
  month later or that month's last day (Art. 3(2)(c)), moved past a Saturday, Sunday or public holiday of the
  controller's country (Art. 3(4)); the limit expires at 00:00 after that day (``LegalCalendar.time_limit_due``).
* **Identity [8.1 (i); Art. 12(6)].** Asking for information to confirm the identity before the first due date
  stops the clock: the request waits (``awaiting_identity``, no due date) until ``identity_verified``, and the time
  limit then runs afresh from the verification (its day not counted). The EDPB's Guidelines 01/2022 on the right of
  access (v2.1) were found (§3.3, asking for information to confirm the identity) but not their passage on timing; the
  choice follows Art. 12(6) (the controller cannot act on a request it cannot attribute) and the practice found (the
  Berlin authority holding the month "paused" during an authentication request; "one calendar month following receipt
  of your request and proof of identification"): a restart, where a pause would end earlier by the days between
  receipt and the identity request. Asked at or after the first due date, it stops nothing.
* **Extension [Art. 12(3)].** Notified before the first due date, by 1 or 2 further months (capped at
  ``[rights] extension_max``), counted from the clock's start: one month plus the further months, then Art. 3(4).
  Several in time: the longest. One notified at or after the first due date is **refused: recorded, not
  honoured**: the gate accepts it (it is a fact, and the gate cannot know the request's dates), the timeline keeps
  it (``extension_refused``, named in the violation's detail and evidence) and the first due date stands. Not a
  dead letter: nothing accepted is lost, and no field of the event is at fault.
* **Refusal [Art. 12(4)].** A ``rejected`` outcome is due within the first time limit; an extension never lengthens it.
* **Outcome.** The earliest ``fulfilled`` or ``rejected`` event; later ones are kept, not counted.
* **Overdue.** ``verdict``: late when answered at or after the limit that applied, or still open when the
  pipeline's retention clock (event time) reaches the due instant. ``request_verdicts`` issues the ``request_overdue``
  violation at ticks, and retracts it (``active`` false, a higher revision) when an answer in time arrives later.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from consentflow.contracts.records import RightsEvent, RightsRequest, Violation
from consentflow.core.state import RequestRow, SubjectState
from consentflow.policy.legal_periods import LegalCalendar, Period
from consentflow.policy.versions import Policy
from consentflow.policy.vocabulary import RULE_SECTIONS, Purpose, RequestStatus, Right, Rule

#: The clocks a request can be on (``RightsRequest.clock``).
ONE_MONTH: Final = "one_month"
AT_ONCE: Final = "at_once"
NO_CLOCK: Final = "none"
#: Where a request stands (``RightsRequest.state``).
OPEN: Final = "open"
AWAITING_IDENTITY: Final = "awaiting_identity"
RECORDED: Final = "recorded"
INCOMPLETE: Final = "incomplete"

_REQUESTED: Final = RequestStatus.REQUESTED.value
_FULFILLED: Final = RequestStatus.FULFILLED.value
_REJECTED: Final = RequestStatus.REJECTED.value
_EXTENDED: Final = RequestStatus.EXTENDED.value
_IDENTITY_REQUESTED: Final = RequestStatus.IDENTITY_REQUESTED.value
_IDENTITY_VERIFIED: Final = RequestStatus.IDENTITY_VERIFIED.value
_OUTCOMES: Final = frozenset({_FULFILLED, _REJECTED})
# RequestRow's fields by position (Final: each index a literal, so each field keeps its type).
_T: Final = 0
_ID: Final = 1
_RIGHT: Final = 2
_STATUS: Final = 3
_PURPOSE: Final = 4
_MONTHS: Final = 5
_REASON: Final = 6


def request_row(record: RightsEvent) -> RequestRow:
    """What a subject's state keeps of one rights event (a v1 record has no purpose, months or reason)."""
    return (
        record["occurred_at"],
        record["event_id"],
        record["right"],
        record["status"],
        record.get("purpose"),
        record.get("extension_months"),
        record.get("reason_code"),
    )


def clock_of(right: str, purpose: str | None) -> str:
    """Which clock a request of ``right`` (naming ``purpose``) is on: at once for a consent withdrawal [Art. 7(3)] and an
    objection to direct marketing [Art. 21(3)], none for post-mortem directives [8.3], else one month [Art. 12(3)]."""
    if right == Right.CONSENT_WITHDRAWAL.value or (right == Right.OBJECTION.value and purpose == Purpose.MARKETING.value):
        return AT_ONCE
    if right == Right.POST_MORTEM_DIRECTIVES.value:
        return NO_CLOCK
    return ONE_MONTH


@dataclass(frozen=True, slots=True)
class Timeline:
    """One request folded from its events: its clock, dates, extension, identity steps and outcome."""

    request_id: str
    subject_id: str
    right: str
    clock: str
    state: str
    purpose: str | None
    events: int
    revision: int  # ``revision_of`` its events: the record on more events known ranks higher
    received_at: datetime | None = None
    received_event_id: str | None = None
    clock_from: datetime | None = None
    first_due_at: datetime | None = None
    due_at: datetime | None = None
    last_day: date | None = None
    extension_months: int = 0
    extended_at: datetime | None = None
    extension_reason: str | None = None
    refused_extension: RequestRow | None = None
    identity_requested_at: datetime | None = None
    identity_verified_at: datetime | None = None
    outcome: str | None = None
    outcome_at: datetime | None = None
    outcome_reason: str | None = None
    outcome_event_id: str | None = None

    @property
    def late(self) -> bool:
        """Answered at or after the limit that applied: the first one for a refusal [Art. 12(4)], else the one in force."""
        if self.outcome_at is None:
            return False
        limit = self.first_due_at if self.outcome == _REJECTED else self.due_at
        return limit is not None and self.outcome_at >= limit

    def overdue(self, now: datetime) -> bool:
        """Late, or on the one-month clock and still open at ``now`` with its time limit expired."""
        if self.late:
            return True
        return self.outcome is None and self.due_at is not None and now >= self.due_at

    def record(self) -> RightsRequest:
        """The request as the ``requests`` topic carries it; its revision counts the request's events known."""
        return {
            "request_id": self.request_id,
            "subject_id": self.subject_id,
            "right": self.right,
            "clock": self.clock,
            "state": self.state,
            "purpose": self.purpose,
            "received_at": self.received_at,
            "received_event_id": self.received_event_id,
            "clock_from": self.clock_from,
            "first_due_at": self.first_due_at,
            "due_at": self.due_at,
            "last_day": None if self.last_day is None else self.last_day.isoformat(),
            "extension_months": self.extension_months,
            "extended_at": self.extended_at,
            "extension_reason": self.extension_reason,
            "extension_refused": self.refused_extension is not None,
            "identity_requested_at": self.identity_requested_at,
            "identity_verified_at": self.identity_verified_at,
            "outcome": self.outcome,
            "outcome_at": self.outcome_at,
            "outcome_reason": self.outcome_reason,
            "late": self.late,
            "events": self.events,
            "revision": self.revision,
        }


def fold(request_id: str, subject_id: str, rows: list[RequestRow], policy: Policy) -> Timeline:
    """The timeline of request ``request_id`` from all its events known (any order), under ``policy``'s clock."""
    rows = sorted(rows, key=lambda row: (row[_T], row[_ID]))
    received = next((row for row in rows if row[_STATUS] == _REQUESTED), None)
    right = (received or rows[0])[_RIGHT]
    purpose = next((row[_PURPOSE] for row in rows if row[_PURPOSE] is not None), None)
    clock = clock_of(right, purpose)
    outcome = next((row for row in rows if row[_STATUS] in _OUTCOMES), None)
    state = OPEN if outcome is None else outcome[_STATUS]
    calendar, limit = policy.retention.calendar, policy.rights.time_limit
    start: datetime | None = None
    first_due: datetime | None = None
    asked: RequestRow | None = None
    verified: RequestRow | None = None
    if received is None:
        state = INCOMPLETE
    elif clock != ONE_MONTH:
        state = RECORDED if outcome is None else state
    else:
        start = received[_T]
        first_due = calendar.time_limit_due(start, limit)
        asked = next((row for row in rows if row[_STATUS] == _IDENTITY_REQUESTED and row[_T] < first_due), None)
        if asked is not None:
            verified = next((r for r in rows if r[_STATUS] == _IDENTITY_VERIFIED and r[_T] >= asked[_T]), None)
            if verified is None:
                # The clock stopped when the identity was asked for [Art. 12(6)]: no due date until it is verified.
                start = first_due = None
                state = AWAITING_IDENTITY if outcome is None else state
            else:
                start = verified[_T]  # the time limit runs afresh from the verification
                first_due = calendar.time_limit_due(start, limit)
    months, extension, refused = 0, None, None
    if start is not None and first_due is not None:
        for row in rows:
            if row[_STATUS] != _EXTENDED:
                continue
            if row[_T] < first_due:
                further = min(row[_MONTHS] or 0, policy.rights.extension_max.months)
                if further > months:
                    months, extension = further, row
            elif refused is None:
                refused = row  # notified at or after the first due date: recorded, not honoured [Art. 12(3)]
    in_force = _months(limit.months + months) if months else limit
    return Timeline(
        request_id=request_id,
        subject_id=subject_id,
        right=right,
        clock=clock,
        state=state,
        purpose=purpose,
        events=len(rows),
        revision=revision_of(rows),
        received_at=None if received is None else received[_T],
        received_event_id=None if received is None else received[_ID],
        clock_from=start,
        first_due_at=first_due,
        due_at=None if start is None else calendar.time_limit_due(start, in_force),
        last_day=None if start is None else calendar.time_limit_last_day(start, in_force),
        extension_months=months,
        extended_at=None if extension is None else extension[_T],
        extension_reason=None if extension is None else extension[_REASON],
        refused_extension=refused,
        identity_requested_at=None if asked is None else asked[_T],
        identity_verified_at=None if verified is None else verified[_T],
        outcome=None if outcome is None else outcome[_STATUS],
        outcome_at=None if outcome is None else outcome[_T],
        outcome_reason=None if outcome is None else outcome[_REASON],
        outcome_event_id=None if outcome is None else outcome[_ID],
    )


def revision_of(rows: list[RequestRow]) -> int:
    """The revision of what rests on these events of a request: a weight per event (1 + 20 bits of its id's CRC-32),
    summed. It grows with every event known, so the record on everything known ranks highest; and unlike a count, two
    different sets of events of one size (a crashed worker's and its successor's) almost never share it, so records of
    one revision agree."""
    return sum(1 + (zlib.crc32(row[_ID].encode()) & 0xFFFFF) for row in rows)


def _months(count: int) -> Period:
    return Period(count, 0, f"P{count}M")


def timelines(state: SubjectState, policy: Policy) -> list[Timeline]:
    """Every request of the subject, folded, in request id order."""
    return [fold(rid, state.subject_id, rows, policy) for rid, rows in sorted(state.request_events.items())]


def verdict(timeline: Timeline, now: datetime, calendar: LegalCalendar) -> Violation | None:
    """The ``request_overdue`` verdict on a request at ``now`` (the retention clock), once it is settled: when its
    outcome is known (late or in time), or when its time limit expired with no outcome. Active when late or overdue,
    else compliant (``active`` false); None while it is open and in time, or off the one-month clock."""
    if timeline.clock != ONE_MONTH or timeline.due_at is None:
        return None
    if timeline.outcome is None and now < timeline.due_at:
        return None
    return _verdict(timeline, calendar, active=timeline.overdue(now))


def _verdict(t: Timeline, calendar: LegalCalendar, *, active: bool) -> Violation:
    """The verdict record of ``t``; its detail depends on the request's events only, never on the clock."""
    evidence = [] if t.received_event_id is None else [t.received_event_id]
    received = "?" if t.received_at is None else t.received_at.isoformat()
    limit = f"its time limit ended with {t.last_day} ({calendar.zone.key}) [Art. 12(3)]"
    if t.outcome == _REJECTED:
        first_day = t.last_day if t.first_due_at is None else calendar.day_of(t.first_due_at) - timedelta(days=1)
        limit = f"a refusal was due by the end of {first_day} ({calendar.zone.key}) [Art. 12(4)]"
    if t.outcome is None:
        what = "still open"
    else:
        assert t.outcome_at is not None and t.outcome_event_id is not None
        what = f"{t.outcome} at {t.outcome_at.isoformat()}" + (", late" if t.late else ", in time")
        evidence.append(t.outcome_event_id)
    detail = f"{t.right} request received {received}; {limit}; {what}"
    if t.extension_months:
        detail += f"; extended by {t.extension_months} month(s)"
    if t.refused_extension is not None:
        detail += f"; extension notified at {t.refused_extension[_T].isoformat()}, after the first due date: not honoured"
        evidence.append(t.refused_extension[_ID])
    if not active:
        detail = f"compliant: {detail}"
    return {
        "violation_id": f"{Rule.REQUEST_OVERDUE.value}:{t.request_id}",
        "rule": Rule.REQUEST_OVERDUE.value,
        "policy_section": RULE_SECTIONS[Rule.REQUEST_OVERDUE],
        "subject_id": t.subject_id,
        "occurred_at": _late_from(t),
        "evidence_event_ids": evidence,
        "recipient_id": None,
        "purpose": t.purpose,
        "categories": [],
        "detail": detail,
        "active": active,
        "revision": t.revision,
    }


def _late_from(t: Timeline) -> datetime:
    """When the request became late: the limit that applied (the first one for a refusal), else its receipt."""
    limit = t.first_due_at if t.outcome == _REJECTED else t.due_at
    return limit or t.received_at or t.outcome_at or datetime.min.replace(tzinfo=UTC)


def request_verdicts(state: SubjectState, now: datetime, policy: Policy) -> tuple[list[Violation], datetime | None]:
    """The ``request_overdue`` records to issue for the subject at ``now`` (the retention clock, event time), and when
    its next open request falls due after ``now``.

    Every settled request gets a verdict, late or compliant, as every consent-gated processing does: a worker that
    takes over from one that crashed after issuing "overdue" overwrites it with what it knows, even without the
    crashed one's memory. A verdict is issued when it or its revision differs from the last one issued for the request
    (``state.request_verdicts``); its revision (``revision_of``) grows with the request's events known, so the verdict
    on everything known ranks highest; its content depends on the events only (never on the clock, which only decides
    when an open request is settled), so every run that reaches the same clock agrees.
    """
    calendar = policy.retention.calendar
    issued = state.request_verdicts
    out: list[Violation] = []
    ahead: datetime | None = None
    for timeline in timelines(state, policy):
        last = issued.get(timeline.request_id)
        record = verdict(timeline, now, calendar)
        if record is None:
            due = timeline.due_at
            if timeline.clock == ONE_MONTH and due is not None and timeline.outcome is None:
                ahead = due if ahead is None or due < ahead else ahead
            elif last is not None and last[0]:
                # Its clock stopped since (an identity request dated earlier arrived late): the verdict no longer holds.
                record = _verdict(timeline, calendar, active=False)
            if record is None:
                continue
        key = (record["active"], record["detail"], record["revision"])
        if last != key:  # a new revision is issued even when the verdict is the same: the highest must be in the table
            issued[timeline.request_id] = key
            out.append(record)
    return out, ahead
