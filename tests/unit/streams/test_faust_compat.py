"""Each private faust name the worker uses (``streams/faust_compat.py``) against the installed faust-streaming.

One test per access: the name exists and means what the worker takes it for, shown through faust's own code
(its fetcher loop, its commit choice, its commit guard, its RocksDB store) wherever that runs without a broker.
Run these first when raising faust's pin in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.exceptions import ConsumerNotStarted
from faust.streams import current_event
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.consumer import Fetcher
from faust.types import TP
from faust.types.tuples import Message

from consentflow.streams import faust_compat
from consentflow.streams.faust_compat import CommitChoosingConsumer
from consentflow.streams.subject_table import PartitionWrite
from tests.support.paths import REPO

TOPIC = "input"
PARTITION = TP(TOPIC, 0)


def message(offset: int, partition: int = 0) -> Message:
    return Message(TOPIC, partition, offset, 0.0, 0, None, b"subject", b"event", None)


def offline_app(name: str, **options: Any) -> faust.App:
    """A faust app whose consumer can be built but never connects (nothing listens on port 1)."""
    return faust.App(name, broker="kafka://127.0.0.1:1", store=options.pop("store", "memory://"), **options)


def test_handed_over_offsets_are_the_last_offset_faust_s_fetcher_handed_to_the_streams() -> None:
    async def scenario() -> tuple[dict[TP, int | None], list[int]]:
        app = offline_app("compat-read-offset")
        consumer: Any = app.consumer
        handed: list[int] = []
        one_round = asyncio.Event()

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
            if one_round.is_set():
                await asyncio.sleep(0.01)  # nothing more to fetch
                return
            for offset in (5, 6, 7):
                yield PARTITION, message(offset)
            one_round.set()

        async def callback(m: Message) -> None:
            handed.append(m.offset)

        consumer.getmany, consumer.callback = getmany, callback
        assert faust_compat.handed_over_offsets(app).get(PARTITION) is None
        fetcher = Fetcher(app)  # faust's own fetcher service, running its fetcher loop
        await fetcher.start()
        await asyncio.wait_for(one_round.wait(), 5)
        await fetcher.stop()
        return dict(faust_compat.handed_over_offsets(app)), handed

    offsets, handed = asyncio.run(scenario())
    assert handed == [5, 6, 7]
    assert offsets[PARTITION] == 7


def test_fetched_partitions_are_those_faust_resumed_and_did_not_pause() -> None:
    app = offline_app("compat-active")
    other = TP(TOPIC, 1)
    assert faust_compat.fetched_partitions(app) == set()
    app.consumer.resume_partitions([PARTITION, other])
    app.consumer.pause_partitions([other])
    assert faust_compat.fetched_partitions(app) == {PARTITION}


class Chosen(CommitChoosingConsumer):
    """Commits offset 40 on partition 0 of ``input``."""

    def partitions_to_commit(self) -> Iterable[tuple[str, int]]:
        return [(TOPIC, 0)]

    def offset_to_commit(self, topic: str, partition: int) -> int | None:
        return 40


def test_faust_s_commit_choice_asks_the_hooks_and_its_acknowledged_lists_are_emptied() -> None:
    async def scenario() -> tuple[dict[TP, int], list[int], list[int]]:
        app = offline_app("compat-commit-choice")
        app.transport.Consumer = Chosen  # type: ignore[attr-defined]  # as faust_commits does
        consumer: Any = app.consumer
        assert isinstance(consumer, Chosen)
        app.topics.acking_topics.add(TOPIC)  # as faust does for a topic an agent reads
        for offset in (10, 11, 12):
            consumer.ack(message(offset))
        before = faust_compat.acknowledged_offsets(consumer, PARTITION)
        chosen = faust_compat.offsets_to_commit(consumer)
        return chosen, before, faust_compat.acknowledged_offsets(consumer, PARTITION)

    chosen, before, after = asyncio.run(scenario())
    assert before == [10, 11, 12]
    assert chosen == {PARTITION: 40}
    assert after == []


def test_forget_acknowledged_empties_faust_s_lists_of_a_partition() -> None:
    app = offline_app("compat-forget")
    consumer: Any = app.consumer
    app.topics.acking_topics.add(TOPIC)
    consumer.ack(message(3))
    faust_compat.file_gap(consumer, PARTITION, 4, 6)
    faust_compat.forget_acknowledged(consumer, PARTITION)
    assert faust_compat.acknowledged_offsets(consumer, PARTITION) == []
    assert faust_compat.gap_offsets(consumer, PARTITION) == []
    assert consumer.ack(message(3)), "faust's acknowledged index no longer holds 3"
    consumer.ack(message(6))
    assert faust_compat.offsets_to_commit(consumer) == {PARTITION: 4}, "no gap joins 3 to 6 (the gap kept: 7)"


def test_faust_fills_its_acknowledged_list_with_the_gap_it_counts_as_done() -> None:
    app = offline_app("compat-gap")
    consumer: Any = app.consumer
    app.topics.acking_topics.add(TOPIC)
    faust_compat.file_acknowledged(consumer, PARTITION, [1, 5])
    assert not consumer.ack(message(5)), "faust's own ack finds 5 in the index file_acknowledged filled"
    faust_compat.file_gap(consumer, PARTITION, 2, 5)
    assert faust_compat.gap_offsets(consumer, PARTITION) == [(2, 5)]
    assert faust_compat.offsets_to_commit(consumer) == {PARTITION: 6}  # 1, the gap 2..4, then 5: one run
    assert faust_compat.gap_offsets(consumer, PARTITION) == []  # chopped off as faust moved it into the list


def test_faust_commits_nothing_at_or_below_the_committed_offset_it_holds() -> None:
    app = offline_app("compat-committed-filed")
    consumer: Any = app.consumer
    app.topics.acking_topics.add(TOPIC)
    faust_compat.file_committed_offset(consumer, PARTITION, 20)
    assert faust_compat.committed_offset(consumer, PARTITION) == 20
    assert not consumer.ack(message(15)), "faust's ack drops an offset the group has committed past"
    assert consumer.ack(message(22))
    assert faust_compat.offsets_to_commit(consumer) == {}  # the group reads on from 20: faust waits for 21
    assert consumer.ack(message(21))
    assert faust_compat.offsets_to_commit(consumer) == {PARTITION: 23}


def test_faust_s_commit_waits_while_the_commit_guard_is_held() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        consumer: Any = offline_app("compat-guard").consumer
        async with faust_compat.commit_guard(consumer):
            faust_waits = asyncio.ensure_future(consumer.maybe_wait_for_commit_to_finish())  # what faust's commit does first
            await asyncio.sleep(0.05)
            waited = not faust_waits.done()
        answered = await asyncio.wait_for(faust_waits, 5)
        released = not await asyncio.wait_for(consumer.maybe_wait_for_commit_to_finish(), 5)  # nothing in flight now
        return waited, answered, released

    waited, waited_for_ours, released = asyncio.run(scenario())
    assert waited and waited_for_ours and released


def test_committed_offset_is_what_faust_read_as_the_group_s() -> None:
    async def scenario() -> tuple[int | None, int | None]:
        consumer: Any = offline_app("compat-committed").consumer
        before = faust_compat.committed_offset(consumer, PARTITION)

        async def seek_to_committed() -> dict[TP, int]:
            return {PARTITION: 17}  # what the broker would answer for the group

        consumer.seek_to_committed = seek_to_committed
        await consumer.perform_seek()  # faust's own reading of the group's offsets
        return before, faust_compat.committed_offset(consumer, PARTITION)

    assert asyncio.run(scenario()) == (None, 17)


def test_the_consumer_thread_hands_out_the_aiokafka_consumer_once_started() -> None:
    consumer: Any = offline_app("compat-thread").consumer
    with pytest.raises(ConsumerNotStarted):  # the aiokafka consumer exists only once the worker started it
        asyncio.run(faust_compat.commit_from_consumer_thread(consumer, {PARTITION: 1}))


def test_the_rocksdb_store_s_partition_databases_keys_and_current_event(tmp_path: Path) -> None:
    app = offline_app("compat-rocksdb", store="rocksdb://", datadir=str(tmp_path))
    table = app.Table("subjects", default=None, partitions=2, key_type=str, value_type=bytes)
    data: Any = table.data
    assert faust_compat.partition_databases(data) == {}
    key = app.serializers.dumps_key(str, "subject-1", serializer=table.key_serializer)
    event = PartitionWrite(TOPIC, 1)  # what a retention tick's writes are filed under
    with faust_compat.as_current_event(event):
        assert current_event() is event  # what faust's store reads the partition from
        faust_compat.store_serialized(data, key, b"state")
    assert current_event() is None
    databases = faust_compat.partition_databases(data)
    assert databases is not None and set(databases) == {1}
    assert data[key] == b"state"
    assert [faust_compat.decode_key(data, k) for k in faust_compat.visible_keys(data, databases[1])] == ["subject-1"]
    other = app.serializers.dumps_key(str, "subject-2", serializer=table.key_serializer)
    database = faust_compat.partition_database(data, 0)  # opened on demand
    database.put(other, b"state")
    assert set(faust_compat.partition_databases(data) or {}) == {0, 1}
    faust_compat.file_key_under(data, other, 1)
    with pytest.raises(KeyError):  # faust's read looks only where the index says
        data[other]
    faust_compat.file_key_under(data, other, 0)
    assert data[other] == b"state"


def test_the_memory_store_has_no_partition_databases() -> None:
    table = offline_app("compat-memory").Table("subjects", default=None, partitions=2, key_type=str)
    assert faust_compat.partition_databases(table.data) is None


# Run alone in an interpreter: starve_partitions changes faust's consumer class for the whole process.
FETCHING = """
import sys
import faust
from faust.types import TP
from consentflow.streams.faust_compat import fetched_partitions, starve_partitions

