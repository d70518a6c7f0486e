"""The sink's self-check: a consumer that delivers nothing while its group still has work is stuck, not idle.

librdkafka's consumer can come out of a broker restart that outlasted its session (issue 19, fault test 1 in
``.ci/run``) rejoined yet delivering nothing, its loop turning in ``consume()`` with messages waiting. From the
inside, stuck and idle look alike; the broker tells them apart. After ``QUIET_FOR`` seconds without a message the
sink asks it, through clients of its own, how many messages of its topics its group has not committed on
partitions no other member holds (``waiting_work``). None (the broker not answering) is an outage, left to
``Outage``; nothing waiting is idle; work waiting at that look and at the next, half a quiet later, means the
consumer is stuck, and the sink replaces it (``SinkConsumer``), its uncommitted messages redelivered to the new
one and absorbed by the tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from typing import Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consentflow.kafka.clients import client_config
from consentflow.kafka.lag import committed_offsets, end_offsets

#: Seconds without a message before the sink asks the broker whether work is waiting: several fetch waits and
#: heartbeats, and longer than a rebalance takes; short enough that a stuck sink is noticed well within a minute.
QUIET_FOR: Final = 20.0


class StallCheck:
    """When to ask whether the consumer is stuck, and what the answers mean (no I/O: the caller asks the broker).

    Stuck takes two answers in a row with work waiting and nothing delivered between: after ``quiet_for`` seconds
    of quiet, then half as long again. A consumer rejoining its group after an outage is quiet too, for a few
    seconds after the broker is back; the second look lets it deliver first.
    """

    def __init__(self, quiet_for: float = QUIET_FOR, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_for = quiet_for
        self._clock = clock
        self._heard_at = clock()  # the start of the current quiet
        self._since = self._heard_at  # the start of the quiet or the last look, whichever is later
        self._wait = quiet_for  # seconds from there to the next look
        self._work_seen = False  # the last look found work waiting, and nothing was delivered since

    def heard(self) -> None:
        """The consumer delivered (or the sink was busy writing): the quiet starts again, and any suspicion ends."""
        self._heard_at = self._since = self._clock()
        self._wait = self.quiet_for
        self._work_seen = False

    def suspect(self) -> None:
        """Something else says the consumer is stuck (its own request fails while the broker answers another
        client): look at the next turn rather than at the end of the quiet."""
        self._wait = 0.0

    def due(self) -> bool:
        """Whether it is time to ask the broker whether work waits."""
        return self._clock() - self._since >= self._wait

    def quiet(self) -> float:
        """Seconds since the consumer was last heard."""
        return self._clock() - self._heard_at

    def stuck(self, waiting: int | None) -> bool:
        """The verdict of a look, given the messages waiting for this consumer (None: the broker did not say).

        Work waiting at two looks in a row, with nothing heard between, is stuck; nothing waiting is idle, and no
        answer an outage: the quiet starts again.
        """
        found = waiting is not None and waiting > 0
        verdict = found and self._work_seen
        self._since = self._clock()
        self._work_seen = found and not verdict
        self._wait = self.quiet_for / 2 if self._work_seen else self.quiet_for
        return verdict


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
