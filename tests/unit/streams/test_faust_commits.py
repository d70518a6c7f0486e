"""faust's consumer commits what the worker's books say is processed, whatever faust's own lists hold.

Each scenario is one that stalled a worker's commits after a rebalance (``tests/kafka/test_faults_handover_kafka.py``),
set up in faust's own consumer object; the commit is chosen by faust's own code (``faust_compat.offsets_to_commit``:
its ``force_commit``'s choice). Plain faust, in the same state, is shown
not committing the processed offsets, which is why the books exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP
from faust.types.tuples import Message

from consentflow.streams.faust_commits import ProcessedOffsetsConsumer, commit_processed_offsets
from consentflow.streams.faust_compat import (
    acknowledged_offsets,
    file_acknowledged,
    file_committed_offset,
    file_gap,
    gap_offsets,
    offsets_to_commit,
)
from consentflow.streams.processed_offsets import ProcessedOffsets

TOPIC = "input"
PARTITION = TP(TOPIC, 0)


def message(offset: int) -> Message:
    return Message(TOPIC, 0, offset, 0.0, 0, None, b"subject", b"event", None)


def faust_chooses(set_up: Callable[[Any], object], *, books: ProcessedOffsets | None) -> dict[TP, int]:
    """The offsets faust's commit would send after ``set_up(consumer)``, with the worker's ``books`` or without."""

    async def scenario() -> dict[TP, int]:
        app = faust.App("commit-choice", broker="kafka://127.0.0.1:1", store="memory://")
        if books is not None:
            commit_processed_offsets(app, books)
        consumer = app.consumer  # faust's consumer object; nothing connects until it is started
        assert isinstance(consumer, ProcessedOffsetsConsumer) == (books is not None)
        app.topics.acking_topics.add(TOPIC)  # as faust does for a topic an agent reads
        set_up(consumer)
        return offsets_to_commit(consumer)

    return asyncio.run(scenario())


def processed(start: int, stop: int) -> ProcessedOffsets:
    books = ProcessedOffsets()
    books.assign([(TOPIC, 0)])
    books.start((TOPIC, 0), start)
    books.processed((TOPIC, 0), range(start, stop))
    return books


def acked_twice(consumer: Any) -> None:
    """Offsets acknowledged twice, as after a rebalance: faust's first consecutive run ends at the first repeat."""
    file_committed_offset(consumer, PARTITION, 181)
    file_acknowledged(consumer, PARTITION, [*range(181, 591), *range(181, 400)])


def committed_offset_read_stale(consumer: Any) -> None:
    """faust read 89 as committed where the group stood at 169 (the dead worker's commits): it waits for 89."""
    file_committed_offset(consumer, PARTITION, 89)
    for offset in range(169, 501):
        consumer.ack(message(offset))


def jump_filed_as_gap(consumer: Any) -> None:
    """faust's fetcher jumped from 247 to 346 and files the jump as done (faust-streaming #216)."""
    file_committed_offset(consumer, PARTITION, 248)
    file_gap(consumer, PARTITION, 248, 346)
    for offset in range(346, 401):
        consumer.ack(message(offset))


def test_offsets_acknowledged_twice_do_not_hold_the_commit_back() -> None:
    assert faust_chooses(acked_twice, books=None)[PARTITION] <= 182  # faust alone: one offset a commit
    assert faust_chooses(acked_twice, books=processed(181, 591)) == {PARTITION: 591}


def test_a_stale_committed_offset_does_not_stop_the_commits() -> None:
    assert faust_chooses(committed_offset_read_stale, books=None) == {}  # faust alone: never again
    assert faust_chooses(committed_offset_read_stale, books=processed(169, 501)) == {PARTITION: 501}


def test_a_jump_is_not_committed_until_its_events_are_processed() -> None:
    assert faust_chooses(jump_filed_as_gap, books=None) == {PARTITION: 401}  # faust alone: 248..345 never processed
    books = ProcessedOffsets()
    books.assign([(TOPIC, 0)])
    books.start((TOPIC, 0), 248)
    books.processed((TOPIC, 0), range(346, 401))
    assert faust_chooses(jump_filed_as_gap, books=books) == {}  # the group stays at 248, owed the events of the jump
    books.processed((TOPIC, 0), range(248, 346))  # read back and processed
    assert faust_chooses(jump_filed_as_gap, books=books) == {PARTITION: 401}


def test_faust_own_lists_are_emptied_at_each_commit() -> None:
    books = processed(181, 591)
    sizes: list[int] = []

    def set_up(consumer: Any) -> None:
        acked_twice(consumer)
        offsets_to_commit(consumer)
        sizes.append(len(acknowledged_offsets(consumer, PARTITION)) + len(gap_offsets(consumer, PARTITION)))

    faust_chooses(set_up, books=books)
    assert sizes == [0]
