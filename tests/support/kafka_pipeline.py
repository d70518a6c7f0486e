"""The pipeline on a real broker, for tests: fresh topics holding a generated dataset, workers as subprocesses,
the sink's drain, and the embedded run's digests every such test compares with.

``tests/conftest.py`` makes fixtures of these: ``dataset`` and ``embedded_digests`` once a session, and
``pipeline`` (the shared broker) and ``fault_pipeline`` (the fault tests' own, ``tests/support/fault_broker.py``) per test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import INPUT_TOPICS, OUTPUT_TOPICS
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import end_offsets, group_lag
from consentflow.kafka.producer import EventProducer
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.digest import table_digests
from consentflow.sinks.reader import TableReader
from consentflow.streams.embedded import run_events
from tests.support.kafka_topics import assert_topics_hold

SUBJECTS, DAYS, SEED = 400, 150, 23
WORKER_INPUTS = [t for t in INPUT_TOPICS if t.key_field == "subject_id"]  # what a worker consumes


def make_dataset(out: Path) -> Path:
    """The generated dataset every pipeline test produces to Kafka, written to ``out``."""
    generate(GeneratorConfig(subjects=SUBJECTS, days=DAYS, seed=SEED, violation_share=0.03), out, None)
    return out


def embedded_run_digests(dataset: Path, chdb_dsn: str) -> dict[str, tuple[int, str]]:
    """The reference: the same file through the embedded runner, as per-table digests."""
    sink = ClickHouseSink(chdb_dsn, f"emb_{uuid.uuid4().hex[:8]}")
    stats = run_events(read_events(dataset), Processor(), sink)
    assert stats.dead_letters == 0
    digests = table_digests(sink.reader)
    assert digests["lineage_edges"][0] > 1000 and digests["violations"][0] > 10
    subjects = {r["subject_id"] for t, r in read_events(dataset) if t.short_name != "recipients"}
    assert digests["subject_holdings"][0] == len(subjects)  # one holdings record per subject [2.3]
    return digests


class Pipeline:
    """Fresh topics holding the dataset, and worker subprocesses over them."""

    def __init__(self, bootstrap: str, dataset: Path, tmp: Path) -> None:
        self.bootstrap = bootstrap
        self.prefix = f"it{uuid.uuid4().hex[:8]}"
        self.app_id = f"{self.prefix}-worker"
        self.tmp = tmp
        self.workers: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []  # sinks and the like: killed at teardown if still running
        create_topics(bootstrap, prefix=self.prefix)
        sent: Counter[str] = Counter()
        with EventProducer(bootstrap, codec=SingleObjectCodec(), prefix=self.prefix) as producer:
            for topic, record in read_events(dataset):
                producer.send(Event(topic, record))
                sent[topic.name(self.prefix)] += 1
        self.inputs = [t.name(self.prefix) for t in WORKER_INPUTS]
        assert_topics_hold(bootstrap, sent, producer.delivered)

    def start_worker(
        self, name: str, env: Mapping[str, str] | None = None, options: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """``consentflow worker`` as a subprocess logging to ``<name>.log``, with ``env`` added to its environment and
        ``options`` to its command line."""
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 -- lives as long as the process
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consentflow.cli",
                "worker",
                "--bootstrap",
                self.bootstrap,
                "--prefix",
                self.prefix,
                "--app-id",
                self.app_id,
                "--data-dir",
                str(self.tmp / name),
                "--batch-size",
                "500",
                "--retention-interval",
                "1",
                "--retention-sweep-interval",
                "1",
                "--loglevel",
                "info",
                *options,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.workers.append(process)
        return process

    def wait_mid_stream(self, left: float, doing: str) -> None:
        """Until the workers' lag is at most ``left`` of the inputs, and not yet zero: mid-stream, for a fault."""
        total_inputs = sum(end_offsets(self.bootstrap, self.inputs).values())
        deadline = time.monotonic() + 120
        while self.lag() > total_inputs * left and time.monotonic() < deadline:
            time.sleep(0.2)
        assert 0 < self.lag() < total_inputs, f"the workers should be mid-stream when {doing}"

    def lag(self) -> int:
        return group_lag(self.bootstrap, self.app_id, self.inputs)

    def outputs(self) -> int:
        return sum(end_offsets(self.bootstrap, [t.name(self.prefix) for t in OUTPUT_TOPICS]).values())

    def wait_caught_up(self, timeout: float = 240.0) -> None:
        """Until the workers committed every input and the outputs stopped growing for a few seconds."""
        deadline = time.monotonic() + timeout
        stable_since, last = time.monotonic(), -1
        while time.monotonic() < deadline:
            for process in self.workers:
                if process.poll() not in (None, -signal.SIGKILL):
                    pytest.fail(f"a worker exited with {process.returncode}; see {self.tmp}/*.log")
            outputs = self.outputs()
            if outputs != last:
                stable_since, last = time.monotonic(), outputs
            if self.lag() == 0 and time.monotonic() - stable_since > 4:
                return
            time.sleep(1)
        self.dump_tasks()
        pytest.fail(f"workers did not catch up in {timeout:.0f} s (lag {self.lag()}); see {self.tmp}/*.log")

    def dump_tasks(self) -> None:
        """Have each live worker write its threads' and asyncio tasks' stacks to its log (mode's SIGUSR1), for the
        post-mortem of a stall."""
        for process in self.workers:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGUSR1)
        time.sleep(3)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def drain(self, chdb_dsn: str) -> TableReader:
        """Drain the output topics (and the registry) into a fresh database; its reader."""
        sink = ClickHouseSink(chdb_dsn, f"{self.prefix}_sink")
        consumer = SinkConsumer(self.bootstrap, self.prefix, SingleObjectCodec(), sink, group_id=f"{self.prefix}-sink")
        consumer.run(idle_exit=3.0)
        assert group_lag(self.bootstrap, f"{self.prefix}-sink", [t.name(self.prefix) for t in OUTPUT_TOPICS]) == 0
        return sink.reader

    def sink_digests(self, chdb_dsn: str) -> dict[str, tuple[int, str]]:
        """The digests of a drained database."""
        return table_digests(self.drain(chdb_dsn))

    def close(self) -> None:
        """At teardown: stop the workers, and kill any other process a failed test left running."""
        self.stop()
        for process in self.others:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
