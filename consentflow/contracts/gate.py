"""The gate every input passes, whichever way it came in: the edge checks of its contract, and event-time bounds.

A faust worker (after the codec), the embedded runner (in its decoding process),
a replay, ``produce`` and the collector all hand what they read to ``Gate.check``
after it was resolved into the project's own reader contract (the newest release
in ``schemas/``). The gate calls the rules of ``edge_checks``, the same functions
the event constructors call, on every field, so an event read from Kafka or a
file passes exactly what an event built in ``consentflow.contracts.events`` passes: ids
pseudonymous, ``event_id`` a UUID, times UTC instants, enum symbols of the
contract and never the reader default ``unknown``, a disclosure naming a
category, a registry record's name, country and periods. What fails raises
``ContractError`` naming topic, field and reason; the caller makes it a dead
letter and goes on.

The checks are compiled once per contract into one function that reads every
field and tries it with a fast test (a set or dict lookup, a type test, one
regular-expression match), calling the field's rule only when that test fails:
the rule raises naming the field, or passes a value the test could not tell.
A string field a contract adds without a rule here is refused when the gate is
made, not passed unchecked.

Event time is bounded [DESIGN: event time decides]: not before ``earliest``
(2000-01-01 by default), not later than the event's arrival plus ``skew`` (one
hour by default). Arrival is the Kafka message timestamp on the Kafka paths (the
collector's receive time becomes that timestamp, so a replay repeats every live
decision), and the time of the run for a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from consentflow.contracts import edge_checks
from consentflow.contracts.errors import ContractError
from consentflow.contracts.null_values import null_value
from consentflow.contracts.records import InputRecord
from consentflow.contracts.releases import ContractStore, default_store
from consentflow.contracts.timestamp_plan import micros
from consentflow.contracts.topics import Topic
from consentflow.contracts.uuids import UUID_TEXT

if TYPE_CHECKING:
    from consentflow.contracts.codec import Codec

#: Environment variables that set the bounds.
EARLIEST_VARIABLE = "CONSENTFLOW_EARLIEST_EVENT_TIME"
SKEW_VARIABLE = "CONSENTFLOW_MAX_EVENT_SKEW"
DEFAULT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_SKEW = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_US = micros(datetime.min.replace(tzinfo=UTC))
_LAST_US = micros(datetime.max.replace(tzinfo=UTC))

Rule = Callable[[str, str, Any], Any]

#: The rule of each string field of the input contracts, by field name.
STRING_RULES: dict[str, Rule] = {
    "subject_id": edge_checks.pseudonymous_id,
    "recipient_id": edge_checks.pseudonymous_id,
    "vendor_id": edge_checks.pseudonymous_id,
    "notice_id": edge_checks.pseudonymous_id,
    "processor_id": edge_checks.pseudonymous_id,
    "counterpart_subject_id": edge_checks.pseudonymous_id,
    "campaign_id": edge_checks.pseudonymous_id,
    "request_id": edge_checks.pseudonymous_id,
    "source_service": edge_checks.service_name,
    "policy_version": edge_checks.policy_version,
    "cookie_name": edge_checks.cookie_name,
    "name": edge_checks.recipient_name,
    "country": edge_checks.country,
    "reason_code": edge_checks.reason_code,
    "purpose": edge_checks.purpose_name,  # a rights request's (RightsEvent v2); the other contracts' purpose is an enum
    "incident_id": edge_checks.pseudonymous_id,
    "delay_reason": edge_checks.reason_line,
}

#: Checks over several fields of a record, by contract name, run after the fields' own: what ties one field to another.
RECORD_RULES: dict[str, Callable[[str, Mapping[str, Any]], None]] = {
    "RightsEvent": edge_checks.rights_request,  # an extension's months, a withdrawal's purpose (v2)
    "IncidentEvent": edge_checks.incident_shape,  # the fields of each kind of incident event [12; Art. 33, 34]
}


def instant_micros(topic: str, field: str, value: object) -> int:
    """Microseconds since the epoch of a UTC instant: a datetime with a zone, or the integer Avro stores
    (``timestamp-micros`` is UTC by definition; the decoding process hands those over)."""
    if type(value) is int:
        if not _FIRST_US <= value <= _LAST_US:
            raise ContractError(topic, f"{value} µs after 1970-01-01 is no time a datetime can hold (years 1-9999)", field)
        return value
    if type(value) is datetime and value.tzinfo is UTC:  # what the codec makes: nothing to convert
        return micros(value)
    return micros(edge_checks.instant(topic, field, value))


def _text(us: int) -> str:
    try:
        return (_EPOCH + timedelta(microseconds=us)).isoformat()
    except OverflowError:
        return f"{us} µs after 1970-01-01"


@dataclass(frozen=True)
class EventTimeBounds:
    """The event times accepted: from ``earliest`` to the arrival plus ``skew``."""

    earliest: datetime = DEFAULT_EARLIEST
    skew: timedelta = DEFAULT_SKEW

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EventTimeBounds:
        """The bounds ``CONSENTFLOW_EARLIEST_EVENT_TIME`` (ISO 8601; UTC when it has no zone) and
        ``CONSENTFLOW_MAX_EVENT_SKEW`` (seconds) set, else the defaults; ``ValueError`` in one line for a bad value."""
        env = os.environ if environ is None else environ
        earliest, skew = DEFAULT_EARLIEST, DEFAULT_SKEW
        if env.get(EARLIEST_VARIABLE):
            try:
                earliest = datetime.fromisoformat(env[EARLIEST_VARIABLE])
            except ValueError:
                raise ValueError(f"{EARLIEST_VARIABLE}={env[EARLIEST_VARIABLE]!r} is not an ISO 8601 time") from None
            earliest = earliest.replace(tzinfo=UTC) if earliest.utcoffset() is None else earliest.astimezone(UTC)
        if env.get(SKEW_VARIABLE):
            try:
                seconds = float(env[SKEW_VARIABLE])
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds < 10 * 365 * 86_400:
                raise ValueError(f"{SKEW_VARIABLE}={env[SKEW_VARIABLE]!r} is not a number of seconds (0 or more)")
            skew = timedelta(seconds=seconds)
        return cls(earliest, skew)


class Gate:
    """The edge checks and time bounds of every input topic's reader contract, compiled once per contract."""

    def __init__(self, bounds: EventTimeBounds | None = None, store: ContractStore | None = None) -> None:
        self.bounds = bounds or EventTimeBounds.from_env()
        self.store = store or default_store()
        self._earliest = micros(self.bounds.earliest)
        self._skew = self.bounds.skew // timedelta(microseconds=1)
        self._checks: dict[str, Callable[[Mapping[str, Any]], Any]] = {}

    def check(self, topic: Topic, record: Mapping[str, Any], arrival: datetime | int) -> None:
        """Raise ``ContractError`` naming the field when ``record`` (in the topic's reader contract) fails a check;
        ``arrival`` (a UTC instant, or its microseconds) bounds its ``occurred_at``."""
        name = topic.short_name
        check = self._checks.get(name)
        if check is None:
            check = self._checks[name] = self._compile(topic)
        occurred = check(record)
        when = occurred if type(occurred) is int else instant_micros(name, "occurred_at", occurred)
        if when < self._earliest:
            raise ContractError(
                name,
                f"{_text(when)} is before the earliest event time accepted, {self.bounds.earliest.isoformat()} "
                f"({EARLIEST_VARIABLE})",
                "occurred_at",
            )
        arrived = arrival if type(arrival) is int else micros(arrival)  # type: ignore[arg-type]
        if when > arrived + self._skew:
            raise ContractError(
                name,
                f"{_text(when)} is later than the event's arrival, {_text(arrived)}, plus the skew accepted, "
                f"{self.bounds.skew.total_seconds():g} s ({SKEW_VARIABLE})",
                "occurred_at",
            )

    def admit(
        self,
        codec: Codec,
        topic: Topic,
        value: bytes | None,
        timestamp_ms: int,
        *,
        name: str,
        partition: int,
        offset: int,
        key: bytes | None,
    ) -> InputRecord:
        """The record an input message ``name[partition]@offset`` stands for, as every Kafka reader takes one (a worker,
        a replay, the registry feed, the sink's copy of the registry): ``value`` decoded and checked, its Kafka
        timestamp as its arrival; a null value is ``null_values.null_value``'s decision (on the registry a removal,
        which names no recipient to check; elsewhere ``ContractError``). Raises ``ContractError`` naming what is wrong."""
        if value is None:
            return null_value(topic, name, partition, offset, key, timestamp_ms)
        record = codec.decode(topic, value)
        self.check(topic, record, timestamp_ms * 1000)
        return cast(InputRecord, record)  # decoded into the input topic's contract, and checked

    def _compile(self, topic: Topic) -> Callable[[Mapping[str, Any]], Any]:
        """One function for the contract: every field read, each tried by its fast test and, when that fails, by its
        rule (which raises naming the field, or passes a value the fast test could not tell); it returns ``occurred_at``.
        Made with ``exec`` from the contract's fields, once: cheaper than a loop over (field, rule) pairs (bench/RESULTS.md §2)."""
        contract = self.store.latest(topic.record)
        fields: list[tuple[str, FieldCheck]] = [
            (f["name"], _field_check(topic.record, f["name"], f["type"])) for f in contract.schema["fields"]
        ]
        if topic.record == "DisclosureEvent":  # a disclosure hands over some data [4, 7]
            fields.append(("categories", FieldCheck(_names_a_category)))
        env: dict[str, Any] = {"_missing": partial(_missing, topic), "NAME": topic.short_name}
        reads, tests = [], []
        for n, (name, check) in enumerate(fields):
            reads.append(f"        v{n} = record[{name!r}]")
            env[f"r{n}"] = check.rule
            for key, value in check.env.items():
                env[f"{key}{n}"] = value
            fast = check.fast.format(v=f"v{n}", n=n) if check.fast else "False"
            tests.append(f"    if not ({fast}):\n        r{n}(NAME, {name!r}, v{n})")
        occurred = next(n for n, (name, _) in enumerate(fields) if name == "occurred_at")
        record_rule = RECORD_RULES.get(topic.record)
        if record_rule is not None:
            env["RR"] = record_rule
            tests.append("    RR(NAME, record)")
        lines = ["def check(record):", "    try:", *reads, "    except KeyError as exc:", "        _missing(exc)", *tests]
        exec("\n".join([*lines, f"    return v{occurred}"]), env)  # our own source, made from the contract's field names
        compiled: Callable[[Mapping[str, Any]], Any] = env["check"]
        return compiled


