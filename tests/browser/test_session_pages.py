"""The pages' session in headless Chromium (issue 21): another site's form cannot sign the browser in, and
"Forget key" ends the session on the server, not only in the browser.

The app runs under uvicorn on a free loopback port; the other site is a plain
``http.server`` on another port whose page holds a form posting a key to
``/login`` (login CSRF). The start page asks nothing of ClickHouse, so no
database is needed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn

from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import KEY_COOKIE, ServerSettings
from tests.support import chromium

DPO = new_key()


def _free_socket() -> socket.socket:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    return listening


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread of this process; yields its base URL."""
    settings = ServerSettings("chdb:///nonexistent", "consentflow", KeyRing([ApiKey("dpo-laptop", Role.DPO, key_hash(DPO))]))
    listening = _free_socket()
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    for _ in range(200):
        if uvicorn_server.started:
            break
        threading.Event().wait(0.05)
    assert uvicorn_server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    uvicorn_server.should_exit = True
    thread.join(timeout=30)
    listening.close()


@pytest.fixture(scope="module")
def other_site(server: str) -> Iterator[str]:
    """Another origin whose pages post the attacker's key to ``server``'s ``/login``: ``/plain`` as a browser sends
    it by default, ``/no-referrer`` with the Origin stripped to ``null``."""

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stripped = '<meta name="referrer" content="no-referrer">' if self.path == "/no-referrer" else ""
            page = (
                f'<!DOCTYPE html><html><head>{stripped}</head><body><form method="post" action="{server}/login">'
                f'<input type="hidden" name="key" value="{DPO}"><input type="hidden" name="next" value="/">'
                '<button id="win">Win a prize</button></form></body></html>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:  # quiet: the test says what matters
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}"
    site.shutdown()
    thread.join(timeout=30)


def _session_cookie(page: chromium.DevTools) -> str | None:
    """The value of the session cookie Chromium holds (HttpOnly: only DevTools reads it), or None."""
    cookies = page.send("Storage.getCookies")["cookies"]
    return next((c["value"] for c in cookies if c["name"] == KEY_COOKIE), None)


@pytest.mark.chromium
@pytest.mark.parametrize("variant", ["plain", "no-referrer"])
def test_chromium_another_sites_form_does_not_sign_the_browser_in(
    server: str, other_site: str, variant: str, tmp_path: Path
) -> None:
    binary = chromium.chromium_binary()
    with chromium.DevTools(binary, tmp_path / "profile") as page:
        page.navigate(f"{other_site}/{variant}")
        page.click_and_wait("#win")
        # Before: 303 to the start page, signed in with the attacker's key (login CSRF).
        assert page.evaluate("location.href") == f"{server}/login"
        assert "refused: Origin" in page.evaluate("document.body.innerText")
        assert _session_cookie(page) is None
        page.navigate(server + "/")
        assert page.evaluate("document.querySelector('#key') !== null")  # the key form: signed in as nobody


@pytest.mark.chromium
def test_chromium_forget_key_ends_the_session_on_the_server(server: str, tmp_path: Path) -> None:
    binary = chromium.chromium_binary()
    with chromium.DevTools(binary, tmp_path / "profile") as page:
        page.navigate(server + "/")
        page.evaluate("document.querySelector('#key').focus()")
        page.send("Input.insertText", {"text": DPO}, session=page.session)
        page.click_and_wait("#submit")  # the form's post carries this page's Origin
        assert "Signed in with key dpo-laptop" in page.evaluate("document.body.innerText")
        session = _session_cookie(page)
        assert session is not None and DPO not in session  # a session id, not the key
        assert httpx.get(server + "/", headers={"Cookie": f"{KEY_COOKIE}={session}"}).status_code == 200
        page.click_and_wait("header form button")  # "Forget key"
        assert page.evaluate("document.querySelector('#key') !== null") and _session_cookie(page) is None
    # Before: the browser forgot the cookie, but its value (the key) still opened every page.
    assert httpx.get(server + "/", headers={"Cookie": f"{KEY_COOKIE}={session}"}).status_code == 401
