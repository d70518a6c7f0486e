"""Avro binary bodies of the records the processors build, written from a plan made once per contract.

fastavro's writer interprets the schema for every value it writes: a logical
type looked up per field, an enum's symbol found by searching its list, a
union's branch found by validating the value against each. That came to about
7.6 µs per lineage edge, an eighth of the faust worker's main thread (py-spy).
A ``RecordPlan`` walks the contract's parsed schema once; writing a record is
then one pass over the plan's fields, and mypyc compiles this module to C.

The bytes are fastavro's, with the project's logical-type hooks (``contracts``:
canonical UUID text, UTC instants): ``tests/test_avro_writer.py`` compares
them over every contract and a generated year's outputs. The plan accepts
only values whose encoding is unambiguous (an ``int`` that fits, a ``str``, a
known symbol, an aware ``datetime``...) and raises ``PlanMiss`` on anything
else; the codec then writes that record with fastavro, which coerces or names
the problem as it always did. So the plan is a faster path, never a second
meaning of a contract. A schema with a type the plan does not know (a union
of two non-null branches, a map, a float) has no plan at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from consentflow.contracts import uuid_text

_STRING: Final = 0
_LONG: Final = 1
_INT: Final = 2
_BOOLEAN: Final = 3
_TIMESTAMP_MICROS: Final = 4
_ENUM: Final = 5
_ARRAY: Final = 6
_NULLABLE: Final = 7
_RECORD: Final = 8
_BYTES: Final = 9
_UUID: Final = 10
_NULL: Final = 11

_LONG_MIN: Final = -(1 << 63)
_LONG_MAX: Final = (1 << 63) - 1
_INT_MIN: Final = -(1 << 31)
_INT_MAX: Final = (1 << 31) - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_PRIMITIVES: Final = {
    "string": _STRING,
    "long": _LONG,
    "int": _INT,
    "boolean": _BOOLEAN,
    "bytes": _BYTES,
    "null": _NULL,
}
_LOGICAL: Final = {("long", "timestamp-micros"): _TIMESTAMP_MICROS, ("string", "uuid"): _UUID}


class PlanMiss(Exception):
    """A value the plan does not write: the caller writes the record with fastavro instead."""


class NoPlan(Exception):
    """A schema holding a type the plan does not know."""


class Node:
    """How one value of a schema is written."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.symbols: dict[str, int] = {}  # _ENUM: symbol -> index
        self.items: Node | None = None  # _ARRAY: the items; _NULLABLE: the non-null branch
        self.null_first = True  # _NULLABLE: whether the null branch is index 0
        self.fields: list[FieldPlan] = []  # _RECORD


class FieldPlan:
    """One field of a record: its name, its node, and the default written when a record lacks it."""

    def __init__(self, name: str, node: Node, has_default: bool, default: Any) -> None:
        self.name = name
        self.node = node
        self.has_default = has_default
        self.default = default


class RecordPlan:
    """The plan of one record schema: ``write`` appends a record's Avro binary body to a buffer."""

    def __init__(self, parsed_schema: Any) -> None:
        """Build the plan from fastavro's parsed form of a record schema; raises ``NoPlan``."""
        self.root = _node(parsed_schema, {})
        if self.root.kind != _RECORD:
            raise NoPlan("not a record schema")

    def write(self, out: bytearray, record: Any) -> None:
        """Append ``record``'s body to ``out``; raises ``PlanMiss`` (``out`` then holds a partial body)."""
        _write_record(out, self.root, record)


