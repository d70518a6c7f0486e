"""What the platform holds of a subject, and until when: the ``SubjectHoldings`` record of ``Processor.tick`` [2.3].

Expected categories are the ones the test's own events name; expected dates are
written here from the policy's words ("three years", "one year", "two years",
"between one and three years") and the French ten years of the legal accounting
period [2.3.2], counted in calendar time by the tests' own reckoning
(``dpo_expected.after``, Regulation 1182/71 Art. 3). Nothing here asks
``RetentionSchedule`` or ``legal_periods`` what to expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.events import Event
from consentflow.contracts.topics import HOLDINGS
from consentflow.core.processor import Processor
from consentflow.core.retention import RetentionSchedule
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import (
    ConsentAction,
    DataCategory,
    LegalBasis,
    MessageChannel,
    MessageKind,
    ProfileAction,
    Purpose,
)
from tests.support.builders import (
    CLOUDNEST,
    QUICKPAY,
    consent,
    crash_and_replay,
    disclose,
    eid,
    feed,
    highest_revisions,
    processor_with,
)
from tests.support.dpo_expected import after, after_financial_year
from tests.support.retention_events import PROFILE, SUBJECT, day, payment, profile

C = DataCategory
REGISTRY = (CLOUDNEST, QUICKPAY)
CODEC = SingleObjectCodec()


def holdings(p: Processor, now: datetime) -> dict[str, dict[str, Any]]:
    """The holdings records one tick issues, by subject; each one must pass its contract's checks."""
    out = {}
    for record in p.tick(now).holdings:
        assert CODEC.decode(HOLDINGS, CODEC.encode(HOLDINGS, record)) == record  # validated, not trusted
        out[record["subject_id"]] = record
    return out


def planned(record: Mapping[str, Any]) -> list[tuple[str, list[str], datetime, str]]:
    """(action, categories, due date, section) of each planned action."""
    return [(a["action"], a["categories"], a["due_at"], a["policy_section"]) for a in record["planned"]]


def hosting(when: datetime, categories: Sequence[DataCategory] = (C.USAGE_DATA, C.DEVICE_NETWORK)) -> Event:
    """Usage data sent to the hosting subcontractor [4.3, 4.4.1]."""
    return disclose(
        SUBJECT, CLOUDNEST, categories, when, purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LegalBasis.LEGITIMATE_INTEREST
    )


def user_message(when: datetime) -> Event:
    """A message to another user [3.5, 5]: a processing with no recipient outside the platform."""
    return events.message_sent(
        SUBJECT,
        MessageKind.USER_TO_USER,
        channel=MessageChannel.IN_APP,
        purpose=Purpose.USER_COMMUNICATION,
        categories=(C.USER_MESSAGES,),
        counterpart_subject_id="cand-000999",
        source_service="messaging",
        occurred_at=when,
        event_id=eid(SUBJECT, "message", when.isoformat()),
    )


# ------------------------------------------------------------------------------- scenarios


def test_an_open_account_holds_what_it_provided_and_what_was_processed_until_three_years_after_the_last_use() -> None:
    """[2.3.1] "Three years after your last use of our Sites, if you did not close your account"; the categories held
    are those of the profile [2.1] and those any processing named, with or without a recipient [2.2, 5]."""
    p = processor_with(REGISTRY)
    registered, last_use = profile(ProfileAction.REGISTERED, day(0), PROFILE), profile(ProfileAction.USED, day(100))
    feed(p, last_use, hosting(day(50)), user_message(day(60)), registered)  # arrival order is not event order
    (record,) = holdings(p, day(101)).values()
    held = sorted({*PROFILE, C.USAGE_DATA, C.DEVICE_NETWORK, C.USER_MESSAGES})
    assert record["categories_held"] == held
    assert (record["registered_at"], record["last_use"], record["closed_at"], record["suspended_at"]) == (
        day(0),
        day(100),
        None,
        None,
    )
    archive = after(day(100), 3)
    assert (record["archive_at"], record["archive_section"]) == (archive, "2.3.1")
    assert planned(record) == [("archive", held, archive, "2.3.1")]
    assert record["planned"][0]["basis_event_id"] == last_use.record["event_id"]
    assert (record["revision"], record["latest_event_at"], record["account_kind"]) == (4, day(100), "applicant")


