"""Shared test material: one valid event per input topic, random records for any contract, and the
backward-compatibility check the release test runs.

Nothing here mirrors the code under test: events are built with the public constructors, random
records are derived from the Avro contract documents alone, and compatibility is judged by two
independent implementations (the ``avro`` package's checker and a real fastavro write/read).
"""

from __future__ import annotations

import io
import json
import random
import string
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import avro.compatibility
import avro.io
import avro.schema
import fastavro

from consentflow.contracts import events
from consentflow.contracts.events import Event, MechanismPeriod
from consentflow.policy.vocabulary import (
    AccountKind,
    ConsentChannel,
    CookieCategory,
    DataCategory,
    LegalBasis,
    MessageChannel,
    MessageKind,
    ProfileAction,
    Purpose,
    RecipientKind,
    RequestStatus,
    Right,
    TransferMechanism,
)

T0 = datetime(2024, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
SCC_SIGNED = datetime(2021, 9, 27, tzinfo=UTC)
SCC_ENDS = datetime(2031, 9, 27, tzinfo=UTC)


def _event_id(subject_id: str, n: int) -> str:
    """A fixed event id per (subject, n), so the samples are reproducible."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"consentflow-test/{subject_id}/{n}"))


def subject_events(subject_id: str = "cand-000042", start: datetime = T0) -> list[Event]:
    """One valid event for each subject-keyed input topic, all about ``subject_id``."""
    at = [start + timedelta(minutes=i) for i in range(8)]
    return [
        events.profile_event(
            subject_id,
            ProfileAction.REGISTERED,
            account_kind=AccountKind.APPLICANT,
            categories=[DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.PROFESSIONAL_CV],
            source_service="registration",
            occurred_at=at[0],
            event_id=_event_id(subject_id, 0),
        ),
        events.consent_granted(
            subject_id,
            Purpose.MARKETING,
            channel=ConsentChannel.REGISTRATION_FORM,
            notice_id="notice-2020-11-14",
            source_service="registration",
            occurred_at=at[1],
            event_id=_event_id(subject_id, 1),
        ),
        events.cookie_accessed(
            subject_id,
            "ga-analytics",
            CookieCategory.ANALYTICS,
            cookie_name="_ga",
            source_service="cookie-banner",
            occurred_at=at[2],
            event_id=_event_id(subject_id, 2),
        ),
        events.newsletter_sent(
            subject_id,
            "mailco-us",
            campaign_id="spring-2024",
            source_service="mailing",
            occurred_at=at[3],
            event_id=_event_id(subject_id, 3),
        ),
        events.message_sent(
            subject_id,
            MessageKind.USER_TO_USER,
            channel=MessageChannel.IN_APP,
            purpose=Purpose.USER_COMMUNICATION,
            categories=[DataCategory.USER_MESSAGES],
            counterpart_subject_id="cust-000007",
            source_service="messaging",
            occurred_at=at[4],
            event_id=_event_id(subject_id, 4),
        ),
        events.data_disclosed(
            subject_id,
            "acme-corp",
            [DataCategory.PROFESSIONAL_CV, DataCategory.HARD_SKILLS],
            purpose=Purpose.CONTRACT_INTRODUCTIONS,
            legal_basis=LegalBasis.CONTRACT,
            source_service="matching",
            occurred_at=at[5],
            event_id=_event_id(subject_id, 5),
        ),
        events.rights_event(
            subject_id,
            Right.ERASURE,
            RequestStatus.REQUESTED,
            request_id=f"req-{subject_id}",
            source_service="support",
            occurred_at=at[6],
            event_id=_event_id(subject_id, 6),
        ),
        events.consent_withdrawn(
            subject_id,
            Purpose.MARKETING,
            channel=ConsentChannel.UNSUBSCRIBE_LINK,
            source_service="mailing",
            occurred_at=at[7],
            event_id=_event_id(subject_id, 7),
        ),
    ]


def recipient_event(recipient_id: str = "mailco-us", start: datetime = T0) -> Event:
    """A registry entry for a US emailing provider framed by SCCs with a validity period [7]."""
    return events.recipient_registered(
        recipient_id,
        name="MailCo Inc.",
        kind=RecipientKind.EMAILING_PROVIDER,
        country="US",
        transfer_mechanisms=[
            MechanismPeriod(TransferMechanism.SCC, SCC_SIGNED, SCC_ENDS),
            MechanismPeriod(TransferMechanism.ADEQUACY, datetime(2023, 7, 10, tzinfo=UTC)),
        ],
        allowed_purposes=[Purpose.MARKETING, Purpose.SERVICE_INFORMATION],
        source_service="vendor-management",
        occurred_at=start - timedelta(days=30),
        event_id=_event_id(recipient_id, 0),
    )


def incident_event(start: datetime = T0) -> Event:
    """A breach at the US emailing provider, opened with its window and awareness [12; GDPR Art. 33]."""
    return events.incident_event(
        "inc-000001",
        "opened",
        recipient_id="mailco-us",
        window_from=start - timedelta(days=2),
        window_to=start,
        aware_at=start,
        risk="high",
        categories=["contact"],
        source_service="dpo",
        occurred_at=start,
        event_id=_event_id("inc-000001", 0),
    )


def input_events() -> list[Event]:
    """At least one valid event for every input topic (registry and incidents included)."""
    return [recipient_event(), *subject_events(), incident_event()]


# ---------------------------------------------------------------- random records from a contract

_TEXT = string.ascii_letters + string.digits + " -_.:/éßø日本€"
_EPOCH_2000 = 946_684_800_000_000
_EPOCH_2040 = 2_208_988_800_000_000


class _Names:
    """Named types seen so far while walking a schema document (Avro name resolution)."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}

    def define(self, schema: dict[str, Any], namespace: str) -> str:
        name = str(schema["name"])
        ns = str(schema.get("namespace", namespace))
        full = name if "." in name or not ns else f"{ns}.{name}"
        self.types[full] = schema
        return full.rpartition(".")[0]

    def collect(self, schema: Any, namespace: str) -> None:
        """Define every named type in ``schema`` up front: a definition may sit in a branch never sampled."""
        if isinstance(schema, list):
            for branch in schema:
                self.collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "enum", "fixed"):
                inner = self.define(schema, namespace)
                for field in schema.get("fields", []):
                    self.collect(field["type"], inner)
            elif kind == "array":
                self.collect(schema["items"], namespace)
            elif kind == "map":
                self.collect(schema["values"], namespace)

    def lookup(self, name: str, namespace: str) -> dict[str, Any]:
        if "." not in name and namespace and f"{namespace}.{name}" in self.types:
            return self.types[f"{namespace}.{name}"]
        return self.types[name]


