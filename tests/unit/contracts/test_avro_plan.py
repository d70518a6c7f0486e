"""A contract's plan (``consentflow.contracts.avro_plan``) writes fastavro's bytes and reads fastavro's records, and hands
fastavro every value and body it would not.

Writing from the plan is the fast path for the records the processors build (``write_body(..., trusted=True)``),
reading for any body written with the contract it is read with (``read_body``); fastavro, with the project's
logical-type hooks, is the reference they are compared with here.
"""

from __future__ import annotations

import io
import random
import uuid
from collections import UserDict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import fastavro
import pytest

from consentflow.contracts.avro_plan import PlanMiss, RecordPlan, record_plan
from consentflow.contracts.codec import SingleObjectCodec, read_body, write_body
from consentflow.contracts.errors import ContractError
from consentflow.contracts.releases import Contract, default_store
from consentflow.contracts.topics import LINEAGE, OUTPUT_TOPICS, topic_named
from consentflow.core.processor import Processor
from consentflow.generator.simulation import GeneratorConfig, Simulation
from consentflow.policy.vocabulary import DataCategory, RecipientKind, TransferMechanism
from tests.support.samples import sample_record

STORE = default_store()
CONTRACTS = STORE.all()


def _fastavro(contract: Contract, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, contract.parsed, record, strict=False, strict_allow_default=True)
    return out.getvalue()


def _planned(contract: Contract, record: Any) -> bytes:
    plan = contract.plan
    assert plan is not None, f"{contract.name} v{contract.version} has no writing plan"
    out = bytearray()
    plan.write(out, record)
    return bytes(out)


def _contract_id(contract: Contract) -> str:
    return f"{contract.name}-v{contract.version}"


@pytest.mark.parametrize("contract", CONTRACTS, ids=_contract_id)
def test_every_contract_has_a_plan_that_writes_fastavros_bytes(contract: Contract) -> None:
    rng = random.Random(f"plan {contract.name} {contract.version}")
    for _ in range(200):
        record = sample_record(contract.schema, rng)
        assert _planned(contract, record) == _fastavro(contract, record), record


def test_a_generated_years_outputs_are_written_as_fastavro_writes_them() -> None:
    processor = Processor()
    written = dict.fromkeys((t.short_name for t in OUTPUT_TOPICS), 0)
    for event in Simulation(GeneratorConfig(subjects=150, days=365, seed=3, violation_share=0.05)).events():
        for out_topic, out_record in processor.process(event.topic.short_name, event.record).records:
            contract = STORE.latest(topic_named(out_topic).record)
            assert _planned(contract, out_record) == _fastavro(contract, out_record), out_record
            written[out_topic] += 1
    assert written["lineage"] > 1_000 and written["ledger"] > 100 and written["violations"] > 0


def _edge(**changes: Any) -> dict[str, Any]:
    edge: dict[str, Any] = {
        "edge_id": str(uuid.uuid4()),
        "subject_id": "subj-1",
        "recipient_id": "cloudnest",
        "recipient_kind": RecipientKind.TECHNICAL_SUBCONTRACTOR,
        "categories": [DataCategory.DEVICE_NETWORK, "usage_data"],
        "purpose": "technical_operations_analytics",
        "legal_basis": "legitimate_interest",
        "country": "US",
        "transfer_mechanism": TransferMechanism.SCC,
        "occurred_at": datetime(2021, 1, 6, 11, 49, 5, 376695, tzinfo=UTC),
        "source_event_id": str(uuid.uuid4()),
        "source_kind": "cookie",
        "source": {"topic": "consentflow.cookie", "partition": 5, "offset": 2**40},
        "source_service": "web",
    }
    edge.update(changes)
    return edge


LINEAGE_CONTRACT = STORE.latest(LINEAGE.record)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"source": None},
        {"categories": []},
        {"categories": ("identity", DataCategory.CONTACT)},  # a tuple is an array too
        {"subject_id": "subj-é–😀"},  # text beyond ASCII: lengths count bytes
        {"subject_id": "x" * 300},  # a length that takes two bytes
        {"occurred_at": datetime(2021, 1, 6, 12, 49, 5, 1, tzinfo=ZoneInfo("Europe/Paris"))},
        {"occurred_at": datetime(1901, 1, 1, tzinfo=timezone(timedelta(hours=-5)))},  # before the epoch
        {"occurred_at": 1_609_932_545_376_695},  # micros as Avro stores them
        {"occurred_at": -1},
        {"source": {"topic": "t", "partition": -(2**31), "offset": -(2**63)}},
        {"source": {"topic": "t", "partition": 2**31 - 1, "offset": 2**63 - 1}},
    ],
)
def test_values_in_every_shape_the_plan_takes_are_written_as_fastavro_writes_them(changes: dict[str, Any]) -> None:
    record = _edge(**changes)
    assert _planned(LINEAGE_CONTRACT, record) == _fastavro(LINEAGE_CONTRACT, record)


