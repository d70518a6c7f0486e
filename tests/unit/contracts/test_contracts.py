"""The Avro contracts in schemas/: well-formed, documented, in step with the vocabulary, and evolvable."""

from __future__ import annotations

import copy
import io
import json
import random
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Any

import avro.compatibility
import avro.errors
import avro.io
import avro.schema
import fastavro
import pytest

from consentflow.contracts.codec import SingleObjectCodec, write_body
from consentflow.contracts.releases import ContractStore, default_store, schemas_root
from consentflow.contracts.topics import ALL_TOPICS, INPUT_TOPICS, RECIPIENTS
from consentflow.policy import vocabulary
from tests.support.samples import (
    avro_compatibility,
    avro_read,
    avro_schema,
    backward_problems,
    input_events,
    normalise,
    sample_record,
    walk,
    without_logical_types,
)

STORE = default_store()
FILES = sorted(schemas_root().glob("*/v*.avsc"))
CONTRACTS = STORE.all()
LATEST = [STORE.latest(name) for name in STORE.names()]


def _doc(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_every_record_folder_is_loaded() -> None:
    folders = {p.parent.name for p in FILES}
    assert folders, "no contracts found under schemas/"
    assert set(STORE.names()) == folders
    assert len(CONTRACTS) == len(FILES)
    # every topic's record has a contract
    assert {t.record for t in ALL_TOPICS} <= folders


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_contract_parses_in_fastavro_and_avro(path: Path) -> None:
    document = _doc(path)
    assert document["type"] == "record"
    assert document["name"] == path.parent.name
    fastavro.parse_schema(copy.deepcopy(document))
    parsed = avro.schema.parse(path.read_text(encoding="utf-8"))
    assert isinstance(parsed, avro.schema.RecordSchema)
    assert parsed.fullname == f"{document.get('namespace', '')}.{document['name']}".lstrip(".")


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_record_field_and_enum_is_documented(path: Path) -> None:
    undocumented = []
    for where, definition in walk(_doc(path)):
        if not str(definition.get("doc", "")).strip():
            undocumented.append(f"{definition['type']} {where}")
        for field in definition.get("fields", []):
            if not str(field.get("doc", "")).strip():
                undocumented.append(f"field {definition['name']}.{field['name']}")
    assert not undocumented, f"{path}: no doc on {undocumented}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_enum_has_unknown_as_its_default(path: Path) -> None:
    enums = [(where, d) for where, d in walk(_doc(path)) if d["type"] == "enum"]
    for where, enum in enums:
        assert "unknown" in enum["symbols"], f"{path}: enum {enum['name']} at {where} lacks the symbol 'unknown'"
        assert enum.get("default") == "unknown", f"{path}: enum {enum['name']} at {where} has default {enum.get('default')!r}"


def _vocabulary_enums() -> dict[str, type[StrEnum]]:
    return {
        name: obj
        for name, obj in vars(vocabulary).items()
        if isinstance(obj, type) and issubclass(obj, StrEnum) and obj.__module__ == vocabulary.__name__
    }


@pytest.mark.parametrize("contract", LATEST, ids=lambda c: c.name)
def test_enum_symbols_match_the_vocabulary_in_order(contract: Any) -> None:
    known = _vocabulary_enums()
    for where, enum in walk(contract.schema):
        if enum["type"] != "enum":
            continue
        assert enum["name"] in known, f"{contract.name}: enum {enum['name']} at {where} has no counterpart in vocabulary.py"
        expected = [member.value for member in known[enum["name"]]]
        assert enum["symbols"] == expected, f"{contract.name}: enum {enum['name']} at {where} differs from vocabulary.py"


def test_vocabulary_check_would_notice_a_drift() -> None:
    """The symbol comparison above is not vacuous: the contracts use most vocabulary enums."""
    used = {enum["name"] for c in LATEST for _, enum in walk(c.schema) if enum["type"] == "enum"}
    assert {"Purpose", "DataCategory", "ConsentAction", "RecipientKind", "TransferMechanism", "Rule"} <= used


def _field(contract: Any, name: str) -> dict[str, Any]:
    for field in contract.schema["fields"]:
        if field["name"] == name:
            return dict(field)
    raise AssertionError(f"{contract.name} has no field {name}")


@pytest.mark.parametrize("topic", INPUT_TOPICS, ids=lambda t: t.short_name)
def test_input_records_carry_the_envelope(topic: Any) -> None:
    contract = STORE.latest(topic.record)
    assert _field(contract, "event_id")["type"] == {"type": "string", "logicalType": "uuid"}
    assert _field(contract, "occurred_at")["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert _field(contract, "source_service")["type"] == "string"
    assert _field(contract, "policy_version")["type"] == "string"
    if topic is RECIPIENTS:
        assert "subject_id" not in [f["name"] for f in contract.schema["fields"]]
    elif topic.key_field == "subject_id":
        assert _field(contract, "subject_id")["type"] == "string"
    # the Kafka key is a required string field of the record
    key = _field(contract, topic.key_field)
    assert key["type"] == "string" and "default" not in key


# ---------------------------------------------------------------- fingerprints


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: f"{c.name}-v{c.version}")
def test_fingerprint_matches_the_avro_package(contract: Any) -> None:
    """ContractStore's CRC-64-AVRO fingerprint is the one the ``avro`` package computes.

    The ``avro`` package keeps a logical-typed primitive as ``{"type":"long"}`` in its canonical
    form, where the Java reference implementation (SchemaNormalization) and fastavro write
    ``"long"``; single-object encoding must match Java's, so the comparison is made on the
    document without its ``logicalType`` annotations, which the Parsing Canonical Form strips
    anyway and which never change the binary encoding.
    """
    reference = avro.schema.parse(json.dumps(without_logical_types(contract.schema)))
    assert reference.fingerprint("CRC-64-AVRO") == contract.fingerprint
    assert reference.canonical_form == contract.canonical
    assert STORE.by_fingerprint(contract.fingerprint) is contract


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: f"{c.name}-v{c.version}")
def test_the_avro_package_differs_only_on_logical_type_wrapping(contract: Any) -> None:
    """Pins the known divergence explained above, so a change in either library is noticed."""
    raw = avro_schema(contract.schema).canonical_form
    collapsed = raw
    for primitive in ("string", "long", "int", "bytes"):
        collapsed = collapsed.replace(f'{{"type":"{primitive}"}}', f'"{primitive}"')
    assert collapsed == contract.canonical


