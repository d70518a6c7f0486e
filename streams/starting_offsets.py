"""Where the group starts on a partition it never committed, committed through faust's own consumer.

faust commits a partition's offset only once its first batch is acknowledged, so until then Kafka's
consumer-group view (``kafka-consumer-groups --describe``) shows "-" for its current offset and lag,
and an operator cannot tell a partition not started from one not assigned. Committing the partition's
start (its low watermark: where ``auto.offset.reset=earliest`` begins) makes the view count its whole
backlog from the moment it is assigned. The commit must come from the group's member itself: the
coordinator refuses one from any other client while the group has members. faust's commit guard and its
aiokafka consumer are reached through ``streams/faust_compat.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.types import TP

from consentflow.streams.faust_compat import commit_from_consumer_thread, commit_guard, committed_offset


async def commit_starting_offsets(consumer: Any, starts: Mapping[TP, int]) -> set[TP]:
    """Commit ``starts`` through faust's ``consumer`` on the partitions faust has not committed itself; those committed.

    faust lets one commit run at a time (its ``_commit_fut``): this one waits for a commit in flight
    and holds the next back until it is done, so neither can move the other's offset backwards; a
    partition faust committed meanwhile, or no longer assigned, is left alone. Raises aiokafka's
    ``CommitFailedError`` or ``IllegalStateError`` when the group rebalanced meanwhile, and its other
    errors as they come (aiokafka retries the transient ones itself until the broker answers).
    """
    async with commit_guard(consumer):
        assigned = consumer.assignment()
        pending = {tp: offset for tp, offset in starts.items() if tp in assigned and committed_offset(consumer, tp) is None}
        if pending:
            await commit_from_consumer_thread(consumer, pending)
        return set(pending)


__all__ = ["commit_starting_offsets"]
