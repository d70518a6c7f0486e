"""The product's answers in sinks/ held against the tests' in-memory reference models (``tests/support/``) [7, 8.1, 12].

One generated stream runs through the embedded runner into chDB; a second processor takes the same events in memory,
its lineage edges into ``LineageGraph`` and its states under ``access_export_of``. Who has each subject's data,
a breach window's subjects and categories, the transfers outside the EU/EEA and the access export's recipients
must be the same from the tables as from the models.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from consentflow.contracts.eventfile import read_events
from consentflow.core.lineage import RecipientHolding
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.lineage_queries import breach, transfers, who_has
from consentflow.sinks.reader import TableReader
from consentflow.sinks.subject_access import subject_access_export
from consentflow.streams.embedded import run_events
from tests.support.access_export import access_export_of
from tests.support.lineage_graph import LineageGraph

CONFIG = GeneratorConfig(subjects=80, days=150, seed=2026, violation_share=0.03)


@dataclass(frozen=True)
class Run:
    """The tables of the embedded run and the reference models over the same events."""

    reader: TableReader
    graph: LineageGraph
    reference: Processor
    subjects: list[str]
    recipients: list[str]
    clock: datetime


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Run:
    directory = tmp_path_factory.mktemp("reference_models")
    generate(CONFIG, directory / "events.avro", directory / "truth.jsonl")
    stream = list(read_events(directory / "events.avro"))
    clock = max(record["occurred_at"] for _, record in stream)
    sink = ClickHouseSink(chdb_dsn, f"t_{uuid.uuid4().hex[:12]}")
    run_events(stream, Processor(), sink, as_of=clock)
    reference, graph = Processor(), LineageGraph()
    for topic, record in stream:
        for edge in reference.process(topic.short_name, record).lineage:
            graph.add(edge)
    reference.tick(clock)  # as the embedded runner does at the end of its file
    subjects = sorted({record["subject_id"] for topic, record in stream if topic.short_name != "recipients"})
    recipients = sorted({record["recipient_id"] for topic, record in stream if topic.short_name == "recipients"})
    return Run(sink.reader, graph, reference, subjects, recipients, clock)


def plain(holding: RecipientHolding) -> tuple[Any, ...]:
    """A holding's fields as plain strings: the model keeps the processor's StrEnum members, the tables their values."""
    return (
        holding.recipient_id,
        str(holding.recipient_kind),
        holding.country,
        frozenset(map(str, holding.categories)),
        frozenset(map(str, holding.purposes)),
        frozenset(map(str, holding.mechanisms)),
        holding.first,
        holding.last,
        {str(p): frozenset(map(str, b)) for p, b in holding.legal_bases.items()},
        frozenset(map(str, holding.legal_basis_differs)),
    )


def instant(value: datetime | str) -> datetime:
    """A time as a datetime: the tables' export is JSON-ready (ISO 8601), the model's holds datetimes."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def test_who_has_each_subjects_data_is_the_models_answer(run: Run) -> None:
    """[7] every subject's recipients, with kind, country, categories, purposes, mechanisms, first and last times, and
    the legal bases recorded per purpose with those differing from the policy's [3]."""
    held = 0
    for subject in run.subjects:
        expected = [plain(h) for h in run.graph.recipients_of(subject)]
        assert [plain(h) for h in who_has(run.reader, subject)] == expected, subject
        held += bool(expected)
    assert held > len(run.subjects) // 2, "most subjects should have sent data somewhere"


def test_a_breach_window_names_the_models_subjects_and_categories(run: Run) -> None:
    """[12] for every recipient and a window over the first half of the run: the subjects and categories it received."""
    start = min(h.first for s in run.subjects for h in run.graph.recipients_of(s))
    end = start + (run.clock - start) / 2
    named = 0
    for recipient in run.recipients:
        expected = run.graph.held_by(recipient, start, end)
        impact = breach(run.reader, recipient, start, end)
        assert set(impact.subject_ids) == set(expected), recipient
        assert {c.category for c in impact.categories} == {str(c) for cs in expected.values() for c in cs}, recipient
        named += bool(expected)
    assert named >= 3, "the window should reach several recipients"


def test_transfers_outside_the_eea_are_the_models_counted_by_country_mechanism_and_recipient(run: Run) -> None:
    """[7] edges leaving the EU/EEA, an unknown country among them (the tables' ``sinks/transfers_filter.py``)."""
    counted: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for t in transfers(run.reader, outside_eea=True):
        counted[(t.country, t.mechanism)][t.recipient_id] = t.edges
    expected = {(country, str(mechanism)): counts for (country, mechanism), counts in run.graph.transfers_outside_eea().items()}
    assert expected, "the generated stream should send data outside the EU/EEA"
    assert dict(counted) == expected


def test_the_access_export_names_the_models_recipients(run: Run) -> None:
    """[8.1] each subject's export lists the recipients the model's export lists, with country, categories, purposes
    and first and last sending times."""

    def recipients(export: dict[str, Any], purposes: Any) -> list[tuple[Any, ...]]:
        return [
            (
                r["recipient_id"],
                r["country"] or None,
                sorted(r["categories"]),
                purposes(r),
                instant(r["first_sent"]),
                instant(r["last_sent"]),
            )
            for r in export["recipients"]
        ]

    listed = 0
    for subject in run.subjects[:: max(1, len(run.subjects) // 20)]:
        model = access_export_of(run.reference, subject, as_of=run.clock + timedelta(days=1))
        assert model is not None, subject
        tables = subject_access_export(run.reader, subject)
        assert recipients(tables, lambda r: sorted(p["purpose"] for p in r["purposes"])) == recipients(
            model, lambda r: sorted(r["purposes"])
        ), subject
        listed += bool(model["recipients"])
    assert listed >= 10, "most exports should name recipients"
