"""The codec: byte-compatible with the ``avro`` package, both framings round-trip, and every bad input
becomes one ContractError that names the topic and the field or the reason."""

from __future__ import annotations

import copy
import json
import random
import struct
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast
from zoneinfo import ZoneInfo

import avro.schema
import pytest

from consentflow.contracts import events
from consentflow.contracts.codec import (
    CONFLUENT_MAGIC,
    SINGLE_OBJECT_MAGIC,
    Codec,
    ConfluentCodec,
    SingleObjectCodec,
    read_body,
    write_body,
)
from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import Event, MechanismPeriod
from consentflow.contracts.releases import Contract, default_store
from consentflow.contracts.topics import CONSENT, OUTPUT_TOPICS, RECIPIENTS, RIGHTS, Topic, topic_for_record
from consentflow.kafka.producer import EventProducer
from consentflow.policy.vocabulary import TransferMechanism
from tests.support.registry_server import SchemaRegistryServer
from tests.support.samples import (
    T0,
    avro_read,
    avro_write,
    input_events,
    normalise,
    recipient_event,
    sample_record,
    subject_events,
    without_logical_types,
)

STORE = default_store()
CONTRACTS = STORE.all()
EVENTS = input_events()
SAMPLES_PER_CONTRACT = 30


def _event(record: str) -> Event:
    return next(e for e in EVENTS if e.topic.record == record)


def _contract_id(contract: Contract) -> str:
    return f"{contract.name}-v{contract.version}"


def _event_id(event: Event) -> str:
    return f"{event.topic.short_name}-{event.record.get('kind', event.record.get('action', ''))}"


