"""The lineage graph [4, 7, 12]: who received which categories of whose data, for what, where, how framed.

Edges are made by the processor from disclosures, messages through processors and cookies, with the
registry as of each event's time. ``LineageGraph`` (``tests/support/lineage_graph.py``: the tests' reference model, which
``tests/unit/sinks/test_reference_models.py`` holds ``sinks/lineage_queries.py`` against) answers the DPO's questions
over them; every expected answer here is computed from the test's own list of what was sent, and its own copy of the
registry's dates.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from consentflow.contracts import events
from consentflow.contracts.events import MechanismPeriod
from consentflow.policy.vocabulary import (
    ConsentAction,
    ConsentChannel,
    CookieCategory,
    DataCategory,
    LegalBasis,
    MessageChannel,
    MessageKind,
    Purpose,
    RecipientKind,
    TransferMechanism,
)
from tests.support.builders import CLOUDNEST, METRICLY, POSTWAVE, RecipientSpec, at, consent, disclose, eid, feed, processor_with
from tests.support.lineage_graph import LineageGraph

SUBJECT = "cand-000007"
C = DataCategory
SOURCE = {"topic": "consentflow.disclosure", "partition": 5, "offset": 81723}


def test_a_disclosure_edge_carries_who_what_why_where_how_when_and_whence() -> None:
    """[4, 7] an edge names the subject, categories, recipient, purpose, legal basis, country, the transfer mechanism
    valid at that instant, the event time, the event that caused it and its Kafka coordinates."""
    p = processor_with()
    sent = disclose(
        SUBJECT, POSTWAVE, [C.CONTACT, C.IDENTITY], at(3), purpose=Purpose.SERVICE_INFORMATION, basis=LegalBasis.CONTRACT
    )
    (edge,) = feed(p, sent, source=SOURCE).lineage
    assert edge["subject_id"] == SUBJECT
    assert sorted(edge["categories"]) == ["contact", "identity"]
    assert edge["recipient_id"] == "postwave"
    assert edge["recipient_kind"] == RecipientKind.EMAILING_PROVIDER.value
    assert edge["purpose"] == "service_information"
    assert edge["legal_basis"] == "contract"
    assert edge["country"] == "US"
    assert edge["transfer_mechanism"] == "scc"
    assert edge["occurred_at"] == at(3)
    assert edge["source_event_id"] == sent.record["event_id"]
    assert edge["source_kind"] == "disclosure"
    assert edge["source_service"] == sent.record["source_service"] == "matching"
    assert edge["source"] == SOURCE


def test_messages_through_a_processor_and_cookies_are_edges_too_and_user_messages_are_not() -> None:
    """[7] emailing subcontractors receive the data they deliver; [2.2.1] a cookie hands device data to its vendor;
    [3.5] a message between users goes through no third party."""
    p = processor_with()
    feed(
        p,
        consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, at(-1)),
        consent(SUBJECT, Purpose.COOKIES_ANALYTICS, ConsentAction.GRANTED, at(-1), channel=ConsentChannel.COOKIE_BANNER),
    )
    mail = events.newsletter_sent(SUBJECT, "postwave", source_service="mailing", occurred_at=at(0), event_id=eid("mail"))
    ga = events.cookie_accessed(
        SUBJECT,
        METRICLY.recipient_id,
        CookieCategory.ANALYTICS,
        cookie_name="_ga",
        source_service="web",
        occurred_at=at(1),
        event_id=eid("ga"),
    )
    chat = events.message_sent(
        SUBJECT,
        MessageKind.USER_TO_USER,
        channel=MessageChannel.IN_APP,
        purpose=Purpose.USER_COMMUNICATION,
        categories=[C.USER_MESSAGES],
        counterpart_subject_id="cand-000008",
        source_service="messaging",
        occurred_at=at(2),
        event_id=eid("chat"),
    )
    edges = feed(p, mail, ga, chat).lineage
    assert [(e["source_event_id"], e["recipient_id"], e["source_kind"], e["source_service"]) for e in edges] == [
        (mail.record["event_id"], "postwave", "message", "mailing"),
        (ga.record["event_id"], "metricly", "cookie", "web"),
    ]
    # A consent purpose is processed on the basis of consent [3.8, 2.2.1].
    assert [(e["purpose"], e["legal_basis"], e["categories"]) for e in edges] == [
        ("marketing", "consent", ["contact"]),
        ("cookies_analytics", "consent", ["device_network"]),
    ]
    assert all(e["source"] is None for e in edges)  # embedded run: no coordinates


def test_the_mechanism_and_country_are_those_of_the_registry_at_the_event_time() -> None:
    """[7] SCCs signed on day 10: a transfer on day 9 is framed by nothing ("none"), on day 11 by the SCCs; when the
    recipient later moves into the EU, edges after the move say so and earlier edges keep the old country."""
    signed = at(days=10)
    first = RecipientSpec(
        "movingco",
        RecipientKind.TECHNICAL_SUBCONTRACTOR,
        "US",
        (Purpose.SITE_OPTIMISATION,),
        (MechanismPeriod(TransferMechanism.SCC, signed),),
    )
    moved = RecipientSpec(
        "movingco", RecipientKind.TECHNICAL_SUBCONTRACTOR, "NL", (Purpose.SITE_OPTIMISATION,), since=at(days=20)
    )
    p = processor_with([first, moved])

    def edge_on(day: float) -> dict[str, Any]:
        sent = disclose(
            SUBJECT,
            "movingco",
            [C.USAGE_DATA],
            at(days=day),
            purpose=Purpose.SITE_OPTIMISATION,
            basis=LegalBasis.LEGITIMATE_INTEREST,
        )
        (edge,) = feed(p, sent).lineage
        return edge

    # Processed out of time order on purpose: the registry is read as of each event's time, not arrival.
    observed = {day: edge_on(day) for day in (21, 11, 9, 10)}
    assert {day: (e["country"], e["transfer_mechanism"]) for day, e in observed.items()} == {
        9: ("US", "none"),
        10: ("US", "scc"),  # valid_from is included
        11: ("US", "scc"),
        21: ("NL", "within_eea"),
    }


# ------------------------------------------------------------------------------- graph queries

EEA_USED = {"FR", "IE", "NL"}  # the test's own geography for the countries below
START = at(days=-30)
END = at(days=30)
SCC_FROM = at(days=-5)
#: (recipient id, kind, [(since, country, windows)]) — the test's copy of the registry's history.
HISTORY: dict[
    str, tuple[RecipientKind, list[tuple[datetime, str, list[tuple[TransferMechanism, datetime, datetime | None]]]]]
] = {
    "cloudnest": (RecipientKind.TECHNICAL_SUBCONTRACTOR, [(START - timedelta(days=1), "IE", [])]),
    "postwave": (
        RecipientKind.EMAILING_PROVIDER,
        [(START - timedelta(days=1), "US", [(TransferMechanism.SCC, SCC_FROM, None)])],
    ),
    "swissjobs": (
        RecipientKind.CORPORATE_CUSTOMER,
        [(START - timedelta(days=1), "CH", [(TransferMechanism.ADEQUACY, START - timedelta(days=100), None)])],
    ),
    "shadowstats": (RecipientKind.ANALYTICS_PROVIDER, [(START - timedelta(days=1), "IN", [])]),
    "valumen-usa": (
        RecipientKind.GROUP_ENTITY,
        [
            (START - timedelta(days=1), "US", [(TransferMechanism.SCC, START - timedelta(days=400), at(days=-10))]),
            (at(days=0), "FR", []),  # repatriated to France on day 0
        ],
    ),
}
PURPOSES = (Purpose.SITE_OPTIMISATION, Purpose.CONTRACT_INTRODUCTIONS, Purpose.SERVICE_INFORMATION)
CATEGORIES = (C.CONTACT, C.IDENTITY, C.USAGE_DATA, C.PROFESSIONAL_CV, C.HARD_SKILLS)
SUBJECTS = ("cand-000101", "cand-000102", "cand-000103", "cand-000104")


def expected_place(recipient: str, t: datetime) -> tuple[str, str]:
    """Country and mechanism of ``recipient`` at ``t``, from the test's own copy of the registry [7]."""
    _kind, versions = HISTORY[recipient]
    _since, country, windows = max((v for v in versions if v[0] <= t), key=lambda v: v[0])
    if country in EEA_USED:
        return country, "within_eea"
    for mechanism, start, until in windows:
        if start <= t and (until is None or t < until):
            return country, mechanism.value
    return country, "none"


