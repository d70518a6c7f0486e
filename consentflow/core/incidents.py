"""The breach register [12; GDPR Art. 33, 34]: each incident's facts in, its clock and whom to tell out. No I/O.

Privacy policy §12 promises to inform the authority "immediately" of a data leak; GDPR Art. 33(1) asks for a
notification without undue delay and, where feasible, within 72 hours of becoming aware of the breach, a later one
"accompanied by reasons for the delay"; Art. 33(5) asks that every breach be documented; Art. 34(1) asks that the
subjects be told without undue delay when the risk to them is high.

The 72 hours are counted from ``aware_at`` exactly: due at ``aware_at + 72 h``, a notification at that instant
still in time. Regulation 1182/71 Art. 3(1) and 3(2)(a) would start a period of hours at the beginning of the hour
after the event (aware at 10:25, due at 11:00 three days later, up to 59 minutes 59 seconds more); a DPO reads "within
72 hours of becoming aware" as the exact instant. The earlier of the two is the safe side: whatever this module calls in
time is in time under either reading.

Event time decides, as the retention clock does: an incident is judged at an instant ``now`` (the pipeline's clock,
the latest event time it holds, or an instant the reader names), on the facts dated at or before it, in event-time
order (then event id), so every arrival order and every replay gives the same register. An event seen twice (its
``event_id``) counts once. An incident whose opening is not yet known (no ``opened`` event at or before ``now``) is
left out of the register; its events stay in the table. When several ``opened`` events exist, the latest one's
facts stand (a correction: a risk found high later), and the incident dates from the first.

Reasons [Art. 33(1), second sentence]: given on any of the incident's authority notifications (Art. 33(4) lets the
information come in phases), a short line the controller writes. A notification later than the deadline without
them is flagged; so is an incident not notified once the deadline passed. Risk ``low`` is a risk that is not high:
the authority is notified all the same; only ``high`` asks for the subjects to be told (Art. 34(1)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from consentflow.policy.vocabulary import IncidentEventKind, IncidentRisk

#: The time Art. 33(1) allows, counted from awareness (see the module's docstring for how).
AUTHORITY_WITHIN: Final = timedelta(hours=72)
#: Where the authority's clock comes from: the policy's section and the article.
AUTHORITY_SECTION: Final = "12 (GDPR Art. 33(1))"
#: Where telling the subjects comes from.
SUBJECTS_SECTION: Final = "12 (GDPR Art. 34(1))"

_OPENED: Final = IncidentEventKind.OPENED.value
_AUTHORITY: Final = IncidentEventKind.AUTHORITY_NOTIFIED.value
_SUBJECT: Final = IncidentEventKind.SUBJECT_NOTIFIED.value
_CLOSED: Final = IncidentEventKind.CLOSED.value
_HOUR: Final = timedelta(hours=1)


class Notification(StrEnum):
    """Where an incident's notification to the authority stands at an instant [12; GDPR Art. 33(1)]."""

    PENDING = "pending"  # not notified, the deadline ahead
    OVERDUE = "overdue"  # not notified, the deadline passed: flagged
    IN_TIME = "in_time"  # notified within 72 hours of awareness
    LATE_WITH_REASONS = "late_with_reasons"  # later, with the reasons for the delay: accepted
    LATE_WITHOUT_REASONS = "late_without_reasons"  # later, without them: flagged


#: The states the register flags.
FLAGGED: Final = frozenset({Notification.OVERDUE, Notification.LATE_WITHOUT_REASONS})


def authority_due(aware_at: datetime) -> datetime:
    """When the authority's notification falls due: 72 hours after awareness, to the microsecond [GDPR Art. 33(1)]."""
    return aware_at + AUTHORITY_WITHIN


@dataclass(frozen=True)
class SubjectTold:
    """A subject told of the breach [GDPR Art. 34(1)], at the first time it was."""

    subject_id: str
    notified_at: datetime
    event_id: str


