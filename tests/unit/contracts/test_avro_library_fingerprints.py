"""The Python ``avro`` reference library fingerprints a schema with a logical type differently (issue 23, README
"Self-describing messages"): its Parsing Canonical Form keeps a logical-type string as ``{"type":"string"}`` where the
specification, Java's ``SchemaNormalization`` and fastavro write ``"string"``. These tests show the difference and its
only cause, so the README's warning stays true: look writer schemas up with ``consentflow schemas list`` (Java's
fingerprints, pinned in tests/unit/cli/test_schemas_list.py), not with ``avro``'s ``Schema.fingerprint``."""

from __future__ import annotations

import json

import avro.schema
import fastavro.schema
import pytest

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.events import consent_granted
from consentflow.contracts.releases import Contract, default_store
from consentflow.policy.vocabulary import ConsentChannel, Purpose
from tests.support.samples import T0, without_logical_types

STORE = default_store()


def _avro_library_fingerprint(document: object) -> str:
    return bytes(avro.schema.parse(json.dumps(document)).fingerprint("CRC-64-AVRO")).hex()


def _has_logical_type(document: object) -> bool:
    return "logicalType" in json.dumps(document)


def test_a_message_framed_with_our_fingerprint_is_not_found_by_the_avro_library() -> None:
    event = consent_granted(
        "cand-1", Purpose.MARKETING, channel=ConsentChannel.ACCOUNT_SETTINGS, source_service="account", occurred_at=T0
    )
    value = SingleObjectCodec().encode(event.topic, event.record)
    contract = STORE.latest("ConsentEvent")
    assert _has_logical_type(contract.schema)  # event_id is a uuid, occurred_at a timestamp-micros
    by_avro = {_avro_library_fingerprint(c.schema): c for c in STORE.all()}
    assert value[2:10].hex() == contract.fingerprint.hex()
    assert value[2:10].hex() not in by_avro  # the lookup a user of the avro library writes finds nothing
    canonical = avro.schema.parse(json.dumps(contract.schema)).canonical_form
    assert '{"name":"event_id","type":{"type":"string"}}' in canonical
    assert '{"name":"event_id","type":"string"}' in contract.canonical


@pytest.mark.parametrize("contract", STORE.all(), ids=lambda c: f"{c.name}-v{c.version}")
def test_the_logical_types_are_the_whole_difference(contract: Contract) -> None:
    assert _has_logical_type(contract.schema)
    assert _avro_library_fingerprint(contract.schema) != contract.fingerprint.hex()
    # Without its logical types the same document gets the same fingerprint from all three (fastavro here, Java in
    # the schemas list test): the byte order and the CRC agree, only the canonical form differs.
    bare = without_logical_types(contract.schema)
    assert _avro_library_fingerprint(bare) == contract.fingerprint.hex()
    assert (
        fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(bare), "CRC-64-AVRO") == contract.fingerprint.hex()
    )
