"""The breach register's clock and whom to tell [12; GDPR Art. 33, 34], on incident events built by their constructor.

Expectations are written from the article's words (72 hours from awareness; reasons for a later notification; the
subjects told when the risk is high), not computed by the module under test.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from consentflow.contracts.events import incident_event
from consentflow.core.incidents import Notification, register, subjects_to_inform

AWARE = datetime(2024, 3, 4, 10, 25, tzinfo=UTC)
H = timedelta(hours=1)


def _opened(incident_id: str = "inc-1", risk: str = "low", at: datetime = AWARE, **kw: Any) -> dict[str, Any]:
    return incident_event(
        incident_id, "opened", recipient_id="cloudnest", window_from=AWARE - 48 * H, window_to=AWARE, aware_at=AWARE,
        risk=risk, categories=["contact"], source_service="dpo", occurred_at=at, **kw,
    ).record  # fmt: skip


def _authority(at: datetime, reasons: str | None = None, incident_id: str = "inc-1") -> dict[str, Any]:
    return incident_event(incident_id, "authority_notified", delay_reason=reasons, source_service="dpo", occurred_at=at).record


def _told(subject_id: str, at: datetime, incident_id: str = "inc-1") -> dict[str, Any]:
    return incident_event(incident_id, "subject_notified", subject_id=subject_id, source_service="dpo", occurred_at=at).record


def _closed(at: datetime, incident_id: str = "inc-1") -> dict[str, Any]:
    return incident_event(incident_id, "closed", source_service="dpo", occurred_at=at).record


def test_notified_70_hours_after_awareness_is_in_time() -> None:
    """§12 / GDPR Art. 33(1): notified within 72 hours of becoming aware: in time, not flagged."""
    (incident,) = register([_opened(), _authority(AWARE + 70 * H)], AWARE + 100 * H)
    assert incident.authority_due == datetime(2024, 3, 7, 10, 25, tzinfo=UTC)
    assert incident.notification is Notification.IN_TIME
    assert not incident.flagged
    assert incident.notified_after_hours == 70
    assert incident.hours_left is None


def test_notified_75_hours_after_awareness_without_reasons_is_flagged() -> None:
    """§12 / GDPR Art. 33(1), second sentence: a notification later than 72 hours needs the reasons for the delay."""
    (incident,) = register([_opened(), _authority(AWARE + 75 * H)], AWARE + 75 * H)
    assert incident.notification is Notification.LATE_WITHOUT_REASONS
    assert incident.flagged


def test_notified_75_hours_after_awareness_with_reasons_is_accepted_as_late_with_reasons() -> None:
    """§12 / GDPR Art. 33(1): late, accompanied by the reasons for the delay: accepted, not flagged, the reason kept."""
    (incident,) = register([_opened(), _authority(AWARE + 75 * H, "forensics-pending")], AWARE + 80 * H)
    assert incident.notification is Notification.LATE_WITH_REASONS
    assert not incident.flagged
    assert incident.delay_reason == "forensics-pending"


def test_reasons_given_in_a_later_phase_count() -> None:
    """GDPR Art. 33(4): the information may come in phases; reasons on a second notification count for the first."""
    events = [_opened(), _authority(AWARE + 75 * H), _authority(AWARE + 90 * H, "processor-late-report")]
    (incident,) = register(events, AWARE + 90 * H)
    assert incident.authority_notified_at == AWARE + 75 * H
    assert incident.notification is Notification.LATE_WITH_REASONS


def test_never_notified_is_pending_with_hours_left_then_overdue_and_flagged() -> None:
    """§12 / GDPR Art. 33(1): not notified, judged at the pipeline's clock: hours left before the deadline, negative
    and flagged after it."""
    (before,) = register([_opened()], AWARE + 60 * H)
    assert (before.notification, before.hours_left, before.flagged) == (Notification.PENDING, 12, False)
    (after,) = register([_opened()], AWARE + 80 * H)
    assert (after.notification, after.hours_left, after.flagged) == (Notification.OVERDUE, -8, True)


def test_the_72_hours_end_at_awareness_plus_72_hours_exactly() -> None:
    """The counting choice (module docstring): due at aware + 72 h to the microsecond, that instant still in time;
    Regulation 1182/71 Art. 3(2)(a) would allow until the hour after (13:00 here), which this module does not."""
    due = AWARE + 72 * H
    (at_due,) = register([_opened(), _authority(due)], due)
    assert at_due.notification is Notification.IN_TIME
    just_after = due + timedelta(microseconds=1)
    (late,) = register([_opened(), _authority(just_after)], just_after)
    assert late.notification is Notification.LATE_WITHOUT_REASONS
    (unnotified,) = register([_opened()], due + 30 * timedelta(minutes=1))
    assert unnotified.notification is Notification.OVERDUE


def test_facts_dated_after_the_clock_are_not_known_yet() -> None:
    """Event time decides, as the retention clock does: at 71 h a notification dated 75 h is not known; the incident
    is pending; an incident opened after the clock is not listed."""
    events = [_opened(), _authority(AWARE + 75 * H), _opened("inc-2", at=AWARE + 100 * H)]
    (incident,) = register(events, AWARE + 71 * H)
    assert (incident.incident_id, incident.notification, incident.hours_left) == ("inc-1", Notification.PENDING, 1)


def test_every_arrival_order_and_duplicates_give_the_same_register() -> None:
    """Event time, then event id, orders the facts; a redelivered event counts once [DESIGN: event time decides]."""
    events = [
        _opened(),
        _authority(AWARE + 75 * H),
        _authority(AWARE + 80 * H, "late-discovery"),
        _told("subj-1", AWARE + 90 * H),
        _told("subj-1", AWARE + 95 * H),
        _closed(AWARE + 200 * H),
    ]
    expected = register(events, AWARE + 300 * H)
    shuffler = random.Random(24)
    for _ in range(20):
        arrival = events + events[: shuffler.randrange(len(events))]
        shuffler.shuffle(arrival)
        assert register(arrival, AWARE + 300 * H) == expected
    (incident,) = expected
    assert incident.events == len(events)
    assert [(t.subject_id, t.notified_at) for t in incident.subjects_told] == [("subj-1", AWARE + 90 * H)]


def test_a_closed_incident_stays_in_the_register() -> None:
    """GDPR Art. 33(5): every breach stays documented; closing it does not take it off the register."""
    (incident,) = register([_opened(), _authority(AWARE + 10 * H), _closed(AWARE + 20 * H)], AWARE + 30 * H)
    assert not incident.is_open
    assert incident.closed_at == AWARE + 20 * H


def test_a_later_opening_corrects_the_facts_and_the_incident_dates_from_the_first() -> None:
    """A risk found high later: the latest opening's facts stand, the incident dates from the first."""
    events = [_opened(risk="low"), _opened(risk="high", at=AWARE + 5 * H)]
    (incident,) = register(events, AWARE + 6 * H)
    assert (incident.risk, incident.high_risk, incident.opened_at) == ("high", True, AWARE)


