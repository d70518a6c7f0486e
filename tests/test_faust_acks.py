"""Read-back events acknowledged once in faust's books, whatever faust filed as a gap (faust's own consumer code).

The scenario is what a worker met after a rebalance: faust's fetcher, last at offset 247, handed over 346 next and
filed 248..346 as a gap; faust acknowledged 346..400 as its agent processed them; the worker read 248..345 back,
processed and acknowledged them. faust commits once a second (``broker_commit_interval``): the test counts the
commits it takes to reach 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP
from faust.types.tuples import Message

from consentflow.streams.faust_acks import ack_read_back, tidy_acknowledged

TOPIC = "input"
PARTITION = TP(TOPIC, 0)
LAST_READ, JUMPED_TO, DELIVERED_TO = 247, 346, 401


def message(offset: int) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, None, b"subject", b"event", None)


def commits_to_catch_up(ack: Callable[[Any, Message], object], *, commits_before_read_back: int = 0) -> int:
    """faust's commits (``_new_offset`` then ``_should_commit``, as its commit does) until it commits 401."""

    async def scenario() -> int:
        app = faust.App("read-back-acks", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer  # faust's consumer object; nothing connects until it is started
        app.topics._acking_topics.add(TOPIC)  # as faust does for a topic an agent reads
        consumer._committed_offset[PARTITION] = LAST_READ + 1

        def commit() -> None:
            offset = consumer._new_offset(PARTITION)
            if offset is not None and consumer._should_commit(PARTITION, offset):
                consumer._committed_offset[PARTITION] = offset

        await consumer._add_gap(PARTITION, LAST_READ + 1, JUMPED_TO)  # the fetcher's own call on the jump
        for offset in range(JUMPED_TO, DELIVERED_TO):
            consumer.ack(message(offset))
        for _ in range(commits_before_read_back):
            commit()
        for offset in range(LAST_READ + 1, JUMPED_TO):
            ack(consumer, message(offset))
        commits = 0
        while consumer._committed_offset[PARTITION] != DELIVERED_TO and commits < 1000:
            commit()
            commits += 1
        return commits

    return asyncio.run(scenario())


def plain_ack(consumer: Any, m: Message) -> None:
    consumer.ack(m)


def test_a_read_back_range_faust_filed_as_a_gap_is_committed_within_a_few_commits() -> None:
    assert commits_to_catch_up(ack_read_back) <= 3


def test_a_read_back_after_faust_committed_its_gap_changes_nothing() -> None:
    assert commits_to_catch_up(ack_read_back, commits_before_read_back=2) == 0


def test_faust_counting_the_gap_and_a_plain_ack_of_the_read_back_made_its_commits_creep() -> None:
    """What ``ack_read_back`` works around: about one offset a commit, a commit a second, over the whole range."""
    assert commits_to_catch_up(plain_ack) > 50


def test_repeated_and_committed_offsets_are_tidied_out_and_the_next_commit_takes_the_whole_run() -> None:
    async def scenario() -> tuple[int | None, int | None]:
        app = faust.App("tidy-acks", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer
        consumer._committed_offset[PARTITION] = 181
        consumer._acked[PARTITION] = sorted([180, *range(181, 591), *range(181, 400)])  # as a worker's list stood
        consumer._acked_index[PARTITION] = set(consumer._acked[PARTITION])
        before = consumer._new_offset(PARTITION)
        consumer._acked[PARTITION] = sorted([180, *range(181, 591), *range(181, 400)])
        tidy_acknowledged(consumer, {})
        return before, consumer._new_offset(PARTITION)

    crept, tidied = asyncio.run(scenario())
    assert crept is not None and crept <= 182  # faust's own reading of the untidy list: one offset a commit
    assert tidied == 591


def test_a_committed_offset_faust_read_before_the_group_moved_on_is_raised_and_its_next_commit_comes() -> None:
    async def scenario() -> tuple[int | None, int | None]:
        app = faust.App("tidy-floor", broker="kafka://127.0.0.1:1", store="memory://")
        consumer = app.consumer
        app.topics._acking_topics.add(TOPIC)
        consumer._committed_offset[PARTITION] = 89  # what faust read; the group stood at 169 (the dead worker's)
        for offset in range(169, 501):
            consumer.ack(message(offset))
        stuck = consumer._new_offset(PARTITION)
        tidy_acknowledged(consumer, {PARTITION: 169})
        return stuck, consumer._new_offset(PARTITION)

    stuck, moving = asyncio.run(scenario())
    assert stuck is None  # faust waits for offset 89 for ever
    assert moving == 501
