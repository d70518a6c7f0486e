"""consentflow.runtime.outage: which broker errors are transient, one log line per outage, back-off, and an exit otherwise."""

from __future__ import annotations

import asyncio
import logging

import aiokafka.errors as aiokafka_errors
import pytest
from confluent_kafka import KafkaError, KafkaException

from consentflow.kafka.lag import end_offsets
from consentflow.runtime.outage import EXIT_NOT_TRANSIENT, Outage, is_transient


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def kafka_error(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    ],
)
def test_a_broker_away_or_handing_over_leadership_is_transient(code: int) -> None:
    assert is_transient(kafka_error(code))


@pytest.mark.parametrize(
    "exc",
    [
        kafka_error(KafkaError.TOPIC_AUTHORIZATION_FAILED),
        kafka_error(KafkaError._INVALID_ARG),
        ValueError("bug"),
        KeyError("topic x does not exist"),
        KafkaException("no KafkaError inside"),
    ],
)
def test_a_refusal_or_a_bug_is_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_timeouts_and_refused_connections_are_transient() -> None:
    assert is_transient(TimeoutError("no answer")) and is_transient(ConnectionRefusedError())


def test_aiokafkas_retriable_errors_are_transient_and_its_others_are_not() -> None:
    """faust's own client (the worker commits where partitions start through it) marks its errors itself."""
    assert is_transient(aiokafka_errors.NodeNotReadyError("node 1"))
    assert is_transient(aiokafka_errors.KafkaConnectionError("refused"))
    assert not is_transient(aiokafka_errors.GroupAuthorizationFailedError())


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage("Kafka at k:9092", clock=clock)
    caplog.set_level(logging.INFO, logger="consentflow.outage")
    for _ in range(20):
        outage.failed(kafka_error(KafkaError._TRANSPORT), "reading ends")
        clock.now += 5
    assert outage.away and len(caplog.records) == 1
    assert "Kafka at k:9092" in caplog.text and "reading ends" in caplog.text and "_TRANSPORT" in caplog.text
    outage.succeeded()
    outage.succeeded()  # up already: nothing more to say
    assert not outage.away and len(caplog.records) == 2
    assert "back after 100.0 s (20 failed attempts)" in caplog.records[1].getMessage()


def test_a_report_served_after_the_broker_answered_again_starts_no_outage(caplog: pytest.LogCaptureFixture) -> None:
    """librdkafka serves an error callback at the next ``consume``: a refusal from before the probe's answer arrives
    after it. A report is a sign to check; only a check that fails starts an outage, its line naming the report."""
    clock = Clock()
    outage = Outage("Kafka at k:9092", clock=clock)
    caplog.set_level(logging.INFO, logger="consentflow.outage")
    outage.failed(kafka_error(KafkaError._TRANSPORT), "consuming")
    clock.now += 10
    outage.succeeded()  # the probe's answer
    outage.reported(kafka_error(KafkaError._TRANSPORT), "consuming")  # the refusal queued before it
    assert not outage.away and outage.check_due(), "checked at once, not yet an outage"
    outage.succeeded()  # the check: the broker answers
    assert not outage.check_due() and len(caplog.records) == 2
    outage.reported(kafka_error(KafkaError._ALL_BROKERS_DOWN), "consuming")  # the broker goes again
    outage.failed(kafka_error(KafkaError._TIMED_OUT), "consuming")  # and the check confirms it
    assert outage.away and len(caplog.records) == 3
    assert "not answering while consuming (_ALL_BROKERS_DOWN" in caplog.records[2].getMessage()


def test_retries_back_off_doubling_up_to_a_ceiling() -> None:
    clock = Clock()
    outage = Outage("Kafka", first_backoff=1.0, max_backoff=8.0, clock=clock)
    assert outage.due()
    waits = []
    for _ in range(6):
        outage.failed(TimeoutError(), "x")
        start = clock.now
        while not outage.due():
            clock.now += 0.5
        waits.append(clock.now - start)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    outage.succeeded()
    assert outage.due()  # back: the next call goes at once


def test_an_error_that_is_not_transient_ends_the_process_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    exits: list[int] = []
    outage = Outage("Kafka at k:9092", end_process=exits.append)
    outage.failed(kafka_error(KafkaError.TOPIC_AUTHORIZATION_FAILED), "reading ends")
    assert exits == [EXIT_NOT_TRANSIENT]
    (record,) = [r for r in caplog.records if r.name == "consentflow.outage"]
    assert record.levelno == logging.CRITICAL and "TOPIC_AUTHORIZATION_FAILED" in record.getMessage()


def test_a_lag_call_to_a_port_nothing_listens_on_is_waited_out(caplog: pytest.LogCaptureFixture) -> None:
    """The worker's timer calls ``end_offsets`` through ``Outage.attempt``: a real failure, skipped and retried."""
    calls: list[str] = []

    def ends(bootstrap: str) -> dict[tuple[str, int], int]:
        calls.append(bootstrap)
        return end_offsets(bootstrap, ["consentflow.consent"], 1.0)

    exits: list[int] = []
    outage = Outage("Kafka at 127.0.0.1:1", end_process=exits.append)
    caplog.set_level(logging.WARNING, logger="consentflow.outage")

    async def ticks() -> list[object]:
        return [await outage.attempt("reading ends", ends, "127.0.0.1:1") for _ in range(3)]

    assert asyncio.run(ticks()) == [None, None, None]
    assert exits == [] and outage.away
    assert len(calls) == 1, "the ticks within the back-off do not call the broker"
    assert len([r for r in caplog.records if r.name == "consentflow.outage"]) == 1


def test_without_end_process_an_error_that_is_not_transient_is_the_callers(caplog: pytest.LogCaptureFixture) -> None:
    """A library call (the embedded runner's ClickHouse) raises it: the process is not the outage's to end."""
    outage = Outage("ClickHouse at chdb:///x", end_process=None, transient=lambda exc: isinstance(exc, OSError))
    outage.failed(ConnectionRefusedError(), "inserting")  # transient by the test given
    assert outage.away
    with pytest.raises(ValueError, match="bad statement"):
        outage.failed(ValueError("bad statement\nStack trace: ..."), "inserting")
    assert not [r for r in caplog.records if r.levelno >= logging.CRITICAL]
