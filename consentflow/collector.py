"""The collector: events from emitters that cannot speak Kafka (a cookie banner's backend), as JSON over HTTP.

A JSON object per event, its fields named as in the topic's Avro contract
(``schemas/<Record>/v1.avsc``) and as the keyword arguments of the event's
constructor in ``consentflow.events``; times are ISO-8601 with a zone. The
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

import functools
import inspect
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import KafkaException

from consentflow import events
from consentflow.codec import make_codec
from consentflow.contracts import default_store
from consentflow.errors import ContractError
from consentflow.events import Event
from consentflow.producer import DeliveryError, EventProducer
from consentflow.topics import CONSENT, COOKIE, DISCLOSURE, MESSAGE, PROFILE, RIGHTS, Topic

#: The constructor of each topic the collector takes; its keyword names are the contract's field names.
CONSTRUCTORS: dict[Topic, Callable[..., Event]] = {
    PROFILE: events.profile_event,
    CONSENT: events.consent_event,
    COOKIE: events.cookie_accessed,
    MESSAGE: events.message_sent,
    DISCLOSURE: events.data_disclosed,
    RIGHTS: events.rights_event,
}
_TIMES = frozenset({"occurred_at"})


class InvalidEvent(ValueError):
    """A body the contract refuses; ``field`` names the field at fault when one can be named."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class KafkaUnavailable(RuntimeError):
    """The broker did not acknowledge the event in time."""


class EventSink(Protocol):
    """What the collector needs of a producer (``EventProducer`` is one)."""

    def send(self, event: Event) -> None:
        """Validate, encode and enqueue one event."""
        ...

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for the broker's acknowledgement of everything enqueued; raise ``DeliveryError`` otherwise."""
        ...


# -- the contract as JSON ---------------------------------------------------------------


def _json_type(avro: Any) -> dict[str, Any]:
    """The JSON Schema of an Avro field type, as the collector takes it in JSON."""
    if isinstance(avro, list):  # ["null", X]: X or null
        branches = [_json_type(branch) for branch in avro]
        return {"anyOf": branches}
    if isinstance(avro, str):
        return {"null": {"type": "null"}, "boolean": {"type": "boolean"}, "string": {"type": "string"}}.get(
            avro, {"type": "integer"} if avro in ("int", "long") else {}
        )
    logical = avro.get("logicalType")
    if logical == "uuid":
        return {"type": "string", "format": "uuid"}
    if logical == "timestamp-micros":
        return {"type": "string", "format": "date-time"}
    if avro["type"] == "enum":  # "unknown" is the Avro fallback for old readers, never a value to send
        return {"type": "string", "enum": [s for s in avro["symbols"] if s != "unknown"]}
    if avro["type"] == "array":
        return {"type": "array", "items": _json_type(avro["items"])}
    return _json_type(avro["type"])


@functools.cache
def body_schema(topic: Topic) -> dict[str, Any]:
    """The JSON Schema of the collector's body for ``topic``: the contract's fields, required where the constructor needs them."""
    contract = default_store().latest(topic.record)
    parameters = inspect.signature(CONSTRUCTORS[topic]).parameters
    properties = {}
    for field in contract.schema["fields"]:
        schema = _json_type(field["type"])
        if field.get("doc"):
            schema["description"] = field["doc"]
        properties[field["name"]] = schema
    required = [name for name, p in parameters.items() if p.default is inspect.Parameter.empty]
    return {
        "title": contract.name,
        "description": contract.schema.get("doc", ""),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# -- JSON to an event ---------------------------------------------------------------------


def _instant(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(f"field {field}: expected an ISO-8601 time with a zone, got {type(value).__name__}", field)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"field {field}: {value!r} is not an ISO-8601 time (e.g. 2021-03-01T12:00:00Z)", field) from None
    if when.utcoffset() is None:
        raise InvalidEvent(f"field {field}: {value!r} has no time zone; event times are UTC instants", field)
    return when


def _check_shape(name: str, value: object, schema: Mapping[str, Any], topic: Topic) -> None:
    """JSON types first, so a constructor only ever sees what its annotations promise."""
    if "anyOf" in schema:
        if value is None:
            return
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    expected = schema.get("type")
    if expected == "array":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise InvalidEvent(f"{topic.short_name}: field {name}: expected an array of strings, got {value!r}", name)
    elif expected == "string" and not isinstance(value, str):
        raise InvalidEvent(f"{topic.short_name}: field {name}: expected a string, got {value!r}", name)


def event_from_json(topic: Topic, body: object) -> Event:
    """The event a JSON body describes, through the topic's constructor; raises ``InvalidEvent`` naming the field."""
    if not isinstance(body, dict):
        raise InvalidEvent(
            f"{topic.short_name}: the body must be a JSON object with the {topic.record} fields, got {type(body).__name__}"
        )
    schema = body_schema(topic)
    properties = schema["properties"]
    unknown = sorted(set(body) - set(properties))
    if unknown:
        raise InvalidEvent(f"{topic.short_name}: field {unknown[0]}: not in the {topic.record} contract", unknown[0])
    missing = [name for name in schema["required"] if name not in body]
    if missing:
        raise InvalidEvent(f"{topic.short_name}: field {missing[0]}: required by {topic.record} but missing", missing[0])
    arguments: dict[str, Any] = {}
    for name, value in body.items():
        if name in _TIMES:
            arguments[name] = None if value is None else _instant(value, name)
            continue
        _check_shape(name, value, properties[name], topic)
        arguments[name] = value
    try:
        return CONSTRUCTORS[topic](**arguments)
    except ContractError as exc:
        raise InvalidEvent(str(exc), exc.field) from None


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

    def send(self, event: Event) -> None:
        """Produce ``event`` (validated by ``event_from_json``); returns once the broker holds it.

        Raises ``InvalidEvent`` (nothing sent) or ``KafkaUnavailable``.
        """
        with self._lock:
            try:
                if self._producer is None:
                    self._producer = self._factory()
                self._producer.send(event)  # the codec validates against the contract once more
                self._producer.flush(self.timeout + 1.0)
            except ContractError as exc:
                raise InvalidEvent(str(exc), exc.field) from None
            except (DeliveryError, KafkaException, BufferError, RuntimeError) as exc:
                self._producer = None
                raise KafkaUnavailable(f"Kafka at {self.bootstrap} did not take the event: {exc}") from None
