"""Events faust skipped (faust-streaming #216): every hole in a partition's offsets is found, and read back
from the real broker exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from hypothesis import given
from hypothesis import strategies as st

from consentflow.kafka.admin import wait_until_ready
from consentflow.streams.skipped_events import PartitionContinuity, read_offsets

P = ("acme.consent", 2)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A partition resuming at ``start`` with ``end`` messages, as the handler sees it: some offsets never
    arrive, some arrive twice (redelivery after a rebalance)."""
    start = draw(st.integers(0, 50))
    end = draw(st.integers(start, start + 60))
    delivered: list[int] = []
    for offset in range(start, end):
        if draw(st.booleans()) or draw(st.booleans()):  # three in four arrive
            delivered.append(offset)
            if delivered and draw(st.integers(0, 9)) == 0:
                delivered.append(draw(st.sampled_from(delivered)))  # a redelivery of something already seen
    return start, end, delivered


@given(deliveries())
def test_every_skipped_offset_is_reported_once_and_nothing_else(case: tuple[int, int, list[int]]) -> None:
    start, end, delivered = case
    continuity = PartitionContinuity()
    continuity.expect(P, start, now=0.0)
    reported: list[int] = []
    for offset in delivered:
        reported.extend(continuity.observe(P, offset, now=1.0))
    reported.extend(continuity.behind({P: end}, {P: end - 1}, now=100.0, quiet_for=15.0).get(P, range(0)))
    assert reported == sorted(set(range(start, end)) - set(delivered))


def test_a_partition_that_is_still_moving_is_not_behind() -> None:
    continuity = PartitionContinuity()
    continuity.expect(P, 10, now=0.0)
    assert continuity.observe(P, 10, now=5.0) == range(0)
    # The end is further on, but the partition saw an event 5 s ago: faust is still delivering.
    assert continuity.behind({P: 20}, {P: 19}, now=10.0, quiet_for=15.0) == {}
    assert continuity.behind({P: 20}, {P: 19}, now=20.0, quiet_for=15.0) == {P: range(11, 20)}
    assert continuity.behind({P: 11}, {P: 10}, now=20.0, quiet_for=15.0) == {}, "caught up: nothing behind"


def test_a_backlog_faust_has_not_handed_over_yet_is_not_behind() -> None:
    """A partition waiting its turn in a long backlog is quiet, yet nothing of it was skipped."""
    continuity = PartitionContinuity()
    continuity.expect(P, 10, now=0.0)
    assert continuity.observe(P, 10, now=0.0) == range(0)
    assert continuity.behind({P: 150_000}, {P: 10}, now=60.0, quiet_for=15.0) == {}
    assert continuity.behind({P: 150_000}, {}, now=60.0, quiet_for=15.0) == {}, "nothing handed over in it yet"
    # faust handed offsets up to 12 over and 11 never reached the handler: only those two are behind.
    assert continuity.behind({P: 150_000}, {P: 12}, now=60.0, quiet_for=15.0) == {P: range(11, 13)}


def test_an_assignment_does_not_move_a_followed_partition_back_and_a_revoked_one_is_forgotten() -> None:
    continuity = PartitionContinuity()
    assert continuity.observe(P, 40, now=0.0) == range(0), "the first offset seen sets where the partition is"
    continuity.expect(P, 35, now=1.0)  # a late assignment signal: events up to 40 are handled already
    assert continuity.observe(P, 41, now=2.0) == range(0)
    continuity.forget([P])
    assert continuity.partitions() == []
    continuity.expect(P, 50, now=3.0)  # another worker moved it on meanwhile
    assert continuity.observe(P, 53, now=4.0) == range(50, 53)


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = f"skipped-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(30)
    wait_until_ready(admin, {name: 2})  # a producer meeting a topic not yet led and served can lose messages
    yield name
    admin.delete_topics([name], operation_timeout=30)[name].result(30)


@pytest.mark.kafka
def test_skipped_offsets_are_read_back_from_the_broker_exactly(kafka_bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(30):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=1)
    producer.produce(topic, key=b"other", value=b"other partition", partition=0)
    producer.flush(30)
    messages = read_offsets(kafka_bootstrap, (topic, 1), range(12, 15))
    assert [(m.offset(), m.key(), m.value()) for m in messages] == [
        (o, f"k{o}".encode(), f"v{o}".encode()) for o in range(12, 15)
    ]
    assert [m.offset() for m in read_offsets(kafka_bootstrap, (topic, 1), range(29, 30))] == [29], "the last offset"
    with pytest.raises(TimeoutError, match=r"offsets 28\.\.31"):
        read_offsets(kafka_bootstrap, (topic, 1), range(28, 32), timeout=5)