@pytest.fixture
def confluent(schema_registry_url: str) -> ConfluentCodec:
    """A Confluent codec on the test registry, with subjects of its own."""
    return ConfluentCodec.from_url(schema_registry_url, prefix=f"codec{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["single-object", "confluent"])
def codec(request: pytest.FixtureRequest) -> Codec:
    if request.param == "single-object":
        return SingleObjectCodec()
    confluent_codec: ConfluentCodec = request.getfixturevalue("confluent")
    return confluent_codec


# ---------------------------------------------------------------- agreement with the avro package


@pytest.mark.parametrize("contract", CONTRACTS, ids=_contract_id)
def test_fastavro_bodies_read_identically_by_avro(contract: Contract) -> None:
    rng = random.Random(f"fa->avro {contract.name} {contract.version}")
    for _ in range(SAMPLES_PER_CONTRACT):
        record = sample_record(contract.schema, rng)
        body = write_body("cross-check", contract, record)
        assert normalise(avro_read(contract.schema, body)) == normalise(record)
        # Avro binary encoding is deterministic: both libraries write the same bytes
        assert avro_write(contract.schema, record) == body


@pytest.mark.parametrize("contract", CONTRACTS, ids=_contract_id)
def test_avro_bodies_read_identically_by_fastavro(contract: Contract) -> None:
    rng = random.Random(f"avro->fa {contract.name} {contract.version}")
    for _ in range(SAMPLES_PER_CONTRACT):
        record = sample_record(contract.schema, rng)
        decoded = read_body("cross-check", contract, contract, avro_write(contract.schema, record))
        assert normalise(decoded) == normalise(record)
        for name, value in decoded.items():  # the pipeline's shapes: ids as text, instants aware
            if isinstance(value, datetime):
                assert value.utcoffset() == timedelta(0), name


def _all_samples() -> Iterator[tuple[Topic, dict[str, Any]]]:
    for event in EVENTS:
        yield event.topic, event.record
    rng = random.Random("outputs")
    for topic in OUTPUT_TOPICS:
        for _ in range(5):
            yield topic, sample_record(STORE.latest(topic.record).schema, rng)


def test_single_object_bytes_decode_with_avro() -> None:
    codec = SingleObjectCodec()
    for topic, record in _all_samples():
        contract = STORE.latest(topic.record)
        data = codec.encode(topic, record)
        assert data[:2] == b"\xc3\x01"
        # the header's fingerprint is the avro package's CRC-64-AVRO of the contract (see test_contracts
        # for why logicalType annotations are left out of what the avro package fingerprints)
        reference = avro.schema.parse(json.dumps(without_logical_types(contract.schema)))
        assert data[2:10] == reference.fingerprint("CRC-64-AVRO")
        assert normalise(avro_read(contract.schema, data[10:])) == normalise(record)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("event", EVENTS, ids=_event_id)
def test_every_input_event_round_trips(codec: Codec, event: Event) -> None:
    data = codec.encode(event.topic, event.record)
    magic = SINGLE_OBJECT_MAGIC if isinstance(codec, SingleObjectCodec) else CONFLUENT_MAGIC
    assert data.startswith(magic)
    assert codec.decode(event.topic, data) == event.record
    # by short name too
    assert codec.decode(event.topic.short_name, data) == event.record


def test_output_records_round_trip(codec: Codec) -> None:
    rng = random.Random("output round trip")
    for topic in OUTPUT_TOPICS:
        for _ in range(10):
            record = sample_record(STORE.latest(topic.record).schema, rng)
            assert normalise(codec.decode(topic, codec.encode(topic, record))) == normalise(record)


def test_uuid_objects_are_written_as_text(codec: Codec) -> None:
    event = _event("RightsEvent")
    as_object = {**event.record, "event_id": uuid.UUID(event.record["event_id"])}
    assert codec.decode(RIGHTS, codec.encode(RIGHTS, as_object))["event_id"] == event.record["event_id"]


def test_instants_in_other_zones_decode_as_the_same_utc_instant(codec: Codec) -> None:
    event = _event("RightsEvent")
    paris = T0.astimezone(ZoneInfo("Europe/Paris"))
    decoded = codec.decode(RIGHTS, codec.encode(RIGHTS, {**event.record, "occurred_at": paris}))
    assert decoded["occurred_at"] == T0 and decoded["occurred_at"].utcoffset() == timedelta(0)


# ---------------------------------------------------------------- decode errors


def _raises(call: Callable[[], object], *fragments: str) -> ContractError:
    with pytest.raises(ContractError) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return info.value


def test_single_object_refuses_wrong_magic(confluent: ConfluentCodec) -> None:
    event = _event("ConsentEvent")
    single = SingleObjectCodec()
    framed = confluent.encode(CONSENT, event.record)
    err = _raises(lambda: single.decode(CONSENT, framed), "consent:", "wrong magic bytes 00", "Confluent wire format")
    assert err.topic == "consent"
    garbage = b"\x7b\x22" + single.encode(CONSENT, event.record)[2:]  # '{"' : JSON, not Avro
    err = _raises(lambda: single.decode(CONSENT, garbage), "consent:", "wrong magic bytes 7b22", "expected c301")
    assert "Confluent" not in err.reason


def test_confluent_refuses_wrong_magic(confluent: ConfluentCodec) -> None:
    event = _event("ConsentEvent")
    framed = SingleObjectCodec().encode(CONSENT, event.record)
    _raises(lambda: confluent.decode(CONSENT, framed), "consent:", "wrong magic byte c3", "single-object")
    other = b"\x01" + confluent.encode(CONSENT, event.record)[1:]
    err = _raises(lambda: confluent.decode(CONSENT, other), "consent:", "wrong magic byte 01", "expected 00")
    assert "single-object" not in err.reason


def test_unknown_fingerprint() -> None:
    codec = SingleObjectCodec()
    data = codec.encode(CONSENT, _event("ConsentEvent").record)
    forged = data[:2] + bytes(b ^ 0xFF for b in data[2:10]) + data[10:]
    _raises(lambda: codec.decode(CONSENT, forged), "consent:", f"unknown schema fingerprint {forged[2:10].hex()}")


def test_unknown_confluent_schema_id(confluent: ConfluentCodec) -> None:
    data = confluent.encode(RIGHTS, _event("RightsEvent").record)
    forged = CONFLUENT_MAGIC + struct.pack(">I", 987_654) + data[5:]
    _raises(lambda: confluent.decode(RIGHTS, forged), "rights:", "unknown schema id 987654", "40403")


def test_truncated_headers(confluent: ConfluentCodec) -> None:
    record = _event("ConsentEvent").record
    single = SingleObjectCodec()
    data = single.encode(CONSENT, record)
    for n in range(10):
        _raises(partial(single.decode, CONSENT, data[:n]), "consent:", f"truncated header: {n} bytes")
    framed = confluent.encode(CONSENT, record)
    for n in range(5):
        _raises(partial(confluent.decode, CONSENT, framed[:n]), "consent:", f"truncated header: {n} bytes")


@pytest.mark.parametrize("event", EVENTS, ids=_event_id)
def test_every_truncation_of_the_payload_is_refused(codec: Codec, event: Event) -> None:
    data = codec.encode(event.topic, event.record)
    header = 10 if isinstance(codec, SingleObjectCodec) else 5
    for cut in range(header, len(data)):
        _raises(partial(codec.decode, event.topic, data[:cut]), f"{event.topic.short_name}:", "truncated payload")


def test_trailing_bytes(codec: Codec) -> None:
    data = codec.encode(CONSENT, _event("ConsentEvent").record)
    _raises(lambda: codec.decode(CONSENT, data + b"\x00\x01"), "consent:", "2 trailing bytes after the ConsentEvent record")


def test_message_of_another_record_on_the_wrong_topic(codec: Codec) -> None:
    data = codec.encode(CONSENT, _event("ConsentEvent").record)
    _raises(
        lambda: codec.decode(RIGHTS, data),
        "rights:",
        "written as consentflow.ConsentEvent",
        "carries consentflow.RightsEvent",
    )


def test_unknown_topic_name(codec: Codec) -> None:
    record = _event("ConsentEvent").record
    err = _raises(lambda: codec.encode("consents", record), "consents:", "unknown topic 'consents'", "known topics:")
    assert err.topic == "consents"
    data = SingleObjectCodec().encode(CONSENT, record)
    _raises(lambda: codec.decode("consentflow.consent", data), "unknown topic 'consentflow.consent'")


def test_non_bytes_are_refused(codec: Codec) -> None:
    _raises(lambda: codec.decode(CONSENT, "c301..."), "consent:", "expected bytes, got str")  # type: ignore[arg-type]


# ---------------------------------------------------------------- encode-time violations


def _mutated(record: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    copied = copy.deepcopy(record)
    change(copied)
    return copied


ENCODE_VIOLATIONS: list[tuple[str, str, Callable[[dict[str, Any]], object], list[str]]] = [
    ("wrong enum symbol", "ConsentEvent", lambda r: r.update(purpose="spam"), ["field purpose", "'spam'", "enum Purpose"]),
    (
        "unknown enum in array",
        "ProfileEvent",
        lambda r: r["categories"].append("dna"),
        ["field categories", "'dna'", "DataCategory"],
    ),
    (
        "missing required field",
        "ConsentEvent",
        lambda r: r.pop("subject_id"),
        ["field subject_id", "required by ConsentEvent but missing"],
    ),
    (
        "extra field",
        "ConsentEvent",
        lambda r: r.update(email="jane@example.com"),
        ["field email", "not in the ConsentEvent contract"],
    ),
    ("string as int", "RightsEvent", lambda r: r.update(request_id=42), ["field request_id", "42 (int)", "string"]),
    ("text for a boolean", "RecipientRecord", lambda r: r.update(active="yes"), ["field active", "'yes' (str)", "boolean"]),
    ("list for a string", "CookieEvent", lambda r: r.update(vendor_id=["a"]), ["field vendor_id", "string"]),
    (
        "malformed uuid",
        "ConsentEvent",
        lambda r: r.update(event_id="not-a-uuid"),
        ["field event_id", "'not-a-uuid' is not a UUID"],
    ),
    (
        "uuid with a trailing newline",  # a regex's $ matches before a final newline
        "ConsentEvent",
        lambda r: r.update(event_id="9834babd-89b1-4d34-8ffe-d86325145381\n"),
        ["field event_id", "is not a UUID"],
    ),
    (
        "naive timestamp",
        "ConsentEvent",
        lambda r: r.update(occurred_at=datetime(2024, 1, 1)),
        ["field occurred_at", "no time zone"],
    ),
    (
        "epoch seconds for a timestamp",
        "ConsentEvent",
        lambda r: r.update(occurred_at=1.5),
        ["field occurred_at", "1.5 (float)", "timestamp-micros"],
    ),
    (
        "nested enum",
        "RecipientRecord",
        lambda r: r["transfer_mechanisms"][0].update(mechanism="pinky_promise"),
        ["field MechanismPeriod.mechanism", "'pinky_promise'", "TransferMechanism"],
    ),
    (
        "nested missing field",
        "RecipientRecord",
        lambda r: r["transfer_mechanisms"][0].pop("valid_from"),
        ["field MechanismPeriod.valid_from", "timestamp-micros"],
    ),
    (
        "nested naive timestamp",
        "RecipientRecord",
        lambda r: r["transfer_mechanisms"][0].update(valid_until=datetime(2030, 1, 1)),
        ["field transfer_mechanisms.valid_until", "no time zone"],
    ),
    (
        "nested extra field",
        "RecipientRecord",
        lambda r: r["transfer_mechanisms"][0].update(signatory_email="dpo@example.com"),
        ["signatory_email"],
    ),
    (
        "nested record replaced by text",
        "RecipientRecord",
        lambda r: r.update(transfer_mechanisms=["scc"]),
        ["field transfer_mechanisms", "array of record MechanismPeriod"],
    ),
]


@pytest.mark.parametrize(("name", "record_name", "change", "fragments"), ENCODE_VIOLATIONS, ids=[v[0] for v in ENCODE_VIOLATIONS])
def test_encode_refuses_records_that_break_the_contract(
    codec: Codec, name: str, record_name: str, change: Callable[[dict[str, Any]], object], fragments: list[str]
) -> None:
    event = _event(record_name)
    bad = _mutated(event.record, change)
    err = _raises(lambda: codec.encode(event.topic, bad), f"{event.topic.short_name}:", *fragments)
    assert err.topic == event.topic.short_name


def test_encode_refuses_a_non_mapping(codec: Codec) -> None:
    not_a_record = cast(Any, ["not", "a", "record"])
    _raises(lambda: codec.encode(RIGHTS, not_a_record), "rights:", "expected a RightsEvent record (a mapping), got list")


@pytest.mark.parametrize(
    ("record_name", "field", "value", "fragment"),
    [
        ("LedgerEntry", "sequence", 1.7, "1.7 (float)"),
        ("LedgerEntry", "sequence", True, "True (bool)"),
        ("DeadLetter", "partition", 2**40, str(2**40)),
        ("DeadLetter", "key", "text-key", "'text-key' (str)"),
        ("RetentionAction", "basis_event_id", "nope", "'nope' is not a UUID"),
        ("Violation", "purpose", "spam", "'spam'"),
        ("SubjectHoldings", "revision", 1.5, "1.5 (float)"),
        ("SubjectHoldings", "categories_held", ["shoe_size"], "'shoe_size'"),
        ("SubjectHoldings", "archive_at", datetime(2030, 1, 1), "has no time zone"),
        ("LineageEdge", "recipient_id", "cloud\udc80nest", "has no UTF-8 form: surrogates not allowed at position 5"),
    ],
)
def test_encode_refuses_coercible_values_in_output_records(record_name: str, field: str, value: object, fragment: str) -> None:
    """fastavro alone would write 1.7 as 1, True as 1 and 2**40 into an int: the codec refuses them."""
    topic = topic_for_record(record_name)
    record = sample_record(STORE.latest(record_name).schema, random.Random(record_name))
    record[field] = value
    _raises(lambda: SingleObjectCodec().encode(topic, record), f"{topic.short_name}:", f"field {field}", fragment)


# ---------------------------------------------------------------- nothing partial leaves the codec


class _RecordingProducer:
    """Stands in for confluent_kafka.Producer: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: object = None,
        timestamp: int = 0,
        headers: object = None,
    ) -> None:  # confluent_kafka's signature: partition -1 lets the partitioner choose
        self.sent.append((topic, key, value))

    def poll(self, timeout: float = 0) -> int:
        return 0


def test_invalid_record_never_yields_bytes_nor_a_queued_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The violation sits in the record's last field, after fastavro has written all the others."""
    event = _event("RightsEvent")
    bad = {**event.record, "status": "maybe"}
    producer = EventProducer("127.0.0.1:9", codec=SingleObjectCodec(), prefix="never", config={"log_level": 0})
    recorder = _RecordingProducer()
    monkeypatch.setattr(producer, "_producer", recorder)
    producer.send(event)
    with pytest.raises(ContractError, match="rights: field status"):
        producer.send(Event(RIGHTS, bad))
    with pytest.raises(ContractError, match="rights: field active: not in the RightsEvent contract"):
        producer.send(Event(RIGHTS, {**event.record, "active": True}))
    producer.send(event)
    assert [(t, k) for t, k, _ in recorder.sent] == [("never.rights", event.key.encode())] * 2
    assert all(SingleObjectCodec().decode(RIGHTS, v) == event.record for _, _, v in recorder.sent)


def test_confluent_encode_validates_before_registering(schema_registry: SchemaRegistryServer) -> None:
    codec = ConfluentCodec.from_url(schema_registry.url, prefix=f"never{uuid.uuid4().hex[:6]}")
    bad = {**_event("RightsEvent").record, "status": "maybe"}
    _raises(lambda: codec.encode(RIGHTS, bad), "rights:", "field status")
    assert schema_registry.versions(codec.subject(RIGHTS)) == []


# ---------------------------------------------------------------- edge checks of the event constructors


def _consent(**overrides: Any) -> Event:
    arguments: dict[str, Any] = {
        "channel": "account_settings",
        "source_service": "profile",
        "occurred_at": T0,
    }
    arguments.update(overrides)
    subject = arguments.pop("subject_id", "cand-1")
    purpose = arguments.pop("purpose", "marketing")
    return events.consent_granted(subject, purpose, **arguments)


def test_constructor_refuses_a_naive_datetime() -> None:
    _raises(lambda: _consent(occurred_at=datetime(2024, 3, 1, 9, 30)), "consent: field occurred_at", "no time zone")


def test_constructor_converts_aware_datetimes_to_utc() -> None:
    event = _consent(occurred_at=T0.astimezone(ZoneInfo("America/New_York")))
    assert event.record["occurred_at"] == T0 and event.record["occurred_at"].tzinfo is UTC


@pytest.mark.parametrize("subject", ["jane.doe@example.com", "Jane Doe", "", "-leading-dash", "x" * 129])
def test_constructor_refuses_ids_that_could_be_personal_data(subject: str) -> None:
    _raises(lambda: _consent(subject_id=subject), "consent: field subject_id", "not a pseudonymous id", repr(subject))


@pytest.mark.parametrize("country", ["USA", "us", "", "U1", "FR "])
def test_constructor_refuses_bad_country_codes(country: str) -> None:
    def build() -> Event:
        return events.recipient_registered(
            "acme",
            name="Acme",
            kind="corporate_customer",
            country=country,
            allowed_purposes=["profile_matching"],
            source_service="crm",
        )

    _raises(build, "recipients: field country", repr(country), "ISO 3166-1 alpha-2")


def test_constructor_refuses_the_unknown_symbol() -> None:
    err = _raises(lambda: _consent(purpose="unknown"), "consent: field purpose", "'unknown' is not a Purpose")
    assert "marketing" in err.reason and ", unknown" not in err.reason
    _raises(lambda: _consent(channel="unknown"), "consent: field channel", "'unknown' is not a ConsentChannel")
    _raises(lambda: _consent(purpose="spam"), "consent: field purpose", "'spam' is not a Purpose")


def test_constructor_refuses_an_empty_disclosure() -> None:
    def build() -> Event:
        return events.data_disclosed(
            "cand-1", "acme", [], purpose="profile_matching", legal_basis="contract", source_service="matching"
        )

    _raises(build, "disclosure: field categories", "at least one data category")


@pytest.mark.parametrize("length", [timedelta(0), timedelta(days=-1)])
def test_constructor_refuses_a_period_that_ends_before_it_starts(length: timedelta) -> None:
    start = datetime(2021, 9, 27, tzinfo=UTC)

    def build() -> Event:
        return events.recipient_registered(
            "mailco",
            name="MailCo",
            kind="emailing_provider",
            country="US",
            transfer_mechanisms=[MechanismPeriod(TransferMechanism.SCC, start, start + length)],
            allowed_purposes=["marketing"],
            source_service="vendor-management",
        )

    _raises(build, "recipients: field transfer_mechanisms.valid_until", "before it starts")


def test_constructor_refuses_other_envelope_mistakes() -> None:
    _raises(lambda: _consent(event_id="42"), "consent: field event_id", "'42' is not a UUID")
    _raises(lambda: _consent(event_id="9834babd-89b1-4d34-8ffe-d86325145381\n"), "consent: field event_id", "is not a UUID")
    _raises(lambda: _consent(source_service="Mailing Service"), "consent: field source_service")
    _raises(lambda: _consent(policy_version="v2"), "consent: field policy_version", "YYYY-MM-DD")
    _raises(
        lambda: events.profile_event("cand-1", "registered", account_kind="applicant", categories="contact", source_service="x"),
        "profile: field categories",
        "got the string 'contact'",
    )


def test_cookie_names_are_rfc6265_tokens() -> None:
    for name in ("_ga", "__Secure-session", "PHPSESSID"):
        event = events.cookie_accessed("cand-1", "vendor-1", "analytics", cookie_name=name, source_service="cookie-banner")
        assert (
            SingleObjectCodec().decode(event.topic, SingleObjectCodec().encode(event.topic, event.record))["cookie_name"] == name
        )
    for bad in ("a b", "name;", "", "caf\u00e9"):
        _raises(
            partial(events.cookie_accessed, "cand-1", "vendor-1", "analytics", cookie_name=bad, source_service="cookie-banner"),
            "cookie: field cookie_name",
            repr(bad),
        )


def test_constructors_deduplicate_categories_keeping_order() -> None:
    event = events.profile_event(
        "cand-1", "updated", account_kind="applicant", categories=["photo", "contact", "photo"], source_service="profile"
    )
    assert event.record["categories"] == ["photo", "contact"]


def test_event_keys() -> None:
    assert all(e.key == e.record["subject_id"] for e in subject_events("cand-777"))
    assert recipient_event("mailco-eu").key == "mailco-eu"
    assert RECIPIENTS.key_field == "recipient_id"
