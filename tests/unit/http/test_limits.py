"""The HTTP API against abuse, served by uvicorn on loopback over chDB: bodies bounded before they are read,
nesting bounded, echoes shortened, secrets kept in, ``/health`` answered while ClickHouse is busy.

Bodies are sent over raw sockets, so a test controls what the client has sent
when the answer comes: a 413 that arrives while the client still has most of a
gigabyte to send proves the server did not wait to read it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consentflow.http.api_keys import KEYS_ENV, ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.body_limit import MIB, BodyLimits, parse_size
from consentflow.http.context import ServerSettings
from consentflow.http.key_scopes import UNRESTRICTED
from consentflow.sinks.clickhouse import ClickHouseSink
from tests.support.live_server import Live, served

KEYS = {role: new_key() for role in Role}
DATABASE = "http_limits"


def _ring() -> KeyRing:
    return KeyRing(
        ApiKey(f"limits-{role.value}", role, key_hash(key), UNRESTRICTED if role is Role.SERVICE else None)
        for role, key in KEYS.items()
    )


@pytest.fixture(scope="module")
def live(chdb_dsn: str) -> Iterator[Live]:
    ClickHouseSink(chdb_dsn, DATABASE)  # the pipeline's tables, empty
    # Nothing listens on port 1: the collector meets an unreachable Kafka.
    settings = ServerSettings(chdb_dsn, DATABASE, _ring(), bootstrap="127.0.0.1:1", collect_timeout=1.0)
    with served(settings) as live:
        yield live


def _head(live: Live, path: str, headers: dict[str, str]) -> bytes:
    origin = f"Origin: http://{live.host}:{live.port}"  # this server's own: /login refuses other origins before the body
    lines = [f"POST {path} HTTP/1.1", f"Host: {live.host}:{live.port}", origin, *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answer(sock: socket.socket, within: float) -> tuple[int, str]:
    """The status and body of the answer on ``sock``, read until the server closes it; fails after ``within`` s."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        if not data:
            raise AssertionError(f"no answer within {within} s: the server is still reading the body") from None
    except ConnectionResetError:
        pass  # the server closed with our unread bytes in its buffer; what it answered was read before
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def _announced(live: Live, path: str, length: int, headers: dict[str, str], sent: int) -> tuple[int, str, float]:
    """Announce ``length`` bytes, send ``sent`` of them, and read the answer: status, body, seconds waited."""
    with socket.create_connection((live.host, live.port), timeout=10) as sock:
        sock.sendall(_head(live, path, {**headers, "Content-Length": str(length)}) + b"x" * sent)
        began = time.monotonic()
        status, body = _answer(sock, within=5)
        return status, body, time.monotonic() - began


def _chunked(live: Live, path: str, headers: dict[str, str], chunks: int, size: int = 64 * 1024) -> tuple[int, str]:
    """Send ``chunks`` chunks of ``size`` bytes without ever ending the body, then read the answer."""
    with socket.create_connection((live.host, live.port), timeout=10) as sock:
        sock.sendall(_head(live, path, {**headers, "Transfer-Encoding": "chunked"}))
        try:
            for _ in range(chunks):
                sock.sendall(f"{size:x}\r\n".encode() + b"[" * size + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the last chunk went out
        return _answer(sock, within=5)


_SERVICE = {"X-API-Key": KEYS[Role.SERVICE], "Content-Type": "application/json"}
_AUDITOR = {"X-API-Key": KEYS[Role.AUDITOR], "Content-Type": "application/json"}
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _consent(**fields: str) -> dict[str, str]:
    """A consent event the collector takes, but for ``fields``."""
    body = {
        "subject_id": "subj-limits-1",
        "purpose": "cookies_analytics",
        "action": "granted",
        "channel": "cookie_banner",
        "source_service": "limits-service",
        "occurred_at": "2021-03-01T12:00:00Z",
    }
    return {**body, **fields}


# -- bodies bounded before they are read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "limit"),
    [("/login", _FORM, "64 KiB"), ("/v1/collect/consent", _SERVICE, "1 MiB"), ("/v1/audit/replay", _AUDITOR, "64 KiB")],
)
def test_a_gigabyte_announced_is_refused_before_it_is_read(live: Live, path: str, headers: dict[str, str], limit: str) -> None:
    status, body, waited = _announced(live, path, 10**9, headers, sent=1024)
    assert status == 413, body
    assert limit in body and "1,000,000,000 bytes announced" in body and "--max-body-bytes" in body
    assert waited < 2  # answered with 999,998,976 bytes still unsent


def test_an_announced_gigabyte_without_a_key_is_413_too(live: Live) -> None:
    status, body, _ = _announced(live, "/v1/collect/consent", 10**9, {"Content-Type": "application/json"}, sent=0)
    assert status == 413 and '"field":"body"' in body


