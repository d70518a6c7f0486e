"""A worker's registry feed reads the whole registry topic before the first event, or says it could not [4, 7].

Processing events against part of the registry records wrong verdicts: a disclosure to a recipient not yet read is a
violation, its erasure notices go nowhere. Before, ``catch_up`` returned quietly when its 30 s ran out, with whatever
it had read (nothing at all when the broker's first answers took that long).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from consentflow.contracts import events
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import RECIPIENTS
from consentflow.kafka.producer import EventProducer
from consentflow.streams.registry_feed import RegistryFeed
from tests.support.kafka_topics import fresh_topics

pytestmark = pytest.mark.kafka

RECIPIENT_COUNT = 40


@pytest.fixture(scope="module")
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    with fresh_topics(kafka_bootstrap, "regfeed", partitions=3) as prefix:
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            for n in range(RECIPIENT_COUNT):
                producer.send(
                    events.recipient_registered(
                        f"rcpt-{n}", name=f"Recipient {n}", kind="technical_subcontractor", country="FR",
                        allowed_purposes=["technical_operations_analytics"], source_service="registry",
                        occurred_at=datetime.now(UTC) - timedelta(days=1),
                    )
                )  # fmt: skip
        yield prefix


def test_the_feed_reads_every_recipient_before_it_says_it_caught_up(kafka_bootstrap: str, prefix: str) -> None:
    feed = RegistryFeed(kafka_bootstrap, prefix, SingleObjectCodec())
    try:
        assert not feed.caught_up
        assert feed.poll_new() == RECIPIENT_COUNT  # the first call reads the whole topic
        assert feed.caught_up
        assert all(feed.registry.resolve(f"rcpt-{n}", datetime.now(UTC))[0] is not None for n in range(RECIPIENT_COUNT))
    finally:
        feed.close()


def test_a_feed_that_cannot_read_the_whole_topic_in_time_raises_rather_than_returning_part(
    kafka_bootstrap: str, prefix: str
) -> None:
    feed = RegistryFeed(kafka_bootstrap, prefix, SingleObjectCodec())
    try:
        with pytest.raises(TimeoutError, match=RECIPIENTS.name(prefix)):
            feed.catch_up(timeout=0.0)
        assert not feed.caught_up
        feed.catch_up()  # and then, given time, it does
        assert feed.caught_up
        assert all(feed.registry.resolve(f"rcpt-{n}", datetime.now(UTC))[0] is not None for n in range(RECIPIENT_COUNT))
    finally:
        feed.close()