def sample_record(contract_schema: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """A random record that is valid for ``contract_schema`` (an Avro record document).

    Values are in the shapes the pipeline uses: uuid fields as lowercase UUID text,
    timestamp-micros as aware UTC datetimes truncated to microseconds.
    """
    names = _Names()
    names.collect(dict(contract_schema), "")
    value = _sample(dict(contract_schema), rng, names, "")
    assert isinstance(value, dict)
    return value


def _sample(schema: Any, rng: random.Random, names: _Names, namespace: str) -> Any:
    if isinstance(schema, list):
        return _sample(rng.choice(schema), rng, names, namespace)
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema](rng)
        return _sample(names.lookup(schema, namespace), rng, names, namespace)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if logical == "timestamp-micros":
        micros = rng.randrange(_EPOCH_2000, _EPOCH_2040)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    if logical is not None:
        raise NotImplementedError(f"sample_record: logicalType {logical} not supported yet")
    if kind == "record":
        inner = names.define(schema, namespace)
        return {f["name"]: _sample(f["type"], rng, names, inner) for f in schema["fields"]}
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [_sample(schema["items"], rng, names, namespace) for _ in range(rng.randrange(4))]
    if kind == "map":
        return {_text(rng): _sample(schema["values"], rng, names, namespace) for _ in range(rng.randrange(3))}
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind](rng)
    raise NotImplementedError(f"sample_record: type {kind!r} not supported yet")


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_TEXT) for _ in range(rng.randrange(0, 24)))


_PRIMITIVES: dict[str, Any] = {
    "null": lambda rng: None,
    "boolean": lambda rng: rng.random() < 0.5,
    "int": lambda rng: rng.randrange(-(2**31), 2**31),
    "long": lambda rng: rng.randrange(-(2**63), 2**63),
    "float": lambda rng: float(rng.randrange(-1000, 1000)) / 4,
    "double": lambda rng: rng.uniform(-1e9, 1e9),
    "bytes": lambda rng: rng.randbytes(rng.randrange(0, 32)),
    "string": _text,
}


