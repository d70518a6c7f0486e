"""Properties of the consent ledger [6], checked with hypothesis.

* Arrival order does not matter: the consent state of every (subject, purpose) at any instant, and the
  final active marketing violations [3.8, 6], are the same in every order the events can arrive in.
* Re-delivery does not matter: an event seen before produces no output and changes no state.
* The hash chain is tamper-evident: any change to a hashed field of a stored entry makes ``verify_chain``
  fail at that entry; removed, inserted or swapped entries are detected (a removed last entry only
  against the recorded head); the Kafka ``source`` coordinates are outside the hash by design.

Expected states and violations are computed here from the events alone, by reading the policy:
consent "in force" at an instant is the latest consent decision at or before it.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.ledger import _canonical, canonical_encoding, entry_encoding, verify_chain
from consentflow.core.processor import Processor
from consentflow.policy.vocabulary import ConsentAction, ConsentChannel, MessageKind, Purpose
from tests.support.builders import POSTWAVE, T0, active_verdicts, crash_and_replay, eid, highest_revisions, processor_with

SUBJECTS = ("cand-0001", "cand-0002")
PURPOSES = (Purpose.MARKETING, Purpose.COOKIES_ANALYTICS, Purpose.PARTNER_AGGREGATION)
ACTIONS = (ConsentAction.GRANTED, ConsentAction.WITHDRAWN, ConsentAction.REFUSED)
CHANNELS = tuple(c for c in ConsentChannel if c is not ConsentChannel.UNKNOWN)
SERVICES = ("registration", "profile", "mailing", "support", "cookie-banner")
#: What each consent action leaves in force [6]; before any decision the purpose was never asked.
STATE_AFTER = {ConsentAction.GRANTED: "granted", ConsentAction.WITHDRAWN: "withdrawn", ConsentAction.REFUSED: "refused"}
NEVER_ASKED = "never_asked"
MARKETING_SECTIONS = ("3.8", "6")
#: The LedgerEntry fields an entry's hash must cover (everything but the Kafka coordinates).
HASHED = (
    "subject_id",
    "sequence",
    "event_id",
    "occurred_at",
    "purpose",
    "action",
    "channel",
    "policy_version",
    "source_service",
    "notice_id",
    "previous_hash",
    "entry_hash",
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------- strategies


def not_in(taken: frozenset[int]) -> Callable[[int], bool]:
    """A filter rejecting the values already taken."""
    return lambda value: value not in taken


@st.composite
def consent_events(draw: st.DrawFn, *, max_size: int, minutes: int, distinct_times: bool, tag: str = "c") -> list[Event]:
    """Consent events for a few subjects and purposes, at random instants (ties when ``distinct_times`` is False)."""
    size = draw(st.integers(1, max_size))
    out: list[Event] = []
    used: set[tuple[str, str, int]] = set()
    for i in range(size):
        subject = draw(st.sampled_from(SUBJECTS))
        purpose = draw(st.sampled_from(PURPOSES))
        span = minutes * 60_000_000
        if distinct_times:
            # Unique instants per (subject, purpose): then "the latest decision" is unambiguous.
            taken = {o for s, p, o in used if (s, p) == (subject, purpose.value)}
            offset = draw(st.integers(0, span).filter(not_in(frozenset(taken))))
            used.add((subject, purpose.value, offset))
        else:
            offset = draw(st.integers(0, minutes)) * 60_000_000  # whole minutes: ties in event time are likely
        out.append(
            events.consent_event(
                subject,
                purpose,
                draw(st.sampled_from(ACTIONS)),
                channel=draw(st.sampled_from(CHANNELS)),
                source_service=draw(st.sampled_from(SERVICES)),
                notice_id=draw(st.sampled_from((None, f"notice-{purpose.value}-v1"))),
                occurred_at=T0 + timedelta(microseconds=offset),
                event_id=eid(tag, i),
            )
        )
    return out


@st.composite
def marketing_messages(draw: st.DrawFn, *, max_size: int, minutes: int) -> list[Event]:
    """Newsletters (marketing [3.8, 6]) through the registered emailing provider."""
    size = draw(st.integers(1, max_size))
    return [
        events.message_sent(
            draw(st.sampled_from(SUBJECTS)),
            MessageKind.NEWSLETTER,
            channel="email",
            purpose=Purpose.MARKETING,
            processor_id=POSTWAVE.recipient_id,
            source_service="mailing",
            occurred_at=T0 + timedelta(microseconds=draw(st.integers(0, minutes * 60_000_000))),
            event_id=eid("m", i),
        )
        for i in range(size)
    ]


# ------------------------------------------------------------------------------- helpers


def run(order: Sequence[Event]) -> tuple[Processor, list[tuple[str, dict[str, Any]]]]:
    """A fresh processor (registry first) fed ``order``; every output record, in order."""
    processor = processor_with([POSTWAVE])
    outputs: list[tuple[str, dict[str, Any]]] = []
    for item in order:
        outputs.extend(processor.process(item.topic.short_name, item.record).records)
    return processor, outputs


def probes(items: Sequence[Event]) -> list[datetime]:
    """Instants worth asking about: before everything, at and around every event, after everything."""
    times = sorted({e.record["occurred_at"] for e in items})
    out = {T0 - timedelta(days=1), times[-1] + timedelta(days=1)}
    for t in times:
        out.update((t - timedelta(microseconds=1), t, t + timedelta(microseconds=1)))
    return sorted(out)


def states(processor: Processor, instants: Sequence[datetime]) -> dict[tuple[str, str, datetime], str]:
    """The processor's consent state for every subject, purpose and instant."""
    return {(s, p.value, t): processor.state_at(s, p.value, t) for s in SUBJECTS for p in PURPOSES for t in instants}


