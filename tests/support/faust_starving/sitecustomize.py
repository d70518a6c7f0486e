"""Loaded at start-up by a worker subprocess given this folder on PYTHONPATH (``tests/kafka/test_starved_partitions_kafka.py``):
faust's fetcher never serves the input partitions named in ``CONSENTFLOW_TEST_STARVE`` ("topic:partition,..."), as
faust did after some rebalances. Only the selection of partitions to fetch changes; everything else is faust's own."""

from __future__ import annotations

import os
from typing import Any

from faust.transport.consumer import Consumer

_STARVED = {
    (topic, int(number)) for topic, number in (item.rsplit(":", 1) for item in os.environ["CONSENTFLOW_TEST_STARVE"].split(","))
}
_served = Consumer._get_active_partitions


def _get_active_partitions(self: Any) -> Any:
    return {tp for tp in _served(self) if (tp.topic, tp.partition) not in _STARVED}


Consumer._get_active_partitions = _get_active_partitions  # type: ignore[method-assign]
