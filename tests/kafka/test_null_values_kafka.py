"""Null values (Kafka tombstones) on the input topics, live and replayed: the same tables either way [issue 19; 4, 7].

Fresh topics get a recipient registered two days ago and a second one, a tombstone for the first, then a subject's
events: a disclosure to the removed recipient dated before the tombstone, one dated after it, one to the recipient
that stays, and a null value on the consent topic. A faust worker (subprocess) and the sink, and a replay, each
build tables; their per-table digests must be equal, the null value a dead letter "null value" in both, and the
disclosure after the tombstone judged as one to an unregistered recipient in both, the one before it not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import CONSENT, DEAD_LETTER, INPUT_TOPICS, OUTPUT_TOPICS, RECIPIENTS
from consentflow.kafka.lag import end_offsets, group_lag
from consentflow.kafka.producer import EventProducer
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.digest import table_digests
from tests.support.kafka_topics import assert_topics_hold, fresh_topics, replay_topics

pytestmark = pytest.mark.kafka

SUBJECT, GONE, KEPT = "subj-null-1", "rcpt-gone", "rcpt-kept"


@dataclass(frozen=True)
class Run:
    """The databases the worker (through the sink) and a replay filled, and the disclosures' event ids."""

    live: ClickHouseSink
    replayed: ClickHouseSink
    before: str  # to GONE, dated before its tombstone
    after: str  # to GONE, dated after it
    kept: str  # to KEPT, dated after it
    tombstone_at: datetime


def _disclosure(recipient_id: str, when: datetime) -> events.Event:
    return events.data_disclosed(
        SUBJECT, recipient_id, ["contact"], purpose="contract_introductions", legal_basis="contract",
        source_service="matching", occurred_at=when,
    )  # fmt: skip


def _registered(recipient_id: str, when: datetime) -> events.Event:
    return events.recipient_registered(
        recipient_id, name=f"Recipient {recipient_id}", kind="technical_subcontractor", country="FR",
        allowed_purposes=["contract_introductions"], source_service="registry", occurred_at=when,
    )  # fmt: skip


