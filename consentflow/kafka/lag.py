"""How far a consumer group is behind: what an operator, a test or a benchmark waits on."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, TopicPartition

from consentflow.kafka.clients import client_config

if TYPE_CHECKING:  # prometheus_client loads only in a process that reports metrics
    from consentflow.runtime.metrics import LagCollector


def end_offsets(bootstrap: str, topics: Iterable[str], timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """High watermark of every partition of ``topics``.

    Raises ``KafkaException`` when the broker cannot answer (``consentflow.runtime.outage`` says whether
    that is transient) and ``KeyError`` when a topic does not exist.
    """
    consumer = Consumer(client_config(bootstrap, {"group.id": "consentflow-lag-probe", "enable.auto.commit": False}))
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
            if metadata is not None and metadata.error is not None:
                raise KafkaException(metadata.error)  # e.g. a restarted broker not serving the topic yet: transient
            if metadata is None:
                raise KeyError(f"topic {topic} does not exist")
            for partition in metadata.partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


def start_offsets(bootstrap: str, partitions: Iterable[tuple[str, int]], timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """Low watermark of each of ``partitions``: where a group that committed nothing starts (``auto.offset.reset=earliest``)."""
    consumer = Consumer(client_config(bootstrap, {"group.id": "consentflow-lag-probe", "enable.auto.commit": False}))
    try:
        return {
            (topic, partition): consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)[0]
            for topic, partition in partitions
        }
    finally:
        consumer.close()


def committed_offsets(
    bootstrap: str, group_id: str, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
) -> dict[tuple[str, int], int | None]:
    """The offset ``group_id`` committed on each partition (None where it committed nothing)."""
    consumer = Consumer(client_config(bootstrap, {"group.id": group_id, "enable.auto.commit": False}))
    try:
        committed = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in committed}
    finally:
        consumer.close()


def partition_lag(bootstrap: str, group_id: str, topics: Iterable[str], timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """Messages of each partition of ``topics`` not yet committed by ``group_id`` (all of them where it committed nothing)."""
    ends = end_offsets(bootstrap, topics, timeout)
    committed = committed_offsets(bootstrap, group_id, ends, timeout)
    return {tp: end - (committed[tp] or 0) for tp, end in ends.items()}


def group_lag(bootstrap: str, group_id: str, topics: Iterable[str], timeout: float = 10.0) -> int:
    """Messages of ``topics`` not yet committed by ``group_id`` (all of them if it committed nothing)."""
    return sum(partition_lag(bootstrap, group_id, topics, timeout).values())


def lag_metric(bootstrap: str, group_id: str, topics: Iterable[str]) -> LagCollector:
    """``consentflow_consumer_lag`` of ``group_id`` on each partition of ``topics``, asked of the broker at each scrape
    (within 2 s; the broker away or a topic not there yet leaves the samples out)."""
    from consentflow.runtime.metrics import LagCollector

    read = partial(partition_lag, bootstrap, group_id, sorted(topics), timeout=2.0)
    return LagCollector(group_id, read, (KafkaException, KeyError))
