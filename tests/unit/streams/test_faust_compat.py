"""Each private faust name the worker uses (``streams/faust_compat.py``) against the installed faust-streaming.

One test per access: the name exists and means what the worker takes it for, shown through faust's own code
(its fetcher loop, its commit choice, its commit guard, its RocksDB store) wherever that runs without a broker.
Run these first when raising faust's pin in pyproject.toml.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.exceptions import ConsumerNotStarted
from faust.streams import current_event
from faust.types import TP
from faust.types.tuples import Message

from consentflow.streams import faust_compat
from consentflow.streams.faust_compat import CommitChoosingConsumer
from consentflow.streams.subject_table import PartitionWrite

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
        fetcher = SimpleNamespace(_stopped=asyncio.Event())

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
            for offset in (5, 6, 7):
                yield PARTITION, message(offset)
            fetcher._stopped.set()  # one round of the fetcher's loop

        async def callback(m: Message) -> None:
            handed.append(m.offset)

        consumer.getmany, consumer.callback = getmany, callback
        assert faust_compat.handed_over_offsets(app).get(PARTITION) is None
        await consumer._drain_messages(fetcher)  # faust's own fetcher loop
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
        app.topics._acking_topics.add(TOPIC)  # as faust does for a topic an agent reads
        for offset in (10, 11, 12):
            consumer.ack(message(offset))
        before = list(consumer._acked[PARTITION])
        chosen = dict(consumer._filter_committable_offsets(consumer._filter_tps_with_pending_acks()))  # force_commit's
        return chosen, before, list(consumer._acked.get(PARTITION, []))

    chosen, before, after = asyncio.run(scenario())
    assert before == [10, 11, 12]
    assert chosen == {PARTITION: 40}
    assert after == []


def test_forget_acknowledged_empties_faust_s_lists_of_a_partition() -> None:
    app = offline_app("compat-forget")
    consumer: Any = app.consumer
    app.topics._acking_topics.add(TOPIC)
    consumer.ack(message(3))
    consumer._gap[PARTITION].addi(1, 3)
    faust_compat.forget_acknowledged(consumer, PARTITION)
    assert PARTITION not in consumer._acked
    assert PARTITION not in consumer._acked_index
    assert PARTITION not in consumer._gap


def test_faust_s_commit_waits_while_the_commit_guard_is_held() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        consumer: Any = offline_app("compat-guard").consumer
        async with faust_compat.commit_guard(consumer):
            faust_waits = asyncio.ensure_future(consumer.maybe_wait_for_commit_to_finish())  # what faust's commit does first
            await asyncio.sleep(0.05)
            waited = not faust_waits.done()
        answered = await asyncio.wait_for(faust_waits, 5)
        return waited, answered, consumer._commit_fut is None

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
    thread = consumer._thread
    assert callable(thread.call_thread)
    with pytest.raises(ConsumerNotStarted):  # the aiokafka consumer exists only once the worker started it
        thread._ensure_consumer()


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
    assert data._key_index[key] == 1  # _set filed it as file_key_under does
    assert [faust_compat.decode_key(data, k) for k in faust_compat.visible_keys(data, databases[1])] == ["subject-1"]
    other = app.serializers.dumps_key(str, "subject-2", serializer=table.key_serializer)
    database = faust_compat.partition_database(data, 0)  # opened on demand
    database.put(other, b"state")
    faust_compat.file_key_under(data, other, 0)
    assert set(faust_compat.partition_databases(data) or {}) == {0, 1}
    assert data[other] == b"state"  # faust's read finds it where the index says


def test_the_memory_store_has_no_partition_databases() -> None:
    table = offline_app("compat-memory").Table("subjects", default=None, partitions=2, key_type=str)
    assert faust_compat.partition_databases(table.data) is None
