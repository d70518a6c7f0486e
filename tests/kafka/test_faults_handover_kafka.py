"""Fault test: two workers, one killed, the other takes its partitions, with nothing lost and no help.

On the fault tests' own broker (``tests/support/fault_broker.py``), like ``test_faults_kafka``: two workers share the input
partitions and a sink writes chDB; one worker is killed (``kill -9``) mid-stream; the survivor must own every input
partition within a bound that only the session timeout of ``consentflow.kafka.group_membership`` meets, then catch up
without a restart, and the sink's per-table digests must equal the embedded run's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient

from consentflow.kafka.group_membership import GroupView, group_view
from consentflow.kafka.lag import end_offsets
from tests.support.fault_broker import SinkProcess
from tests.support.kafka_pipeline import Pipeline

pytestmark = pytest.mark.kafka

#: Seconds from a worker's kill until the survivor owns every input partition: the 6 s session and a rebalance.
#: A 10 s session (before issue 19) cannot meet it: the broker waits at least 9 s after the last heartbeat.
HANDOVER_WITHIN = 9.0


def wait_for_group(admin: AdminClient, group_id: str, wanted: str, timeout: float, until: Callable[[GroupView], bool]) -> float:
    """Poll the group every 0.1 s until ``until(view)``; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    view = group_view(admin, group_id)
    while time.monotonic() < deadline:
        view = group_view(admin, group_id)
        if until(view):
            return time.monotonic()
        time.sleep(0.1)
    pytest.fail(f"the group was not {wanted} within {timeout:.0f} s: {view}")


def test_two_workers_one_killed_the_other_takes_its_partitions(
    fault_pipeline: Pipeline,
    embedded_digests: dict[str, tuple[int, str]],
) -> None:
    pipeline = fault_pipeline
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    inputs = set(end_offsets(pipeline.bootstrap, pipeline.inputs))
    doomed = pipeline.start_worker("w1", paced=True)
    survivor = pipeline.start_worker("w2", paced=True)
    sink = SinkProcess(pipeline, "s1")
    wait_for_group(admin, pipeline.app_id, "shared by both workers", 90, lambda view: view.shared_by(2, inputs))
    pipeline.wait_mid_stream(0.7, "one is killed")
    assert group_view(admin, pipeline.app_id).shared_by(2, inputs), "both workers own partitions when one is killed"

    os.killpg(doomed.pid, signal.SIGKILL)
    killed = time.monotonic()
    owned = wait_for_group(admin, pipeline.app_id, "owned by the survivor", 60, lambda view: view.shared_by(1, inputs))
    print(f"the survivor owned every input partition {owned - killed:.1f} s after the kill")
    assert owned - killed < HANDOVER_WITHIN, (
        f"the survivor owned every input partition only {owned - killed:.1f} s after the kill"
    )

    pipeline.wait_caught_up(timeout=150)
    assert survivor.poll() is None, f"the survivor exited with {survivor.returncode}; see {pipeline.tmp}/w2.log"
    assert "Crashed" not in (pipeline.tmp / "w2.log").read_text(errors="replace")
    assert doomed.returncode == -signal.SIGKILL, "no process but the killed one stopped"
    sink.finish_like(pipeline, embedded_digests)
