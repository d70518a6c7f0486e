"""Against the real broker (bash deploy/kafka.sh start): topics as the design wants them, and every input
event produced by EventProducer and consumed back, in both framings."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec, ResourceType  # type: ignore[attr-defined]

from consentflow.contracts.codec import CONFLUENT_MAGIC, SINGLE_OBJECT_MAGIC, Codec, ConfluentCodec, SingleObjectCodec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import Event
from consentflow.contracts.topics import (
    ALL_TOPICS,
    INCIDENTS,
    INPUT_TOPICS,
    LEDGER,
    OUTPUT_TOPICS,
    RECIPIENTS,
    RIGHTS,
    Topic,
    checkpoints_topic,
)
from consentflow.kafka.admin import create_topics, wait_until_served
from consentflow.kafka.producer import EventProducer
from tests.support.kafka_topics import delete_topics_under
from tests.support.samples import T0, incident_event, recipient_event, subject_events

pytestmark = pytest.mark.kafka

PARTITIONS = 3
CONSUME_DEADLINE_S = 30.0


@pytest.fixture(scope="module", autouse=True)
def _delete_test_topics(kafka_bootstrap: str, session_prefix: str) -> Iterator[None]:
    """Leave the shared broker as it was: drop every topic this session created."""
    yield
    delete_topics_under(kafka_bootstrap, session_prefix)


def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {name: entry.value for name, entry in entries.items()}


def test_create_topics_as_designed(kafka_bootstrap: str, session_prefix: str) -> None:
    prefix = f"{session_prefix}-admin"
    outcomes = create_topics(kafka_bootstrap, partitions=PARTITIONS, prefix=prefix)
    by_name = {o.name: o for o in outcomes}
    assert set(by_name) == {t.name(prefix) for t in ALL_TOPICS} | {checkpoints_topic(prefix)}
    assert {o.status for o in outcomes} == {"created"}
    assert {o.partitions for o in outcomes} == {PARTITIONS}
    for topic in OUTPUT_TOPICS:
        assert by_name[topic.name(prefix)].config["retention.ms"] == "-1"
    assert by_name[RECIPIENTS.name(prefix)].config["cleanup.policy"] == "compact"

    again = create_topics(kafka_bootstrap, partitions=PARTITIONS + 4, prefix=prefix)
    assert {o.status for o in again} == {"exists"}
    assert {o.partitions for o in again} == {PARTITIONS}  # what the broker has, not what was asked

    # what the broker really holds
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert all(len(metadata[t.name(prefix)].partitions) == PARTITIONS for t in ALL_TOPICS)
    assert _configs(kafka_bootstrap, RECIPIENTS.name(prefix))["cleanup.policy"] == "compact"
    ledger = _configs(kafka_bootstrap, LEDGER.name(prefix))
    assert ledger["retention.ms"] == "-1" and ledger["cleanup.policy"] == "delete"
    # The consent log's signed checkpoints are kept forever, even when the outputs are not.
    shorter = create_topics(kafka_bootstrap, partitions=PARTITIONS, prefix=f"{prefix}-short", output_retention_ms="86400000")
    assert {o.name: o.config["retention.ms"] for o in shorter}[checkpoints_topic(f"{prefix}-short")] == "-1"
    assert _configs(kafka_bootstrap, checkpoints_topic(prefix))["retention.ms"] == "-1"


def test_create_topics_returns_once_every_partition_is_served(kafka_bootstrap: str, session_prefix: str) -> None:
    """Producers may start at once: every new partition's leader already answers for it."""
    prefix = f"{session_prefix}-served"
    create_topics(kafka_bootstrap, partitions=PARTITIONS, prefix=prefix)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    asked = {TopicPartition(t.name(prefix), p): OffsetSpec.latest() for t in ALL_TOPICS for p in range(PARTITIONS)}
    answers = {tp: future.result().offset for tp, future in admin.list_offsets(asked, request_timeout=10).items()}
    assert answers == {tp: 0 for tp in asked}  # asked once, no retry: each leader answers, for an empty log


def test_waiting_for_partitions_lasts_until_they_are_served(kafka_bootstrap: str, session_prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = f"{session_prefix}-late.topic"
    began = time.monotonic()
    timer = threading.Timer(1.5, lambda: admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)]))
    timer.start()
    try:
        wait_until_served(admin, {name: 2}, timeout=30)
    finally:
        timer.join()
    assert time.monotonic() - began >= 1.5  # it waited for the topic to exist and be served
    served = admin.list_offsets({TopicPartition(name, p): OffsetSpec.latest() for p in range(2)}, request_timeout=10)
    assert all(future.result().offset == 0 for future in served.values())
    with pytest.raises(RuntimeError, match=r"not yet served after 1 s: .*-never\.topic\[0\]"):
        wait_until_served(admin, {f"{session_prefix}-never.topic": 1}, timeout=1)


@dataclass(frozen=True)
class Received:
    topic: Topic
    key: str
    partition: int
    value: bytes