def _node(schema: Any, named: dict[str, Node]) -> Node:
    """The node of ``schema`` (fastavro's parsed form: named types by full name after their first use)."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return Node(_PRIMITIVES[schema])
        if schema in named:
            return named[schema]
        raise NoPlan(f"type {schema}")
    if isinstance(schema, list):
        branches = [_node(branch, named) for branch in schema]
        if len(branches) != 2 or [b.kind == _NULL for b in branches].count(True) != 1:
            raise NoPlan("a union other than null and one type")
        node = Node(_NULLABLE)
        node.null_first = branches[0].kind == _NULL
        node.items = branches[1] if node.null_first else branches[0]
        return node
    if not isinstance(schema, dict):
        raise NoPlan(f"schema {schema!r}")
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical is not None:
        known = _LOGICAL.get((str(kind), str(logical)))
        if known is None:
            raise NoPlan(f"logical type {logical} of {kind}")
        return Node(known)
    if kind == "enum":
        node = Node(_ENUM)
        node.symbols = {symbol: index for index, symbol in enumerate(schema["symbols"])}
        named[schema["name"]] = node
        return node
    if kind == "array":
        node = Node(_ARRAY)
        node.items = _node(schema["items"], named)
        return node
    if kind in ("record", "error"):
        node = Node(_RECORD)
        named[schema["name"]] = node  # before the fields: a record may name itself
        for field in schema["fields"]:
            plan = _node(field["type"], named)
            node.fields.append(FieldPlan(field["name"], plan, "default" in field, field.get("default")))
        return node
    if isinstance(kind, dict | list) or kind in _PRIMITIVES or kind in named:  # a type given as {"type": type}
        return _node(kind, named)
    raise NoPlan(f"type {kind}")


#: Each byte value as a ``bytes`` of its own: ``out += _BYTE[b]`` is one C call where mypyc looks
#: ``bytearray.append`` up by name at every call.
_BYTE: Final = tuple(bytes((value,)) for value in range(256))


def _long(out: bytearray, value: int) -> None:
    """A long as Avro writes it: zig-zag, then 7 bits a byte, low bits first."""
    zigzag = (value << 1) ^ (value >> 63)
    while zigzag > 0x7F:
        out += _BYTE[(zigzag & 0x7F) | 0x80]
        zigzag >>= 7
    out += _BYTE[zigzag]


def _text(out: bytearray, value: str) -> None:
    try:
        data = value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        raise PlanMiss("no UTF-8") from None
    _long(out, len(data))
    out += data


def _write_record(out: bytearray, node: Node, record: Any) -> None:
    if type(record) is not dict:
        raise PlanMiss("not a dict")
    fields: dict[str, Any] = record
    for field in node.fields:
        if field.name in fields:
            value = fields[field.name]
        elif field.has_default:
            value = field.default
        else:
            raise PlanMiss(f"no {field.name}")
        _write(out, field.node, value)


def _write(out: bytearray, node: Node, value: Any) -> None:
    kind = node.kind
    if kind == _STRING:
        if not isinstance(value, str):
            raise PlanMiss("not a str")
        _text(out, value)
    elif kind == _ENUM:
        if not isinstance(value, str) or value not in node.symbols:
            raise PlanMiss("not a symbol")
        _long(out, node.symbols[value])
    elif kind == _TIMESTAMP_MICROS:
        if type(value) is int:
            micros: int = value
        elif isinstance(value, datetime) and (value.tzinfo is UTC or value.utcoffset() is not None):
            delta = value - _EPOCH
            micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        else:
            raise PlanMiss("not an instant")
        if not _LONG_MIN <= micros <= _LONG_MAX:
            raise PlanMiss("out of range")
        _long(out, micros)
    elif kind == _NULLABLE:
        branch = node.items
        assert branch is not None
        if value is None:
            out += _BYTE[0 if node.null_first else 2]  # the branch index, as a long
        else:
            out += _BYTE[2 if node.null_first else 0]
            _write(out, branch, value)
    elif kind == _ARRAY:
        items = node.items
        assert items is not None
        if type(value) is not list and type(value) is not tuple:
            raise PlanMiss("not a list")
        if len(value) > 0:
            _long(out, len(value))
            for item in value:
                _write(out, items, item)
        out += _BYTE[0]
    elif kind == _UUID:
        try:
            _text(out, uuid_text(value))
        except ValueError:
            raise PlanMiss("not a UUID") from None
    elif kind in (_LONG, _INT):
        if type(value) is not int:
            raise PlanMiss("not an int")
        low, high = (_LONG_MIN, _LONG_MAX) if kind == _LONG else (_INT_MIN, _INT_MAX)
        if not low <= value <= high:
            raise PlanMiss("out of range")
        _long(out, value)
    elif kind == _RECORD:
        _write_record(out, node, value)
    elif kind == _BOOLEAN:
        if type(value) is not bool:
            raise PlanMiss("not a bool")
        out += _BYTE[1 if value else 0]
    elif kind == _BYTES:
        if type(value) is not bytes:
            raise PlanMiss("not bytes")
        _long(out, len(value))
        out += value
    elif kind == _NULL:
        if value is not None:
            raise PlanMiss("not None")
    else:
        raise PlanMiss(f"kind {kind}")


def record_plan(parsed_schema: Any) -> RecordPlan | None:
    """The plan of a parsed record schema, or None when it holds a type the plan does not know."""
    try:
        return RecordPlan(parsed_schema)
    except NoPlan:
        return None


__all__ = ["PlanMiss", "RecordPlan", "record_plan"]
