"""Where the group starts on a partition it never committed, committed through faust's own consumer.

faust commits a partition's offset only once its first batch is acknowledged, so until then Kafka's
consumer-group view (``kafka-consumer-groups --describe``) shows "-" for its current offset and lag,
and an operator cannot tell a partition not started from one not assigned. Committing the partition's
start (its low watermark: where ``auto.offset.reset=earliest`` begins) makes the view count its whole
backlog from the moment it is assigned. The commit must come from the group's member itself: the
coordinator refuses one from any other client while the group has members. This module is the one
place that reaches into faust's consumer for it (its commit guard and its aiokafka consumer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.types import TP
from mode.utils.futures import notify


async def commit_starting_offsets(consumer: Any, starts: Mapping[TP, int]) -> set[TP]:
    """Commit ``starts`` through faust's ``consumer`` on the partitions faust has not committed itself; those committed.

    faust lets one commit run at a time (its ``_commit_fut``): this one waits for a commit in flight
    and holds the next back until it is done, so neither can move the other's offset backwards; a
    partition faust committed meanwhile, or no longer assigned, is left alone. Raises aiokafka's
    ``CommitFailedError`` or ``IllegalStateError`` when the group rebalanced meanwhile, and its other
    errors as they come (aiokafka retries the transient ones itself until the broker answers).
    """
    while consumer._commit_fut is not None:
        await asyncio.wait({consumer._commit_fut})  # a cancelled commit counts as finished, as in faust
    guard = consumer._commit_fut = asyncio.get_running_loop().create_future()
    try:
        assigned = consumer.assignment()
        pending = {tp: offset for tp, offset in starts.items() if tp in assigned and consumer._committed_offset.get(tp) is None}
        if pending:
            thread = consumer._thread
            offsets = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "") for tp, offset in pending.items()}
            await thread.call_thread(thread._ensure_consumer().commit, offsets)
        return set(pending)
    finally:
        consumer._commit_fut = None
        notify(guard)


__all__ = ["commit_starting_offsets"]
