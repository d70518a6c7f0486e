"""Every reach into faust-streaming's private names, each a small named function saying what it relies on.

The worker leans on faust internals where faust offers no public way: which offsets its fetcher handed
over, which partitions it fetches, its one-commit-at-a-time guard, the lists it chooses commits from, and
the RocksDB store's partition databases; the tests that rebuild faust's faults (its commit lists, a starved
partition) set that state up here too. They live here, and only here, so that raising faust's version
(pinned in pyproject.toml) means reading this module and running ``tests/unit/streams/test_faust_compat.py``, which
checks each access against the installed faust.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import faust
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.streams import _current_event
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify


def handed_over_offsets(app: faust.App) -> Mapping[TP, int | None]:
    """Per partition, the last offset faust's fetcher handed to the streams (None: none yet).

    faust's ``Consumer._read_offset``, set as each message leaves its fetcher for a stream (``_set_read_offset``).
    """
    consumer: Any = app.consumer
    offsets: Mapping[TP, int | None] = consumer._read_offset
    return offsets


def fetched_partitions(app: faust.App) -> set[TP]:
    """The partitions faust's fetcher serves now (assigned and not paused): faust's ``Consumer._active_partitions``."""
    consumer: Any = app.consumer
    active: set[TP] | None = consumer._active_partitions
    return active or set()


class CommitChoosingConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer whose commits take their partitions and offsets from two hooks of a subclass.

    faust's ``force_commit`` asks ``_filter_tps_with_pending_acks`` which partitions have something to commit and
    ``_new_offset`` what to commit on each (then compares it with ``_committed_offset`` and sends it). Both are
    replaced; the lists faust would have chosen from (``_acked``, ``_acked_index``, ``_gap``), which its ``ack``
    still fills, are emptied at each choice so they do not grow.
    """

    def partitions_to_commit(self) -> Iterable[tuple[str, int]]:
        """The partitions that have an offset to commit (a subclass says)."""
        raise NotImplementedError

    def offset_to_commit(self, topic: str, partition: int) -> int | None:
        """The offset to commit on ``topic[partition]``, or None for none yet (a subclass says)."""
        raise NotImplementedError

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        for topic, partition in self.partitions_to_commit():
            tp = TP(topic, partition)
            if topics is None or tp in topics or topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        forget_acknowledged(self, tp)
        return self.offset_to_commit(tp.topic, tp.partition)


def offsets_to_commit(consumer: Any) -> dict[TP, int]:
    """The offsets faust's commit would send now, per partition: its ``force_commit``'s choice
    (``_filter_tps_with_pending_acks``, then ``_filter_committable_offsets``), hooks of a ``CommitChoosingConsumer`` included.
    """
    chosen: dict[TP, int] = consumer._filter_committable_offsets(consumer._filter_tps_with_pending_acks())
    return chosen


def acknowledged_offsets(consumer: Any, tp: TP) -> list[int]:
    """The offsets faust holds as acknowledged and not yet committed on ``tp`` (``Consumer._acked``)."""
    return list(consumer._acked.get(tp, ()))


def file_acknowledged(consumer: Any, tp: TP, offsets: Iterable[int]) -> None:
    """Add ``offsets`` to faust's acknowledged list and index of ``tp`` as its ``ack`` does, without its checks: an
    offset already there is added again (``Consumer._acked``, ``_acked_index``)."""
    with ack_lock:
        for offset in offsets:
            consumer._acked[tp].append(offset)
            consumer._acked_index[tp].add(offset)


def gap_offsets(consumer: Any, tp: TP) -> list[tuple[int, int]]:
    """The ranges [start, stop) faust counts as done on ``tp`` though never handed over (``Consumer._gap``), in order."""
    return sorted((interval.begin, interval.end) for interval in consumer._gap.get(tp, ()))


def file_gap(consumer: Any, tp: TP, start: int, stop: int) -> None:
    """Count offsets [start, stop) of ``tp`` as done, as faust's fetcher does when offsets jump (``Consumer._gap``)."""
    consumer._gap[tp].addi(start, stop)


def file_committed_offset(consumer: Any, tp: TP, offset: int) -> None:
    """Make faust hold ``offset`` as the group's committed offset on ``tp`` (``Consumer._committed_offset``)."""
    consumer._committed_offset[tp] = offset