def test_a_field_left_out_is_written_with_its_default() -> None:
    ledger = STORE.latest("LedgerEntry")
    defaulted = [f["name"] for f in ledger.schema["fields"] if "default" in f]
    assert defaulted, "LedgerEntry has fields with defaults"
    record = sample_record(ledger.schema, random.Random("defaults"))
    for name in defaulted:
        del record[name]
    assert _planned(ledger, record) == _fastavro(ledger, record)


def test_uuid_fields_are_written_as_canonical_text_like_the_projects_hook() -> None:
    ledger = STORE.latest("LedgerEntry")
    (uuid_field,) = [
        f["name"] for f in ledger.schema["fields"] if isinstance(f["type"], dict) and f["type"].get("logicalType") == "uuid"
    ]
    record = sample_record(ledger.schema, random.Random("uuid"))
    value = uuid.UUID(record[uuid_field])
    for shape in (value, str(value).upper(), value.hex):
        shaped = {**record, uuid_field: shape}
        assert _planned(ledger, shaped) == _fastavro(ledger, shaped) == _fastavro(ledger, record)


@pytest.mark.parametrize(
    ("changes", "missed"),
    [
        ({"recipient_kind": "no_such_kind"}, "recipient_kind"),
        ({"categories": "identity"}, "categories"),  # text is not an array of symbols
        ({"occurred_at": datetime(2021, 1, 6)}, "occurred_at"),  # naive: not an instant
        ({"occurred_at": True}, "occurred_at"),
        ({"occurred_at": 1.5}, "occurred_at"),
        ({"occurred_at": 2**63}, "occurred_at"),
        ({"source": {"topic": "t", "partition": 2**31, "offset": 0}}, "partition"),  # beyond an Avro int
        ({"source": {"topic": "t", "partition": 0, "offset": True}}, "offset"),  # a bool is no long
        ({"subject_id": 7}, "subject_id"),
        ({"subject_id": "\udc80"}, "subject_id"),  # a lone surrogate has no UTF-8
        ({"edge_id": None}, "edge_id"),
    ],
)
def test_a_value_the_plan_does_not_take_goes_to_fastavro_which_writes_or_refuses_it_as_before(
    changes: dict[str, Any], missed: str
) -> None:
    record = _edge(**changes)
    with pytest.raises(PlanMiss):
        _planned(LINEAGE_CONTRACT, record)
    try:
        reference = _fastavro(LINEAGE_CONTRACT, record)
    except Exception:  # noqa: BLE001 -- fastavro refuses it: the codec must refuse it too, naming the field
        with pytest.raises(ContractError, match=missed):
            write_body(LINEAGE, LINEAGE_CONTRACT, record, trusted=True)
    else:  # fastavro coerces it (True as 1...): the codec writes what it always wrote
        assert write_body(LINEAGE, LINEAGE_CONTRACT, record, trusted=True) == reference


def test_a_boolean_field_takes_only_a_bool() -> None:
    violation = STORE.latest("Violation")
    record = sample_record(violation.schema, random.Random("bool"))
    assert _planned(violation, record) == _fastavro(violation, record)
    record["active"] = 1  # fastavro writes any truthy value as true
    with pytest.raises(PlanMiss):
        _planned(violation, record)
    assert write_body("violations", violation, record, trusted=True) == _fastavro(violation, {**record, "active": True})


def test_a_record_that_is_not_a_dict_is_written_by_fastavro() -> None:
    record = UserDict(_edge())
    with pytest.raises(PlanMiss):
        _planned(LINEAGE_CONTRACT, record)
    assert write_body(LINEAGE, LINEAGE_CONTRACT, record, trusted=True) == _fastavro(LINEAGE_CONTRACT, dict(record))


def test_the_codec_frames_the_planned_body() -> None:
    record = _edge()
    framed = SingleObjectCodec().encode(LINEAGE, record, trusted=True)
    assert framed.endswith(_fastavro(LINEAGE_CONTRACT, record))
    assert SingleObjectCodec().decode(LINEAGE, framed)["source"] == record["source"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "string"}}]},
        {"type": "record", "name": "F", "fields": [{"name": "f", "type": "double"}]},
        {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["string", "long"]}]},
        {"type": "record", "name": "D", "fields": [{"name": "d", "type": {"type": "int", "logicalType": "date"}}]},
    ],
)
def test_a_schema_with_a_type_the_plan_does_not_know_has_no_plan(schema: dict[str, Any]) -> None:
    assert record_plan(fastavro.parse_schema(schema)) is None


