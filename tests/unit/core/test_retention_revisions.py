"""Retention actions are revisable, like verdicts [2.3]: a record issued at one clock that a later-arriving fact
moves or cancels is retracted (same action id, higher revision, ``active`` false), a record whose content changed is
issued again, and whatever the ticks in between, the records in force after the last tick are those one tick on
everything known issues."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.processor import Processor
from consentflow.core.state import SubjectState
from consentflow.policy.vocabulary import AccountKind, DataCategory, LegalBasis, ProfileAction, Purpose
from tests.support.builders import QUICKPAY, T0, disclose, eid, feed, processor_with

PARIS = ZoneInfo("Europe/Paris")  # the controller's zone, policies/2020-11-14.toml


def archive_due(last_use: datetime) -> datetime:
    """When "three years after your last use" [2.3.1] falls due, counted here on its own: the data is kept through the
    day three years on bearing the same date (28 February for a 29th), and archived at 00:00 Paris the day after."""
    day = last_use.astimezone(PARIS).date()
    try:
        last = day.replace(year=day.year + 3)
    except ValueError:
        last = day.replace(year=day.year + 3, day=28)
    return datetime.combine(last + timedelta(days=1), time(0), PARIS).astimezone(UTC)


SUBJECT = "cand-revised"
C = DataCategory


def profile(action: ProfileAction, when: datetime, categories: Iterable[DataCategory] = (C.IDENTITY, C.CONTACT)) -> Event:
    return events.profile_event(
        SUBJECT,
        action,
        account_kind=AccountKind.APPLICANT,
        categories=tuple(categories),
        source_service="profile",
        occurred_at=when,
        event_id=eid(SUBJECT, "profile", action, when.isoformat()),
    )


def in_force(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The records in force: per action id the highest revision (a tie goes to the later record, as ClickHouse keeps
    the last inserted), if active; without the revision, which says only how much was known."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        known = latest.get(record["action_id"])
        if known is None or record["revision"] >= known["revision"]:
            latest[record["action_id"]] = record
    return {k: {f: v for f, v in r.items() if f != "revision"} for k, r in latest.items() if r["active"]}


def test_an_action_a_late_fact_moves_is_retracted_then_issued_at_its_new_date() -> None:
    p = processor_with()
    feed(p, profile(ProfileAction.REGISTERED, T0))
    clock = archive_due(T0)
    (issued,) = p.tick(clock).retention
    assert (issued["action"], issued["due_at"], issued["active"], issued["revision"]) == ("archive", clock, True, 1)
    # A use from 100 days after registration arrives late: the archive runs from it [2.3.1].
    feed(p, profile(ProfileAction.USED, T0 + timedelta(days=100)))
    (retraction,) = p.tick(clock).retention
    assert retraction == {**issued, "revision": 2, "active": False}
    assert not p.tick(clock).retention, "a retraction is issued once"
    (moved,) = p.tick(archive_due(T0 + timedelta(days=100))).retention
    assert moved["action_id"] != issued["action_id"] and (moved["active"], moved["revision"]) == (True, 2)


def test_an_action_whose_categories_grow_is_issued_again_under_its_id() -> None:
    p = processor_with()
    feed(p, profile(ProfileAction.REGISTERED, T0))
    clock = archive_due(T0)
    (issued,) = p.tick(clock).retention
    # A disclosure of the CV, from before the clock, arrives late: the archive date stays, the categories grow.
    late = disclose(
        SUBJECT,
        QUICKPAY,
        [C.PROFESSIONAL_CV],
        T0 + timedelta(days=1),
        purpose=Purpose.CONTRACT_INTRODUCTIONS,
        basis=LegalBasis.CONTRACT,
    )
    feed(p, late)
    (again,) = p.tick(clock).retention
    assert again["action_id"] == issued["action_id"] and again["revision"] > issued["revision"] and again["active"]
    assert set(again["categories"]) == set(issued["categories"]) | {C.PROFESSIONAL_CV.value}


# Far enough apart that a tick at the watermark of the events arrived so far passes due dates which the events
# still to come move: the archive after the last use, the suspension, the closure or the negative decision.
LIFE = (
    (ProfileAction.REGISTERED, 0),
    (ProfileAction.USED, 200),
    (ProfileAction.SUSPENDED, 400),
    (ProfileAction.REINSTATED, 1600),
    (ProfileAction.USED, 1700),
    (ProfileAction.NEGATIVE_DECISION, 2900),
    (ProfileAction.CLOSED, 3000),
)


@settings(max_examples=150, deadline=None)
@given(
    order=st.permutations(range(len(LIFE) + 1)),
    ticks=st.lists(st.booleans(), min_size=len(LIFE) + 1, max_size=len(LIFE) + 1),
    later=st.integers(0, 6 * 365),
)
def test_whatever_the_arrival_order_and_the_ticks_between_the_last_tick_leaves_what_one_tick_issues(
    order: list[int], ticks: list[bool], later: int
) -> None:
    """Events of one account's life [2.3.1, 2.3.2, 2.3.3] in any order, with a tick at the watermark after any of
    them; the last tick at the watermark plus ``later`` days."""
    payment = disclose(
        SUBJECT,
        QUICKPAY,
        [C.BANKING, C.FINANCIAL_TRANSACTIONS],
        T0 + timedelta(days=300),
        purpose=Purpose.CONTRACT_INTRODUCTIONS,
        basis=LegalBasis.CONTRACT,
    )
    life = [profile(action, T0 + timedelta(days=days)) for action, days in LIFE] + [payment]
    arriving = [life[i] for i in order]
    end = max(e.record["occurred_at"] for e in life) + timedelta(days=later)

    walked, records = processor_with(), []
    watermark = T0
    for event, tick in zip(arriving, ticks, strict=True):
        feed(walked, event)
        watermark = max(watermark, event.record["occurred_at"])
        if tick:
            records += walked.tick(watermark).retention
    records += walked.tick(end).retention

    once = processor_with()
    feed(once, *life)
    expected = once.tick(end).retention
    assert in_force(records) == in_force(expected)
    assert all(r["active"] for r in expected)


def test_a_state_pickled_before_retractions_existed_loads_and_its_next_tick_settles_what_it_emitted() -> None:
    """An older worker kept only the ids it emitted (``retention_done``): the next tick issues again what is still
    due, and retracts what is not planned any more, from what the id names."""
    p = processor_with()
    feed(p, profile(ProfileAction.REGISTERED, T0))
    state = p.store.get(SUBJECT)
    assert state is not None
    stale = f"{SUBJECT}:archive:{(archive_due(T0 - timedelta(days=5))).isoformat()}"
    current = f"{SUBJECT}:archive:{(archive_due(T0)).isoformat()}"
    _, values = state.__getstate__()
    del values["retention_issued"]
    values["retention_done"] = {stale, current}
    old = SubjectState.__new__(SubjectState)
    old.__setstate__((None, values))
    restored: SubjectState = pickle.loads(pickle.dumps(old))
    assert restored.retention_issued == {stale: None, current: None}

    p.store.put(restored)
    out = {r["action_id"]: r for r in p.tick(archive_due(T0)).retention}
    assert out[current]["active"] and out[current]["categories"]
    assert (out[stale]["active"], out[stale]["action"], out[stale]["due_at"]) == (
        False,
        "archive",
        archive_due(T0 - timedelta(days=5)),
    )
    assert not p.tick(archive_due(T0)).retention


def test_a_processor_starts_from_the_pickled_states_of_another_and_issues_nothing_twice() -> None:
    first = processor_with()
    feed(first, profile(ProfileAction.REGISTERED, T0))
    assert first.tick(archive_due(T0)).retention
    second = Processor(registry=first.registry)
    for state in first.store.states():
        second.store.put(pickle.loads(pickle.dumps(state)))
    assert not second.tick(archive_due(T0)).records
