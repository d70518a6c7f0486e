"""Fault test 4 on the real broker: a sink whose ClickHouse is away commits nothing, stops within 30 s when told,
and a sink of the same group on the embedded engine then loses nothing.

A ClickHouse server coming back cannot be tested here (none can run on this machine): the retry path, from away to
back, is covered by ``tests/unit/sinks/test_sink_outage.py`` (a server's failures over chDB), and here by a sink whose inserts
fail mid-flush.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaException, Producer

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import OUTPUT_TOPICS
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import committed_offsets, end_offsets, group_lag
from consentflow.runtime.bounded_stop import EXIT_STOP_ABANDONED
from consentflow.sinks.clickhouse import ClickHouseSink, RetryAbandoned, connect
from consentflow.sinks.consumer import SinkConsumer
from tests.support.clickhouse_away import ClickHouseAway, free_port
from tests.support.fault_broker import SinkProcess, kafka_sh
from tests.support.kafka_pipeline import Pipeline
from tests.support.kafka_topics import delete_topics_under

pytestmark = pytest.mark.kafka


def test_a_sink_whose_clickhouse_is_away_commits_nothing_stops_within_30_s_and_its_successor_loses_nothing(
    fault_pipeline: Pipeline,
    embedded_digests: dict[str, tuple[int, str]],
) -> None:
    pipeline = fault_pipeline
    dsn = f"http://127.0.0.1:{free_port()}"  # a ClickHouse server nobody runs
    away = SinkProcess(pipeline, "away", dsn=dsn)
    pipeline.start_worker("w1")
    pipeline.wait_caught_up(timeout=150)  # the outputs accumulate while the sink cannot write them
    assert away.process.poll() is None, f"the sink waits for ClickHouse, it does not exit ({away.process.returncode})"
    outputs = end_offsets(pipeline.bootstrap, [t.name(pipeline.prefix) for t in OUTPUT_TOPICS])
    assert sum(outputs.values()) > 1000
    committed = committed_offsets(pipeline.bootstrap, away.group_id, outputs)
    assert set(committed.values()) <= {None, 0}, f"nothing committed that was not written: {committed}"
    pipeline.stop()

    os.killpg(away.process.pid, signal.SIGTERM)
    sent = time.monotonic()
    try:
        away.process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sink was still running 30 s after SIGTERM; see {away.log_path}")
    took = time.monotonic() - sent
    log = away.log_path.read_text(errors="replace")
    assert away.process.returncode == EXIT_STOP_ABANDONED, f"exit {away.process.returncode} after {took:.1f} s: {log}"
    assert took < 10, f"the back-off noticed the stop ({took:.1f} s)"
    assert log.count(f"ClickHouse at {dsn} not answering while creating the schema") == 1, "one line, not one per retry"
    assert len(log.splitlines()) == 2, f"that line and the exit's, none per retry: {log}"
    assert f"stop asked while ClickHouse at {dsn} is away; exiting, the uncommitted batch is redelivered" in log
    assert "Traceback" not in log

    successor = SinkProcess(pipeline, "chdb")  # the same group, on the embedded engine
    successor.wait_caught_up()
    successor.stop()
    assert successor.process.returncode == 0
    assert successor.digests() == embedded_digests


def test_a_stop_while_clickhouse_is_away_mid_flush_commits_nothing_and_the_next_sink_gets_the_batch(
    kafka_bootstrap: str, chdb_dsn: str, database: str
) -> None:
    prefix = f"it{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix=prefix)
    try:
        topic = OUTPUT_TOPICS[0].name(prefix)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for n in range(3):  # outputs nobody can read: three dead letters, rows like any other
            producer.produce(topic, key=b"k", value=b"not avro %d" % n)
        assert producer.flush(10) == 0
        group = f"{prefix}-sink"
        away = ClickHouseAway(connect(chdb_dsn))
        away.failures = 10**6
        stop_asked = lambda: away.calls >= 2  # noqa: E731 -- a stop once the flush has met the outage twice
        sink = ClickHouseSink(chdb_dsn, database, client_factory=lambda _dsn: away, should_stop=stop_asked)
        began = time.monotonic()
        with pytest.raises(RetryAbandoned):
            SinkConsumer(kafka_bootstrap, prefix, SingleObjectCodec(), sink, group_id=group).run(should_stop=stop_asked)
        assert time.monotonic() - began < 30
        ends = end_offsets(kafka_bootstrap, [topic])
        assert set(committed_offsets(kafka_bootstrap, group, ends).values()) == {None}, "nothing committed"

        successor = ClickHouseSink(chdb_dsn, database)  # ClickHouse is there for this one
        SinkConsumer(kafka_bootstrap, prefix, SingleObjectCodec(), successor, group_id=group).run(idle_exit=3.0)
        assert group_lag(kafka_bootstrap, group, [topic]) == 0
        assert successor.reader.query("SELECT count() FROM {db:Identifier}.dead_letters FINAL") == [(3,)]
    finally:
        delete_topics_under(kafka_bootstrap, prefix)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(0.2)


def test_the_sink_says_once_that_the_broker_is_away_and_once_that_it_is_back(
    fault_bootstrap: str, chdb_dsn: str, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"it{uuid.uuid4().hex[:8]}"
    create_topics(fault_bootstrap, prefix=prefix)
    sink = ClickHouseSink(chdb_dsn, database)
    consumer = SinkConsumer(fault_bootstrap, prefix, SingleObjectCodec(), sink, group_id=f"{prefix}-sink")
    stop = threading.Event()
    runner = threading.Thread(target=consumer.run, kwargs={"should_stop": stop.is_set})
    caplog.set_level(logging.INFO)
    runner.start()
    try:
        time.sleep(3)  # joined its group
        kafka_sh("stop")
        wait_for(lambda: consumer.kafka_outage.away, 30, "the broker seen away")
        time.sleep(3)  # librdkafka reports each reconnection meanwhile
    finally:
        kafka_sh("start")
    wait_for(lambda: not consumer.kafka_outage.away, 60, "the broker seen back, with nothing to read")
    stop.set()
    runner.join(30)
    assert not runner.is_alive()
    delete_topics_under(fault_bootstrap, prefix)
    lines = [r.getMessage() for r in caplog.records if r.name == "consentflow.outage"]
    assert len(lines) == 2, lines
    assert f"Kafka at {fault_bootstrap} not answering while consuming" in lines[0] and "back after" in lines[1]


def test_a_commit_the_broker_stop_cuts_off_never_holds_the_sinks_loop(fault_bootstrap: str, chdb_dsn: str, database: str) -> None:
    """The sink commits after each insert; a commit in flight when the broker stops must not hold the loop: a
    synchronous commit could wait for a coordinator its own consumer had to rejoin (confluent-kafka-python #1801), and
    a sink stuck there consumed nothing more after the broker came back, nor said a word. The batch stays in the table;
    its offsets are committed once the broker is back, and nothing is consumed twice into a lost state."""
    prefix = f"it{uuid.uuid4().hex[:8]}"
    create_topics(fault_bootstrap, prefix=prefix)
    topic = OUTPUT_TOPICS[0].name(prefix)
    producer = Producer({"bootstrap.servers": fault_bootstrap})
    for n in range(5):  # dead letters to be: rows like any other
        producer.produce(topic, key=b"k", value=b"not avro %d" % n)
    assert producer.flush(10) == 0
    group = f"{prefix}-sink"
    sink = ClickHouseSink(chdb_dsn, database)
    consumer = SinkConsumer(fault_bootstrap, prefix, SingleObjectCodec(), sink, group_id=group)
    deadline = time.monotonic() + 60
    while consumer.undecodable < 5:
        assert time.monotonic() < deadline, "the sink did not get the five messages"
        for message in consumer.consumer.consume(num_messages=100, timeout=0.5):
            consumer.take(message)
    kafka_sh("stop")
    try:
        committing = threading.Thread(target=consumer._flush_and_commit, daemon=True)  # noqa: SLF001 -- the loop's step
        began = time.monotonic()
        committing.start()
        committing.join(15)
        held = time.monotonic() - began
        assert not committing.is_alive(), "the commit held the sink's loop while the broker was away"
        assert held < 5, f"the commit held the loop {held:.1f} s"
    finally:
        kafka_sh("start")
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.dead_letters FINAL") == [(5,)]  # inserted first
    stop = threading.Event()
    runner = threading.Thread(target=consumer.run, kwargs={"should_stop": stop.is_set})
    runner.start()

    def committed() -> bool:
        try:
            return group_lag(fault_bootstrap, group, [topic]) == 0
        except KafkaException:  # the broker just back: its partitions may have no leader yet
            return False

    try:
        wait_for(committed, 90, "the batch's offsets committed")
    finally:
        stop.set()
        runner.join(30)
        delete_topics_under(fault_bootstrap, prefix)
    assert not runner.is_alive()
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.dead_letters FINAL") == [(5,)]