def acceptable_states(consents: Sequence[Event], subject: str, purpose: str, t: datetime) -> set[str]:
    """States the policy allows at ``t``: that of the latest decision at or before ``t`` (any of them on a tie)."""
    before = [
        e.record
        for e in consents
        if e.record["subject_id"] == subject and e.record["purpose"] == purpose and e.record["occurred_at"] <= t
    ]
    if not before:
        return {NEVER_ASKED}
    latest = max(r["occurred_at"] for r in before)
    return {STATE_AFTER[ConsentAction(r["action"])] for r in before if r["occurred_at"] == latest}


def expected_marketing_violations(consents: Sequence[Event], messages: Sequence[Event]) -> dict[str, list[str]]:
    """Offending message id -> evidence, for newsletters sent without marketing consent in force [3.8, 6]."""
    expected: dict[str, list[str]] = {}
    for message in messages:
        m = message.record
        before = [
            c.record
            for c in consents
            if c.record["subject_id"] == m["subject_id"]
            and c.record["purpose"] == Purpose.MARKETING.value
            and c.record["occurred_at"] <= m["occurred_at"]
        ]
        if not before:
            expected[m["event_id"]] = [m["event_id"]]  # never asked: no consent event to cite
            continue
        # At the same instant a withdrawal or refusal prevails over a grant, then the event id decides [6; GDPR Art. 7(1)].
        latest = max(before, key=lambda r: (r["occurred_at"], r["action"] != "granted", r["event_id"]))
        if latest["action"] != ConsentAction.GRANTED.value:
            expected[m["event_id"]] = [m["event_id"], latest["event_id"]]
    return expected


def active_marketing(outputs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, list[str]]:
    """Offending event id -> evidence of the final active verdicts (highest revision per violation id)."""
    found: dict[str, list[str]] = {}
    for record in active_verdicts(r for topic, r in outputs if topic == "violations").values():
        assert record["rule"] == "marketing_without_consent", record
        assert all(s in record["policy_section"] for s in MARKETING_SECTIONS), record["policy_section"]
        evidence = list(record["evidence_event_ids"])
        found[evidence[0]] = evidence
    return found


# ------------------------------------------------------------------------------- arrival order


@FAST
@given(consent_events(max_size=5, minutes=3, distinct_times=False))
def test_every_permutation_gives_the_same_consent_state_at_every_instant(consents: list[Event]) -> None:
    """Consent state at an instant depends on event time, never on arrival order [6], ties included."""
    instants = probes(consents)
    reference: dict[tuple[str, str, datetime], str] | None = None
    for order in itertools.permutations(consents):
        processor, outputs = run(order)
        assert [t for t, _ in outputs] == ["ledger"] * len(consents)  # one entry per consent event, nothing else
        found = states(processor, instants)
        if reference is None:
            reference = found
            for (subject, purpose, t), state in found.items():
                assert state in acceptable_states(consents, subject, purpose, t), (subject, purpose, t)
        else:
            assert found == reference, [order.index(e) for e in consents]


