"""Retention [2.3] with an injected clock: ``Processor.tick(now)`` emits what is due at ``now``, each action once.

Periods are written here from the policy's words — "three years", "one year", "two years", "between one and
three years" — and counted here, apart from ``consentflow.policy.legal_periods``, as EU law counts periods (Regulation
(EEC, Euratom) No 1182/71, Art. 3): the period ends with the last day of its last year bearing the same date as
the day it runs from (28 February for 29 February), in Paris's calendar; the data is kept through that day and the
action falls due at 00:00 Paris on the day after. The legal accounting period of 2.3.2 is the French ten years
(Code de commerce art. L123-22) from the end of the financial year (31 December) of the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consentflow.core.processor import Processor
from consentflow.core.retention import RetentionSchedule
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import DataCategory, ProfileAction, RetentionActionKind
from tests.support.builders import QUICKPAY, feed, processor_with
from tests.support.dpo_expected import after, after_financial_year
from tests.support.retention_events import PROFILE, SUBJECT, day, payment, profile

TINY = timedelta(microseconds=1)
C = DataCategory


def kinds(actions: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(action, categories) of each retention action."""
    return [(a["action"], sorted(a["categories"])) for a in actions]


def only_at(p: Processor, due: datetime) -> list[dict[str, Any]]:
    """Nothing is emitted just before ``due``; what is emitted at ``due``; nothing again afterwards."""
    assert not p.tick(due - TINY).retention, "emitted before it was due"
    emitted = p.tick(due).retention
    assert emitted, f"nothing emitted at {due}"
    assert all(a["due_at"] == due for a in emitted)
    assert not p.tick(due).retention and not p.tick(due + timedelta(days=1)).retention, "emitted twice"
    return emitted


def test_open_account_is_archived_three_years_after_the_last_use() -> None:
    """[2.3.1] "Personal Data is archived ... Three years after your last use of our Sites, if you did not close your
    account". The last use is the latest in time, whatever order the events arrive in."""
    p = processor_with([])
    registered = profile(ProfileAction.REGISTERED, day(0), PROFILE)
    last = profile(ProfileAction.USED, day(100), (C.VISIT_HISTORY,))
    earlier = profile(ProfileAction.USED, day(40), (C.USAGE_DATA,))
    feed(p, registered, last, earlier)
    (archive,) = only_at(p, after(day(100), 3))
    assert archive["action"] == RetentionActionKind.ARCHIVE.value
    assert sorted(archive["categories"]) == sorted(["identity", "contact", "professional_cv", "visit_history", "usage_data"])
    assert archive["subject_id"] == SUBJECT
    assert archive["policy_section"] == "2.3.1"
    assert archive["basis_event_id"] == last.record["event_id"]


def test_a_later_use_postpones_the_archive() -> None:
    """[2.3.1] the three years run from the *last* use: a visit before the date pushes it back."""
    p = processor_with([])
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE))
    assert not p.tick(after(day(0), 3) - TINY).retention
    feed(p, profile(ProfileAction.USED, day(500)))
    assert not p.tick(after(day(0), 3) + timedelta(days=1)).retention
    only_at(p, after(day(500), 3))


@pytest.mark.parametrize(
    ("negatives", "closed", "expected", "basis"),
    [
        ((), 10, (10, 1), "closed"),  # one year after closure
        ((-200,), 10, (-200, 2), "negative"),  # two years after the decision are longer
        ((-400,), 10, (10, 1), "closed"),  # two years after the decision end before one after closure
        ((-600, -100), 10, (-100, 2), "negative"),  # the most recent decision counts
        ((40,), 10, (40, 2), "negative"),  # a notification received after closure
    ],
    ids=["closure", "decision-longer", "closure-longer", "most-recent-decision", "after-closure"],
)
def test_closed_account_one_year_after_closure_or_two_after_the_latest_negative_decision(
    negatives: tuple[int, ...], closed: int, expected: tuple[int, int], basis: str
) -> None:
    """[2.3.1] "One year after the closure of your account, unless you've received a negative decision or a
    notification, in which case your data is retained for two years following the most recent negative decision or
    notification received, whichever is longest"."""
    p = processor_with([])
    feed(p, profile(ProfileAction.REGISTERED, day(-1000), PROFILE), profile(ProfileAction.USED, day(closed - 1)))
    steps = [profile(ProfileAction.CLOSED, day(closed))]
    for i, offset in enumerate(negatives):
        action = ProfileAction.NEGATIVE_DECISION if i % 2 == 0 else ProfileAction.NOTIFICATION
        steps.append(profile(action, day(offset)))
    feed(p, *reversed(steps))  # arrival order is not event order
    (archive,) = only_at(p, after(day(expected[0]), expected[1]))
    assert archive["policy_section"] == "2.3.1"
    by_basis = {"closed": steps[0]} | ({"negative": max(steps[1:], key=lambda e: e.record["occurred_at"])} if negatives else {})
    assert archive["basis_event_id"] == by_basis[basis].record["event_id"]


