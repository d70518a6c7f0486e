"""Schemathesis against the API's own OpenAPI document: generated requests, no 5xx, every response as documented.

The app serves a small generated dataset in chDB, with a dpo key (every
endpoint is open to it). Kafka is unreachable for it (port 1), so a replay answers 503,
as documented; the replay against the real broker is tested in ``tests/unit/http/test_http_api.py``. The collector's producer is a recording double of
``EventProducer`` (our own code): what this test checks is the HTTP contract,
and a schema-valid event must not wait on a broker here; the real producer
against the real broker is tested in ``tests/unit/http/test_http_api.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events

DPO_KEY = new_key()
#: Examples per operation and kind of data: enough to reach every branch of a parameter, well under a minute in all.
MAX_EXAMPLES = 10
#: Checks that the brief asks for: no server error, and status, content type and body as documented.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


class RecordingProducer:
    """Takes events as ``EventProducer`` does, encoding each with the real codec, and keeps them."""

    def __init__(self) -> None:
        from consentflow.contracts.codec import SingleObjectCodec

        self.codec = SingleObjectCodec()
        self.sent: list[Event] = []

    def send(self, event: Event, *, arrival: Any = None) -> None:
        self.codec.encode(event.topic, event.record)  # raises ContractError as the real producer would
        self.sent.append(event)

    def flush(self, timeout: float = 60.0) -> None:
        return None


@pytest.fixture(scope="module")
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str, producer: RecordingProducer) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("schema")
    events = directory / "events.avro"
    generate(GeneratorConfig(subjects=80, days=120, seed=11, violation_share=0.05), events, None)
    database = "api_schema"
    run_events(read_events(events), Processor(), ClickHouseSink(chdb_dsn, database))
    ring = KeyRing([ApiKey("schema-dpo", Role.DPO, key_hash(DPO_KEY))])
    # Nothing listens on port 1: a replay meets an unreachable Kafka, and answers its documented 503 within a second.
    settings = ServerSettings(
        chdb_dsn, database, ring, bootstrap="127.0.0.1:1", replay_timeout=1.0, producer_factory=lambda: producer
    )
    app = create_app(settings)
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers={"X-API-Key": DPO_KEY})


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) for every documented operation, from the app's document (no database needed to build it).

    Negative data needs something to break (any string is a valid path parameter): operations without a query
    parameter or a body get positive data only.
    """
    app = create_app(ServerSettings("chdb:///nonexistent", "consentflow", KeyRing([])))
    cases = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("requestBody") or any(p["in"] == "query" for p in operation.get("parameters", [])):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


# Schemathesis's own pytest loader (``from_fixture``) does not run under pytest 9, so each operation
# gets its strategy from the loaded schema and Hypothesis drives it, positive and negative data alike.
@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_the_api_keeps_its_openapi_contract(api_schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    # A replay here meets no broker: its 503 is the documented answer, checked for status and body like any other.
    checks_for = [c for c in CHECKS if c is not checks.not_a_server_error] if path.endswith("/replay") else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(headers={"X-API-Key": DPO_KEY}, checks=checks_for)

    check()


def test_the_document_describes_every_endpoint_with_its_key(api_schema: Any) -> None:
    """Every operation but /health names the X-API-Key scheme, so clients (and schemathesis) know to send it."""
    document = api_schema.raw_schema
    assert document["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": document["components"]["securitySchemes"]["APIKeyHeader"]["description"],
    }
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 20
    for path, method, operation in operations:
        schemes = {name for requirement in operation.get("security", []) for name in requirement}
        assert ("APIKeyHeader" in schemes) == (path not in ("/health", "/ready")), (method, path)
