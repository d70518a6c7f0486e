"""Loaded at start-up by a worker subprocess given this folder on PYTHONPATH (``tests/kafka/test_starved_partitions_kafka.py``):
faust's fetcher never serves the input partitions named in ``CONSENTFLOW_TEST_STARVE`` ("topic:partition,..."), as
faust did after some rebalances. Only the selection of partitions to fetch changes; everything else is faust's own."""

from __future__ import annotations

import os

from consentflow.streams.faust_compat import starve_partitions

starve_partitions(
    {(topic, int(number)) for topic, number in (item.rsplit(":", 1) for item in os.environ["CONSENTFLOW_TEST_STARVE"].split(","))}
)
