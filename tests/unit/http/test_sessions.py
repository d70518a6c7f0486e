"""Sessions, not keys, in the pages' cookie (issue 21, the Low findings about cookies).

Found: the page cookie held the raw, long-lived API key; "Forget key" only
deleted it in the browser; ``/login`` took cross-site posts (login CSRF); and
``Secure`` was never set behind a TLS-terminating proxy. Now ``/login`` and
``/logout`` take posts from this server's own origin only, the cookie holds a
random session id kept in the server (idle and absolute limits, ended by
"Forget key", bound to the key's name and role, ended when the key leaves the
key file), and ``serve --forwarded-allow-ips`` lets a trusted proxy say https.
The start page (``/``) asks nothing of ClickHouse, so most of these need no
database; the proxy tests run the real ``consentflow serve`` on loopback.
"""

from __future__ import annotations

import html
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from consentflow.http.api_keys import KEYS_ENV, ApiKey, KeyRing, Role, add_key, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import KEY_COOKIE, ServerSettings
from consentflow.http.followed_keys import FollowedKeyRing
from consentflow.http.private_file import write_private
from consentflow.http.same_origin import origin_of
from consentflow.http.sessions import SessionLimits

DPO, AUDITOR, SERVICE = new_key(), new_key(), new_key()
#: The origin of TestClient's requests (its base URL).
OURS = "http://testserver"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    """A clock the test moves by hand: an hour passes in no time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ring() -> KeyRing:
    return KeyRing([ApiKey("dpo-laptop", Role.DPO, key_hash(DPO)), ApiKey("auditor-1", Role.AUDITOR, key_hash(AUDITOR))])


def _app(keys: KeyRing | None = None, limits: SessionLimits | None = None) -> TestClient:
    lasting = {} if limits is None else {"sessions": limits}
    settings = ServerSettings("chdb:///nonexistent", "consentflow", keys or _ring(), **lasting)
    return TestClient(create_app(settings), follow_redirects=False)


@pytest.fixture
def browser() -> Iterator[TestClient]:
    """A fresh app and client per test: the client's cookie jar is the browser's."""
    with _app() as client:
        yield client


def _sign_in(browser: TestClient, key: str, **headers: str) -> httpx.Response:
    sent = {"Origin": OURS, **headers} if "Referer" not in headers and "Origin" not in headers else headers
    return browser.post("/login", content=f"key={key}&next=/", headers={**FORM, **sent})


def _session(response: httpx.Response) -> str:
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{KEY_COOKIE}="), cookie
    return cookie.split(";", 1)[0].split("=", 1)[1]


def _signed_in_browser(server: TestClient, key: str) -> str:
    """The session of another browser signing in to the same server (a login ends its own browser's session only)."""
    with TestClient(server.app, follow_redirects=False) as browser:
        return _session(_sign_in(browser, key))


def _page_with(browser: TestClient, session: str) -> int:
    """The start page's status for a browser holding only ``session`` in its cookie."""
    with TestClient(browser.app, cookies={KEY_COOKIE: session}, follow_redirects=False) as other:
        return other.get("/").status_code


# -- 1. login CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Origin": "https://evil.example"}, "Origin 'https://evil.example' is not this server's origin http://testserver"),
        ({"Origin": "null"}, "Origin 'null' is not this server's origin"),
        ({"Origin": "http://testserver.evil.example"}, "Origin 'http://testserver.evil.example' is not"),
        ({"Referer": "https://evil.example/page"}, "Referer 'https://evil.example/page' is not this server's origin"),
        ({}, "the post names no Origin (nor Referer)"),
        ({"Origin": "https://" + "a" * 5000}, "'https://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'… (5,008 characters) is not"),
    ],
    ids=["other-site", "null", "lookalike", "referer-other-site", "no-origin", "long-origin"],
)
def test_login_refuses_a_post_from_another_site_in_one_line(browser: TestClient, headers: dict[str, str], named: str) -> None:
    # Before: 303 and a cookie holding the key, whatever site the form was on.
    refused = browser.post("/login", content=f"key={DPO}&next=/", headers={**FORM, **headers})
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    shown = html.unescape(refused.text)  # the refusal is a page: the line is escaped HTML
    assert named in shown and shown.count("refused:") == 1
    assert browser.get("/").status_code == 401  # signed in as nobody


