"""Many readers at once: requests ask ClickHouse side by side, each on a client of its own, and get the serial answers.

The app runs under uvicorn on a loopback port in this process (chDB is one engine
per process), over the generated dataset of ``tests/dpo_expected.py``; the pool's
clients are real chDB handles, or real clickhouse-connect HTTP clients meeting a
port where nothing listens (no ClickHouse server runs here).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import Server, ServerSettings
from consentflow.sinks.client_pool import ClientPool
from consentflow.sinks.connection import connect, new_client
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import Dataset

KEY = new_key()
#: Fields naming the moment of asking, which differ between two askings.
MOMENTS = frozenset({"generated_at"})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("readers"), chdb_dsn, "http_readers")


@pytest.fixture(scope="module")
def served(data: Dataset, chdb_dsn: str) -> Iterator[tuple[str, Server]]:
    """The app under uvicorn on a free loopback port; yields its base URL and its ``Server``."""
    settings = ServerSettings(chdb_dsn, data.database, KeyRing([ApiKey("readers-dpo", Role.DPO, key_hash(KEY))]))
    app = create_app(settings)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{listening.getsockname()[1]}", app.state.server
    server.should_exit = True
    thread.join(timeout=30)
    listening.close()


def _get(base: str, path: str, **params: str) -> Any:
    response = httpx.get(base + path, params=params, headers={"X-API-Key": KEY}, timeout=60)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return _without_moments(response.json())


def _without_moments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_moments(v) for k, v in value.items() if k not in MOMENTS}
    if isinstance(value, list):
        return [_without_moments(v) for v in value]
    return value


def test_a_request_is_answered_while_another_is_inside_clickhouse(served: tuple[str, Server], data: Dataset) -> None:
    """One slow reader (a request holding its tables) no longer holds up every other request (issue 21: one lock
    serialised every read)."""
    base, server = served
    subject = data.subjects()[0]
    inside, leave = threading.Event(), threading.Event()

    def slow_reader() -> None:
        with server.tables() as sink:
            sink.query("SELECT count() FROM {db:Identifier}.ledger")
            inside.set()
            leave.wait(30)

    holder = threading.Thread(target=slow_reader)
    holder.start()
    try:
        assert inside.wait(30)
        began = time.monotonic()
        response = httpx.get(f"{base}/v1/subjects/{subject}/recipients", headers={"X-API-Key": KEY}, timeout=5)
        assert response.status_code == 200 and response.json()["subject_id"] == subject
        assert time.monotonic() - began < 5
    finally:
        leave.set()
        holder.join(timeout=30)


def test_answers_asked_at_once_are_the_serial_answers(served: tuple[str, Server], data: Dataset) -> None:
    """Twenty requests at a time over who-has, consent and the access export give what one at a time gives, and
    who-has what the events say."""
    base, _ = served
    at = data.clock.isoformat()
    subjects = data.subjects()[:: max(1, len(data.subjects()) // 30)]
    paths = [
        path.format(s=subject)
        for subject in subjects
        for path in ("/v1/subjects/{s}/recipients", "/v1/subjects/{s}/consent", "/v1/subjects/{s}/access-export")
    ]
    serial = [_get(base, path, as_of=at) for path in paths]
    with ThreadPoolExecutor(20) as pool:
        together = list(pool.map(lambda path: _get(base, path, as_of=at), paths))
    assert together == serial
    for subject, answer in zip(subjects, together[::3], strict=True):
        assert sorted(h["recipient_id"] for h in answer["recipients"]) == sorted(expected.who_has(data, subject))


# -- the pool ---------------------------------------------------------------------------------------


def test_the_pool_lends_each_thread_its_own_client_and_no_more_than_its_size(chdb_dsn: str) -> None:
    pool = ClientPool(chdb_dsn, 2)
    lent: list[Any] = []
    inside = threading.Barrier(3, timeout=30)
    leave = threading.Event()

    def borrower() -> None:
        with pool.lend() as client:
            with pool.lend() as again:  # a thread that holds one is lent the same
                assert again is client
            lent.append(client)
            inside.wait()
            leave.wait(30)

    threads = [threading.Thread(target=borrower) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    assert len(lent) == 2 and lent[0] is not lent[1] and pool.opened == 2
    third: list[Any] = []
    waiter = threading.Thread(target=lambda: third.append(pool.lend().__enter__()))
    waiter.start()
    waiter.join(timeout=1)
    assert waiter.is_alive() and not third  # a third thread waits: two are lent
    leave.set()
    waiter.join(timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert third and third[0] in lent and pool.opened == 2
    # Both handles read the one engine: the same answer.
    assert lent[0].query("SELECT 1").result_rows == lent[1].query("SELECT 1").result_rows == [(1,)]


def test_a_server_client_that_cannot_connect_gives_its_place_back() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ClientPool(f"http://127.0.0.1:{port}", 1)
    for _ in range(2):  # the second try opens again rather than wait for a client that never came
        with pytest.raises(Exception, match=f"127.0.0.1.*{port}|Connection refused"), pool.lend():
            pass
        assert pool.opened == 0


def test_a_pool_refuses_another_chdb_path_than_the_process_opened(chdb_dsn: str, tmp_path: Path) -> None:
    connect(chdb_dsn).query("SELECT 1")  # the path this process opened
    with pytest.raises(ValueError, match="one engine per process"):
        new_client(f"chdb://{tmp_path}/other")


def test_a_served_clickhouse_server_that_does_not_answer_is_a_503_and_the_next_request_tries_again() -> None:
    from fastapi.testclient import TestClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ServerSettings(f"http://127.0.0.1:{port}", "consentflow", KeyRing([ApiKey("d", Role.DPO, key_hash(KEY))]))
    with TestClient(create_app(settings)) as client:
        for _ in range(2):
            response = client.get("/v1/subjects/subj-0000001/recipients", headers={"X-API-Key": KEY})
            assert response.status_code == 503 and "unreachable" in response.json()["detail"], response.text
        assert client.app.state.server.readers.pool.opened == 0  # type: ignore[attr-defined]


def test_the_tables_check_is_kept_a_moment_and_asked_again_after_a_failed_statement(data: Dataset, chdb_dsn: str) -> None:
    from consentflow.http.readers import Readers
    from consentflow.sinks.reader import QueryFailed

    readers = Readers(chdb_dsn, data.database, 2, recheck_seconds=60)
    asked: list[str] = []
    with readers.tables() as first:
        first.query("SELECT 1")
    with readers.pool.lend() as client:
        real = client.query

        def counting(sql: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(sql)
            return real(sql, *args, **kwargs)

        client.query = counting
        try:
            with readers.tables() as again:
                again.query("SELECT 1")
            assert not any("system.tables" in sql for sql in asked)  # found a moment ago: not asked again
            with pytest.raises(QueryFailed), readers.tables() as failing:
                failing.query("SELECT * FROM {db:Identifier}.no_such_table")
            asked.clear()
            with readers.tables() as checked:
                checked.query("SELECT 1")
            assert any("system.tables" in sql for sql in asked)
        finally:
            del client.query
