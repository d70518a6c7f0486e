"""The faust-streaming worker: a thin driver of the processors over the real broker.

One agent per subject-keyed input topic decodes each message with the project's
codec, calls ``Processor.process`` and produces the outputs to their topics
(through confluent-kafka's producer: librdkafka batches them in C).
Subject state lives in a faust table (RocksDB through rocksdict for workers,
memory in tests) whose changelog lets a replacement worker recover it; state
follows partitions on rebalance because every input topic is keyed by subject
and has the same partition count. Every worker reads the whole recipient
registry (``RegistryFeed``) because processors need every recipient whatever
partitions they own.

Delivery is at-least-once (faust's exactly_once mode has open duplicate and
rebalance bugs): a batch's input offsets are acknowledged only after its
outputs are in Kafka, and every effect is idempotent (seen event ids, outputs
with deterministic ids), so a redelivered batch changes nothing downstream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import faust
from faust.events import Event
from faust.streams import _current_event
from faust.types.tuples import Message

from consentflow.codec import Codec, make_codec
from consentflow.dead_letters import dead_letter
from consentflow.errors import ContractError
from consentflow.lag import committed_offsets, end_offsets
from consentflow.malloc_arenas import limit_malloc_arenas
from consentflow.processor import Processor
from consentflow.producer import EventProducer
from consentflow.state import SubjectState
from consentflow.streams.registry_feed import RegistryFeed
from consentflow.streams.skipped_events import Partition, PartitionContinuity, read_offsets
from consentflow.topics import DEAD_LETTER, INPUT_TOPICS, OUTPUT_TOPICS, Topic

log = logging.getLogger(__name__)

# A partition this long without an event, though its end is further on, has lost one to faust.
QUIET_FOR = 15.0


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker connects and keeps its state."""

    bootstrap: str = "127.0.0.1:9092"
    prefix: str = "consentflow"
    app_id: str = "consentflow-worker"
    data_dir: Path = Path("out/worker")
    store: str = "rocksdb://"  # "memory://" in tests
    partitions: int = 6
    batch_size: int = 2_000
    batch_within: float = 0.5
    registry_url: str | None = None
    retention_interval: float = 30.0


#: RocksDB's memory per partition of the subject table. faust's defaults (three 64 MiB write buffers and
#: a 2 GiB block cache for each partition's database) let a worker with a million subjects grow past
#: 1.5 GiB as the write buffers filled; the states are read back once per batch at most and the cache
#: in ``TableStore`` holds the hot ones, so small buffers and cache cost little speed.
STATE_STORE_OPTIONS = {"write_buffer_size": 8 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 16 * 2**20}


class TableStore:
    """``SubjectStore`` over a faust table, with a bounded in-process cache.

    Reads come from the cache (or the table, unpickled once); writes are held
    until the end of the batch and then sent once per subject to the table,
    whose changelog lets a replacement worker recover the state. Each write
    goes out under the partition of that subject's last event in the batch, the
    partition faust assigns the state to.
    """

    keeps_references = False  # a changed state reaches the changelog only through ``put``

    def __init__(self, table: Any, cache_size: int = 50_000) -> None:
        self.table = table
        self.cache_size = cache_size
        self._cache: OrderedDict[str, SubjectState] = OrderedDict()
        self._dirty: dict[str, Any] = {}  # subject id -> the event that last changed it
        self.current: Any = None  # the event being processed (set by the agent)

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
        if self.current is not None:
            self._dirty[state.subject_id] = self.current
        # A retention tick has no event, hence no partition to write to: the
        # state stays in the cache. What a tick records (actions already
        # emitted) only saves work; a worker that emits an action again writes
        # the same action id, which the sink absorbs.

    def write_batch(self) -> int:
        """Send every state changed in this batch to the table and its changelog; returns how many."""
        for subject_id, event in self._dirty.items():
            # The table (changelog partition, RocksDB partition store) reads the
            # current event from faust's context; a batch sets it per write and
            # restores it, so faust's own stream bookkeeping is left untouched.
            token = _current_event.set(weakref.ref(event))
            try:
                self.table[subject_id] = self._cache[subject_id]
            finally:
                _current_event.reset(token)
        written = len(self._dirty)
        self._dirty.clear()
        return written

    def _remember(self, subject_id: str, state: SubjectState) -> None:
        self._cache[subject_id] = state
        self._cache.move_to_end(subject_id)
        while len(self._cache) > self.cache_size:
            evicted, evicted_state = self._cache.popitem(last=False)
            if evicted in self._dirty:  # not written yet: keep it until the batch ends
                self._cache[evicted] = evicted_state
                break

    def states(self) -> Iterator[SubjectState]:
        """Every state held by this worker, by subject id, read one at a time.

        Only the ids are held at once: a tick over a million subjects must not unpickle every state into one list.
        """
        for subject_id in sorted(self.table.keys()):
            state = self._cache.get(subject_id) or self.table.get(subject_id)
            if state is not None:
                yield state