def starve_partitions(starved: Collection[tuple[str, int]]) -> None:
    """Keep every faust consumer's fetcher from serving the ``starved`` (topic, partition)s, as faust did after some
    rebalances (``Consumer._get_active_partitions``): the starved-partition test's worker loads it at start-up."""
    served = FaustConsumer._get_active_partitions

    def active_but_starved(self: Any) -> set[TP]:
        return {tp for tp in served(self) if (tp.topic, tp.partition) not in starved}

    FaustConsumer._get_active_partitions = active_but_starved  # type: ignore[method-assign]  # the point: faust's own, replaced


def forget_acknowledged(consumer: Any, tp: TP) -> None:
    """Empty faust's acknowledged-offset list, its index and its gap tree of ``tp``, under faust's ``ack_lock``
    (held by its ``ack``, which appends to them)."""
    with ack_lock:
        consumer._acked.pop(tp, None)
        consumer._acked_index.pop(tp, None)
        consumer._gap.pop(tp, None)


@asynccontextmanager
async def commit_guard(consumer: Any) -> AsyncIterator[None]:
    """Hold faust's one-commit-at-a-time guard (``Consumer._commit_fut``) for a commit of our own.

    faust's ``commit`` waits on the future of a commit in flight, sets its own, and clears and notifies it when done;
    this does the same, so neither commit can move the other's offset backwards (a cancelled one counts as done).
    """
    while consumer._commit_fut is not None:
        await asyncio.wait({consumer._commit_fut})
    guard = consumer._commit_fut = asyncio.get_running_loop().create_future()
    try:
        yield
    finally:
        consumer._commit_fut = None
        notify(guard)


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The offset faust last committed (or read as the group's) on ``tp``: ``Consumer._committed_offset``."""
    offset: int | None = consumer._committed_offset.get(tp)
    return offset


async def commit_from_consumer_thread(consumer: Any, offsets: Mapping[TP, int]) -> None:
    """Commit ``offsets`` through the aiokafka consumer faust runs in its consumer thread (``Consumer._thread``,
    ``_ensure_consumer``): the group's member itself, whose commits the coordinator accepts."""
    thread = consumer._thread
    committing = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "") for tp, offset in offsets.items()}
    await thread.call_thread(thread._ensure_consumer().commit, committing)


def partition_databases(data: Any) -> dict[int, Any] | None:
    """faust's RocksDB store's open databases by partition (``Store._dbs``); None for a store without them (memory)."""
    databases: dict[int, Any] | None = getattr(data, "_dbs", None)
    return databases


def partition_database(data: Any, partition: int) -> Any:
    """The RocksDB database of ``partition``, opened if it is not yet (``Store._db_for_partition``)."""
    return data._db_for_partition(partition)


def file_key_under(data: Any, key: bytes, partition: int) -> None:
    """Tell faust's RocksDB store that ``key`` lives in ``partition``'s database (``Store._key_index``: where its
    reads look first), as its own ``_set`` records."""
    data._key_index[key] = partition


def store_serialized(data: Any, key: bytes, value: bytes) -> None:
    """Write serialised bytes to a faust store (``SerializedStore._set``); its partition comes from the current event."""
    data._set(key, value)


def visible_keys(data: Any, database: Any) -> Iterator[bytes]:
    """The keys of one RocksDB partition database, in key order (``Store._visible_keys``)."""
    keys: Iterator[bytes] = data._visible_keys(database)
    return keys


def decode_key(data: Any, key: bytes) -> Any:
    """A stored key as the table's key type (``Store._decode_key``)."""
    return data._decode_key(key)


@contextmanager
def as_current_event(event: Any) -> Iterator[None]:
    """Make ``event`` faust's current event for the block (``faust.streams._current_event``, which holds a weak
    reference): a store takes the partition of a write from it. Restored after, so faust's own bookkeeping of
    the stream's event is untouched."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


__all__ = [
    "CommitChoosingConsumer",
    "acknowledged_offsets",
    "as_current_event",
    "commit_from_consumer_thread",
    "commit_guard",
    "committed_offset",
    "decode_key",
    "fetched_partitions",
    "file_acknowledged",
    "file_committed_offset",
    "file_gap",
    "file_key_under",
    "forget_acknowledged",
    "gap_offsets",
    "handed_over_offsets",
    "offsets_to_commit",
    "partition_database",
    "partition_databases",
    "starve_partitions",
    "store_serialized",
    "visible_keys",
]
