"""Prometheus metrics of the long-running processes (worker, sink, API): a registry per process, the names, helpers.

Each process makes its own ``CollectorRegistry`` and the families it reports (``SinkMetrics``, ``WorkerMetrics``,
``ApiMetrics``); the drivers count (``streams/worker.py``, ``sinks/consumer.py``, ``sinks/clickhouse.py``,
``http/app.py``), never the core, which stays pure. A count is added once per batch where the batch knows it, so the
per-event path pays nothing. Consumer lag is asked of the broker when Prometheus scrapes (``LagCollector``), off the
processing path. Labels carry topics, tables, kinds, rules, reasons (error types) and routes: never a subject or
recipient id, never a value.

Served as Prometheus text by the worker's and sink's health endpoint (``runtime/health_endpoint.py``) and by the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Every name starts ``consentflow_``.
NAMESPACE = "consentflow"
#: The content type of ``exposition``'s bytes (the Prometheus text format).
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Insert and request latencies: from a millisecond (a small chDB insert, a cached answer) to a minute (ClickHouse away).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def exposition(registry: CollectorRegistry) -> bytes:
    """Everything ``registry`` holds, as Prometheus text (``CONTENT_TYPE``)."""
    return generate_latest(registry)


def _dead_letters(registry: CollectorRegistry) -> Counter:
    return Counter(
        "dead_letters",
        "Inputs (or outputs the sink could not read) kept as dead letters, by reason (the error's type).",
        ["reason"],
        namespace=NAMESPACE,
        registry=registry,
    )


class SinkMetrics:
    """What ``consentflow sink`` reports: rows and insert latency per table, dead letters, consumer lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.insert_rows = Counter(
            "sink_insert_rows",
            "Rows ClickHouse acknowledged, by table.",
            ["table"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.insert_seconds = Histogram(
            "sink_insert_seconds",
            "Seconds one table's insert of a batch took, retries while ClickHouse was away included.",
            ["table"],
            namespace=NAMESPACE,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.dead_letters = _dead_letters(registry)

    def inserted(self, table: str, rows: int, seconds: float) -> None:
        """One insert of ``rows`` rows into ``table`` that took ``seconds``."""
        self.insert_rows.labels(table).inc(rows)
        self.insert_seconds.labels(table).observe(seconds)


class WorkerMetrics:
    """What ``consentflow worker`` reports: events in, outputs, dead letters, verdicts, retention actions, lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_in = Counter("events_in", "Input events taken, by topic.", ["topic"], namespace=NAMESPACE, registry=registry)
        self.outputs = Counter(
            "outputs", "Output records written, by kind (output topic).", ["kind"], namespace=NAMESPACE, registry=registry
        )
        self.dead_letters = _dead_letters(registry)
        self.verdicts = Counter(
            "verdicts",
            "Verdicts on consent-gated processings, by rule and outcome (violation, or compliant: a verdict withdrawn).",
            ["rule", "outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.retention_actions = Counter(
            "retention_actions",
            "Retention actions issued or retracted (a plan that no longer holds them), by kind [2.3].",
            ["action", "outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )


class ApiMetrics:
    """What ``consentflow serve`` reports: requests by route (its template, never the ids in the path), method, status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.seconds = Histogram(
            "http_request_seconds",
            "Seconds from a request's arrival to its answer's start, by route template and method.",
            ["route", "method"],
            namespace=NAMESPACE,
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request to ``route`` answered with ``status`` after ``seconds``."""
        self.requests.labels(route, method, str(status)).inc()
        self.seconds.labels(route, method).observe(seconds)


class LagCollector(Collector):
    """``consentflow_consumer_lag{group,topic,partition}``: messages not yet committed, asked of the broker at each scrape.

    ``read`` returns the lag per ``(topic, partition)``; when it raises one of ``unavailable`` (the broker away, a
    topic not there yet) the scrape goes on without samples, logged at debug level: the process's own outage line
    already says it.
    """

    def __init__(
        self,
        group: str,
        read: Callable[[], Mapping[tuple[str, int], int]],
        unavailable: tuple[type[Exception], ...] = (),
    ) -> None:
        self.group = group
        self._read = read
        self._unavailable = unavailable

    def collect(self) -> Iterable[Metric]:
        """The gauge, one sample per partition (none while the broker does not answer)."""
        gauge = GaugeMetricFamily(
            f"{NAMESPACE}_consumer_lag",
            "Messages of a partition the consumer group has not yet committed (asked of the broker at the scrape).",
            labels=["group", "topic", "partition"],
        )
        try:
            lags = self._read()
        except self._unavailable as exc:  # a scrape must not fail because the broker is away
            log.debug("consumer lag not read: %s", exc)
            lags = {}
        for (topic, partition), lag in sorted(lags.items()):
            gauge.add_metric([self.group, topic, str(partition)], lag)
        return iter([gauge])

    def describe(self) -> Iterator[Metric]:
        """Nothing: describing would ask the broker at registration."""
        return iter(())


__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "NAMESPACE",
    "ApiMetrics",
    "LagCollector",
    "SinkMetrics",
    "WorkerMetrics",
    "exposition",
]
