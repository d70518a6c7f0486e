"""The faust-streaming worker: a thin driver of the processors over the real broker.

One agent per subject-keyed input topic decodes each message with the project's
codec, passes it through the gate (``consentflow.contracts.gate``: the edge checks, and
event-time bounds with the message timestamp as arrival), calls ``Processor.process`` and produces the outputs to their topics
(through confluent-kafka's producer: librdkafka batches them in C).
Subject state lives in a faust table (RocksDB through rocksdict for workers,
memory in tests) whose changelog lets a replacement worker recover it; state
follows partitions on rebalance because every input topic is keyed by subject
and has the same partition count. Every worker reads the whole recipient
registry (``RegistryFeed``) because processors need every recipient whatever
partitions they own.

Delivery is at-least-once (faust's exactly_once mode has open duplicate and
rebalance bugs), and every effect is idempotent (seen event ids, outputs with
deterministic ids), so a redelivered batch changes nothing downstream. The order
of steps that makes it hold is written once, in ``Worker``'s docstring.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import faust
from aiokafka.errors import CommitFailedError, IllegalStateError
from faust.events import Event
from faust.types import TP
from faust.types.tuples import Message

from consentflow.contracts.codec import Codec, make_codec
from consentflow.contracts.gate import Gate
from consentflow.contracts.records import OutputRecord
from consentflow.contracts.topics import DEAD_LETTER, INPUT_TOPICS, OUTPUT_TOPICS, Topic
from consentflow.core.processor import Changes, Processor
from consentflow.core.retention import earliest
from consentflow.core.state import SubjectState
from consentflow.kafka.group_membership import SESSION_TIMEOUT, heartbeat_interval
from consentflow.kafka.lag import committed_offsets, end_offsets, start_offsets
from consentflow.kafka.producer import EventProducer
from consentflow.kafka.quiet_logs import quiet_client_logs
from consentflow.runtime.bounded_stop import EXIT_STOP_ABANDONED, STOP_WITHIN, abandon_stop  # noqa: F401 -- the exit status, as before
from consentflow.runtime.event_loop import use_uvloop
from consentflow.runtime.health import Health
from consentflow.runtime.malloc_arenas import limit_malloc_arenas
from consentflow.runtime.outage import Outage
from consentflow.runtime.redaction import redacted_dsn
from consentflow.streams.faust_commits import commit_processed_offsets
from consentflow.streams.faust_compat import QuietMonitor, batches, fetched_partitions, handed_over_offsets
from consentflow.streams.input_step import DeadLetter, InputStep, Origin
from consentflow.streams.processed_offsets import ProcessedOffsets
from consentflow.streams.registry_feed import RegistryFeed
from consentflow.streams.retention_agenda import RetentionAgenda
from consentflow.streams.skipped_events import Partition, PartitionContinuity, read_offsets
from consentflow.streams.starting_offsets import commit_starting_offsets
from consentflow.streams.starved_partitions import StarvedPartitions
from consentflow.streams.subject_table import STATE_STORE_OPTIONS, PickledState, TableStore
from consentflow.streams.worker_health import keep_beating, report_health

if TYPE_CHECKING:  # prometheus_client loads only in a worker that reports metrics
    from consentflow.runtime.metrics import WorkerMetrics
    from consentflow.streams.worker_metrics import OutputTally

log = logging.getLogger(__name__)

# A partition this long without an event, though its end is further on, has lost one to faust.
QUIET_FOR = 15.0
#: Records aiokafka hands faust per fetch, and events a topic's stream buffers: faust's per-message path is the limit,
#: so it gets big fetches (bench/faust_sizes.py measures the choice, bench/RESULTS.md).
MAX_POLL_RECORDS = 20_000
STREAM_BUFFER_MAXSIZE = 100_000
#: Events a batch takes at most. A state several events of a batch change is pickled and written once, and the
#: batch's outputs are acknowledged in one wait: 10,000 beat 2,000 and 5,000 by a fifth end to end (bench/RESULTS.md
#: §29); a batch redone after a crash costs more, and changes nothing (every effect is idempotent).
BATCH_SIZE = 10_000
#: Subjects a retention tick reads per hold of the batch lock: a sweep over a million states must let batches run.
TICK_CHUNK = 2_000


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker connects and keeps its state."""

    bootstrap: str = "127.0.0.1:9092"
    prefix: str = "consentflow"
    app_id: str = "consentflow-worker"
    data_dir: Path = Path("out/worker")
    store: str = "rocksdb://"  # "memory://" in tests
    partitions: int = 6
    batch_size: int = BATCH_SIZE
    batch_within: float = 0.5
    registry_url: str | None = None
    retention_interval: float = 30.0
    retention_sweep_interval: float = 3600.0  # seconds between ticks that read every subject (RetentionAgenda)
    session_timeout: float = SESSION_TIMEOUT  # a killed worker's partitions move after this (group_membership)
    # Messages handed to the agents without faust's per-message race when none can wait, and taken from the agents'
    # queues without faust's stream layer (streams/faust_compat.py); off, faust's own path.
    drain_bypass: bool = True


