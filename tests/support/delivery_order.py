"""The orders Kafka may deliver a generated stream in: each (topic, subject) queue in order, nothing else."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

#: (topic short name, record) in delivery order.
Events = list[tuple[str, dict[str, Any]]]


def kafka_order(stream: Events, seed: int) -> Events:
    """A random interleaving that keeps each (topic, subject) queue in order — a partition's order — registry first."""
    registry = [item for item in stream if item[0] == "recipients"]
    queues: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for item in stream:
        if item[0] != "recipients":
            queues[(item[0], item[1]["subject_id"])].append(item)
    # One ticket per event, shuffled: drawing a queue's tickets in turn merges the queues uniformly at random.
    tickets = [key for key, queue in queues.items() for _ in queue]
    random.Random(seed).shuffle(tickets)
    positions = dict.fromkeys(queues, 0)
    merged: Events = []
    for key in tickets:
        merged.append(queues[key][positions[key]])
        positions[key] += 1
    return registry + merged
