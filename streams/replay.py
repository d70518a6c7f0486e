"""The input topics read back into one ordered event stream: what an auditor's replay feeds the processors.

The input topics (and the compacted registry) keep every event upstream
services emitted [DESIGN: auditors], so the ledger and the lineage graph can be
rebuilt from them at any time and compared with what the pipeline wrote.
A replay reads directly, with no consumer group and no offset commits: it
assigns itself every partition, seeks to the first offset wanted (the log's
beginning, or the first message at or after ``--from-time`` found with
``offsets_for_times``) and reads up to the end offsets captured when it
started (or up to ``--to-time``), so what it reads is fixed however the topics
grow meanwhile.

Order is deterministic, so two replays of the same topics give identical
tables: the registry first (records must precede the events they govern),
then each subject topic partition by partition, each in offset order. A
replay streams: it holds one fetch at a time, whatever the window's size.
Offset order is the order the workers process a partition in, and every
event of a subject sits in one partition per topic, so a subject's ledger is
chained in the same order as the live pipeline's. Everything else the
processors produce is independent of the order topics interleave in (the
property tests in tests/unit/core/test_ledger_properties.py and tests/unit/core/test_rights.py
replay in random orders), so it equals the embedded run of the same events.

Times are the messages' Kafka timestamps (when upstream services emitted
them), in milliseconds: ``from_time`` and ``to_time`` bound a half-open window
``[from_time, to_time)``. The registry is always read from its beginning: the
processors need every version of every recipient [7].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from consentflow.contracts.codec import Codec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import Gate
from consentflow.contracts.records import DeadLetter, InputRecord
from consentflow.contracts.timestamp_plan import micros
from consentflow.contracts.topics import INCIDENTS, INPUT_TOPICS, RECIPIENTS, Topic
from consentflow.streams.input_step import InputStep, Origin, OriginOf
from consentflow.streams.partition_range import messages_in, range_consumer

#: Subject topics in their tie-break rank (the registry is read apart, first; the incidents last).
SUBJECT_TOPICS: tuple[Topic, ...] = tuple(t for t in INPUT_TOPICS if t.key_field == "subject_id")
#: Topics read from their beginning whatever the window: every registry version counts [7], and every incident stays
#: documented [GDPR Art. 33(5)].
WHOLE_TOPICS = frozenset({RECIPIENTS, INCIDENTS})


@dataclass(frozen=True)
class PartitionRange:
    """The offsets ``[start, end)`` of one partition that a replay reads."""

    topic: Topic
    name: str  # full topic name
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        """How many offsets the range spans (messages, fewer on a compacted topic)."""
        return max(self.end - self.start, 0)


@dataclass(frozen=True)
class Undecodable:
    """An input message that does not decode: it becomes a dead letter with its original bytes."""

    topic: str  # full topic name
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: ContractError


def kafka_millis(t: datetime) -> int:
    """A UTC instant as a Kafka timestamp: the first millisecond at or after it."""
    return -(-micros(t) // 1000)


def plan(
    consumer: Consumer,
    prefix: str,
    *,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
    timeout: float = 30.0,
) -> list[PartitionRange]:
    """The offsets to read in every partition of the input topics, captured now.

    Raises ``LookupError`` naming a topic that does not exist.
    """
    ranges: list[PartitionRange] = []
    for topic in (RECIPIENTS, *SUBJECT_TOPICS, INCIDENTS):
        name = topic.name(prefix)
        metadata = consumer.list_topics(name, timeout=timeout).topics.get(name)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise LookupError(f"input topic {name} does not exist (wrong --prefix, or run consentflow topics create)")
        for partition in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=timeout)
            start, end = low, high
            # The registry and the incidents are read whole whatever the window (WHOLE_TOPICS).
            if from_time is not None and topic not in WHOLE_TOPICS:
                start = _offset_at(consumer, name, partition, from_time, high, timeout)
            if to_time is not None:
                end = _offset_at(consumer, name, partition, to_time, high, timeout)
            ranges.append(PartitionRange(topic, name, partition, max(start, low), end))
    return ranges


def _offset_at(consumer: Consumer, name: str, partition: int, t: datetime, high: int, timeout: float) -> int:
    """The first offset whose timestamp is at or after ``t``; ``high`` when every message is older."""
    (found,) = consumer.offsets_for_times([TopicPartition(name, partition, kafka_millis(t))], timeout=timeout)
    if found.error is not None:
        raise RuntimeError(f"offsets_for_times on {name}[{partition}]: {found.error}")
    return high if found.offset < 0 else min(found.offset, high)


@dataclass
class Replay:
    """A window of the input topics, planned when opened and read, streaming, by ``events()``."""

    consumer: Consumer
    codec: Codec
    ranges: list[PartitionRange]
    timeout: float
    undecodable: list[Undecodable] = field(default_factory=list)
    gate: Gate = field(default_factory=Gate)  # what the workers check, with the same arrival: the message timestamp
    tombstones: int = 0  # null values read (consentflow.contracts.null_values: a registry removal, or a dead letter)
    read_count: int = 0  # messages read so far, decoded or not
    # The message of the event last handed out: a processing failure's dead letter names it, as a worker's does.
    _current: tuple[PartitionRange, int, bytes | None, bytes | None] | None = None

    @property
    def total(self) -> int:
        """Offsets the window spans (an upper bound of its messages: a compacted registry has fewer)."""
        return sum(r.size for r in self.ranges)

    def events(self) -> ReplayedEvents:
        """The window's events as ``(topic, record)``: the registry first, then each partition in offset order.

        Messages that do not decode, or that the gate refuses (judged by their Kafka timestamp, as the workers
        judged them), are kept in ``undecodable`` and the stream goes on; so is a null value, except on the registry,
        where it is the recipient's removal (``consentflow.contracts.null_values``). Raises ``TimeoutError`` when the broker hands nothing over for
        ``timeout`` seconds while offsets remain. The result's ``origin_of`` names the message of the event last
        handed out (``run_events`` names a processing failure's dead letter by it).
        """
        return ReplayedEvents(self._events(), self.origin_of)

    def _events(self) -> Iterator[tuple[Topic, InputRecord]]:
        for span in self.ranges:
            for offset, key, value, timestamp in self._messages(span):
                self.read_count += 1
                try:
                    if value is None:  # the registry's removal of a recipient, elsewhere a dead letter (as live)
                        self.tombstones += 1
                    record = self.gate.admit(  # arrival: the message's timestamp, as live
                        self.codec, span.topic, value, timestamp, name=span.name, partition=span.partition, offset=offset, key=key
                    )
                except ContractError as exc:
                    self.undecodable.append(Undecodable(span.name, span.partition, offset, key, value, exc))
                    continue
                self._current = (span, offset, key, value)
                yield span.topic, record

    def origin_of(self, topic: Topic, record: Mapping[str, Any], position: int) -> Origin:
        """The Kafka message of the event last handed out by ``events``."""
        assert self._current is not None, "no event handed out yet"
        span, offset, key, value = self._current
        return Origin(span.name, span.partition, offset, key, value)

    def _messages(self, span: PartitionRange) -> Iterator[tuple[int, bytes | None, bytes | None, int]]:
        """``(offset, key, value, timestamp in ms)`` of one partition's range, in offset order."""
        for message in messages_in(self.consumer, span.name, span.partition, range(span.start, span.end), self.timeout):
            yield int(message.offset() or 0), message.key(), message.value(), int(message.timestamp()[1])

    def close(self) -> None:
        """Release the consumer."""
        self.consumer.close()


def open_replay(
    bootstrap: str,
    prefix: str,
    codec: Codec,
    *,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
    timeout: float = 30.0,
) -> Replay:
    """Plan a replay of the input topics' window: each partition's range is captured now.

    Raises ``LookupError`` for a missing topic. Close the result when done.
    """
    consumer = range_consumer(bootstrap, "consentflow-replay")
    try:
        ranges = plan(consumer, prefix, from_time=from_time, to_time=to_time, timeout=timeout)
    except BaseException:
        consumer.close()
        raise
    return Replay(consumer, codec, ranges, timeout)


def dead_letters(replayed: Replay) -> Iterator[DeadLetter]:
    """A ``DeadLetter`` record for every message that did not decode, with its original bytes (as the workers write)."""
    for bad in replayed.undecodable:
        yield InputStep.dead_letter(bad.error, Origin(bad.topic, bad.partition, bad.offset, bad.key, bad.value))


@dataclass(frozen=True)
class ReplayedEvents:
    """A replay's events in order, as ``(topic, record)``, and how to name the message of the one last handed out."""

    events: Iterator[tuple[Topic, InputRecord]]
    origin_of: OriginOf

    def __iter__(self) -> Iterator[tuple[Topic, InputRecord]]:
        return self.events