@pytest.mark.parametrize(
    "headers",
    [{"Origin": OURS}, {"Origin": "HTTP://TestServer:80"}, {"Referer": f"{OURS}/subjects/s-1/lineage"}],
    ids=["origin", "origin-spelled-otherwise", "referer-only"],
)
def test_login_takes_a_post_from_this_servers_pages(browser: TestClient, headers: dict[str, str]) -> None:
    signed = _sign_in(browser, DPO, **headers)
    assert signed.status_code == 303 and browser.get("/").status_code == 200


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("HTTPS://Consent.Example.org:443/path?q", "https://consent.example.org"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
        ("null", None),
        ("file:///etc/passwd", None),
        ("http://user@evil.example", None),
        ("http://host:99999", None),
    ],
)
def test_an_origin_is_compared_in_one_spelling(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_a_public_origin_given_to_serve_is_taken_too() -> None:
    settings = ServerSettings("chdb:///nonexistent", "consentflow", _ring(), public_origins=("https://consent.example.org",))
    with TestClient(create_app(settings), follow_redirects=False) as browser:
        assert _sign_in(browser, DPO, Origin="https://consent.example.org").status_code == 303
        assert _sign_in(browser, DPO, Origin="https://other.example.org").status_code == 403


# -- 2. a session id in the cookie, kept and ended in the server ---------------------------------------


def test_the_cookie_holds_a_random_session_id_not_the_key(browser: TestClient) -> None:
    first, second = _session(_sign_in(browser, DPO)), _session(_sign_in(browser, DPO))
    # Before: the cookie was the key itself.
    assert DPO not in first and key_hash(DPO) not in first
    assert first != second and len(first) >= 43  # 32 random bytes, new at every login
    assert _page_with(browser, second) == 200
    assert _page_with(browser, first) == 401  # signing in again ended the session before


def test_a_cookie_holding_a_key_opens_nothing(browser: TestClient) -> None:
    """The migration: a cookie set before sessions holds a key; the form asks for the key again."""
    page = TestClient(browser.app, cookies={KEY_COOKIE: DPO}).get("/")
    # Before: 200, the key in the cookie was accepted.
    assert page.status_code == 401 and "unknown or ended session: enter the key again" in page.text


def test_forget_key_ends_the_session_on_the_server(browser: TestClient) -> None:
    session = _session(_sign_in(browser, AUDITOR))
    assert _page_with(browser, session) == 200
    out = browser.post("/logout", headers={"Origin": OURS})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    # Before: the browser forgot the cookie, but its value (the key) still opened every page.
    assert _page_with(browser, session) == 401


def test_forget_key_from_another_site_is_refused_and_ends_nothing(browser: TestClient) -> None:
    session = _session(_sign_in(browser, AUDITOR))
    for headers in ({"Origin": "https://evil.example"}, {}):
        refused = browser.post("/logout", headers=headers)
        # Before: 303, the cookie deleted at another site's request.
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    assert _page_with(browser, session) == 200


def test_a_session_ends_after_its_idle_time_and_at_its_limit() -> None:
    clock = Clock()
    with _app(limits=SessionLimits(idle=30 * 60, lifetime=2 * 3600, clock=clock)) as browser:
        idle = _session(_sign_in(browser, DPO))
        clock.now += 29 * 60
        assert _page_with(browser, idle) == 200  # used: its idle time starts again
        clock.now += 29 * 60
        assert _page_with(browser, idle) == 200
        clock.now += 31 * 60
        assert _page_with(browser, idle) == 401  # 31 minutes unused
        busy = _session(_sign_in(browser, DPO))
        statuses = []
        for _ in range(7):  # used every 20 minutes, for 2 h 20
            clock.now += 20 * 60
            statuses.append(_page_with(browser, busy))
        assert statuses == [200] * 6 + [401]  # past the absolute limit (2 h) however busy
        assert len(browser.app.state.server.sessions) == 0  # ended sessions are not kept


def test_sessions_are_bounded_the_least_recently_used_ends_first() -> None:
    with _app(limits=SessionLimits(most=3)) as server:
        first, second, third = (_signed_in_browser(server, AUDITOR) for _ in range(3))
        assert _page_with(server, first) == 200  # used: now the most recently used
        fourth = _signed_in_browser(server, AUDITOR)
        assert [_page_with(server, s) for s in (first, second, third, fourth)] == [200, 401, 200, 200]


def test_a_session_ends_when_its_key_leaves_the_key_file_or_changes_role(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"

    def write(*entries: tuple[str, str, str]) -> None:
        write_private(
            keys_file, "".join(f'[[keys]]\nname = "{n}"\nrole = "{r}"\nsha256 = "{key_hash(k)}"\n' for n, r, k in entries)
        )

    write(("dpo-laptop", "dpo", DPO), ("auditor-1", "auditor", AUDITOR))
    with _app(keys=FollowedKeyRing(keys_file, {})) as browser:
        dpo, auditor = _signed_in_browser(browser, DPO), _signed_in_browser(browser, AUDITOR)
        assert (_page_with(browser, dpo), _page_with(browser, auditor)) == (200, 200)
        write(("dpo-laptop", "dpo", DPO))  # the auditor's key removed
        # Before: the key ring was read once at start; the removed key kept working until a restart.
        assert _page_with(browser, auditor) == 401
        assert browser.get("/v1/overview", headers={"X-API-Key": AUDITOR}).status_code == 401
        write(("dpo-laptop", "auditor", DPO))  # same name and key, another role
        assert _page_with(browser, dpo) == 401
        assert TestClient(browser.app).get("/", headers={"X-API-Key": DPO}).status_code == 200  # the key, now an auditor's


def test_a_key_added_to_the_key_file_works_at_once(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    add_key(keys_file, "dpo-laptop", Role.DPO)
    with _app(keys=FollowedKeyRing(keys_file, {})) as browser:
        added = add_key(keys_file, "auditor-2", Role.AUDITOR)  # consentflow api-key add, while the server runs
        assert _page_with(browser, _signed_in_browser(browser, added)) == 200


def test_a_key_file_others_may_now_write_is_not_believed(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.toml"
    write_private(keys_file, f'[[keys]]\nname = "auditor-1"\nrole = "auditor"\nsha256 = "{key_hash(AUDITOR)}"\n')
    with _app(keys=FollowedKeyRing(keys_file, {})) as browser:
        intruder = new_key()
        keys_file.write_text(keys_file.read_text() + f'[[keys]]\nname = "x"\nrole = "dpo"\nsha256 = "{key_hash(intruder)}"\n')
        keys_file.chmod(0o666)
        assert browser.get("/v1/overview", headers={"X-API-Key": intruder}).status_code == 401
        assert browser.get("/", headers={"X-API-Key": AUDITOR}).status_code == 200  # the keys as last read stay


# -- 4. the JSON API takes the header only -------------------------------------------------------------


def test_the_json_api_does_not_take_the_session_cookie(browser: TestClient) -> None:
    _sign_in(browser, DPO)
    assert browser.get("/").status_code == 200  # the session is live
    refused = browser.get("/v1/overview")
    assert refused.status_code == 401 and refused.json()["detail"] == "missing API key: send it in the X-API-Key header"


def test_a_service_key_starts_no_session() -> None:
    ring = KeyRing([*_ring().keys, ApiKey("cookie-banner", Role.SERVICE, key_hash(SERVICE))])
    with _app(keys=ring) as client:
        refused = _sign_in(client, SERVICE)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
        assert len(client.app.state.server.sessions) == 0


# -- 3. Secure behind a trusted proxy, on the real server ------------------------------------------------


def _attributes(set_cookie: str) -> list[str]:
    """The attributes of a Set-Cookie header (after its name=value), lowercase."""
    return [part.strip().lower() for part in set_cookie.split(";")[1:]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=[None, "127.0.0.1"], ids=["no-proxy", "proxy-127.0.0.1"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """``consentflow serve`` in a subprocess on loopback, with or without ``--forwarded-allow-ips``: (its URL, the option)."""
    port, trusted = _free_port(), request.param
    command = [sys.executable, "-m", "consentflow.cli", "serve", "--dsn", f"chdb://{tmp_path}/db", "--port", str(port)]
    if trusted is not None:
        command += ["--forwarded-allow-ips", trusted]
    env = {**os.environ, KEYS_ENV: f"auditor@auditor-1:{AUDITOR}"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"serve ended: {process.communicate()[1]}"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, trusted
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(served: tuple[str, str | None]) -> None:
    url, trusted = served
    host = url.removeprefix("http://")
    body = f"key={AUDITOR}&next=/"
    # A TLS-terminating proxy: the browser's origin is https, the proxy says so in X-Forwarded-Proto.
    proxied = {**FORM, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    behind = httpx.post(f"{url}/login", content=body, headers={**proxied, "Origin": f"https://{host}"})
    direct = httpx.post(f"{url}/login", content=body, headers={**FORM, "Origin": url})
    assert direct.status_code == 303 and "secure" not in _attributes(direct.headers["set-cookie"])  # plain http on loopback
    if trusted is None:
        # Nobody is believed: the header does not make the scheme https, so the https origin is another site's.
        assert behind.status_code == 403 and "is not this server's origin http://" in html.unescape(behind.text)
        claimed = httpx.post(f"{url}/login", content=body, headers={**proxied, "Origin": url})
        assert claimed.status_code == 303 and "secure" not in _attributes(claimed.headers["set-cookie"])
    else:
        # Before: no such option (serve did not start), and Secure never set behind the proxy.
        assert behind.status_code == 303 and "secure" in _attributes(behind.headers["set-cookie"])


def test_serve_refuses_a_malformed_forwarded_allow_ips_or_public_origin(tmp_path: Path) -> None:
    env = {**os.environ, KEYS_ENV: f"auditor:{AUDITOR}"}
    for option, value, said in (
        ("--forwarded-allow-ips", "127.0.0.1,proxy.local", "--forwarded-allow-ips: 'proxy.local' is not an IP address"),
        ("--public-origin", "consent.example.org", "--public-origin 'consent.example.org': expected scheme://host[:port]"),
    ):
        command = [sys.executable, "-m", "consentflow.cli", "serve", "--dsn", f"chdb://{tmp_path}/db", option, value]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and said in lines[0], lines
