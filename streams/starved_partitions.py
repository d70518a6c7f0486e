"""Assigned input partitions faust stopped fetching: the worker reads their events itself.

After a rebalance mid-stream, faust sometimes never hands over another event of a partition the worker
owns: the backlog waits in Kafka, the process is alive, its loop turns, and the group's lag stays where it
is (``tests/kafka/test_faults_handover_kafka.py``, about one run in fifteen under load; faust-streaming #629
reports the same of partitions aiokafka sends no fetch for). Putting the partition back among faust's
active ones did not revive it. A partition is starved when events wait past its commit point and faust
handed none of it over for ``STARVED_FOR`` seconds; the worker then reads a chunk of it from the broker
itself (as it reads back skipped events) and processes it, a chunk every tick until faust moves again. An event
faust delivers later anyway is absorbed: every effect is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from consentflow.streams.skipped_events import Partition

#: Seconds without an event handed over, while events wait, before the worker reads a partition itself. faust
#: fetches every assigned partition together, so a partition waiting this long is not waiting its turn.
STARVED_FOR = 20.0
#: Offsets the worker reads of one starved partition per tick: the batch lock is held meanwhile.
CHUNK = 5_000


class StarvedPartitions:
    """When faust last handed over an event of each assigned input partition, and which are starved."""

    def __init__(self, starved_for: float = STARVED_FOR) -> None:
        self.starved_for = starved_for
        self._handed: dict[Partition, int | None] = {}
        self._moved_at: dict[Partition, float] = {}
        self._reported: set[Partition] = set()

    def assign(self, partitions: Iterable[Partition], now: float) -> None:
        """Newly assigned partitions: each gets ``starved_for`` seconds from now for its first event."""
        for partition in partitions:
            if partition not in self._moved_at:
                self._handed[partition] = None
                self._moved_at[partition] = now

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Revoked partitions."""
        for partition in partitions:
            self._handed.pop(partition, None)
            self._moved_at.pop(partition, None)
            self._reported.discard(partition)

    def observe(self, handed: Mapping[Partition, int | None], now: float) -> None:
        """The last offset faust handed over of each partition (None: none yet), as it stands ``now``."""
        for partition, offset in handed.items():
            if partition in self._moved_at and offset != self._handed[partition]:
                self._handed[partition] = offset
                self._moved_at[partition] = now
                self._reported.discard(partition)

    def starved(
        self, ends: Mapping[Partition, int], commit_points: Mapping[Partition, int | None], now: float
    ) -> dict[Partition, range]:
        """The partitions whose events wait past the commit point while faust handed none over for ``starved_for``
        seconds, each with the offsets to read now (at most ``CHUNK``). ``ends`` are high watermarks."""
        starved: dict[Partition, range] = {}
        for partition, moved_at in self._moved_at.items():
            end, point = ends.get(partition), commit_points.get(partition)
            if end is None or point is None or end <= point or now - moved_at < self.starved_for:
                continue
            starved[partition] = range(point, min(end, point + CHUNK))
        return starved

    def newly_starved(self, partitions: Iterable[Partition]) -> list[Partition]:
        """Those of ``partitions`` not reported since faust last moved them: the worker logs each starvation once."""
        fresh = sorted(set(partitions) - self._reported)
        self._reported.update(fresh)
        return fresh


__all__ = ["CHUNK", "STARVED_FOR", "StarvedPartitions"]
