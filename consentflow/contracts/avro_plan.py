"""A contract's record schema made once into a plan, and the Avro binary bodies written and read from it.

fastavro interprets the schema for every value it writes or reads: a logical
type looked up per field, an enum's symbol found by searching its list, a
union's branch found by validating the value against each: writing the
outputs and reading the inputs were a visible share of the faust worker's main
thread (bench/RESULTS.md §1). A ``RecordPlan`` walks the contract's parsed
schema once; a record is then one pass over the plan's fields, and mypyc
compiles this module to C.

Writing is for the records the processors build; reading for any body written
with the same contract. Both agree with fastavro and the project's logical-type
hooks (``contracts``: canonical UUID text, UTC instants):
``tests/unit/contracts/test_avro_plan.py`` compares them over every contract, a generated
year's outputs and damaged bodies. The plan takes only what is unambiguous (an
``int`` that fits, a ``str``, a known symbol, an aware ``datetime``; bytes that
end where the record does, a symbol index in range, UTF-8 text...) and raises
``PlanMiss`` on anything else; the codec then hands that record or body to
fastavro, which coerces, reads or refuses it as it always did, naming the
problem. So the plan is a faster path, never a second meaning of a contract. A
schema with a type the plan does not know (a union of two non-null branches, a
map, a float) has no plan at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from consentflow.contracts.timestamp_plan import from_micros
from consentflow.contracts.timestamp_plan import micros as micros_since_epoch
from consentflow.contracts.uuids import read_uuid, uuid_text

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
    """A value the plan does not write, or a body it does not read: the caller hands it to fastavro instead."""


class NoPlan(Exception):
    """A schema holding a type the plan does not know."""


class Node:
    """How one value of a schema is written and read."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.symbols: dict[str, int] = {}  # _ENUM: symbol -> index
        self.names: list[str] = []  # _ENUM: the symbols in order
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
    """The plan of one record schema: ``write`` appends a record's Avro binary body to a buffer, ``read`` reads one."""

    def __init__(self, parsed_schema: Any) -> None:
        """Build the plan from fastavro's parsed form of a record schema; raises ``NoPlan``."""
        self.root = _node(parsed_schema, {})
        if self.root.kind != _RECORD:
            raise NoPlan("not a record schema")

    def write(self, out: bytearray, record: Any) -> None:
        """Append ``record``'s body to ``out``; raises ``PlanMiss`` (``out`` then holds a partial body)."""
        _write_record(out, self.root, record)

    def read(self, body: bytes) -> dict[str, Any]:
        """The record ``body`` holds, whole: raises ``PlanMiss`` unless the body is one record and nothing more."""
        cursor = _Cursor(body)
        record = _read_record(cursor, self.root)
        if cursor.position != len(body):
            raise PlanMiss("trailing bytes")
        return record


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
        node.names = list(schema["symbols"])
        node.symbols = {symbol: index for index, symbol in enumerate(node.names)}
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
            micros = micros_since_epoch(value)
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


class _Cursor:
    """Where reading a body has got to."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.position = 0


def _read_long(cursor: _Cursor) -> int:
    """A long as Avro writes it (``_long``); a varint past 64 bits, which fastavro would truncate, is a miss."""
    body = cursor.body
    position = cursor.position
    if position >= len(body):
        raise PlanMiss("ends early")
    byte = body[position]
    position += 1
    zigzag = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if position >= len(body) or shift > 63:
            raise PlanMiss("ends early" if shift <= 63 else "varint too long")
        byte = body[position]
        position += 1
        zigzag |= (byte & 0x7F) << shift
        shift += 7
    if zigzag >> 64:
        raise PlanMiss("varint too long")
    cursor.position = position
    return (zigzag >> 1) ^ -(zigzag & 1)


def _read_bytes(cursor: _Cursor) -> bytes:
    size = _read_long(cursor)
    start = cursor.position
    end = start + size
    if size < 0 or end > len(cursor.body):
        raise PlanMiss("ends early")
    cursor.position = end
    return cursor.body[start:end]


def _read_text(cursor: _Cursor) -> str:
    try:
        return _read_bytes(cursor).decode()
    except UnicodeDecodeError:
        raise PlanMiss("not UTF-8") from None


def _read_record(cursor: _Cursor, node: Node) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for field in node.fields:
        record[field.name] = _read(cursor, field.node)
    return record


def _read(cursor: _Cursor, node: Node) -> Any:
    kind = node.kind
    if kind == _STRING:
        return _read_text(cursor)
    if kind == _ENUM:
        index = _read_long(cursor)
        if not 0 <= index < len(node.names):
            raise PlanMiss("no such symbol")
        return node.names[index]
    if kind == _TIMESTAMP_MICROS:
        try:
            return from_micros(_read_long(cursor))
        except (OverflowError, ValueError):
            raise PlanMiss("not an instant") from None
    if kind == _NULLABLE:
        branch = node.items
        assert branch is not None
        index = _read_long(cursor)
        if index == (0 if node.null_first else 1):
            return None
        if index != (1 if node.null_first else 0):
            raise PlanMiss("no such branch")
        return _read(cursor, branch)
    if kind == _ARRAY:
        items = node.items
        assert items is not None
        values: list[Any] = []
        count = _read_long(cursor)
        while count != 0:
            if count < 0:  # a block that gives its size in bytes too: fastavro reads those
                raise PlanMiss("sized block")
            for _ in range(count):
                values.append(_read(cursor, items))
            count = _read_long(cursor)
        return values
    if kind == _UUID:
        try:
            return read_uuid(_read_text(cursor))
        except ValueError:
            raise PlanMiss("not a UUID") from None
    if kind in (_LONG, _INT):
        return _read_long(cursor)
    if kind == _RECORD:
        return _read_record(cursor, node)
    if kind == _BOOLEAN:
        flag = _read_byte(cursor)
        if flag > 1:
            raise PlanMiss("not a boolean")
        return flag == 1
    if kind == _BYTES:
        return _read_bytes(cursor)
    if kind == _NULL:
        return None
    raise PlanMiss(f"kind {kind}")


def _read_byte(cursor: _Cursor) -> int:
    """One byte as it stands (a boolean is one byte, not a varint)."""
    if cursor.position >= len(cursor.body):
        raise PlanMiss("ends early")
    byte = cursor.body[cursor.position]
    cursor.position += 1
    return byte


def record_plan(parsed_schema: Any) -> RecordPlan | None:
    """The plan of a parsed record schema, or None when it holds a type the plan does not know."""
    try:
        return RecordPlan(parsed_schema)
    except NoPlan:
        return None


__all__ = ["PlanMiss", "RecordPlan", "record_plan"]
