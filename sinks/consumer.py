"""The sink process: output topics (and the registry) from Kafka into ClickHouse.

Offsets are committed only after ClickHouse holds the batch, so a crash at any
point redelivers what was not yet written; the tables absorb the redelivery.
While ClickHouse is unreachable the sink pauses and retries (see
``ClickHouseSink``): messages wait in Kafka, nothing is lost.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message

from consentflow.codec import Codec
from consentflow.dead_letters import dead_letter
from consentflow.errors import ContractError
from consentflow.gate import Gate
from consentflow.group_membership import SESSION_TIMEOUT, librdkafka_membership
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.topics import DEAD_LETTER, OUTPUT_TOPICS, RECIPIENTS, Topic

log = logging.getLogger(__name__)


def _still() -> None:
    """No heartbeat to tell."""


class SinkConsumer:
    """Consumes the output topics and the registry topic into a ``ClickHouseSink``."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        sink: ClickHouseSink,
        *,
        group_id: str = "consentflow-sink",
        session_timeout: float = SESSION_TIMEOUT,
    ) -> None:
        self.sink = sink
        self.codec = codec
        self.topics: dict[str, Topic] = {t.name(prefix): t for t in (*OUTPUT_TOPICS, RECIPIENTS)}
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.min.bytes": 65536,
                # A killed sink's partitions move when its session expires (librdkafka's default: 45 s); a stopped
                # one leaves the group in close(), as a dynamic member (no group.instance.id: group_membership).
                **librdkafka_membership(session_timeout),
            }
        )
        self.consumer.subscribe(sorted(self.topics))
        self.gate = Gate()  # the registry is an input topic: its records pass the gate, as in a replay
        self.consumed = 0
        self.undecodable = 0
        self._stop = False

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, flush, commit and return."""
        self._stop = True

    def run(
        self, *, idle_exit: float | None = None, should_stop: Callable[[], bool] | None = None, beat: Callable[[], None] = _still
    ) -> None:
        """Consume until stopped (or ``idle_exit`` seconds without messages), calling ``beat`` on every turn."""
        idle_since = time.monotonic()
        while not self._stop and not (should_stop and should_stop()):
            beat()
            messages = self.consumer.consume(num_messages=5_000, timeout=0.5)
            if messages:
                idle_since = time.monotonic()
            for message in messages:
                self._take(message)
            if self.sink.flush_due() or (not messages and self.sink.pending):
                self._flush_and_commit()
            if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                break
        self._flush_and_commit()
        self.consumer.close()

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            return
        topic = self.topics.get(str(message.topic()))
        value = message.value()
        if topic is None or (value is None and topic is not RECIPIENTS):
            return
        try:
            if topic is RECIPIENTS:  # an input, read as the workers' feed and a replay read it (a tombstone: a removal)
                record = self.gate.admit(
                    self.codec,
                    topic,
                    value,
                    int(message.timestamp()[1]),
                    name=str(message.topic()),
                    partition=int(message.partition() or 0),
                    offset=int(message.offset() or 0),
                    key=message.key(),
                )
            else:
                assert value is not None  # an output's null value returned above
                record = self.codec.decode(topic, value)
        except ContractError as exc:
            # An output we cannot read, or a registry record the gate refuses, is kept as a dead letter, not dropped.
            self.undecodable += 1
            letter = dead_letter(
                str(message.topic()),
                str(exc),
                exc,
                partition=message.partition(),
                offset=message.offset(),
                key=message.key(),
                value=value,
            )
            self.sink.add(DEAD_LETTER.short_name, letter)
            return
        self.sink.add(topic.short_name, record)
        self.consumed += 1

    def _flush_and_commit(self) -> None:
        if self.sink.pending:
            self.sink.flush()  # returns only when ClickHouse has the rows
        try:
            self.consumer.commit(asynchronous=False)
        except Exception as exc:  # noqa: BLE001 -- nothing to commit yet is not an error
            if "NO_OFFSET" not in str(exc):
                log.warning("offset commit failed (the batch will be redelivered and absorbed): %s", exc)


def run_sink(consumer: SinkConsumer, beat: Callable[[], None] = _still) -> None:
    """Run until SIGTERM/SIGINT, then flush and commit; ``beat`` on every turn of the loop (a health probe's heartbeat)."""
    signal.signal(signal.SIGTERM, consumer.stop)
    signal.signal(signal.SIGINT, consumer.stop)
    consumer.run(beat=beat)
