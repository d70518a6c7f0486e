"""The worker's command-line defaults: the batch size, one named default (``streams.worker.BATCH_SIZE``, chosen by
measurement, bench/RESULTS.md §29) the same from the command line as from code; the drain bypass, which the
environment can turn off."""

from __future__ import annotations

import pytest

from consentflow.cli.pipeline import worker as worker_command
from consentflow.streams.worker import BATCH_SIZE, WorkerSettings


def test_the_command_line_s_default_batch_is_the_worker_s() -> None:
    (option,) = [param for param in worker_command.params if param.name == "batch_size"]
    assert option.default == BATCH_SIZE == WorkerSettings().batch_size


def test_the_environment_turns_the_drain_bypass_off_where_no_option_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """How a deployment (or the Kafka suite, run a second time) turns off the worker's paths past faust's layers."""
    assert worker_command.make_context("worker", []).params["drain_bypass"] is True
    monkeypatch.setenv("CONSENTFLOW_DRAIN_BYPASS", "0")
    assert worker_command.make_context("worker", []).params["drain_bypass"] is False
    assert worker_command.make_context("worker", ["--drain-bypass"]).params["drain_bypass"] is True
