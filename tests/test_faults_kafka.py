"""Fault tests on a real broker: the pipeline outlives the broker going away, with nothing lost and no help.

The broker here is a second one of ``deploy/kafka.sh`` beside the shared one (its own port and state folder),
so that restarting it breaks no other test. Each test compares the sink's per-table digests with the embedded
run of the same file, like ``test_pipeline_kafka``, and checks that no process needed a restart.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consentflow.lag import end_offsets
from tests.kafka_topics import delete_topics_under
from tests.test_pipeline_kafka import Pipeline, dataset, embedded_digests  # noqa: F401 -- the module's fixtures

pytestmark = pytest.mark.kafka

KAFKA_SH = Path(__file__).resolve().parent.parent / "deploy" / "kafka.sh"
FAULT_PORT = int(os.environ.get("CONSENTFLOW_FAULT_KAFKA_PORT", "19092"))
FAULT_HOME = os.environ.get("CONSENTFLOW_FAULT_KAFKA_HOME", str(Path(tempfile.gettempdir()) / "consentflow-fault-kafka"))


def kafka_sh(*args: str, timeout: float = 180.0) -> None:
    """``deploy/kafka.sh`` on the fault tests' own broker."""
    env = {**os.environ, "KAFKA_PORT": str(FAULT_PORT), "KAFKA_HOME_DIR": FAULT_HOME}
    subprocess.run(["bash", str(KAFKA_SH), *args], env=env, check=True, timeout=timeout)


@pytest.fixture(scope="module")
def fault_bootstrap() -> Iterator[str]:
    """A broker of the fault tests' own, started if it is not running, stopped afterwards if this module started it."""
    bootstrap = f"127.0.0.1:{FAULT_PORT}"
    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=3)
        started = False
    except KafkaException:
        kafka_sh("start")
        started = True
    yield bootstrap
    if started:
        kafka_sh("stop")


@pytest.fixture
def fault_pipeline(fault_bootstrap: str, dataset: Path, tmp_path: Path) -> Iterator[Pipeline]:  # noqa: F811
    p = Pipeline(fault_bootstrap, dataset, tmp_path)
    yield p
    p.stop()
    delete_topics_under(fault_bootstrap, p.prefix)


def test_a_worker_keeps_processing_across_a_broker_restart(
    fault_pipeline: Pipeline,
    chdb_dsn: str,
    embedded_digests: dict[str, tuple[int, str]],  # noqa: F811
) -> None:
    pipeline = fault_pipeline
    worker = pipeline.start_worker("w1")
    total_inputs = sum(end_offsets(pipeline.bootstrap, pipeline.inputs).values())
    deadline = time.monotonic() + 120
    while pipeline.lag() > total_inputs * 0.7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert 0 < pipeline.lag() < total_inputs, "the worker should be mid-stream when the broker restarts"
    kafka_sh("restart")
    time.sleep(12)  # past two ticks of the worker's quiet-partition timer, which used to crash on the way back
    assert worker.poll() is None, f"the worker exited with {worker.returncode}; see {pipeline.tmp}/w1.log"
    pipeline.wait_caught_up(timeout=150)
    assert worker.poll() is None, "the same worker caught up, without a restart"
    log = (pipeline.tmp / "w1.log").read_text(errors="replace")
    assert "Crashed" not in log
    pipeline.stop()
    assert pipeline.sink_digests(chdb_dsn) == embedded_digests