@pytest.fixture(scope="module")
def sent() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what the test sent, the edges the processor made) for 240 random disclosures."""
    specs = [
        RecipientSpec(recipient, kind, country, PURPOSES, tuple(MechanismPeriod(m, s, u) for m, s, u in windows), since=since)
        for recipient, (kind, versions) in HISTORY.items()
        for since, country, windows in versions
    ]
    p = processor_with(specs)
    rng = random.Random(20201114)
    facts: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    used: set[datetime] = set()
    for i in range(240):
        when = START + timedelta(microseconds=rng.randrange(int((END - START).total_seconds() * 1e6)))
        assert when not in used
        used.add(when)
        fact: dict[str, Any] = {
            "subject": rng.choice(SUBJECTS),
            "recipient": rng.choice(sorted(HISTORY)),
            "categories": sorted(rng.sample(CATEGORIES, rng.randint(1, 3))),
            "purpose": rng.choice(PURPOSES).value,
            "at": when,
            "event_id": eid("graph", i),
        }
        facts.append(fact)
        event = events.data_disclosed(
            fact["subject"],
            fact["recipient"],
            fact["categories"],
            purpose=fact["purpose"],
            legal_basis=LegalBasis.CONTRACT,
            source_service="matching",
            occurred_at=when,
            event_id=fact["event_id"],
        )
        edges.extend(feed(p, event).lineage)
    return facts, edges


def graph_of(edges: list[dict[str, Any]]) -> LineageGraph:
    """A graph fed the edges in a shuffled order, each edge delivered twice."""
    shuffled = edges + edges
    random.Random(7).shuffle(shuffled)
    graph = LineageGraph()
    added = [graph.add(e) for e in shuffled]
    assert added.count(True) == len(edges)  # a redelivered edge (same id) changes nothing
    return graph


def test_every_edge_matches_what_was_sent(sent: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """[4, 7] one edge per disclosure, with the country and mechanism of the registry at its instant."""
    facts, edges = sent
    assert len(edges) == len(facts)
    by_id = {e["source_event_id"]: e for e in edges}
    mechanisms: Counter[str] = Counter()
    for fact in facts:
        edge = by_id[fact["event_id"]]
        country, mechanism = expected_place(fact["recipient"], fact["at"])
        assert (edge["subject_id"], edge["recipient_id"], sorted(edge["categories"]), edge["purpose"], edge["occurred_at"]) == (
            fact["subject"],
            fact["recipient"],
            fact["categories"],
            fact["purpose"],
            fact["at"],
        )
        assert (edge["country"], edge["transfer_mechanism"]) == (country, mechanism), fact
        mechanisms[mechanism] += 1
    assert set(mechanisms) == {"within_eea", "scc", "adequacy", "none"}  # the sample exercises every case


@pytest.mark.parametrize("as_of", ["never", "day -12.5", "on an edge", "day 17.25"])
def test_recipients_of_a_subject_as_of_an_instant(sent: tuple[list[dict[str, Any]], list[dict[str, Any]]], as_of: str) -> None:
    """[8.1, 7] which recipients received the subject's data up to an instant, with categories, purposes, country and
    mechanisms; an edge exactly at ``as_of`` is included."""
    facts, edges = sent
    graph = graph_of(edges)
    for subject in SUBJECTS:
        mine = sorted((f for f in facts if f["subject"] == subject), key=lambda f: f["at"])
        instant = {
            "never": None,
            "day -12.5": at(days=-12.5),
            "on an edge": mine[len(mine) // 2]["at"],
            "day 17.25": at(days=17.25),
        }[as_of]
        kept = [f for f in mine if instant is None or f["at"] <= instant]
        expected: dict[str, dict[str, Any]] = {}
        for f in kept:
            row = expected.setdefault(
                f["recipient"], {"categories": set(), "purposes": set(), "mechanisms": set(), "first": f["at"]}
            )
            country, mechanism = expected_place(f["recipient"], f["at"])
            row["categories"].update(f["categories"])
            row["purposes"].add(f["purpose"])
            row["mechanisms"].add(mechanism)
            row["country"], row["last"] = country, f["at"]
            row["kind"] = HISTORY[f["recipient"]][0].value
        holdings = graph.recipients_of(subject, as_of=instant)
        assert [h.recipient_id for h in holdings] == sorted(expected)
        for h in holdings:
            row = expected[h.recipient_id]
            assert set(h.categories) == row["categories"]
            assert set(h.purposes) == row["purposes"]
            assert set(h.mechanisms) == row["mechanisms"]
            assert (h.country, h.recipient_kind, h.first, h.last) == (row["country"], row["kind"], row["first"], row["last"])


def test_countries_where_a_subjects_data_is_stored_and_sent(sent: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """[7] "Upon simple request, we can provide you with the list of countries where we store your data and those
    where it is occasionally sent"; "We keep your Personal Data in the European Union" (France)."""
    facts, edges = sent
    graph = graph_of(edges)
    for subject in SUBJECTS:
        sent_to = {expected_place(f["recipient"], f["at"])[0] for f in facts if f["subject"] == subject}
        assert graph.countries_of(subject, ["FR"]) == {"stored": ["FR"], "sent": sorted(sent_to)}
    assert graph.countries_of("cand-unknown", ["FR"]) == {"stored": ["FR"], "sent": []}