@dataclass(frozen=True)
class Incident:
    """One incident of the register as it stands at ``as_of``."""

    incident_id: str
    recipient_id: str
    window_from: datetime  # included
    window_to: datetime  # excluded
    aware_at: datetime
    risk: str  # IncidentRisk
    categories: tuple[str, ...]  # what the controller knows was concerned (Art. 33(3)(a)), sorted
    opened_at: datetime
    authority_due: datetime
    authority_notified_at: datetime | None  # the first notification
    delay_reason: str | None  # the first reason given with a notification
    closed_at: datetime | None
    subjects_told: tuple[SubjectTold, ...]  # by subject id
    events: int  # the facts it rests on
    as_of: datetime

    @property
    def notification(self) -> Notification:
        """Where the authority's notification stands at ``as_of`` [GDPR Art. 33(1)]."""
        notified = self.authority_notified_at
        if notified is None:
            return Notification.PENDING if self.as_of <= self.authority_due else Notification.OVERDUE
        if notified <= self.authority_due:
            return Notification.IN_TIME
        return Notification.LATE_WITH_REASONS if self.delay_reason else Notification.LATE_WITHOUT_REASONS

    @property
    def flagged(self) -> bool:
        """Whether the register flags it: not notified past the deadline, or notified late without reasons."""
        return self.notification in FLAGGED

    @property
    def hours_left(self) -> float | None:
        """Hours from ``as_of`` to the deadline while the authority is not notified (negative: overdue); None once it is."""
        if self.authority_notified_at is not None:
            return None
        return (self.authority_due - self.as_of) / _HOUR

    @property
    def notified_after_hours(self) -> float | None:
        """Hours from awareness to the authority's notification, None before it."""
        if self.authority_notified_at is None:
            return None
        return (self.authority_notified_at - self.aware_at) / _HOUR

    @property
    def is_open(self) -> bool:
        """Not closed at ``as_of``."""
        return self.closed_at is None

    @property
    def high_risk(self) -> bool:
        """Whether the subjects must be told [GDPR Art. 34(1)]."""
        return self.risk == IncidentRisk.HIGH.value


@dataclass(frozen=True)
class SubjectsToInform:
    """Art. 34(1) for one incident: the affected subjects (from the lineage), which were told and when, which not yet."""

    required: bool  # a high risk: they must be told
    affected: tuple[str, ...]  # sorted
    told: tuple[SubjectTold, ...]  # affected subjects told, by subject id
    not_told: tuple[str, ...]  # affected subjects not told yet, sorted
    told_beyond: tuple[SubjectTold, ...]  # told though the lineage does not name them (kept: a fact is never dropped)


def register(events: Iterable[Mapping[str, Any]], now: datetime) -> list[Incident]:
    """Every incident opened at or before ``now``, by id, judged on its facts dated at or before ``now``.

    ``events`` are ``IncidentEvent`` records (as decoded, or as the ``incidents`` table holds them), in any order.
    """
    by_incident: dict[str, dict[str, Mapping[str, Any]]] = {}
    for event in events:
        if event["occurred_at"] <= now:
            by_incident.setdefault(event["incident_id"], {})[event["event_id"]] = event  # a duplicate counts once
    out = []
    for incident_id in sorted(by_incident):
        incident = _incident(incident_id, by_incident[incident_id].values(), now)
        if incident is not None:
            out.append(incident)
    return out


def _incident(incident_id: str, facts: Iterable[Mapping[str, Any]], now: datetime) -> Incident | None:
    ordered = sorted(facts, key=lambda e: (e["occurred_at"], e["event_id"]))
    openings = [e for e in ordered if e["kind"] == _OPENED]
    if not openings:
        return None
    opened = openings[-1]  # the latest opening's facts stand: a correction
    notified_at: datetime | None = None
    reason: str | None = None
    closed_at: datetime | None = None
    told: dict[str, SubjectTold] = {}
    for event in ordered:
        kind = event["kind"]
        if kind == _AUTHORITY:
            notified_at = notified_at or event["occurred_at"]
            reason = reason or event.get("delay_reason") or None
        elif kind == _SUBJECT and event["subject_id"] not in told:
            told[event["subject_id"]] = SubjectTold(event["subject_id"], event["occurred_at"], event["event_id"])
        elif kind == _CLOSED:
            closed_at = closed_at or event["occurred_at"]
    aware_at = opened["aware_at"]
    return Incident(
        incident_id=incident_id,
        recipient_id=opened["recipient_id"],
        window_from=opened["window_from"],
        window_to=opened["window_to"],
        aware_at=aware_at,
        risk=opened["risk"],
        categories=tuple(sorted(opened["categories"])),
        opened_at=openings[0]["occurred_at"],
        authority_due=authority_due(aware_at),
        authority_notified_at=notified_at,
        delay_reason=reason,
        closed_at=closed_at,
        subjects_told=tuple(told[s] for s in sorted(told)),
        events=len(ordered),
        as_of=now,
    )


def subjects_to_inform(incident: Incident, affected: Iterable[str]) -> SubjectsToInform:
    """Whom Art. 34(1) asks to tell for ``incident``, given the subjects the lineage says were affected (``affected``:
    those whose data the recipient received in the window, as ``breach`` finds them), and which were told."""
    everyone = tuple(sorted(set(affected)))
    named = frozenset(everyone)
    told = tuple(t for t in incident.subjects_told if t.subject_id in named)
    told_ids = frozenset(t.subject_id for t in told)
    return SubjectsToInform(
        required=incident.high_risk,
        affected=everyone,
        told=told,
        not_told=tuple(s for s in everyone if s not in told_ids),
        told_beyond=tuple(t for t in incident.subjects_told if t.subject_id not in named),
    )