app = faust.App("compat-starve", broker="kafka://127.0.0.1:1", store="memory://")
consumer = app.consumer
consumer.resume_partitions([TP("input", 0), TP("input", 1)])
if sys.argv[1] == "starve":
    starve_partitions({("input", 0), ("input", 1)})

async def fetched():
    async for _ in consumer.getmany(timeout=0.1):
        return "records"
    return "nothing to fetch"

try:
    print(sorted(tp.partition for tp in fetched_partitions(app)), app.loop.run_until_complete(fetched()))
except Exception as exc:
    print(sorted(tp.partition for tp in fetched_partitions(app)), type(exc).__name__)
"""


@pytest.mark.parametrize(
    ("starving", "outcome"),
    [("starve", "[0, 1] nothing to fetch"), ("serve", "[0, 1] ConsumerNotStarted")],  # served: a fetch goes to the broker
)
def test_starved_partitions_are_kept_out_of_faust_s_fetch_and_nothing_else(starving: str, outcome: str) -> None:
    done = subprocess.run([sys.executable, "-c", FETCHING, starving], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == outcome


# -- the drain loop's bypass (issue 25) --


def test_faust_s_drain_loop_is_the_source_the_bypass_copies() -> None:
    """``CommitChoosingConsumer._drain_messages`` copies faust's with one change: a faust whose loop differs must be
    read again before the copy runs in its place (the pin fails loudly, not a worker silently slower or wrong)."""
    source = inspect.getsource(FaustConsumer._drain_messages)  # noqa: SLF001 -- the pinned method
    assert hashlib.sha256(source.encode()).hexdigest() == faust_compat.DRAIN_SOURCE_SHA256
    assert "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()" in source


def _fetched_once(offsets: Iterable[int], done: asyncio.Event) -> Any:
    """A ``getmany`` for faust's fetcher: messages of ``offsets`` on PARTITION the first time (then ``done`` is set),
    nothing after."""

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        if done.is_set():
            await asyncio.sleep(0.01)
            return
        for offset in offsets:
            yield PARTITION, message(offset)
        done.set()

    return getmany


def test_the_conductor_s_message_callback_is_the_source_the_bypass_skips() -> None:
    """With the bypass, the drain loop calls the partition's handler itself instead of the conductor's ``on_message``,
    which does no more than find it under a lock: a faust whose ``on_message`` does more must be read again."""
    from faust.transport.conductor import Conductor

    source = inspect.getsource(Conductor._compile_message_handler)  # noqa: SLF001 -- the pinned method
    assert hashlib.sha256(source.encode()).hexdigest() == faust_compat.ON_MESSAGE_SOURCE_SHA256
    assert "async with self._tp_to_callback_lock:\n                    callback = get_callback_for_tp(message.tp)" in source


def test_the_bypass_calls_the_partition_s_handler_without_the_conductor_s_lock_and_faust_s_path_through_both() -> None:
    class CountedLock(asyncio.Lock):
        taken = 0

        async def acquire(self) -> bool:
            CountedLock.taken += 1
            return await super().acquire()

    async def scenario(at_once: bool) -> tuple[list[int], int]:
        CountedLock.taken = 0
        app = offline_app(f"compat-handler-{at_once}")
        app.transport.Consumer = Chosen  # type: ignore[attr-defined]
        consumer: Any = app.consumer
        assert consumer.callback == app.topics.on_message  # what faust gives its consumer
        consumer.deliver_at_once = at_once
        app.topics._tp_to_callback_lock = CountedLock()  # noqa: SLF001 -- counted where the conductor takes it
        handled: list[int] = []
        one_round = asyncio.Event()

        async def handler(m: Message) -> None:
            handled.append(m.offset)

        app.topics._tp_to_callback[PARTITION] = handler  # noqa: SLF001 -- as the conductor registers a partition
        consumer.getmany = _fetched_once((5, 6, 7), one_round)
        app.flow_control.resume()
        consumer.resume_flow()
        fetcher = Fetcher(app)
        await fetcher.start()
        await asyncio.wait_for(one_round.wait(), 5)
        await fetcher.stop()
        return handled, CountedLock.taken

    assert asyncio.run(scenario(True)) == ([5, 6, 7], 0)
    assert asyncio.run(scenario(False)) == ([5, 6, 7], 3)  # the switch off: through on_message and its lock


def _drained(at_once: bool, *, stop_flow: bool = False) -> tuple[list[int], list[int], int, int | None]:
    """Three messages through faust's fetcher and our consumer's drain loop: those the callback finished, those it
    began, how many of faust's races (``wait_first``) were run, and the last offset read."""

    async def scenario() -> tuple[list[int], list[int], int, int | None]:
        app = offline_app(f"compat-drain-{at_once}-{stop_flow}")
        app.transport.Consumer = Chosen  # type: ignore[attr-defined]  # as faust_commits does
        consumer: Any = app.consumer
        consumer.deliver_at_once = at_once
        began: list[int] = []
        finished: list[int] = []
        one_round = asyncio.Event()
        never = asyncio.Event()
        races = 0
        faust_race = consumer.wait_first

        async def counted(*coros: Any, **kwargs: Any) -> Any:
            nonlocal races
            races += 1
            return await faust_race(*coros, **kwargs)

        async def callback(m: Message) -> None:
            began.append(m.offset)
            if stop_flow:
                await never.wait()  # a full queue would wait like this: only the flow's stop ends it
            finished.append(m.offset)

        consumer.getmany, consumer.callback, consumer.wait_first = _fetched_once((5, 6, 7), one_round), callback, counted
        app.flow_control.resume()  # as faust does once partitions are assigned
        consumer.resume_flow()
        if stop_flow:
            consumer.stop_flow()  # a rebalance under way
        fetcher = Fetcher(app)
        await fetcher.start()
        await asyncio.wait_for(one_round.wait(), 5)
        await fetcher.stop()
        return finished, began, races, faust_compat.handed_over_offsets(app).get(PARTITION)

    return asyncio.run(scenario())


