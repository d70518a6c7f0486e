"""The OpenLineage export on the real broker: ``emit --transport kafka`` produces each event keyed by its job, and
``follow`` reads the lineage topic in batches, emits every edge once, commits, and in one batch gives what folding
every edge gives [3, 4, 7]."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Consumer
from openlineage.client.serde import Serde

from consentflow.cli import main
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.topics import LINEAGE, RECIPIENTS
from consentflow.core.processor import Processor
from consentflow.kafka.producer import EventProducer
from consentflow.openlineage.events import lineage_events
from consentflow.openlineage.folding import fold
from tests.support.kafka_topics import fresh_topics
from tests.support.openlineage_schemas import event_errors, registry

pytestmark = pytest.mark.kafka

DATABASE = "openlineage_kafka"


def _consentflow(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """A generated file run into chDB; its lineage edges and registry records from a processor, and its registry."""
    events = tmp_path_factory.mktemp("openlineage-kafka") / "events.avro"
    _consentflow("generate", "--subjects", "30", "--days", "60", "--seed", "5", "--out", str(events))
    _consentflow("run", str(events), "--dsn", chdb_dsn, "--database", DATABASE, "--no-overview")
    processor = Processor()
    edges: list[dict[str, Any]] = []
    recipients: list[dict[str, Any]] = []
    for topic, record in read_events(events):
        if topic.short_name == "recipients":
            recipients.append(record)
        edges += [dict(e) for e in processor.process(topic.short_name, record).lineage]
    return edges, recipients, processor.registry


@pytest.fixture(scope="module")
def prefix(kafka_bootstrap: str, stream: Any) -> Iterator[str]:
    """Fresh topics holding the registry and the lineage edges, as the workers would have written them."""
    edges, recipients, _ = stream
    codec = SingleObjectCodec()
    with fresh_topics(kafka_bootstrap, "openlineage", partitions=3) as prefix:
        with EventProducer(kafka_bootstrap, codec=codec, prefix=prefix) as producer:
            for r in recipients:
                producer.send_bytes(RECIPIENTS.name(prefix), r["recipient_id"].encode(), codec.encode(RECIPIENTS, r))
            for e in edges:
                producer.send_bytes(LINEAGE.name(prefix), e["subject_id"].encode(), codec.encode(LINEAGE, e, trusted=True))
        yield prefix


def _follow(bootstrap: str, prefix: str, group: str, out: Path, *args: str) -> list[dict[str, Any]]:
    _consentflow(
        "openlineage", "follow", "--bootstrap", bootstrap, "--prefix", prefix, "--group", group,
        "--idle-exit", "6", "--interval", "1", "--transport", "file", "--file", str(out), *args,
    )  # fmt: skip
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_follow_emits_every_edge_once_in_batches_and_commits(
    kafka_bootstrap: str, prefix: str, stream: Any, tmp_path: Path
) -> None:
    edges, _, _ = stream
    group = f"ol-{uuid.uuid4().hex[:8]}"
    events = _follow(kafka_bootstrap, prefix, group, tmp_path / "a.jsonl", "--max-edges", str(len(edges) // 4))
    schemas = registry()
    assert events
    for event in events:
        assert event_errors(event, schemas) == []
    per_job: Counter[str] = Counter()
    for e in events:
        if e["eventType"] == "COMPLETE":
            per_job[e["job"]["name"]] += e["job"]["facets"]["consentflow_processing"]["edges"]
    assert per_job == Counter(f"processing.{e['purpose']}.{e['source_service']}" for e in edges)  # purpose × service
    assert len({e["run"]["runId"] for e in events}) > len(per_job)  # more than one batch: a run per processing per batch
    assert _follow(kafka_bootstrap, prefix, group, tmp_path / "b.jsonl") == []  # committed: nothing read again


def test_follow_in_one_batch_gives_what_folding_every_edge_gives(
    kafka_bootstrap: str, prefix: str, stream: Any, tmp_path: Path
) -> None:
    edges, _, processor_registry = stream
    group = f"ol-{uuid.uuid4().hex[:8]}"
    events = _follow(kafka_bootstrap, prefix, group, tmp_path / "c.jsonl", "--max-edges", str(len(edges)), "--interval", "120")
    assert events == [Serde.to_dict(e) for e in lineage_events(fold(edges, processor_registry))]


def test_emit_produces_each_event_keyed_by_its_job(kafka_bootstrap: str, prefix: str, chdb_dsn: str) -> None:
    topic = f"{prefix}.openlineage"
    tables = ["--dsn", chdb_dsn, "--database", DATABASE]
    _consentflow("openlineage", "emit", *tables, "--transport", "kafka", "--ol-bootstrap", kafka_bootstrap, "--ol-topic", topic)
    expected = [json.loads(line) for line in _consentflow("openlineage", "emit", *tables).stdout.splitlines()]
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[tuple[str, dict[str, Any]]] = []
    try:
        for _ in range(60):
            got += [(m.key().decode(), json.loads(m.value())) for m in consumer.consume(100, timeout=1) if m.error() is None]
            if len(got) >= len(expected):
                break
    finally:
        consumer.close()
    by_job: dict[str, list[dict[str, Any]]] = {}
    for key, event in got:
        assert key == f"run:consentflow/{event['job']['name']}"
        by_job.setdefault(key, []).append(event)
    assert sorted(got, key=lambda g: json.dumps(g[1], sort_keys=True)) == sorted(
        ((f"run:consentflow/{e['job']['name']}", e) for e in expected), key=lambda g: json.dumps(g[1], sort_keys=True)
    )
    # One job's events on one partition, in order: START before COMPLETE.
    assert all([e["eventType"] for e in events] == ["START", "COMPLETE"] for events in by_job.values())
