"""Secrets and internal paths stay in the process: a DSN's credentials appear in no answer and no log line, a chDB
path in no answer; a 5xx names a request id under which the server log holds the detail.

Served by uvicorn on loopback (``tests.live_server``) over a real chDB and over a
ClickHouse DSN with credentials where nothing listens (port 1).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from consentflow.http.api_keys import KEYS_ENV, ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.context import ServerSettings
from consentflow.http.key_scopes import UNRESTRICTED
from consentflow.http.request_ids import REQUEST_ID_HEADER
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.clickhouse import SinkUnavailable
from consentflow.sinks.connection import check_dsn
from consentflow.sinks.database_scope import check_pipeline_database
from consentflow.sinks.verification import stored_rows
from tests.support.live_server import served

KEYS = {role: new_key() for role in Role}
SECRET = "s3cretpw"


def _ring() -> KeyRing:
    return KeyRing(
        ApiKey(f"secrets-{role.value}", role, key_hash(key), UNRESTRICTED if role is Role.SERVICE else None)
        for role, key in KEYS.items()
    )


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("http://admin:s3cretpw@127.0.0.1:1", "http://***@127.0.0.1:1"),
        ("https://u:p@ss@ch:8443/db?password=s3cretpw&compress=1", "https://***@ch:8443/db?password=***&compress=1"),
        ("http://ch:8123/?user=a&Password=s3cretpw", "http://ch:8123/?user=a&Password=***"),
        ("u:s3cretpw@k1:9092,k2:9092, v:s3cretpw@k3:9092", "***@k1:9092,k2:9092, ***@k3:9092"),
        ("SASL_SSL://u:s3cretpw@k1:9092", "SASL_SSL://***@k1:9092"),
        ("chdb:///var/lib/a@b/consentflow", "chdb:///var/lib/a@b/consentflow"),
        ("127.0.0.1:9092", "127.0.0.1:9092"),
    ],
)
def test_an_address_is_shown_without_its_credentials(address: str, shown: str) -> None:
    assert redacted_dsn(address) == shown


def test_a_malformed_dsn_is_refused_without_repeating_its_password() -> None:
    with pytest.raises(ValueError, match="must be chdb") as refused:
        check_dsn(f"mysql://admin:{SECRET}@db:3306")
    assert SECRET not in str(refused.value)


def _request_id_logged(caplog: pytest.LogCaptureFixture, answer: httpx.Response) -> str:
    """The server log line of the answer's request id (the answer names it too)."""
    request_id = answer.headers[REQUEST_ID_HEADER]
    assert f"request {request_id}" in answer.json()["detail"]
    lines = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert len(lines) == 1, (request_id, [r.getMessage() for r in caplog.records])
    return lines[0]


@pytest.mark.parametrize("ask", [check_pipeline_database, stored_rows], ids=["database scope", "verification"])
def test_every_unreachable_clickhouse_is_named_without_its_password(ask: Callable[[str, str], object]) -> None:
    """The replay's and verify's own reads of ``system.tables`` say ClickHouse is unreachable as every reader does."""
    with pytest.raises(SinkUnavailable) as refused:
        ask("http://admin:s3cretpw@127.0.0.1:1", "consentflow_scope")
    assert "s3cretpw" not in str(refused.value)
    assert str(refused.value).startswith("ClickHouse at http://***@127.0.0.1:1 unreachable: ")


def test_clickhouse_credentials_reach_neither_the_client_nor_the_log(caplog: pytest.LogCaptureFixture) -> None:
    dsn = f"http://admin:{SECRET}@127.0.0.1:1"
    caplog.set_level(logging.INFO)
    with served(ServerSettings(dsn, "consentflow", _ring(), bootstrap=f"svc:{SECRET}@127.0.0.1:1", collect_timeout=1)) as live:
        answer = httpx.get(f"{live.base}/v1/overview", headers={"X-API-Key": KEYS[Role.DPO]}, timeout=30)
        assert answer.status_code == 503, answer.text
        assert SECRET not in answer.text and "admin" not in answer.text and "127.0.0.1" not in answer.text
        logged = _request_id_logged(caplog, answer)
        assert "ClickHouse at http://***@127.0.0.1:1 unreachable" in logged
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_a_chdb_path_and_the_bootstrap_reach_only_the_log(chdb_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    path = chdb_dsn.removeprefix("chdb://")
    settings = ServerSettings(chdb_dsn, "no_tables_here", _ring(), bootstrap="127.0.0.1:1", collect_timeout=1.0)
    with served(settings) as live:
        answer = httpx.get(f"{live.base}/v1/overview", headers={"X-API-Key": KEYS[Role.DPO]}, timeout=30)
        assert answer.status_code == 503 and "no_tables_here holds no consentflow tables" in answer.text
        assert path not in answer.text
        assert path in _request_id_logged(caplog, answer)
        event = {
            "subject_id": "subj-secrets-1",
            "purpose": "cookies_analytics",
            "action": "granted",
            "channel": "cookie_banner",
            "source_service": "secrets-service",
            "occurred_at": "2021-03-01T12:00:00Z",
        }
        collected = httpx.post(
            f"{live.base}/v1/collect/consent", json=event, headers={"X-API-Key": KEYS[Role.SERVICE]}, timeout=30
        )
        assert collected.status_code == 503 and "127.0.0.1:1" not in collected.text, collected.text
        assert "Kafka at 127.0.0.1:1" in _request_id_logged(caplog, collected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_consentflow_serve_logs_the_request_id_and_no_password(tmp_path: Path) -> None:
    """The real command: its start line and its log show the DSN without the password; a 503's id is in its log."""
    port = _free_port()
    env = {**os.environ, KEYS_ENV: f"dpo:{KEYS[Role.DPO]}"}
    command = [sys.executable, "-c", "from consentflow.cli import main; main()", "serve", "--port", str(port)]
    command += ["--dsn", f"http://admin:{SECRET}@127.0.0.1:1", "--bootstrap", f"svc:{SECRET}@127.0.0.1:1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "consentflow serve did not come up"
                time.sleep(0.3)
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/overview", headers={"X-API-Key": KEYS[Role.DPO]}, timeout=30)
        assert answer.status_code == 503 and SECRET not in answer.text
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    assert SECRET not in log, log
    assert "http://***@127.0.0.1:1" in log  # the start line
    assert f"request {answer.headers[REQUEST_ID_HEADER]}: GET '/v1/overview' answered 503: ClickHouse at" in log, log


def _broken_producer() -> None:
    raise ValueError("cannot open /var/lib/consentflow/secret-spool/producer.state")


def test_an_unforeseen_failure_is_500_with_a_request_id_and_the_detail_only_in_the_log(
    chdb_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = ServerSettings(chdb_dsn, "consentflow", _ring(), producer_factory=_broken_producer)
    event = {
        "subject_id": "subj-secrets-2",
        "purpose": "cookies_analytics",
        "action": "granted",
        "channel": "cookie_banner",
        "source_service": "secrets-service",
    }
    with served(settings) as live:
        answer = httpx.post(f"{live.base}/v1/collect/consent", json=event, headers={"X-API-Key": KEYS[Role.SERVICE]}, timeout=30)
    assert answer.status_code == 500 and answer.json()["detail"].startswith("internal error (request "), answer.text
    assert "secret-spool" not in answer.text and answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "ValueError: cannot open /var/lib/consentflow/secret-spool" in _request_id_logged(caplog, answer)
