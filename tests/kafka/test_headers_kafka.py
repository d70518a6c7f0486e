"""Self-describing messages on the real broker (issue 23): every message the project produces, consumed back, carries
the headers naming its contract, release and fingerprint (``consentflow.contracts.headers``), and what kcat shows of
one is enough to find its schema and decode it, as the README says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from consentflow.cli import main
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.headers import (
    CHECKPOINT_HEADERS,
    ENCODING,
    FINGERPRINT,
    SCHEMA,
    SINGLE_OBJECT,
    SUBJECT_STATE_HEADERS,
    VERSION,
    header_text,
)
from consentflow.contracts.releases import default_store
from consentflow.contracts.topics import (
    ALL_TOPICS,
    CONSENT,
    DEAD_LETTER,
    OUTPUT_TOPICS,
    RETENTION,
    checkpoints_topic,
    topic_named,
)
from consentflow.kafka.admin import create_topics
from consentflow.kafka.checkpoints import CheckpointPublisher
from consentflow.kafka.producer import EventProducer
from tests.support.kafka_pipeline import Pipeline
from tests.support.kafka_topics import delete_topics_under, read_to_end
from tests.support.samples import subject_events

pytestmark = pytest.mark.kafka

STORE = default_store()
GARBAGE_KEY = b"subj-garbage"


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    """Fresh topics of every kind, deleted after the test."""
    name = f"hd{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, partitions=1, prefix=name)
    yield name
    delete_topics_under(kafka_bootstrap, name)


def _assert_names_its_avro_value(message: Any, short_name: str) -> None:
    text, value = header_text(message.headers()), bytes(message.value())
    writer = STORE.by_fingerprint(value[2:10])
    assert writer is not None
    assert text == {
        SCHEMA: writer.full_name,
        VERSION: str(writer.version),
        FINGERPRINT: value[2:10].hex(),
        ENCODING: SINGLE_OBJECT,
    }, f"{message.topic()}[{message.partition()}]@{message.offset()}"
    assert writer.name == topic_named(short_name).record


def _decode_cli(short_name: str, value: bytes) -> str:
    result = CliRunner().invoke(main, ["decode", short_name, "-"], input=value)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_message_of_a_pipeline_run_names_its_contract(pipeline: Pipeline) -> None:
    # A message a foreign producer wrote (no headers, not Avro) among the inputs: its dead letter has headers.
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(f"{pipeline.prefix}.consent", key=GARBAGE_KEY, value=b"\xc3\x01not avro at all", partition=0)
    producer.flush(10)
    pipeline.start_worker("w1")
    pipeline.wait_caught_up()
    pipeline.stop()
    short_of = {t.name(pipeline.prefix): t.short_name for t in ALL_TOPICS}
    seen: Counter[str] = Counter()
    decoded: set[str] = set()
    for message in read_to_end(pipeline.bootstrap, list(short_of)):
        short_name = short_of[str(message.topic())]
        if message.key() == GARBAGE_KEY:
            assert message.headers() is None  # what the foreign producer sent, untouched
            continue
        _assert_names_its_avro_value(message, short_name)
        seen[short_name] += 1
        if short_name not in decoded:  # one message a topic through `consentflow decode`, as the README shows
            decoded.add(short_name)
            assert json.loads(_decode_cli(short_name, bytes(message.value())))
    assert seen[DEAD_LETTER.short_name] == 1
    # Every output topic but retention (the dataset's 150 days leave no action due) was read and checked.
    assert {t.short_name for t in OUTPUT_TOPICS if seen[t.short_name] == 0} == {RETENTION.short_name}, seen
    assert seen[CONSENT.short_name] > 0  # the inputs, from EventProducer.send
    # The subjects table's changelog, written by the worker's own producer.
    topics = AdminClient({"bootstrap.servers": pipeline.bootstrap}).list_topics(timeout=10).topics
    (changelog,) = [name for name in topics if name.startswith(pipeline.app_id) and name.endswith("-changelog")]
    states = read_to_end(pipeline.bootstrap, [changelog])
    assert states
    assert {tuple(sorted(header_text(m.headers()).items())) for m in states} == {
        tuple(sorted(header_text(SUBJECT_STATE_HEADERS).items()))
    }


def test_a_refused_line_of_produce_is_a_dead_letter_with_headers(kafka_bootstrap: str, prefix: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"topic": "consent", "subject_id": "subj-1", "purpose": "newsleter", "action": "granted",'
        ' "channel": "account_settings", "source_service": "account", "policy_version": "2020-11-14"}\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["produce", str(events), "--bootstrap", kafka_bootstrap, "--prefix", prefix])
    assert result.exit_code == 0, result.output
    (letter,) = read_to_end(kafka_bootstrap, [DEAD_LETTER.name(prefix)])
    _assert_names_its_avro_value(letter, DEAD_LETTER.short_name)
    assert "newsleter" in _decode_cli(DEAD_LETTER.short_name, bytes(letter.value()))


def test_a_published_checkpoint_says_it_is_a_signed_note(kafka_bootstrap: str, prefix: str) -> None:
    note = "example.org/log\n1\nAAAA\n\n\u2014 example.org/log AAAA\n"
    publish = CheckpointPublisher(kafka_bootstrap, prefix)
    publish("log-1", note)
    assert publish.published == 1
    (message,) = read_to_end(kafka_bootstrap, [checkpoints_topic(prefix)])
    assert message.headers() == CHECKPOINT_HEADERS
    assert bytes(message.value()).decode() == note


def test_kcat_shows_the_headers_and_its_bytes_decode(kafka_bootstrap: str, prefix: str) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        message = "kcat is not installed (apt-get install kcat): the README's example is checked with it"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
        event = next(e for e in subject_events() if e.topic is CONSENT)
        producer.send(event)
    topic = CONSENT.name(prefix)
    shown = subprocess.run(
        [kcat, "-C", "-b", kafka_bootstrap, "-t", topic, "-c", "1", "-e", "-f", "%h\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    contract = STORE.latest("ConsentEvent")
    assert shown == (
        f"consentflow.schema=consentflow.ConsentEvent,consentflow.schema.version={contract.version},"
        f"consentflow.schema.fingerprint={contract.fingerprint.hex()},consentflow.encoding=avro-single-object"
    )
    rows = [line.split()[:3] for line in CliRunner().invoke(main, ["schemas", "list"]).output.splitlines()]
    assert ["consentflow.ConsentEvent", str(contract.version), contract.fingerprint.hex()] in rows
    value = subprocess.run(
        [kcat, "-C", "-b", kafka_bootstrap, "-t", topic, "-p", "0", "-o", "0", "-c", "1", "-e", "-f", "%s"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    decoded = subprocess.run(
        [sys.executable, "-m", "consentflow.cli", "decode", "consent", "-"], input=value, capture_output=True, timeout=60
    )
    assert decoded.returncode == 0, decoded.stderr
    assert f'"event_id": "{event.record["event_id"]}"' in decoded.stdout.decode()
