"""The worker's batch size: one named default (``streams.worker.BATCH_SIZE``, chosen by measurement, bench/RESULTS.md
§29), the same from the command line as from code."""

from __future__ import annotations

from consentflow.cli.pipeline import worker as worker_command
from consentflow.streams.worker import BATCH_SIZE, WorkerSettings


def test_the_command_line_s_default_batch_is_the_worker_s() -> None:
    (option,) = [param for param in worker_command.params if param.name == "batch_size"]
    assert option.default == BATCH_SIZE == WorkerSettings().batch_size