class Worker:
    """The faust worker's parts and the steps a batch goes through, in the order that is the delivery guarantee.

    Delivery is at-least-once, and this order is what makes it hold:

    1. take a batch (``take_batches``: faust_compat's ``batches``, past faust's stream layer with the bypass; one
       batch at a time holds the processor, since the agents share subject states);
    2. process each event (``process_batch``): decode → gate → process → dead letter (``InputStep``),
       events faust skipped before it read back and processed first;
    3. write its outputs (``write_output``) to the output topics through librdkafka;
    4. acknowledge (``acknowledge``): every output is in Kafka;
    5. persist the states the batch changed (``persist_states``): in RocksDB and the changelog, acknowledged;
    6. count the batch's offsets as processed (``count_processed``, the books);
    7. commit: faust's consumer, on its own timer, commits the books' commit point (``faust_commits``).

    A crash before 5 redelivers the events and re-emits the same outputs, which the sink absorbs; states
    written before their outputs could remember as seen an event whose outputs never reached Kafka; offsets
    counted before their states are in the changelog could be committed ahead of them. A batch whose steps raise
    ends the process (exit 70), since faust would acknowledge it. A retention tick follows 3 to 5 for the records
    it emits. Around the steps, faust's callbacks are thin
    methods: ``follow``/``unfollow`` on assignment and revocation, and the timers ``read_back_quiet_partitions``
    (skipped events at a partition's end, starved partitions), ``retry_committing_where_partitions_start`` and
    ``retention``.
    """

    def __init__(self, settings: WorkerSettings, health: Health | None = None, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.app = app = faust.App(
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
            # A killed worker's partitions move when its session expires; a stopped one leaves the group (LeaveGroup,
            # a dynamic member: no consumer_group_instance_id, see consentflow.kafka.group_membership).
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=heartbeat_interval(settings.session_timeout),
            producer_acks=-1,
            broker_commit_every=settings.batch_size,
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
            broker_max_poll_records=MAX_POLL_RECORDS,
            stream_buffer_maxsize=STREAM_BUFFER_MAXSIZE,
            monitor=QuietMonitor(),  # faust's per-event statistics feed its web views, which no worker runs
        )
        self.codec: Codec = make_codec(settings.registry_url, prefix=settings.prefix)
        table = app.Table(
            "subjects",
            default=None,
            partitions=settings.partitions,
            key_type=str,
            value_type=PickledState,
            options=STATE_STORE_OPTIONS,
        )
        # The subjects' topics: the registry is fed apart (RegistryFeed), the incidents go to the sink alone.
        self.input_topics = {t.name(settings.prefix): t for t in INPUT_TOPICS if t.key_field == "subject_id"}
        self.agenda = RetentionAgenda(settings.retention_sweep_interval)
        self.feed = RegistryFeed(settings.bootstrap, settings.prefix, self.codec)
        self.output_names = {t.short_name: t.name(settings.prefix) for t in OUTPUT_TOPICS}
        self.watermark: datetime | None = None  # the latest event time seen: the retention clock
        # The agents share subject states: a batch of one agent must not write to
        # the changelog a state another agent changed but whose outputs are not
        # yet acknowledged (a crash would then remember those events as seen and
        # lose their outputs). One batch at a time owns the processor.
        self.batch_lock = asyncio.Lock()
        # Outputs and the subject table's changelog go through librdkafka, which batches in C; faust's
        # aiokafka producer spent tens of microseconds per message in Python.
        self.producer = EventProducer(
            settings.bootstrap, codec=self.codec, prefix=settings.prefix, config={"linger.ms": 5}, record_offsets=True
        )
        # Every input topic is co-partitioned with the table.
        self.store = TableStore(table, self.producer, source_topic=next(iter(self.input_topics)))
        self.processor = Processor(store=self.store, registry=self.feed.registry)
        # The edge checks and event-time bounds every way in applies [DESIGN: one gate].
        self.step = InputStep(self.processor, self.codec, Gate())
        self.continuity = PartitionContinuity()
        # Calls to the broker outside faust's loop (committed offsets, partition ends, read-backs) wait out an outage
        # together: one line when it starts, one when it ends, and no call until the back-off has passed.
        self.kafka = Outage(f"Kafka at {redacted_dsn(settings.bootstrap)}")
        self.starving = StarvedPartitions()  # assigned partitions faust stopped handing events of
        self.books = ProcessedOffsets()  # what faust's consumer commits: offsets processed, outputs in Kafka
        commit_processed_offsets(app, self.books, deliver_at_once=settings.drain_bypass)
        self.awaiting_committed: set[Partition] = set()  # assigned input partitions whose committed offset is not read yet
        self.uncommitted: set[Partition] = set()  # assigned input partitions on which the group has committed nothing yet
        self.background: set[asyncio.Future[None]] = set()  # tasks started by a callback, kept from the garbage collector
        self._connect()
        app.conf.consentflow_processor = self.processor  # for introspection in tests
        if health is not None:
            report_health(app, health, self.kafka, settings.bootstrap)
        self.metrics = metrics
        self.tally: OutputTally | None = None  # what the batch in hand wrote, counted once acknowledged
        if metrics is not None:
            from consentflow.kafka.lag import lag_metric
            from consentflow.streams.worker_metrics import OutputTally

            self.tally = OutputTally()
            metrics.registry.register(lag_metric(settings.bootstrap, settings.app_id, self.input_topics))

    def _connect(self) -> None:
        """Hand faust the callbacks: one agent per subject-keyed input topic, the signals and the timers."""
        app, settings = self.app, self.settings
        app.on_partitions_assigned.connect(self.follow)  # type: ignore[arg-type]  # mode's handler type admits no async receiver
        app.on_partitions_revoked.connect(self.unfollow)  # type: ignore[arg-type]
        app.timer(interval=1.0, name="retry_committing_where_partitions_start")(self.retry_committing_where_partitions_start)
        app.timer(interval=5.0, name="read_back_quiet_partitions")(self.read_back_quiet_partitions)
        app.timer(interval=settings.retention_interval, name="retention")(self.retention)
        for topic in self.input_topics.values():  # the registry is read whole by every worker (RegistryFeed)
            channel = app.topic(topic.name(settings.prefix), key_serializer="raw", value_serializer="raw")
            app.agent(channel, name=f"consentflow.{topic.short_name}")(self._agent(topic))

    def _agent(self, topic: Topic) -> Any:
        """faust's agent for ``topic``: a function of the stream, named after the topic."""

        async def agent(stream: AsyncIterable[Any]) -> None:
            await self.take_batches(stream, topic)

        agent.__name__ = f"process_{topic.short_name.replace('-', '_')}"
        agent.__qualname__ = agent.__name__
        return agent

    # -- the steps, in the order of the guarantee --

    async def take_batches(self, stream: AsyncIterable[Any], topic: Topic) -> None:
        """Step 1: take ``topic``'s batches from faust, one at a time under the batch lock, through the steps."""
        settings = self.settings
        taken = batches(stream, settings.batch_size, settings.batch_within, past_stream_layer=settings.drain_bypass)
        async for events in taken:
            try:
                async with self.batch_lock:
                    await self.process_batch(list(events), topic)
            except Exception:
                # faust acknowledges a batch whose loop body raised, which would lose it:
                # stop the process instead, uncommitted; a restart redelivers the batch.
                log.exception("batch of %s failed; exiting so it is redelivered", topic.short_name)
                os._exit(70)

    async def process_batch(self, events: list[Any], topic: Topic) -> None:
        """Steps 2 to 6 for a batch: events faust skipped before any of them are read back and processed first. Once
        all are persisted, their offsets count as processed: faust's next commit moves past them."""
        if not self.feed.caught_up:  # the whole registry before the first event, read off the loop: probes stay live
            await asyncio.to_thread(self.feed.catch_up)
        self.feed.poll_new()  # registry records published since the last batch [processor: registry first]
        done: dict[Partition, list[int]] = {}
        for event in events:
            message = event.message
            partition = (message.topic, message.partition)
            skipped = self.continuity.observe(partition, message.offset, time.monotonic())
            if skipped:
                for lost in await self.read_back_skipped(partition, skipped):
                    self.process_event(lost, topic)
                    done.setdefault(partition, []).append(lost.message.offset)
            self.process_event(event, topic)
            done.setdefault(partition, []).append(message.offset)
        if self.tally is not None:
            self.tally.taken(topic.short_name, sum(map(len, done.values())))
        await self.persist()
        self.count_processed(done)

    def process_event(self, event: Any, topic: Topic) -> None:
        """Step 2 for one event: decode → gate → process → dead letter; its outputs written (step 3)."""
        message = event.message
        self.store.current = event
        # The message's timestamp is the event's arrival (the collector's receive time, the producer's send); a
        # tombstone holds no event: "null value", a dead letter as in a replay.
        origin = Origin(message.topic, message.partition, message.offset, message.key, message.value)
        record, outcome = self.step.message(topic, origin, round(message.timestamp * 1000))
        if record is None:
            self.write_output(DEAD_LETTER.short_name, topic.short_name, cast(DeadLetter, outcome))
            return
        when = record.get("occurred_at")
        if when is not None and (self.watermark is None or when > self.watermark):
            self.watermark = when
        for out_topic, out_record in cast(Changes, outcome).records:
            self.write_output(out_topic, out_record["subject_id"], out_record)

    def write_output(self, topic_short: str, key: str, record: OutputRecord) -> None:
        """Step 3: one output record to its topic (librdkafka batches it; ``acknowledge`` waits for it)."""
        codec = self.codec
        self.producer.send_bytes(
            self.output_names[topic_short],
            key.encode(),
            codec.encode(topic_short, record, trusted=True),
            headers=codec.headers(topic_short),
        )
        if self.tally is not None:
            self.tally.written(topic_short, record)

    async def acknowledge(self) -> None:
        """Step 4: every output and changelog write sent so far is in Kafka (``DeliveryError`` if the broker refused
        any)."""
        await asyncio.to_thread(self.producer.flush)

    async def persist_states(self) -> None:
        """Step 5: the states changed since the last call, in the store and the changelog, acknowledged."""
        if self.store.write_batch():
            await self.acknowledge()
            self.store.changelog_acknowledged()

    async def persist(self) -> None:
        """Steps 4 and 5: outputs first, acknowledged by the broker; then the states that remember them as seen."""
        self.store.current = None
        await self.acknowledge()
        if self.tally is not None and self.metrics is not None:
            self.tally.add_to(self.metrics)  # the outputs are in Kafka: counted
        await self.persist_states()

    def count_processed(self, done: dict[Partition, list[int]]) -> None:
        """Step 6: offsets whose batch is persisted count as processed; faust commits from these books (step 7)."""
        for partition, offsets in done.items():
            self.books.processed(partition, offsets)

    # -- events faust did not hand over --

    async def read_back_skipped(self, partition: Partition, offsets: range) -> list[Any]:
        """``read_back`` for events faust skipped, logged as such (a starved partition logs once, elsewhere)."""
        log.warning("faust skipped %s[%d] offsets %d..%d; reading them back", *partition, offsets.start, offsets.stop - 1)
        return await self.read_back(partition, offsets)

    async def read_back(self, partition: Partition, offsets: range) -> list[Any]:
        """faust events for input offsets faust did not hand over, read from the broker (faust-streaming #216)."""
        try:
            messages = await asyncio.to_thread(read_offsets, self.settings.bootstrap, partition, offsets)
        except RuntimeError:
            # faust does not commit past the hole, so a restart still delivers these events.
            log.exception("could not read back %s[%d] offsets %d..%d", *partition, offsets.start, offsets.stop - 1)
            return []
        except Exception as exc:  # noqa: BLE001 -- Outage decides: wait out a transient error, exit on any other
            self.kafka.failed(exc, f"reading back {partition[0]}[{partition[1]}]")
            return []  # as above: a hole faust does not commit past
        self.kafka.succeeded()
        events = []
        for m in messages:
            timestamp_type, timestamp = m.timestamp()
            message = Message(
                m.topic(), m.partition(), m.offset(), timestamp / 1000, timestamp_type, m.headers(), m.key(), m.value(), None
            )
            events.append(Event(self.app, m.key(), m.value(), m.headers(), message))
        return events

    async def read_back_quiet_partitions(self) -> None:
        """A skipped event at the end of a partition has no later offset to reveal it: compare with the end.

        Partitions faust stopped handing events of (``StarvedPartitions``) are read here too. While the broker is
        away, a tick does nothing (``Outage``): the next one after the back-off tries again.
        """
        await self.expect_committed()
        followed = self.continuity.partitions()
        if not followed:
            return
        topics = {topic for topic, _ in followed}
        ends = await self.kafka.attempt("reading the ends of followed partitions", end_offsets, self.settings.bootstrap, topics)
        if ends is None:
            return
        app, books, starving = self.app, self.books, self.starving
        async with self.batch_lock:
            handed_over = handed_over_offsets(app)
            handed = {partition: handed_over.get(TP(*partition)) for partition in followed}
            behind = self.continuity.behind(ends, handed, time.monotonic(), quiet_for=QUIET_FOR)
            holes = books.holes()  # skipped events a batch could not read back: they hold the commit point
            for partition, offsets in [*behind.items(), *holes.items()]:
                events = await self.read_back_skipped(partition, offsets)
                if events:
                    await self.process_batch(events, self.input_topics[partition[0]])
            now = time.monotonic()
            starving.observe({partition: handed_over.get(TP(*partition)) for partition in ends}, now)
            if app.rebalancing:
                return  # faust's flow is stopped on purpose
            starved = starving.starved(ends, {partition: books.commit_point(partition) for partition in ends}, now)
            active = fetched_partitions(app)
            for topic, number in starving.newly_starved(starved):
                log.warning(
                    "faust handed over nothing of %s[%d] for %.0f s though events wait from offset %d (%s among its "
                    "active partitions); the worker reads them itself",
                    topic,
                    number,
                    starving.starved_for,
                    starved[(topic, number)].start,
                    "listed" if TP(topic, number) in active else "not",
                )
            for partition, offsets in starved.items():
                events = await self.read_back(partition, offsets)
                if events:
                    await self.process_batch(events, self.input_topics[partition[0]])

    # -- assignment and revocation --

    async def follow(self, sender: Any, *assignment: Any, signal: Any, **kwargs: Any) -> None:
        """Expect each assigned input partition to resume at the group's committed offset."""
        mine = [(tp.topic, tp.partition) for assigned in assignment for tp in assigned if tp.topic in self.input_topics]
        self.books.assign(mine)
        self.starving.assign(mine, time.monotonic())
        self.awaiting_committed.update(mine)
        await self.expect_committed()  # during an outage, the next tick of read_back_quiet_partitions tries again
        if self.uncommitted:  # once the assignment completes, before faust's first commit; the 1 s timer retries
            starting = asyncio.ensure_future(self.commit_where_partitions_start())
            self.background.add(starting)
            starting.add_done_callback(self.background.discard)
        if mine:
            self.agenda.reassigned()  # their subjects' retention actions are not in what the ticks have found

    async def unfollow(self, sender: Any, *revocation: Any, signal: Any, **kwargs: Any) -> None:
        """Stop following revoked partitions: another worker moves them on."""
        gone = [(tp.topic, tp.partition) for revoked in revocation for tp in revoked]
        self.continuity.forget(gone)
        self.store.forget_cached()  # a revoked partition may come back changed by another worker
        self.books.forget(gone)
        self.starving.forget(gone)
        self.awaiting_committed.difference_update(gone)
        self.uncommitted.difference_update(gone)

    async def expect_committed(self) -> None:
        """Follow the assigned partitions from the group's committed offsets, if the broker answers.

        Until it does, a partition is followed from the first offset that reaches the handler:
        a hole before that one goes unnoticed until a restart (faust does not commit past it).
        """
        if not self.awaiting_committed:
            return
        wanted = sorted(self.awaiting_committed)
        doing = "reading the group's committed offsets"
        settings = self.settings
        committed = await self.kafka.attempt(doing, committed_offsets, settings.bootstrap, settings.app_id, wanted)
        if committed is None:
            return
        self.awaiting_committed.difference_update(wanted)
        now = time.monotonic()
        for partition, offset in committed.items():
            if offset is not None:
                self.continuity.expect(partition, offset, now)
                self.books.start(partition, offset)  # done below it, by this worker or another
            else:
                self.uncommitted.add(partition)

    async def commit_where_partitions_start(self) -> None:
        """Commit the start of each assigned input partition the group has committed nothing on.

        Kafka's consumer-group view then counts its whole backlog as lag from the moment it is
        assigned, not "-" until its first batch completes (``streams/starting_offsets.py``).
        """
        if not self.uncommitted or self.kafka.away:  # during an outage aiokafka's commit would wait for the broker
            return
        wanted = sorted(self.uncommitted)
        starts = await self.kafka.attempt("reading where partitions start", start_offsets, self.settings.bootstrap, wanted)
        if starts is None:
            return
        for partition, offset in starts.items():
            self.books.start(partition, offset)  # where auto.offset.reset=earliest began
        try:
            await commit_starting_offsets(self.app.consumer, {TP(*partition): offset for partition, offset in starts.items()})
        except (CommitFailedError, IllegalStateError):
            return  # the group rebalanced meanwhile: the next assignment says which partitions are still ours
        except Exception as exc:  # noqa: BLE001 -- Outage decides: wait out a transient error, exit on any other
            self.kafka.failed(exc, "committing where partitions start")
            return
        self.uncommitted.difference_update(wanted)  # committed now, or by faust since

    async def retry_committing_where_partitions_start(self) -> None:
        """What ``follow`` could not commit of where its partitions start (the broker away, a rebalance), again."""
        await self.commit_where_partitions_start()

    # -- retention ticks --

    def filed(self, subjects: Iterable[tuple[str, int | None]]) -> Iterator[SubjectState]:
        """The states of ``subjects`` in partitions this worker still owns; while one is handed out, what the tick
        writes of it is filed under its partition."""
        store = self.store
        assigned = store.assigned_partitions()
        for subject_id, partition in subjects:
            if partition is not None and partition not in assigned:
                continue  # revoked since it was listed: its new owner ticks it
            state = store.get_quietly(subject_id)
            if state is not None:
                store.file_under(partition)
                yield state
        store.current = None

    async def chunks_under_lock(self, subjects: Iterator[tuple[str, int | None]]) -> AsyncIterator[list[tuple[str, int | None]]]:
        """``subjects`` in chunks of ``TICK_CHUNK``, each handed out under the batch lock: batches run between them."""
        while True:
            async with self.batch_lock:
                chunk = list(islice(subjects, TICK_CHUNK))
                if not chunk:
                    return
                yield chunk
            await asyncio.sleep(0)  # let a batch in

    async def latest_event_time(self) -> datetime | None:
        """The latest event time the states of this worker know, read a chunk at a time."""
        latest: datetime | None = None
        async for chunk in self.chunks_under_lock(self.store.held_subjects()):
            for subject_id, _ in chunk:
                state = self.store.get_quietly(subject_id)
                if state is not None and state.latest_event_at is not None:
                    latest = state.latest_event_at if latest is None else max(latest, state.latest_event_at)
        return latest

    async def retention(self) -> None:
        """Retention actions due at this worker's event-time watermark [2.3], and the holdings records it owes.

        Most ticks read only the subjects events changed since the last one; a sweep reads
        them all when the agenda says an action may have fallen due (``RetentionAgenda``),
        a chunk at a time so that batches go on between chunks. Its records go through steps 3 to 5.
        """
        app, store, agenda = self.app, self.store, self.agenda
        if app.rebalancing:
            return  # faust is still recovering the assigned partitions' states: the sweep waits for all of them
        if self.watermark is None:
            # A worker restarted on states whose last events were all processed before it
            # came still owes their ticks (a predecessor killed before its next tick issued no
            # holdings on them): its clock starts at the latest event those states know.
            latest = await self.latest_event_time()
            if self.watermark is None:
                self.watermark = latest
            if self.watermark is None:
                return
        clock = self.watermark
        rebalances = app.rebalancing_count
        sweep = agenda.sweep_due(clock, time.monotonic())
        touched = store.take_touched()  # a sweep visits these with every other subject
        subjects: Iterator[tuple[str, int | None]] = store.held_subjects() if sweep else iter(touched)
        next_due: datetime | None = None
        read = emitted = 0
        async for chunk in self.chunks_under_lock(subjects):
            tick = self.processor.retention_tick(clock, self.filed(chunk))
            for out_topic, out_record in tick.changes.records:
                self.write_output(out_topic, out_record["subject_id"], out_record)
            await self.persist()  # the actions emitted first; then the states that remember them, under their partitions
            read, emitted = read + len(chunk), emitted + len(tick.changes)
            next_due = earliest(next_due, tick.next_due)
        if sweep:
            agenda.swept(next_due, time.monotonic())
            if app.rebalancing_count != rebalances:
                agenda.reassigned()  # partitions were assigned during the sweep: the next tick sweeps them too
            log.info("retention sweep at %s: read %d subjects, emitted %d records", clock.isoformat(), read, emitted)
        else:
            agenda.ticked(next_due)


def build_app(settings: WorkerSettings, health: Health | None = None, metrics: WorkerMetrics | None = None) -> faust.App:
    """The faust app with one agent per subject-keyed input topic (a ``Worker``'s); reporting to ``health`` and
    ``metrics`` when given."""
    return Worker(settings, health, metrics).app


class BoundedStopWorker(faust.Worker):
    """faust's worker, whose stop never takes longer than ``STOP_WITHIN`` seconds.

    With the broker away, aiokafka's fetcher sleeps through its retries while faust waits
    for it to close, and a SIGTERM never ended the worker. Past the bound the process
    exits at once: what it had not committed is redelivered to the next worker, and every
    effect is idempotent, so nothing is lost [DESIGN: processes never hang].
    """

    async def on_stop(self) -> None:
        """Start the bound, then stop as faust does."""
        timer = threading.Timer(STOP_WITHIN, _abandon_stop)
        timer.daemon = True
        timer.start()
        await super().on_stop()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Configure the root logger as faust does, then hold back the Kafka clients' repeated lines [quiet logs]."""
        super().on_setup_root_logger(logger, level)
        quiet_client_logs(logger)


def _abandon_stop() -> None:
    abandon_stop(f"stop not finished in {STOP_WITHIN:.0f} s (broker away?)")


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """faust's worker for ``app``, logging at ``loglevel`` and without its terminal spinner.

    The spinner turns with every log record, so faust sets the root logger to DEBUG
    when it has one: every debug line of aiokafka and faust (one per message sent)
    then builds a record that no handler prints, CPU spent for nothing (bench/RESULTS.md §4.2).
    A worker in a pipeline has nobody watching it spin.
    """
    worker = BoundedStopWorker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


def run_worker(
    settings: WorkerSettings, loglevel: str = "info", health: Health | None = None, metrics: WorkerMetrics | None = None
) -> None:
    """Start a worker and block until it is stopped (SIGTERM/SIGINT), telling ``health`` and ``metrics`` how it goes
    when given."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    limit_malloc_arenas()  # before faust, librdkafka and RocksDB start their threads
    event_loop = use_uvloop()  # before faust makes its loop
    print(
        f"consentflow worker {settings.app_id}: event loop {event_loop}, faust drain bypass "
        f"{'on' if settings.drain_bypass else 'off'}, batches of up to {settings.batch_size}",
        file=sys.stderr,
        flush=True,
    )
    worker = faust_worker(build_app(settings, health, metrics), loglevel)
    if health is not None:
        keep_beating(worker.loop, health)
    worker.execute_from_commandline()


__all__ = ["BATCH_SIZE", "Worker", "WorkerSettings", "build_app", "faust_worker", "run_worker"]