def test_the_bypass_hands_each_message_over_in_order_without_faust_s_race() -> None:
    assert _drained(True) == ([5, 6, 7], [5, 6, 7], 0, 7)
    assert _drained(False) == ([5, 6, 7], [5, 6, 7], 3, 7)  # the switch off: faust's race for every message


@pytest.mark.parametrize("at_once", [True, False], ids=["bypass", "faust"])
def test_with_the_flow_stopped_faust_s_race_ends_a_waiting_callback_as_before(at_once: bool) -> None:
    """A rebalance stops the flow: a callback that would wait (a channel's queue full) is cancelled by the race, and
    the loop goes on, with the bypass as without (faust refetches from the committed offsets after the rebalance)."""
    finished, began, races, last = _drained(at_once, stop_flow=True)
    assert finished == [] and races == 3 and last == 7
    assert began in ([], [5, 6, 7])  # the race may cancel the callback before or after it starts


def test_the_bypass_is_taken_only_when_nothing_can_make_faust_s_callback_wait() -> None:
    async def scenario() -> list[bool]:
        app = offline_app("compat-ready")
        app.transport.Consumer = Chosen  # type: ignore[attr-defined]
        consumer: Any = app.consumer
        channel = app.topic(TOPIC)
        app.topics.add(channel)
        app.topics._topic_name_index[TOPIC].add(channel)  # noqa: SLF001 -- as the conductor indexes a subscribed topic
        ready = faust_compat._ReadyToDeliver(consumer)  # noqa: SLF001 -- the guard itself
        app.flow_control.resume()  # as faust does once partitions are assigned
        consumer.resume_flow()
        seen = [ready(TOPIC)]
        consumer.stop_flow()
        seen.append(ready(TOPIC))
        consumer.resume_flow()
        app.flow_control.suspend()
        seen.append(ready(TOPIC))
        app.flow_control.resume()
        async with app.topics._tp_to_callback_lock:  # noqa: SLF001 -- held as the conductor holds it
            seen.append(ready(TOPIC))
        queue = channel.queue
        while not queue.full():
            queue.put_nowait(None)
        seen.append(ready(TOPIC))
        seen.append(ready("other"))  # a topic no full channel reads
        return seen

    assert asyncio.run(scenario()) == [True, False, False, False, False, True]