@pytest.mark.parametrize(
    ("negatives", "expected", "section_basis"),
    [
        ((), (10, 1), "closed"),  # one year after closure
        ((-200,), (-200, 2), "negative"),  # two years after the decision are longer
        ((-400,), (10, 1), "closed"),  # two years after the decision end before one after closure
        ((-600, -100), (-100, 2), "negative"),  # the most recent decision counts
    ],
    ids=["closure", "decision-longer", "closure-longer", "most-recent-decision"],
)
def test_a_closed_account_is_held_one_year_or_two_after_the_latest_negative_decision(
    negatives: tuple[int, ...], expected: tuple[int, int], section_basis: str
) -> None:
    """[2.3.1] "One year after the closure of your account, unless you've received a negative decision or a
    notification, in which case your data is retained for two years following the most recent ... whichever is
    longest"."""
    p = processor_with(REGISTRY)
    closed = profile(ProfileAction.CLOSED, day(10))
    decisions = [profile(ProfileAction.NEGATIVE_DECISION, day(n)) for n in negatives]
    feed(p, profile(ProfileAction.REGISTERED, day(-1000), PROFILE), *reversed(decisions), closed)
    (record,) = holdings(p, day(11)).values()
    assert record["closed_at"] == day(10)
    assert record["last_negative"] == (day(max(negatives)) if negatives else None)
    archive = after(day(expected[0]), expected[1])
    assert (record["archive_at"], record["archive_section"]) == (archive, "2.3.1")
    basis = closed if section_basis == "closed" else max(decisions, key=lambda e: e.record["occurred_at"])
    assert planned(record) == [("archive", sorted(PROFILE), archive, "2.3.1")]
    assert record["planned"][0]["basis_event_id"] == basis.record["event_id"]


@pytest.mark.parametrize("action", [ProfileAction.SUSPENDED, ProfileAction.BLOCKED])
@pytest.mark.parametrize("kept_years", [None, 1])
def test_a_suspended_or_blocked_account_is_held_one_to_three_years_after_the_suspension(
    action: ProfileAction, kept_years: int | None
) -> None:
    """[2.3.3] "we retain your data for a period of between one and three years following the suspension": three
    years unless configured within that range."""
    schedule = None if kept_years is None else RetentionSchedule(load_policy(), after_suspension=f"P{kept_years}Y")
    p = processor_with(REGISTRY, schedule=schedule)
    feed(p, profile(ProfileAction.REGISTERED, day(0), PROFILE), profile(ProfileAction.USED, day(59)), profile(action, day(60)))
    (record,) = holdings(p, day(61)).values()
    kept = after(day(60), 3 if kept_years is None else kept_years)
    assert (record["suspended_at"], record["archive_at"], record["archive_section"]) == (day(60), kept, "2.3.3")
    assert planned(record) == [("archive", sorted(PROFILE), kept, "2.3.3")]


def test_financial_data_is_held_for_the_legal_period_and_user_content_anonymised() -> None:
    """[2.3.2] financial data "retained for the duration required by applicable legislation on taxation and accounting"
    from the last transaction; content created by the user "anonymized after the periods mentioned in 2.3.1"."""
    p = processor_with(REGISTRY)
    feed(
        p,
        profile(ProfileAction.REGISTERED, day(0), PROFILE),
        profile(ProfileAction.UPDATED, day(20), (C.USER_CONTENT,)),
        payment(day(50)),
        payment(day(200)),
        profile(ProfileAction.USED, day(300)),
    )
    (record,) = holdings(p, day(300)).values()
    financial = sorted([C.BANKING, C.FINANCIAL_TRANSACTIONS])
    assert record["categories_held"] == sorted({*PROFILE, C.USER_CONTENT, *financial})
    archive = after(day(300), 3)
    assert record["archive_at"] == archive
    assert sorted(planned(record), key=lambda a: (a[2], a[0])) == sorted(
        [
            ("archive", sorted(PROFILE), archive, "2.3.1"),
            ("anonymise", [C.USER_CONTENT], archive, "2.3.2"),
            ("keep_for_legal_period", financial, archive, "2.3.2"),
            ("delete", financial, after_financial_year(day(200)), "2.3.2"),
        ],
        key=lambda a: (a[2], a[0]),
    )
    assert [a["due_at"] for a in record["planned"]] == sorted(a["due_at"] for a in record["planned"])


