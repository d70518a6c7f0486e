"""Fault tests on a real broker: the pipeline outlives the broker going away, with nothing lost and no help.

The broker here is a second one of ``deploy/kafka.sh`` beside the shared one (``tests/support/fault_broker.py``: its own
port and state folder, the session's ``fault_bootstrap`` fixture), so that restarting it breaks no other test. Each test compares the sink's per-table digests with the embedded
run of the same file, like ``test_pipeline_kafka``, and checks that no process needed a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.support.fault_broker import SinkProcess, kafka_sh
from tests.support.kafka_pipeline import DRAIN_IDS, DRAINS, Pipeline, assert_drain_said

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("drain", DRAINS, ids=DRAIN_IDS)
def test_a_worker_keeps_processing_across_a_broker_restart(
    fault_pipeline: Pipeline,
    embedded_digests: dict[str, tuple[int, str]],
    drain: list[str],
) -> None:
    pipeline = fault_pipeline
    worker = pipeline.start_worker("w1", options=drain, paced=True)
    sink = SinkProcess(pipeline, "s1")
    pipeline.wait_mid_stream(0.7, "the broker restarts")
    kafka_sh("restart")
    time.sleep(12)  # past two ticks of the worker's quiet-partition timer, which used to crash on the way back
    assert sink.process.poll() is None, f"the sink exited with {sink.process.returncode}"
    assert worker.poll() is None, f"the worker exited with {worker.returncode}; see {pipeline.tmp}/w1.log"
    pipeline.wait_caught_up(timeout=150)
    assert worker.poll() is None, "the same worker caught up, without a restart"
    log = (pipeline.tmp / "w1.log").read_text(errors="replace")
    assert "Crashed" not in log
    sink.finish_like(pipeline, embedded_digests)
    assert_drain_said(pipeline, "w1", drain)


def test_sigterm_ends_a_worker_mid_batch_within_30_s_and_its_successor_loses_nothing(
    fault_pipeline: Pipeline,
    embedded_digests: dict[str, tuple[int, str]],
) -> None:
    pipeline = fault_pipeline
    first = pipeline.start_worker("w1", paced=True)
    sink = SinkProcess(pipeline, "s1")
    pipeline.wait_mid_stream(0.6, "it is told to stop")
    os.killpg(first.pid, signal.SIGTERM)
    sent = time.monotonic()
    try:
        first.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker was still running 30 s after SIGTERM; see {pipeline.tmp}/w1.log")
    took = time.monotonic() - sent
    assert first.returncode == 0, f"SIGTERM is a clean stop, not a failure (exit {first.returncode}, {took:.1f} s)"
    pipeline.workers.remove(first)
    pipeline.start_worker("w2")
    pipeline.wait_caught_up(timeout=150)
    pipeline.stop()
    sink.wait_caught_up()
    sink.stop()
    assert sink.digests() == embedded_digests


def test_sigterm_ends_a_worker_within_30_s_while_the_broker_is_away(fault_pipeline: Pipeline) -> None:
    """aiokafka's fetcher sleeps through its retries while faust waits for it: the stop is bounded instead."""
    pipeline = fault_pipeline
    worker = pipeline.start_worker("w1")
    deadline = time.monotonic() + 120
    while pipeline.lag() > 0 and time.monotonic() < deadline:
        time.sleep(1)
    kafka_sh("stop")
    try:
        time.sleep(3)
        os.killpg(worker.pid, signal.SIGTERM)
        sent = time.monotonic()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker was still running 30 s after SIGTERM; see {pipeline.tmp}/w1.log")
        assert time.monotonic() - sent < 30
    finally:
        kafka_sh("start")