def test_the_quiet_monitor_keeps_nothing_per_message_where_faust_s_counts_each() -> None:
    """The worker's faust runs no web views, the only readers of the Monitor's per-message statistics: the quiet one
    skips the four hooks faust calls for every message and event (11 % on faust's ceiling, RESULTS §28)."""
    from faust.sensors.monitor import Monitor

    counts = []
    for monitor in (Monitor(), faust_compat.QuietMonitor()):
        msg = message(5)
        monitor.on_message_in(PARTITION, 5, msg)
        state = monitor.on_stream_event_in(PARTITION, 5, _FakeStream(), None)  # type: ignore[arg-type]
        monitor.on_stream_event_out(PARTITION, 5, _FakeStream(), None, state)  # type: ignore[arg-type]
        monitor.on_message_out(PARTITION, 5, msg)
        counts.append((monitor.messages_received_total, monitor.events_total, len(monitor.events_runtime)))
    assert counts == [(1, 1, 1), (0, 0, 0)]


class _Owner:
    """A stream's task owner (the Monitor keeps it by weak reference)."""


class _FakeStream:
    """What the Monitor reads of a stream: its name and its task's owner."""

    task_owner = _Owner()

    def __str__(self) -> str:
        return "stream"


def _queued(app: faust.App, offsets: Iterable[int]) -> tuple[Any, list[Message]]:
    """An agent's stream over TOPIC and messages of ``offsets`` in its channel's queue, as faust's conductor leaves
    them (each referenced once, tracked by the consumer as not yet acknowledged)."""
    stream: Any = app.stream(app.topic(TOPIC))
    return stream, [_enqueue(app, stream, offset) for offset in offsets]


