"""The health probe over real HTTP on 127.0.0.1: liveness from a heartbeat, readiness from the start and the Outages.

The broker check is asked of a port nothing listens on (a real client, a real refusal); the fault test of a worker
and a sink whose broker goes away and comes back is ``tests/kafka/test_faults_health_kafka.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from consentflow.kafka.broker_check import BrokerCheck
from consentflow.runtime.health import Health
from consentflow.runtime.health_endpoint import HealthEndpoint
from consentflow.runtime.outage import Outage
from consentflow.streams.worker_health import keep_beating


def ask(endpoint: HealthEndpoint, path: str) -> tuple[int, dict[str, object]]:
    """The status and JSON body of ``GET path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def until(condition: object, timeout: float) -> float:
    """Seconds until ``condition()`` holds; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - start


def closed_port() -> int:
    """A port nothing listens on (bound, then freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def health() -> Health:
    return Health(stale_after=0.5)


@pytest.fixture
def endpoint(health: Health) -> Iterator[HealthEndpoint]:
    server = HealthEndpoint(health, 0)
    yield server
    server.close()


def test_live_while_beating_then_503_once_the_heartbeat_stops(health: Health, endpoint: HealthEndpoint) -> None:
    for _ in range(8):  # 0.8 s, longer than stale_after, beating all along
        health.beat()
        assert ask(endpoint, "/live") == (200, {"live": True})
        time.sleep(0.1)
    time.sleep(0.7)
    status, body = ask(endpoint, "/live")
    assert status == 503 and body["live"] is False
    assert "no heartbeat for" in str(body["reason"])
    health.beat()
    assert ask(endpoint, "/live")[0] == 200


def test_a_stuck_event_loop_is_not_live_and_the_probe_still_answers(endpoint: HealthEndpoint, health: Health) -> None:
    loop = asyncio.new_event_loop()
    keep_beating(loop, health, every=0.1)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        time.sleep(0.8)
        assert ask(endpoint, "/live")[0] == 200, "a turning loop beats"
        loop.call_soon_threadsafe(time.sleep, 1.5)  # a callback that blocks the loop, as a stuck one would
        took = until(lambda: ask(endpoint, "/live")[0] == 503, timeout=1.4)
        assert took < 1.4
        assert ask(endpoint, "/ready")[0] == 503, "not live is not ready either"
        until(lambda: ask(endpoint, "/live")[0] == 200, timeout=2.0)  # the loop turns again, and beats
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_waiting_in_health_sleep_is_live(health: Health) -> None:
    slow = Health(stale_after=1.5)  # above sleep's one-second beat
    server = HealthEndpoint(slow, 0)
    try:
        waiting = threading.Thread(target=slow.sleep, args=(3.0,))
        waiting.start()
        answers = []
        while waiting.is_alive():
            answers.append(ask(server, "/live")[0])
            time.sleep(0.2)
        assert len(answers) > 10 and set(answers) == {200}, "a process waiting out a retry is live"
    finally:
        server.close()


def test_ready_once_started_and_while_no_watched_outage_is_away(health: Health, endpoint: HealthEndpoint) -> None:
    kafka = Outage("Kafka at 127.0.0.1:1")
    clickhouse = Outage("ClickHouse at http://127.0.0.1:2")
    health.watch(kafka, clickhouse)
    health.beat()
    assert ask(endpoint, "/ready") == (503, {"ready": False, "reason": "starting"})
    health.started()
    assert ask(endpoint, "/ready") == (200, {"ready": True})
    kafka.failed(TimeoutError("no answer"), "testing")
    status, body = ask(endpoint, "/ready")
    assert status == 503 and str(body["reason"]).startswith("Kafka at 127.0.0.1:1 not answering for ")
    kafka.succeeded()
    clickhouse.failed(ConnectionRefusedError(), "testing")
    status, body = ask(endpoint, "/ready")
    assert status == 503 and str(body["reason"]).startswith("ClickHouse at http://127.0.0.1:2 not answering")
    clickhouse.succeeded()
    assert ask(endpoint, "/ready") == (200, {"ready": True})
    assert ask(endpoint, "/live")[0] == 200, "readiness says nothing of liveness"


@pytest.mark.parametrize("path", ["/", "/health", "/live/x", "/readyz"])
def test_any_other_path_is_404(endpoint: HealthEndpoint, path: str) -> None:
    status, body = ask(endpoint, path)
    assert status == 404 and "/live" in str(body["error"])


def test_a_query_string_is_ignored(health: Health, endpoint: HealthEndpoint) -> None:
    health.beat()
    assert ask(endpoint, "/live?verbose=1") == (200, {"live": True})


def test_the_broker_check_reports_a_broker_that_does_not_answer(health: Health, endpoint: HealthEndpoint) -> None:
    """A real client asking a port nothing listens on: transient, so an outage, and the probe says which."""
    bootstrap = f"127.0.0.1:{closed_port()}"
    kafka = Outage(f"Kafka at {bootstrap}")
    health.watch(kafka)
    health.started()
    health.beat()
    assert ask(endpoint, "/ready")[0] == 200
    BrokerCheck(bootstrap, timeout=1.0).report_to(kafka)
    health.beat()
    status, body = ask(endpoint, "/ready")
    assert status == 503 and str(body["reason"]).startswith(f"Kafka at {bootstrap} not answering for ")


def test_a_port_in_use_is_refused(endpoint: HealthEndpoint, health: Health) -> None:
    with pytest.raises(OSError):
        HealthEndpoint(health, endpoint.port)
