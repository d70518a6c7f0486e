"""``/health`` (and ``HEAD /health``) answers at once while reads queue behind a slow ClickHouse; ``/ready`` checks
ClickHouse and says within its timeout when it does not answer.

Served by uvicorn on loopback (``tests.live_server``) over chDB. The test holds
the app's statement lock, as a slow query would, and fills the server's thread
pool with reads waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.context import ServerSettings
from consentflow.sinks.clickhouse import ClickHouseSink
from tests.support.live_server import Live, served

DPO_KEY = new_key()
DATABASE = "http_health"
#: More reads than the server's thread pool has threads (40): every thread waits on the lock.
QUEUED_READS = 60


@pytest.fixture(scope="module")
def live(chdb_dsn: str) -> Iterator[Live]:
    ClickHouseSink(chdb_dsn, DATABASE)  # the pipeline's tables, empty
    ring = KeyRing([ApiKey("health-dpo", Role.DPO, key_hash(DPO_KEY))])
    with served(ServerSettings(chdb_dsn, DATABASE, ring, ready_timeout=1.0)) as live:
        yield live


def _timed(method: str, url: str) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    answer = httpx.request(method, url, timeout=5)  # before /health ran on the event loop, it waited for the lock
    return answer, time.monotonic() - began


@contextmanager
def _every_reader_busy(live: Live) -> Iterator[None]:
    """Every client of the server's reader pool lent to a thread of ours until the block ends, as long queries would."""
    pool = live.server.readers.pool
    lent, done = threading.Barrier(pool.size + 1), threading.Event()

    def hold() -> None:
        with pool.lend():
            lent.wait()
            done.wait()

    holders = [threading.Thread(target=hold) for _ in range(pool.size)]
    for holder in holders:
        holder.start()
    lent.wait()
    try:
        yield
    finally:
        done.set()
        for holder in holders:
            holder.join()


def test_health_answers_at_once_while_reads_queue_behind_a_slow_query(live: Live) -> None:
    read = f"{live.base}/v1/subjects/subj-nobody/recipients"
    with ThreadPoolExecutor(QUEUED_READS) as clients:
        with _every_reader_busy(live):  # slow queries hold every client the requests read on
            waiting = [clients.submit(httpx.get, read, headers={"X-API-Key": DPO_KEY}, timeout=60) for _ in range(QUEUED_READS)]
            time.sleep(1.0)  # every read is in the server, waiting for a client
            assert not any(w.done() for w in waiting)
            # Three probes each way: every one answered, the fastest within half a second (two cores, shared).
            gets = [_timed("GET", f"{live.base}/health") for _ in range(3)]
            assert all(a.status_code == 200 and a.json() == {"status": "ok"} for a, _ in gets)
            heads = [_timed("HEAD", f"{live.base}/health") for _ in range(3)]
            assert all(a.status_code == 200 and a.content == b"" for a, _ in heads), [a.status_code for a, _ in heads]
            for probes in (gets, heads):
                assert min(s for _, s in probes) < 0.5 and max(s for _, s in probes) < 2.0, [s for _, s in probes]
            ready, seconds = _timed("GET", f"{live.base}/ready")
            assert ready.status_code == 503 and "did not answer within 1 s" in ready.json()["detail"], ready.text
            assert seconds < 2.0, seconds
        # Once the query ends, every queued read is answered (an unknown subject: 404).
        assert [w.result().status_code for w in waiting] == [404] * QUEUED_READS
    ready, _ = _timed("GET", f"{live.base}/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}, ready.text


def test_ready_is_503_when_the_tables_are_missing(chdb_dsn: str) -> None:
    ring = KeyRing([ApiKey("health-dpo", Role.DPO, key_hash(DPO_KEY))])
    with served(ServerSettings(chdb_dsn, "http_health_empty", ring, ready_timeout=5.0)) as live:
        assert httpx.get(f"{live.base}/health", timeout=10).status_code == 200
        ready = httpx.get(f"{live.base}/ready", timeout=10)
        assert ready.status_code == 503 and "not ready: ClickHouse is unreachable" in ready.json()["detail"], ready.text
        assert "http_health_empty" not in ready.text  # open to everyone: the server log says which database
