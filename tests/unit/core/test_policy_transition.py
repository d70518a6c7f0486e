"""The policy transition of 1 January 2027 [13]: every processing judged under the version in force at its event time.

The example version 2027-01-01 asks marketing consent again [3.8, 6, 13] and shows the town and country of residence
to other users [2.1.3, 4.1]; everything else is the 2020-11-14 text. It takes effect at 00:00 in Paris, the
controller's time zone [1]: 2026-12-31T23:00Z. Newsletters go out before and after, with and without a new consent.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.processor import Changes
from consentflow.policy.versions import PolicyHistory, load_policy, parse_policy
from consentflow.policy.vocabulary import ConsentAction, ConsentChannel, DataCategory, LegalBasis, Purpose, Rule
from tests.support.builders import (
    OTHER_USERS,
    POSTWAVE,
    active_verdicts,
    consent,
    crash_and_replay,
    disclose,
    eid,
    feed,
    final_verdicts,
    highest_revisions,
    newsletter,
    processor_with,
)

SUBJECT = "cand-002027"
#: 00:00 on 1 January 2027 in Paris.
EFFECTIVE = datetime(2026, 12, 31, 23, tzinfo=UTC)
BEFORE = datetime(2026, 10, 5, 9, tzinfo=UTC)
AFTER = datetime(2027, 2, 1, 9, tzinfo=UTC)
GRANTED, WITHDRAWN = ConsentAction.GRANTED, ConsentAction.WITHDRAWN
OLD, NEW = "2020-11-14", "2027-01-01"


def _consent_under(version: str, when: datetime, action: ConsentAction = GRANTED) -> Event:
    """A marketing consent collected with the notice of ``version`` (the event's ``policy_version``) [6, 13]."""
    return events.consent_event(
        SUBJECT,
        Purpose.MARKETING,
        action,
        channel=ConsentChannel.ACCOUNT_SETTINGS,
        source_service="profile",
        notice_id=f"notice-marketing-{version}",
        occurred_at=when,
        event_id=eid(SUBJECT, "consent", version, when.isoformat()),
        policy_version=version,
    )


def _verdicts(changes: Changes | Sequence[Mapping[str, Any]], offending: Event) -> dict[str, Mapping[str, Any]]:
    """Final verdict per rule on the offending event."""
    records = changes.violations if isinstance(changes, Changes) else changes
    return {r["rule"]: r for r in final_verdicts(records).values() if r["evidence_event_ids"][0] == offending.record["event_id"]}


def test_a_newsletter_before_the_new_version_on_the_old_consent_is_compliant() -> None:
    """[3.8, 6] before 1 January 2027 the 2020 text is in force: the consent given under it counts, nothing changes."""
    grant, letter = consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE), newsletter(SUBJECT, EFFECTIVE - timedelta(seconds=1))
    changes = feed(processor_with(), grant, letter)
    assert not active_verdicts(changes.violations)
    assert set(_verdicts(changes, letter)) == {Rule.MARKETING_WITHOUT_CONSENT.value}  # no renewal verdict before the day


def test_a_newsletter_after_the_new_version_without_a_new_consent_is_consent_not_renewed() -> None:
    """[13; GDPR Art. 7] 2027-01-01 asks marketing consent again: the 2026 grant stops counting on that day, and a
    newsletter after it is one violation, consent_not_renewed, naming both versions and the grant it relied on."""
    grant, letter = consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE), newsletter(SUBJECT, AFTER)
    changes = feed(processor_with(), grant, letter)
    active = active_verdicts(changes.violations)
    assert [r["rule"] for r in active.values()] == [Rule.CONSENT_NOT_RENEWED.value]
    (record,) = active.values()
    assert record["policy_section"].startswith("13")
    assert record["evidence_event_ids"] == [letter.record["event_id"], grant.record["event_id"]]
    assert f"under version {OLD}" in record["detail"] and f"version {NEW} in force" in record["detail"]
    assert record["subject_id"] == SUBJECT and record["purpose"] == Purpose.MARKETING.value
    assert not _verdicts(changes, letter)[Rule.MARKETING_WITHOUT_CONSENT.value]["active"]  # counted once


def test_the_new_version_takes_effect_at_midnight_in_paris() -> None:
    """[1, 13] the day is the controller's: 23:59:59 on 31 December in Paris is still 2020-11-14's, 00:00 is not."""
    grant = consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE)
    last_old = newsletter(SUBJECT, EFFECTIVE - timedelta(seconds=1), name="last-old")
    first_new = newsletter(SUBJECT, EFFECTIVE, name="first-new")
    changes = feed(processor_with(), grant, last_old, first_new)
    assert [r["evidence_event_ids"][0] for r in active_verdicts(changes.violations).values()] == [first_new.record["event_id"]]