def normalise(value: Any) -> Any:
    """Compare values across libraries: UUIDs as text, datetimes as UTC instants, tuples as lists."""
    if isinstance(value, Mapping):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        assert value.utcoffset() is not None, f"naive datetime {value!r} in decoded data"
        return value.astimezone(UTC)
    return value


# ---------------------------------------------------------------- the avro package as a second opinion


def avro_schema(schema: Mapping[str, Any]) -> avro.schema.Schema:
    """The ``avro`` package's parse of a schema document."""
    return avro.schema.parse(json.dumps(schema))


def avro_write(schema: Mapping[str, Any], record: Mapping[str, Any]) -> bytes:
    """Avro binary body written by the ``avro`` package."""
    out = io.BytesIO()
    avro.io.DatumWriter(avro_schema(schema)).write(dict(record), avro.io.BinaryEncoder(out))
    return out.getvalue()


def avro_read(writer: Mapping[str, Any], body: bytes, reader: Mapping[str, Any] | None = None) -> Any:
    """Decode an Avro binary body with the ``avro`` package; fails on trailing bytes."""
    buf = io.BytesIO(body)
    datum_reader = avro.io.DatumReader(avro_schema(writer), avro_schema(reader or writer))
    value = datum_reader.read(avro.io.BinaryDecoder(buf))
    assert buf.tell() == len(body), f"avro read {buf.tell()} of {len(body)} bytes"
    return value


def without_logical_types(schema: Any) -> Any:
    """The document with ``logicalType`` annotations removed (they never change the encoding)."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(v) for v in schema]
    return schema


def avro_compatibility(reader: avro.schema.Schema, writer: avro.schema.Schema) -> avro.compatibility.SchemaCompatibilityResult:
    """The ``avro`` package's verdict on whether ``reader`` can read data written with ``writer``."""
    checker = avro.compatibility.ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    return checker.get_compatibility(reader, writer)


# ---------------------------------------------------------------- schema evolution


def backward_problems(new: Mapping[str, Any], old: Mapping[str, Any], rng: random.Random, samples: int = 25) -> list[str]:
    """Why a reader holding ``new`` could not read data written with ``old``; empty when it can.

    Two independent verdicts: the ``avro`` package's ReaderWriterCompatibilityChecker, and
    ``samples`` random records written with ``old`` by fastavro and read back with ``new``
    (fields both versions share must survive unchanged).
    """
    problems: list[str] = []
    verdict = avro_compatibility(avro_schema(new), avro_schema(old))
    if verdict.compatibility is not avro.compatibility.SchemaCompatibilityType.compatible:
        kinds = ", ".join(sorted(i.value for i in verdict.incompatibilities))
        problems.append(f"avro checker: {kinds} at {sorted(verdict.locations)}: {sorted(verdict.messages)}")
    old_parsed = fastavro.parse_schema(json.loads(json.dumps(old)))
    new_parsed = fastavro.parse_schema(json.loads(json.dumps(new)))
    shared = {f["name"] for f in old["fields"]} & {f["name"] for f in new["fields"]}
    for _ in range(samples):
        record = sample_record(old, rng)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old_parsed, record)
        buf.seek(0)
        try:
            read = cast(dict[str, Any], fastavro.schemaless_reader(buf, old_parsed, new_parsed))
        except Exception as exc:  # noqa: BLE001 -- any failure to resolve is the finding
            problems.append(f"fastavro read of old data failed: {type(exc).__name__}: {exc}")
            break
        changed = sorted(name for name in shared if normalise(read[name]) != normalise(record[name]))
        if changed:
            problems.append(f"fastavro: shared fields changed when read with the new schema: {changed}")
            break
    return problems


def walk(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named or complex type definition inside a schema document, with a readable path."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk(branch, path)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            yield path or str(schema["name"]), schema
        if kind == "record":
            for field in schema["fields"]:
                yield from walk(field["type"], f"{schema['name']}.{field['name']}")
        elif kind == "array":
            yield from walk(schema["items"], path)
        elif kind == "map":
            yield from walk(schema["values"], path)
