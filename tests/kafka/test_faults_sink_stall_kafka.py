"""Fault test on the fault tests' own broker: a sink whose consumer goes quiet with work waiting replaces it.

In ``.ci/run`` a sink came out of a broker restart that outlasted its session rejoined yet delivering nothing for
two minutes (bench/RESULTS.md §12). Here the same state is made at the seam where it shows, deterministically: the
consumer's assignment is dropped behind the sink's back (``unassign`` outside any rebalance), so the group still
counts the consumer as the owner of every partition while it fetches none. The sink must notice, replace its
consumer in-process and deliver everything: the same tables as a sink of another group that drained the topics
undisturbed, and nothing left uncommitted.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.topics import OUTPUT_TOPICS
from consentflow.core.processor import Processor
from consentflow.kafka.clients import client_config
from consentflow.kafka.lag import group_lag
from consentflow.kafka.producer import EventProducer
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.digest import table_digests
from tests.support.kafka_topics import fresh_topics

pytestmark = pytest.mark.kafka

#: The sink's quiet before it asks the broker whether work waits (20 s in production): keeps the test short.
STALL_AFTER = 4.0
#: Seconds the stuck sink has to deliver everything: the quiet, the broker's answer, a close and a rejoin, with room.
WITHIN = 60.0


def produce_outputs(bootstrap: str, prefix: str, dataset: Path) -> int:
    """The processors' outputs of ``dataset`` to ``prefix``'s output topics, as a worker sends them; how many."""
    processor, codec = Processor(), SingleObjectCodec()
    names = {t.short_name: t.name(prefix) for t in OUTPUT_TOPICS}
    sent = 0
    with EventProducer(bootstrap, codec=codec, prefix=prefix) as producer:
        for topic, record in read_events(dataset):
            for short, out in processor.process(topic.short_name, record):
                producer.send_bytes(names[short], str(out["subject_id"]).encode(), codec.encode(short, dict(out), trusted=True))
                sent += 1
    return sent


def test_a_sink_whose_consumer_lost_its_partitions_unnoticed_replaces_it_and_delivers_everything(
    fault_bootstrap: str, dataset: Path, chdb_dsn: str
) -> None:
    with fresh_topics(fault_bootstrap, "stall") as prefix:
        sent = produce_outputs(fault_bootstrap, prefix, dataset)
        outputs = [t.name(prefix) for t in OUTPUT_TOPICS]
        group = f"{prefix}-sink"
        sink = ClickHouseSink(chdb_dsn, f"{prefix}_stuck")
        consumer = SinkConsumer(fault_bootstrap, prefix, SingleObjectCodec(), sink, group_id=group, stall_after=STALL_AFTER)
        dropped: list[list[TopicPartition]] = []

        def drop_the_assignment_once() -> None:
            if consumer.consumed and not dropped:  # mid-stream: some delivered, most still waiting
                dropped.append(consumer.consumer.assignment())
                consumer.consumer.unassign()  # no rebalance: the broker still counts this member the owner

        deadline = time.monotonic() + WITHIN
        asked = [0.0]

        def delivered_or_late() -> bool:
            if time.monotonic() > deadline:
                return True
            if not dropped or consumer.sink.pending or time.monotonic() - asked[0] < 1:
                return False
            asked[0] = time.monotonic()
            return group_lag(fault_bootstrap, group, outputs) == 0

        consumer.run(should_stop=delivered_or_late, beat=drop_the_assignment_once)
        assert dropped and dropped[0], "the consumer held partitions when they were dropped"
        lag = group_lag(fault_bootstrap, group, outputs)
        assert lag == 0, f"{lag} of {sent} outputs not delivered in {WITHIN:.0f} s"
        assert consumer.replaced == 1

        reference = ClickHouseSink(chdb_dsn, f"{prefix}_reference")
        SinkConsumer(fault_bootstrap, prefix, SingleObjectCodec(), reference, group_id=f"{prefix}-reference").run(idle_exit=3.0)
        assert table_digests(sink.reader) == table_digests(reference.reader)


def test_an_output_the_sink_skips_is_committed_and_not_taken_for_work_waiting(fault_bootstrap: str, chdb_dsn: str) -> None:
    """A null value on an output topic writes no row; were its offset never committed, its lag would look like work
    waiting for a stuck consumer, and the sink would replace a healthy consumer again and again."""
    with fresh_topics(fault_bootstrap, "skip") as prefix:
        ledger = next(t for t in OUTPUT_TOPICS if t.short_name == "ledger").name(prefix)
        producer = Producer(client_config(fault_bootstrap))
        producer.produce(ledger, value=None, key=b"s-1")
        assert producer.flush(30) == 0
        group = f"{prefix}-sink"
        consumer = SinkConsumer(
            fault_bootstrap,
            prefix,
            SingleObjectCodec(),
            ClickHouseSink(chdb_dsn, f"{prefix}_skip"),
            group_id=group,
            stall_after=2.0,
        )
        until = time.monotonic() + 4 * 2.0 + 4
        consumer.run(should_stop=lambda: time.monotonic() > until)
        assert consumer.replaced == 0
        assert group_lag(fault_bootstrap, group, [t.name(prefix) for t in OUTPUT_TOPICS]) == 0