class PickledState:
    """Value type of the subjects table: SubjectState pickled, in the table and its changelog alike.

    faust takes a table's serializer from its value type's ``_options`` and
    rebuilds values with ``from_data``; SubjectState is plain data and the
    changelog is read by our workers only.
    """

    class _options:
        serializer = "pickle"

    @classmethod
    def from_data(cls, data: Any, preferred_type: Any = None) -> Any:
        """The unpickled value as it is."""
        return data


def build_app(settings: WorkerSettings) -> faust.App:
    """The faust app with one agent per subject-keyed input topic."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        processing_guarantee="at_least_once",
        table_standby_replicas=0,
        web_enabled=False,
        stream_wait_empty=True,  # on SIGTERM, finish and commit the batch in hand
        broker_session_timeout=10,  # a killed worker's partitions move within seconds
        broker_heartbeat_interval=1,
        producer_acks=-1,
        broker_commit_every=settings.batch_size,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5_000,  # faust's per-message path is the limit: hand it big fetches
        stream_buffer_maxsize=20_000,
    )
    codec: Codec = make_codec(settings.registry_url, prefix=settings.prefix)
    table = app.Table(
        "subjects",
        default=None,
        partitions=settings.partitions,
        key_type=str,
        value_type=PickledState,
        options=STATE_STORE_OPTIONS,
    )
    store = TableStore(table)
    feed = RegistryFeed(settings.bootstrap, settings.prefix, codec)
    processor = Processor(store=store, registry=feed.registry)
    output_names = {t.short_name: t.name(settings.prefix) for t in OUTPUT_TOPICS}
    watermark: list[datetime | None] = [None]
    # The agents share subject states: a batch of one agent must not write to
    # the changelog a state another agent changed but whose outputs are not
    # yet acknowledged (a crash would then remember those events as seen and
    # lose their outputs). One batch at a time owns the processor.
    batch_lock = asyncio.Lock()

    # Outputs go through librdkafka, which batches in C; faust's aiokafka producer spent tens of
    # microseconds per message in Python. It keeps the subject table's changelog.
    outputs = EventProducer(settings.bootstrap, codec=codec, prefix=settings.prefix, config={"linger.ms": 5})

    def produce(topic_short: str, key: str, record: dict[str, Any]) -> None:
        outputs.send_bytes(output_names[topic_short], key.encode(), codec.encode(topic_short, record, trusted=True))

    async def outputs_acknowledged() -> None:
        """Every output sent so far is in Kafka (``DeliveryError`` if the broker refused any)."""
        await asyncio.to_thread(outputs.flush)

    input_topics = {t.name(settings.prefix): t for t in INPUT_TOPICS if not t.compacted}
    continuity = PartitionContinuity()

    async def handle_one(event: Any, topic: Topic) -> None:
        message = event.message
        store.current = event
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        try:
            record = codec.decode(topic, message.value)
            changes = processor.process(topic.short_name, record, source)
        except Exception as exc:  # noqa: BLE001 -- a bad message goes to the dead letters; the stream goes on
            reason = str(exc) if isinstance(exc, ContractError) else f"processing failed: {exc}"
            letter = dead_letter(
                topic.name(settings.prefix),
                reason,
                exc,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
            )
            produce(DEAD_LETTER.short_name, topic.short_name, letter)
            return
        when = record.get("occurred_at")
        if when is not None and (watermark[0] is None or when > watermark[0]):
            watermark[0] = when
        for out_topic, out_record in changes.records:
            produce(out_topic, out_record["subject_id"], out_record)

    async def read_back(partition: Partition, offsets: range) -> list[Any]:
        """faust events for input offsets faust skipped, read from the broker (faust-streaming #216)."""
        log.warning("faust skipped %s[%d] offsets %d..%d; reading them back", *partition, offsets.start, offsets.stop - 1)
        try:
            messages = await asyncio.to_thread(read_offsets, settings.bootstrap, partition, offsets)
        except (RuntimeError, TimeoutError):
            # faust does not commit past the hole, so a restart still delivers these events.
            log.exception("could not read back %s[%d] offsets %d..%d", *partition, offsets.start, offsets.stop - 1)
            return []
        events = []
        for m in messages:
            timestamp_type, timestamp = m.timestamp()
            message = Message(
                m.topic(), m.partition(), m.offset(), timestamp / 1000, timestamp_type, m.headers(), m.key(), m.value(), None
            )
            events.append(Event(app, m.key(), m.value(), m.headers(), message))
        return events

    async def handle(events: list[Any], topic: Topic, *, read_back_only: bool = False) -> None:
        """Process a batch; events faust skipped before any of them are read back and processed first."""
        feed.poll_new()  # registry records published since the last batch [processor: registry first]
        recovered: list[Any] = list(events) if read_back_only else []
        for event in events:
            message = event.message
            skipped = continuity.observe((message.topic, message.partition), message.offset, time.monotonic())
            if skipped:
                found = await read_back((message.topic, message.partition), skipped)
                recovered.extend(found)
                for lost in found:
                    await handle_one(lost, topic)
            await handle_one(event, topic)
        store.current = None
        # Order matters for at-least-once: outputs first (acknowledged by the
        # broker), then the state that remembers these events as seen, then
        # (when take_events moves on) the input offsets. A crash before the
        # state is written redelivers the events and re-emits the same outputs,
        # which the sink absorbs; writing the state first could remember an
        # event whose outputs never reached Kafka, and lose them.
        await outputs_acknowledged()
        store.write_batch()
        # The state must be in the changelog before take_events acknowledges the
        # batch: faust's pre-commit flush gives up after 0.1 s without a send,
        # which could commit offsets ahead of the state. Drain it ourselves.
        while app.producer.buffer.size:
            await app.producer.buffer.flush()
        await app.producer.flush()
        for event in recovered:  # faust never delivered these: acknowledge them so its commits move past the hole
            app.consumer.ack(event.message)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's handler type admits no async receiver
    async def follow(sender: Any, *assignment: Any, signal: Any, **kwargs: Any) -> None:
        """Expect each assigned input partition to resume at the group's committed offset."""
        mine = [(tp.topic, tp.partition) for assigned in assignment for tp in assigned if tp.topic in input_topics]
        committed = await asyncio.to_thread(committed_offsets, settings.bootstrap, settings.app_id, mine)
        now = time.monotonic()
        for partition, offset in committed.items():
            if offset is not None:
                continuity.expect(partition, offset, now)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def unfollow(sender: Any, *revocation: Any, signal: Any, **kwargs: Any) -> None:
        """Stop following revoked partitions: another worker moves them on."""
        continuity.forget((tp.topic, tp.partition) for revoked in revocation for tp in revoked)

    @app.timer(interval=5.0)
    async def read_back_quiet_partitions() -> None:
        """A skipped event at the end of a partition has no later offset to reveal it: compare with the end."""
        followed = continuity.partitions()
        if not followed:
            return
        ends = await asyncio.to_thread(end_offsets, settings.bootstrap, {topic for topic, _ in followed})
        async with batch_lock:
            for partition, offsets in continuity.behind(ends, time.monotonic(), quiet_for=QUIET_FOR).items():
                events = await read_back(partition, offsets)
                if events:
                    await handle(events, input_topics[partition[0]], read_back_only=True)

    for input_topic in INPUT_TOPICS:
        if input_topic.compacted:
            continue  # the registry is read whole by every worker (RegistryFeed)
        channel = app.topic(input_topic.name(settings.prefix), key_serializer="raw", value_serializer="raw")

        def make_agent(topic: Topic) -> Any:
            async def agent(stream: AsyncIterable[Any]) -> None:
                async for events in stream.take_events(settings.batch_size, within=settings.batch_within):  # type: ignore[attr-defined]
                    try:
                        async with batch_lock:
                            await handle(list(events), topic)
                    except Exception:
                        # faust acknowledges a batch whose loop body raised, which would lose it:
                        # stop the process instead, uncommitted; a restart redelivers the batch.
                        log.exception("batch of %s failed; exiting so it is redelivered", topic.short_name)
                        os._exit(70)

            agent.__name__ = f"process_{topic.short_name.replace('-', '_')}"
            agent.__qualname__ = agent.__name__
            return agent

        app.agent(channel, name=f"consentflow.{input_topic.short_name}")(make_agent(input_topic))

    @app.timer(interval=settings.retention_interval)
    async def retention() -> None:
        """Retention actions due at this worker's event-time watermark [2.3], and the holdings records it owes."""
        async with batch_lock:
            if watermark[0] is None:
                # A worker restarted on states whose last events were all processed before it
                # came still owes their ticks (a predecessor killed before its next tick issued no
                # holdings on them): its clock starts at the latest event those states know.
                watermark[0] = max((s.latest_event_at for s in store.states() if s.latest_event_at is not None), default=None)
                if watermark[0] is None:
                    return
            for out_topic, out_record in processor.tick(watermark[0]).records:
                produce(out_topic, out_record["subject_id"], out_record)
            await outputs_acknowledged()

    app.conf.consentflow_processor = processor  # for introspection in tests
    return app


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """faust's worker for ``app``, logging at ``loglevel`` and without its terminal spinner.

    The spinner turns with every log record, so faust sets the root logger to DEBUG
    when it has one: every debug line of aiokafka and faust (one per message sent)
    then builds a record that no handler prints, about 5 % of a worker's CPU in a
    py-spy profile. A worker in a pipeline has nobody watching it spin.
    """
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


def run_worker(settings: WorkerSettings, loglevel: str = "info") -> None:
    """Start a worker and block until it is stopped (SIGTERM/SIGINT)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    limit_malloc_arenas()  # before faust, librdkafka and RocksDB start their threads
    faust_worker(build_app(settings), loglevel).execute_from_commandline()


__all__ = ["PickledState", "TableStore", "WorkerSettings", "build_app", "faust_worker", "run_worker"]