def test_financial_data_is_kept_for_the_legal_period_from_the_last_transaction_then_deleted() -> None:
    """[2.3.2] "Financial data (for example, payments, reimbursements, etc.) are retained for the duration required by
    applicable legislation on taxation and accounting": kept when the rest is archived, deleted at the end of the
    legal period counted from the last transaction."""
    p = processor_with([QUICKPAY])
    last_payment = payment(day(200))
    feed(
        p,
        profile(ProfileAction.REGISTERED, day(0), PROFILE),
        payment(day(50)),
        last_payment,
        profile(ProfileAction.USED, day(300)),
    )
    at_archive = only_at(p, after(day(300), 3))
    assert kinds(at_archive) == [
        ("archive", ["contact", "identity", "professional_cv"]),
        ("keep_for_legal_period", ["banking", "financial_transactions"]),
    ]
    assert {a["policy_section"] for a in at_archive} == {"2.3.1", "2.3.2"}
    (delete,) = only_at(p, after_financial_year(day(200)))
    assert kinds([delete]) == [("delete", ["banking", "financial_transactions"])]
    assert delete["policy_section"] == "2.3.2"
    assert delete["basis_event_id"] == last_payment.record["event_id"]


def test_financial_data_is_deleted_when_the_legal_period_ends_before_the_rest_is_archived() -> None:
    """[2.3.2] financial data follows its own period, "the duration required by applicable legislation", not 2.3.1's:
    a payment in year one of an account still used in year nine is deleted ten years after the payment, and is not
    "kept for the legal period" at an archive date when that period is long over."""
    p = processor_with([QUICKPAY])
    last_payment = payment(day(10))
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), last_payment, profile(ProfileAction.USED, day(8 * 365)))
    (delete,) = only_at(p, after_financial_year(day(10)))
    assert kinds([delete]) == [("delete", ["banking", "financial_transactions"])]
    assert delete["basis_event_id"] == last_payment.record["event_id"]
    at_archive = only_at(p, after(day(8 * 365), 3))
    assert kinds(at_archive) == [("archive", ["contact", "identity", "professional_cv"])]


def test_the_legal_accounting_period_is_configurable() -> None:
    """[2.3.2] "the duration required by applicable legislation": another legislation, another period."""
    schedule = RetentionSchedule(load_policy(), financial="P6Y")
    p = processor_with([QUICKPAY], schedule=schedule)
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), payment(day(30)))
    only_at(p, after(day(0), 3))
    (delete,) = only_at(p, after_financial_year(day(30), 6))
    assert delete["action"] == "delete"
    with pytest.raises(ValueError, match=r"2\.3\.2"):
        RetentionSchedule(load_policy(), financial="P0Y")


def test_user_content_is_anonymised_not_deleted() -> None:
    """[2.3.2] "Content created by you on our Sites (such as comments, opinions, and ratings) are anonymized after the
    periods mentioned in 2.3.1 but remain visible on our Sites"."""
    p = processor_with([])
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), profile(ProfileAction.UPDATED, day(20), (C.USER_CONTENT,)))
    emitted = only_at(p, after(day(20), 3))
    assert kinds(emitted) == [("anonymise", ["user_content"]), ("archive", ["contact", "identity", "professional_cv"])]
    anonymise = next(a for a in emitted if a["action"] == "anonymise")
    assert anonymise["policy_section"] == "2.3.2"
    later = p.tick(after(day(20), 50)).retention
    assert not any("user_content" in a["categories"] for a in later)