# ------------------------------------------------------------------------------- when records are issued


def test_a_record_is_issued_at_a_tick_only_when_knowledge_changed() -> None:
    """One record per subject whose events changed since its last one, with the number of events known as revision;
    a duplicate, or a tick without news, issues nothing; the record does not depend on the clock."""
    p = processor_with(REGISTRY)
    first = [profile(ProfileAction.REGISTERED, day(0), PROFILE), hosting(day(5))]
    other = profile(ProfileAction.REGISTERED, day(1), (C.IDENTITY,), subject="cand-000777")
    feed(p, *first, other)
    issued = holdings(p, day(6))
    assert {s: r["revision"] for s, r in issued.items()} == {SUBJECT: 2, "cand-000777": 1}
    assert not holdings(p, day(7)) and not holdings(p, day(4000))  # nothing new, whatever the clock says
    feed(p, first[0])  # a duplicate changes nothing
    assert not holdings(p, day(8))
    feed(p, consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, day(9)))  # news, even if no category moved
    (again,) = holdings(p, day(10)).values()
    assert again["revision"] == 3 and again["latest_event_at"] == day(9)
    assert {k: v for k, v in again.items() if k not in ("revision", "latest_event_at")} == {
        k: v for k, v in issued[SUBJECT].items() if k not in ("revision", "latest_event_at")
    }
    late = processor_with(REGISTRY)
    feed(late, *first, other, consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, day(9)))
    assert holdings(late, day(5000))[SUBJECT] == again  # another clock, the same record


# ------------------------------------------------------------------------------- crash and replay

SUBJECTS = ("cand-000101", "cand-000102")


@st.composite
def lives(draw: st.DrawFn) -> list[Event]:
    """Two subjects' events: registration, uses, decisions, closure, suspension, payments, disclosures, consent.

    Every event has its own instant: "the last use", "the most recent decision" are then unambiguous. The
    permutations below reorder even one topic's events, which Kafka never does (a subject's profile events share a
    partition): whether a reinstatement lifts a suspension must still follow event time, not arrival.
    """
    out: list[Event] = []
    for n, subject in enumerate(SUBJECTS):

        def when(offset: int, n: int = n) -> datetime:
            return day(offset + n)  # the subjects' instants differ too

        out.append(profile(ProfileAction.REGISTERED, when(0), PROFILE, subject))
        optional = [
            profile(ProfileAction.USED, when(40), (C.VISIT_HISTORY,), subject),
            profile(ProfileAction.UPDATED, when(80), (C.USER_CONTENT,), subject),
            profile(ProfileAction.NEGATIVE_DECISION, when(120), (), subject),
            profile(ProfileAction.NOTIFICATION, when(160), (), subject),
            profile(ProfileAction.CLOSED, when(300), (), subject),
            profile(ProfileAction.SUSPENDED, when(200), (), subject),
            profile(ProfileAction.REINSTATED, when(draw(st.sampled_from([190, 230]))), (), subject),
            payment(when(60), subject),
            payment(when(140), subject),
            disclose(
                subject,
                CLOUDNEST,
                [C.USAGE_DATA],
                when(100),
                purpose=Purpose.SITE_OPTIMISATION,
                basis=LegalBasis.LEGITIMATE_INTEREST,
            ),
            consent(subject, Purpose.MARKETING, ConsentAction.GRANTED, when(30)),
        ]
        out.extend(e for e in optional if draw(st.booleans()))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_holdings_issued_by_a_crashed_worker_never_outrank_the_record_on_everything(data: st.DataObject) -> None:
    """A worker is killed part-way (its state saved a little earlier) and a successor replays the rest in another
    order, both ticking at random points. Per subject, the records at the highest revision agree, and equal the record
    a single uninterrupted run ends with."""
    everything = data.draw(lives())
    reference = processor_with(REGISTRY)
    feed(reference, *everything)
    final = holdings(reference, max(e.record["occurred_at"] for e in everything))

    issued = crash_and_replay(REGISTRY, everything, data.draw, ticks=True).holdings
    top = highest_revisions(issued, "subject_id")
    assert set(top) == set(final)
    for subject, records in top.items():
        assert all(r == final[subject] for r in records), (subject, records, final[subject])
