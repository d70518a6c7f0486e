"""The producer API for upstream services: validated events onto their topics."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from consentflow.contracts.codec import Codec, make_codec
from consentflow.contracts.events import Event
from consentflow.contracts.gate import Gate
from consentflow.contracts.headers import Headers
from consentflow.contracts.timestamp_plan import micros
from consentflow.kafka.clients import client_config

log = logging.getLogger("consentflow.producer")  # the logger name from before the layout (issue 20): log filters know it

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_PREFIX = "consentflow"


#: librdkafka's RD_KAFKA_PARTITION_UA, ``produce``'s own default: the configured partitioner picks by key.
_PARTITIONER_CHOOSES = -1
#: Messages enqueued between two servings of delivery reports (``poll(0)``): serving them after every message cost
#: the worker a call into librdkafka per output and state write; ``flush`` serves the rest, and a full queue at once.
POLL_EVERY = 64


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge some events; ``failures`` lists (topic, key, error)."""

    def __init__(self, failures: list[tuple[str, str, str]]) -> None:
        self.failures = failures
        first = failures[0]
        super().__init__(f"{len(failures)} event(s) not delivered; first: topic {first[0]}, key {first[1]}: {first[2]}")


class EventProducer:
    """Encodes events with the project's codec and produces them keyed by subject.

    The underlying producer is idempotent with ``acks=all``, so a retried send
    is written once and in order within a partition; keying by subject id keeps
    one subject's events on one partition, in the order they were sent.
    """

    def __init__(
        self,
        bootstrap_servers: str = DEFAULT_BOOTSTRAP,
        *,
        codec: Codec | None = None,
        prefix: str = DEFAULT_PREFIX,
        config: dict[str, Any] | None = None,
        record_offsets: bool = False,
    ) -> None:
        self.codec = codec or make_codec(prefix=prefix)
        self.prefix = prefix
        defaults = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
        settings = client_config(bootstrap_servers, {**defaults, **(config or {})})
        self._producer = Producer(settings)
        self._gate = Gate()
        self._failures: list[tuple[str, str, str]] = []
        self._unpolled = 0  # messages enqueued since delivery reports were last served
        self.delivered = 0
        # (topic, partition) -> the highest offset acknowledged since ``take_offsets``; kept only when asked for.
        self._offsets: dict[tuple[str, int], int] | None = {} if record_offsets else None

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            key = msg.key()
            self._failures.append((str(msg.topic()), key.decode() if isinstance(key, bytes) else str(key), str(err)))
        else:
            self.delivered += 1
            offsets = self._offsets
            if offsets is not None:
                where, offset = (str(msg.topic()), int(msg.partition() or 0)), int(msg.offset() or 0)
                if offset > offsets.get(where, -1):
                    offsets[where] = offset

    def send(self, event: Event, *, arrival: datetime | None = None) -> None:
        """Check, encode and enqueue one event; raises ``ContractError`` for a bad one.

        The event passes the gate (``consentflow.contracts.gate``: the edge checks and the event-time bounds, with
        ``arrival``, default now, as its arrival), and ``arrival`` becomes the message's Kafka timestamp, so the
        workers and a replay judge it by the same time. Nothing is sent for an invalid event, and events already
        enqueued stay enqueued.
        """
        when = arrival or datetime.now(UTC)
        self._gate.check(event.topic, event.record, when)
        value = self.codec.encode(event.topic, event.record)
        headers = self.codec.headers(event.topic)
        self.send_bytes(event.topic.name(self.prefix), event.key.encode(), value, timestamp=micros(when) // 1000, headers=headers)

    def send_bytes(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        *,
        timestamp: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        """Enqueue already-encoded bytes (replays, dead letters, a table's changelog), waiting when the queue is full.

        ``partition`` None lets the key choose it, as for every event; a table's changelog names it. ``timestamp``
        (milliseconds since the epoch) is the message's, by default the time it is enqueued. ``headers`` name what
        the value is (``consentflow.contracts.headers``: every message the project writes carries them).
        """
        chosen = _PARTITIONER_CHOOSES if partition is None else partition
        extra: dict[str, Any] = {} if timestamp is None else {"timestamp": timestamp}
        if headers is not None:
            extra["headers"] = headers
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, partition=chosen, on_delivery=self._on_delivery, **extra)
                break
            except BufferError:
                self._producer.poll(0.1)  # queue full: serve delivery reports, then retry
        self._unpolled += 1
        if self._unpolled >= POLL_EVERY:
            self._unpolled = 0
            self._producer.poll(0)

    def send_all(self, events: Iterable[Event]) -> int:
        """Send many events; returns how many were enqueued."""
        count = 0
        for event in events:
            self.send(event)
            count += 1
        return count

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every enqueued event is acknowledged; raises ``DeliveryError`` otherwise."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryError([("*", "*", f"{remaining} event(s) still queued after {timeout:.0f} s")])
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(failures)

    def take_offsets(self) -> dict[tuple[str, int], int]:
        """The highest offset acknowledged per (topic, partition) since the last call (a ``record_offsets`` producer;
        call after ``flush``)."""
        if self._offsets is None:
            raise RuntimeError("this producer was not asked to record offsets (record_offsets=True)")
        offsets, self._offsets = self._offsets, {}
        return offsets

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._producer.flush(10)
