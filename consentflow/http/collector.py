"""The collector: events from emitters that cannot speak Kafka (a cookie banner's backend), as JSON over HTTP.

A JSON object per event, its fields named as in the topic's Avro contract
(``schemas/<Record>/v1.avsc``) and as the keyword arguments of the event's
constructor in ``consentflow.contracts.events``; times are ISO-8601 with a zone. The
object goes through the same constructor every other emitter uses, so it passes
the same edge checks (pseudonymous ids only, UTC instants, policy symbols), and
through the codec's validation, then ``EventProducer`` sends it keyed by
subject. ``event_id`` and ``occurred_at`` may be left out (a fresh UUID, now);
an emitter that sends its own ``event_id`` may retry safely: a duplicate
changes nothing downstream.

Only the subject topics take events here; the recipient registry is the DPO's
(``consentflow registry load``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from confluent_kafka import KafkaException

from consentflow.contracts.codec import make_codec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import Event
from consentflow.contracts.gate import Gate
from consentflow.contracts.json_events import CONSTRUCTORS, InvalidEvent, body_schema, event_from_json
from consentflow.kafka.producer import DeliveryError, EventProducer
from consentflow.runtime.redaction import redacted_dsn

__all__ = ["CONSTRUCTORS", "Collector", "EventSink", "InvalidEvent", "KafkaUnavailable", "body_schema", "event_from_json"]


class KafkaUnavailable(RuntimeError):
    """The broker did not acknowledge the event in time."""


class EventSink(Protocol):
    """What the collector needs of a producer (``EventProducer`` is one)."""

    def send(self, event: Event, *, arrival: datetime | None = None) -> None:
        """Check, encode and enqueue one event, its message timestamped ``arrival`` (default: now)."""
        ...

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for the broker's acknowledgement of everything enqueued; raise ``DeliveryError`` otherwise."""
        ...


# -- producing ------------------------------------------------------------------------------


class Collector:
    """Validates and produces events one at a time, answering only once the broker acknowledged each.

    One producer for the server's life (created on first use); after a failed
    delivery it is dropped, so the next event starts from a fresh connection.
    Events are sent one at a time (a lock): the producer's delivery failures
    are collected per flush, and must belong to the request that waits for them.
    """

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        *,
        registry_url: str | None = None,
        timeout: float = 10.0,
        producer_factory: Callable[[], EventSink] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.registry_url = registry_url
        self.timeout = timeout
        self._factory = producer_factory or self._event_producer
        self._producer: EventSink | None = None
        self._lock = threading.Lock()
        self._gate = Gate()

    def _event_producer(self) -> EventSink:
        # A message the broker has not taken within the timeout fails for good, rather
        # than being delivered after the emitter was told 503 and may have retried.
        timeout_ms = max(1, int(self.timeout * 1000))
        return EventProducer(
            self.bootstrap,
            codec=make_codec(self.registry_url, self.prefix),
            prefix=self.prefix,
            config={"message.timeout.ms": timeout_ms, "linger.ms": 5, "socket.timeout.ms": max(10, timeout_ms)},
        )

    def send(self, event: Event, received_at: datetime | None = None) -> None:
        """Produce ``event`` (validated by ``event_from_json``); returns once the broker holds it.

        ``received_at`` (default: now) is the event's arrival: the gate bounds its ``occurred_at`` by it, and it
        becomes the message's Kafka timestamp, so a replay takes the same decision. Raises ``InvalidEvent`` (nothing
        sent) or ``KafkaUnavailable``.
        """
        arrival = received_at or datetime.now(UTC)
        try:
            self._gate.check(event.topic, event.record, arrival)
        except ContractError as exc:
            raise InvalidEvent(str(exc), exc.field) from None
        with self._lock:
            try:
                if self._producer is None:
                    self._producer = self._factory()
                self._producer.send(event, arrival=arrival)  # the codec validates against the contract once more
                self._producer.flush(self.timeout + 1.0)
            except ContractError as exc:
                raise InvalidEvent(str(exc), exc.field) from None
            except (DeliveryError, KafkaException, BufferError, RuntimeError) as exc:
                self._producer = None
                raise KafkaUnavailable(f"Kafka at {redacted_dsn(self.bootstrap)} did not take the event: {exc}") from None
