"""The lineage page of a subject: rendering, the key form and its cookie, and the page in headless Chromium.

What the page must show is computed from the generated events (``tests/support/dpo_expected.py``):
every recipient of the subject in the group of its country, its mechanisms, the
categories held, the subject's injected violations. The Chromium tests drive
Debian's ``chromium`` against a uvicorn server on a free loopback port, in this
process (chDB is one engine per process), and fail rather than skip in CI when
Chromium is missing.
"""

from __future__ import annotations

import html
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from consentflow.core.lineage import RecipientHolding
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import KEY_COOKIE, ServerSettings
from consentflow.http.lineage_page import lineage_page, lineage_path
from consentflow.policy.geography import in_eea
from consentflow.sinks.answers import ActiveViolation
from tests.support import chromium
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import Dataset

KEYS = {role: new_key() for role in Role}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("page"), chdb_dsn, "lineage_page")


@pytest.fixture(scope="module")
def settings(data: Dataset, chdb_dsn: str) -> ServerSettings:
    ring = KeyRing(ApiKey(f"page-{role.value}", role, key_hash(key)) for role, key in KEYS.items())
    return ServerSettings(chdb_dsn, data.database, ring)


@pytest.fixture
def browser(settings: ServerSettings) -> Iterator[TestClient]:
    """A fresh client per test: its cookie jar is the browser's."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def showcase(data: Dataset) -> str:
    """A subject whose page has it all: a violation at a recipient, and recipients inside and outside the EU/EEA."""
    violated = {t["subject_id"] for t in data.truth}
    best = max(
        data.subjects(),
        key=lambda s: (
            s in violated,
            len({in_eea(h["country"]) for h in expected.who_has(data, s).values()}),
            len(expected.who_has(data, s)),
            s,
        ),
    )
    assert best in violated
    return best


class _Sections(HTMLParser):
    """The page's country sections: country code -> recipient ids listed in it; and the category chips' codes."""

    def __init__(self) -> None:
        super().__init__()
        self.countries: dict[str, list[str]] = {}
        self.categories: list[str] = []
        self._country: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section" and "country" in (attributes.get("class") or ""):
            self._country = attributes.get("data-country") or ""
            self.countries[self._country] = []
        elif tag == "td" and attributes.get("class") == "recipient" and self._country is not None:
            self.countries[self._country].append(attributes.get("data-recipient") or "")
        elif tag == "li" and self._country is None and attributes.get("data-category"):
            self.categories.append(attributes.get("data-category") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._country = None


def _expected_groups(data: Dataset, subject: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for recipient, holding in expected.who_has(data, subject).items():
        groups.setdefault(holding["country"], []).append(recipient)
    return {country: sorted(recipients) for country, recipients in groups.items()}


def _sign_in(browser: TestClient, key: str, target: str) -> Any:
    return browser.post(
        "/login",
        content=f"key={key}&next={target}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://testserver"},  # the form's own origin
    )


# -- rendering ----------------------------------------------------------------------------------


def test_everything_on_the_page_is_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    when = datetime(2021, 3, 1, tzinfo=UTC)
    holding = RecipientHolding(
        recipient_id="r-1",
        recipient_kind=hostile,
        country="US",
        categories=frozenset({hostile}),
        purposes=frozenset({"marketing"}),
        mechanisms=frozenset({"none"}),
        first=when,
        last=when,
    )
    violation = ActiveViolation(
        "v", "marketing_without_consent", "6", "s-1", when, "r-1", "marketing", (hostile,), ("e",), hostile, 1
    )
    page = lineage_page("s-1", [holding], ["FR"], [violation], signed_in_as=hostile, generated_at=when)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "not framed" in page and 'class="violation"' in page  # outside the EU/EEA with no mechanism; a violating recipient
    assert re.search(r"<link|<img|<script|src=|@import|url\(", page) is None  # self-contained


# -- the key form and its cookie -------------------------------------------------------------------


def test_without_a_key_the_page_is_the_key_form_and_shows_nothing(browser: TestClient, data: Dataset) -> None:
    subject = showcase(data)
    response = browser.get(lineage_path(subject))
    assert response.status_code == 401 and response.headers["content-type"].startswith("text/html")
    assert 'action="/login"' in response.text and f'value="{lineage_path(subject)}"' in response.text
    assert not any(recipient in response.text for recipient in expected.who_has(data, subject))


def test_a_known_key_sets_an_httponly_strict_cookie_and_goes_back(browser: TestClient, data: Dataset) -> None:
    subject = showcase(data)
    target = lineage_path(subject)
    for role, status in ((Role.SERVICE, 403), (None, 401)):
        refused = _sign_in(browser, KEYS[role] if role else new_key(), target)
        assert refused.status_code == status and "set-cookie" not in refused.headers
    signed = _sign_in(browser, KEYS[Role.AUDITOR], target)
    assert signed.status_code == 303 and signed.headers["location"] == target
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{KEY_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age" not in cookie and "expires" not in cookie.lower()  # gone when the browser closes
    page = browser.get(target)
    assert page.status_code == 200 and subject in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"] and page.headers["cache-control"] == "no-store"
    out = browser.post("/logout", headers={"Origin": "http://testserver"})
    assert out.status_code == 303 and browser.get(target).status_code == 401


def test_the_form_sends_the_browser_to_this_server_only(browser: TestClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = _sign_in(browser, KEYS[Role.DPO], target)
        assert response.status_code == 303 and response.headers["location"] == "/"


def test_the_page_groups_every_recipient_by_country_and_highlights_violations(browser: TestClient, data: Dataset) -> None:
    subject = showcase(data)
    page = browser.get(lineage_path(subject), headers={"X-API-Key": KEYS[Role.DPO]})
    assert page.status_code == 200
    sections = _Sections()
    sections.feed(page.text)
    assert sections.countries == _expected_groups(data, subject)
    held = sorted({c for h in expected.who_has(data, subject).values() for c in h["categories"]})
    assert sections.categories == held
    violations = [t for t in data.truth if t["subject_id"] == subject]
    assert f"<b>{len(violations)}</b>active violations" in page.text
    for truth in violations:
        assert truth["rule"] in page.text
    for country in sections.countries:
        label = "inside the EU/EEA" if in_eea(country) else "outside the EU/EEA" if country else "recipient not in the registry"
        assert re.search(rf'data-country="{re.escape(country)}"><h3>[^<]*<span class="tag [a-z]+">{re.escape(label)}', page.text)


def test_the_access_export_page_is_linked_and_self_contained(browser: TestClient, data: Dataset) -> None:
    subject = showcase(data)
    dpo = {"X-API-Key": KEYS[Role.DPO]}
    lineage = browser.get(lineage_path(subject), headers=dpo)
    assert f'href="/subjects/{subject}/access"' in lineage.text
    page = browser.get(f"/subjects/{subject}/access", headers=dpo)
    assert page.status_code == 200 and subject in page.text
    assert all(recipient in page.text for recipient in expected.who_has(data, subject))
    # Its own inline style is allowed by its own hash; nothing else may load or run.
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'sha256-" in policy
    assert browser.get(f"/subjects/{subject}/access").status_code == 401


def test_the_start_page_finds_a_subject(browser: TestClient, data: Dataset) -> None:
    _sign_in(browser, KEYS[Role.DPO], "/")
    subject = data.subjects()[3]
    found = browser.get("/subjects", params={"subject_id": subject})
    assert found.status_code == 303 and found.headers["location"] == lineage_path(subject)
    assert browser.get("/subjects", params={"subject_id": "x' OR 1=1"}).status_code == 422
    unknown = browser.get(lineage_path("nobody-here"))
    assert (
        unknown.status_code == 404
        and "unknown subject" in unknown.text
        and unknown.headers["content-type"].startswith("text/html")
    )


# -- in headless Chromium ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(settings: ServerSettings) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread of this process; yields its base URL."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    for _ in range(200):
        if uvicorn_server.started:
            break
        threading.Event().wait(0.05)
    assert uvicorn_server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=30)
    listening.close()


@pytest.mark.chromium
def test_chromium_without_a_key_gets_the_form_and_no_data(server: str, data: Dataset, tmp_path: Path) -> None:
    binary = chromium.chromium_binary()
    subject = showcase(data)
    dom = chromium.run_cli(binary, "--dump-dom", server + lineage_path(subject), profile=tmp_path / "profile").stdout
    assert 'id="key"' in dom and 'action="/login"' in dom
    assert not any(recipient in dom for recipient in expected.who_has(data, subject))
    shot = tmp_path / "form.png"
    chromium.run_cli(binary, f"--screenshot={shot}", "--window-size=1280,800", server + "/", profile=tmp_path / "profile2")
    width, height, variety = chromium.png_facts(shot.read_bytes())
    assert (width, height) == (1280, 800) and variety > 8


@pytest.mark.chromium
def test_chromium_signs_in_with_the_form_and_shows_the_lineage(server: str, data: Dataset, tmp_path: Path) -> None:
    binary = chromium.chromium_binary()
    subject = showcase(data)
    with chromium.DevTools(binary, tmp_path / "profile", window=(1366, 900)) as page:
        page.navigate(server + lineage_path(subject))
        assert page.evaluate("document.querySelector('#key') !== null")
        # Typed as a person would: focus the field, type the key, press the button.
        page.evaluate("document.querySelector('#key').focus()")
        page.send("Input.insertText", {"text": KEYS[Role.DPO]}, session=page.session)
        page.click_and_wait("#submit")
        assert page.evaluate("location.pathname") == lineage_path(subject)
        assert page.evaluate("document.querySelector('#subject').textContent") == subject
        shown = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('section.country')].map(s => "
            "[s.dataset.country, [...s.querySelectorAll('td.recipient')].map(td => td.dataset.recipient).sort()]))"
        )
        assert shown == _expected_groups(data, subject)
        # The inline style applies (its hash is in the policy) and highlights the violating recipients in red.
        red = page.evaluate("getComputedStyle(document.querySelector('tr.violation td')).backgroundColor")
        assert red == "rgb(254, 243, 242)"
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads the key
        assert page.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing else loaded
        # The page fits a laptop screen's width: no horizontal scrolling.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        viewport = page.evaluate("[window.innerWidth, window.innerHeight]")
        shot = page.screenshot(tmp_path / "lineage.png")
    width, height, variety = chromium.png_facts(shot)
    assert [width, height] == viewport and width == 1366 and height > 600
    assert len(shot) > 20_000 and variety > 32  # text, tables and colours, not a blank or one-colour page


def test_the_as_of_form_shows_the_lineage_as_it_stood_then(browser: TestClient, data: Dataset) -> None:
    subject = showcase(data)
    dpo = {"X-API-Key": KEYS[Role.DPO]}
    everything = expected.who_has(data, subject)
    firsts = sorted(h["first"] for h in everything.values())
    cut = (firsts[0] + (firsts[-1] - firsts[0]) / 2).replace(microsecond=0)
    then = expected.who_has(data, subject, cut)
    assert 0 < len(then) < len(everything)  # some recipients had data by then, others not yet
    # What the page's as-of field sends: ISO 8601 in UTC, to the second.
    page = browser.get(lineage_path(subject), params={"as_of": cut.strftime("%Y-%m-%dT%H:%M:%SZ")}, headers=dpo)
    assert page.status_code == 200
    sections = _Sections()
    sections.feed(page.text)
    assert sorted(r for rs in sections.countries.values() for r in rs) == sorted(then)
    assert f'value="{cut.strftime("%Y-%m-%dT%H:%M:%SZ")}"' in page.text and 'id="as-of-now"' in page.text
    assert f'href="/subjects/{subject}/access?as_of=' in page.text
    # An empty field is "now"; a malformed one is refused with its name.
    now = browser.get(lineage_path(subject), params={"as_of": ""}, headers=dpo)
    assert now.status_code == 200 and all(f'data-recipient="{r}"' in now.text for r in everything)
    assert browser.get(lineage_path(subject), params={"as_of": "yesterday"}, headers=dpo).status_code == 422
    access = browser.get(f"/subjects/{subject}/access", params={"as_of": cut.strftime("%Y-%m-%dT%H:%M:%S")}, headers=dpo)
    assert access.status_code == 200 and f"As of: {cut.strftime('%Y-%m-%d %H:%M:%S')} UTC" in access.text


def test_recipients_are_named_as_the_registry_names_them(browser: TestClient, data: Dataset) -> None:
    subject = showcase(data)
    page = browser.get(lineage_path(subject), headers={"X-API-Key": KEYS[Role.DPO]}).text
    names: dict[str, set[str]] = {}
    for record in data.of_topic("recipients"):
        names.setdefault(record["recipient_id"], set()).add(record["name"])
    for recipient in expected.who_has(data, subject):
        cell = re.search(rf'<td class="recipient" data-recipient="{re.escape(recipient)}">(.*?)</td>', page)
        assert cell is not None, recipient
        if recipient in names:
            assert any(f'<span class="name">{html.escape(n)}</span>' in cell.group(1) for n in names[recipient]), cell.group(1)
        else:
            assert "not in the registry" in cell.group(1)
        assert f'<code class="id">{recipient}</code>' in cell.group(1)
        assert "basis: " in cell.string[cell.end() : cell.end() + 2000].split("</tr>")[0]  # a legal basis on the line
