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
rebalance bugs): a batch's input offsets are acknowledged only after its
outputs are in Kafka, and every effect is idempotent (seen event ids, outputs
with deterministic ids), so a redelivered batch changes nothing downstream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, cast

import faust
from aiokafka.errors import CommitFailedError, IllegalStateError
from faust.events import Event
from faust.types import TP
from faust.types.tuples import Message

from consentflow.contracts.codec import Codec, make_codec
from consentflow.contracts.dead_letters import dead_letter
from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import Gate
from consentflow.contracts.topics import DEAD_LETTER, INPUT_TOPICS, OUTPUT_TOPICS, Topic
from consentflow.core.processor import Processor
from consentflow.core.retention import earliest
from consentflow.core.state import SubjectState
from consentflow.kafka.group_membership import SESSION_TIMEOUT, heartbeat_interval
from consentflow.kafka.lag import committed_offsets, end_offsets, start_offsets
from consentflow.kafka.producer import EventProducer
from consentflow.kafka.quiet_logs import quiet_client_logs
from consentflow.runtime.bounded_stop import EXIT_STOP_ABANDONED, STOP_WITHIN, abandon_stop  # noqa: F401 -- the exit status, as before
from consentflow.runtime.health import Health
from consentflow.runtime.malloc_arenas import limit_malloc_arenas
from consentflow.runtime.outage import Outage
from consentflow.streams.faust_commits import commit_processed_offsets
from consentflow.streams.processed_offsets import ProcessedOffsets
from consentflow.streams.registry_feed import RegistryFeed
from consentflow.streams.retention_agenda import RetentionAgenda
from consentflow.streams.skipped_events import Partition, PartitionContinuity, read_offsets
from consentflow.streams.starting_offsets import commit_starting_offsets
from consentflow.streams.starved_partitions import StarvedPartitions
from consentflow.streams.subject_table import STATE_STORE_OPTIONS, PickledState, TableStore
from consentflow.streams.worker_health import keep_beating, report_health

log = logging.getLogger(__name__)

# A partition this long without an event, though its end is further on, has lost one to faust.
QUIET_FOR = 15.0
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
    batch_size: int = 2_000
    batch_within: float = 0.5
    registry_url: str | None = None
    retention_interval: float = 30.0
    retention_sweep_interval: float = 3600.0  # seconds between ticks that read every subject (RetentionAgenda)
    session_timeout: float = SESSION_TIMEOUT  # a killed worker's partitions move after this (group_membership)


