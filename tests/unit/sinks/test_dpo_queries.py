"""The DPO's query layer on the real engine (chDB), against answers computed from the generated events.

The dataset is delivered twice in two Kafka-like orders (``tests/support/dpo_expected.py``):
every answer must count each fact once (``FINAL``) and let event time decide,
whatever order the facts arrived in.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consentflow.contracts.query_arguments import ArgumentError, check_subject_id, parse_instant, parse_purpose, parse_rule
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import Purpose, Rule
from consentflow.sinks import compliance_queries, consent_queries, lineage_queries
from consentflow.sinks.clickhouse import ClickHouseSink, SinkUnavailable, connect
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import TablesMissing, UnknownId, open_tables
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import Dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("dpo"), chdb_dsn, "dpo_queries")


@pytest.fixture(scope="module")
def sink(data: Dataset, chdb_dsn: str) -> TableReader:
    return open_tables(chdb_dsn, data.database)


def _instants(data: Dataset, n: int, seed: int) -> list[datetime]:
    """``n`` instants spread over the dataset's span, some exactly at an event's time (the bound is inclusive)."""
    times = sorted(r["occurred_at"] for t, r in data.events if t != "recipients")
    rng = random.Random(seed)
    return sorted(rng.sample(times, n // 2) + [times[0] + (times[-1] - times[0]) * rng.random() for _ in range(n - n // 2)])


def _sample(data: Dataset, n: int) -> list[str]:
    """``n`` subjects drawn at random (seeded): each query costs a few milliseconds of chDB."""
    return sorted(random.Random(n).sample(data.subjects(), n))


# -- who-has, countries ------------------------------------------------------------------


def test_who_has_lists_every_recipient_of_a_subject_now_and_at_past_instants(data: Dataset, sink: TableReader) -> None:
    instants: list[datetime | None] = [None, *_instants(data, 2, seed=1)]
    compared = 0
    for subject in _sample(data, 100):
        for as_of in instants:
            want = expected.who_has(data, subject, as_of)
            got = {
                h.recipient_id: {
                    "recipient_kind": h.recipient_kind,
                    "country": h.country,
                    "categories": sorted(h.categories),
                    "purposes": sorted(h.purposes),
                    "mechanisms": sorted(h.mechanisms),
                    "first": h.first,
                    "last": h.last,
                }
                for h in lineage_queries.who_has(sink, subject, as_of)
            }
            assert got == want, (subject, as_of)
            compared += len(want)
    assert compared > 500


def test_who_has_shows_a_transfer_made_before_its_mechanism_held(data: Dataset, sink: TableReader) -> None:
    """[7] a mechanism counts from the day it holds: edges before it went under none."""
    unframed = [p for p in data.processings if p.mechanism == "none"]
    assert unframed, "the dataset should hold a transfer without a mechanism"
    p = unframed[0]
    holding = {h.recipient_id: h for h in lineage_queries.who_has(sink, p.subject_id, p.at)}[p.recipient_id]
    assert "none" in holding.mechanisms and not in_eea(holding.country)


def test_countries_are_the_storage_countries_of_the_policy_and_every_country_data_went_to(
    data: Dataset, sink: TableReader
) -> None:
    stored = load_policy().storage_countries
    assert stored and all(in_eea(c) for c in stored)  # "We keep your Personal Data in the European Union" [7]
    abroad = 0
    for subject in _sample(data, 100):
        answer = lineage_queries.countries(sink, subject)
        hosting = expected.countries_stored(data, datetime.now(UTC))
        assert set(answer.stored) == set(hosting) and stored <= set(hosting)
        assert {c.country: list(c.recipients) for c in answer.storage} == hosting
        got = {
            c.country: {"recipients": list(c.recipients), "mechanisms": list(c.mechanisms), "edges": c.edges} for c in answer.sent
        }
        assert got == expected.countries_sent(data, subject), subject
        assert all(c.in_eea == in_eea(c.country) for c in answer.sent)
        abroad += any(not c.in_eea for c in answer.sent)
    assert abroad > 10


# -- consent -----------------------------------------------------------------------------


def test_consent_state_and_history_per_purpose_at_any_instant(data: Dataset, sink: TableReader) -> None:
    consent_events = {r["event_id"]: r for r in data.of_topic("consent")}
    states: set[str] = set()
    for subject in _sample(data, 60):
        for as_of in [None, *_instants(data, 2, seed=2)]:
            answer = consent_queries.consent(sink, subject, as_of=as_of)
            want = expected.consent(data, subject, as_of)
            assert {p.purpose: p.state for p in answer.purposes} == {k: v[0] for k, v in want.items()}, (subject, as_of)
            for p in answer.purposes:
                assert [f.event_id for f in p.history] == [r["event_id"] for r in want[p.purpose][1]]
                assert p.needs_consent == load_policy().needs_consent(p.purpose)
                for fact in p.history:  # the evidence is the event's own
                    source = consent_events[fact.event_id]
                    assert (fact.occurred_at, fact.action, fact.channel, fact.policy_version) == (
                        source["occurred_at"],
                        source["action"],
                        source["channel"],
                        source["policy_version"],
                    )
                    assert (fact.source_service, fact.notice_id) == (source["source_service"], source["notice_id"])
                    assert len(fact.entry_hash) == 64
                states.add(p.state)
    assert states == {"granted", "withdrawn", "refused", "never_asked"}


def test_consent_for_one_purpose_and_a_subject_never_asked(data: Dataset, sink: TableReader) -> None:
    withdrawal = next(r for r in data.of_topic("consent") if r["action"] == "withdrawn")
    subject, purpose, t = withdrawal["subject_id"], Purpose(withdrawal["purpose"]), withdrawal["occurred_at"]
    at_withdrawal = consent_queries.consent(sink, subject, purpose, t)
    assert [p.purpose for p in at_withdrawal.purposes] == [purpose.value]
    assert at_withdrawal.purposes[0].state == expected.consent(data, subject, t)[purpose.value][0] == "withdrawn"
    just_before = consent_queries.consent(sink, subject, purpose, t - timedelta(microseconds=1)).purposes[0]
    assert just_before.state == expected.consent(data, subject, t - timedelta(microseconds=1))[purpose.value][0]
    assert len(just_before.history) == len(at_withdrawal.purposes[0].history) - 1
    before_everything = consent_queries.consent(sink, subject, as_of=datetime(2000, 1, 1, tzinfo=UTC))
    assert {p.state for p in before_everything.purposes} == {"never_asked"}


# -- breach, transfers -------------------------------------------------------------------


def test_breach_lists_the_subjects_and_categories_a_recipient_received_in_a_window(data: Dataset, sink: TableReader) -> None:
    first = min(p.at for p in data.processings).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    recipients = sorted({p.recipient_id for p in data.processings})
    seen = 0
    for recipient in recipients:
        for month in range(8):
            start = (first + timedelta(days=31 * month)).replace(day=1)
            end = (start + timedelta(days=31)).replace(day=1)
            impact = lineage_queries.breach(sink, recipient, start, end)
            want = expected.breach(data, recipient, start, end)
            assert list(impact.subject_ids) == want["subject_ids"], (recipient, start)
            assert impact.subjects == len(want["subject_ids"])
            assert {c.category: c.subjects for c in impact.categories} == want["categories"]
            assert impact.edges == want["edges"]
            assert [c.subjects for c in impact.categories] == sorted((c.subjects for c in impact.categories), reverse=True)
            seen += impact.subjects
    assert seen > 500


def test_a_breach_window_is_half_open(data: Dataset, sink: TableReader) -> None:
    p = data.processings[len(data.processings) // 2]
    starting = lineage_queries.breach(sink, p.recipient_id, p.at, p.at + timedelta(microseconds=1))
    ending = lineage_queries.breach(sink, p.recipient_id, p.at - timedelta(hours=1), p.at)
    assert p.subject_id in starting.subject_ids
    assert ending.subject_ids == tuple(expected.breach(data, p.recipient_id, p.at - timedelta(hours=1), p.at)["subject_ids"])
    with pytest.raises(ArgumentError, match="must come after the start"):
        lineage_queries.breach(sink, p.recipient_id, p.at, p.at)


@pytest.mark.parametrize("outside_eea", [False, True])
def test_transfers_by_country_recipient_and_mechanism_flag_those_nothing_frames(
    data: Dataset, sink: TableReader, outside_eea: bool
) -> None:
    rows = lineage_queries.transfers(sink, outside_eea=outside_eea)
    got = {(t.country, t.recipient_id, t.mechanism): {"edges": t.edges, "subjects": t.subjects, "framed": t.framed} for t in rows}
    assert got == expected.transfers(data, outside_eea)
    unframed = {(t.country, t.recipient_id) for t in rows if not t.framed}
    assert unframed and all(not in_eea(country) for country, _ in unframed)
    assert any(t.in_eea for t in rows) != outside_eea


# -- violations, retention, erasure notices ---------------------------------------------


def test_violations_are_the_injected_ones_at_their_latest_verdict(data: Dataset, sink: TableReader) -> None:
    """Two deliveries in two orders issued provisional verdicts and retractions: only the standing ones are listed."""
    rows = compliance_queries.violations(sink)
    assert {(v.rule, v.evidence_event_ids[0], v.subject_id) for v in rows} == expected.injected(data)
    assert sink.query("SELECT count() FROM {db:Identifier}.violations")[0][0] > 2 * len(rows)  # every verdict, every revision
    assert len({v.violation_id for v in rows}) == len(rows)
    retracted = sink.query(
        "SELECT countIf(final = 0 AND ever = 1) FROM "
        "(SELECT argMax(active, revision) AS final, max(active) AS ever FROM {db:Identifier}.violations GROUP BY violation_id)"
    )[0][0]
    assert retracted > 0, "the dataset should hold verdicts issued active and retracted later"


def test_violations_since_an_instant_and_of_one_rule(data: Dataset, sink: TableReader) -> None:
    rules = sorted({t["rule"] for t in data.truth})
    assert len(rules) >= 5
    since = _instants(data, 1, seed=3)[0]
    for rule in rules:
        rows = compliance_queries.violations(sink, since, Rule(rule))
        assert {(v.rule, v.evidence_event_ids[0], v.subject_id) for v in rows} == expected.injected(data, since, rule)
        assert all(v.occurred_at >= since for v in rows)


def test_retention_due_lists_the_archive_dates_of_open_accounts(data: Dataset, sink: TableReader) -> None:
    archives = expected.open_account_archives(data)
    assert len(archives) > 50
    dates = sorted(at for at, _ in archives.values())
    as_of = dates[len(dates) // 2]
    due = compliance_queries.retention_due(sink, as_of)
    assert all(r.due_at <= as_of for r in due)
    assert due == sorted(due, key=lambda r: (r.due_at, r.subject_id, r.action_id))
    archived = {r.subject_id: (r.due_at, r.basis_event_id) for r in due if r.action == "archive" and r.subject_id in archives}
    assert archived == {s: a for s, a in archives.items() if a[0] <= as_of}
    assert all(r.policy_section == "2.3.1" for r in due if r.subject_id in archives and r.action == "archive")
    everything = compliance_queries.retention_due(sink, data.clock)
    assert len({r.action_id for r in everything}) == len(everything) > len(due)


def test_retention_due_after_the_runs_clock_lists_what_the_plans_hold_not_yet_emitted(data: Dataset, sink: TableReader) -> None:
    """Finding 6: for an instant after the run's clock, the answer comes from each subject's plan: the financial
    deletions of [2.3.2] (ten years from the end of the financial year of the last payment) are due then, not yet
    emitted, each with the latest event time its plan rests on; what was emitted by the clock is still there."""
    deletions = expected.financial_deletions(data)
    assert len(deletions) > 10 and all(due > data.clock for due, _ in deletions.values())
    later = max(due for due, _ in deletions.values())
    rows = compliance_queries.retention_due(sink, later)
    deleted = {r.subject_id: (r.due_at, r.basis_event_id) for r in rows if r.action == "delete"}
    assert deleted == deletions
    latest = expected.latest_event_times(data)
    assert all((r.emitted, r.planned_as_of) == (False, latest[r.subject_id]) for r in rows if r.action == "delete")
    at_clock = compliance_queries.retention_due(sink, data.clock)
    assert at_clock and all(r.emitted for r in at_clock), "the run ticked at its clock: everything due by then was emitted"
    assert {r.action_id for r in at_clock} < {r.action_id for r in rows}
    just_before = compliance_queries.retention_due(sink, later - timedelta(microseconds=1))
    assert {r.subject_id for r in just_before if r.action == "delete"} == {s for s, (d, _) in deletions.items() if d < later}


def test_erasure_notices_name_what_each_recipient_must_erase(data: Dataset, sink: TableReader) -> None:
    erased = sorted({r["subject_id"] for r in data.of_topic("rights") if r["right"] == "erasure" and r["status"] == "fulfilled"})
    assert erased
    for subject in erased:
        got = {
            n.notice_id: {
                "recipient_id": n.recipient_id,
                "categories": list(n.categories),
                "retained_categories": list(n.retained_categories),
                "fulfilled_at": n.fulfilled_at,
            }
            for n in compliance_queries.erasure_notices(sink, subject)
        }
        assert got == expected.erasure_notices(data, subject), subject
    others = [s for s in data.subjects() if s not in erased]
    assert compliance_queries.erasure_notices(sink, others[0]) == []


# -- unknown ids, hostile ids, the arguments --------------------------------------------


@pytest.mark.parametrize(
    "ask",
    [
        lambda s, x: lineage_queries.who_has(s, x),
        lambda s, x: lineage_queries.countries(s, x),
        lambda s, x: consent_queries.consent(s, x),
        lambda s, x: compliance_queries.erasure_notices(s, x),
    ],
    ids=["who_has", "countries", "consent", "erasure_notices"],
)
@pytest.mark.parametrize("subject", ["subj-9999999", "x' OR '1'='1", "subj-0000001'; DROP TABLE ledger; --", "subj-0000001\n"])
def test_an_unknown_or_hostile_subject_is_unknown_and_harms_nothing(
    data: Dataset, sink: TableReader, ask: object, subject: str
) -> None:
    """Values are bound server-side: SQL in an id is an id nobody has, and every table is still there afterwards."""
    before = sink.query("SELECT count() FROM {db:Identifier}.ledger")[0][0]
    with pytest.raises(UnknownId, match="unknown subject"):
        ask(sink, subject)  # type: ignore[operator]
    assert sink.query("SELECT count() FROM {db:Identifier}.ledger")[0][0] == before > 0


@pytest.mark.parametrize("recipient", ["nobody-inc", "cloudnest' OR 1=1 --"])
def test_a_breach_at_an_unknown_recipient_is_refused(data: Dataset, sink: TableReader, recipient: str) -> None:
    with pytest.raises(UnknownId, match="unknown recipient"):
        lineage_queries.breach(sink, recipient, datetime(2021, 1, 1, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC))


def test_a_known_recipient_with_nothing_in_the_window_is_an_empty_answer(data: Dataset, sink: TableReader) -> None:
    impact = lineage_queries.breach(
        sink, data.processings[0].recipient_id, datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 2, 1, tzinfo=UTC)
    )
    assert (impact.subjects, impact.edges, impact.subject_ids, impact.categories) == (0, 0, (), ())


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2021-03-01", datetime(2021, 3, 1, tzinfo=UTC)),
        ("2021-03-01T12:30:00", datetime(2021, 3, 1, 12, 30, tzinfo=UTC)),
        ("2021-03-01T12:30:00Z", datetime(2021, 3, 1, 12, 30, tzinfo=UTC)),
        ("2021-03-01T13:30:00+01:00", datetime(2021, 3, 1, 12, 30, tzinfo=UTC)),
        (" 2021-03-01T12:30:00.250000-02:00 ", datetime(2021, 3, 1, 14, 30, 0, 250000, tzinfo=UTC)),
    ],
)
def test_times_are_iso_8601_and_utc_when_naive(text: str, instant: datetime) -> None:
    parsed = parse_instant(text, "--as-of")
    assert parsed == instant and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["yesterday", "", "2021-13-01", "2021-02-30", "01/03/2021", "1066-10-14", "9999-01-01", "2021-03-01T25:00"]
)
def test_malformed_times_are_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ArgumentError, match=r"^--as-of: "):
        parse_instant(text, "--as-of")


@pytest.mark.parametrize("text", ["", "a b", "x;y", "o'brien", 'x"', "a--b;", "-x", "a\n", "é", "a" * 129, "x)", "`x`", "a@b.c"])
def test_ids_that_are_not_well_formed_are_refused(text: str) -> None:
    with pytest.raises(ArgumentError, match=r"subject id: .* is not a well-formed id"):
        check_subject_id(text)


def test_purposes_and_rules_are_the_policys_words() -> None:
    assert parse_purpose("marketing") is Purpose.MARKETING
    assert parse_rule("processing_after_erasure") is Rule.PROCESSING_AFTER_ERASURE
    for bad in ("unknown", "Marketing", "marketing; --"):
        with pytest.raises(ArgumentError, match="is not a purpose"):
            parse_purpose(bad)
        with pytest.raises(ArgumentError, match="is not a rule"):
            parse_rule(bad)


# -- opening the tables ------------------------------------------------------------------


def test_opening_a_database_without_tables_refuses_and_creates_nothing(
    sink: TableReader, chdb_dsn: str, database: str, tmp_path: Path
) -> None:
    with pytest.raises(TablesMissing, match=database):
        open_tables(chdb_dsn, database)
    with pytest.raises(TablesMissing, match="no chDB data"):
        open_tables(f"chdb://{tmp_path / 'nothing-here'}", database)
    assert not (tmp_path / "nothing-here").exists()
    assert sink.query("SELECT name FROM system.databases WHERE name = {d:String}", {"d": database}) == []


def test_opening_a_database_an_earlier_release_made_names_the_tables_it_lacks(chdb_dsn: str) -> None:
    """A database whose tables a release made before one was added: the reader names the table and who creates it."""
    other = f"older_{random.randrange(1 << 40):x}"
    ClickHouseSink(chdb_dsn, other)
    connect(chdb_dsn).command("DROP TABLE {db:Identifier}.lineage_by_recipient", parameters={"db": other})
    with pytest.raises(TablesMissing, match=r"lacks the table\(s\) lineage_by_recipient of this release .*creates them"):
        open_tables(chdb_dsn, other)
    ClickHouseSink(chdb_dsn, other)  # a writer opening it creates what it lacks
    assert open_tables(chdb_dsn, other).query("SELECT count() FROM {db:Identifier}.lineage_by_recipient") == [(0,)]


def test_an_unreachable_server_is_reported_at_once(database: str) -> None:
    with pytest.raises(SinkUnavailable, match=r"127\.0\.0\.1:9 unreachable"):
        open_tables("http://127.0.0.1:9", database)


class _Recording:
    """The real client, noting every statement sent through ``command`` (where DDL goes)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.commands: list[str] = []

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self.commands.append(sql)
        return self.real.command(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_reader_sends_no_ddl(sink: TableReader, chdb_dsn: str, data: Dataset) -> None:
    """A read-only ClickHouse user can ask: opening the tables and answering create nothing."""
    client = _Recording(connect(chdb_dsn))
    reader = open_tables(chdb_dsn, data.database, client_factory=lambda _dsn: client)
    assert lineage_queries.who_has(reader, data.processings[0].subject_id)
    assert client.commands == []


@pytest.mark.parametrize("pair", range(4))
def test_the_consent_answer_and_the_overview_let_a_same_instant_withdrawal_prevail(
    chdb_dsn: str, database: str, pair: int
) -> None:
    """What the DPO reads follows the ledger's timeline [6; GDPR Art. 7(1)]: a grant and a withdrawal at the very same
    instant leave consent withdrawn, whichever event id is larger."""
    from consentflow.contracts.topics import CONSENT
    from consentflow.core.processor import Processor
    from consentflow.policy.vocabulary import ConsentAction
    from consentflow.sinks.queries import overview
    from consentflow.streams.embedded import run_events
    from tests.support.builders import consent as consent_event

    when = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    granted = consent_event("cand-tie", Purpose.MARKETING, ConsentAction.GRANTED, when, name=f"g{pair}")
    withdrawn = consent_event("cand-tie", Purpose.MARKETING, ConsentAction.WITHDRAWN, when, name=f"w{pair}")
    sink = ClickHouseSink(chdb_dsn, database)
    run_events([(CONSENT, granted.record), (CONSENT, withdrawn.record)], Processor(), sink)
    answer = consent_queries.consent(sink.reader, "cand-tie", Purpose.MARKETING)
    (marketing,) = answer.purposes
    assert marketing.state == "withdrawn"
    assert [fact.event_id for fact in marketing.history] == [granted.record["event_id"], withdrawn.record["event_id"]]
    rates = {row["purpose"]: row for row in overview(sink.reader)["consent_by_purpose"]}
    assert (rates["marketing"]["granted"], rates["marketing"]["asked"]) == (0, 1)
