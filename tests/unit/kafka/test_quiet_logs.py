"""OncePerWindow: the Kafka clients' repeated lines during an outage, the first of a kind and then a count."""

from __future__ import annotations

import logging

import pytest

from consentflow.kafka.quiet_logs import OncePerWindow, quiet_client_logs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture
def logged() -> tuple[Lines, OncePerWindow, Clock]:
    handler, clock = Lines(), Clock()
    quiet = OncePerWindow(handler, window=60.0, clock=clock)
    handler.addFilter(quiet)
    return handler, quiet, clock


def log(name: str, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, args, None)


def test_the_first_line_of_a_kind_passes_and_its_repeats_are_counted_when_the_window_ends(
    logged: tuple[Lines, OncePerWindow, Clock],
) -> None:
    handler, quiet, clock = logged
    for second in range(40):  # an outage: a refused connection every half second, to a node and a client that vary
        clock.now = second / 2
        handler.handle(log("aiokafka.conn", "Unable connect to node with id %s: %s", 1, f"port {19000 + second}"))
        handler.handle(log("librdkafka", "%s [%s] %s", "FAIL", f"rdkafka#consumer-{second}", "Connection refused"))
    handler.handle(log("consentflow.outage", "Kafka at %s back after %.1f s", "127.0.0.1:9092", 20.0))
    assert handler.lines == [
        "aiokafka.conn Unable connect to node with id 1: port 19000",
        "librdkafka FAIL [rdkafka#consumer-0] Connection refused",
        "consentflow.outage Kafka at 127.0.0.1:9092 back after 20.0 s",  # the project's own lines are not filtered
    ]
    clock.now = 61.0
    quiet.summarise()  # what its timer calls when the window ends
    assert handler.lines[3:] == [
        "aiokafka.conn Unable connect to node with id 1: port 19000 (39 similar suppressed in 60 s)",
        "librdkafka FAIL [rdkafka#consumer-0] Connection refused (39 similar suppressed in 60 s)",
    ]
    handler.handle(log("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "port 19492"))  # the next outage
    assert handler.lines[-1] == "aiokafka.conn Unable connect to node with id 1: port 19492"


def test_lines_of_other_kinds_pass(logged: tuple[Lines, OncePerWindow, Clock]) -> None:
    handler, _, _ = logged
    handler.handle(log("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, "NodeNotReadyError"))
    handler.handle(log("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, "KafkaConnectionError"))
    handler.handle(log("aiokafka.cluster", "Failed fetch messages from %s: %s", 1, "KafkaConnectionError"))
    assert len(handler.lines) == 3


def test_a_window_that_held_nothing_back_ends_without_a_summary(logged: tuple[Lines, OncePerWindow, Clock]) -> None:
    handler, quiet, clock = logged
    handler.handle(log("librdkafka", "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Disconnected"))
    clock.now = 61.0
    quiet.summarise()
    assert handler.lines == ["librdkafka FAIL [rdkafka#producer-1] Disconnected"]


def test_quiet_client_logs_filters_each_handler_of_the_logger_once() -> None:
    logger, first, second = logging.Logger("root-under-test"), Lines(), Lines()
    logger.addHandler(first)
    logger.addHandler(second)
    quiet_client_logs(logger)
    quiet_client_logs(logger)
    for _ in range(3):
        logger.error("Unable to update metadata from [%s]", 1, extra={})  # a record of this logger's own name
        logger.handle(log("aiokafka.client", "Unable to update metadata from [%s]", 1))
    assert len(first.lines) == len(second.lines) == 4  # its own three, and the client's first