@pytest.mark.parametrize("action", [ProfileAction.SUSPENDED, ProfileAction.BLOCKED])
@pytest.mark.parametrize("kept_years", [None, 1, 2, 3])
def test_suspended_or_blocked_account_is_kept_between_one_and_three_years(action: ProfileAction, kept_years: int | None) -> None:
    """[2.3.3] "Should your account be suspended or blocked, we retain your data for a period of between one and three
    years following the suspension"; the period is chosen within that range (three years when not configured)."""
    schedule = None if kept_years is None else RetentionSchedule(load_policy(), after_suspension=f"P{kept_years}Y")
    p = processor_with([], schedule=schedule)
    suspended = profile(action, day(60))
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), suspended, profile(ProfileAction.USED, day(59)))
    (archive,) = only_at(p, after(day(60), 3 if kept_years is None else kept_years))
    assert archive["policy_section"] == "2.3.3"
    assert archive["basis_event_id"] == suspended.record["event_id"]


@pytest.mark.parametrize("kept", ["P0Y", "P11M", "P37M", "P10Y", "P365D", "P1095D", "3 years"])
def test_a_suspension_period_outside_one_to_three_years_is_refused(kept: str) -> None:
    """[2.3.3] "between one and three years": any other period is a configuration error that names the section."""
    with pytest.raises(ValueError, match=r"2\.3\.3"):
        RetentionSchedule(load_policy(), after_suspension=kept)


def test_reinstatement_ends_the_suspension_rule() -> None:
    """[2.3.3] applies while the account is suspended; reinstated, the account is open again [2.3.1]."""
    p = processor_with([])
    feed(
        p,
        profile(ProfileAction.REGISTERED, day(0), PROFILE),
        profile(ProfileAction.SUSPENDED, day(10)),
        profile(ProfileAction.REINSTATED, day(40)),
        profile(ProfileAction.USED, day(41)),
    )
    assert not p.tick(after(day(10), 3)).retention
    (archive,) = only_at(p, after(day(41), 3))
    assert archive["policy_section"] == "2.3.1"


def test_a_walking_clock_emits_every_action_once_at_its_first_tick_after_it_is_due() -> None:
    """[2.3] ticks every 30 days over 15 years for several subjects: each action comes out exactly once, at the first
    tick on or after its due date, and never before."""
    p = processor_with([QUICKPAY])
    open_subject, closed_subject, suspended_subject = "cand-open", "cand-closed", "cand-suspended"
    feed(
        p,
        profile(ProfileAction.REGISTERED, day(0), PROFILE, open_subject),
        profile(ProfileAction.USED, day(100), (), open_subject),
        payment(day(90), open_subject),
        profile(ProfileAction.REGISTERED, day(0), PROFILE, closed_subject),
        profile(ProfileAction.NEGATIVE_DECISION, day(80), (), closed_subject),
        profile(ProfileAction.CLOSED, day(200), (), closed_subject),
        profile(ProfileAction.REGISTERED, day(0), (C.IDENTITY, C.USER_CONTENT), suspended_subject),
        profile(ProfileAction.BLOCKED, day(15), (), suspended_subject),
    )
    expected = {
        (open_subject, "archive", after(day(100), 3)),
        (open_subject, "keep_for_legal_period", after(day(100), 3)),
        (open_subject, "delete", after_financial_year(day(90))),
        (closed_subject, "archive", after(day(80), 2)),
        (suspended_subject, "archive", after(day(15), 3)),
        (suspended_subject, "anonymise", after(day(15), 3)),
    }
    emitted: list[tuple[str, str, datetime]] = []
    previous = day(-1)
    now = day(0)
    while now < day(15 * 365):
        for action in p.tick(now).retention:
            assert previous < action["due_at"] <= now, (action, previous, now)
            emitted.append((action["subject_id"], action["action"], action["due_at"]))
        previous, now = now, now + timedelta(days=30)
    assert sorted(emitted) == sorted(expected)


def test_banking_details_never_used_for_a_payment_are_archived_with_the_rest() -> None:
    """[2.3.2] keeps *financial data (payments, reimbursements)* for the accounting period; banking details given at
    registration but never used for a transaction are no such data, so [2.3.1] archives them with the rest."""
    p = processor_with()
    feed(p, profile(ProfileAction.REGISTERED, day(0), (C.IDENTITY, C.BANKING)))
    archive = after(day(0), 3)
    emitted = only_at(p, archive)
    assert kinds(emitted) == [(RetentionActionKind.ARCHIVE.value, sorted([C.BANKING.value, C.IDENTITY.value]))]
    assert not p.tick(after(archive, 20)).retention


