"""Kafka's own consumer-group view of a worker mid-stream: the tool operators already use shows the true lag.

``kafka-consumer-groups --describe`` (``deploy/kafka.sh tool consumer-groups``) shows "-" for the
current offset and lag of a partition the group never committed; faust commits a partition only
after its first batch, so mid-stream the view left out the backlog of partitions not started yet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest

from consentflow.kafka.lag import end_offsets
from tests.support.fault_broker import KAFKA_SH
from tests.support.kafka_pipeline import Pipeline

pytestmark = pytest.mark.kafka


@dataclass(frozen=True)
class Row:
    """One partition of ``kafka-consumer-groups --describe``; None where the tool prints "-"."""

    topic: str
    partition: int
    current: int | None
    lag: int | None


def describe(bootstrap: str, group: str) -> list[Row]:
    """The rows Kafka's own tool prints for ``group``."""
    out = subprocess.run(
        ["bash", str(KAFKA_SH), "tool", "consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rows = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == group:
            number = [None if f == "-" else int(f) for f in (fields[3], fields[5])]
            rows.append(Row(fields[1], int(fields[2]), number[0], number[1]))
    return rows


def test_kafkas_group_view_shows_the_lag_of_every_input_partition_mid_stream(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker("w1")
    total_inputs = sum(end_offsets(pipeline.bootstrap, pipeline.inputs).values())
    deadline = time.monotonic() + 120
    while pipeline.lag() >= total_inputs and time.monotonic() < deadline:
        time.sleep(0.05)
    # At faust's first commit most partitions are still at their first batch: held still there, so that the tool
    # and group_lag see the same commits.
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        rows = describe(pipeline.bootstrap, pipeline.app_id)
        lag = pipeline.lag()
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    assert 0 < lag < total_inputs, "the worker should be mid-stream"
    shown = {(row.topic, row.partition): row for row in rows if row.topic in pipeline.inputs}
    assert set(shown) == {(topic, p) for topic in pipeline.inputs for p in range(6)}
    not_shown = sorted(where for where, row in shown.items() if row.current is None)
    assert not not_shown, f"the tool shows no committed offset for {not_shown}"
    assert sum(row.lag or 0 for row in shown.values()) == lag
    pipeline.wait_caught_up()
    assert all(row.lag == 0 for row in describe(pipeline.bootstrap, pipeline.app_id) if row.topic in pipeline.inputs)