@FAST
@given(
    consent_events(max_size=4, minutes=120, distinct_times=True),
    marketing_messages(max_size=2, minutes=120),
)
def test_every_permutation_of_consents_and_newsletters_gives_the_same_active_violations(
    consents: list[Event], messages: list[Event]
) -> None:
    """A newsletter is a violation iff no marketing consent is in force at send time [3.8, 6], whatever the arrival order."""
    expected = expected_marketing_violations(consents, messages)
    instants = probes(consents + messages)
    reference_states: dict[tuple[str, str, datetime], str] | None = None
    for order in itertools.permutations(consents + messages):
        processor, outputs = run(order)
        assert active_marketing(outputs) == expected, [e.record["event_id"] for e in order]
        found = states(processor, instants)
        reference_states = reference_states or found
        assert found == reference_states


@FAST
@given(
    consent_events(max_size=9, minutes=600, distinct_times=True),
    marketing_messages(max_size=5, minutes=600),
    st.data(),
)
def test_random_arrival_orders_of_larger_histories_agree_with_the_policy(
    consents: list[Event], messages: list[Event], data: st.DataObject
) -> None:
    """Random orders of up to 14 events: the same state at every probe and the same active violations [3.8, 6]."""
    everything = consents + messages
    expected = expected_marketing_violations(consents, messages)
    instants = probes(everything)
    reference: dict[tuple[str, str, datetime], str] | None = None
    for _ in range(4):
        order = data.draw(st.permutations(everything))
        processor, outputs = run(order)
        assert active_marketing(outputs) == expected
        found = states(processor, instants)
        if reference is None:
            reference = found
            for (subject, purpose, t), state in found.items():
                assert {state} == acceptable_states(consents, subject, purpose, t), (subject, purpose, t)
        assert found == reference


@FAST
@given(
    consent_events(max_size=6, minutes=60, distinct_times=False),
    marketing_messages(max_size=3, minutes=60),
    st.data(),
)
def test_redelivered_events_change_nothing(consents: list[Event], messages: list[Event], data: st.DataObject) -> None:
    """An event delivered again, anywhere in the order, produces no output and leaves every state as it was."""
    order = data.draw(st.permutations(consents + messages))
    registry_event = POSTWAVE.event()
    copies = data.draw(st.lists(st.sampled_from([*order, registry_event]), min_size=1, max_size=6))
    with_copies: list[Event] = list(order)
    for item in copies:
        first = with_copies.index(item) if item in with_copies else -1
        position = data.draw(st.integers(first + 1, len(with_copies)))  # a re-delivery comes after the first delivery
        with_copies.insert(position, item)

    clean, clean_outputs = run(order)
    redelivered = processor_with([POSTWAVE])
    outputs: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for item in with_copies:
        changes = redelivered.process(item.topic.short_name, item.record)
        if item.record["event_id"] in seen or item is registry_event:
            assert not changes, f"re-delivered {item.topic.short_name} event produced {changes.records}"
        seen.add(item.record["event_id"])
        outputs.extend(changes.records)
    assert outputs == clean_outputs
    instants = probes(consents + messages)
    assert states(redelivered, instants) == states(clean, instants)


def converged_active(outputs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, list[str]]:
    """What a sink keeping the highest revision per violation id shows: offending event id -> evidence.

    Records of one id at its highest revision must agree, or that revision would decide
    nothing; lower revisions may disagree (they rest on less).
    """
    top = highest_revisions((record for topic, record in outputs if topic == "violations"), "violation_id")
    found: dict[str, list[str]] = {}
    for vid, records in top.items():
        verdicts = {(r["active"], tuple(r["evidence_event_ids"])) for r in records}
        assert len(verdicts) == 1, f"{vid}: different verdicts at revision {records[0]['revision']}: {verdicts}"
        if records[0]["active"]:
            found[records[0]["evidence_event_ids"][0]] = list(records[0]["evidence_event_ids"])
    return found


@FAST
@given(
    consent_events(max_size=6, minutes=600, distinct_times=False),
    marketing_messages(max_size=4, minutes=600),
    st.data(),
)
def test_a_successor_replaying_in_another_order_overrides_what_a_crashed_worker_issued(
    consents: list[Event], messages: list[Event], data: st.DataObject
) -> None:
    """A worker is killed after processing part of the stream; its state was saved a little earlier (the
    changelog lags). A successor starts from that saved state and reads the rest in another interleaving.
    Whatever the crashed worker issued on less knowledge, the highest revision of every violation id is the
    verdict on everything [3.8, 6]: a provisional violation is overwritten, not left active."""
    expected = expected_marketing_violations(consents, messages)
    outputs = crash_and_replay([POSTWAVE], consents + messages, data.draw)
    assert converged_active(outputs) == expected


