"""Retention [2.3] with an injected clock: ``Processor.tick(now)`` emits what is due at ``now``, each action once.

Periods are written here from the policy's words — "three years", "one year", "two years", "between one and
three years" — at 365 days a year, as the policy file ``policies/2020-11-14.toml`` counts them; the legal
accounting period of 2.3.2 is the French ten years (3,650 days) that file configures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from consentflow import events
from consentflow.events import Event
from consentflow.policy import load_policy
from consentflow.processor import Processor
from consentflow.retention import RetentionSchedule
from consentflow.vocabulary import AccountKind, DataCategory, LegalBasis, ProfileAction, Purpose, RetentionActionKind
from tests.builders import QUICKPAY, T0, disclose, eid, feed, processor_with

YEAR = timedelta(days=365)
LEGAL_ACCOUNTING = timedelta(days=3650)
TINY = timedelta(microseconds=1)
SUBJECT = "cand-000321"
C = DataCategory
PROFILE = (C.IDENTITY, C.CONTACT, C.PROFESSIONAL_CV)


def profile(action: ProfileAction, when: datetime, categories: Sequence[DataCategory] = (), subject: str = SUBJECT) -> Event:
    """A step of the account's life [2.3]."""
    return events.profile_event(
        subject,
        action,
        account_kind=AccountKind.APPLICANT,
        categories=categories,
        source_service="profile",
        occurred_at=when,
        event_id=eid(subject, "profile", action, when.isoformat()),
    )


def day(n: float) -> datetime:
    """T0 plus ``n`` days."""
    return T0 + timedelta(days=n)


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
    (archive,) = only_at(p, day(100) + 3 * YEAR)
    assert archive["action"] == RetentionActionKind.ARCHIVE.value
    assert sorted(archive["categories"]) == sorted(["identity", "contact", "professional_cv", "visit_history", "usage_data"])
    assert archive["subject_id"] == SUBJECT
    assert archive["policy_section"] == "2.3.1"
    assert archive["basis_event_id"] == last.record["event_id"]


def test_a_later_use_postpones_the_archive() -> None:
    """[2.3.1] the three years run from the *last* use: a visit before the date pushes it back."""
    p = processor_with([])
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE))
    assert not p.tick(day(0) + 3 * YEAR - TINY).retention
    feed(p, profile(ProfileAction.USED, day(500)))
    assert not p.tick(day(0) + 3 * YEAR + timedelta(days=1)).retention
    only_at(p, day(500) + 3 * YEAR)


@pytest.mark.parametrize(
    ("negatives", "closed", "expected", "basis"),
    [
        ((), 10, 10 + 365, "closed"),  # one year after closure
        ((-200,), 10, -200 + 730, "negative"),  # two years after the decision are longer
        ((-400,), 10, 10 + 365, "closed"),  # two years after the decision end before one after closure
        ((-600, -100), 10, -100 + 730, "negative"),  # the most recent decision counts
        ((40,), 10, 40 + 730, "negative"),  # a notification received after closure
    ],
    ids=["closure", "decision-longer", "closure-longer", "most-recent-decision", "after-closure"],
)
def test_closed_account_one_year_after_closure_or_two_after_the_latest_negative_decision(
    negatives: tuple[int, ...], closed: int, expected: int, basis: str
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
    (archive,) = only_at(p, day(expected))
    assert archive["policy_section"] == "2.3.1"
    by_basis = {"closed": steps[0]} | ({"negative": max(steps[1:], key=lambda e: e.record["occurred_at"])} if negatives else {})
    assert archive["basis_event_id"] == by_basis[basis].record["event_id"]


def payment(when: datetime, subject: str = SUBJECT) -> Event:
    """A payment through the payment provider [2.3.2 "payments, reimbursements"]."""
    return disclose(
        subject,
        QUICKPAY,
        [C.BANKING, C.FINANCIAL_TRANSACTIONS],
        when,
        purpose=Purpose.CONTRACT_INTRODUCTIONS,
        basis=LegalBasis.CONTRACT,
    )


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
    at_archive = only_at(p, day(300) + 3 * YEAR)
    assert kinds(at_archive) == [
        ("archive", ["contact", "identity", "professional_cv"]),
        ("keep_for_legal_period", ["banking", "financial_transactions"]),
    ]
    assert {a["policy_section"] for a in at_archive} == {"2.3.1", "2.3.2"}
    (delete,) = only_at(p, day(200) + LEGAL_ACCOUNTING)
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
    (delete,) = only_at(p, day(10) + LEGAL_ACCOUNTING)
    assert kinds([delete]) == [("delete", ["banking", "financial_transactions"])]
    assert delete["basis_event_id"] == last_payment.record["event_id"]
    at_archive = only_at(p, day(8 * 365) + 3 * YEAR)
    assert kinds(at_archive) == [("archive", ["contact", "identity", "professional_cv"])]


def test_the_legal_accounting_period_is_configurable() -> None:
    """[2.3.2] "the duration required by applicable legislation": another legislation, another period."""
    six_years = timedelta(days=6 * 365)
    schedule = RetentionSchedule(load_policy(), financial=six_years)
    p = processor_with([QUICKPAY], schedule=schedule)
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), payment(day(30)))
    only_at(p, day(0) + 3 * YEAR)
    (delete,) = only_at(p, day(30) + six_years)
    assert delete["action"] == "delete"
    with pytest.raises(ValueError, match=r"2\.3\.2"):
        RetentionSchedule(load_policy(), financial=timedelta(0))


