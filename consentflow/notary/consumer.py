"""The standalone notary (``consentflow notary``, issue 22): a consumer of its own group over the ledger and
erasure-notice topics, for a ClickHouse server (or a chDB path of its own), writing only the log's tables.

It is the sink's consumer loop (``sinks.consumer.SinkConsumer``: the broker's outages, a stuck consumer replaced,
the stop) with another use for each message: no row, a leaf. Its delivery order is the sink's with nothing to
flush: the leaves into the log (and the checkpoints onto their topic), then the offsets. A crash before the commit
redelivers the batch, and the log skips the offsets it already holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Message

from consentflow.contracts.codec import Codec
from consentflow.contracts.topics import ERASURE_NOTICES, LEDGER, Topic
from consentflow.kafka.group_membership import SESSION_TIMEOUT
from consentflow.notary.follower import LogFollower
from consentflow.runtime.outage import Outage
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.stall_check import QUIET_FOR

log = logging.getLogger(__name__)

#: The notary's consumer group: apart from the sink's, so each reads every message.
NOTARY_GROUP = "consentflow-notary"


class NotaryConsumer(SinkConsumer):
    """Follows the ledger and erasure-notice topics into ``follower``'s logs, in ``sink``'s database; ``run`` (the
    sink's) until stopped or ``idle_exit`` seconds without messages."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        sink: ClickHouseSink,
        follower: LogFollower,
        *,
        group_id: str = NOTARY_GROUP,
        kafka_outage: Outage | None = None,
        session_timeout: float = SESSION_TIMEOUT,
        stall_after: float = QUIET_FOR,
    ) -> None:
        super().__init__(
            bootstrap,
            prefix,
            codec,
            sink,
            group_id=group_id,
            kafka_outage=kafka_outage,
            session_timeout=session_timeout,
            stall_after=stall_after,
            notary=follower,
        )
        self.follower = follower

    def followed_topics(self) -> tuple[Topic, ...]:
        """The topics whose records are leaves: the ledger and the erasure notices."""
        return (LEDGER, ERASURE_NOTICES)

    def keep(self, message: Message, topic: Topic, record: Mapping[str, Any]) -> None:
        """A decoded record: a leaf of its partition's log, and no row (the sink writes those)."""
        self.follower.note(
            str(message.topic()), int(message.partition() or 0), int(message.offset() or 0), topic.short_name, record
        )

    def refused(self, message: Message, letter: Mapping[str, Any]) -> None:
        """A message that breaks its contract is no leaf (the sink keeps it as a dead letter): one warning line."""
        log.warning(
            "%s[%s] offset %s is not a record the log can hold: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            letter.get("reason"),
        )