@pytest.mark.parametrize(
    ("path", "headers", "chunks", "limit"),
    [("/login", _FORM, 2, "64 KiB"), ("/v1/collect/consent", _SERVICE, 18, "1 MiB"), ("/v1/audit/replay", _AUDITOR, 2, "64 KiB")],
)
def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    live: Live, path: str, headers: dict[str, str], chunks: int, limit: str
) -> None:
    # The body never ends: only an answer given on the bytes counted so far comes back.
    status, body = _chunked(live, path, headers, chunks)
    assert status == 413, body
    assert f"more than {limit} sent" in body
    assert httpx.get(f"{live.base}/health", timeout=5).status_code == 200


def test_a_body_within_the_limit_is_read(live: Live) -> None:
    answer = httpx.post(f"{live.base}/v1/collect/consent", content=b'{"subject_id": 1}' + b" " * 100_000, headers=_SERVICE)
    assert answer.status_code == 422 and answer.json()["field"] != "body", answer.text


def test_the_limits_are_set_per_route(chdb_dsn: str) -> None:
    limits = BodyLimits().with_setting("collect=2KiB").with_setting("login=100")
    assert (limits.collect, limits.login, limits.replay) == (2048, 100, 64 * 1024)
    settings = ServerSettings(chdb_dsn, DATABASE, _ring(), bootstrap="127.0.0.1:1", body_limits=limits)
    with served(settings) as live:
        big = httpx.post(f"{live.base}/v1/collect/consent", content=b" " * 3000, headers=_SERVICE)
        assert big.status_code == 413 and "at most 2 KiB" in big.json()["detail"]
        small = httpx.post(f"{live.base}/v1/collect/consent", content=b" " * 2000 + b"[]", headers=_SERVICE)
        assert small.status_code == 422, small.text
    assert parse_size("1MiB", "x") == MIB and parse_size(" 70000 ", "x") == 70000
    for bad, words in [
        ("collect", "ROUTE=SIZE"),
        ("bogus=1", "ROUTE=SIZE"),
        ("login=0", "not a size"),
        ("login=5 TB", "not a size"),
    ]:
        with pytest.raises(ValueError, match=words):
            BodyLimits().with_setting(bad)


# -- nesting bounded -----------------------------------------------------------------------------


def test_deep_nesting_is_422_naming_it_never_500(live: Live) -> None:
    collected = httpx.post(f"{live.base}/v1/collect/consent", content=b"[" * 100_000, headers=_SERVICE)
    assert collected.status_code == 422 and "nested" in collected.json()["detail"], collected.text
    replayed = httpx.post(f"{live.base}/v1/audit/replay", content=b"[" * 60_000, headers=_AUDITOR)
    assert replayed.status_code == 422 and "nested" in replayed.json()["detail"], replayed.text
    brackets_in_text = b'{"subject_id": "' + b"[" * 5000 + b'"}'
    inside = httpx.post(f"{live.base}/v1/collect/consent", content=brackets_in_text, headers=_SERVICE)
    assert inside.status_code == 422 and "nested" not in inside.json()["detail"], inside.text


# -- refusals echo a short prefix ----------------------------------------------------------------


def test_a_refusal_echoes_only_a_short_prefix_of_the_value(live: Live) -> None:
    in_url, in_body = "subj-" + "7" * 60_000, "subj-" + "7" * 100_000  # httpx sends URLs up to 64 KiB
    reader = {"X-API-Key": KEYS[Role.DPO]}
    refusals = {
        "path": httpx.get(f"{live.base}/v1/subjects/{in_url}/consent", headers=reader),
        "query": httpx.get(f"{live.base}/v1/violations", params={"subject_id": in_url}, headers=reader),
        "body": httpx.post(f"{live.base}/v1/collect/consent", json=_consent(subject_id=in_body), headers=_SERVICE),
        "time": httpx.get(f"{live.base}/v1/retention/due", params={"as_of": "subj-" + "7" * 60_000}, headers=reader),
    }
    for where, answer in refusals.items():
        assert answer.status_code == 422, (where, answer.status_code, answer.text[:300])
        detail = answer.json()["detail"]
        assert len(detail) < 400 and "subj-777" in detail, (where, detail[:500])
        assert "characters)" in detail, (where, detail)  # and says how long the value was
    page = httpx.get(f"{live.base}/{in_url}", headers=reader)  # outside /v1: the refusal is a page
    assert page.status_code == 404 and len(page.text) < 5000 and "60,006 characters" in page.text


def test_serve_refuses_a_malformed_limit_naming_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from consentflow.cli import main

    env = {KEYS_ENV: f"dpo:{KEYS[Role.DPO]}"}
    refused = CliRunner().invoke(main, ["serve", "--dsn", f"chdb://{tmp_path}", "--max-body-bytes", "collect=lots"], env=env)
    assert refused.exit_code != 0 and "--max-body-bytes collect: 'lots' is not a size" in refused.output, refused.output
