"""Creating the pipeline's topics with confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]  # exported, untyped
from confluent_kafka.cimpl import NewTopic

from consentflow.contracts.topics import ALL_TOPICS, INCIDENTS, Topic, TopicRole, checkpoints_topic
from consentflow.kafka.clients import client_config
from consentflow.runtime.redaction import redacted_dsn

_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # what wait_until_served asks each partition's leader for

INFINITE = "-1"


@dataclass(frozen=True)
class TopicOutcome:
    """What ``create_topics`` did for one topic."""

    name: str
    status: str  # "created" or "exists"
    partitions: int
    config: dict[str, str]


def topic_config(topic: Topic, output_retention_ms: str = INFINITE, input_retention_ms: str = INFINITE) -> dict[str, str]:
    """Broker settings for a topic.

    Output topics keep what an auditor needs, forever by default; input topics
    too by default, since auditors replay them from any point and must get the
    same ledger [DESIGN: auditors]. The recipient registry is compacted: its
    latest record per recipient is the registry. The incidents are kept forever whatever the inputs' retention: every
    breach stays documented [GDPR Art. 33(5)].
    """
    if topic.compacted:
        return {"cleanup.policy": "compact", "retention.ms": INFINITE}
    if topic is INCIDENTS:
        return {"cleanup.policy": "delete", "retention.ms": INFINITE}
    retention = output_retention_ms if topic.role is TopicRole.OUTPUT else input_retention_ms
    return {"cleanup.policy": "delete", "retention.ms": retention}


def create_topics(
    bootstrap_servers: str,
    *,
    partitions: int = 6,
    replication_factor: int = 1,
    prefix: str = "consentflow",
    output_retention_ms: str = INFINITE,
    input_retention_ms: str = INFINITE,
    timeout: float = 30.0,
) -> list[TopicOutcome]:
    """Create every topic of the pipeline, the consent log's checkpoints too; topics that already exist are left as
    they are."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if replication_factor < 1:
        raise ValueError(f"replication factor must be at least 1, got {replication_factor}")
    admin = AdminClient(client_config(bootstrap_servers))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise ConnectionError(f"Kafka at {redacted_dsn(bootstrap_servers)} did not answer: {exc.args[0]}") from None
    outcomes: list[TopicOutcome] = []
    wanted: list[NewTopic] = []
    configs = {topic.name(prefix): topic_config(topic, output_retention_ms, input_retention_ms) for topic in ALL_TOPICS}
    # The signed checkpoints are the log's witnesses: kept forever, whatever the outputs' retention.
    configs[checkpoints_topic(prefix)] = {"cleanup.policy": "delete", "retention.ms": INFINITE}
    for name, config in configs.items():
        if name in existing:
            outcomes.append(TopicOutcome(name, "exists", len(existing[name].partitions), config))
            continue
        wanted.append(NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=config))
        outcomes.append(TopicOutcome(name, "created", partitions, config))
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []:
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # raced with another creator
                raise RuntimeError(f"could not create topic {name}: {error.str()}") from None
    wait_until_ready(admin, {t.topic: t.num_partitions for t in wanted}, timeout)
    return outcomes


def wait_until_ready(admin: AdminClient, wanted: dict[str, int], timeout: float = 30.0) -> None:
    """Return once producers may start on the new topics: every partition led in the metadata
    (``wait_until_led``), then served by its leader (``wait_until_served``); each wait has ``timeout``."""
    wait_until_led(admin, wanted, timeout)
    wait_until_served(admin, wanted, timeout)


def wait_until_led(admin: AdminClient, wanted: dict[str, int], timeout: float = 30.0) -> None:
    """Return once the broker's metadata shows every new topic with all its partitions led.

    A producer that starts while a new topic's metadata still flickers can see
    it vanish and come back; librdkafka then restarts the partitions' idempotence
    sequence and the broker discards the next messages as duplicates, reporting
    them delivered (librdkafka #3712). Emitters may start as soon as this returns.
    """
    deadline = time.monotonic() + timeout
    pending = dict(wanted)
    while pending:
        topics = admin.list_topics(timeout=timeout).topics
        for name, count in list(pending.items()):
            metadata = topics.get(name)
            if (
                metadata is not None
                and metadata.error is None
                and len(metadata.partitions) == count
                and all(p.leader >= 0 and p.error is None for p in metadata.partitions.values())
            ):
                del pending[name]
        if pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics created but not yet led after {timeout:.0f} s: {', '.join(sorted(pending))}")
            time.sleep(0.1)


def wait_until_served(admin: AdminClient, wanted: dict[str, int], timeout: float = 30.0) -> None:
    """Return once the leader of every partition of the new topics answers for it (a ListOffsets request).

    The metadata names a leader as soon as the controller registers the partition; the
    broker creates the partition's log some time later. An idempotent producer that sent in
    between lost the first messages of a partition now and then, though they were reported
    delivered, and kept the later ones: the lost messages were all sent in this window
    (bench/RESULTS.md §3).
    """
    pending = {TopicPartition(name, partition) for name, count in wanted.items() for partition in range(count)}
    deadline = time.monotonic() + timeout
    while pending:
        request = {tp: _LATEST for tp in pending}
        for tp, future in admin.list_offsets(request, request_timeout=timeout).items():
            try:
                future.result()
            except KafkaException:
                continue  # not served yet
            pending.discard(tp)
        if pending:
            if time.monotonic() > deadline:
                names = sorted({f"{tp.topic}[{tp.partition}]" for tp in pending})
                raise RuntimeError(f"topics created but not yet served after {timeout:.0f} s: {', '.join(names[:10])}")
            time.sleep(0.1)
