"""Per input partition, the offset the group may commit: every event below it processed, its outputs in Kafka.

faust derives its commits from a list of acknowledged offsets and a tree of offsets its fetcher jumped
over. After a rebalance mid-stream that bookkeeping went wrong in ways a worker could not see: offsets
acknowledged twice (its commits then crept one offset a second), a committed offset read before the
group's last commit (its next commit waited for an offset another worker had done), a jump counted as
done though the worker never processed it (faust-streaming #216). The group's lag froze while the
worker went on processing (``tests/kafka/test_faults_handover_kafka.py``, about one run in five).

The worker keeps its own books instead, in the order that makes a commit safe: a partition's start is
the group's committed offset read on assignment (or the partition's first offset when the group has
committed nothing there), and an offset counts once the batch that held it is persisted. The commit
point is the first offset not yet processed; a hole (an event faust skipped and the worker could not read
back yet) holds it, and ``holes`` tells the worker what to read back. faust's consumer commits this
point (``streams/faust_commits.py``), with its own timing, locking and rebalance handling.
"""

from __future__ import annotations

from collections.abc import Iterable

from consentflow.streams.skipped_events import Partition


class ProcessedOffsets:
    """What the worker has processed of each assigned input partition, and the offset it may commit there."""

    def __init__(self) -> None:
        self._assigned: set[Partition] = set()
        self._next: dict[Partition, int] = {}  # the first offset not processed, once the partition's start is known
        self._ahead: dict[Partition, set[int]] = {}  # processed offsets past a hole, or before the start is known

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Partitions assigned to this worker: their offsets count from now on (their start comes with ``start``)."""
        self._assigned.update(partitions)

    def start(self, partition: Partition, offset: int) -> None:
        """The group resumes ``partition`` at ``offset`` (its committed offset, or the partition's first).

        Offsets processed before the start was known count if they are at or past it. A partition
        whose start is known keeps it: what the worker processed since is past that offset.
        """
        if partition not in self._assigned or partition in self._next:
            return
        ahead = self._ahead.pop(partition, set())
        self._next[partition] = offset
        self._count(partition, ahead)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Revoked partitions: another worker moves them on, from the group's committed offset."""
        for partition in partitions:
            self._assigned.discard(partition)
            self._next.pop(partition, None)
            self._ahead.pop(partition, None)

    def processed(self, partition: Partition, offsets: Iterable[int]) -> None:
        """``offsets`` of ``partition`` are processed and everything they caused is in Kafka."""
        if partition in self._assigned:
            self._count(partition, offsets)

    def commit_point(self, partition: Partition) -> int | None:
        """The offset the group may commit on ``partition`` (every offset below it processed); None while unknown."""
        return self._next.get(partition)

    def partitions(self) -> list[Partition]:
        """The assigned partitions whose commit point is known."""
        return list(self._next)

    def holes(self) -> dict[Partition, range]:
        """Per partition, the offsets not processed below one that is: events faust skipped and the worker
        has not read back yet. They hold the commit point until they are processed."""
        return {
            partition: range(self._next[partition], min(ahead))
            for partition, ahead in self._ahead.items()
            if ahead and partition in self._next
        }

    def _count(self, partition: Partition, offsets: Iterable[int]) -> None:
        following = self._next.get(partition)
        ahead = self._ahead.get(partition)
        if following is None:  # the start is not known yet: keep them until it is
            self._ahead.setdefault(partition, set()).update(offsets)
            return
        for offset in offsets:  # a batch's offsets come in order: the common case moves the point one by one
            if offset == following:
                following += 1
            elif offset > following:
                ahead = self._ahead.setdefault(partition, set()) if ahead is None else ahead
                ahead.add(offset)
        if ahead:
            while following in ahead:
                ahead.discard(following)
                following += 1
            ahead.difference_update([offset for offset in ahead if offset < following])
        if ahead is not None and not ahead:
            self._ahead.pop(partition, None)
        self._next[partition] = following


__all__ = ["ProcessedOffsets"]
