"""Fault test on the fault tests' own broker: stopped for 20 s mid-stream, then started again.

A worker and a sink run throughout; both must outlive the outage without a restart, catch
up, and leave the same tables as the embedded run. The worker's log must stay quiet: the
first line of each kind the Kafka clients log, the project's own line when the broker goes
and when it is back, not the hundreds of retries in between (``consentflow.kafka.quiet_logs``).
"""

from __future__ import annotations

import time

import pytest

from tests.support.fault_broker import SinkProcess, kafka_sh
from tests.support.kafka_pipeline import Pipeline

pytestmark = pytest.mark.kafka

OUTAGE = 20.0
#: Lines a worker may log from the broker's stop until it has caught up: a few per kind of client error.
QUIET = 40


def test_a_worker_and_a_sink_outlive_the_broker_stopped_for_20_s_and_the_worker_logs_it_quietly(
    fault_pipeline: Pipeline,
    embedded_digests: dict[str, tuple[int, str]],
) -> None:
    pipeline = fault_pipeline
    worker = pipeline.start_worker("w1", paced=True)
    sink = SinkProcess(pipeline, "s1")
    pipeline.wait_mid_stream(0.7, "the broker stops")
    worker_log = pipeline.tmp / "w1.log"
    logged_before = worker_log.read_bytes().count(b"\n")
    kafka_sh("stop")
    try:
        time.sleep(OUTAGE)
        assert worker.poll() is None, f"the worker exited with {worker.returncode} while the broker was away"
        assert sink.process.poll() is None, f"the sink exited with {sink.process.returncode} while the broker was away"
    finally:
        kafka_sh("start")
    pipeline.wait_caught_up(timeout=150)
    assert worker.poll() is None, "the same worker caught up, without a restart"
    lines = worker_log.read_text(errors="replace").splitlines()[logged_before:]
    assert not any("Crashed" in line for line in lines)
    assert len(lines) <= QUIET, f"{len(lines)} lines logged through the outage:\n" + "\n".join(lines[:60])
    sink.finish_like(pipeline, embedded_digests)
