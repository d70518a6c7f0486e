"""How soon a consumer group gives a stopped worker's or sink's partitions to the members left.

A member stopped cleanly (SIGTERM) leaves the group as it closes (LeaveGroup: aiokafka's ``consumer.stop()``
under faust, librdkafka's ``close()`` in the sink), and the group rebalances at once. A member that dies
(``kill -9``, a lost host) says nothing: the broker notices when its session expires, ``session_timeout`` seconds
after its last heartbeat, so that wait is the hand-over. Six seconds is the least a broker accepts by default
(``group.min.session.timeout.ms``); a broker configured with more refuses the member, and the ``--session-timeout``
option raises it.

Members are dynamic, not static (``group.instance.id``): a static member sends no LeaveGroup, so a replacement
that is a different process (a new host, a scale-down) would wait out the whole session after every SIGTERM; only
a restart under the same id gets its partitions back at once, and that needs ids a supervisor keeps stable.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Final

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from consentflow.kafka.clients import client_config
from consentflow.runtime.redaction import redacted_dsn

#: Seconds without a heartbeat before the broker gives a member's partitions to the others.
SESSION_TIMEOUT: Final = 6.0
#: Seconds between heartbeats; a member learns of a rebalance at its next one.
HEARTBEAT_INTERVAL: Final = 1.0


def heartbeat_interval(session_timeout: float) -> float:
    """A heartbeat at least three times per session, as Kafka advises, and no rarer than ``HEARTBEAT_INTERVAL``."""
    return min(HEARTBEAT_INTERVAL, session_timeout / 3)


def librdkafka_membership(session_timeout: float = SESSION_TIMEOUT) -> dict[str, int]:
    """A librdkafka consumer's session and heartbeat settings for ``session_timeout`` seconds."""
    return {
        "session.timeout.ms": round(session_timeout * 1000),
        "heartbeat.interval.ms": round(heartbeat_interval(session_timeout) * 1000),
    }


#: librdkafka's bound: a session no longer than ``max.poll.interval.ms`` (300 s by default, as aiokafka's).
MAX_SESSION_TIMEOUT: Final = 300.0


class SessionRefused(ValueError):
    """The broker's group settings refuse the session timeout asked for: no retry can outlive that."""


def check_session_timeout(bootstrap: str, session_timeout: float, timeout: float = 5.0) -> None:
    """Raise ``SessionRefused`` naming both when the broker accepts no session of ``session_timeout`` seconds.

    The broker refuses a member whose session lies outside its ``group.min.session.timeout.ms`` ..
    ``group.max.session.timeout.ms``; aiokafka then stops joining without a word more (the worker would wait for
    ever) and librdkafka retries every two seconds, so the range is read before a process joins. A broker that does
    not answer now is not refused: the process starts and waits for it as for any outage.
    """
    admin = AdminClient(client_config(bootstrap, {}))
    try:
        brokers = admin.list_topics(timeout=timeout).brokers
        if not brokers:
            return
        resource = ConfigResource(ResourceType.BROKER, str(min(brokers)))
        config = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
    except KafkaException:
        return
    bounds = [config.get(name) for name in ("group.min.session.timeout.ms", "group.max.session.timeout.ms")]
    if any(entry is None or entry.value is None for entry in bounds):
        return
    low, high = (int(entry.value) / 1000 for entry in bounds)
    if not low <= session_timeout <= high:
        raise SessionRefused(
            f"the broker at {redacted_dsn(bootstrap)} accepts group sessions of {low:g} to {high:g} s "
            f"(group.min/max.session.timeout.ms); --session-timeout {session_timeout:g} is outside them"
        )


Partition = tuple[str, int]


@dataclass(frozen=True)
class GroupView:
    """The broker's view of a consumer group: whether it is stable, and each member's assignment."""

    stable: bool
    shares: tuple[frozenset[Partition], ...]

    def shared_by(self, members: int, partitions: Set[Partition]) -> bool:
        """Stable, with ``members`` members, each holding some of ``partitions`` and together all of them."""
        mine = [share & partitions for share in self.shares]
        return self.stable and len(mine) == members and all(mine) and set().union(*mine) == partitions


def group_view(admin: AdminClient, group_id: str, timeout: float = 5.0) -> GroupView:
    """What the broker says of ``group_id`` now (not stable and no member while it cannot say)."""
    try:
        description = admin.describe_consumer_groups([group_id], request_timeout=timeout)[group_id].result()
    except KafkaException:
        return GroupView(False, ())
    shares = tuple(
        frozenset((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) for member in description.members
    )
    return GroupView(description.state == ConsumerGroupState.STABLE, shares)


__all__ = [
    "HEARTBEAT_INTERVAL",
    "MAX_SESSION_TIMEOUT",
    "SESSION_TIMEOUT",
    "GroupView",
    "SessionRefused",
    "check_session_timeout",
    "group_view",
    "heartbeat_interval",
    "librdkafka_membership",
]