def _consume(bootstrap: str, prefix: str, expected: int) -> list[Received]:
    by_name = {t.name(prefix): t for t in INPUT_TOPICS}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(list(by_name))
    received: list[Received] = []
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while len(received) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                raise AssertionError(f"consumer error: {error}")
            key, value, topic, partition = msg.key(), msg.value(), msg.topic(), msg.partition()
            assert key is not None and value is not None and topic is not None and partition is not None
            received.append(Received(by_name[topic], key.decode(), partition, value))
        # a short extra wait: nothing beyond what was sent may arrive
        extra = consumer.poll(1.0)
        if extra is not None and extra.error() is None:
            extra_value = extra.value()
            assert extra_value is not None
            received.append(Received(by_name[str(extra.topic())], str(extra.key()), int(extra.partition() or 0), extra_value))
    finally:
        consumer.close()
    return received


SUBJECTS = [f"cand-{n:06d}" for n in range(1, 9)]


def _events() -> list[Event]:
    sent: list[Event] = [recipient_event("mailco-us"), recipient_event("acme-corp")]
    for n, subject in enumerate(SUBJECTS):
        sent.extend(subject_events(subject, start=T0.replace(day=1 + n)))
    return [*sent, incident_event()]


@pytest.fixture(params=["single-object", "confluent"])
def framing(request: pytest.FixtureRequest, kafka_bootstrap: str, session_prefix: str) -> Iterator[tuple[str, Codec, bytes]]:
    prefix = f"{session_prefix}-{request.param}-{uuid.uuid4().hex[:4]}"
    create_topics(kafka_bootstrap, partitions=PARTITIONS, prefix=prefix)
    if request.param == "single-object":
        yield prefix, SingleObjectCodec(), SINGLE_OBJECT_MAGIC
    else:
        url: str = request.getfixturevalue("schema_registry_url")
        yield prefix, ConfluentCodec.from_url(url, prefix=prefix), CONFLUENT_MAGIC


def test_every_input_event_round_trips_through_kafka(kafka_bootstrap: str, framing: tuple[str, Codec, bytes]) -> None:
    prefix, codec, magic = framing
    sent = _events()
    assert {e.topic for e in sent} == set(INPUT_TOPICS)
    with EventProducer(kafka_bootstrap, codec=codec, prefix=prefix) as producer:
        assert producer.send_all(sent) == len(sent)
    assert producer.delivered == len(sent)

    received = _consume(kafka_bootstrap, prefix, len(sent))
    assert len(received) == len(sent)

    # decoded with the same codec, every record is what was sent, under the right key
    decoded = [(r, codec.decode(r.topic, r.value)) for r in received]
    got = sorted(((r.topic.short_name, rec["event_id"]), rec) for r, rec in decoded)
    want = sorted(((e.topic.short_name, e.record["event_id"]), e.record) for e in sent)
    assert got == want
    for r, rec in decoded:
        assert r.value.startswith(magic)
        assert r.key == rec[r.topic.key_field]
        by_topic = {RECIPIENTS: "recipient_id", INCIDENTS: "incident_id"}  # the registry's and the breach register's keys
        assert r.key == rec[by_topic.get(r.topic, "subject_id")]

    # one subject's events share one partition: within a topic, and (same partition count) across topics
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in received:
        partitions[r.key].add(r.partition)
    assert all(len(p) == 1 for p in partitions.values()), partitions
    assert len({p for ps in partitions.values() for p in ps}) > 1, "all subjects on one partition: the check above proves nothing"

    # each topic's events for one subject arrive in the order they were sent
    order = [(r.topic, r.key, codec.decode(r.topic, r.value)["event_id"]) for r in received]
    for subject in SUBJECTS:
        sent_consents = [e.record["event_id"] for e in sent if e.key == subject and e.topic.short_name == "consent"]
        got_consents = [eid for topic, key, eid in order if key == subject and topic.short_name == "consent"]
        assert got_consents == sent_consents


def test_an_invalid_event_is_refused_and_the_valid_ones_are_delivered(
    kafka_bootstrap: str, framing: tuple[str, Codec, bytes]
) -> None:
    prefix, codec, _ = framing
    valid = subject_events("cand-424242")
    before = [e for e in valid if e.topic is RIGHTS] + valid[:3]
    after = valid[3:5]
    invalid = Event(RIGHTS, {**before[0].record, "status": "lost_in_the_mail", "event_id": str(uuid.uuid4())})
    with EventProducer(kafka_bootstrap, codec=codec, prefix=prefix) as producer:
        producer.send_all(before)
        with pytest.raises(ContractError) as info:
            producer.send(invalid)
        producer.send_all(after)
    assert info.value.topic == "rights" and info.value.field == "status"
    assert producer.delivered == len(before) + len(after)

    received = _consume(kafka_bootstrap, prefix, len(before) + len(after))
    ids = sorted(codec.decode(r.topic, r.value)["event_id"] for r in received)
    assert ids == sorted(e.record["event_id"] for e in before + after)
    assert invalid.record["event_id"] not in ids
