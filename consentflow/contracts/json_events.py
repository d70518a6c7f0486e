"""Events described in JSON, as the collector takes them and as a person writes them by hand.

A JSON object per event, its fields named as in the topic's Avro contract
(``schemas/<Record>/v1.avsc``) and as the keyword arguments of the event's
constructor in ``consentflow.contracts.events``; times are ISO-8601 with a zone. The
object goes through the same constructor every other emitter uses, so it passes
the same edge checks (pseudonymous ids only, UTC instants, policy symbols).
``event_id`` and ``occurred_at`` may be left out (a fresh UUID, now).

The collector takes one object per HTTP request, for the subject topics; a file
of JSON Lines (``consentflow run``, ``produce``, ``convert``) says each line's
topic in a ``topic`` member, and may hold registry records too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from consentflow.contracts import events
from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import Event, MechanismPeriod
from consentflow.contracts.releases import default_store
from consentflow.contracts.topics import (
    CONSENT,
    COOKIE,
    DISCLOSURE,
    INCIDENTS,
    MESSAGE,
    PROFILE,
    RECIPIENTS,
    RIGHTS,
    Topic,
    topic_named,
)

#: The constructor of each topic the collector takes; its keyword names are the contract's field names.
CONSTRUCTORS: dict[Topic, Callable[..., Event]] = {
    PROFILE: events.profile_event,
    CONSENT: events.consent_event,
    COOKIE: events.cookie_accessed,
    MESSAGE: events.message_sent,
    DISCLOSURE: events.data_disclosed,
    RIGHTS: events.rights_event,
}
#: What a file written by hand may hold besides: registry records and the breach register's incident events (the
#: DPO's; the collector does not take them).
LINE_CONSTRUCTORS: dict[Topic, Callable[..., Event]] = {
    **CONSTRUCTORS,
    RECIPIENTS: events.recipient_registered,
    INCIDENTS: events.incident_event,
}
_TIMES = frozenset({"occurred_at", "window_from", "window_to", "aware_at"})


class InvalidEvent(ValueError):
    """A body the contract refuses; ``field`` names the field at fault when one can be named."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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
    parameters = inspect.signature(LINE_CONSTRUCTORS[topic]).parameters
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
        if name == "transfer_mechanisms":
            arguments[name] = _periods(value, topic)
            continue
        _check_shape(name, value, properties[name], topic)
        arguments[name] = value
    try:
        return LINE_CONSTRUCTORS[topic](**arguments)
    except ContractError as exc:
        raise InvalidEvent(str(exc), exc.field) from None


def _periods(value: object, topic: Topic) -> list[MechanismPeriod]:
    """A registry record's ``transfer_mechanisms`` in JSON: objects with ``mechanism``, ``valid_from``, ``valid_until``."""
    field = "transfer_mechanisms"
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise InvalidEvent(f"{topic.short_name}: field {field}: expected an array of objects, got {value!r}", field)
    periods = []
    for period in value:
        extra = sorted(set(period) - {"mechanism", "valid_from", "valid_until"})
        if extra or "mechanism" not in period or "valid_from" not in period:
            raise InvalidEvent(
                f"{topic.short_name}: field {field}: each period has mechanism, valid_from and (optional) valid_until", field
            )
        until = period.get("valid_until")
        periods.append(
            MechanismPeriod(
                mechanism=period["mechanism"],
                valid_from=_instant(period["valid_from"], f"{field}.valid_from"),
                valid_until=None if until is None else _instant(until, f"{field}.valid_until"),
            )
        )
    return periods


def event_from_line(line: object) -> Event:
    """The event one JSON Lines item describes: ``{"topic": "consent", ...fields}``; raises ``InvalidEvent``."""
    if not isinstance(line, dict):
        raise InvalidEvent(f"expected a JSON object with a topic and its fields, got {type(line).__name__}")
    fields = dict(line)
    name = fields.pop("topic", None)
    try:
        topic = topic_named(name) if isinstance(name, str) else None
    except KeyError:
        topic = None
    if topic is None or topic not in LINE_CONSTRUCTORS:
        known = ", ".join(t.short_name for t in LINE_CONSTRUCTORS)
        raise InvalidEvent(f"field topic: {name!r} is not an input topic (one of {known})", "topic")
    return event_from_json(topic, fields)
