"""``/metrics`` on the health port over real HTTP, parsed with ``prometheus_client.parser``; the lag gauge asked at a scrape.

The sink's counts against what it wrote: ``tests/unit/sinks/test_sink_metrics.py`` (chDB) and
``tests/kafka/test_metrics_kafka.py`` (a running sink).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from consentflow.runtime.health import Health
from consentflow.runtime.health_endpoint import HealthEndpoint
from consentflow.runtime.metrics import CONTENT_TYPE, LagCollector, SinkMetrics


def scrape(port: int) -> tuple[int, str, str]:
    """Status, content type and body of ``GET /metrics``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def endpoint(registry: CollectorRegistry) -> Iterator[HealthEndpoint]:
    server = HealthEndpoint(Health(), 0, metrics=registry)
    yield server
    server.close()


def test_metrics_served_on_the_health_port_as_prometheus_text(registry: CollectorRegistry, endpoint: HealthEndpoint) -> None:
    metrics = SinkMetrics(registry)
    metrics.inserted("ledger", 7, 0.004)
    metrics.inserted("ledger", 3, 0.2)
    metrics.dead_letters.labels("DecodeError").inc()
    status, content_type, body = scrape(endpoint.port)
    assert status == 200
    assert content_type == CONTENT_TYPE
    found = samples(body)
    assert found[("consentflow_sink_insert_rows_total", (("table", "ledger"),))] == 10
    assert found[("consentflow_sink_insert_seconds_count", (("table", "ledger"),))] == 2
    assert found[("consentflow_sink_insert_seconds_bucket", (("le", "0.005"), ("table", "ledger")))] == 1
    assert found[("consentflow_dead_letters_total", (("reason", "DecodeError"),))] == 1


def test_without_a_registry_metrics_is_404_and_the_probes_still_answer() -> None:
    server = HealthEndpoint(Health(), 0)
    try:
        assert scrape(server.port)[0] == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/live", timeout=5) as response:
            assert response.status == 200
    finally:
        server.close()


def test_the_lag_is_read_at_each_scrape(registry: CollectorRegistry, endpoint: HealthEndpoint) -> None:
    lags = {("p.ledger", 0): 5, ("p.ledger", 1): 0}
    registry.register(LagCollector("g", lambda: dict(lags)))
    first = samples(scrape(endpoint.port)[2])
    assert first[("consentflow_consumer_lag", (("group", "g"), ("partition", "0"), ("topic", "p.ledger")))] == 5
    assert first[("consentflow_consumer_lag", (("group", "g"), ("partition", "1"), ("topic", "p.ledger")))] == 0
    lags[("p.ledger", 0)] = 2
    second = samples(scrape(endpoint.port)[2])
    assert second[("consentflow_consumer_lag", (("group", "g"), ("partition", "0"), ("topic", "p.ledger")))] == 2


def test_a_broker_away_leaves_the_lag_out_and_the_scrape_whole(registry: CollectorRegistry, endpoint: HealthEndpoint) -> None:
    def away() -> dict[tuple[str, int], int]:
        raise ConnectionError("broker away")

    SinkMetrics(registry).inserted("ledger", 1, 0.01)
    registry.register(LagCollector("g", away, (ConnectionError,)))
    status, _, body = scrape(endpoint.port)
    assert status == 200
    found = samples(body)
    assert not [key for key in found if key[0] == "consentflow_consumer_lag"]
    assert found[("consentflow_sink_insert_rows_total", (("table", "ledger"),))] == 1
