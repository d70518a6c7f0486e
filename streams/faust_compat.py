"""Every reach into faust-streaming's private names, each a small named function saying what it relies on.

The worker leans on faust internals where faust offers no public way: which offsets its fetcher handed
over, which partitions it fetches, its fetcher's per-message hand-over (a copy of its loop, source pinned), a
stream's events taken from its channel's queue without faust's stream layer, its
one-commit-at-a-time guard, the lists it chooses commits from, and the RocksDB store's partition databases; the tests that rebuild faust's faults (its commit lists, a starved
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
from faust.sensors.monitor import Monitor
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


class DrainingConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer whose fetcher loop hands a message to the streams directly when nothing can make it
    wait (``_drain_messages``); ``deliver_at_once`` off keeps faust's per-message race throughout."""

    #: Whether ``_drain_messages`` hands a message to the streams at once when nothing can make it wait (the bypass).
    deliver_at_once: bool = True

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover -- run by faust's fetcher, in workers
        """faust's ``Consumer._drain_messages`` (its source pinned: ``DRAIN_SOURCE_SHA256``), with one change.

        faust hands each message over as ``await self.wait_first(callback(message), self.suspend_flow.wait())``:
        four futures made and three cancelled per message, a third of faust's time per message (issue 25). The race
        only matters when the callback can wait: flow stopped for a rebalance, a channel's queue full, faust's
        producer buffer over its limit, or the conductor's callback table locked. When none holds
        (``delivers_at_once``) the callback runs to its end without waiting, and is awaited directly; otherwise,
        and with ``deliver_at_once`` off, faust's own race does as before. The callback is the conductor's
        ``on_message``, which only looks up the partition's handler under the lock ``_ReadyToDeliver`` found free
        (its source pinned: ``ON_MESSAGE_SOURCE_SHA256``): the bypass calls that handler itself.
        """
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        at_once = self.deliver_at_once
        ready = _ReadyToDeliver(self) if at_once else None
        conductor: Any = self.app.topics
        # The partitions' handlers, when the callback is the conductor's own (a test may give another).
        handlers = conductor._tp_to_callback if callback is conductor.on_message else None
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(_CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)  # faust: getmany may loop without releasing the event loop
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if ready is not None and ready(message.topic):
                                await (callback(message) if handlers is None else handlers[message.tp](message))
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                    unset_flag(_CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(_CONSUMER_FETCHING)


class CommitChoosingConsumer(DrainingConsumer):
    """faust's aiokafka consumer (draining as ``DrainingConsumer``) whose commits take their partitions and offsets
    from two hooks of a subclass.

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


#: Seconds between two looks at an empty queue while a batch waits for more events: a batch waits at most this much
#: longer than asked (an idle agent looks at nothing: it waits on the queue for a first event).
QUEUE_LOOK_EVERY = 0.01


async def queued_batches(stream: Any, size: int, within: float) -> AsyncIterator[list[Any]]:
    """Batches of ``stream``'s events as faust's ``take_events(size, within)`` gives them, read from its channel's queue.

    A batch is up to ``size`` events: those queued at once, then what arrives until ``within`` seconds after its
    first. Each batch's events are acknowledged to faust's consumer (``Event.ack``, as ``take_events`` does) when the
    next batch is asked for; never after the caller raised, so a batch that failed stays unacknowledged. faust's
    stream layer between the queue and the agent (its Cython iterator, a buffering processor called per event,
    per-event sensors and acks through the stream) cost as much per event as the rest of faust's path (issue 25).
    A rebalance works as with faust's stream: faust clears the queue, and waits for the batch in hand to be
    acknowledged (``Consumer.wait_empty``); a stop throws ``StopAsyncIteration`` into the queue, which ends the
    batches after the one in hand, as it ends faust's stream. The queue is faust's ``Channel.queue``, the one its
    conductor fills.
    """
    queue = stream.channel.queue
    get_nowait, qsize = queue.get_nowait, queue.qsize
    loop = asyncio.get_running_loop()
    ended = False
    while not ended:
        try:
            events = [await queue.get()]
        except StopAsyncIteration:
            return  # faust ends its agents' streams so when it stops
        deadline = loop.time() + within
        while len(events) < size:
            queued = qsize()
            if queued:
                events.extend(get_nowait() for _ in range(min(queued, size - len(events))))
            elif not queue.empty():  # an error faust threw into the channel: raised here, as its stream would
                try:
                    get_nowait()
                except StopAsyncIteration:
                    ended = True  # the batch in hand is still handed over, then the batches end
                    break
            else:
                left = deadline - loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, QUEUE_LOOK_EVERY))
        yield events
        for event in events:
            event.ack()


def batches(stream: Any, size: int, within: float, *, past_stream_layer: bool) -> AsyncIterator[list[Any]]:
    """An agent's batches of up to ``size`` events: ``queued_batches`` past faust's stream layer, else faust's own
    ``take_events`` (the worker's ``--no-drain-bypass``)."""
    if past_stream_layer:
        return queued_batches(stream, size, within)
    taken: AsyncIterator[list[Any]] = stream.take_events(size, within=within)
    return taken


class QuietMonitor(Monitor):
    """faust's ``Monitor`` sensor without its per-message and per-event hooks: the statistics they keep feed faust's
    web views, which the worker does not run (``web_enabled=False``); its own metrics are Prometheus's
    (``streams/worker_metrics.py``). Every other hook is faust's."""

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        """Nothing kept per message."""

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> dict[str, Any] | None:
        """Nothing kept per event."""
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: Any, event: Any, state: dict[str, Any] | None = None) -> None:
        """Nothing kept per event."""

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        """Nothing kept per message."""


#: The diagnostics flag faust's fetcher sets while it drains (``faust.transport.consumer.CONSUMER_FETCHING``).
_CONSUMER_FETCHING = "FETCHING"

#: sha256 of ``inspect.getsource(faust.transport.consumer.Consumer._drain_messages)`` in faust-streaming 0.15.3, which
#: ``DrainingConsumer._drain_messages`` copies: another faust fails ``tests/unit/streams/test_faust_compat.py``.
DRAIN_SOURCE_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


#: sha256 of ``inspect.getsource(faust.transport.conductor.Conductor._compile_message_handler)`` in faust-streaming
#: 0.15.3: its ``on_message`` only finds the partition's handler under ``_tp_to_callback_lock`` and awaits it, which
#: the bypass does without the lock when it is free.
ON_MESSAGE_SOURCE_SHA256 = "9fbc0538097aa4eca6113b99df8d17605ae72a6b5030482f041a183f4cc34df1"


class _ReadyToDeliver:
    """Whether faust's message callback would run to its end without waiting, for a message of a given topic.

    The conductor's callback (``Conductor._build_handler``) waits on: the app's flow control (suspended for a
    rebalance), faust's producer buffer over its limit, the lock of its callback table, and a full queue of any
    channel subscribed to the topic. The consumer's own flow (``suspend_flow``) is what faust races the callback
    against; stopped, the race is kept.
    """

    def __init__(self, consumer: Any) -> None:
        app = consumer.app
        self.consumer = consumer
        self.flow_control = app.flow_control
        self.buffer = app.producer.buffer
        self.conductor = app.topics
        self.channels: Mapping[str, Collection[Any]] = app.topics._topic_name_index
        self.lock = app.topics._tp_to_callback_lock

    def __call__(self, topic: str) -> bool:
        consumer = self.consumer
        if not consumer.flow_active or consumer.suspend_flow.is_set() or not self.flow_control.is_active():
            return False
        if self.lock.locked() or self.buffer.size > self.buffer.max_messages:
            return False
        return not any(channel.queue.full() for channel in self.channels.get(topic, ()))


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
