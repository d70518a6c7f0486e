"""Input events faust skipped: found by offset, read back from the broker.

faust-streaming can drop a fetched message while its neighbours reach the
stream: a message whose hand-over is cut short when flow is suspended for a
rebalance or recovery is never delivered, yet the fetcher moves on
(faust-streaming #216; we logged partition 2, offsets 62 and 64 handled, 63
never). faust does not commit past the hole, so a restart would recover the
event, but a running worker would sit on it and its outputs would be missing.

Input topics are neither compacted nor transactional, so their offsets run
without holes: an offset that jumps is a skipped event. The worker notes every
partition's next expected offset (``PartitionContinuity``), reads any hole back
itself (``read_offsets``) and hands those events to the same handler before the
one that revealed the hole. A hole at the end of a partition shows no later
offset; the worker finds it by comparing the next expected offset with the
last offset faust's fetcher handed over (never beyond the partition's end) once
the partition has been quiet for a while.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from consentflow.streams.partition_range import messages_in, range_consumer

Partition = tuple[str, int]  # (topic, partition)


class PartitionContinuity:
    """Per input partition, the next offset the worker expects, and when it last saw one."""

    def __init__(self) -> None:
        self._next: dict[Partition, int] = {}
        self._seen_at: dict[Partition, float] = {}

    def expect(self, partition: Partition, offset: int, now: float) -> None:
        """On assignment: the partition's stream resumes at ``offset`` (the group's committed offset).

        A partition already being followed keeps its position: events it has
        handled are past that offset.
        """
        if partition not in self._next:
            self._next[partition] = offset
            self._seen_at[partition] = now

    def forget(self, partitions: Iterable[Partition]) -> None:
        """On revocation: another worker may take these partitions and move them on."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._seen_at.pop(partition, None)

    def observe(self, partition: Partition, offset: int, now: float) -> range:
        """Note that ``offset`` reached the handler; returns the offsets skipped just before it.

        An offset below the expected one is a redelivery (the handler absorbs
        it) and moves nothing back.
        """
        self._seen_at[partition] = now
        expected = self._next.get(partition)
        if expected is not None and offset < expected:
            return range(0)
        self._next[partition] = offset + 1
        return range(offset if expected is None else expected, offset)

    def behind(
        self, ends: Mapping[Partition, int], handed: Mapping[Partition, int | None], now: float, quiet_for: float
    ) -> dict[Partition, range]:
        """Partitions quiet for ``quiet_for`` seconds whose end is past the next expected offset.

        ``ends`` are the partitions' high watermarks; ``handed`` the last offset faust's fetcher
        handed to the streams in each (None: none yet). The result holds the offsets that should
        have reached the handler by now: only those faust handed over can have been skipped. The
        rest of a long backlog is not lost, only not fetched yet, and a partition can wait its
        turn longer than ``quiet_for`` while the fetcher serves others (a million-event backlog
        once had whole partitions read back for nothing).
        """
        behind: dict[Partition, range] = {}
        for partition, expected in self._next.items():
            end = ends.get(partition)
            last_handed = handed.get(partition)
            if end is None or last_handed is None or now - self._seen_at[partition] < quiet_for:
                continue
            end = min(end, last_handed + 1)
            if end > expected:
                behind[partition] = range(expected, end)
        return behind

    def partitions(self) -> list[Partition]:
        """The partitions being followed."""
        return list(self._next)


def read_offsets(bootstrap: str, partition: Partition, offsets: range, timeout: float = 30.0) -> list[Any]:
    """The messages at ``offsets`` of ``partition``, read directly from the broker (no group, no commit).

    Returns confluent-kafka messages in offset order; raises ``TimeoutError``
    when the broker does not hand them over within ``timeout`` seconds.
    """
    if not offsets:
        return []
    topic, number = partition
    consumer = range_consumer(bootstrap, "consentflow-skipped-events")
    try:
        messages = list(messages_in(consumer, topic, number, offsets, timeout))
        if not messages or (messages[-1].offset() or 0) < offsets.stop - 1:
            raise TimeoutError(f"{topic}[{number}] offsets {offsets.start}..{offsets.stop - 1} not readable in {timeout:.0f} s")
        return messages
    finally:
        consumer.close()


__all__ = ["Partition", "PartitionContinuity", "read_offsets"]
