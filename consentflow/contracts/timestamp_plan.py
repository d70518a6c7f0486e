"""Where an Avro writer schema holds ``timestamp-micros`` values, so that they can cross a process boundary as integers.

The embedded runner's decoding process hands decoded events to the runner in
pickles. A ``datetime`` costs the child more to pickle than the rest of its
event (bench/RESULTS.md §5), the integer Avro stores next to nothing: the child
leaves those integers as they are (fastavro's logical reader for
``timestamp-micros`` is an identity there), sends this plan first, and the
runner turns the integers into the same UTC datetimes fastavro makes.

A plan maps each record name (without namespace) to the fields that hold
timestamps, each as a ``Spec``: ``TIMESTAMP``, or ``("record", fields)``,
``("array", spec)``, ``("map", spec)`` for the values inside. A null branch of a
union holds None, which stays None. A schema whose timestamps cannot be found
by shape alone (a union with two branches that may hold one) has no plan:
``timestamp_plan`` returns None, and the child lets fastavro make the datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

TIMESTAMP = "timestamp"
Spec: TypeAlias = str | tuple[str, Any]
Plan: TypeAlias = dict[str, tuple[tuple[str, Spec], ...]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class _NoPlan(Exception):
    """The schema's timestamps cannot be told apart by shape."""


def timestamp_plan(writer_schema: Any) -> Plan | None:
    """The plan of a union of records (an event file's schema), or None when one cannot be made."""
    named: dict[str, Any] = {}
    plan: Plan = {}
    try:
        for branch in writer_schema if isinstance(writer_schema, list) else [writer_schema]:
            spec = _spec(branch, "", named, frozenset())
            if isinstance(branch, dict) and isinstance(spec, tuple):  # a record holding timestamps
                plan[branch["name"].rsplit(".", 1)[-1]] = spec[1]
    except _NoPlan:
        return None
    return plan


def _spec(schema: Any, namespace: str, named: dict[str, Any], open_records: frozenset[str]) -> Spec | None:
    """The spec of the timestamps inside a value of ``schema``, or None when it holds none."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return None
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        target = named.get(full, named.get(schema))
        if target is None:
            raise _NoPlan(f"unknown named type {schema}")
        if full in open_records:
            raise _NoPlan(f"recursive type {full}")
        return _spec(target, namespace, named, open_records)
    if isinstance(schema, list):
        specs = [_spec(branch, namespace, named, open_records) for branch in schema]
        holding = [spec for spec in specs if spec is not None]
        if not holding:
            return None
        others = [branch for branch, spec in zip(schema, specs, strict=True) if spec is None]
        if len(holding) > 1 or any(branch != "null" for branch in others):
            raise _NoPlan("a union whose branches cannot be told apart by shape")
        return holding[0]
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        name = schema["name"]
        space = schema.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        named[full] = schema
        if kind not in ("record", "error"):
            return None
        space = full.rsplit(".", 1)[0] if "." in full else ""
        fields = []
        for field in schema["fields"]:
            spec = _spec(field["type"], space, named, open_records | {full})
            if spec is not None:
                fields.append((field["name"], spec))
        return ("record", tuple(fields)) if fields else None
    if kind == "array":
        inner = _spec(schema["items"], namespace, named, open_records)
        return None if inner is None else ("array", inner)
    if kind == "map":
        inner = _spec(schema["values"], namespace, named, open_records)
        return None if inner is None else ("map", inner)
    if kind == "long" and schema.get("logicalType") == "timestamp-micros":
        return TIMESTAMP
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return None
    return _spec(kind, namespace, named, open_records)  # {"type": <a schema>}


def micros(t: datetime) -> int:
    """Microseconds since the epoch of a UTC instant (exact, no float)."""
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int | None) -> datetime | None:
    """The UTC instant ``value`` microseconds after the epoch, as fastavro reads a ``timestamp-micros``."""
    return None if value is None else _EPOCH + timedelta(0, 0, value)


Converter = Callable[[Any], Any]
#: Turns one record's timestamp integers into datetimes, in place.
RecordConverter = Callable[[dict[str, Any]], None]


def record_converters(plan: Plan) -> dict[str, RecordConverter]:
    """For each record name of ``plan``, a function that turns that record's timestamp integers into datetimes, in
    place. Raises ``OverflowError`` or ``ValueError`` for an integer no datetime can hold."""
    return {name: _record_in_place(fields) for name, fields in plan.items()}


def _record_in_place(fields: tuple[tuple[str, Spec], ...]) -> RecordConverter:
    flat = tuple(name for name, spec in fields if spec == TIMESTAMP)
    nested = tuple((name, _converter(spec)) for name, spec in fields if spec != TIMESTAMP)
    epoch, delta = _EPOCH, timedelta

    def convert(record: dict[str, Any]) -> None:
        for name in flat:  # the common case, ``occurred_at``: no call per field
            value = record[name]
            if value is not None:
                record[name] = epoch + delta(0, 0, value)
        for name, converter in nested:
            record[name] = converter(record[name])

    return convert


def _converter(spec: Spec) -> Converter:
    if isinstance(spec, str):  # TIMESTAMP
        return from_micros
    kind, inner = spec
    if kind == "record":
        in_place = _record_in_place(inner)

        def record(value: Any) -> Any:
            if value is not None:
                in_place(value)
            return value

        return record
    item = _converter(inner)
    if kind == "array":
        return lambda value: None if value is None else [item(each) for each in value]
    return lambda value: None if value is None else {key: item(each) for key, each in value.items()}


def as_is(datum: int, *_: Any) -> int:
    """fastavro's logical reader for ``timestamp-micros`` in the decoding process: the integer, as stored."""
    return datum
