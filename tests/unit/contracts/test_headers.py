"""The self-describing headers (issue 23): each names the contract, release and fingerprint of the value it rides
with, as UTF-8 text a person with kcat can read and match against the value's own single-object header."""

from __future__ import annotations

import json
import random
import re

import fastavro.schema
import pytest

from consentflow.contracts.codec import SINGLE_OBJECT_MAGIC, ConfluentCodec, SingleObjectCodec
from consentflow.contracts.headers import (
    CHECKPOINT_HEADERS,
    CONFLUENT,
    ENCODING,
    FINGERPRINT,
    SCHEMA,
    SINGLE_OBJECT,
    SUBJECT_STATE_HEADERS,
    VERSION,
    contract_headers,
    header_text,
)
from consentflow.contracts.releases import Contract, default_store
from consentflow.contracts.topics import ALL_TOPICS, Topic
from tests.support.samples import sample_record

STORE = default_store()


@pytest.mark.parametrize("contract", STORE.all(), ids=lambda c: f"{c.name}-v{c.version}")
def test_headers_name_contract_version_and_fingerprint_in_utf8(contract: Contract) -> None:
    headers = contract_headers(contract)
    assert all(isinstance(value, bytes) for _, value in headers)
    text = header_text(headers)
    assert text == {
        SCHEMA: f"consentflow.{contract.name}",
        VERSION: str(contract.version),
        FINGERPRINT: text[FINGERPRINT],
        ENCODING: SINGLE_OBJECT,
    }
    assert re.fullmatch(r"[0-9a-f]{16}", text[FINGERPRINT])
    # The fingerprint is recomputed here from the file alone, not taken from the store.
    document = contract.path.read_text(encoding="utf-8")
    expected = fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(json.loads(document)), "CRC-64-AVRO")
    assert text[FINGERPRINT] == expected
    assert STORE.by_fingerprint(bytes.fromhex(text[FINGERPRINT])) is contract


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.short_name)
def test_codec_headers_describe_the_bytes_it_writes(topic: Topic) -> None:
    codec = SingleObjectCodec()
    contract = STORE.latest(topic.record)
    value = codec.encode(topic, sample_record(contract.schema, random.Random(topic.short_name)))
    text = header_text(codec.headers(topic))
    # What a reader sees in the value's framing, c3 01 + 8 bytes, is the header's fingerprint.
    assert value[:2] == SINGLE_OBJECT_MAGIC
    assert value[2:10].hex() == text[FINGERPRINT]
    assert text[SCHEMA] == contract.full_name
    assert text[VERSION] == str(contract.version)
    assert codec.headers(topic) is codec.headers(topic.short_name)  # made once, shared by every message


def test_retention_action_names_its_newest_release() -> None:
    # RetentionAction has v1 and v2: messages are written with v2 and must say so.
    text = header_text(SingleObjectCodec().headers("retention"))
    assert text[VERSION] == "2"
    assert text[FINGERPRINT] == STORE.versions("RetentionAction")[-1].fingerprint.hex()
    assert text[FINGERPRINT] != STORE.versions("RetentionAction")[0].fingerprint.hex()


def test_confluent_framing_is_named() -> None:
    contract = STORE.latest("ConsentEvent")
    # Naming the contract needs no registry: the schema id is in the value, the contract in the headers.
    assert ConfluentCodec(registry=None).headers("consent") == contract_headers(contract, CONFLUENT)
    assert header_text(contract_headers(contract, CONFLUENT))[ENCODING] == "avro-confluent"
    assert header_text(contract_headers(contract))[FINGERPRINT] == header_text(contract_headers(contract, CONFLUENT))[FINGERPRINT]


def test_values_that_are_not_avro_say_what_they_are() -> None:
    assert header_text(CHECKPOINT_HEADERS) == {SCHEMA: "c2sp.org/tlog-checkpoint", ENCODING: "c2sp.org/signed-note"}
    assert header_text(SUBJECT_STATE_HEADERS) == {SCHEMA: "consentflow.SubjectState", ENCODING: "consentflow-state"}


def test_header_text_reads_what_a_consumer_returns() -> None:
    # confluent-kafka's Message.headers(): a list of (str, bytes | None), other producers' headers mixed in.
    consumed = [("traceparent", b"00-ab"), (SCHEMA, b"consentflow.LedgerEntry"), (VERSION, None)]
    assert header_text(consumed) == {SCHEMA: "consentflow.LedgerEntry", VERSION: ""}
    assert header_text(None) == {}
