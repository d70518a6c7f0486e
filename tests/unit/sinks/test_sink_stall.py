"""The sink's self-check (``consentflow.sinks.stall_check``) and its broker probe, without a broker."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.runtime.outage import Outage
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.stall_check import StallCheck


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def quiet_until_due(check: StallCheck, clock: Clock) -> float:
    """Seconds of quiet until ``check`` wants to look."""
    start = clock.now
    while not check.due():
        clock.now += 0.5
    return clock.now - start


def test_the_consumer_is_looked_at_after_20_s_of_quiet_and_a_message_starts_the_quiet_again() -> None:
    clock = Clock()
    check = StallCheck(20.0, clock=clock)
    clock.now += 19.5
    assert not check.due()
    check.heard()
    assert quiet_until_due(check, clock) == 20.0
    assert check.quiet() == 20.0


def test_work_waiting_at_two_looks_in_a_row_is_stuck_and_the_second_look_comes_half_a_quiet_later() -> None:
    clock = Clock()
    check = StallCheck(20.0, clock=clock)
    quiet_until_due(check, clock)
    assert not check.stuck(1200)  # the first look: perhaps a consumer still rejoining after an outage
    assert quiet_until_due(check, clock) == 10.0
    assert check.quiet() == 30.0
    assert check.stuck(1200)
    assert quiet_until_due(check, clock) == 20.0  # after a verdict (the consumer replaced), a whole quiet again


def test_a_delivery_between_the_two_looks_clears_the_suspicion() -> None:
    clock = Clock()
    check = StallCheck(20.0, clock=clock)
    quiet_until_due(check, clock)
    assert not check.stuck(1200)
    clock.now += 3
    check.heard()  # the rejoined consumer delivers
    assert quiet_until_due(check, clock) == 20.0
    assert not check.stuck(800)


def test_nothing_waiting_is_idle_and_no_answer_is_an_outage_neither_is_stuck() -> None:
    clock = Clock()
    check = StallCheck(20.0, clock=clock)
    for waiting in (0, None, 0, None, None):
        assert quiet_until_due(check, clock) == 20.0
        assert not check.stuck(waiting)
    quiet_until_due(check, clock)
    assert not check.stuck(50)  # a first look with work after an idle one: not yet
    quiet_until_due(check, clock)
    assert not check.stuck(None)  # the broker gone between the two looks: the suspicion starts over
    quiet_until_due(check, clock)
    assert not check.stuck(50)


def test_a_suspicion_from_the_probe_looks_at_once() -> None:
    clock = Clock()
    check = StallCheck(20.0, clock=clock)
    clock.now += 2
    check.suspect()
    assert check.due()


def test_the_broker_away_reported_at_every_reconnection_does_not_push_the_sinks_probe_back(chdb_dsn: str, database: str) -> None:
    """librdkafka reports the broker away at each reconnection, many times a second: were each a failed try, the
    probe that ends the outage would never come due, and the sink would say the broker away for ever."""
    clock = Clock()
    outage = Outage("Kafka at 127.0.0.1:1", max_backoff=5.0, clock=clock)
    sink = ClickHouseSink(chdb_dsn, database)
    consumer = SinkConsumer("127.0.0.1:1", "p", SingleObjectCodec(), sink, kafka_outage=outage)
    try:
        consumer.on_kafka_error(KafkaError(KafkaError._TRANSPORT))
        assert not outage.away and outage.check_due(), "a report is checked at once; the probe's failure starts the outage"
        outage.failed(KafkaException(KafkaError(KafkaError._TRANSPORT)), "consuming")
        for _ in range(40):
            consumer.on_kafka_error(KafkaError(KafkaError._TRANSPORT))
            clock.now += 0.05
        assert outage.away
        assert outage.check_due(), "the probe is due a back-off after the outage began, whatever was reported since"
    finally:
        consumer.consumer.close()
