"""ConfluentCodec against a Confluent-compatible registry over real HTTP, through confluent-kafka's own
SchemaRegistryClient (not its mock:// client)."""

from __future__ import annotations

import copy
import json
import shutil
import struct
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from consentflow.contracts.codec import CONFLUENT_MAGIC, ConfluentCodec, SingleObjectCodec, make_codec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.releases import ContractStore, default_store
from consentflow.contracts.topics import RIGHTS
from tests.support.registry_server import SchemaRegistryServer
from tests.support.samples import input_events

STORE = default_store()
EVENTS = input_events()
RIGHTS_EVENT = next(e for e in EVENTS if e.topic is RIGHTS)


def _prefix() -> str:
    return f"reg{uuid.uuid4().hex[:8]}"


def test_the_server_speaks_the_client_protocol(schema_registry: SchemaRegistryServer) -> None:
    client = SchemaRegistryClient({"url": schema_registry.url})
    text = json.dumps(STORE.latest("RightsEvent").schema)
    subject = f"{_prefix()}.rights-value"
    first = client.register_schema(subject, Schema(text, "AVRO"))
    again = SchemaRegistryClient({"url": schema_registry.url}).register_schema(subject, Schema(text, "AVRO"))
    elsewhere = client.register_schema(f"{_prefix()}.rights-value", Schema(text, "AVRO"))
    assert first == again == elsewhere  # ids are global per schema text
    assert schema_registry.versions(subject) == [first]  # registering again adds no version
    fetched = SchemaRegistryClient({"url": schema_registry.url}).get_schema(first)
    assert fetched.schema_str == text and fetched.schema_type == "AVRO"
    with pytest.raises(SchemaRegistryError) as info:
        client.get_schema(first + 10_000)
    assert info.value.http_status_code == 404
    assert info.value.error_code == 40403
    assert info.value.error_message == f"Schema {first + 10_000} not found"
    requests = [r for r in schema_registry.state.requests if subject in r[1] or r[1].startswith("/schemas/ids/")]
    assert ("POST", f"/subjects/{subject}/versions?normalize=False") in requests


