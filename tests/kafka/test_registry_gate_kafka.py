"""The registry topic is an input: the sink's copy of it passes the gate as a replay's does [issue 18, 19; 4, 7].

A registry record the gate refuses (dated 2199; the reader's ``unknown`` kind) is never used by the workers' feed,
and a replay makes it a dead letter; the sink, which copies the registry into the ``recipients`` table, must too, or
``verify --against`` finds the live tables holding a version no processor used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import RECIPIENTS
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.digest import table_digests
from tests.support.kafka_topics import assert_topics_hold, fresh_topics, replay_topics

pytestmark = pytest.mark.kafka


def _records() -> list[dict[str, Any]]:
    good = events.recipient_registered(
        "rcpt-good", name="Good Hosting", kind="technical_subcontractor", country="FR",
        allowed_purposes=["technical_operations_analytics"], source_service="registry",
        occurred_at=datetime.now(UTC) - timedelta(days=1),
    ).record  # fmt: skip
    future = dict(good, event_id=str(uuid.uuid4()), recipient_id="rcpt-future", occurred_at=datetime(2199, 1, 1, tzinfo=UTC))
    unknown = dict(good, event_id=str(uuid.uuid4()), recipient_id="rcpt-unknown", kind="unknown")
    return [good, future, unknown]


@pytest.fixture(scope="module")
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    with fresh_topics(kafka_bootstrap, "regate", partitions=1) as prefix:
        codec, producer = SingleObjectCodec(), Producer({"bootstrap.servers": kafka_bootstrap})
        for record in _records():  # a bare producer, as an emitter that bypasses the gate would
            producer.produce(RECIPIENTS.name(prefix), key=record["recipient_id"].encode(), value=codec.encode(RECIPIENTS, record))
        assert producer.flush(10) == 0
        assert_topics_hold(kafka_bootstrap, {RECIPIENTS.name(prefix): 3})
        yield prefix


def test_the_sink_and_a_replay_refuse_the_same_registry_records(kafka_bootstrap: str, prefix: str, chdb_dsn: str) -> None:
    live = ClickHouseSink(chdb_dsn, f"live_{uuid.uuid4().hex[:8]}")
    SinkConsumer(kafka_bootstrap, prefix, SingleObjectCodec(), live, group_id=f"{prefix}-sink").run(idle_exit=2.0)
    replayed = replay_topics(kafka_bootstrap, prefix, chdb_dsn)
    for sink in (live, replayed):
        assert [r for (r,) in sink.reader.query("SELECT recipient_id FROM {db:Identifier}.recipients FINAL")] == ["rcpt-good"]
        reasons = sorted(r for (r,) in sink.reader.query("SELECT reason FROM {db:Identifier}.dead_letters FINAL"))
        assert len(reasons) == 2 and "field kind" in reasons[0] and "field occurred_at" in reasons[1], reasons
    live_digests, replay_digests = table_digests(live.reader), table_digests(replayed.reader)
    assert live_digests["recipients"] == replay_digests["recipients"]
    assert live_digests["dead_letters"] == replay_digests["dead_letters"]
