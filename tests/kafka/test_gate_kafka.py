"""The gate on the Kafka paths: what a worker and a replay read passes the same checks as a file [issue 18, 3, 4].

The drivers share one step (``streams/input_step.py``): on the same tricky messages (refusals, a null value, bytes
that are no Avro, an event whose processing fails) a worker and a replay write the same dead letters, each naming
its Kafka message, and the same outputs; the embedded runner fails a file's event with the same reason.

Messages are produced with a bare producer, as an emitter that bypasses ``consentflow.contracts.events`` would: a bad id,
the reader's ``unknown`` symbol, an event dated 2199, and one written with a writer schema no release has. Each
becomes a dead letter naming its field (a worker) or an undecodable message (a replay), and the good event goes on.
"""

from __future__ import annotations

import asyncio
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
from typing import Any, cast

import fastavro
import pytest
from confluent_kafka import Producer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from consentflow.contracts import events
from consentflow.contracts.codec import SINGLE_OBJECT_MAGIC, SingleObjectCodec, write_body
from consentflow.contracts.releases import Contract, default_store
from consentflow.contracts.topics import CONSENT, DEAD_LETTER, LEDGER
from consentflow.core.processor import Changes, Processor
from consentflow.core.state import MemoryStore, SubjectState
from consentflow.kafka.lag import end_offsets
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events
from consentflow.streams.input_step import InputStep
from consentflow.streams.partition_range import messages_in, range_consumer
from consentflow.streams.replay import dead_letters, open_replay
from consentflow.streams.worker import Worker, WorkerSettings
from tests.support.kafka_topics import fresh_topics

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


# -- the three drivers on one tricky set: decode → gate → process → dead letter (streams/input_step.py) --

FAILS = "s-fails"  # its event passes the gate, and the processor below fails on it


class FailingOn:
    """A processor failing on ``FAILS``'s events: a processing error, which no valid input causes (injected)."""

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    def process(self, topic: str, record: Any, source: Any = None) -> Changes:
        if record.get("subject_id") == FAILS:
            raise RuntimeError("injected failure")
        return self.processor.process(topic, record, source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.processor, name)  # the tick and the rest, as the processor has them


class FailingStore:
    """A store failing on ``FAILS``'s state: a real ``Processor`` over it fails on that subject's events, the same
    error as ``FailingOn``'s. The embedded runner, compiled by mypyc, takes a ``Processor`` and nothing else."""

    keeps_references = True

    def __init__(self) -> None:
        self._states = MemoryStore()

    def get(self, subject_id: str) -> SubjectState | None:
        if subject_id == FAILS:
            raise RuntimeError("injected failure")
        return self._states.get(subject_id)

    def put(self, state: SubjectState) -> None:
        self._states.put(state)

    def states(self) -> Iterator[SubjectState]:
        return self._states.states()


def _tricky() -> list[tuple[str, bytes | None]]:
    """The gate's refusals above, a null value, bytes that are no Avro, and an event that fails processing."""
    when = datetime.now(UTC) - timedelta(days=1)
    fails = events.consent_granted(FAILS, "marketing", channel="registration_form", source_service="web", occurred_at=when)
    return [
        *((key, value) for key, _, value in _messages()),
        ("null", None),
        ("garbage", b"not avro at all"),
        (FAILS, SingleObjectCodec().encode(CONSENT, fails.record)),
    ]


@pytest.fixture(scope="module")
def tricky(kafka_bootstrap: str) -> Iterator[tuple[str, list[tuple[str, bytes | None]]]]:
    with fresh_topics(kafka_bootstrap, "agree", partitions=1) as prefix:
        messages = _tricky()
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for key, value in messages:
            producer.produce(CONSENT.name(prefix), value=value, key=key.encode())
        assert producer.flush(30) == 0
        yield prefix, messages


def _replayed(bootstrap: str, prefix: str, dsn: str, database: str) -> ClickHouseSink:
    """A replay of ``prefix``'s topics through a processor over ``FailingStore`` into ``database``, as ``consentflow replay`` runs it."""
    sink = ClickHouseSink(dsn, database)
    replay = open_replay(bootstrap, prefix, SingleObjectCodec(), timeout=20)
    try:
        run_events(replay.events(), Processor(store=FailingStore()), sink)
    finally:
        replay.close()
    sink.add_all(("dead-letter", letter) for letter in dead_letters(replay))
    sink.flush()
    return sink


