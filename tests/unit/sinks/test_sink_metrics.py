"""The sink's metrics on the real engine (chDB): rows per table equal the rows ClickHouse holds, one timing per insert."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.runtime.metrics import SinkMetrics
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import TABLES
from consentflow.streams.embedded import run_events


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sink-metrics") / "events.avro"
    generate(GeneratorConfig(subjects=60, days=60, seed=5, violation_share=0.05), out, None)
    return out


def test_inserted_rows_per_table_equal_the_rows_written(chdb_dsn: str, database: str, small_dataset: Path) -> None:
    registry = CollectorRegistry()
    sink = ClickHouseSink(chdb_dsn, database, max_rows=300, metrics=SinkMetrics(registry))
    run_events(list(read_events(small_dataset)), Processor(), sink)
    for table in TABLES:
        stored = sink.reader.query(f"SELECT count() FROM {{db:Identifier}}.`{table.name}`")[0][0]
        counted = registry.get_sample_value("consentflow_sink_insert_rows_total", {"table": table.name}) or 0
        assert counted == stored, table.name
    inserts = registry.get_sample_value("consentflow_sink_insert_seconds_count", {"table": "ledger"})
    assert inserts is not None and inserts > 1  # max_rows=300: several batches, each timed once
    assert (registry.get_sample_value("consentflow_sink_insert_seconds_sum", {"table": "ledger"}) or 0) > 0