def _wait_caught_up(bootstrap: str, app_id: str, prefix: str, worker: subprocess.Popen[bytes], tmp: Path) -> None:
    """Until the worker committed every input, wrote its dead letter and its outputs stopped growing for 3 s."""
    inputs = [t.name(prefix) for t in INPUT_TOPICS if t.key_field == "subject_id"]
    outputs = [t.name(prefix) for t in OUTPUT_TOPICS]
    deadline, stable_since, last = time.monotonic() + 45, time.monotonic(), -1
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode}; see {tmp}/worker.log")
        ends = end_offsets(bootstrap, outputs)
        written = sum(ends.values())
        if written != last:
            stable_since, last = time.monotonic(), written
        letters = sum(n for (name, _), n in ends.items() if name == DEAD_LETTER.name(prefix))
        if letters and group_lag(bootstrap, app_id, inputs) == 0 and time.monotonic() - stable_since > 3:
            return
        time.sleep(0.5)
    pytest.fail(f"the worker did not catch up in 45 s; see {tmp}/worker.log")


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, chdb_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("nulls")
    with fresh_topics(kafka_bootstrap, "nulls", partitions=1) as prefix:
        now = datetime.now(UTC)
        sent: Counter[str] = Counter()
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            for event in (_registered(GONE, now - timedelta(days=2)), _registered(KEPT, now - timedelta(days=2))):
                producer.send(event)
                sent[RECIPIENTS.name(prefix)] += 1
        raw = Producer({"bootstrap.servers": kafka_bootstrap})
        raw.produce(RECIPIENTS.name(prefix), key=GONE.encode(), value=None)
        assert raw.flush(10) == 0
        sent[RECIPIENTS.name(prefix)] += 1
        tombstone_at = datetime.now(UTC)  # at or after the tombstone's timestamp (Kafka's are milliseconds)
        time.sleep(0.01)
        before = _disclosure(GONE, now - timedelta(days=1))
        after, kept = _disclosure(GONE, datetime.now(UTC)), _disclosure(KEPT, datetime.now(UTC))
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            producer.send(events.consent_granted(SUBJECT, "marketing", channel="registration_form", source_service="web",
                                                 occurred_at=now - timedelta(days=3)))  # fmt: skip
            producer.send(before)
        raw.produce(CONSENT.name(prefix), key=SUBJECT.encode(), value=None)  # among good events
        assert raw.flush(10) == 0
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            producer.send(after)
            producer.send(kept)
        sent.update({CONSENT.name(prefix): 2, after.topic.name(prefix): 3})
        assert_topics_hold(kafka_bootstrap, sent)

        app_id = f"{prefix}-worker"
        log = open(tmp / "worker.log", "wb")  # noqa: SIM115 -- lives as long as the process
        worker = subprocess.Popen(
            [sys.executable, "-m", "consentflow.cli", "worker", "--bootstrap", kafka_bootstrap, "--prefix", prefix,
             "--app-id", app_id, "--data-dir", str(tmp / "w"), "--store", "memory", "--retention-interval", "1",
             "--retention-sweep-interval", "1", "--loglevel", "info"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            _wait_caught_up(kafka_bootstrap, app_id, prefix, worker, tmp)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        live = ClickHouseSink(chdb_dsn, f"live_{uuid.uuid4().hex[:8]}")
        SinkConsumer(kafka_bootstrap, prefix, SingleObjectCodec(), live, group_id=f"{prefix}-sink").run(idle_exit=2.0)

        replayed = replay_topics(kafka_bootstrap, prefix, chdb_dsn)
        yield Run(
            live,
            replayed,
            before.record["event_id"],
            after.record["event_id"],
            kept.record["event_id"],
            tombstone_at,
        )


def test_a_null_value_on_a_subject_topic_is_the_same_dead_letter_live_and_replayed(run: Run) -> None:
    assert table_digests(run.live.reader) == table_digests(run.replayed.reader)
    for sink in (run.live, run.replayed):
        ((topic, key, value, reason, error_type),) = sink.reader.query(
            "SELECT topic, key_hex, value_hex, reason, error_type FROM {db:Identifier}.dead_letters FINAL"
        )
        assert topic.endswith(".consent") and bytes.fromhex(key) == SUBJECT.encode() and value is None
        assert reason.startswith("consent: null value at ") and f"{topic}[0]@" in reason and repr(SUBJECT) in reason
        assert error_type == "ContractError"
        # The good events around it went on: the grant is in the ledger.
        assert sink.reader.query("SELECT count() FROM {db:Identifier}.ledger FINAL")[0][0] == 1


def test_a_registry_tombstone_removes_the_recipient_from_its_timestamp_on_live_and_replayed(run: Run) -> None:
    for sink in (run.live, run.replayed):
        unregistered = {
            event_id
            for (event_id,) in sink.reader.query(
                "SELECT evidence_event_ids[1] FROM {db:Identifier}.violations FINAL WHERE active = 1 AND rule = 'unregistered_recipient'"
            )
        }
        assert unregistered == {run.after}, "only the disclosure dated after the tombstone went to an unregistered recipient"
        # The removal is in the registry table, inactive from the tombstone's timestamp, as both drivers wrote it.
        rows = sink.reader.query(
            "SELECT recipient_id, since, active FROM {db:Identifier}.recipients FINAL ORDER BY recipient_id, since"
        )
        removals = [(r, since) for r, since, active in rows if not active]
        assert [r for r, _ in removals] == [GONE]
        since = removals[0][1].replace(tzinfo=UTC) if removals[0][1].tzinfo is None else removals[0][1]
        assert run.tombstone_at - timedelta(seconds=30) < since <= run.tombstone_at
    assert table_digests(run.live.reader)["recipients"] == table_digests(run.replayed.reader)["recipients"]
