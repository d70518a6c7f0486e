"""The subject table: processor state in a faust table, as the ``SubjectStore`` the worker's processor uses.

The table is RocksDB-backed (one database per partition) with a changelog topic, so
a replacement worker recovers the states of the partitions it takes over. A
bounded cache in front holds the states batches use; every write goes to the
table and its changelog under a partition: the partition of the event that
caused it, or, for a retention tick, the partition the state is stored under.

The changelog is written through librdkafka (``EventProducer``), in the bytes faust
itself would write and read back on recovery: faust's own path (its producer
buffer, then aiokafka) cost about a quarter of the worker's main thread, and
serialised each state twice, once for the store and once for the changelog.
"""

from __future__ import annotations

import pickle
from base64 import b64decode
from collections import OrderedDict
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from faust.serializers import codecs
from faust.stores.base import SerializedStore
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP
from rocksdict import WriteBatch

from consentflow.contracts.headers import SUBJECT_STATE_HEADERS
from consentflow.core.state import SubjectState
from consentflow.kafka.producer import EventProducer
from consentflow.streams.faust_compat import (
    as_current_event,
    decode_key,
    file_key_under,
    partition_database,
    partition_databases,
    store_serialized,
    visible_keys,
)

#: RocksDB's memory per partition of the subject table. faust's defaults (three 64 MiB write buffers and
#: a 2 GiB block cache for each partition's database) let a worker with a million subjects grow past
#: 1.5 GiB as the write buffers filled; the states are read back once per batch at most and the cache
#: in ``TableStore`` holds the hot ones, so small buffers and cache cost little speed.
STATE_STORE_OPTIONS = {"write_buffer_size": 8 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 16 * 2**20}