def test_a_new_consent_after_the_date_counts_even_under_the_old_notice() -> None:
    """[13] a consent given on or after the new version's day counts, whatever notice the service named."""
    for version in (OLD, NEW):
        renewed, letter = _consent_under(version, EFFECTIVE + timedelta(days=3)), newsletter(SUBJECT, AFTER)
        changes = feed(processor_with(), consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE), renewed, letter)
        assert not active_verdicts(changes.violations), version
        verdict = _verdicts(changes, letter)[Rule.CONSENT_NOT_RENEWED.value]
        assert verdict["detail"].startswith("compliant") and verdict["evidence_event_ids"][1] == renewed.record["event_id"]


def test_a_consent_to_the_new_text_given_before_its_day_counts_after_it() -> None:
    """[13] "we will inform you and/or request your consent": a service may ask ahead of the day; a consent recorded
    under 2027-01-01 answered the new text, so it still counts after the day. The same date under the old text does not."""
    early = _consent_under(NEW, EFFECTIVE - timedelta(days=10))
    changes = feed(processor_with(), early, newsletter(SUBJECT, AFTER))
    assert not active_verdicts(changes.violations)
    stale = _consent_under(OLD, EFFECTIVE - timedelta(days=10))
    changes = feed(processor_with(), stale, newsletter(SUBJECT, AFTER))
    assert [r["rule"] for r in active_verdicts(changes.violations).values()] == [Rule.CONSENT_NOT_RENEWED.value]


def test_a_renewal_that_arrives_late_retracts_the_violation() -> None:
    """[6, 13] event time decides: the renewal dated before the newsletter, arriving after it, clears the verdict."""
    grant, renewed, letter = (
        consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE),
        consent(SUBJECT, Purpose.MARKETING, GRANTED, AFTER - timedelta(days=1)),
        newsletter(SUBJECT, AFTER),
    )
    changes = feed(processor_with(), grant, letter, renewed)
    assert any(r["active"] and r["rule"] == Rule.CONSENT_NOT_RENEWED.value for r in changes.violations)
    assert not active_verdicts(changes.violations)


def test_withdrawn_or_never_given_after_the_date_stays_marketing_without_consent() -> None:
    """[3.8, 6] no consent in force is the purpose's own rule, not a renewal: each offending newsletter counts once."""
    letter = newsletter(SUBJECT, AFTER)
    cases: list[tuple[Event, ...]] = [
        (),
        (
            consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE),
            consent(SUBJECT, Purpose.MARKETING, WITHDRAWN, BEFORE + timedelta(days=1)),
        ),
    ]
    for before in cases:
        changes = feed(processor_with(), *before, letter)
        assert [r["rule"] for r in active_verdicts(changes.violations).values()] == [Rule.MARKETING_WITHOUT_CONSENT.value]


def test_every_arrival_order_gives_the_same_final_verdicts() -> None:
    """[6] the faust worker, the embedded runner and a replay see the same events in different orders: the final
    verdicts (highest revision) are the same for every order."""
    items = [
        consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE),
        newsletter(SUBJECT, BEFORE + timedelta(days=1), name="before"),
        newsletter(SUBJECT, AFTER, name="after"),
        consent(SUBJECT, Purpose.MARKETING, GRANTED, AFTER + timedelta(days=2)),
        newsletter(SUBJECT, AFTER + timedelta(days=3), name="renewed"),
    ]
    outcomes = set()
    for order in itertools.permutations(items):
        final = final_verdicts(feed(processor_with(), *order).violations)
        outcomes.add(tuple(sorted((vid, r["active"], r["revision"], tuple(r["evidence_event_ids"])) for vid, r in final.items())))
    assert len(outcomes) == 1
    (outcome,) = outcomes
    assert [(vid.split(":")[0], active) for vid, active, _, _ in outcome if active] == [(Rule.CONSENT_NOT_RENEWED.value, True)]


def test_residence_shown_to_other_users_is_judged_by_the_version_in_force_not_the_one_named() -> None:
    """[4.1, 13] 2027-01-01 shows the town of residence to other users: a 2026 disclosure of it breaks 4.1 even when
    the event names the new version, and a 2027 one does not even when it names the old one."""
    profile = [DataCategory.PROFESSIONAL_CV.value, DataCategory.RESIDENCE.value]
    old_time = disclose(SUBJECT, OTHER_USERS, profile, BEFORE, purpose=Purpose.PROFILE_MATCHING, basis=LegalBasis.CONTRACT)
    new_time = disclose(SUBJECT, OTHER_USERS, profile, AFTER, purpose=Purpose.PROFILE_MATCHING, basis=LegalBasis.CONTRACT)
    old_time.record["policy_version"], new_time.record["policy_version"] = NEW, OLD
    changes = feed(processor_with(), old_time, new_time)
    active = active_verdicts(changes.violations)
    assert [(r["rule"], r["evidence_event_ids"][0]) for r in active.values()] == [
        (Rule.NON_PROFESSIONAL_DATA_TO_USERS.value, old_time.record["event_id"])
    ]


