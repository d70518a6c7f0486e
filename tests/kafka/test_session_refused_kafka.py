"""A session timeout the broker refuses ends the worker and the sink at once, with one line naming both ranges.

The broker accepts group sessions of ``group.min.session.timeout.ms`` to ``group.max.session.timeout.ms`` (6 to
1800 s by default). aiokafka met a refusal with one log line and then waited for ever (the worker hung, never
joined), and librdkafka retried every two seconds (the sink logged a warning each time, for ever).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.kafka.admin import create_topics
from consentflow.runtime.outage import EXIT_NOT_TRANSIENT, Outage
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from tests.support.kafka_topics import delete_topics_under

pytestmark = pytest.mark.kafka


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    name = f"st{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix=name)
    yield name
    delete_topics_under(kafka_bootstrap, name)


@pytest.mark.parametrize("role", ["worker", "sink"])
def test_a_session_timeout_the_broker_refuses_ends_the_process_with_one_line_and_status_71(
    role: str, kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "consentflow.cli", role, "--bootstrap", kafka_bootstrap, "--prefix", prefix]
    if role == "worker":
        command += ["--app-id", f"{prefix}-worker", "--data-dir", str(tmp_path / "worker")]
    else:
        command += ["--dsn", f"chdb://{tmp_path / 'chdb'}", "--database", prefix, "--group-id", f"{prefix}-sink"]
    done = subprocess.run([*command, "--session-timeout", "3"], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_NOT_TRANSIENT, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "accepts group sessions of 6 to 1800 s" in lines[0] and "--session-timeout 3 is outside them" in lines[0]


def test_the_sink_ends_on_a_refusal_librdkafka_reports_rather_than_retry_it_for_ever(
    kafka_bootstrap: str, prefix: str, chdb_dsn: str, database: str
) -> None:
    """The check before joining reads one broker's range: a refusal reported later ends the sink too."""
    exits: list[int] = []
    outage = Outage(f"Kafka at {kafka_bootstrap}", end_process=exits.append)
    consumer = SinkConsumer(kafka_bootstrap, prefix, SingleObjectCodec(), ClickHouseSink(chdb_dsn, database), kafka_outage=outage)
    try:
        consumer.on_kafka_error(
            KafkaError(KafkaError.INVALID_SESSION_TIMEOUT, "JoinGroup failed: Broker: Invalid session timeout")
        )
    finally:
        consumer.consumer.close()
    assert exits == [EXIT_NOT_TRANSIENT]