# ------------------------------------------------------------------------------- the hash chain


def chain(consents: Sequence[Event]) -> list[dict[str, Any]]:
    """The ledger entries of one subject's consent events, as a Kafka run records them (with coordinates)."""
    processor = Processor()
    entries: list[dict[str, Any]] = []
    for offset, item in enumerate(consents):
        source = {"topic": "consentflow.consent", "partition": 3, "offset": 1000 + offset}
        changes = processor.process("consent", item.record, source)
        entries.extend(changes.ledger)
    return entries


one_subject_chains = consent_events(max_size=7, minutes=600, distinct_times=False).map(
    lambda items: [
        events.consent_event(
            SUBJECTS[0],
            e.record["purpose"],
            e.record["action"],
            channel=e.record["channel"],
            source_service=e.record["source_service"],
            notice_id=e.record["notice_id"],
            occurred_at=e.record["occurred_at"],
            event_id=e.record["event_id"],
        )
        for e in items
    ]
)


def head_of(entries: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """The (sequence, hash) the ledger last recorded."""
    return entries[-1]["sequence"], entries[-1]["entry_hash"]


def other_value(field: str, value: Any) -> st.SearchStrategy[Any]:
    """Values of ``field`` different from ``value``, of the field's own type."""
    hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)
    ids = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "subject_id": ids,
        "sequence": st.integers(-2, 40),
        "event_id": st.uuids().map(str),
        "occurred_at": st.integers(-(10**12), 10**12).filter(bool).map(lambda us: value + timedelta(microseconds=us)),
        "purpose": st.sampled_from([p.value for p in Purpose]),
        "action": st.sampled_from([a.value for a in ConsentAction]),
        "channel": st.sampled_from([c.value for c in ConsentChannel]),
        "policy_version": st.dates().map(lambda d: d.isoformat()),
        "source_service": ids,
        "notice_id": st.one_of(st.none(), ids),
        "previous_hash": hexes,
        "entry_hash": hexes,
    }
    return strategies[field].filter(lambda v: v != value)


@FAST
@given(one_subject_chains)
def test_an_untouched_chain_verifies_with_and_without_its_head(consents: list[Event]) -> None:
    """The chain a run recorded verifies, each entry linking to the one before it."""
    entries = chain(consents)
    assert [e["sequence"] for e in entries] == list(range(len(consents)))
    assert all(later["previous_hash"] == earlier["entry_hash"] for earlier, later in itertools.pairwise(entries))
    assert len({e["entry_hash"] for e in entries}) == len(entries)
    assert verify_chain(entries).ok
    assert verify_chain(entries, head_of(entries)).ok


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(), min_size=9, max_size=9),
    st.integers(0, 2**40),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    st.none() | st.text(),
)
def test_the_processors_encoding_writes_the_bytes_of_the_canonical_definition(
    texts: list[str], sequence: int, occurred_at: datetime, notice_id: str | None
) -> None:
    """The hash covers compact ASCII JSON of the hashed fields [6]; the processors' fast writer of it agrees byte
    for byte with ``json.dumps``, whatever the text holds (quotes, controls, non-ASCII), so an auditor can recompute it."""
    _assert_both_write_json(texts, sequence, occurred_at, notice_id)


# Mostly text JSON writes as it is, now and then one character it escapes (or a quote).
NEAR_PLAIN = st.text(st.characters(min_codepoint=0x1F, max_codepoint=0x7F), max_size=6)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(NEAR_PLAIN, min_size=9, max_size=9),
    st.integers(0, 2**40),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    st.none() | NEAR_PLAIN,
)
def test_the_processors_encoding_agrees_at_the_edge_of_what_json_escapes(
    texts: list[str], sequence: int, occurred_at: datetime, notice_id: str | None
) -> None:
    """Texts of printable ASCII with the odd quote, backslash, control or DEL: the same bytes as ``json.dumps`` [6]."""
    _assert_both_write_json(texts, sequence, occurred_at, notice_id)