def test_a_reinstatement_that_arrives_before_its_suspension_still_lifts_it() -> None:
    """[2.3.3] Event time decides, not arrival: the same events in two orders leave the same archive rule."""
    events = [
        profile(ProfileAction.REGISTERED, day(0), PROFILE),
        profile(ProfileAction.USED, day(5)),
        profile(ProfileAction.SUSPENDED, day(10)),
        profile(ProfileAction.REINSTATED, day(40)),
    ]
    in_order, reinstatement_first = processor_with([]), processor_with([])
    feed(in_order, *events)
    feed(reinstatement_first, events[0], events[1], events[3], events[2])
    for p in (in_order, reinstatement_first):
        # Lifted, the suspension's rule (three years after day 10 here) gives way to the open account's [2.3.1].
        (archive,) = only_at(p, after(day(5), 3))
        assert archive["policy_section"] == "2.3.1"


def test_a_tick_over_some_subjects_reads_only_them_and_names_their_next_due_action() -> None:
    """A worker's tick between sweeps reads only the subjects events changed (streams/retention_agenda.py): it emits
    their due actions and holdings [2.3] and says when the next of their actions falls due, so the worker knows
    when a sweep over every subject is owed."""
    p = processor_with([])
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), profile(ProfileAction.USED, day(100), PROFILE, subject="other"))
    feed(p, profile(ProfileAction.USED, day(0), subject="other"), profile(ProfileAction.USED, day(200), PROFILE))
    mine = p.store.get(SUBJECT)
    assert mine is not None
    early = p.retention_tick(day(300), [mine])
    assert {r["subject_id"] for r in early.changes.holdings} == {SUBJECT}, "only the subject handed over is read"
    assert not early.changes.retention
    assert early.next_due == after(day(200), 3)  # [2.3.1] three years after the last use
    late = p.retention_tick(after(day(200), 3), [mine])
    assert [a["due_at"] for a in late.changes.retention] == [after(day(200), 3)]
    assert late.next_due is None, "nothing of that subject is ahead once its archive is emitted"
    everyone = p.retention_tick(after(day(200), 3), p.store.states())
    assert {a["subject_id"] for a in everyone.changes.retention} == {"other"}, "the archive is not emitted twice"


# -- calendar time [2.3; Regulation 1182/71 Art. 3] ------------------------------------------------
# Instants below are written out in UTC, from the calendar by hand: Paris is UTC+2 in summer, UTC+1 in winter.


def utc(*fields: int) -> datetime:
    """A UTC instant written out."""
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def archive_of(*steps: tuple[ProfileAction, datetime], schedule: RetentionSchedule | None = None) -> dict[str, Any]:
    """The one archive action [2.3.1, 2.3.3] of an account whose life is ``steps``, checked by ``only_at`` at its due date."""
    p = processor_with([], schedule=schedule)
    first = min(when for _, when in steps)
    feed(p, profile(ProfileAction.REGISTERED, first - timedelta(days=1000), PROFILE), *(profile(a, w) for a, w in steps))
    planned = [a for a in p.schedule.plan(p.store.get(SUBJECT)).actions if a["action"] == "archive"]  # type: ignore[arg-type]
    (archive,) = only_at(p, planned[0]["due_at"])
    return archive


def test_finding_5_three_years_after_a_last_use_on_2022_06_01_end_with_2025_06_01() -> None:
    """[2.3.1] "Three years after your last use": a last use on 1 June 2022 keeps the data through 1 June 2025 (not
    31 May, as 1,095 days did); the archive falls due at 00:00 Paris on 2 June 2025, 22:00 UTC on 1 June."""
    archive = archive_of((ProfileAction.USED, utc(2022, 6, 1, 10)))
    assert archive["due_at"] == utc(2025, 6, 1, 22)
    assert archive["policy_section"] == "2.3.1"


def test_finding_5_financial_data_runs_ten_years_from_the_end_of_the_financial_year() -> None:
    """[2.3.2] Code de commerce art. L123-22: a payment on 1 May 2020 belongs to the financial year 2020, which closes
    on 31 December 2020; its records are kept ten years from then, through 31 December 2030, and deleted at 00:00
    Paris on 1 January 2031 (not on 29 April 2030, as 3,650 days from the payment did)."""
    p = processor_with([QUICKPAY])
    paid = payment(utc(2020, 5, 1, 10))
    feed(p, profile(ProfileAction.REGISTERED, utc(2020, 4, 1, 10), PROFILE), paid)
    deletions = [a for a in p.tick(utc(2040, 1, 1)).retention if a["action"] == "delete"]
    assert [(a["due_at"], a["basis_event_id"]) for a in deletions] == [(utc(2030, 12, 31, 23), paid.record["event_id"])]
    q = processor_with([QUICKPAY])
    feed(q, profile(ProfileAction.REGISTERED, utc(2020, 4, 1, 10), PROFILE), paid)
    assert {a["action"] for a in q.tick(utc(2030, 1, 1)).retention} == {"archive", "keep_for_legal_period"}
    (delete,) = only_at(q, utc(2030, 12, 31, 23))  # kept through the last day of 2030 in Paris
    assert delete["action"] == "delete"


