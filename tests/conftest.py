"""Fixtures more than one folder uses: the test Schema Registry, the real Kafka broker (skip locally, fail in CI when it
is down) and the chDB engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.support.registry_server import SchemaRegistryServer


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[SchemaRegistryServer]:
    """A Confluent-compatible registry over real HTTP on 127.0.0.1 (see tests/support/registry_server.py)."""
    with SchemaRegistryServer() as server:
        yield server


@pytest.fixture(scope="session")
def schema_registry_url(schema_registry: SchemaRegistryServer) -> str:
    """Base URL of the session's test Schema Registry."""
    return schema_registry.url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a broker that answers; skips (or fails when CI=true) otherwise."""
    bootstrap = os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092")
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=5)
    except KafkaException as exc:
        message = f"no Kafka broker answers at {bootstrap} ({exc.args[0]}); start it with bash deploy/kafka.sh start"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return bootstrap


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one chDB engine of this test process (chDB allows one per process); tests isolate by database."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def database() -> str:
    """A database name unique to one test."""
    return f"t_{uuid.uuid4().hex[:12]}"
