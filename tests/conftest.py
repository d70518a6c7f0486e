"""Fixtures every folder shares: the real Kafka broker (skip locally, fail in CI when it is down) and the chDB engine."""

from __future__ import annotations

import os
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


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