def _assert_both_write_json(texts: list[str], sequence: int, occurred_at: datetime, notice_id: str | None) -> None:
    subject, event, purpose, action, channel, version, service, previous, _ = texts
    values = (subject, sequence, event, occurred_at, purpose, action, channel, version, service, notice_id, previous)
    entry = dict(zip(HASHED[:-1], values, strict=True))
    plain = [*values]
    plain[3] = (occurred_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    expected = json.dumps(plain, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    assert canonical_encoding(entry) == expected
    assert _canonical(values) == expected
    assert entry_encoding(entry) == expected  # the consent log's leaf of the entry (log_leaves)


@FAST
@given(one_subject_chains, st.sampled_from(HASHED), st.data())
def test_changing_any_hashed_field_fails_verification_at_that_entry(
    consents: list[Event], field: str, data: st.DataObject
) -> None:
    """Any single change to a stored entry's hashed fields is caught, and the verdict names that entry."""
    entries = chain(consents)
    index = data.draw(st.integers(0, len(entries) - 1))
    tampered = copy.deepcopy(entries)
    tampered[index][field] = data.draw(other_value(field, entries[index][field]))
    for head in (None, head_of(entries)):
        verdict = verify_chain(tampered, head)
        assert not verdict.ok, f"{field} of entry {index} changed unnoticed"
        assert verdict.first_bad == index, (field, index, str(verdict))


@FAST
@given(one_subject_chains, st.data())
def test_removing_an_entry_is_detected_and_the_last_one_against_the_head(consents: list[Event], data: st.DataObject) -> None:
    """A removed entry breaks the chain at its place; removing the last one shows only against the recorded head."""
    entries = chain(consents)
    index = data.draw(st.integers(0, len(entries) - 1))
    shorter = entries[:index] + entries[index + 1 :]
    with_head = verify_chain(shorter, head_of(entries))
    assert not with_head.ok
    if index < len(entries) - 1:
        verdict = verify_chain(shorter)
        assert not verdict.ok and verdict.first_bad == index, str(verdict)
    else:
        assert verify_chain(shorter).ok  # a chain alone cannot show a missing tail: that is what the head is for


@FAST
@given(one_subject_chains, st.data())
def test_inserting_a_copy_of_an_entry_is_detected(consents: list[Event], data: st.DataObject) -> None:
    """An entry replayed into the chain (a copy of a real one, anywhere) does not verify."""
    entries = chain(consents)
    copied = data.draw(st.integers(0, len(entries) - 1))
    position = data.draw(st.integers(0, len(entries)))
    longer = [*entries[:position], copy.deepcopy(entries[copied]), *entries[position:]]
    assert not verify_chain(longer).ok
    assert not verify_chain(longer, head_of(entries)).ok


@FAST
@given(one_subject_chains.filter(lambda c: len(c) >= 2), st.data())
def test_swapping_two_entries_is_detected_at_the_first_of_them(consents: list[Event], data: st.DataObject) -> None:
    """Reordered entries are caught where the order first goes wrong."""
    entries = chain(consents)
    i = data.draw(st.integers(0, len(entries) - 2))
    j = data.draw(st.integers(i + 1, len(entries) - 1))
    swapped = list(entries)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    verdict = verify_chain(swapped, head_of(entries))
    assert not verdict.ok and verdict.first_bad == i, str(verdict)


@FAST
@given(
    one_subject_chains,
    st.data(),
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                "topic": st.sampled_from(["consentflow.consent", "other.consent"]),
                "partition": st.integers(0, 63),
                "offset": st.integers(0, 2**40),
            }
        ),
    ),
)
def test_changing_the_kafka_coordinates_does_not_fail_verification(
    consents: list[Event], data: st.DataObject, source: dict[str, Any] | None
) -> None:
    """``source`` is outside the hash by design: an embedded run and a Kafka run record the same chain."""
    entries = chain(consents)
    assert entries[0]["source"] == {"topic": "consentflow.consent", "partition": 3, "offset": 1000}
    index = data.draw(st.integers(0, len(entries) - 1))
    moved = copy.deepcopy(entries)
    moved[index]["source"] = source
    assert verify_chain(moved, head_of(entries)).ok
    # And a run without coordinates hashes exactly the same entries.
    embedded = Processor()
    plain = [entry for item in consents for entry in embedded.process("consent", item.record).ledger]
    assert [e["entry_hash"] for e in plain] == [e["entry_hash"] for e in entries]
    assert all(e["source"] is None for e in plain)


def test_an_empty_chain_against_a_recorded_head_is_detected() -> None:
    """Every entry removed: only the head can tell."""
    entries = chain(
        [
            events.consent_granted(
                SUBJECTS[0],
                Purpose.MARKETING,
                channel="registration_form",
                source_service="registration",
                occurred_at=T0,
                event_id=eid("only"),
            )
        ]
    )
    assert verify_chain([]).ok
    assert not verify_chain([], head_of(entries)).ok
