"""faust's consumer, committing the offsets the worker's own books say are processed (``ProcessedOffsets``).

faust keeps when and how to commit: its one-commit-at-a-time guard, its interval and count triggers, the
commit on revocation and on stop, the check that a partition is still assigned. What it commits comes from
the worker: the two methods faust uses to choose offsets are replaced, and its acknowledged-offset list
and its gap tree, which nothing reads any more, are emptied at each commit so they do not grow.
faust's private names it relies on are in ``streams/faust_compat.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust

from consentflow.streams.faust_compat import CommitChoosingConsumer
from consentflow.streams.processed_offsets import ProcessedOffsets


class ProcessedOffsetsConsumer(CommitChoosingConsumer):
    """faust's aiokafka consumer whose commits follow ``books`` instead of faust's acknowledged offsets."""

    def __init__(self, *args: Any, books: ProcessedOffsets, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.books = books

    def partitions_to_commit(self) -> Iterable[tuple[str, int]]:
        """The partitions with a commit point."""
        return self.books.partitions()

    def offset_to_commit(self, topic: str, partition: int) -> int | None:
        """The books' commit point; faust compares it with what it committed last (``_should_commit``)."""
        return self.books.commit_point((topic, partition))


def commit_processed_offsets(app: faust.App, books: ProcessedOffsets, *, deliver_at_once: bool = True) -> None:
    """Make ``app``'s consumer, created when its worker starts, commit what ``books`` say is processed; and hand
    messages over directly when nothing can make them wait unless ``deliver_at_once`` is off
    (``CommitChoosingConsumer._drain_messages``)."""
    transport: Any = app.transport

    def consumer(*args: Any, **kwargs: Any) -> ProcessedOffsetsConsumer:
        made = ProcessedOffsetsConsumer(*args, books=books, **kwargs)
        made.deliver_at_once = deliver_at_once
        return made

    transport.Consumer = consumer


__all__ = ["ProcessedOffsetsConsumer", "commit_processed_offsets"]
