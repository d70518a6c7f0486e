"""Fixtures: the test Schema Registry, and the real Kafka broker (skip locally, fail in CI when it is down)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.kafka_pipeline import Pipeline, embedded_run_digests, make_dataset
from tests.kafka_topics import delete_topics_under
from tests.registry_server import SchemaRegistryServer


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[SchemaRegistryServer]:
    """A Confluent-compatible registry over real HTTP on 127.0.0.1 (see tests/registry_server.py)."""
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
def session_prefix() -> str:
    """A topic prefix unique to this test session."""
    return f"test{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one chDB engine of this test process (chDB allows one per process); tests isolate by database."""
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def database() -> str:
    """A database name unique to one test."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def fault_bootstrap() -> Iterator[str]:
    """The fault tests' own broker (``tests/fault_broker.py``), which they restart and stop at will."""
    from tests.fault_broker import fault_broker

    yield from fault_broker()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated dataset the pipeline tests produce to Kafka (``tests/kafka_pipeline.py``)."""
    return make_dataset(tmp_path_factory.mktemp("pipeline") / "events.avro")


@pytest.fixture(scope="session")
def embedded_digests(dataset: Path, chdb_dsn: str) -> dict[str, tuple[int, str]]:
    """The reference every pipeline test compares with: ``dataset`` through the embedded runner."""
    return embedded_run_digests(dataset, chdb_dsn)


def pipeline_on(bootstrap: str, dataset: Path, tmp_path: Path) -> Iterator[Pipeline]:
    """Fresh topics on ``bootstrap`` holding ``dataset``; its processes stopped and its topics deleted after."""
    p = Pipeline(bootstrap, dataset, tmp_path)
    yield p
    p.close()
    delete_topics_under(bootstrap, p.prefix)


@pytest.fixture
def pipeline(kafka_bootstrap: str, dataset: Path, tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline on the shared broker."""
    yield from pipeline_on(kafka_bootstrap, dataset, tmp_path)


@pytest.fixture
def fault_pipeline(fault_bootstrap: str, dataset: Path, tmp_path: Path) -> Iterator[Pipeline]:
    """The same on the fault tests' own broker, which the test may restart or stop."""
    yield from pipeline_on(fault_bootstrap, dataset, tmp_path)
