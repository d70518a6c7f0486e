"""The gate on the Kafka paths: what a worker and a replay read passes the same checks as a file [issue 18, 3, 4].

Messages are produced with a bare producer, as an emitter that bypasses ``consentflow.contracts.events`` would: a bad id,
the reader's ``unknown`` symbol, an event dated 2199, and one written with a writer schema no release has. Each
becomes a dead letter naming its field (a worker) or an undecodable message (a replay), and the good event goes on.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from consentflow.contracts import events
from consentflow.contracts.codec import SINGLE_OBJECT_MAGIC, SingleObjectCodec, write_body
from consentflow.contracts.releases import Contract, default_store
from consentflow.contracts.topics import CONSENT, DEAD_LETTER, LEDGER
from consentflow.kafka.lag import end_offsets
from consentflow.streams.partition_range import messages_in, range_consumer
from consentflow.streams.replay import open_replay
from tests.kafka_topics import fresh_topics

pytestmark = pytest.mark.kafka

GOOD = "s-good"


def _extended_contract() -> Contract:
    """ConsentEvent with one more Purpose symbol: a writer schema no release in schemas/ has."""
    latest = default_store().latest(CONSENT.record)
    schema = copy.deepcopy(latest.schema)
    purpose = next(f for f in schema["fields"] if f["name"] == "purpose")
    purpose["type"]["symbols"].append("world_domination")
    canonical = to_parsing_canonical_form(schema)
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    return Contract(latest.name, latest.version + 1, latest.path, schema, parsed, canonical, fp)


def _messages() -> list[tuple[str, str | None, bytes]]:
    """(key, the field its dead letter names or None for the good one, value)."""
    codec = SingleObjectCodec()
    when = datetime.now(UTC) - timedelta(days=1)
    good = events.consent_granted(GOOD, "marketing", channel="registration_form", source_service="web", occurred_at=when)

    def variant(**changes: Any) -> dict[str, Any]:
        return dict(good.record, event_id=str(uuid.uuid4()), **changes)

    extended = _extended_contract()
    return [
        (GOOD, None, codec.encode(CONSENT, good.record)),
        ("bad-id", "subject_id", codec.encode(CONSENT, variant(subject_id="x'; DROP TABLE ledger; --"))),
        ("unknown", "purpose", codec.encode(CONSENT, variant(purpose="unknown"))),
        ("future", "occurred_at", codec.encode(CONSENT, variant(occurred_at=datetime(2199, 12, 31, tzinfo=UTC)))),
        (
            "extended",
            "fingerprint",  # no field to name: the writer schema is no release
            SINGLE_OBJECT_MAGIC + extended.fingerprint + write_body(CONSENT, extended, variant(purpose="world_domination")),
        ),
    ]


@pytest.fixture(scope="module")
def produced(kafka_bootstrap: str) -> Iterator[tuple[str, list[tuple[str, str | None, bytes]]]]:
    with fresh_topics(kafka_bootstrap, "gate", partitions=1) as prefix:
        messages = _messages()
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for key, _, value in messages:
            producer.produce(CONSENT.name(prefix), value=value, key=key.encode())
        assert producer.flush(30) == 0
        yield prefix, messages


def test_a_replay_keeps_only_what_passes_the_gate(kafka_bootstrap: str, produced: Any) -> None:
    prefix, messages = produced
    replay = open_replay(kafka_bootstrap, prefix, SingleObjectCodec(), timeout=20)
    try:
        read = list(replay.events())
    finally:
        replay.close()
    assert [record["subject_id"] for _, record in read] == [GOOD]
    refused = {bad.key.decode(): str(bad.error) for bad in replay.undecodable if bad.key}
    for key, field, _ in messages[1:]:
        assert field in refused[key], refused[key]


def _read_topic(bootstrap: str, name: str, count: int, timeout: float = 120.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while sum(end_offsets(bootstrap, [name]).values()) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{name} holds fewer than {count} messages after {timeout:.0f} s")
        time.sleep(1)
    consumer = range_consumer(bootstrap, f"gate-{uuid.uuid4().hex}")
    try:
        return list(messages_in(consumer, name, 0, range(0, count), 30))
    finally:
        consumer.close()


def test_a_worker_sends_each_bad_message_to_the_dead_letters_and_processes_the_good_one(
    kafka_bootstrap: str, produced: Any, tmp_path: Path
) -> None:
    prefix, messages = produced
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 -- lives as long as the process
    worker = subprocess.Popen(
        [sys.executable, "-m", "consentflow.cli", "worker", "--bootstrap", kafka_bootstrap, "--prefix", prefix,
         "--app-id", f"{prefix}-worker", "--data-dir", str(tmp_path / "w"), "--store", "memory", "--loglevel", "info"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        letters = _read_topic(kafka_bootstrap, DEAD_LETTER.name(prefix), len(messages) - 1)
        ledger = _read_topic(kafka_bootstrap, LEDGER.name(prefix), 1)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
    codec = SingleObjectCodec()
    reasons = {record["key"].decode(): record["reason"] for record in (codec.decode(DEAD_LETTER, m.value()) for m in letters)}
    for key, field, _ in messages[1:]:
        assert field in reasons[key], reasons[key]
    assert [codec.decode(LEDGER, m.value())["subject_id"] for m in ledger] == [GOOD]