def test_fingerprints_are_distinct() -> None:
    assert len({c.fingerprint for c in CONTRACTS}) == len(CONTRACTS)


# ---------------------------------------------------------------- backward compatibility (release check)


def release_failures(store: ContractStore, rng: random.Random) -> dict[str, list[str]]:
    """Every (newer, older) pair of a record's versions whose older data the newer cannot read.

    The registry-free codec reads a message of any release with the newest contract, so each
    version must read all earlier ones (BACKWARD_TRANSITIVE), not just its predecessor.
    """
    failures: dict[str, list[str]] = {}
    for name in store.names():
        versions = store.versions(name)
        for j, new in enumerate(versions):
            for old in versions[:j]:
                problems = backward_problems(new.schema, old.schema, rng)
                if problems:
                    failures[f"{name} v{new.version} <- v{old.version}"] = problems
    return failures


def test_every_version_reads_data_of_every_earlier_version() -> None:
    assert release_failures(STORE, random.Random(20201114)) == {}


def _synthetic_v2(tmp_path: Path, record: str, new_field: dict[str, Any]) -> ContractStore:
    root = tmp_path / "schemas"
    shutil.copytree(STORE.latest(record).path.parent, root / record)
    document = copy.deepcopy(STORE.latest(record).schema)
    document["fields"].append(new_field)
    (root / record / "v2.avsc").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return ContractStore(root)


def test_release_check_accepts_a_field_added_with_a_default(tmp_path: Path) -> None:
    store = _synthetic_v2(
        tmp_path,
        "ConsentEvent",
        {"name": "channel_note", "type": ["null", "string"], "default": None, "doc": "Added in v2."},
    )
    v1, v2 = store.versions("ConsentEvent")
    assert (v1.version, v2.version) == (1, 2)
    assert release_failures(store, random.Random(1)) == {}
    # and the codec itself decodes a v1 message into the v2 shape, the new field at its default
    event = next(e for e in input_events() if e.topic.record == "ConsentEvent")
    old_message = b"\xc3\x01" + v1.fingerprint + write_body(event.topic, v1, event.record)
    decoded = SingleObjectCodec(store).decode(event.topic, old_message)
    assert decoded == {**event.record, "channel_note": None}


