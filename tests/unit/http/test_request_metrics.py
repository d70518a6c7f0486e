"""The API's ``/metrics`` on a running server (uvicorn on loopback, over chDB), parsed with ``prometheus_client.parser``:
requests counted by route template, method and status as they were answered; read only with a key that may.

Without the middleware and the route, ``/metrics`` is 404 and nothing is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.context import ServerSettings
from consentflow.runtime.metrics import CONTENT_TYPE
from consentflow.sinks.clickhouse import ClickHouseSink
from tests.support.live_server import Live, served

KEYS = {role: new_key() for role in (Role.DPO, Role.AUDITOR, Role.OPERATOR)}
DATABASE = "http_metrics"
SUBJECT_ROUTE = "/v1/subjects/{subject_id}/recipients"


@pytest.fixture(scope="module")
def live(chdb_dsn: str) -> Iterator[Live]:
    ClickHouseSink(chdb_dsn, DATABASE)  # the pipeline's tables, empty
    ring = KeyRing(ApiKey(f"metrics-{role.value}", role, key_hash(key)) for role, key in KEYS.items())
    with served(ServerSettings(chdb_dsn, DATABASE, ring)) as live:
        yield live


def scraped(live: Live, headers: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``GET /metrics``, by name and sorted labels."""
    answer = httpx.get(f"{live.base}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == CONTENT_TYPE
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def requests_of(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[tuple[str, str, str]]:
    """``consentflow_http_requests_total`` as (route, method, status): count."""
    return Counter(
        {
            (labels["route"], labels["method"], labels["status"]): int(value)
            for (name, pairs), value in samples.items()
            if name == "consentflow_http_requests_total" and (labels := dict(pairs))
        }
    )


def test_requests_are_counted_by_route_template_method_and_status(live: Live) -> None:
    operator = {"X-API-Key": KEYS[Role.OPERATOR]}
    before = requests_of(scraped(live, operator))
    asked: Counter[tuple[str, str, str]] = Counter()
    with httpx.Client(base_url=live.base, timeout=30) as client:
        for path, headers in [
            ("/health", {}),
            ("/health", {}),
            ("/v1/subjects/subj-0000001/recipients", {"X-API-Key": KEYS[Role.DPO]}),
            ("/v1/subjects/subj-0000002/recipients", {"X-API-Key": KEYS[Role.DPO]}),
            ("/v1/subjects/subj-0000003/recipients", {}),
            ("/no/such/path/subj-0000004", {}),
        ]:
            answer = client.get(path, headers=headers)
            route = "unmatched" if path.startswith("/no/") else SUBJECT_ROUTE if "/subjects/" in path else path
            asked[(route, "GET", str(answer.status_code))] += 1
    assert asked[(SUBJECT_ROUTE, "GET", "401")] == 1 and asked[("unmatched", "GET", "404")] == 1
    samples = scraped(live, operator)
    after = requests_of(samples)
    scrape = ("/metrics", "GET", "200")
    assert after - before == asked + Counter({scrape: 1})  # the scrape before this one is counted, not this one
    assert not [key for key in samples if "subj-" in repr(key)]  # ids in paths never become labels
    timed = samples[("consentflow_http_request_seconds_count", (("method", "GET"), ("route", SUBJECT_ROUTE)))]
    assert timed >= 3


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": new_key()}, 401),
        ({"X-API-Key": KEYS[Role.AUDITOR]}, 403),
        ({"Authorization": f"Bearer {KEYS[Role.AUDITOR]}"}, 403),
    ],
)
def test_metrics_need_a_key_that_may_read_them(live: Live, headers: dict[str, str], status: int) -> None:
    assert httpx.get(f"{live.base}/metrics", headers=headers, timeout=30).status_code == status


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": KEYS[Role.OPERATOR]},
        {"X-API-Key": KEYS[Role.DPO]},
        {"Authorization": f"Bearer {KEYS[Role.OPERATOR]}"},  # what a Prometheus scrape config's authorization sends
    ],
)
def test_an_operator_or_the_dpo_reads_them(live: Live, headers: dict[str, str]) -> None:
    scraped(live, headers)
    again = scraped(live, headers)
    assert again[("consentflow_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("status", "200")))] >= 1


def test_an_operator_key_reads_no_data(live: Live) -> None:
    answer = httpx.get(f"{live.base}/v1/subjects/subj-0000001/recipients", headers={"X-API-Key": KEYS[Role.OPERATOR]}, timeout=30)
    assert answer.status_code == 403 and "operator" in answer.json()["detail"]