def _letters_in(sink: ClickHouseSink) -> dict[str, tuple[Any, ...]]:
    rows = sink.reader.query(
        "SELECT topic, partition, offset, key_hex, value_hex, reason, error_type FROM {db:Identifier}.dead_letters FINAL"
    )
    return {bytes.fromhex(row[3]).decode(): tuple(row) for row in rows}


def test_a_replay_names_a_processing_failure_by_its_kafka_message_as_a_worker_does(
    kafka_bootstrap: str, tricky: Any, chdb_dsn: str, database: str
) -> None:
    prefix, messages = tricky
    letters = _letters_in(_replayed(kafka_bootstrap, prefix, chdb_dsn, database))
    offset = [key for key, _ in messages].index(FAILS)
    value = dict(messages)[FAILS]
    assert value is not None
    assert letters[FAILS] == (
        CONSENT.name(prefix), 0, offset, FAILS.encode().hex(), value.hex(), "processing failed: injected failure", "RuntimeError"
    )  # fmt: skip


def test_a_worker_and_a_replay_write_the_same_dead_letters_and_outputs(
    kafka_bootstrap: str, tricky: Any, chdb_dsn: str, database: str, tmp_path: Path
) -> None:
    prefix, messages = tricky
    replayed = _replayed(kafka_bootstrap, prefix, chdb_dsn, database)
    worker = Worker(WorkerSettings(kafka_bootstrap, prefix, f"{prefix}-agree", tmp_path / "w", "memory://", partitions=1))
    worker.step = InputStep(cast(Processor, FailingOn(worker.processor)), worker.codec, worker.step.gate)

    async def through_the_worker() -> None:
        # The worker's own path for events it reads from the broker itself (read-backs): step 2 and 3, then 4.
        for event in await worker.read_back((CONSENT.name(prefix), 0), range(len(messages))):
            worker.process_event(event, CONSENT)
        await worker.acknowledge()

    asyncio.run(through_the_worker())
    codec = SingleObjectCodec()
    live = [
        codec.decode(DEAD_LETTER, m.value()) for m in _read_topic(kafka_bootstrap, DEAD_LETTER.name(prefix), len(messages) - 1)
    ]
    as_rows = {
        r["key"].decode(): (r["topic"], r["partition"], r["offset"], r["key"].hex(), r["value"] and r["value"].hex(), r["reason"], r["error_type"])
        for r in live
    }  # fmt: skip
    assert as_rows == _letters_in(replayed)
    assert set(as_rows) == {key for key, _ in messages} - {GOOD}
    ledger = [codec.decode(LEDGER, m.value()) for m in _read_topic(kafka_bootstrap, LEDGER.name(prefix), 1)]
    assert [(e["subject_id"], e["entry_hash"]) for e in ledger] == [
        tuple(row) for row in replayed.reader.query("SELECT subject_id, entry_hash FROM {db:Identifier}.ledger FINAL")
    ]


def test_the_embedded_runner_makes_the_same_processing_failure_of_a_file_s_event(chdb_dsn: str, database: str) -> None:
    when = datetime.now(UTC) - timedelta(days=1)
    good = events.consent_granted(GOOD, "marketing", channel="registration_form", source_service="web", occurred_at=when)
    fails = events.consent_granted(FAILS, "marketing", channel="registration_form", source_service="web", occurred_at=when)
    sink = ClickHouseSink(chdb_dsn, database)
    stats = run_events([(CONSENT, good.record), (CONSENT, fails.record)], Processor(store=FailingStore()), sink)
    assert stats.dead_letters == 1
    # A file's event has no Kafka coordinates: it is named by its topic and index; the reason is the worker's.
    assert _letters_in(sink)[FAILS] == (
        "consent",
        -1,  # no partition
        1,
        FAILS.encode().hex(),
        None,
        "processing failed: injected failure",
        "RuntimeError",
    )
    assert [row[0] for row in sink.reader.query("SELECT subject_id FROM {db:Identifier}.ledger FINAL")] == [GOOD]