def _enqueue(app: faust.App, stream: Any, offset: int) -> Message:
    msg = message(offset)
    msg.incref()
    app.consumer.track_message(msg)
    stream.channel.queue.put_nowait(app.create_event(msg.key, msg.value, {}, msg))
    return msg


def test_queued_batches_are_the_queue_s_events_in_order_each_acknowledged_when_the_next_is_asked_for() -> None:
    async def scenario() -> list[tuple[list[int], list[int]]]:
        app = offline_app("compat-queued")
        stream, messages = _queued(app, range(10))
        seen = []
        batches = faust_compat.queued_batches(stream, 4, within=0.05)
        for _ in range(3):
            events = await anext(batches)
            seen.append(([event.message.offset for event in events], [m.offset for m in messages if m.acked]))
        await batches.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        ([0, 1, 2, 3], []),
        ([4, 5, 6, 7], [0, 1, 2, 3]),
        ([8, 9], [0, 1, 2, 3, 4, 5, 6, 7]),  # fewer than the size: the rest of the queue once `within` has passed
    ]


def test_a_queued_batch_waits_within_its_time_for_events_that_arrive_after_its_first() -> None:
    async def scenario() -> tuple[list[int], float]:
        app = offline_app("compat-queued-wait")
        stream, _ = _queued(app, [0])

        async def later() -> None:
            await asyncio.sleep(0.05)
            _enqueue(app, stream, 1)
            await asyncio.sleep(0.05)
            _enqueue(app, stream, 2)

        arriving = asyncio.ensure_future(later())
        began = asyncio.get_running_loop().time()
        events = await anext(faust_compat.queued_batches(stream, 10, within=0.3))
        waited = asyncio.get_running_loop().time() - began
        await arriving
        return [event.message.offset for event in events], waited

    offsets, waited = asyncio.run(scenario())
    assert offsets == [0, 1, 2]
    assert 0.3 <= waited < 0.5  # the whole `within`, as the batch was never full


