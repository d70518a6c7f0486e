"""Avro object container files of input events, as the generator writes them.

One file holds events of every input topic, in arrival order: its schema is the
union of the input contracts, so each item says which record (and so which
topic) it is. The writer schema travels in the file header, so the file stays
readable whatever the contracts become later.
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Any, cast

import fastavro
from fastavro.schema import to_parsing_canonical_form

from consentflow.contracts.dead_letters import dead_letter
from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import Event
from consentflow.contracts.gate import Gate
from consentflow.contracts.releases import ContractStore, default_store
from consentflow.contracts.timestamp_plan import micros
from consentflow.contracts.topics import DEAD_LETTER, INPUT_TOPICS, Topic, topic_for_record


def input_union_document(store: ContractStore | None = None) -> list[Any]:
    """The union of the newest input contracts as JSON documents, keys in their files' order: an event file's header.

    fastavro writes the header as ``json.dumps`` of the schema it is given; its parsed form orders some keys
    by set iteration, which changes with ``PYTHONHASHSEED``, so the header is written from this document instead
    and the same events give the same bytes in every process.
    """
    store = store or default_store()
    defined: dict[str, Any] = {}
    return [_define_once(store.latest(t.record).schema, "consentflow", defined) for t in INPUT_TOPICS]


def input_union_schema(store: ContractStore | None = None) -> Any:
    """Parsed union of the newest input contracts, the schema of an event file."""
    return fastavro.parse_schema(copy.deepcopy(input_union_document(store)))


def _define_once(schema: Any, namespace: str, defined: dict[str, Any]) -> Any:
    """Copy of ``schema`` where a named type already defined is referenced by name.

    Each contract file defines the enums it uses; in one union schema a name
    may be defined only once, so later definitions (which must be identical)
    become references.
    """
    if isinstance(schema, list):
        return [_define_once(branch, namespace, defined) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed"):
        ns = schema.get("namespace", namespace)
        full = schema["name"] if "." in schema["name"] else f"{ns}.{schema['name']}"
        if full in defined:
            if defined[full] != schema:
                raise ValueError(f"named type {full} is defined differently by two input contracts")
            return full
        defined[full] = schema
        if kind == "record":
            fields = [dict(f, type=_define_once(f["type"], ns, defined)) for f in schema["fields"]]
            return dict(schema, fields=fields)
        return dict(schema)
    if kind == "array":
        return dict(schema, items=_define_once(schema["items"], namespace, defined))
    if kind == "map":
        return dict(schema, values=_define_once(schema["values"], namespace, defined))
    return schema


@contextmanager
def _open(path: str | Path, mode: str) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdout.buffer if "w" in mode else sys.stdin.buffer
    else:
        with open(path, mode) as handle:
            yield handle


def write_events(
    path: str | Path,
    events: Iterable[Event],
    *,
    sync_marker: bytes | None = None,
    codec: str = "deflate",
    metadata: dict[str, str] | None = None,
) -> int:
    """Stream ``events`` into a container file (``-`` for stdout); returns how many were written.

    A fixed ``sync_marker`` makes the bytes a pure function of the events.
    """
    count = 0

    def items() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal count
        for event in events:
            count += 1
            yield f"consentflow.{event.topic.record}", event.record

    schema = input_union_document()
    with _open(path, "wb") as out:
        fastavro.writer(
            out,
            schema,
            items(),
            codec=codec,
            sync_marker=sync_marker or os.urandom(16),
            metadata=metadata or {},
            sync_interval=64_000,
            strict_allow_default=True,
        )
    return count


class ReadingStopped(ContractError):
    """A file that could not be read to its end (cut short, a corrupt block): what came before it counts."""


#: What a dead letter of a reading that stopped before the end of a file says in ``error_type``.
READING_STOPPED = ReadingStopped.__name__


def read_events(
    path: str | Path, *, on_writer_schema: Callable[[Any], None] | None = None
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """Yield ``(topic, record)`` for every event of a file (``-`` for stdin), in file order; strict.

    The events are read as ``read_checked`` reads them (resolved into the reader contracts, through the gate, the
    run's start as their arrival), and the first that fails raises ``ContractError`` instead of becoming a dead letter.
    ``on_writer_schema`` is called with the schema of the records yielded, once the header is read.
    """
    for topic, record in read_checked(path, Gate(), datetime.now(UTC), on_schema=on_writer_schema):
        if topic is DEAD_LETTER:
            raise (ReadingStopped if record["error_type"] == READING_STOPPED else ContractError)(str(path), record["reason"])
        yield topic, record


def read_checked(
    path: str | Path,
    gate: Gate | None,
    arrival: datetime | int,
    *,
    on_schema: Callable[[Any], None] | None = None,
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """Every event of an event file (``-`` for stdin) as ``(topic, record)``, in file order, through the gate.

    The file is an Avro object container file (``write_events``) or JSON Lines (``json_events.event_from_line``),
    told apart by its first bytes. Avro items are resolved from the file's writer schema into the newest reader
    contracts (Avro schema resolution, item by item, when the file was written with other schemas than these), then
    checked by ``gate`` with ``arrival`` (the time of the run) as their arrival; ``gate`` None checks nothing more.
    An item that fails is yielded as ``(DEAD_LETTER, record)``, naming its position (item index and the byte its
    block starts at, or the line number) and the field, and reading goes on. A file that cannot be read to its end
    yields one last dead letter, ``error_type`` ``ReadingStopped``, naming the byte where reading stopped.
    ``on_schema`` is called once the header is read with the schema of the records yielded (None for JSON Lines).
    A file that is neither kind raises ``ContractError``.
    """
    with _open(path, "rb") as raw:
        handle = _Counting(raw)
        head = handle.peek(64)
        if head[:4] == b"Obj\x01":
            yield from _read_avro(path, handle, gate, arrival, on_schema)
        elif head.lstrip()[:1] not in (b"", b"{", b"#"):
            raise ContractError(str(path), "not an Avro object container file, nor JSON Lines (a { starts each event)")
        else:
            if on_schema is not None:
                on_schema(None)
            yield from _read_lines(path, handle, gate, arrival)


class _Counting:
    """A binary stream that knows how many bytes were read from it (standard input cannot ``tell``)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def peek(self, size: int) -> bytes:
        peek = getattr(self._stream, "peek", None)
        return bytes(peek(size)) if peek is not None else b""

    def readline(self) -> bytes:
        data = self._stream.readline()
        self.position += len(data)
        return data


def _letter(topic: str, reason: str, error: Exception, index: int, key: object, value: bytes | None) -> dict[str, Any]:
    raw_key = key.encode(errors="replace") if isinstance(key, str) and key else None
    # A reader's items are plain dicts, events and dead letters alike (``(DEAD_LETTER, record)``).
    return cast(dict[str, Any], dead_letter(topic, reason, error, partition=None, offset=index, key=raw_key, value=value))


def _read_avro(
    path: str | Path, handle: _Counting, gate: Gate | None, arrival: datetime | int, on_schema: Callable[[Any], None] | None
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    try:
        blocks = fastavro.block_reader(cast(IO[bytes], handle), return_record_name=True)
    except Exception as exc:  # noqa: BLE001 -- not an Avro container file: say so, whatever fastavro raised
        raise ContractError(str(path), f"not an Avro object container file: {exc}") from None
    writer = blocks.writer_schema
    reader = input_union_schema()
    written = blocks.metadata.get("avro.schema", "")
    # Files written with the newest contracts (every generated file) are read as they are; any other is resolved.
    resolve = _canonical_text(written) != _reader_canonical()
    if on_schema is not None:
        on_schema(reader if resolve else writer)
    arrived = arrival if isinstance(arrival, int) else micros(arrival)
    topics: dict[str, Topic | None] = {}
    index = -1
    block_at = handle.position
    try:
        for block in blocks:
            first = index + 1
            try:
                for item in block:
                    index += 1
                    name, record = item if isinstance(item, tuple) else ("", item)
                    topic = topics[name] if name in topics else topics.setdefault(name, _topic_of(name))
                    if topic is None or type(record) is not dict:
                        error = ContractError(str(path), f"record {name or 'without a name'} belongs to no input topic")
                        reason = f"item {index} (block at byte {block_at}): {error}"
                        yield DEAD_LETTER, _letter(str(path), reason, error, index, None, None)
                        continue
                    try:
                        if resolve:
                            record = _resolved(topic, writer, reader, name, record)
                        if gate is not None:
                            gate.check(topic, record, arrived)
                    except ContractError as exc:
                        reason = f"item {index} (block at byte {block_at}): {exc}"
                        yield DEAD_LETTER, _letter(topic.short_name, reason, exc, index, record.get(topic.key_field), None)
                        continue
                    yield topic, record
            except Exception as exc:  # noqa: BLE001 -- corrupt bytes inside a block: the rest of it is lost
                reason = f"block at byte {block_at} cannot be decoded from item {index + 1} on: {type(exc).__name__}: {exc}"
                yield DEAD_LETTER, _letter(str(path), reason, ContractError(str(path), reason), index + 1, None, None)
                index = first + block.num_records - 1  # the block's items after the fault are lost with it
            block_at = handle.position
    except Exception as exc:  # noqa: BLE001 -- the file is cut short or a block's framing is broken
        reason = f"reading stopped at byte {block_at}, after item {index}: {type(exc).__name__}: {exc}"
        stop = ReadingStopped(str(path), reason)
        yield DEAD_LETTER, _letter(str(path), reason, stop, index + 1, None, None)


def _topic_of(name: str) -> Topic | None:
    try:
        return topic_for_record(name.rsplit(".", 1)[-1])
    except KeyError:
        return None


def _resolved(topic: Topic, writer: Any, reader: Any, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as written, resolved into the reader contracts (Avro schema resolution: an unknown enum symbol
    becomes the reader's default ``unknown``, which the gate refuses; fields the reader does not know are dropped)."""
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, writer, (name, record))
        out.seek(0)
        resolved = fastavro.schemaless_reader(out, writer, reader, return_record_name=True)
    except Exception as exc:  # noqa: BLE001 -- fastavro's resolution errors are of many kinds
        raise ContractError(topic.short_name, f"cannot be resolved into {topic.record}: {type(exc).__name__}: {exc}") from None
    if not isinstance(resolved, tuple) or not isinstance(resolved[1], dict):
        raise ContractError(topic.short_name, f"cannot be resolved into {topic.record}")
    return resolved[1]


def _read_lines(
    path: str | Path, handle: _Counting, gate: Gate | None, arrival: datetime | int
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """JSON Lines: one event a line, ``{"topic": ..., fields}``; blank lines and lines starting with # are skipped."""
    from consentflow.contracts.json_events import InvalidEvent, event_from_line

    number = 0
    while True:
        line = handle.readline()
        if not line:
            return
        number += 1
        text = line.strip()
        if not text or text.startswith(b"#"):
            continue
        topic_name = str(path)
        try:
            try:
                body = json.loads(text)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidEvent(f"not a JSON object: {exc}") from None
            if isinstance(body, dict) and isinstance(body.get("topic"), str):
                topic_name = body["topic"]
            event = event_from_line(body)
            if gate is not None:
                gate.check(event.topic, event.record, arrival)
        except (InvalidEvent, ContractError) as exc:
            error = exc if isinstance(exc, ContractError) else ContractError(topic_name, str(exc), exc.field)
            reason = f"line {number}: {exc}"
            yield DEAD_LETTER, _letter(topic_name, reason, error, number, None, line.rstrip(b"\r\n"))
            continue
        yield event.topic, event.record


def _canonical_text(schema_json: str | bytes) -> str:
    try:
        return str(to_parsing_canonical_form(json.loads(schema_json)))
    except Exception:  # noqa: BLE001 -- a header fastavro read but we cannot: resolve it, item by item
        return ""


@cache
def _reader_canonical() -> str:
    return str(to_parsing_canonical_form(input_union_document(default_store())))