def test_the_server_answers_errors_in_registry_json(schema_registry: SchemaRegistryServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{schema_registry.url}/schemas/ids/424242", timeout=5)
    assert info.value.code == 404
    assert json.loads(info.value.read()) == {"error_code": 40403, "message": "Schema 424242 not found"}
    request = urllib.request.Request(
        f"{schema_registry.url}/subjects/x-value/versions",
        data=json.dumps({"schema": "{not avro"}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 422 and json.loads(info.value.read())["error_code"] == 42201


def test_codec_registers_each_topic_once_under_topic_name_strategy(schema_registry: SchemaRegistryServer) -> None:
    prefix = _prefix()
    codec = ConfluentCodec.from_url(schema_registry.url, prefix=prefix)
    for event in EVENTS:
        data = codec.encode(event.topic, event.record)
        subject = f"{prefix}.{event.topic.short_name}-value"
        (registered,) = schema_registry.versions(subject)
        assert data[:1] == CONFLUENT_MAGIC and struct.unpack(">I", data[1:5])[0] == registered
        # the registered text is the whole contract: docs, defaults and logical types kept
        assert json.loads(schema_registry.schema_text(registered)) == STORE.latest(event.topic.record).schema
    posts = [r for r in schema_registry.state.requests if r[0] == "POST" and prefix in r[1]]
    assert len(posts) == len({e.topic for e in EVENTS})  # cached after the first use


def test_a_fresh_consumer_fetches_the_writer_schema_by_id(schema_registry: SchemaRegistryServer) -> None:
    prefix = _prefix()
    producer_side = ConfluentCodec.from_url(schema_registry.url, prefix=prefix)
    messages = [(e, producer_side.encode(e.topic, e.record)) for e in EVENTS]
    consumer_side = make_codec(schema_registry.url, prefix=prefix)
    assert isinstance(consumer_side, ConfluentCodec)
    before = len(schema_registry.state.requests)
    for event, data in messages:
        assert consumer_side.decode(event.topic, data) == event.record
    fetched = {r[1] for r in schema_registry.state.requests[before:] if r[0] == "GET"}
    ids = {struct.unpack(">I", d[1:5])[0] for _, d in messages}
    assert {path.split("?")[0] for path in fetched} == {f"/schemas/ids/{i}" for i in ids}


def test_unknown_schema_id_names_the_topic(schema_registry: SchemaRegistryServer) -> None:
    codec = ConfluentCodec.from_url(schema_registry.url, prefix=_prefix())
    body = codec.encode(RIGHTS, RIGHTS_EVENT.record)[5:]
    with pytest.raises(ContractError) as info:
        codec.decode(RIGHTS, CONFLUENT_MAGIC + struct.pack(">I", 7_000_000) + body)
    assert info.value.topic == "rights"
    assert "unknown schema id 7000000" in str(info.value) and "40403" in str(info.value)


def test_a_schema_id_outside_the_released_contracts_is_refused(schema_registry: SchemaRegistryServer) -> None:
    foreign = {"type": "record", "name": "RightsEvent", "namespace": "consentflow", "fields": [{"name": "x", "type": "string"}]}
    schema_id = SchemaRegistryClient({"url": schema_registry.url}).register_schema(
        f"{_prefix()}-value", Schema(json.dumps(foreign))
    )
    codec = ConfluentCodec.from_url(schema_registry.url, prefix=_prefix())
    with pytest.raises(ContractError) as info:
        codec.decode(RIGHTS, CONFLUENT_MAGIC + struct.pack(">I", schema_id) + b"\x02x")
    assert info.value.topic == "rights" and f"schema id {schema_id} is not a release kept in" in info.value.reason


#: The release after RightsEvent's latest, which the tests below make up.
NEXT = STORE.latest("RightsEvent").version + 1


def _store_with_v2(tmp_path: Path, new_field: dict[str, Any]) -> ContractStore:
    """The shipped releases of RightsEvent and a next one with ``new_field`` (v3 since issue 24 released v2)."""
    root = tmp_path / "schemas"
    latest = STORE.latest("RightsEvent")
    shutil.copytree(latest.path.parent, root / "RightsEvent")
    document = copy.deepcopy(latest.schema)
    document["fields"].append(new_field)
    (root / "RightsEvent" / f"v{NEXT}.avsc").write_text(json.dumps(document), encoding="utf-8")
    return ContractStore(root)


def test_a_compatible_v2_registers_and_reads_v1_messages(schema_registry: SchemaRegistryServer, tmp_path: Path) -> None:
    """The registry's BACKWARD check sees the v2 default only because the codec registers the whole document."""
    prefix = _prefix()
    old_codec = ConfluentCodec.from_url(schema_registry.url, prefix=prefix)
    old_message = old_codec.encode(RIGHTS, RIGHTS_EVENT.record)
    store = _store_with_v2(tmp_path, {"name": "handled_by", "type": ["null", "string"], "default": None, "doc": "v2"})
    new_codec = ConfluentCodec.from_url(schema_registry.url, store=store, prefix=prefix)
    new_message = new_codec.encode(RIGHTS, {**RIGHTS_EVENT.record, "handled_by": "dpo-desk"})
    assert len(schema_registry.versions(new_codec.subject(RIGHTS))) == 2
    assert new_codec.decode(RIGHTS, old_message) == {**RIGHTS_EVENT.record, "handled_by": None}
    assert new_codec.decode(RIGHTS, new_message)["handled_by"] == "dpo-desk"
    # a consumer still on release 1 refuses the newer message clearly (it decodes only releases it holds)
    with pytest.raises(ContractError) as info:
        ConfluentCodec.from_url(schema_registry.url, prefix=prefix).decode(RIGHTS, new_message)
    assert info.value.topic == "rights" and "is not a release kept in" in info.value.reason


def test_an_incompatible_v2_is_refused_by_the_registry(schema_registry: SchemaRegistryServer, tmp_path: Path) -> None:
    prefix = _prefix()
    ConfluentCodec.from_url(schema_registry.url, prefix=prefix).encode(RIGHTS, RIGHTS_EVENT.record)
    store = _store_with_v2(tmp_path, {"name": "handled_by", "type": "string", "doc": "v2, required"})
    codec = ConfluentCodec.from_url(schema_registry.url, store=store, prefix=prefix)
    with pytest.raises(ContractError) as info:
        codec.encode(RIGHTS, {**RIGHTS_EVENT.record, "handled_by": "dpo-desk"})
    assert info.value.topic == "rights"
    assert f"schema registry refused RightsEvent v{NEXT}" in info.value.reason
    assert "reader_field_missing_default_value" in info.value.reason


def test_both_framings_carry_the_same_avro_body(schema_registry: SchemaRegistryServer) -> None:
    confluent = ConfluentCodec.from_url(schema_registry.url, prefix=_prefix())
    single = SingleObjectCodec()
    for event in EVENTS:
        assert confluent.encode(event.topic, event.record)[5:] == single.encode(event.topic, event.record)[10:]


def test_a_registry_that_is_down_is_a_contract_error() -> None:
    with SchemaRegistryServer() as server:
        url = server.url
    codec = ConfluentCodec(SchemaRegistryClient({"url": url, "max.retries": 0}), prefix=_prefix())
    with pytest.raises(ContractError) as info:
        codec.encode(RIGHTS, RIGHTS_EVENT.record)
    assert (
        info.value.topic == "rights"
        and f"schema registry refused RightsEvent v{STORE.latest('RightsEvent').version}" in info.value.reason
    )
