"""Avro encoding of the pipeline's records, in two framings.

* ``SingleObjectCodec`` (default, registry-free): Avro single-object encoding,
  ``C3 01`` + the writer schema's CRC-64-AVRO fingerprint + the Avro body. The
  writer schema is found by fingerprint among every version in ``schemas/``, so
  an auditor holding the folder can decode any message ever written.
* ``ConfluentCodec``: Confluent wire format, ``00`` + 4-byte schema id + body,
  schema ids resolved through confluent-kafka's Schema Registry client.

Both decode into the newest release of the topic's record (Avro schema
resolution), and both report every failure as one ``ContractError`` naming the
topic and the field or reason, never a bare library exception.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

import fastavro
from fastavro.validation import ValidationError, validate

from consentflow.contracts.avro_plan import PlanMiss
from consentflow.contracts.errors import ContractError
from consentflow.contracts.headers import CONFLUENT, SINGLE_OBJECT, Headers, contract_headers
from consentflow.contracts.releases import Contract, ContractStore, default_store, is_naive
from consentflow.contracts.topics import Topic, topic_named
from consentflow.contracts.uuids import uuid_text

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = len(CONFLUENT_MAGIC) + 4


def _topic_name(topic: Topic | str) -> str:
    return topic if isinstance(topic, str) else topic.short_name


def _resolve(topic: Topic | str) -> Topic:
    if isinstance(topic, Topic):
        return topic
    try:
        return topic_named(topic)
    except KeyError as exc:
        raise ContractError(topic, str(exc.args[0])) from None


def write_body(topic: Topic | str, contract: Contract, record: Mapping[str, Any], *, trusted: bool = False) -> bytes:
    """Avro binary body of ``record`` under ``contract``; raises ``ContractError`` naming the field.

    ``trusted`` skips the validation pass for records this project's processors
    built (outputs); everything from outside is validated here, at the edge.
    A trusted record is written from the contract's ``RecordPlan`` (the same
    bytes in under half of fastavro's time), or by fastavro when the plan
    misses a value.
    """
    if trusted:
        plan = contract.plan
        if plan is not None:
            body = bytearray()
            try:
                plan.write(body, record)
                return bytes(body)
            except PlanMiss:
                pass  # fastavro writes it as it always did, or names what is wrong
    out = io.BytesIO()
    try:
        datum = record if type(record) is dict else dict(record)
        fastavro.schemaless_writer(out, contract.parsed, datum, strict=False, strict_allow_default=True)
        # The writer coerces instead of refusing ("yes" for a boolean, 1.7 for a
        # long, an int beyond 32 bits) and drops fields the contract does not know
        # (one could carry a personal data value): validate so neither lands.
        if not trusted and not validate(datum, contract.parsed, raise_errors=False):
            raise TypeError(f"record does not match the {contract.name} contract")
    except Exception as exc:  # noqa: BLE001 -- fastavro raises ValueError, TypeError, AttributeError...
        raise _encode_error(_topic_name(topic), contract, record, exc) from None
    return out.getvalue()


def _encode_error(topic: str, contract: Contract, record: Mapping[str, Any], exc: Exception) -> ContractError:
    if not isinstance(record, Mapping):
        return ContractError(topic, f"expected a {contract.name} record (a mapping), got {type(record).__name__}")
    known = [f["name"] for f in contract.schema["fields"]]
    extra = sorted(set(record) - set(known))
    if extra:
        return ContractError(topic, f"not in the {contract.name} contract", field=", ".join(map(str, extra)))
    for field in contract.schema["fields"]:
        if field["name"] not in record and "default" not in field:
            return ContractError(topic, f"required by {contract.name} but missing", field=field["name"])
    logical = _logical_problem(contract.schema, record, "")
    if logical is not None:
        return ContractError(topic, logical[1], field=logical[0])
    try:
        validate(dict(record), contract.parsed, raise_errors=True)
    except ValidationError as verr:
        first = verr.errors[0]
        path = str(first.field)
        for prefix in (contract.full_name + ".", contract.schema.get("namespace", "") + "."):
            if path.startswith(prefix):
                path = path[len(prefix) :]
                break
        declared = _field_types(contract.schema).get(path if "." in path else f"{contract.name}.{path}", first.schema)
        return ContractError(
            topic, f"{first.datum!r} ({type(first.datum).__name__}) does not match {_describe(declared)}", field=path
        )
    except Exception as verr:  # noqa: BLE001 -- any validator failure becomes the typed error
        return ContractError(topic, f"{type(verr).__name__}: {verr}")
    return ContractError(topic, f"{type(exc).__name__}: {exc}")


def _logical_problem(schema: Any, datum: Any, path: str) -> tuple[str, str] | None:
    """(field path, reason) of the first malformed uuid, naive timestamp or text without UTF-8 anywhere in ``datum``."""
    if isinstance(datum, str):
        try:
            datum.encode()
        except UnicodeEncodeError as bad:  # a lone surrogate: Avro strings are UTF-8
            return path, f"text has no UTF-8 form: {bad.reason} at position {bad.start}"
    if isinstance(schema, list):  # a union: the branch that objects to the datum
        return next((p for p in (_logical_problem(branch, datum, path) for branch in schema) if p), None)
    if not isinstance(schema, dict):
        return None
    if schema.get("logicalType") == "uuid" and isinstance(datum, str | UUID):
        try:
            uuid_text(datum)
        except ValueError as bad:
            return path, f"{bad} (logicalType uuid)"
    elif schema.get("logicalType") == "timestamp-micros" and is_naive(datum):
        return path, f"{datum.isoformat()} has no time zone; timestamps are UTC instants (timestamp-micros)"
    elif schema.get("type") == "record" and isinstance(datum, Mapping):
        for field in schema["fields"]:
            if field["name"] in datum:
                name = f"{path}.{field['name']}" if path else field["name"]
                found = _logical_problem(field["type"], datum[field["name"]], name)
                if found:
                    return found
    elif schema.get("type") == "array" and isinstance(datum, list | tuple):
        for item in datum:
            found = _logical_problem(schema["items"], item, path)
            if found:
                return found
    return None


def _field_types(schema: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Map ``Record.field`` to its declared type, for every record nested in ``schema``."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            _field_types(branch, found)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for field in schema["fields"]:
                found[f"{schema['name']}.{field['name']}"] = field["type"]
                _field_types(field["type"], found)
        elif schema.get("type") == "array":
            _field_types(schema["items"], found)
    return found


def _describe(schema: Any) -> str:
    """Short human description of an Avro type for error messages."""
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            return f"enum {schema['name']} (one of {', '.join(schema['symbols'])})"
        if "logicalType" in schema:
            return f"{schema['type']} ({schema['logicalType']})"
        if schema.get("type") == "array":
            return f"array of {_describe(schema['items'])}"
        if schema.get("type") == "record":
            return f"record {schema['name']}"
        return str(schema.get("type"))
    if isinstance(schema, list):
        return " or ".join(_describe(s) for s in schema)
    return str(schema)


def read_body(topic: Topic | str, writer: Contract, reader: Contract, body: bytes) -> dict[str, Any]:
    """Decode an Avro body written with ``writer`` into ``reader``'s shape.

    A body written with the contract it is read with is read from the contract's ``RecordPlan``
    (the same record in about half of fastavro's time), or by fastavro when the plan misses.
    """
    name = _topic_name(topic)
    if writer.full_name != reader.full_name:
        raise ContractError(name, f"message was written as {writer.full_name}, but this topic carries {reader.full_name}")
    plan = writer.plan if writer is reader and type(body) is bytes else None
    if plan is not None:
        try:
            return plan.read(body)
        except PlanMiss:
            pass  # fastavro reads it, or names what is wrong
    buf = io.BytesIO(body)
    try:
        if writer is reader:
            record = fastavro.schemaless_reader(buf, writer.parsed, None)
        else:
            record = fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
    except (EOFError, StopIteration, IndexError, struct.error):
        raise ContractError(name, f"truncated payload: {len(body)} body bytes end before the {writer.name} record does") from None
    except Exception as exc:  # noqa: BLE001 -- corrupt bytes surface as many library errors
        raise ContractError(name, f"corrupt payload for {writer.name} v{writer.version}: {type(exc).__name__}: {exc}") from None
    if buf.tell() != len(body):
        raise ContractError(name, f"{len(body) - buf.tell()} trailing bytes after the {writer.name} record")
    if not isinstance(record, dict):
        raise ContractError(name, f"decoded a {type(record).__name__}, not a {reader.name} record")
    return record


class Codec(Protocol):
    """Turns a topic's records into message bytes and back."""

    def encode(self, topic: Topic | str, record: Mapping[str, Any], *, trusted: bool = False) -> bytes:
        """Validate (unless ``trusted``: built by our processors) and frame one record; raises ``ContractError``."""
        ...

    def decode(self, topic: Topic | str, data: bytes) -> dict[str, Any]:
        """Unframe and decode one message; raises ``ContractError``."""
        ...

    def headers(self, topic: Topic | str) -> Headers:
        """The Kafka headers naming what ``encode`` writes for ``topic`` (``consentflow.contracts.headers``; shared)."""
        ...


class SingleObjectCodec:
    """Registry-free framing: Avro single-object encoding over the contracts in ``schemas/``."""

    def __init__(self, store: ContractStore | None = None) -> None:
        self.store = store or default_store()

    def encode(self, topic: Topic | str, record: Mapping[str, Any], *, trusted: bool = False) -> bytes:
        """Single-object encoding of ``record`` under the newest release of the topic's contract."""
        t = _resolve(topic)
        contract = self.store.latest(t.record)
        return SINGLE_OBJECT_MAGIC + contract.fingerprint + write_body(t, contract, record, trusted=trusted)

    def headers(self, topic: Topic | str) -> Headers:
        """The headers of what ``encode`` writes: the topic's newest contract, single-object framed."""
        return contract_headers(self.store.latest(_resolve(topic).record), SINGLE_OBJECT)

    def decode(self, topic: Topic | str, data: bytes) -> dict[str, Any]:
        """Decode single-object-encoded bytes, finding the writer schema by fingerprint."""
        t = _resolve(topic)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ContractError(t.short_name, f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _SINGLE_OBJECT_HEADER:
            raise ContractError(
                t.short_name,
                f"truncated header: {len(data)} bytes, single-object encoding needs at least {_SINGLE_OBJECT_HEADER}",
            )
        if data[:2] != SINGLE_OBJECT_MAGIC:
            hint = " (this is Confluent wire format; configure the schema registry)" if data[:1] == CONFLUENT_MAGIC else ""
            raise ContractError(
                t.short_name, f"wrong magic bytes {data[:2].hex()}, expected c301 (Avro single-object encoding){hint}"
            )
        fp = data[2:_SINGLE_OBJECT_HEADER]
        writer = self.store.by_fingerprint(fp)
        if writer is None:
            raise ContractError(t.short_name, f"unknown schema fingerprint {fp.hex()}: no contract in {self.store.root} has it")
        return read_body(t, writer, self.store.latest(t.record), data[_SINGLE_OBJECT_HEADER:])


class ConfluentCodec:
    """Confluent wire format, with schema ids from a Schema Registry (TopicNameStrategy subjects)."""

    def __init__(self, registry: Any, store: ContractStore | None = None, prefix: str = "consentflow") -> None:
        # ``registry`` is a confluent_kafka.schema_registry.SchemaRegistryClient.
        self.registry = registry
        self.store = store or default_store()
        self.prefix = prefix
        self._id_for_topic: dict[str, int] = {}
        self._writer_for_id: dict[int, Contract] = {}

    @classmethod
    def from_url(cls, url: str, store: ContractStore | None = None, prefix: str = "consentflow") -> ConfluentCodec:
        """A codec talking to the registry at ``url``."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(SchemaRegistryClient({"url": url}), store, prefix)

    def subject(self, topic: Topic) -> str:
        """Registry subject of a topic's values (TopicNameStrategy)."""
        return f"{topic.name(self.prefix)}-value"

    def schema_id(self, topic: Topic) -> int:
        """Id of the topic's newest contract, registering it on first use."""
        cached = self._id_for_topic.get(topic.short_name)
        if cached is not None:
            return cached
        from confluent_kafka.schema_registry import Schema

        contract = self.store.latest(topic.record)
        try:
            # The full document, not the Parsing Canonical Form: that strips field and
            # enum defaults (and logical types), so the registry's compatibility check
            # would refuse any later version that adds a field with a default.
            schema_str = json.dumps(contract.schema, separators=(",", ":"))
            schema_id = int(self.registry.register_schema(self.subject(topic), Schema(schema_str, "AVRO")))
        except Exception as exc:  # noqa: BLE001 -- registry client raises HTTP and connection errors alike
            raise ContractError(topic.short_name, f"schema registry refused {contract.name} v{contract.version}: {exc}") from None
        self._id_for_topic[topic.short_name] = schema_id
        self._writer_for_id[schema_id] = contract
        return schema_id

    def encode(self, topic: Topic | str, record: Mapping[str, Any], *, trusted: bool = False) -> bytes:
        """Confluent-framed encoding of ``record`` under the topic's newest contract."""
        t = _resolve(topic)
        contract = self.store.latest(t.record)
        body = write_body(t, contract, record, trusted=trusted)
        return CONFLUENT_MAGIC + struct.pack(">I", self.schema_id(t)) + body

    def headers(self, topic: Topic | str) -> Headers:
        """The headers of what ``encode`` writes: the topic's newest contract, Confluent framed."""
        return contract_headers(self.store.latest(_resolve(topic).record), CONFLUENT)

    def decode(self, topic: Topic | str, data: bytes) -> dict[str, Any]:
        """Decode Confluent-framed bytes, fetching the writer schema by id."""
        t = _resolve(topic)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ContractError(t.short_name, f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < _CONFLUENT_HEADER:
            raise ContractError(
                t.short_name, f"truncated header: {len(data)} bytes, Confluent wire format needs at least {_CONFLUENT_HEADER}"
            )
        if data[:1] != CONFLUENT_MAGIC:
            hint = (
                " (this is Avro single-object encoding; use the registry-free codec)" if data[:2] == SINGLE_OBJECT_MAGIC else ""
            )
            raise ContractError(t.short_name, f"wrong magic byte {data[:1].hex()}, expected 00 (Confluent wire format){hint}")
        (schema_id,) = struct.unpack(">I", data[1:_CONFLUENT_HEADER])
        writer = self._writer_for_id.get(schema_id) or self._fetch_writer(t, schema_id)
        return read_body(t, writer, self.store.latest(t.record), data[_CONFLUENT_HEADER:])

    def _fetch_writer(self, topic: Topic, schema_id: int) -> Contract:
        try:
            registered = self.registry.get_schema(schema_id)
        except Exception as exc:  # noqa: BLE001 -- registry client raises HTTP and connection errors alike
            raise ContractError(topic.short_name, f"unknown schema id {schema_id}: the registry answered {exc}") from None
        try:
            canonical = fastavro.schema.to_parsing_canonical_form(json.loads(registered.schema_str))
        except Exception as exc:  # noqa: BLE001 -- a registered schema may be any text
            raise ContractError(topic.short_name, f"schema id {schema_id} is not a valid Avro schema: {exc}") from None
        # Prefer our released contract (same canonical form) so resolution uses a known shape.
        for contract in self.store.all():
            if contract.canonical == canonical:
                self._writer_for_id[schema_id] = contract
                return contract
        raise ContractError(topic.short_name, f"schema id {schema_id} is not a release kept in {self.store.root}")


def make_codec(registry_url: str | None = None, prefix: str = "consentflow") -> Codec:
    """The configured codec: Confluent framing when a registry URL is given, else single-object."""
    if registry_url:
        return ConfluentCodec.from_url(registry_url, prefix=prefix)
    return SingleObjectCodec()
