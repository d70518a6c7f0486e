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
from typing import Any

import pytest

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import HOLDINGS, INPUT_TOPICS, OUTPUT_TOPICS
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
from tests.support.kafka_topics import assert_topics_hold, read_to_end
from tests.support.paths import REPO, SUPPORT

SUBJECTS, DAYS, SEED = 400, 150, 23
#: A paced worker's pause after each batch, seconds: the stream then takes several commits' time to run through.
PACE = "0.2"
PACED = SUPPORT / "paced_worker"
#: A worker's command-line options for faust's drain loop: the bypass (the default) and faust's own race throughout.
DRAINS: list[list[str]] = [["--drain-bypass"], ["--no-drain-bypass"]]  # named: CONSENTFLOW_DRAIN_BYPASS may set the default
DRAIN_IDS = ["drain-bypass", "faust-drain"]
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


def assert_drain_said(pipeline: Pipeline, worker: str, drain: Sequence[str]) -> None:
    """The worker's startup line names uvloop and whether the drain bypass was on, as its options asked."""
    log = (pipeline.tmp / f"{worker}.log").read_text(errors="replace")
    assert "event loop uvloop" in log
    assert f"faust drain bypass {'off' if '--no-drain-bypass' in drain else 'on'}" in log


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
        self, name: str, env: Mapping[str, str] | None = None, options: Sequence[str] = (), *, paced: bool = False
    ) -> subprocess.Popen[bytes]:
        """``consentflow worker`` as a subprocess logging to ``<name>.log``, with ``env`` added to its environment and
        ``options`` to its command line; ``paced``: a pause after each batch (``tests/support/paced_worker``), for a
        test that acts mid-stream (``wait_mid_stream``)."""
        if paced:
            env = {**(env or {}), "PYTHONPATH": os.pathsep.join((str(PACED), str(REPO))), "CONSENTFLOW_TEST_PACE": PACE}
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
        """Until the workers' lag is at most ``left`` of the inputs, and not yet zero: mid-stream, for a fault (start
        the workers ``paced``: unpaced, one may be through the stream between two looks)."""
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

    def wait_outputs(self, more: int, timeout: float, doing: str) -> None:
        """Until the output topics hold ``more`` messages beyond what they held at the call; on a timeout, the test
        fails with each worker's exit status and the end of its log (a stall and a crash read differently)."""
        target = self.outputs() + more
        deadline = time.monotonic() + timeout
        while self.outputs() < target:
            if time.monotonic() > deadline:
                self.dump_tasks()
                pytest.fail(f"{doing}: fewer than {more} outputs in {timeout:.0f} s\n{self.workers_report()}")
            time.sleep(0.05)

    def workers_report(self, lines: int = 40) -> str:
        """Each worker's log name, exit status (None: running) and its last ``lines`` lines."""
        report = []
        for log in sorted(self.tmp.glob("*.log")):
            name = log.stem
            process = next((p for p in self.workers if p.args[p.args.index("--data-dir") + 1] == str(self.tmp / name)), None)
            status = "not a current worker" if process is None else f"exit status {process.poll()}"
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            report.append(f"--- {log.name} ({status}), last {len(tail)} lines:\n" + "\n".join(tail))
        return "\n".join(report)

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

    def holdings_report(self, chdb_dsn: str, dataset: Path) -> str:
        """Why a drained database's ``subject_holdings`` differs from the embedded run's: per subject whose stored
        record is not the one the whole dataset gives, the revisions the worker wrote to the topic and the one stored.
        A record is a function of the subject's events (``core/holdings.py``), so this tells a final tick never issued
        from a record that differs on the same events."""
        reference = Processor()
        events = list(read_events(dataset))
        for topic, record in events:
            reference.process(topic.short_name, dict(record))
        clock = max(record["occurred_at"] for _, record in events if "occurred_at" in record)
        expected = {h["subject_id"]: h for h in reference.tick(clock).holdings}
        codec = SingleObjectCodec()
        written: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
        for message in read_to_end(self.bootstrap, [HOLDINGS.name(self.prefix)]):
            record = codec.decode(HOLDINGS, message.value())
            written.setdefault(record["subject_id"], []).append((message.partition(), message.offset(), record))
        reader = ClickHouseSink(chdb_dsn, f"{self.prefix}_sink").reader
        stored = dict(reader.query("SELECT subject_id, revision FROM {db:Identifier}.subject_holdings FINAL"))
        lines = []
        for subject_id, record in sorted(expected.items()):
            mine = written.get(subject_id, [])
            highest = [r for _, _, r in mine if r["revision"] == max(x["revision"] for _, _, x in mine)] if mine else []
            if stored.get(subject_id) == record["revision"] and all(r == record for r in highest):
                continue
            revisions = ", ".join(f"{r['revision']}@{p}:{o}" for p, o, r in mine)
            differ = sorted(k for r in highest for k in record if r.get(k) != record[k])
            lines.append(
                f"{subject_id}: expected revision {record['revision']}, stored {stored.get(subject_id)}, written "
                f"[{revisions}]" + (f"; the highest differs in {differ}" if differ else "")
            )
        return f"{len(lines)} subjects' holdings differ:\n" + "\n".join(lines[:20])

    def close(self) -> None:
        """At teardown: stop the workers, and kill any other process a failed test left running."""
        self.stop()
        for process in self.others:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
