"""The fault tests' own broker (a second ``deploy/kafka.sh`` beside the shared one) and the sink as a subprocess.

Restarting or stopping this broker breaks no other test; the session's ``fault_bootstrap`` fixture
(``tests/conftest.py``) starts it once for every fault test module and stops it at the end if it started it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consentflow.contracts.topics import OUTPUT_TOPICS
from consentflow.kafka.lag import group_lag
from tests.support.kafka_pipeline import Pipeline
from tests.support.paths import DEPLOY

KAFKA_SH = DEPLOY / "kafka.sh"
FAULT_PORT = int(os.environ.get("CONSENTFLOW_FAULT_KAFKA_PORT", "19092"))
FAULT_HOME = os.environ.get("CONSENTFLOW_FAULT_KAFKA_HOME", str(Path(tempfile.gettempdir()) / "consentflow-fault-kafka"))


def kafka_sh(*args: str, timeout: float = 180.0) -> None:
    """``deploy/kafka.sh`` on the fault tests' own broker."""
    env = {**os.environ, "KAFKA_PORT": str(FAULT_PORT), "KAFKA_HOME_DIR": FAULT_HOME}
    subprocess.run(["bash", str(KAFKA_SH), *args], env=env, check=True, timeout=timeout)


def fault_broker() -> Iterator[str]:
    """A broker of the fault tests' own, started if it is not running, stopped afterwards if this session started it."""
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


# The sink's chDB engine lives in its own process (one per process): its digests are read by another.
DIGESTS = (
    "import json, sys; from consentflow.sinks.clickhouse import ClickHouseSink; "
    "from consentflow.sinks.digest import table_digests; "
    "print(json.dumps(table_digests(ClickHouseSink(sys.argv[1], sys.argv[2]).reader)))"
)


class SinkProcess:
    """``consentflow sink`` as a subprocess into a chDB folder of its own (or into ``dsn``)."""

    def __init__(self, pipeline: Pipeline, name: str, dsn: str | None = None) -> None:
        self.pipeline = pipeline
        self.dsn = dsn or f"chdb://{pipeline.tmp / (name + '-chdb')}"
        self.database = f"{pipeline.prefix}_{name}"
        self.group_id = f"{pipeline.prefix}-sink"
        self.log_path = pipeline.tmp / f"{name}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 -- lives as long as the process
        command = ["consentflow.cli", "sink", "--bootstrap", pipeline.bootstrap, "--prefix", pipeline.prefix]
        command += ["--dsn", self.dsn, "--database", self.database, "--group-id", self.group_id]
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        pipeline.others.append(self.process)  # a failed test leaves no sink running

    def lag(self) -> int:
        return group_lag(self.pipeline.bootstrap, self.group_id, [t.name(self.pipeline.prefix) for t in OUTPUT_TOPICS])

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.lag() > 0:
            assert self.process.poll() is None, f"the sink exited with {self.process.returncode}"
            assert time.monotonic() < deadline, f"the sink did not catch up in {timeout:.0f} s (lag {self.lag()})"
            time.sleep(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)

    def digests(self) -> dict[str, tuple[int, str]]:
        out = subprocess.run([sys.executable, "-c", DIGESTS, self.dsn, self.database], capture_output=True, check=True)
        return {table: (count, digest) for table, (count, digest) in json.loads(out.stdout).items()}

    def finish_like(self, pipeline: Pipeline, embedded_digests: dict[str, tuple[int, str]]) -> None:
        """Stop the workers; the same sink, never restarted, catches up, stops cleanly and holds the embedded run's
        tables."""
        pipeline.stop()
        self.wait_caught_up()
        assert self.process.poll() is None, "the same sink caught up, without a restart"
        self.stop()
        assert self.process.returncode == 0
        assert self.digests() == embedded_digests
