"""Every worker's copy of the recipient registry, read whole from its compacted topic.

A consumer group would give each partition of the registry to one worker only,
and faust's GlobalTable keeps only the latest value per key (and is documented
to loop in recovery with several instances). The processors need every
recipient, with every version seen, in every worker: so each worker assigns
itself all partitions of the registry topic from the beginning, and reads up
to the end before it processes a batch. A tombstone removes its recipient from
its timestamp on (``consentflow.contracts.null_values``), as in a replay.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from consentflow.contracts.codec import Codec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import Gate
from consentflow.contracts.topics import RECIPIENTS
from consentflow.core.recipients import RecipientRegistry, RecipientVersion
from consentflow.kafka.clients import client_config

log = logging.getLogger(__name__)


class RegistryFeed:
    """Keeps ``registry`` up to date with the registry topic."""

    def __init__(self, bootstrap: str, prefix: str, codec: Codec, registry: RecipientRegistry | None = None) -> None:
        self.registry = registry if registry is not None else RecipientRegistry()
        self.topic = RECIPIENTS.name(prefix)
        self.codec = codec
        self.errors = 0
        self.gate = Gate()
        self._consumer = Consumer(
            client_config(bootstrap, {"group.id": "consentflow-registry-feed", "enable.auto.commit": False})
        )
        self._assigned = False
        self._ends: dict[int, int] | None = None  # the topic's end per partition when the feed first looked
        self._caught_up = False

    def _assign(self, timeout: float) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=timeout)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaException(f"registry topic {self.topic} not found")
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(topic.partitions)])
        self._assigned = True

    @property
    def caught_up(self) -> bool:
        """Whether the topic has been read to the end it had when this feed first looked."""
        return self._caught_up

    def catch_up(self, timeout: float | None = None, *, patience: float = 30.0) -> int:
        """Read the registry topic up to its current end; returns how many records were read.

        Never returns with part of the registry read: processing events against a partial registry would
        record wrong verdicts (a disclosure to a recipient not yet read is a violation). Without ``timeout``
        it waits as long as the broker takes, logging every ``patience`` seconds; with one it raises
        ``TimeoutError`` past it.
        """
        started = time.monotonic()
        said = started
        read = 0
        while True:
            try:
                if not self._assigned:
                    self._assign(patience)
                if self._ends is None:
                    self._ends = {
                        tp.partition: self._consumer.get_watermark_offsets(tp, timeout=patience)[1]
                        for tp in self._consumer.assignment()
                    }
                positions = {tp.partition: tp.offset for tp in self._consumer.position(self._consumer.assignment())}
                if all(positions.get(p, -1) >= end or end == 0 for p, end in self._ends.items()):
                    self._caught_up = True
                    return read
                message = self._consumer.poll(0.2)
                if message is not None:
                    read += self.take(message)
            except KafkaException as exc:  # the broker away or slow: the registry is still owed whole
                log.debug("registry topic %s: %s", self.topic, exc)
                time.sleep(0.2)
            now = time.monotonic()
            if timeout is not None and now - started > timeout:
                raise TimeoutError(f"registry topic {self.topic} not read to its end in {timeout:.0f} s ({read} records read)")
            if now - said > patience:
                log.warning(
                    "registry topic %s not read to its end after %.0f s; processing waits for it", self.topic, now - started
                )
                said = now

    def poll_new(self) -> int:
        """Take whatever registry records have arrived, without waiting (call often, it is cheap); the first call reads
        the whole topic (``catch_up``)."""
        if not self._caught_up:
            return self.catch_up()
        return sum(self.take(message) for message in self._consumer.consume(num_messages=1000, timeout=0))

    def take(self, message: Message) -> int:
        """Add one registry record, or a tombstone's removal of a recipient (``consentflow.contracts.null_values``); 0 for a
        broker notice or a record that breaks the contract or that the gate refuses (never used: a replay leaves it
        out too)."""
        if message.error() is not None:
            return 0
        try:
            # As a replay reads it: a tombstone removes the recipient from its timestamp on.
            record = self.gate.admit(
                self.codec,
                RECIPIENTS,
                message.value(),
                int(message.timestamp()[1]),
                name=self.topic,
                partition=int(message.partition() or 0),
                offset=int(message.offset() or 0),
                key=message.key(),
            )
            self.registry.add(RecipientVersion.from_record(record))
            return 1
        except (ContractError, KeyError, ValueError) as exc:
            self.errors += 1
            log.warning("registry record at %s[%s]@%s ignored: %s", self.topic, message.partition(), message.offset(), exc)
            return 0

    def close(self) -> None:
        """Release the consumer."""
        self._consumer.close()
