"""``/metrics`` of a running worker and a running sink on the real broker, parsed with ``prometheus_client.parser``:
the counts equal what reached Kafka.

The worker's events in equal the input topics' messages, its outputs by kind the output topics' messages, its dead
letters the one message that was not Avro; the sink's inserted rows per table equal the messages of the table's topic
(an output it cannot read becoming a dead letter row);
both groups' lag is 0 on every partition once caught up. Without the counters (or without ``/metrics``) every
comparison fails. The API's: ``tests/unit/http/test_request_metrics.py`` (a running uvicorn).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from consentflow.contracts.topics import INCIDENTS, OUTPUT_TOPICS, RECIPIENTS
from consentflow.kafka.lag import end_offsets, group_lag
from consentflow.sinks.tables import TABLES
from tests.support.kafka_pipeline import WORKER_INPUTS, Pipeline

pytestmark = pytest.mark.kafka

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> Samples:
    """Every sample of ``GET /metrics``: name → sorted labels → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by(samples: Samples, name: str, label: str) -> dict[str, int]:
    """``name``'s samples summed by one label."""
    totals: dict[str, int] = defaultdict(int)
    for labels, value in samples.get(name, {}).items():
        totals[dict(labels)[label]] += int(value)
    return dict(totals)


def per_topic(bootstrap: str, names: dict[str, str]) -> dict[str, int]:
    """Messages in each topic (full name → short name), by short name."""
    ends = end_offsets(bootstrap, list(names))
    totals: dict[str, int] = defaultdict(int)
    for (topic, _), end in ends.items():
        totals[names[topic]] += end
    return {name: count for name, count in totals.items() if count}


def steady_scrape(port: int, bootstrap: str, names: dict[str, str]) -> tuple[Samples, dict[str, int]]:
    """A scrape taken between two equal readings of the topics' ends (a retention tick may still be writing)."""
    deadline = time.monotonic() + 60
    while True:
        before = per_topic(bootstrap, names)
        samples = scrape(port)
        if per_topic(bootstrap, names) == before or time.monotonic() > deadline:
            return samples, before
        time.sleep(1)


def test_a_running_worker_and_sink_report_what_reached_kafka(pipeline: Pipeline) -> None:
    garbage = b"\xc3\x01not-a-fingerprint, not avro"  # one dead letter among the real events
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(f"{pipeline.prefix}.consent", key=b"subj-garbage", value=garbage, partition=1)
    producer.flush(10)
    worker_port = free_port()
    pipeline.start_worker("w1", options=["--health-port", str(worker_port)])
    pipeline.wait_caught_up()

    inputs = {t.name(pipeline.prefix): t.short_name for t in WORKER_INPUTS}
    outputs = {t.name(pipeline.prefix): t.short_name for t in OUTPUT_TOPICS}
    worker, written = steady_scrape(worker_port, pipeline.bootstrap, outputs)
    assert by(worker, "consentflow_events_in_total", "topic") == per_topic(pipeline.bootstrap, inputs)
    assert by(worker, "consentflow_outputs_total", "kind") == written
    assert sum(by(worker, "consentflow_dead_letters_total", "reason").values()) == 1 == written["dead-letter"]
    violations = by(worker, "consentflow_verdicts_total", "outcome")
    assert violations["violation"] > 10 and sum(violations.values()) == written["violations"]
    assert sum(by(worker, "consentflow_retention_actions_total", "action").values()) == written.get("retention", 0)
    worker_lag = worker["consentflow_consumer_lag"]
    assert len(worker_lag) == len(end_offsets(pipeline.bootstrap, list(inputs))) and set(worker_lag.values()) == {0}

    # An output the sink cannot read: a dead letter of the sink's own, in place of a ledger row.
    producer.produce(f"{pipeline.prefix}.ledger", key=b"subj-garbage", value=garbage, partition=0)
    producer.flush(10)
    sink_port, group = free_port(), f"{pipeline.prefix}-sink"
    log = open(pipeline.tmp / "sink.log", "wb")  # noqa: SIM115 -- lives as long as the process
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consentflow.cli",
            "sink",
            "--bootstrap",
            pipeline.bootstrap,
            "--prefix",
            pipeline.prefix,
            "--dsn",
            f"chdb://{pipeline.tmp / 'sink-chdb'}",
            "--group-id",
            group,
            "--health-port",
            str(sink_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pipeline.others.append(sink)
    # What the sink follows: the outputs, the registry and the breach register's incidents (issue 24).
    followed = {**outputs, **{t.name(pipeline.prefix): t.short_name for t in (RECIPIENTS, INCIDENTS)}}
    deadline = time.monotonic() + 180
    while group_lag(pipeline.bootstrap, group, list(followed)) > 0:
        assert sink.poll() is None, f"the sink exited with {sink.returncode}; see {pipeline.tmp}/sink.log"
        assert time.monotonic() < deadline, f"the sink did not catch up; see {pipeline.tmp}/sink.log"
        time.sleep(1)
    consumed, in_kafka = steady_scrape(sink_port, pipeline.bootstrap, followed)
    table_of = {t.topic: t.name for t in TABLES}
    expected = {table_of[topic]: count for topic, count in in_kafka.items()}
    expected["ledger"] -= 1
    expected["dead_letters"] += 1
    assert by(consumed, "consentflow_sink_insert_rows_total", "table") == expected
    assert sum(by(consumed, "consentflow_dead_letters_total", "reason").values()) == 1
    timed = by(consumed, "consentflow_sink_insert_seconds_count", "table")
    assert set(timed) == {table_of[topic] for topic in in_kafka} and min(timed.values()) >= 1
    sink_lag = consumed["consentflow_consumer_lag"]
    assert len(sink_lag) == len(end_offsets(pipeline.bootstrap, list(followed))) and set(sink_lag.values()) == {0}
    os.killpg(sink.pid, signal.SIGTERM)
    assert sink.wait(60) == 0
