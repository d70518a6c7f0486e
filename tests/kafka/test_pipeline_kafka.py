"""The pipeline on the real broker: faust workers as subprocesses, the sink into chDB, compared with the embedded run.

Each test produces the same generated dataset to fresh topics, runs workers
until their consumer group has caught up, drains the output topics into a
fresh database with the sink, and compares per-table digests with an embedded
run of the same file. Digests leave out Kafka coordinates and revisions only.
"""

from __future__ import annotations

import os
import signal

import pytest
from confluent_kafka import Producer

from consentflow.sinks.digest import table_digests
from tests.support.kafka_pipeline import DRAIN_IDS, DRAINS, Pipeline, assert_drain_said

pytestmark = pytest.mark.kafka


def test_a_worker_on_the_real_broker_leaves_the_same_tables_as_the_embedded_run(
    pipeline: Pipeline, chdb_dsn: str, embedded_digests: dict[str, tuple[int, str]]
) -> None:
    # A message that is not Avro at all, among the real ones: it goes to the dead letters, the stream goes on.
    garbage = b"\xc3\x01not-a-fingerprint, not avro"
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(f"{pipeline.prefix}.consent", key=b"subj-garbage", value=garbage, partition=2)
    producer.flush(10)
    pipeline.start_worker("w1")
    pipeline.wait_caught_up()
    pipeline.stop()
    tables = pipeline.drain(chdb_dsn)
    digests = table_digests(tables)
    assert digests.pop("dead_letters")[0] == 1
    assert digests == {k: v for k, v in embedded_digests.items() if k != "dead_letters"}
    ((topic, partition, offset, key, value, reason),) = tables.query(
        "SELECT topic, partition, offset, key_hex, value_hex, reason FROM {db:Identifier}.dead_letters FINAL"
    )
    assert (topic, partition, bytes.fromhex(key)) == (f"{pipeline.prefix}.consent", 2, b"subj-garbage")
    assert offset >= 0
    assert bytes.fromhex(value) == garbage, "the original bytes are kept"
    assert "consent" in reason and "unknown schema fingerprint" in reason


@pytest.mark.parametrize("drain", DRAINS, ids=DRAIN_IDS)
def test_a_worker_killed_mid_stream_is_replaced_without_loss_or_duplicates(
    pipeline: Pipeline, chdb_dsn: str, embedded_digests: dict[str, tuple[int, str]], drain: list[str]
) -> None:
    first = pipeline.start_worker("w1", options=drain, paced=True)
    pipeline.wait_mid_stream(0.6, "it is killed")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    pipeline.start_worker("w2", options=drain)  # a new machine: empty data dir, state from the changelog
    pipeline.wait_caught_up()
    pipeline.stop()
    assert pipeline.sink_digests(chdb_dsn) == embedded_digests
    assert_drain_said(pipeline, "w2", drain)


@pytest.mark.parametrize("drain", DRAINS, ids=DRAIN_IDS)
def test_two_workers_on_six_partitions_give_the_same_results_as_one(
    pipeline: Pipeline, chdb_dsn: str, embedded_digests: dict[str, tuple[int, str]], drain: list[str]
) -> None:
    pipeline.start_worker("w1", options=drain)
    pipeline.start_worker("w2", options=drain)
    pipeline.wait_caught_up()
    pipeline.stop()
    assert pipeline.sink_digests(chdb_dsn) == embedded_digests
    assert_drain_said(pipeline, "w1", drain)
