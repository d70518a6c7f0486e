"""Avro object container files of input events, as the generator writes them.

One file holds events of every input topic, in arrival order: its schema is the
union of the input contracts, so each item says which record (and so which
topic) it is. The writer schema travels in the file header, so the file stays
readable whatever the contracts become later.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fastavro

from consentflow.contracts import ContractStore, default_store
from consentflow.errors import ContractError
from consentflow.events import Event
from consentflow.topics import INPUT_TOPICS, Topic, topic_for_record


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


def read_events(
    path: str | Path, *, on_writer_schema: Callable[[Any], None] | None = None
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """Yield ``(topic, record)`` for every event of a container file (``-`` for stdin), in file order.

    ``on_writer_schema`` is called with the file's writer schema once its header is read, before any event.
    """
    with _open(path, "rb") as handle:
        try:
            reader = fastavro.reader(handle, return_record_name=True)
        except Exception as exc:  # noqa: BLE001 -- not an Avro container file: say so, whatever fastavro raised
            raise ContractError(str(path), f"not an Avro object container file: {exc}") from None
        if on_writer_schema is not None:
            on_writer_schema(reader.writer_schema)
        topics: dict[str, Topic] = {}
        for item in reader:
            if not isinstance(item, tuple):
                raise ContractError(str(path), "not an event file: items are not tagged with their record name")
            name, record = item
            topic = topics.get(name)
            if topic is None:
                try:
                    topic = topics[name] = topic_for_record(name.rsplit(".", 1)[-1])
                except KeyError:
                    raise ContractError(str(path), f"record {name} belongs to no input topic") from None
            yield topic, record
