"""One input through the processors: decode → gate → process → dead letter, the same for every driver.

The faust worker, a replay and the embedded runner each hand their inputs to ``InputStep``: a Kafka message
(raw bytes and coordinates) is decoded and checked by the gate with its Kafka timestamp as arrival
(``Gate.admit``, which also decides a null value), then processed; an event already read and checked
(the embedded runner's decoding process gates a file) is only processed. What fails becomes a dead letter
built here, so a worker and a replay of the same messages write the same dead letters [DESIGN: one gate].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from consentflow.contracts.codec import Codec
from consentflow.contracts.dead_letters import dead_letter
from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import Gate
from consentflow.contracts.records import DeadLetter, InputRecord, SourceCoordinates
from consentflow.contracts.topics import Topic
from consentflow.core.processor import Changes, Processor


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an input came from, as its dead letter names it."""

    topic: str  # a Kafka message's full topic name; a file's event, its topic's short name
    partition: int | None  # None for a file
    offset: int | None  # a Kafka offset; a file run's event index
    key: bytes | None
    value: bytes | None  # the original bytes (None for a file's event, which its decoding process resolved)

    def source(self) -> SourceCoordinates:
        """The Kafka coordinates the processors record beside their outputs (of a Kafka message: it has both)."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}  # type: ignore[typeddict-item]


#: How a driver names an event that fails processing: from its topic, its record and its position in the run.
OriginOf = Callable[[Topic, Mapping[str, Any], int], Origin]


def file_origin(topic: Topic, record: Mapping[str, Any], position: int) -> Origin:
    """An event of an embedded run: its topic, its index in the run and its subject as key (no Kafka coordinates)."""
    return Origin(topic.short_name, None, position, str(record.get("subject_id", "")).encode() or None, None)


def reason_for(error: Exception) -> str:
    """The dead letter's reason: a contract's refusal as it says it, any other error as a failed processing."""
    return str(error) if isinstance(error, ContractError) else f"processing failed: {error}"


class InputStep:
    """decode → gate → process → dead letter, over one ``Processor``."""

    def __init__(self, processor: Processor, codec: Codec | None = None, gate: Gate | None = None) -> None:
        self.processor = processor
        self._process = processor.process  # bound once: ``event`` runs once per event of an embedded run
        self.codec = codec  # needed for Kafka messages only
        self.gate = gate or Gate()

    def admit(self, topic: Topic, origin: Origin, timestamp_ms: int) -> InputRecord:
        """The record a Kafka message stands for, decoded and gated with its timestamp as arrival; a null value as
        ``null_values`` decides. Raises ``ContractError`` naming what is wrong."""
        assert self.codec is not None, "a Kafka message needs the codec"
        return self.gate.admit(
            self.codec,
            topic,
            origin.value,
            timestamp_ms,
            name=origin.topic,
            partition=origin.partition or 0,
            offset=origin.offset or 0,
            key=origin.key,
        )

    def message(self, topic: Topic, origin: Origin, timestamp_ms: int) -> tuple[InputRecord | None, Changes | DeadLetter]:
        """A Kafka message through the step: ``(record, changes)``, or ``(None, dead letter)`` when it fails."""
        try:
            record = self.admit(topic, origin, timestamp_ms)
            return record, self.processor.process(topic.short_name, record, origin.source())
        except Exception as exc:  # noqa: BLE001 -- a bad message goes to the dead letters; the stream goes on
            return None, self.dead_letter(exc, origin)

    def event(self, topic: Topic, record: InputRecord, position: int, origin_of: OriginOf = file_origin) -> Changes | DeadLetter:
        """An event already read and gated, processed: its changes, or its dead letter (``origin_of`` names it)."""
        try:
            return self._process(topic.short_name, record)
        except Exception as exc:  # noqa: BLE001 -- one bad event must not stop the stream: it goes to the dead letters
            return self.dead_letter(exc, origin_of(topic, record, position))

    @staticmethod
    def dead_letter(error: Exception, origin: Origin) -> DeadLetter:
        """The dead letter of an input that failed with ``error``."""
        return dead_letter(
            origin.topic,
            reason_for(error),
            error,
            partition=origin.partition,
            offset=origin.offset,
            key=origin.key,
            value=origin.value,
        )


__all__ = ["DeadLetter", "InputStep", "Origin", "OriginOf", "file_origin", "reason_for"]