def _missing(topic: Topic, exc: KeyError) -> None:
    raise ContractError(topic.short_name, f"required by {topic.record} but missing", str(exc.args[0])) from None


@dataclass(frozen=True)
class FieldCheck:
    """A field's rule, and a fast test that passes most values without calling it: an expression over ``{v}`` (the
    value) and the names in ``env``, each written followed by ``{n}`` (where the field's number goes)."""

    rule: Rule
    fast: str | None = None
    env: dict[str, Any] = field(default_factory=dict)


def _names_a_category(topic: str, field: str, value: Any) -> None:
    edge_checks.names_a_category(topic, field, value)


def _field_check(record: str, field: str, avro: Any) -> FieldCheck:
    """The check of one field of a contract, from its Avro type (and its name, for strings)."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise ValueError(f"{record}.{field}: the gate knows no rule for a union of {avro}")
        inner = _field_check(record, field, branches[0])
        if len(branches) == len(avro):
            return inner
        fast = f"{{v}} is None or ({inner.fast})" if inner.fast else "{v} is None"
        return FieldCheck(partial(_nullable, inner.rule), fast, inner.env)
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "uuid":
            return FieldCheck(edge_checks.event_id, "type({v}) is str and U{n}({v}) is not None", {"U": UUID_TEXT.fullmatch})
        if logical == "timestamp-micros":
            fast = "(type({v}) is int and F{n} <= {v} <= L{n}) or (type({v}) is D{n} and {v}.tzinfo is Z{n})"
            return FieldCheck(instant_micros, fast, {"F": _FIRST_US, "L": _LAST_US, "D": datetime, "Z": UTC})
        kind = avro.get("type")
        if kind == "enum":
            members = edge_checks.known_symbols(avro["symbols"])
            return FieldCheck(partial(_symbol, avro["name"], members), "type({v}) is str and {v} in M{n}", {"M": members})
        if kind == "array":
            items = avro["items"]
            if isinstance(items, dict) and items.get("type") == "enum":
                members = edge_checks.known_symbols(items["symbols"])
                known = frozenset(members)  # a list of symbols (Avro decodes arrays as lists of str) in one call
                return FieldCheck(
                    partial(_symbols, items["name"], members), "type({v}) is list and K{n}.issuperset({v})", {"K": known}
                )
            if isinstance(items, dict) and items.get("name") == "MechanismPeriod":
                mechanism = next(f["type"] for f in items["fields"] if f["name"] == "mechanism")
                return FieldCheck(partial(_mechanism_periods, edge_checks.known_symbols(mechanism["symbols"])))
            raise ValueError(f"{record}.{field}: the gate knows no rule for an array of {items}")
        return _field_check(record, field, kind)
    if avro == "string":
        try:
            rule = STRING_RULES[field]
        except KeyError:
            raise ValueError(f"{record}.{field}: a string field without an edge rule (add one to gate.STRING_RULES)") from None
        check, passed = _remembering(rule)
        return FieldCheck(check, "type({v}) is str and {v} in P{n}", {"P": passed})
    if avro == "boolean":
        return FieldCheck(_boolean, "type({v}) is bool")
    if avro == "int":
        return FieldCheck(edge_checks.integer, "type({v}) is int and -2147483648 <= {v} <= 2147483647")
    raise ValueError(f"{record}.{field}: the gate knows no rule for type {avro}")


#: Values each string rule remembers having passed: ids, services and versions repeat from event to event.
REMEMBERED = 100_000


def _remembering(rule: Rule) -> tuple[Rule, set[str]]:
    """``rule``, answered from a set for a text it passed before: the same subject's id, the same service, event after
    event (a set lookup, against a regular expression's match); the first ``REMEMBERED`` texts are kept."""
    passed: set[str] = set()

    def check(topic: str, field: str, value: Any) -> None:
        if type(value) is str and value in passed:
            return
        rule(topic, field, value)
        if len(passed) < REMEMBERED and type(value) is str:
            passed.add(value)

    return check, passed


def _nullable(rule: Rule, topic: str, field: str, value: Any) -> None:
    if value is not None:
        rule(topic, field, value)


def _symbol(kind: str, members: dict[str, str], topic: str, field: str, value: Any) -> None:
    if value not in members:  # the common case in one lookup; the rule itself says why
        edge_checks.symbol(topic, field, kind, members, value)


def _symbols(kind: str, members: dict[str, str], topic: str, field: str, values: Any) -> None:
    if type(values) is not list or not all(type(v) is str and v in members for v in values):
        edge_checks.symbols(topic, field, kind, members, values)


def _boolean(topic: str, field: str, value: Any) -> None:
    if type(value) is not bool:
        raise ContractError(topic, f"{value!r} is not a boolean", field)


def _mechanism_periods(members: dict[str, str], topic: str, field: str, periods: Any) -> None:
    """Each period of a registry record [7]: a mechanism of the contract, UTC instants, an end after the start."""
    if type(periods) is not list:
        raise ContractError(topic, f"expected a list of periods, got {type(periods).__name__}", field)
    for period in periods:
        edge_checks.symbol(topic, f"{field}.mechanism", "TransferMechanism", members, period.get("mechanism"))
        start = instant_micros(topic, f"{field}.valid_from", period.get("valid_from"))
        end = period.get("valid_until")
        end_us = None if end is None else instant_micros(topic, f"{field}.valid_until", end)
        edge_checks.period_order(topic, f"{field}.valid_until", start, end_us)
