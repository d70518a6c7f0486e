"""A range of one partition's offsets, read by a consumer assigned to it (no group, no commits).

What the worker reads back when faust skipped events, and what an auditor's
replay reads, partition by partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition


def messages_in(consumer: Consumer, topic: str, partition: int, offsets: range, timeout: float) -> Iterator[Any]:
    """The messages at ``offsets`` of ``topic[partition]``, in offset order.

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
        while True:
            messages = consumer.consume(num_messages=10_000, timeout=0.5)
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


__all__ = ["messages_in"]