def test_a_record_naming_itself_is_planned() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "label", "type": "string"}, {"name": "next", "type": ["null", "Node"], "default": None}],
    }
    parsed = fastavro.parse_schema(schema)
    plan = RecordPlan(parsed)
    record = {"label": "a", "next": {"label": "b", "next": None}}
    out = bytearray()
    plan.write(out, record)
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, parsed, record)
    assert bytes(out) == reference.getvalue()


# ---------------------------------------------------------------- reading


def _fastavro_read(contract: Contract, body: bytes) -> dict[str, Any]:
    record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(body), contract.parsed, None)
    return record


def _read_outcome(contract: Contract, body: bytes) -> tuple[str, Any]:
    """What ``read_body`` gives for ``body``: the record, or the error's text."""
    try:
        return "record", read_body("reading", contract, contract, body)
    except ContractError as exc:
        return "refused", str(exc)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (an aware UTC datetime is not a naive one, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo
    return bool(a == b)


@pytest.mark.parametrize("contract", CONTRACTS, ids=_contract_id)
def test_the_plan_reads_every_contracts_bodies_as_fastavro_reads_them(contract: Contract) -> None:
    rng = random.Random(f"read {contract.name} {contract.version}")
    plan = contract.plan
    assert plan is not None
    for _ in range(200):
        body = _fastavro(contract, sample_record(contract.schema, rng))
        assert _same(plan.read(body), _fastavro_read(contract, body))


def test_a_generated_years_events_and_outputs_are_read_as_fastavro_reads_them() -> None:
    processor = Processor()
    read = 0
    for event in Simulation(GeneratorConfig(subjects=100, days=365, seed=5, violation_share=0.05)).events():
        messages = [(event.topic.record, event.record)]
        messages += [(topic_named(t).record, r) for t, r in processor.process(event.topic.short_name, event.record).records]
        for record_name, record in messages:
            contract = STORE.latest(record_name)
            body = _fastavro(contract, record)
            assert _same(_planned_read(contract, body), _fastavro_read(contract, body)), record
            read += 1
    assert read > 5_000


def _planned_read(contract: Contract, body: bytes) -> dict[str, Any]:
    plan = contract.plan
    assert plan is not None
    return plan.read(body)


@pytest.mark.parametrize("contract", CONTRACTS, ids=_contract_id)
def test_a_damaged_body_is_read_or_refused_exactly_as_fastavro_alone_would(
    contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut short at every length, a byte changed, bytes added: the plan reads what fastavro reads, and leaves it the rest."""
    rng = random.Random(f"damage {contract.name} {contract.version}")
    bodies = []
    for _ in range(8):
        body = _fastavro(contract, sample_record(contract.schema, rng))
        bodies += [body[:cut] for cut in range(len(body))]
        for _ in range(40):
            at = rng.randrange(len(body))
            bodies.append(body[:at] + bytes([rng.randrange(256)]) + body[at + 1 :])
        bodies += [body + b"\x00", body + bytes([rng.randrange(256)]) * rng.randrange(1, 4)]
    with_plan = [_read_outcome(contract, body) for body in bodies]
    monkeypatch.setattr(Contract, "plan", property(lambda self: None))
    without_plan = [_read_outcome(contract, body) for body in bodies]
    for body, planned, alone in zip(bodies, with_plan, without_plan, strict=True):
        assert planned[0] == alone[0] and (_same(planned[1], alone[1]) if planned[0] == "record" else planned[1] == alone[1]), (
            body
        )
    assert any(kind == "refused" for kind, _ in with_plan) and any(kind == "record" for kind, _ in with_plan)


def test_an_array_in_sized_blocks_is_read_by_fastavro() -> None:
    """Avro lets a writer give a block's count as negative, followed by its size in bytes; the plan leaves those to fastavro."""
    record = _edge(categories=["identity", "contact"])
    body = _fastavro(LINEAGE_CONTRACT, record)
    # The categories array: count 2 (zig-zag 4), the symbols' indices, then the end of the array (0).
    symbols = LINEAGE_CONTRACT.schema["fields"][4]["type"]["items"]["symbols"]
    block = bytes([symbols.index("identity") * 2, symbols.index("contact") * 2])
    positive = b"\x04" + block + b"\x00"
    assert positive in body
    sized = body.replace(positive, b"\x03" + bytes([len(block) * 2]) + block + b"\x00", 1)  # count -2, size 2
    with pytest.raises(PlanMiss):
        _planned_read(LINEAGE_CONTRACT, sized)
    assert _same(read_body(LINEAGE, LINEAGE_CONTRACT, LINEAGE_CONTRACT, sized), _fastavro_read(LINEAGE_CONTRACT, body))
