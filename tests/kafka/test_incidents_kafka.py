"""The breach register on Kafka [12; GDPR Art. 33(5)]: the sink stores the ``incidents`` topic through the gate, as a
replay and an embedded run of the same events do, so their ``incidents`` tables (and dead letters) have equal
digests; ``consentflow incident`` publishes there with ``--bootstrap``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from consentflow.cli import main
from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import INCIDENTS, RECIPIENTS
from consentflow.core.processor import Processor
from consentflow.kafka.lag import end_offsets
from consentflow.kafka.producer import EventProducer
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.digest import table_digests
from consentflow.sinks.incident_queries import incident_events
from consentflow.streams.embedded import run_events
from tests.support.kafka_topics import assert_topics_hold, fresh_topics, replay_topics

pytestmark = pytest.mark.kafka

AWARE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)


def _good() -> list[dict[str, Any]]:
    opened = events.incident_event(
        "inc-k1", "opened", recipient_id="cloudnest", window_from=AWARE - timedelta(days=3), window_to=AWARE,
        aware_at=AWARE, risk="high", categories=["contact"], source_service="dpo", occurred_at=AWARE,
        event_id=str(uuid.UUID(int=1)),
    )  # fmt: skip
    notified = events.incident_event(
        "inc-k1", "authority_notified", delay_reason="forensics-pending", source_service="dpo",
        occurred_at=AWARE + timedelta(hours=75), event_id=str(uuid.UUID(int=2)),
    )  # fmt: skip
    told = events.incident_event(
        "inc-k1",
        "subject_notified",
        subject_id="subj-1",
        source_service="dpo",
        occurred_at=AWARE + timedelta(hours=80),
        event_id=str(uuid.UUID(int=3)),
    )
    return [opened.record, notified.record, told.record]


def _sink_until(bootstrap: str, prefix: str, sink: ClickHouseSink, group: str, done: Callable[[], bool]) -> None:
    """The sink consumer run until ``done()`` (a first join on a fresh broker may outlast one idle period)."""
    deadline = time.monotonic() + 60
    while not done():
        if time.monotonic() > deadline:
            pytest.fail("the sink did not store the incidents within 60 s")
        SinkConsumer(bootstrap, prefix, SingleObjectCodec(), sink, group_id=group).run(idle_exit=2.0)


def _rows(sink: ClickHouseSink, table: str) -> int:
    return int(sink.reader.query(f"SELECT count() FROM {{db:Identifier}}.`{table}` FINAL")[0][0])


@pytest.fixture(scope="module")
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    with fresh_topics(kafka_bootstrap, "incidents", partitions=2) as prefix:
        codec, producer = SingleObjectCodec(), Producer({"bootstrap.servers": kafka_bootstrap})
        name = INCIDENTS.name(prefix)
        good = _good()
        no_awareness = dict(good[0], event_id=str(uuid.uuid4()), incident_id="inc-k2", aware_at=None)
        for record in [*good, no_awareness]:  # a bare producer, as an emitter that bypasses the gate would
            producer.produce(name, key=record["incident_id"].encode(), value=codec.encode(INCIDENTS, record))
        producer.produce(name, key=b"inc-k3", value=None)  # a tombstone holds no incident event
        assert producer.flush(10) == 0
        assert_topics_hold(kafka_bootstrap, {name: 5})
        yield prefix


def test_the_sink_a_replay_and_an_embedded_run_store_the_same_incidents(kafka_bootstrap: str, prefix: str, chdb_dsn: str) -> None:
    live = ClickHouseSink(chdb_dsn, f"live_{uuid.uuid4().hex[:8]}")
    _sink_until(
        kafka_bootstrap, prefix, live, f"{prefix}-sink", lambda: _rows(live, "incidents") + _rows(live, "dead_letters") >= 5
    )
    replayed = replay_topics(kafka_bootstrap, prefix, chdb_dsn)
    embedded = ClickHouseSink(chdb_dsn, f"emb_{uuid.uuid4().hex[:8]}")
    run_events(((INCIDENTS, r) for r in _good()), Processor(), embedded)
    for sink in (live, replayed, embedded):
        assert [(e["kind"], e["event_id"]) for e in incident_events(sink.reader)] == [(r["kind"], r["event_id"]) for r in _good()]
    for sink in (live, replayed):
        reasons = sorted(r for (r,) in sink.reader.query("SELECT reason FROM {db:Identifier}.dead_letters FINAL"))
        assert len(reasons) == 2 and "field aware_at" in reasons[0] and "null value" in reasons[1], reasons
    digests = [table_digests(sink.reader) for sink in (live, replayed, embedded)]
    assert digests[0]["incidents"] == digests[1]["incidents"] == digests[2]["incidents"]
    assert digests[0]["dead_letters"] == digests[1]["dead_letters"]


def test_the_incident_commands_publish_on_the_topic(kafka_bootstrap: str, prefix: str, chdb_dsn: str, tmp_path: Path) -> None:
    """Without --embedded, ``incident open`` and ``notify-authority`` go to the incidents topic (through the producer's
    gate); the sink stores them. A recipient the registry topic does not name, and an incident never opened on the
    topic, are refused with their names, and nothing is published."""
    kafka = ["--bootstrap", kafka_bootstrap, "--prefix", prefix, "--dsn", f"chdb://{tmp_path / 'none'}"]
    window = ["--from", (AWARE - timedelta(days=1)).isoformat(), "--to", AWARE.isoformat()]
    open_at = ["--aware-at", AWARE.isoformat(), "--risk", "low", "--id", "inc-cli"]
    before = sum(end_offsets(kafka_bootstrap, [INCIDENTS.name(prefix)]).values())
    unregistered = CliRunner().invoke(main, ["incident", "open", "cloudnest", *window, *open_at, *kafka])
    assert unregistered.exit_code == 1, unregistered.output
    assert f"unknown recipient 'cloudnest': not in the registry topic {RECIPIENTS.name(prefix)}" in unregistered.output
    never_opened = CliRunner().invoke(main, ["incident", "close", "inc-cli", "--at", AWARE.isoformat(), *kafka])
    assert never_opened.exit_code == 1 and f"unknown incident 'inc-cli': no opening on {INCIDENTS.name(prefix)}" in (
        never_opened.output
    )
    assert sum(end_offsets(kafka_bootstrap, [INCIDENTS.name(prefix)]).values()) == before  # nothing published
    with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
        producer.send(
            events.recipient_registered(
                "cloudnest", name="CloudNest", kind="technical_subcontractor", country="FR", allowed_purposes=["support"],
                source_service="dpo", occurred_at=AWARE - timedelta(days=400),
            )
        )  # fmt: skip
    opened = CliRunner().invoke(main, ["incident", "open", "cloudnest", *window, *open_at, *kafka])
    assert opened.exit_code == 0 and INCIDENTS.name(prefix) in opened.output, opened.output
    at = (AWARE + timedelta(hours=70)).isoformat()
    notified = CliRunner().invoke(main, ["incident", "notify-authority", "inc-cli", "--at", at, *kafka])
    assert notified.exit_code == 0, notified.output
    live = ClickHouseSink(chdb_dsn, f"cli_{uuid.uuid4().hex[:8]}")
    _sink_until(kafka_bootstrap, prefix, live, f"{prefix}-cli-sink", lambda: len(incident_events(live.reader, "inc-cli")) >= 2)
    assert [e["kind"] for e in incident_events(live.reader, "inc-cli")] == ["opened", "authority_notified"]
    missing = CliRunner().invoke(
        main, ["incident", "close", "inc-cli", "--at", at, "--bootstrap", kafka_bootstrap, "--prefix", "nope"]
    )
    assert missing.exit_code == 1 and "topics create" in missing.output