def test_a_queued_batch_whose_handling_raised_stays_unacknowledged() -> None:
    """The worker exits on a failed batch so that it is redelivered: faust must not count it as done meanwhile."""

    async def scenario() -> list[Message]:
        app = offline_app("compat-queued-raise")
        stream, messages = _queued(app, range(3))
        with pytest.raises(RuntimeError, match="batch failed"):
            async for _events in faust_compat.queued_batches(stream, 10, within=0.01):
                raise RuntimeError("batch failed")
        return [m for m in messages if m.acked]

    assert asyncio.run(scenario()) == []


def test_an_error_faust_throws_into_the_channel_is_raised_by_the_batches_as_by_its_stream() -> None:
    async def scenario() -> None:
        app = offline_app("compat-queued-throw")
        stream, _ = _queued(app, [0])
        stream.channel.queue._throw(KeyError("thrown"))  # noqa: SLF001 -- as faust's Channel._throw
        with pytest.raises(KeyError, match="thrown"):
            await anext(faust_compat.queued_batches(stream, 10, within=0.5))

    asyncio.run(scenario())


def test_faust_s_stop_ends_the_queued_batches_after_the_one_in_hand() -> None:
    """faust ends its agents' streams by throwing StopAsyncIteration into their queues: the batches end there too (an
    agent that raised instead would crash, be restarted by faust's supervisor, and hold the worker's stop)."""

    async def scenario() -> tuple[list[int], list[int], bool]:
        app = offline_app("compat-queued-stop")
        stream, messages = _queued(app, range(2))
        queue = stream.channel.queue
        batches = faust_compat.queued_batches(stream, 10, within=5.0)
        in_hand = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0.05)  # the two events taken, the batch waiting for more
        queue._throw(StopAsyncIteration())  # noqa: SLF001 -- as faust's Channel.on_stop_iteration does
        events = await asyncio.wait_for(in_hand, 1)  # at once, not after its 5 s
        ended = not [rest async for rest in batches]  # and none after it
        idle = faust_compat.queued_batches(stream, 10, within=5.0)
        waiting = asyncio.ensure_future(anext(idle))
        await asyncio.sleep(0.05)  # waiting for a first event
        queue._throw(StopAsyncIteration())  # noqa: SLF001
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, 1)
        return [event.message.offset for event in events], [m.offset for m in messages if m.acked], ended

    assert asyncio.run(scenario()) == ([0, 1], [0, 1], True)  # the batch in hand handed over, then acknowledged


def test_an_agent_s_batches_are_the_queued_ones_with_the_bypass_and_faust_s_take_events_without() -> None:
    async def scenario() -> tuple[str, str]:
        app = offline_app("compat-batches")
        stream, _ = _queued(app, [])
        on = faust_compat.batches(stream, 10, 0.5, past_stream_layer=True)
        off = faust_compat.batches(stream, 10, 0.5, past_stream_layer=False)
        names = (on.ag_code.co_name, off.ag_code.co_name)  # type: ignore[attr-defined]
        await on.aclose()  # type: ignore[attr-defined]
        await off.aclose()  # type: ignore[attr-defined]
        return names

    assert asyncio.run(scenario()) == ("queued_batches", "take_events")
