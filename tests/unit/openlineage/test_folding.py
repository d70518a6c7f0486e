"""Lineage edges folded in memory (consentflow.openlineage.folding, the continuous mode's) give the flows the tables
give (sinks.lineage_flows, the batch mode's): the same file through ``consentflow run`` and through a processor."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
from consentflow.core.recipients import RecipientRegistry
from consentflow.openlineage.folding import fold
from consentflow.sinks.lineage_flows import processing_flows
from consentflow.sinks.reading import open_tables

DATABASE = "openlineage_folding"


@pytest.fixture(scope="module")
def edges_and_tables(
    tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str
) -> tuple[list[dict[str, Any]], RecipientRegistry, Any]:
    """The file's lineage edges and registry from a processor, and the tables ``consentflow run`` filled from it."""
    events = tmp_path_factory.mktemp("folding") / "events.avro"
    runner = CliRunner()
    generated = runner.invoke(main, ["generate", "--subjects", "30", "--days", "60", "--seed", "11", "--out", str(events)])
    assert generated.exit_code == 0, generated.output
    ran = runner.invoke(main, ["run", str(events), "--dsn", chdb_dsn, "--database", DATABASE, "--no-overview"])
    assert ran.exit_code == 0, ran.output
    processor = Processor()
    edges = [dict(e) for topic, record in read_events(events) for e in processor.process(topic.short_name, record).lineage]
    return edges, processor.registry, open_tables(chdb_dsn, DATABASE)


def test_folding_the_edges_gives_what_the_tables_give(edges_and_tables: Any) -> None:
    edges, registry, tables = edges_and_tables
    assert edges
    assert fold(edges, registry) == processing_flows(tables)
    middle = sorted(e["occurred_at"] for e in edges)[len(edges) // 2]
    assert fold(edges, registry, since=middle) == processing_flows(tables, since=middle)
    until = middle + timedelta(days=3)
    assert fold(edges, registry, middle, until) == processing_flows(tables, middle, until)


def test_order_and_redelivery_change_nothing(edges_and_tables: Any) -> None:
    edges, registry, _ = edges_and_tables
    shuffled = edges + random.Random(3).sample(edges, len(edges) // 3)
    random.Random(4).shuffle(shuffled)
    assert fold(shuffled, registry) == fold(edges, registry)