def test_subjects_and_categories_a_recipient_held_in_a_window(sent: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """[12] breach impact: "inform the national protection authority immediately in the event of a data leak": whose
    data, which categories, did a recipient receive in [start, end) — start included, end excluded."""
    facts, edges = sent
    graph = graph_of(edges)
    for recipient in HISTORY:
        times = sorted(f["at"] for f in facts if f["recipient"] == recipient)
        windows = [
            (START - timedelta(days=1), END + timedelta(days=1)),
            (times[3], times[-4]),  # bounds exactly on edges
            (times[0], times[0]),  # empty window
            (times[5], times[5] + timedelta(microseconds=1)),  # exactly one instant
            (at(days=-2), at(days=4)),
        ]
        for start, end in windows:
            expected: dict[str, set[str]] = defaultdict(set)
            for f in facts:
                if f["recipient"] == recipient and start <= f["at"] < end:
                    expected[f["subject"]].update(f["categories"])
            found = graph.held_by(recipient, start, end)
            assert {s: set(c) for s, c in found.items()} == dict(expected), (recipient, start, end)
    assert graph.held_by("nobody", START, END) == {}


def test_transfers_outside_the_eea_grouped_by_country_and_mechanism(
    sent: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    """[7] "data transferred to our subcontractors located outside the European Union, particularly in the United
    States": every transfer out of the EU/EEA, by country and the mechanism that framed it (or none)."""
    facts, edges = sent
    graph = graph_of(edges)
    expected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for f in facts:
        country, mechanism = expected_place(f["recipient"], f["at"])
        if country not in EEA_USED:
            expected[(country, mechanism)][f["recipient"]] += 1
    found = graph.transfers_outside_eea()
    assert found == {key: dict(counts) for key, counts in expected.items()}
    assert ("US", "none") in found and ("US", "scc") in found and ("CH", "adequacy") in found and ("IN", "none") in found
    assert all(country not in EEA_USED for country, _ in found)


def test_an_unregistered_recipient_appears_in_the_graph_without_a_country() -> None:
    """[4.3, 4.4] data sent to a recipient nobody registered still reached it: the graph shows the edge."""
    p = processor_with([CLOUDNEST])
    sent_event = disclose(SUBJECT, "ghost-crm", [C.CONTACT], at(0), purpose=Purpose.SITE_OPTIMISATION, basis=LegalBasis.CONTRACT)
    edges = feed(p, sent_event).lineage
    graph = LineageGraph(edges)
    (holding,) = graph.recipients_of(SUBJECT)
    assert holding.recipient_id == "ghost-crm" and holding.categories == frozenset({"contact"})
    assert holding.recipient_kind == RecipientKind.UNKNOWN.value
    assert graph.held_by("ghost-crm", at(0), at(1)) == {SUBJECT: frozenset({"contact"})}


def test_processings_naming_the_same_categories_share_one_tuple_in_the_state() -> None:
    """A state keeps a row per processing: equal category lists are kept as one tuple, so a subject with many
    processings holds, and the collector walks, one tuple per distinct list, not one per processing."""
    p = processor_with()
    feed(
        p,
        disclose(
            SUBJECT, POSTWAVE, [C.CONTACT, C.IDENTITY], at(3), purpose=Purpose.SERVICE_INFORMATION, basis=LegalBasis.CONTRACT
        ),
        disclose(
            SUBJECT, POSTWAVE, [C.CONTACT, C.IDENTITY], at(4), purpose=Purpose.SERVICE_INFORMATION, basis=LegalBasis.CONTRACT
        ),
        disclose(SUBJECT, POSTWAVE, [C.CONTACT], at(5), purpose=Purpose.SERVICE_INFORMATION, basis=LegalBasis.CONTRACT),
    )
    state = p.store.get(SUBJECT)
    assert state is not None
    first, second, third = (row[7] for row in state.activities)
    assert first == second == ("contact", "identity")
    assert first is second
    assert third == ("contact",)
