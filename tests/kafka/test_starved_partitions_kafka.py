"""A worker whose faust never fetches some of its partitions still processes them (``streams/starved_partitions.py``).

The worker subprocess loads ``tests/support/faust_starving/sitecustomize.py``, which keeps two input partitions out of
every fetch faust's consumer makes, as faust did after some rebalances; the worker must notice, read their events
itself, and leave the same tables as the embedded run, with the group's lag at zero.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.kafka_pipeline import Pipeline
from tests.support.paths import REPO, SUPPORT

pytestmark = pytest.mark.kafka

STARVING = SUPPORT / "faust_starving"
# sitecustomize imports consentflow before ``-m`` puts the working directory on the path: this checkout's, first.
PYTHONPATH = os.pathsep.join((str(STARVING), str(REPO)))


def test_partitions_faust_never_fetches_are_read_by_the_worker_itself(
    pipeline: Pipeline, chdb_dsn: str, embedded_digests: dict[str, tuple[int, str]], dataset: Path
) -> None:
    starved = [f"{pipeline.prefix}.consent:2", f"{pipeline.prefix}.profile:4"]
    worker = pipeline.start_worker("w1", env={"PYTHONPATH": PYTHONPATH, "CONSENTFLOW_TEST_STARVE": ",".join(starved)})
    pipeline.wait_caught_up(timeout=150)
    pipeline.stop()
    log = (pipeline.tmp / "w1.log").read_text(errors="replace")
    for item in starved:
        topic, number = item.rsplit(":", 1)
        assert f"faust handed over nothing of {topic}[{number}]" in log, "the worker read the starved partition itself"
    assert "Crashed" not in log and worker.returncode == 0
    digests = pipeline.sink_digests(chdb_dsn)
    assert digests == embedded_digests, pipeline.holdings_report(chdb_dsn, dataset) + "\n" + pipeline.workers_report()
