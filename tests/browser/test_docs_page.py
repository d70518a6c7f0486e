"""The API explorer at ``/docs``: Swagger UI served by the server itself, behind a key, in headless Chromium.

The Chromium test drives Debian's ``chromium`` against uvicorn on a loopback
port in this process (as ``tests/test_lineage_page.py`` does): the key form, then
the explorer listing every operation of the OpenAPI document, with no console
error and no request to another host.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi.testclient import TestClient

from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from tests.support import chromium

KEYS = {role: new_key() for role in Role}


@pytest.fixture(scope="module")
def settings(chdb_dsn: str) -> ServerSettings:
    ring = KeyRing(ApiKey(f"docs-{role.value}", role, key_hash(key)) for role, key in KEYS.items())
    return ServerSettings(chdb_dsn, "http_docs", ring)  # the explorer reads no table


@pytest.fixture
def browser(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def _operations(browser: TestClient) -> set[str]:
    document = browser.get("/openapi.json", headers={"X-API-Key": KEYS[Role.DPO]}).json()
    return {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}


def test_the_explorer_needs_a_key_and_loads_only_from_this_server(browser: TestClient) -> None:
    refused = browser.get("/docs")
    assert refused.status_code == 401 and 'action="/login"' in refused.text and 'value="/docs"' in refused.text
    page = browser.get("/docs", headers={"X-API-Key": KEYS[Role.SERVICE]})  # any role may read the document
    assert page.status_code == 200 and 'id="swagger-ui"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy and "http" not in policy
    assert "http" not in page.text and "//" not in page.text.replace("<!doctype html>", "")  # nothing from elsewhere
    for name, kind in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("start.js", "text/javascript"),
    ):
        asset = browser.get(f"/docs/assets/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind) and len(asset.content) > 100
    assert browser.get("/docs/assets/..%2Fpyproject.toml").status_code == 404
    assert browser.get("/docs/assets/nothing.js").status_code == 404


def test_the_document_accepts_the_login_forms_cookie(browser: TestClient) -> None:
    assert browser.get("/openapi.json").status_code == 401
    signed = browser.post(
        "/login",
        content=f"key={KEYS[Role.AUDITOR]}&next=/docs",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://testserver"},
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/docs"
    document = browser.get("/openapi.json")  # the cookie alone, as the explorer's fetch sends it
    assert document.status_code == 200 and document.json()["info"]["title"] == "consentflow"
    assert browser.post("/v1/audit/replay", json={"database": "x"}).status_code == 401  # the JSON API still wants the header


@pytest.fixture(scope="module")
def server(settings: ServerSettings) -> Iterator[str]:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    uvicorn_server.should_exit = True
    thread.join(timeout=30)
    listening.close()


@pytest.mark.chromium
def test_chromium_signs_in_and_the_explorer_lists_every_operation(server: str, browser: TestClient, tmp_path: Path) -> None:
    binary = chromium.chromium_binary()
    expected = _operations(browser)
    with chromium.DevTools(binary, tmp_path / "profile", window=(1366, 900)) as page:
        for domain in ("Runtime", "Log", "Network"):
            page.send(f"{domain}.enable", session=page.session)
        page.navigate(server + "/docs")
        assert any("401" in e["params"].get("entry", {}).get("text", "") for e in page.seen)  # the key form's answer
        page.seen.clear()  # from here on, the explorer's own
        page.evaluate("document.querySelector('#key').focus()")
        page.send("Input.insertText", {"text": KEYS[Role.AUDITOR]}, session=page.session)
        page.click_and_wait("#submit")
        assert page.evaluate("location.pathname") == "/docs"
        deadline = time.monotonic() + 30
        while not page.evaluate("document.querySelectorAll('.opblock').length") and time.monotonic() < deadline:
            time.sleep(0.2)
        shown = page.evaluate(
            "[...document.querySelectorAll('.opblock')].map(b => "
            "b.querySelector('.opblock-summary-method').textContent + ' ' + "
            "b.querySelector('.opblock-summary-path').getAttribute('data-path'))"
        )
        title = page.evaluate("document.querySelector('.info .title') && document.querySelector('.info .title').textContent")
        time.sleep(0.5)  # late console messages
        seen = list(page.seen)
    assert set(shown) == expected and len(shown) == len(expected)
    assert title and title.startswith("consentflow")
    errors = [
        event["params"]
        for event in seen
        if event["method"] == "Runtime.exceptionThrown"
        or (event["method"] == "Runtime.consoleAPICalled" and event["params"]["type"] in ("error", "assert"))
        or (event["method"] == "Log.entryAdded" and event["params"]["entry"]["level"] == "error")
    ]
    assert errors == []
    hosts = {
        urlsplit(event["params"]["request"]["url"]).netloc
        for event in seen
        if event["method"] == "Network.requestWillBeSent" and not event["params"]["request"]["url"].startswith("data:")
    }
    assert hosts == {urlsplit(server).netloc}