class TableStore:
    """``SubjectStore`` over a faust table, with a bounded in-process cache.

    Reads come from the cache (or the table, unpickled once); writes are held
    until the end of the batch and then written once per subject to the table's
    store and sent to its changelog (through ``changelog``), which lets a
    replacement worker recover the state. Each write goes out under the
    partition of that subject's last event in the batch, the partition faust
    assigns the state to.
    """

    keeps_references = False  # a changed state reaches the changelog only through ``put``

    def __init__(self, table: Any, changelog: EventProducer, cache_size: int = 50_000, source_topic: str | None = None) -> None:
        self.table = table
        self.changelog = changelog
        self.cache_size = cache_size
        # An input topic co-partitioned with the table: a tick's writes, which no event caused, are filed under it.
        self.source_topic = source_topic
        self._cache: OrderedDict[str, SubjectState] = OrderedDict()
        self._dirty: dict[str, Any] = {}  # subject id -> the event that last changed it
        self.current: Any = None  # the event being processed (set by the agent), or a ``PartitionWrite`` in a tick
        # Subjects events changed since the last retention tick took them, with their partition: the
        # subjects a tick must visit besides those whose actions fell due.
        self.touched: dict[str, int] = {}
        self._partition_writes: dict[int, PartitionWrite] = {}

    def get(self, subject_id: str) -> SubjectState | None:
        """The state of ``subject_id`` in this worker's partitions."""
        state = self._cache.get(subject_id)
        if state is None:
            state = self.table.get(subject_id)
            if state is None:
                return None
            self._remember(subject_id, state)
        else:
            self._cache.move_to_end(subject_id)
        return state

    def put(self, state: SubjectState) -> None:
        """Keep ``state``; it reaches the table (and its changelog) at the end of the batch."""
        self._remember(state.subject_id, state)
        current = self.current
        if current is not None:
            self._dirty[state.subject_id] = current
            if not isinstance(current, PartitionWrite):
                self.touched[state.subject_id] = current.message.partition
        # Without a partition (a tick on the memory store) the state stays in the cache: what a
        # tick records (actions already emitted) only saves work, and a worker that emits an
        # action again writes the same action id, which the sink absorbs.

    def file_under(self, partition: int | None) -> None:
        """File the writes that follow (a retention tick's, which no event caused) under ``partition``'s changelog
        and store; ``None`` (partition unknown) keeps them in the cache."""
        if partition is None or self.source_topic is None:
            self.current = None
            return
        write = self._partition_writes.get(partition)
        if write is None:
            write = self._partition_writes[partition] = PartitionWrite(self.source_topic, partition)
        self.current = write

    def take_touched(self) -> list[tuple[str, int]]:
        """The subjects events changed since the last call, by id, each with its partition; forgets them."""
        touched, self.touched = self.touched, {}
        return sorted(touched.items())

    def write_batch(self) -> int:
        """Write every state changed in this batch to the table's store and enqueue it on the changelog; returns how
        many. Once ``changelog`` has flushed, ``changelog_acknowledged`` records how far the changelog goes."""
        table = self.table
        data = table.data
        serializers, topic = table.app.serializers, table.changelog_topic_name
        key_type, key_serializer = table.key_type, table.key_serializer
        value_type, value_serializer = table.value_type, table.value_serializer
        serialized = isinstance(data, SerializedStore)  # RocksDB keeps the changelog's bytes; memory, the objects
        # One RocksDB write batch per partition database, written once at the end as faust writes a changelog
        # it recovers: a put of its own cost each state a write-ahead-log write.
        batches: dict[int, WriteBatch] | None = (
            {} if isinstance(data, RocksDBStore) and data.rocksdb_options.use_rocksdict else None
        )
        assigned: set[int] | None = None
        written = 0
        for subject_id, event in self._dirty.items():
            if isinstance(event, PartitionWrite):
                # A tick's write for a partition revoked while its outputs were being acknowledged
                # would overwrite, in the changelog, what the partition's new owner writes: drop it.
                # The new owner emits the same ids again, which the sink absorbs.
                assigned = self.assigned_partitions() if assigned is None else assigned
                if event.message.partition not in assigned:
                    continue
            state = self._cache[subject_id]
            # Serialised once, as faust's changelog and store serialise a table value.
            key = serializers.dumps_key(key_type, subject_id, serializer=key_serializer)
            value = serializers.dumps_value(value_type, state, serializer=value_serializer)
            partition = event.message.partition
            if batches is not None:
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = WriteBatch(raw_mode=True)
                batch.put(key, value)
                file_key_under(data, key, partition)  # where faust's reads look first, as its own writes record
            else:
                # Another store takes its partition from the current event in faust's context; set
                # per write and restored, so faust's own stream bookkeeping is left untouched.
                with as_current_event(event):
                    if serialized:
                        store_serialized(data, key, value)
                    else:
                        data[subject_id] = state
            self.changelog.send_bytes(topic, key, value, partition=partition, headers=SUBJECT_STATE_HEADERS)
            written += 1
        for partition, batch in (batches or {}).items():
            partition_database(data, partition).write(batch)
        self._dirty.clear()
        return written

    def changelog_acknowledged(self) -> None:
        """Record in each partition's store how far the changelog holds its writes (call after the changelog producer's
        ``flush``): a worker that restarts on this store then reads only the changelog past it, as after faust's own
        writes."""
        data = self.table.data
        changelog = self.table.changelog_topic_name
        assigned = self.assigned_partitions()  # a revoked partition's store is its next owner's business
        for (topic, partition), offset in self.changelog.take_offsets().items():
            if topic == changelog and partition in assigned:
                data.set_persisted_offset(TP(topic, partition), offset)

    def forget_cached(self) -> None:
        """Forget the cached states but those not written yet, when partitions are revoked: a partition that comes
        back may have been changed by another worker meanwhile, and its states must then be read from the table
        faust recovered, not from this cache."""
        self._cache = OrderedDict((subject_id, self._cache[subject_id]) for subject_id in self._dirty)

    def _remember(self, subject_id: str, state: SubjectState) -> None:
        self._cache[subject_id] = state
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self.cache_size:
            evicted, evicted_state = self._cache.popitem(last=False)
            if evicted in self._dirty:  # not written yet: keep it until the batch ends
                self._cache[evicted] = evicted_state
                break

    def states(self) -> Iterator[SubjectState]:
        """Every state held by this worker, read one at a time."""
        for subject_id, _ in self.held_subjects():
            state = self.get_quietly(subject_id)
            if state is not None:
                yield state

    def get_quietly(self, subject_id: str) -> SubjectState | None:
        """The state of ``subject_id``, from the cache or the table, without making it the newest in the cache: a tick
        that reads every state must not push out the states batches use."""
        return self._cache.get(subject_id) or self.table.get(subject_id)

    def held_subjects(self) -> Iterator[tuple[str, int | None]]:
        """Every subject id of this worker's active partitions, each with its partition where the store keeps
        partitions apart (RocksDB: one database each), else None (the memory store of tests).

        RocksDB is read in its key order, one database at a time: only the ids of one
        partition's iterator are held, never a million at once, and the iterator's view
        stays whole while batches write between the chunks of a tick.
        """
        data = self.table.data
        databases = partition_databases(data)  # faust's RocksDB store: partition -> database
        if databases is None:
            for subject_id in sorted(self.table.keys()):  # a copy: batches may change the dict between chunks
                yield subject_id, None
            return
        for partition in sorted(self.assigned_partitions() & set(databases)):
            for key in visible_keys(data, databases[partition]):
                yield decode_key(data, key), partition

    def assigned_partitions(self) -> set[int]:
        """The partitions of the table this worker owns now (faust's assignor: they move on rebalance)."""
        changelog = self.table.changelog_topic_name
        return {tp.partition for tp in self.table.app.assignor.assigned_actives() if tp.topic == changelog}


class PartitionWrite:
    """The event a state write is filed under when no event caused it (a retention tick).

    ``TableStore.write_batch`` takes the changelog partition, and faust's RocksDB store
    the partition database, from the event's message; this carries only that.
    """

    __slots__ = ("__weakref__", "message")  # faust's current event is held by weak reference

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


class StateCodec(codecs.Codec):
    """The subject table's values: ``SubjectState`` pickled, with no base64 layer over the pickle.

    faust's ``pickle`` codec, which the table used before, base64-encodes its pickles: a third more
    bytes in RocksDB and the changelog, an encoding per write and a decoding per read. Values written
    that way still load: a pickle (protocol 2 and later) starts with the PROTO opcode, byte 0x80,
    which base64 text never holds. Only our workers write the changelog, and only they read it.
    """

    def _dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return pickle.loads(s if s[:1] == b"\x80" else b64decode(s))


codecs.register("consentflow-state", StateCodec())


class PickledState:
    """Value type of the subjects table: SubjectState pickled (``StateCodec``), in the table and its changelog alike.

    faust takes a table's serializer from its value type's ``_options`` and
    rebuilds values with ``from_data``; SubjectState is plain data and the
    changelog is read by our workers only.
    """

    class _options:
        serializer = "consentflow-state"

    @classmethod
    def from_data(cls, data: Any, preferred_type: Any = None) -> Any:
        """The unpickled value as it is."""
        return data


__all__ = ["STATE_STORE_OPTIONS", "PartitionWrite", "PickledState", "StateCodec", "TableStore"]
