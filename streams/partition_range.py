"""A range of one partition's offsets, read by a consumer assigned to it (no group, no commits).

What the worker reads back when faust skipped events, and what an auditor's
replay reads, partition by partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from consentflow.kafka.clients import client_config


def range_consumer(bootstrap: str, group_id: str) -> Consumer:
    """A consumer for ``messages_in``: assigned, never joined to ``group_id`` (librdkafka wants one), never committing.

    Fetches of 64 KiB or more read a long partition in few round trips; the broker holds a fetch at most 50 ms for
    them, not librdkafka's 500, since the data is there already: a longer hold made every partition shorter than
    64 KiB cost half a second, and held the connection as long after each partition's end.
    """
    return Consumer(
        client_config(
            bootstrap,
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.min.bytes": 65536,
                "fetch.wait.max.ms": 50,
            },
        )
    )


def messages_in(consumer: Consumer, topic: str, partition: int, offsets: range, timeout: float) -> Iterator[Any]:
    """The messages at ``offsets`` of ``topic[partition]``, in offset order (``consumer`` from ``range_consumer``).

    Stops at the range's end, at the partition's end, or where a compacted-away
    hole ends the range. Raises ``TimeoutError`` when the broker hands nothing
    over for ``timeout`` seconds while offsets remain, ``RuntimeError`` on a
    broker error. The consumer is unassigned afterwards.
    """
    if not offsets:
        return
    consumer.assign([TopicPartition(topic, partition, offsets.start)])
    try:
        last_progress = time.monotonic()
        following = offsets.start
        while True:
            # consume() waits until it holds num_messages or the timeout ends: ask for no more than remain,
            # or every range shorter than a batch costs the whole timeout (half a second per partition).
            messages = consumer.consume(num_messages=max(1, min(10_000, offsets.stop - following)), timeout=0.5)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    raise RuntimeError(f"reading {topic}[{partition}]: {error}")
                offset = message.offset() or 0  # always set on a message without error
                if offset >= offsets.stop:
                    return
                yield message
                if offset == offsets.stop - 1:
                    return
                following = offset + 1
            if messages:
                last_progress = time.monotonic()
                continue
            (position,) = consumer.position([TopicPartition(topic, partition)])
            if position.offset >= offsets.stop:
                return  # the range ends in a compacted-away hole
            if time.monotonic() - last_progress > timeout:
                raise TimeoutError(
                    f"the broker handed nothing over for {timeout:.0f} s; still to read: {topic}[{partition}] "
                    f"from offset {max(position.offset, offsets.start)}"
                )
    finally:
        consumer.unassign()


__all__ = ["messages_in", "range_consumer"]
