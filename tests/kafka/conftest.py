"""The broker tests' fixtures: the generated dataset and its embedded reference, pipelines on the shared broker and on the
fault tests' own broker (``tests/support/fault_broker.py``), which they restart and stop at will."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kafka_pipeline import Pipeline, embedded_run_digests, make_dataset
from tests.support.kafka_topics import delete_topics_under


@pytest.fixture(scope="session")
def session_prefix() -> str:
    """A topic prefix unique to this test session."""
    return f"test{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def fault_bootstrap() -> Iterator[str]:
    """The fault tests' own broker (``tests/support/fault_broker.py``), which they restart and stop at will."""
    from tests.support.fault_broker import fault_broker

    yield from fault_broker()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated dataset the pipeline tests produce to Kafka (``tests/support/kafka_pipeline.py``)."""
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
