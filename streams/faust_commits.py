"""faust's consumer, committing the offsets the worker's own books say are processed (``ProcessedOffsets``).

faust keeps when and how to commit: its one-commit-at-a-time guard, its interval and count triggers, the
commit on revocation and on stop, the check that a partition is still assigned. What it commits comes from
the worker: the two methods faust uses to choose offsets are replaced, and its acknowledged-offset list
and its gap tree, which nothing reads any more, are emptied at each commit so they do not grow.
This module is the one place that reaches into faust's consumer for commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock

from consentflow.streams.processed_offsets import ProcessedOffsets


class ProcessedOffsetsConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer whose commits follow ``books`` instead of faust's acknowledged offsets."""

    def __init__(self, *args: Any, books: ProcessedOffsets, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.books = books

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        """The partitions with a commit point, of ``topics`` (names or partitions) when given."""
        for topic, partition in self.books.partitions():
            tp = TP(topic, partition)
            if topics is None or tp in topics or topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        """The books' commit point of ``tp``; faust compares it with what it committed last (``_should_commit``)."""
        with ack_lock:  # faust's own, held by its ack: the list it appends to is emptied in one step
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._gap.pop(tp, None)
        return self.books.commit_point((tp.topic, tp.partition))


def commit_processed_offsets(app: faust.App, books: ProcessedOffsets) -> None:
    """Make ``app``'s consumer, created when its worker starts, commit what ``books`` say is processed."""
    transport: Any = app.transport

    def consumer(*args: Any, **kwargs: Any) -> ProcessedOffsetsConsumer:
        return ProcessedOffsetsConsumer(*args, books=books, **kwargs)

    transport.Consumer = consumer


__all__ = ["ProcessedOffsetsConsumer", "commit_processed_offsets"]