def test_a_high_risk_incident_lists_the_subjects_to_inform_and_who_was_told() -> None:
    """§12 / GDPR Art. 34(1): a high risk: every affected subject must be told; the register says who was, when, and
    who not yet. A subject told though the lineage does not name them is kept apart, not dropped."""
    events = [_opened(risk="high"), _told("subj-2", AWARE + 30 * H), _told("subj-9", AWARE + 31 * H)]
    (incident,) = register(events, AWARE + 40 * H)
    art34 = subjects_to_inform(incident, ["subj-3", "subj-1", "subj-2", "subj-1"])
    assert art34.required
    assert art34.affected == ("subj-1", "subj-2", "subj-3")
    assert [(t.subject_id, t.notified_at) for t in art34.told] == [("subj-2", AWARE + 30 * H)]
    assert art34.not_told == ("subj-1", "subj-3")
    assert [t.subject_id for t in art34.told_beyond] == ["subj-9"]


def test_a_low_risk_incident_asks_no_one_to_be_told() -> None:
    """GDPR Art. 34(1) applies to a high risk only: a low one lists the affected subjects, none required."""
    (incident,) = register([_opened(risk="low")], AWARE)
    art34 = subjects_to_inform(incident, ["subj-1"])
    assert not art34.required
    assert art34.not_told == ("subj-1",)