def test_a_processor_given_one_version_judges_everything_under_it() -> None:
    """A processor built on one policy (``Processor(policy=...)``) keeps that version at every instant."""
    grant, letter = consent(SUBJECT, Purpose.MARKETING, GRANTED, BEFORE), newsletter(SUBJECT, AFTER)
    changes = feed(processor_with(policy=load_policy(OLD)), grant, letter)
    assert not active_verdicts(changes.violations)
    assert set(_verdicts(changes, letter)) == {Rule.MARKETING_WITHOUT_CONSENT.value}


def test_two_purposes_asked_again_are_two_verdicts_on_one_processing() -> None:
    """[2.1.8, 13] a version asking marketing and geolocation again: a marketing disclosure of location data on two
    stale consents is two consent_not_renewed violations, one per purpose, each with its own id."""
    text = (resources.files("consentflow.policy.policies") / f"{NEW}.toml").read_text(encoding="utf-8")
    both = parse_policy(tomllib.loads(text) | {"reconsent": ["marketing", "geolocation_services"]})
    history = PolicyHistory.of([load_policy(OLD), both])
    located = disclose(
        SUBJECT, "postwave", [DataCategory.GEOLOCATION.value], AFTER, purpose=Purpose.MARKETING, basis=LegalBasis.CONSENT
    )
    grants = [consent(SUBJECT, purpose, GRANTED, BEFORE) for purpose in (Purpose.MARKETING, Purpose.GEOLOCATION_SERVICES)]
    changes = feed(processor_with(history=history), *grants, located)
    active = active_verdicts(changes.violations)
    assert sorted(active) == [
        f"consent_not_renewed:{located.record['event_id']}",
        f"consent_not_renewed:{located.record['event_id']}:geolocation_services",
    ]


def _expected(consents: Sequence[Event], letters: Sequence[Event]) -> set[tuple[str, str]]:
    """(rule, newsletter id) of each newsletter's violation, computed here from the policy's words [3.8, 6, 13]: the
    latest consent fact at or before it decides (at one instant a withdrawal prevails); a grant given before
    1 January 2027 (Paris) under the 2020 notice does not count for a newsletter on or after that day."""
    found = set()
    for letter in letters:
        t = letter.record["occurred_at"]
        facts = [c.record for c in consents if c.record["occurred_at"] <= t]
        if not facts:
            found.add((Rule.MARKETING_WITHOUT_CONSENT.value, letter.record["event_id"]))
            continue
        last = max(facts, key=lambda r: (r["occurred_at"], r["action"] != "granted", r["event_id"]))
        if last["action"] != "granted":
            found.add((Rule.MARKETING_WITHOUT_CONSENT.value, letter.record["event_id"]))
        elif t >= EFFECTIVE and last["occurred_at"] < EFFECTIVE and last["policy_version"] != NEW:
            found.add((Rule.CONSENT_NOT_RENEWED.value, letter.record["event_id"]))
    return found


_HOURS = st.integers(-72, 72)  # around the day, an hour at a time


@st.composite
def _transition(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    consents = [
        _consent_under(
            draw(st.sampled_from((OLD, NEW))), EFFECTIVE + timedelta(hours=h), draw(st.sampled_from((GRANTED, WITHDRAWN)))
        )
        for h in draw(st.lists(_HOURS, max_size=4, unique=True))
    ]
    letters = [
        newsletter(SUBJECT, EFFECTIVE + timedelta(hours=h, minutes=30)) for h in draw(st.lists(_HOURS, max_size=4, unique=True))
    ]
    return consents, letters


@settings(max_examples=60, deadline=None)
@given(_transition(), st.data())
def test_a_crashed_worker_and_its_successor_agree_with_the_policys_words(
    case: tuple[list[Event], list[Event]], data: st.DataObject
) -> None:
    """[6, 13] a worker killed part way, its successor replaying the rest in another order: the highest revision of
    every verdict is the one the policy's words give on everything, on both sides of the day."""
    consents, letters = case
    outputs = crash_and_replay([POSTWAVE], consents + letters, data.draw)
    found = set()
    # Records of one id at its highest revision agree; lower revisions may not (they rest on less).
    for vid, records in highest_revisions(outputs.violations, "violation_id").items():
        assert len({(r["active"], tuple(r["evidence_event_ids"])) for r in records}) == 1, vid
        if records[0]["active"]:
            found.add((records[0]["rule"], records[0]["evidence_event_ids"][0]))
    assert found == _expected(consents, letters)