@pytest.mark.parametrize(
    ("paid", "deleted"),
    [
        (utc(2020, 12, 31, 22, 59, 59), utc(2030, 12, 31, 23)),  # 23:59:59 Paris on 31 December: financial year 2020
        (utc(2020, 12, 31, 23), utc(2031, 12, 31, 23)),  # 00:00 Paris on 1 January 2021: financial year 2021
    ],
    ids=["last-second-of-2020-in-paris", "first-second-of-2021-in-paris"],
)
def test_the_financial_year_of_a_transaction_is_the_controllers_on_both_sides_of_midnight(
    paid: datetime, deleted: datetime
) -> None:
    """[2.3.2] the financial year is the controller's: a payment at 23:30 UTC on 31 December is already in Paris's next year."""
    p = processor_with([QUICKPAY])
    feed(p, profile(ProfileAction.REGISTERED, utc(2020, 4, 1, 10), PROFILE), payment(paid))
    deletions = [a["due_at"] for a in p.tick(utc(2045, 1, 1)).retention if a["action"] == "delete"]
    assert deletions == [deleted]


@pytest.mark.parametrize(
    ("used", "due"),
    [
        # Summer (Paris UTC+2): 21:59:59 UTC is still 1 June in Paris; 22:00 UTC is 2 June.
        (utc(2022, 6, 1, 21, 59, 59), utc(2025, 6, 1, 22)),
        (utc(2022, 6, 1, 22), utc(2025, 6, 2, 22)),
        # Winter (Paris UTC+1): 22:59:59 UTC is still 1 December; 23:00 UTC is 2 December.
        (utc(2021, 12, 1, 22, 59, 59), utc(2024, 12, 1, 23)),
        (utc(2021, 12, 1, 23), utc(2024, 12, 2, 23)),
        # From summer time to winter time: the day after 29 October 2025 begins at 23:00 UTC.
        (utc(2022, 10, 29, 12), utc(2025, 10, 29, 23)),
    ],
    ids=[
        "summer-before-midnight",
        "summer-after-midnight",
        "winter-before-midnight",
        "winter-after-midnight",
        "summer-to-winter",
    ],
)
def test_periods_count_the_controllers_days_on_both_sides_of_midnight_paris(used: datetime, due: datetime) -> None:
    """[2.3.1] the day an event falls on, and the day the period ends, are Paris's (the controller's, configured in
    the policy file): the data is kept through the last day, and the archive falls due at 00:00 Paris after it."""
    archive = archive_of((ProfileAction.USED, used))
    assert archive["due_at"] == due


@pytest.mark.parametrize(
    ("step", "when", "due"),
    [
        # 29 February 2024 + one year: 28 February 2025 is the last day (Art. 3(2)(c)); due 00:00 Paris 1 March.
        (ProfileAction.CLOSED, utc(2024, 2, 29, 12), utc(2025, 2, 28, 23)),
        # 23:30 UTC on 28 February is 00:30 on the 29th in Paris: the same end.
        (ProfileAction.CLOSED, utc(2024, 2, 28, 23, 30), utc(2025, 2, 28, 23)),
        # 23:30 UTC on the 29th is 1 March in Paris: the period runs from 1 March.
        (ProfileAction.CLOSED, utc(2024, 2, 29, 23, 30), utc(2025, 3, 1, 23)),
        # Three years after a last use on 29 February 2024: 28 February 2027.
        (ProfileAction.USED, utc(2024, 2, 29, 12), utc(2027, 2, 28, 23)),
        # A suspension on 29 February 2024 kept three years [2.3.3]: through 28 February 2027.
        (ProfileAction.SUSPENDED, utc(2024, 2, 29, 12), utc(2027, 2, 28, 23)),
    ],
    ids=["closure", "closure-paris-29th", "closure-paris-1st-march", "last-use", "suspension"],
)
def test_29_february_plus_years_ends_on_28_february(step: ProfileAction, when: datetime, due: datetime) -> None:
    """Regulation 1182/71 Art. 3(2)(c): when the last month has no day bearing the start's date, the period ends with
    the last day of that month."""
    steps = [(ProfileAction.USED, when - timedelta(days=1)), (step, when)]
    assert archive_of(*steps)["due_at"] == due