def test_user_content_is_anonymised_not_deleted() -> None:
    """[2.3.2] "Content created by you on our Sites (such as comments, opinions, and ratings) are anonymized after the
    periods mentioned in 2.3.1 but remain visible on our Sites"."""
    p = processor_with([])
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), profile(ProfileAction.UPDATED, day(20), (C.USER_CONTENT,)))
    emitted = only_at(p, day(20) + 3 * YEAR)
    assert kinds(emitted) == [("anonymise", ["user_content"]), ("archive", ["contact", "identity", "professional_cv"])]
    anonymise = next(a for a in emitted if a["action"] == "anonymise")
    assert anonymise["policy_section"] == "2.3.2"
    later = p.tick(day(20) + 50 * YEAR).retention
    assert not any("user_content" in a["categories"] for a in later)


@pytest.mark.parametrize("action", [ProfileAction.SUSPENDED, ProfileAction.BLOCKED])
@pytest.mark.parametrize("kept_days", [None, 365, 730, 1095])
def test_suspended_or_blocked_account_is_kept_between_one_and_three_years(action: ProfileAction, kept_days: int | None) -> None:
    """[2.3.3] "Should your account be suspended or blocked, we retain your data for a period of between one and three
    years following the suspension"; the period is chosen within that range (three years when not configured)."""
    schedule = None if kept_days is None else RetentionSchedule(load_policy(), after_suspension=timedelta(days=kept_days))
    p = processor_with([], schedule=schedule)
    suspended = profile(action, day(60))
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), suspended, profile(ProfileAction.USED, day(59)))
    (archive,) = only_at(p, day(60) + (3 * YEAR if kept_days is None else timedelta(days=kept_days)))
    assert archive["policy_section"] == "2.3.3"
    assert archive["basis_event_id"] == suspended.record["event_id"]


@pytest.mark.parametrize("kept_days", [0, 364, 1096, 3650])
def test_a_suspension_period_outside_one_to_three_years_is_refused(kept_days: int) -> None:
    """[2.3.3] "between one and three years": any other period is a configuration error that names the section."""
    with pytest.raises(ValueError, match=r"2\.3\.3"):
        RetentionSchedule(load_policy(), after_suspension=timedelta(days=kept_days))


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
    assert not p.tick(day(10) + 3 * YEAR).retention
    (archive,) = only_at(p, day(41) + 3 * YEAR)
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
        (open_subject, "archive", day(100) + 3 * YEAR),
        (open_subject, "keep_for_legal_period", day(100) + 3 * YEAR),
        (open_subject, "delete", day(90) + LEGAL_ACCOUNTING),
        (closed_subject, "archive", day(80) + 2 * YEAR),
        (suspended_subject, "archive", day(15) + 3 * YEAR),
        (suspended_subject, "anonymise", day(15) + 3 * YEAR),
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
    archive = day(0) + 3 * YEAR
    emitted = only_at(p, archive)
    assert kinds(emitted) == [(RetentionActionKind.ARCHIVE.value, sorted([C.BANKING.value, C.IDENTITY.value]))]
    assert not p.tick(archive + 20 * YEAR).retention


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
        (archive,) = only_at(p, day(5) + 3 * YEAR)
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
    assert early.next_due == day(200) + 3 * YEAR  # [2.3.1] three years after the last use
    late = p.retention_tick(day(200) + 3 * YEAR, [mine])
    assert [a["due_at"] for a in late.changes.retention] == [day(200) + 3 * YEAR]
    assert late.next_due is None, "nothing of that subject is ahead once its archive is emitted"
    everyone = p.retention_tick(day(200) + 3 * YEAR, p.store.states())
    assert {a["subject_id"] for a in everyone.changes.retention} == {"other"}, "the archive is not emitted twice"