def build_app(settings: WorkerSettings, health: Health | None = None) -> faust.App:
    """The faust app with one agent per subject-keyed input topic; reporting to ``health`` when given."""
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
        # A killed worker's partitions move when its session expires; a stopped one leaves the group (LeaveGroup,
        # a dynamic member: no consumer_group_instance_id, see consentflow.kafka.group_membership).
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=heartbeat_interval(settings.session_timeout),
        producer_acks=-1,
        broker_commit_every=settings.batch_size,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=5_000,  # faust's per-message path is the limit: hand it big fetches
        stream_buffer_maxsize=20_000,
    )
    codec: Codec = make_codec(settings.registry_url, prefix=settings.prefix)
    gate = Gate()  # the edge checks and event-time bounds every way in applies [DESIGN: one gate]
    table = app.Table(
        "subjects",
        default=None,
        partitions=settings.partitions,
        key_type=str,
        value_type=PickledState,
        options=STATE_STORE_OPTIONS,
    )
    input_topics = {t.name(settings.prefix): t for t in INPUT_TOPICS if not t.compacted}
    agenda = RetentionAgenda(settings.retention_sweep_interval)
    feed = RegistryFeed(settings.bootstrap, settings.prefix, codec)
    output_names = {t.short_name: t.name(settings.prefix) for t in OUTPUT_TOPICS}
    watermark: list[datetime | None] = [None]
    # The agents share subject states: a batch of one agent must not write to
    # the changelog a state another agent changed but whose outputs are not
    # yet acknowledged (a crash would then remember those events as seen and
    # lose their outputs). One batch at a time owns the processor.
    batch_lock = asyncio.Lock()

    # Outputs and the subject table's changelog go through librdkafka, which batches in C; faust's
    # aiokafka producer spent tens of microseconds per message in Python.
    producer = EventProducer(
        settings.bootstrap, codec=codec, prefix=settings.prefix, config={"linger.ms": 5}, record_offsets=True
    )
    store = TableStore(table, producer, source_topic=next(iter(input_topics)))  # every input topic is co-partitioned with it
    processor = Processor(store=store, registry=feed.registry)

    def produce(topic_short: str, key: str, record: dict[str, Any]) -> None:
        producer.send_bytes(output_names[topic_short], key.encode(), codec.encode(topic_short, record, trusted=True))

    async def acknowledged() -> None:
        """Every output and changelog write sent so far is in Kafka (``DeliveryError`` if the broker refused any)."""
        await asyncio.to_thread(producer.flush)

    continuity = PartitionContinuity()
    # Calls to the broker outside faust's loop (committed offsets, partition ends, read-backs) wait out an outage
    # together: one line when it starts, one when it ends, and no call until the back-off has passed.
    kafka = Outage(f"Kafka at {settings.bootstrap}")
    starving = StarvedPartitions()  # assigned partitions faust stopped handing events of
    books = ProcessedOffsets()  # what faust's consumer commits: offsets processed, outputs in Kafka (faust_commits)
    commit_processed_offsets(app, books)
    awaiting_committed: set[Partition] = set()  # assigned input partitions whose committed offset is not read yet
    uncommitted: set[Partition] = set()  # assigned input partitions on which the group has committed nothing yet
    background: set[asyncio.Future[None]] = set()  # tasks started by a callback, kept from the garbage collector

    async def persist() -> None:
        """Outputs first, acknowledged by the broker; then the states changed since the last call, in the changelog."""
        store.current = None
        # Order matters for at-least-once: outputs first (acknowledged by the
        # broker), then the state that remembers these events as seen, then
        # (when take_events moves on) the input offsets. A crash before the
        # state is written redelivers the events and re-emits the same outputs,
        # which the sink absorbs; writing the state first could remember an
        # event whose outputs never reached Kafka, and lose them.
        await acknowledged()
        # The states must be in the changelog before take_events acknowledges
        # the batch, or a crash could commit offsets ahead of them.
        if store.write_batch():
            await acknowledged()
            store.changelog_acknowledged()

    async def handle_one(event: Any, topic: Topic) -> None:
        message = event.message
        store.current = event
        source = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        try:
            # The message's timestamp is the event's arrival (the collector's receive time, the producer's send); a
            # tombstone holds no event: "null value", a dead letter as in a replay.
            record = gate.admit(
                codec,
                topic,
                message.value,
                round(message.timestamp * 1000),
                name=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
            )
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
        """faust events for input offsets faust did not hand over, read from the broker (faust-streaming #216)."""
        try:
            messages = await asyncio.to_thread(read_offsets, settings.bootstrap, partition, offsets)
        except RuntimeError:
            # faust does not commit past the hole, so a restart still delivers these events.
            log.exception("could not read back %s[%d] offsets %d..%d", *partition, offsets.start, offsets.stop - 1)
            return []
        except Exception as exc:  # noqa: BLE001 -- Outage decides: wait out a transient error, exit on any other
            kafka.failed(exc, f"reading back {partition[0]}[{partition[1]}]")
            return []  # as above: a hole faust does not commit past
        kafka.succeeded()
        events = []
        for m in messages:
            timestamp_type, timestamp = m.timestamp()
            message = Message(
                m.topic(), m.partition(), m.offset(), timestamp / 1000, timestamp_type, m.headers(), m.key(), m.value(), None
            )
            events.append(Event(app, m.key(), m.value(), m.headers(), message))
        return events

    async def handle(events: list[Any], topic: Topic) -> None:
        """Process a batch; events faust skipped before any of them are read back and processed first. Once all
        are persisted, their offsets count as processed: faust's next commit moves past them."""
        feed.poll_new()  # registry records published since the last batch [processor: registry first]
        done: dict[Partition, list[int]] = {}
        for event in events:
            message = event.message
            partition = (message.topic, message.partition)
            skipped = continuity.observe(partition, message.offset, time.monotonic())
            if skipped:
                log.warning("faust skipped %s[%d] offsets %d..%d; reading them back", *partition, skipped.start, skipped.stop - 1)
                for lost in await read_back(partition, skipped):
                    await handle_one(lost, topic)
                    done.setdefault(partition, []).append(lost.message.offset)
            await handle_one(event, topic)
            done.setdefault(partition, []).append(message.offset)
        await persist()
        for partition, offsets in done.items():
            books.processed(partition, offsets)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's handler type admits no async receiver
    async def follow(sender: Any, *assignment: Any, signal: Any, **kwargs: Any) -> None:
        """Expect each assigned input partition to resume at the group's committed offset."""
        mine = [(tp.topic, tp.partition) for assigned in assignment for tp in assigned if tp.topic in input_topics]
        books.assign(mine)
        starving.assign(mine, time.monotonic())
        awaiting_committed.update(mine)
        await expect_committed()  # during an outage, the next tick of read_back_quiet_partitions tries again
        if uncommitted:  # once the assignment completes, before faust's first commit; the 1 s timer retries
            starting = asyncio.ensure_future(commit_where_partitions_start())
            background.add(starting)
            starting.add_done_callback(background.discard)
        if mine:
            agenda.reassigned()  # their subjects' retention actions are not in what the ticks have found

    async def expect_committed() -> None:
        """Follow the assigned partitions from the group's committed offsets, if the broker answers.

        Until it does, a partition is followed from the first offset that reaches the handler:
        a hole before that one goes unnoticed until a restart (faust does not commit past it).
        """
        if not awaiting_committed:
            return
        wanted = sorted(awaiting_committed)
        doing = "reading the group's committed offsets"
        committed = await kafka.attempt(doing, committed_offsets, settings.bootstrap, settings.app_id, wanted)
        if committed is None:
            return
        awaiting_committed.difference_update(wanted)
        now = time.monotonic()
        for partition, offset in committed.items():
            if offset is not None:
                continuity.expect(partition, offset, now)
                books.start(partition, offset)  # done below it, by this worker or another
            else:
                uncommitted.add(partition)

    async def commit_where_partitions_start() -> None:
        """Commit the start of each assigned input partition the group has committed nothing on.

        Kafka's consumer-group view then counts its whole backlog as lag from the moment it is
        assigned, not "-" until its first batch completes (``streams/starting_offsets.py``).
        """
        if not uncommitted or kafka.away:  # during an outage aiokafka's commit would wait for the broker
            return
        wanted = sorted(uncommitted)
        starts = await kafka.attempt("reading where partitions start", start_offsets, settings.bootstrap, wanted)
        if starts is None:
            return
        for partition, offset in starts.items():
            books.start(partition, offset)  # where auto.offset.reset=earliest began
        try:
            await commit_starting_offsets(app.consumer, {TP(*partition): offset for partition, offset in starts.items()})
        except (CommitFailedError, IllegalStateError):
            return  # the group rebalanced meanwhile: the next assignment says which partitions are still ours
        except Exception as exc:  # noqa: BLE001 -- Outage decides: wait out a transient error, exit on any other
            kafka.failed(exc, "committing where partitions start")
            return
        uncommitted.difference_update(wanted)  # committed now, or by faust since

    @app.timer(interval=1.0)
    async def retry_committing_where_partitions_start() -> None:
        """What ``follow`` could not commit of where its partitions start (the broker away, a rebalance), again."""
        await commit_where_partitions_start()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def unfollow(sender: Any, *revocation: Any, signal: Any, **kwargs: Any) -> None:
        """Stop following revoked partitions: another worker moves them on."""
        gone = [(tp.topic, tp.partition) for revoked in revocation for tp in revoked]
        continuity.forget(gone)
        store.forget_cached()  # a revoked partition may come back changed by another worker
        books.forget(gone)
        starving.forget(gone)
        awaiting_committed.difference_update(gone)
        uncommitted.difference_update(gone)

    @app.timer(interval=5.0)
    async def read_back_quiet_partitions() -> None:
        """A skipped event at the end of a partition has no later offset to reveal it: compare with the end.

        While the broker is away, a tick does nothing (``Outage``): the next one after the back-off tries again.
        """
        await expect_committed()
        followed = continuity.partitions()
        if not followed:
            return
        topics = {topic for topic, _ in followed}
        ends = await kafka.attempt("reading the ends of followed partitions", end_offsets, settings.bootstrap, topics)
        if ends is None:
            return
        async with batch_lock:
            handed_over = cast(Any, app.consumer)._read_offset  # faust's: per partition, the last offset its fetcher handed over
            handed = {partition: handed_over.get(TP(*partition)) for partition in followed}
            behind = continuity.behind(ends, handed, time.monotonic(), quiet_for=QUIET_FOR)
            holes = books.holes()  # skipped events a batch could not read back: they hold the commit point
            for partition, offsets in [*behind.items(), *holes.items()]:
                log.warning("faust skipped %s[%d] offsets %d..%d; reading them back", *partition, offsets.start, offsets.stop - 1)
                events = await read_back(partition, offsets)
                if events:
                    await handle(events, input_topics[partition[0]])
            now = time.monotonic()
            starving.observe({partition: handed_over.get(TP(*partition)) for partition in ends}, now)
            if app.rebalancing:
                return  # faust's flow is stopped on purpose
            starved = starving.starved(ends, {partition: books.commit_point(partition) for partition in ends}, now)
            active = cast(Any, app.consumer)._active_partitions or set()  # faust's: the partitions its fetcher serves
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
                events = await read_back(partition, offsets)
                if events:
                    await handle(events, input_topics[partition[0]])

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

    def filed(subjects: Iterable[tuple[str, int | None]]) -> Iterator[SubjectState]:
        """The states of ``subjects`` in partitions this worker still owns; while one is handed out, what the tick
        writes of it is filed under its partition."""
        assigned = store.assigned_partitions()
        for subject_id, partition in subjects:
            if partition is not None and partition not in assigned:
                continue  # revoked since it was listed: its new owner ticks it
            state = store.get_quietly(subject_id)
            if state is not None:
                store.file_under(partition)
                yield state
        store.current = None

    async def chunks_under_lock(subjects: Iterator[tuple[str, int | None]]) -> AsyncIterator[list[tuple[str, int | None]]]:
        """``subjects`` in chunks of ``TICK_CHUNK``, each handed out under the batch lock: batches run between them."""
        while True:
            async with batch_lock:
                chunk = list(islice(subjects, TICK_CHUNK))
                if not chunk:
                    return
                yield chunk
            await asyncio.sleep(0)  # let a batch in

    async def latest_event_time() -> datetime | None:
        """The latest event time the states of this worker know, read a chunk at a time."""
        latest: datetime | None = None
        async for chunk in chunks_under_lock(store.held_subjects()):
            for subject_id, _ in chunk:
                state = store.get_quietly(subject_id)
                if state is not None and state.latest_event_at is not None:
                    latest = state.latest_event_at if latest is None else max(latest, state.latest_event_at)
        return latest

    @app.timer(interval=settings.retention_interval)
    async def retention() -> None:
        """Retention actions due at this worker's event-time watermark [2.3], and the holdings records it owes.

        Most ticks read only the subjects events changed since the last one; a sweep reads
        them all when the agenda says an action may have fallen due (``RetentionAgenda``),
        a chunk at a time so that batches go on between chunks.
        """
        if app.rebalancing:
            return  # faust is still recovering the assigned partitions' states: the sweep waits for all of them
        if watermark[0] is None:
            # A worker restarted on states whose last events were all processed before it
            # came still owes their ticks (a predecessor killed before its next tick issued no
            # holdings on them): its clock starts at the latest event those states know.
            latest = await latest_event_time()
            if watermark[0] is None:
                watermark[0] = latest
            if watermark[0] is None:
                return
        clock = watermark[0]
        rebalances = app.rebalancing_count
        sweep = agenda.sweep_due(clock, time.monotonic())
        touched = store.take_touched()  # a sweep visits these with every other subject
        subjects: Iterator[tuple[str, int | None]] = store.held_subjects() if sweep else iter(touched)
        next_due: datetime | None = None
        read = emitted = 0
        async for chunk in chunks_under_lock(subjects):
            tick = processor.retention_tick(clock, filed(chunk))
            for out_topic, out_record in tick.changes.records:
                produce(out_topic, out_record["subject_id"], out_record)
            await persist()  # the actions emitted first; then the states that remember them, under their partitions
            read, emitted = read + len(chunk), emitted + len(tick.changes)
            next_due = earliest(next_due, tick.next_due)
        if sweep:
            agenda.swept(next_due, time.monotonic())
            if app.rebalancing_count != rebalances:
                agenda.reassigned()  # partitions were assigned during the sweep: the next tick sweeps them too
            log.info("retention sweep at %s: read %d subjects, emitted %d records", clock.isoformat(), read, emitted)
        else:
            agenda.ticked(next_due)

    app.conf.consentflow_processor = processor  # for introspection in tests
    if health is not None:
        report_health(app, health, kafka, settings.bootstrap)
    return app


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
    then builds a record that no handler prints, about 5 % of a worker's CPU in a
    py-spy profile. A worker in a pipeline has nobody watching it spin.
    """
    worker = BoundedStopWorker(app, loglevel=loglevel, quiet=True)
    worker.spinner = None
    return worker


def run_worker(settings: WorkerSettings, loglevel: str = "info", health: Health | None = None) -> None:
    """Start a worker and block until it is stopped (SIGTERM/SIGINT), telling ``health`` how it goes when given."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    limit_malloc_arenas()  # before faust, librdkafka and RocksDB start their threads
    worker = faust_worker(build_app(settings, health), loglevel)
    if health is not None:
        keep_beating(worker.loop, health)
    worker.execute_from_commandline()


__all__ = ["WorkerSettings", "build_app", "faust_worker", "run_worker"]