@pytest.mark.parametrize(
    ("negative", "due", "basis"),
    [
        # Closure 1 June 2023 + one year: through 1 June 2024. A decision on 2 June 2022 + two years: through 2 June 2024.
        (utc(2022, 6, 2, 10), utc(2024, 6, 2, 22), "negative"),
        # A decision on 1 June 2022: both end on 1 June 2024; equal, the closure's year stands.
        (utc(2022, 6, 1, 10), utc(2024, 6, 1, 22), "closed"),
        # 23:00 UTC on 31 May 2022 is 1 June in Paris: equal again, though a day earlier in UTC.
        (utc(2022, 5, 31, 23), utc(2024, 6, 1, 22), "closed"),
        # 21:00 UTC on 31 May is 31 May in Paris too: the closure's year is longer.
        (utc(2022, 5, 31, 21), utc(2024, 6, 1, 22), "closed"),
    ],
    ids=["decision-a-day-later", "same-last-day", "same-last-day-in-paris", "decision-a-day-earlier"],
)
def test_whichever_is_longest_compares_calendar_ends(negative: datetime, due: datetime, basis: str) -> None:
    """[2.3.1] "one year after the closure ... two years following the most recent negative decision ..., whichever is
    longest": the two periods' ends compared in calendar time, in Paris."""
    closed = utc(2023, 6, 1, 10)
    archive = archive_of(
        (ProfileAction.USED, closed - timedelta(days=30)),
        (ProfileAction.NEGATIVE_DECISION, negative),
        (ProfileAction.CLOSED, closed),
    )
    assert archive["due_at"] == due
    assert archive["reason"] == (
        "one year after closure" if basis == "closed" else "two years after the latest negative decision or notification"
    )


@pytest.mark.parametrize(
    ("kept", "due"),
    [
        ("P1Y", utc(2025, 7, 5, 22)),  # through 5 July 2025
        ("P18M", utc(2026, 1, 5, 23)),  # through 5 January 2026 (winter: 00:00 Paris is 23:00 UTC)
        ("P36M", utc(2027, 7, 5, 22)),  # three years, in months
    ],
)
def test_the_suspension_period_is_chosen_within_one_to_three_years_in_calendar_time(kept: str, due: datetime) -> None:
    """[2.3.3] "between one and three years following the suspension": any period in that range, counted in calendar
    months from the suspension (5 July 2024, 11:00 in Paris)."""
    schedule = RetentionSchedule(load_policy(), after_suspension=kept)
    archive = archive_of(
        (ProfileAction.USED, utc(2024, 7, 1, 9)), (ProfileAction.SUSPENDED, utc(2024, 7, 5, 9)), schedule=schedule
    )
    assert (archive["due_at"], archive["policy_section"]) == (due, "2.3.3")


def test_the_time_zone_and_the_financial_year_end_come_from_the_policy_file() -> None:
    """A controller elsewhere counts its own days, and a financial year closing on 30 June [2.3.2] closes there: both
    are the policy file's, not the code's."""
    import tomllib
    from importlib import resources

    from consentflow.policy.versions import parse_policy

    text = (resources.files("consentflow.policy.policies") / "2020-11-14.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    data["retention"] |= {"time_zone": "America/New_York", "financial_year_end": "06-30"}
    policy = parse_policy(data)
    p = processor_with([QUICKPAY], policy=policy, schedule=RetentionSchedule(policy))
    # 02:00 UTC on 2 June 2022 is 22:00 on 1 June in New York (UTC-4 in summer).
    feed(
        p,
        profile(ProfileAction.REGISTERED, utc(2020, 4, 1, 10), PROFILE),
        payment(utc(2020, 5, 1, 10)),
        profile(ProfileAction.USED, utc(2022, 6, 2, 2)),
    )
    due = {a["action"]: a["due_at"] for a in p.tick(utc(2040, 1, 1)).retention}
    assert due["archive"] == utc(2025, 6, 2, 4)  # 00:00 New York on 2 June 2025
    assert due["delete"] == utc(2030, 7, 1, 4)  # financial year to 30 June 2020, ten years: 00:00 New York on 1 July 2030
