"""The contracts tests' Schema Registry: a Confluent-compatible one over real HTTP (``tests/support/registry_server.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
