"""Timestamps sent as the integers Avro stores, and made into datetimes on the other side: the same values as
fastavro's own reading, for every shape a timestamp can sit in, and no plan where shape cannot tell."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from consentflow.contracts.eventfile import input_union_schema
from consentflow.contracts.timestamp_plan import TIMESTAMP, as_is, record_converters, timestamp_plan

TS = {"type": "long", "logicalType": "timestamp-micros"}
WINDOW = {"type": "record", "name": "Window", "fields": [{"name": "start", "type": TS}, {"name": "end", "type": ["null", TS]}]}
SHAPES = {
    "type": "record",
    "name": "Shapes",
    "namespace": "test",
    "fields": [
        {"name": "at", "type": TS},
        {"name": "maybe", "type": ["null", TS]},
        {"name": "windows", "type": {"type": "array", "items": WINDOW}},
        {"name": "again", "type": ["null", "Window"]},  # a named reference, resolved in the namespace
        {"name": "by_name", "type": {"type": "map", "values": TS}},
        {"name": "count", "type": "long"},
        {"name": "label", "type": ["null", "string"]},
    ],
}
A_TIME = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
BEFORE_EPOCH = datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC)


def _written(schema: Any, records: list[Any]) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return out.getvalue()


def _read(data: bytes) -> tuple[Any, list[Any]]:
    reader = fastavro.reader(io.BytesIO(data))
    return reader.writer_schema, list(reader)


@pytest.mark.parametrize(
    "record",
    [
        {"at": A_TIME, "maybe": None, "windows": [], "again": None, "by_name": {}, "count": 7, "label": None},
        {
            "at": BEFORE_EPOCH,
            "maybe": A_TIME,
            "windows": [{"start": BEFORE_EPOCH, "end": None}, {"start": A_TIME, "end": A_TIME}],
            "again": {"start": A_TIME, "end": BEFORE_EPOCH},
            "by_name": {"x": A_TIME, "y": BEFORE_EPOCH},
            "count": -1,
            "label": "kept",
        },
    ],
)
def test_integers_made_into_datetimes_equal_fastavros_own_reading(
    record: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _written(SHAPES, [record])
    writer_schema, (as_fastavro_reads,) = _read(data)
    plan = timestamp_plan(writer_schema)
    assert plan is not None
    monkeypatch.setitem(fastavro.read.LOGICAL_READERS, "long-timestamp-micros", as_is)
    _, (as_integers,) = _read(data)
    assert isinstance(as_integers["at"], int)
    record_converters(plan)["Shapes"](as_integers)
    assert as_integers == as_fastavro_reads == record


def test_the_event_files_plan_names_every_timestamp_of_every_input_contract() -> None:
    plan = timestamp_plan(input_union_schema())
    assert plan is not None
    assert all(fields[0] == ("occurred_at", TIMESTAMP) for fields in plan.values())
    window = dict(plan["RecipientRecord"])["transfer_mechanisms"]
    assert window == ("array", ("record", (("valid_from", TIMESTAMP), ("valid_until", TIMESTAMP))))


@pytest.mark.parametrize(
    "field_type",
    [
        ["null", TS, "string"],  # an integer or a string: shape tells, but not which integers are times
        ["null", WINDOW, {"type": "record", "name": "Other", "fields": [{"name": "at", "type": TS}]}],
    ],
)
def test_a_union_whose_timestamps_shape_cannot_tell_has_no_plan(field_type: Any) -> None:
    schema = {"type": "record", "name": "Unclear", "fields": [{"name": "value", "type": field_type}]}
    assert timestamp_plan([schema]) is None


def test_records_without_timestamps_need_no_conversion() -> None:
    schema = {"type": "record", "name": "Plain", "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}]}
    assert timestamp_plan([schema]) == {}
