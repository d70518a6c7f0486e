"""The sink's self-check: a consumer that delivers nothing while its group still has work is stuck, not idle.

librdkafka's consumer can come out of a broker restart that outlasted its session (issue 19, fault test 1 in
``.ci/run``) rejoined yet delivering nothing, its loop turning in ``consume()`` with messages waiting. From the
inside, stuck and idle look alike; the broker tells them apart. After ``QUIET_FOR`` seconds without a message the
sink asks it, through clients of its own, how many messages of its topics its group has not committed on
partitions no other member holds (``waiting_work``). None (the broker not answering) is an outage, left to
``Outage``; nothing waiting is idle; anything waiting means the consumer is stuck, and the sink replaces it
(``SinkConsumer``), its uncommitted messages redelivered to the new one and absorbed by the tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consentflow.kafka_clients import client_config
from consentflow.lag import committed_offsets, end_offsets

#: Seconds without a message before the sink asks the broker whether work is waiting: several fetch waits and
#: heartbeats, and longer than a rebalance takes; short enough that a stuck sink is noticed well within a minute.
QUIET_FOR: Final = 20.0


class StallCheck:
    """When to ask whether the consumer is stuck, and what the answer means (no I/O: the caller asks the broker)."""

    def __init__(self, quiet_for: float = QUIET_FOR, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_for = quiet_for
        self._clock = clock
        self._since = clock()  # the start of the current quiet

    def heard(self) -> None:
        """The consumer delivered (or the sink was busy writing): the quiet starts again."""
        self._since = self._clock()

    def suspect(self) -> None:
        """Something else says the consumer is stuck (its own probe fails while the broker answers another client):
        ask at the next turn rather than at the end of the quiet."""
        self._since = self._clock() - self.quiet_for

    def due(self) -> bool:
        """Whether the consumer has been quiet for ``quiet_for`` seconds since it was last heard or checked."""
        return self._clock() - self._since >= self.quiet_for

    def quiet(self) -> float:
        """Seconds since the consumer was last heard or checked."""
        return self._clock() - self._since

    def stuck(self, waiting: int | None) -> bool:
        """The verdict once ``due``, given the messages waiting for this consumer (None: the broker did not say).

        Stuck only when the broker answered and work is waiting; idle or an outage is not. Either way the next
        check comes after another quiet.
        """
        self._since = self._clock()
        return waiting is not None and waiting > 0


def waiting_work(bootstrap: str, group_id: str, topics: Iterable[str], ours: Collection[str], timeout: float = 5.0) -> int | None:
    """Messages of ``topics`` that ``group_id`` has not committed, on partitions held by none of its members but
    ``ours`` (this process's member ids); None when the broker does not answer, through clients of its own."""
    admin = AdminClient(client_config(bootstrap, {"log_level": 0}))
    try:
        ends = end_offsets(bootstrap, topics, timeout)
        committed = committed_offsets(bootstrap, group_id, ends, timeout)
        group = admin.describe_consumer_groups([group_id], request_timeout=timeout)[group_id].result()
    except (KafkaException, KeyError):
        return None
    others = {
        (tp.topic, tp.partition)
        for member in group.members
        if member.member_id not in ours
        for tp in member.assignment.topic_partitions
    }
    return sum(end - (committed[tp] or 0) for tp, end in ends.items() if tp not in others)


__all__ = ["QUIET_FOR", "StallCheck", "waiting_work"]