def test_release_check_refuses_a_required_field_without_default(tmp_path: Path) -> None:
    store = _synthetic_v2(tmp_path, "ConsentEvent", {"name": "handled_by", "type": "string", "doc": "Added in v2."})
    failures = release_failures(store, random.Random(1))
    assert list(failures) == ["ConsentEvent v2 <- v1"]
    problems = failures["ConsentEvent v2 <- v1"]
    assert len(problems) == 2, problems  # both the avro checker and the fastavro read object
    assert "reader_field_missing_default_value" in problems[0] and "handled_by" in problems[0]
    assert "fastavro read of old data failed" in problems[1] and "handled_by" in problems[1]


def test_release_check_refuses_a_changed_field_type(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(STORE.latest("LedgerEntry").path.parent, root / "LedgerEntry")
    document = copy.deepcopy(STORE.latest("LedgerEntry").schema)
    next(f for f in document["fields"] if f["name"] == "sequence")["type"] = "int"  # long -> int narrows
    (root / "LedgerEntry" / "v2.avsc").write_text(json.dumps(document), encoding="utf-8")
    problems = release_failures(ContractStore(root), random.Random(3))["LedgerEntry v2 <- v1"]
    index = [f["name"] for f in document["fields"]].index("sequence")
    assert "type_mismatch" in problems[0] and f"/fields/{index}/type" in problems[0]
    assert any(p.startswith("fastavro read of old data failed") for p in problems[1:]), problems


# ---------------------------------------------------------------- forward: enum symbols added later


def _with_new_symbol(schema: dict[str, Any], enum_name: str, symbol: str) -> dict[str, Any]:
    newer = copy.deepcopy(schema)
    for _, definition in walk(newer):
        if definition["type"] == "enum" and definition["name"] == enum_name:
            definition["symbols"].insert(0, symbol)
            return newer
    raise AssertionError(f"no enum {enum_name}")


def _newer_rights_message() -> tuple[dict[str, Any], dict[str, Any], bytes]:
    v1 = STORE.latest("RightsEvent").schema
    newer = _with_new_symbol(v1, "Right", "automated_decision")  # GDPR Art. 22, in no release
    event = next(e for e in input_events() if e.topic.record == "RightsEvent")
    record = {**event.record, "right": "automated_decision"}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(copy.deepcopy(newer)), record)
    return v1, newer, out.getvalue()


def test_old_reader_maps_a_new_enum_symbol_to_unknown_in_fastavro() -> None:
    v1, newer, body = _newer_rights_message()
    verdict = avro_compatibility(avro_schema(v1), avro_schema(newer))
    assert verdict.compatibility is avro.compatibility.SchemaCompatibilityType.compatible
    read: dict[str, Any] = fastavro.schemaless_reader(  # type: ignore[assignment]
        io.BytesIO(body), fastavro.parse_schema(copy.deepcopy(newer)), fastavro.parse_schema(copy.deepcopy(v1))
    )
    assert read["right"] == "unknown"
    assert read["request_id"] == next(e for e in input_events() if e.topic.record == "RightsEvent").record["request_id"]


def test_without_the_enum_default_an_old_reader_fails() -> None:
    """The 'unknown' default is what saves the old reader: strip it and the read fails."""
    v1, newer, body = _newer_rights_message()
    no_default = copy.deepcopy(v1)
    for _, definition in walk(no_default):
        definition.pop("default", None)
    with pytest.raises(Exception, match="automated_decision"):
        fastavro.schemaless_reader(
            io.BytesIO(body), fastavro.parse_schema(copy.deepcopy(newer)), fastavro.parse_schema(no_default)
        )


@pytest.mark.xfail(
    strict=True,
    raises=avro.errors.SchemaResolutionException,
    reason="avro (Python) 1.12 ignores the reader enum's default for a writer symbol it lacks (spec: use the default); "
    "AVRO-3760 only covered indexes beyond the writer's symbols",
)
def test_old_reader_maps_a_new_enum_symbol_to_unknown_in_avro() -> None:
    v1, newer, body = _newer_rights_message()
    assert avro_read(newer, body, reader=v1)["right"] == "unknown"


def test_samples_cover_every_contract_and_round_trip_in_fastavro() -> None:
    """sample_record produces valid data for every contract (guards the helper the other tests rely on)."""
    rng = random.Random(7)
    for contract in CONTRACTS:
        record = sample_record(contract.schema, rng)
        assert set(record) == {f["name"] for f in contract.schema["fields"]}
        body = write_body("samples", contract, record)
        read = fastavro.schemaless_reader(io.BytesIO(body), contract.parsed, None)
        assert normalise(read) == normalise(record)
