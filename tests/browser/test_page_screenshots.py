"""The pages as a person sees them: the lineage page and the access export in headless Chromium at 1280 px and printed
to PDF on A4 (issue 23).

Each test drives Debian's Chromium over the DevTools pipe against the app under uvicorn in this process, measures
what a reader would miss (a column past the window's or the paper's edge, a machine term, a sentence that
contradicts another) and keeps the screenshots and the PDF's pages (``pdftoppm``) in the test's folder; set
``CONSENTFLOW_SCREENSHOTS=DIR`` to have them copied there to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.context import ServerSettings
from consentflow.http.lineage_page import lineage_path
from consentflow.policy.geography import in_eea
from tests.support import chromium
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import Dataset
from tests.support.live_server import Live, served

KEY = new_key()
WIDTH = 1280
#: The A4 sheet's printable width in CSS pixels: 210 mm less the 12 mm margins of the pages' ``@page`` rule, at 96 dpi.
A4_CONTENT_PX = int((210 - 2 * 12) / 25.4 * 96)

pytestmark = pytest.mark.chromium

#: Everything laid out wider than the window: elements whose right edge passes it (tables, cells, headings).
_OVERFLOW = """[...document.querySelectorAll('table, th, td, h1, h2, p, section')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .map(e => e.tagName + ':' + e.textContent.trim().slice(0, 40))"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("shots"), chdb_dsn, "page_shots")


@pytest.fixture(scope="module")
def live(data: Dataset, chdb_dsn: str) -> Iterator[Live]:
    ring = KeyRing([ApiKey("shots-dpo", Role.DPO, key_hash(KEY))])
    with served(ServerSettings(chdb_dsn, data.database, ring)) as server:
        yield server


def _subject(data: Dataset) -> str:
    """The subject with the most to show: violations, recipients inside and outside the EU/EEA, the most recipients."""
    violated = {t["subject_id"] for t in data.truth}
    return max(
        data.subjects(),
        key=lambda s: (
            s in violated,
            len({in_eea(h["country"]) for h in expected.who_has(data, s).values()}),
            len(expected.who_has(data, s)),
            s,
        ),
    )


def _keep(*paths: Path) -> None:
    """Copy what the test saw where ``CONSENTFLOW_SCREENSHOTS`` says, to look at."""
    if target := os.environ.get("CONSENTFLOW_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, Path(target) / path.name)


def _open(live: Live, path: str, profile: Path) -> chromium.DevTools:
    page = chromium.DevTools(chromium.chromium_binary(), profile, window=(WIDTH, 900))
    page.send_headers({"X-API-Key": KEY})
    page.navigate(live.base + path)
    return page


def _export(live: Live, subject: str) -> Any:
    return httpx.get(f"{live.base}/v1/subjects/{subject}/access-export", headers={"X-API-Key": KEY}, timeout=60).json()


def test_the_lineage_page_at_1280px_names_recipients_with_their_basis(live: Live, data: Dataset, tmp_path: Path) -> None:
    subject = _subject(data)
    holders = expected.who_has(data, subject)
    with _open(live, lineage_path(subject), tmp_path / "profile") as page:
        assert page.evaluate("[window.innerWidth, document.documentElement.scrollWidth]") == [WIDTH, WIDTH]
        assert page.evaluate(_OVERFLOW) == []  # every column, "last" included, inside the window
        rows = page.evaluate(
            "[...document.querySelectorAll('td.recipient')].map(td => [td.dataset.recipient, "
            "td.querySelector('.name').textContent, td.querySelector('.id').textContent, "
            "td.parentElement.querySelectorAll('.basis').length, td.parentElement.querySelectorAll('.purpose').length])"
        )
        assert sorted(r[0] for r in rows) == sorted(holders)
        for recipient, name, shown_id, bases, purposes in rows:
            assert shown_id == recipient and name and name != recipient  # the legal name, the id beside it
            assert bases == purposes == len(holders[recipient]["purposes"])  # each purpose with its legal basis
        text = page.evaluate("document.querySelector('main').innerText")
        for term in ("dpv:", "eu-gdpr:", "_provider", "_subcontractor", "within_eea"):
            assert term not in text, term
        shot = page.full_screenshot(tmp_path / "lineage-1280.png")
    width, height, variety = chromium.png_facts(shot)
    assert width == WIDTH and height > 900 and variety > 32
    _keep(tmp_path / "lineage-1280.png")


def test_the_lineage_page_forms_pick_the_instant_and_another_subject(live: Live, data: Dataset, tmp_path: Path) -> None:
    subject = _subject(data)
    firsts = sorted(h["first"] for h in expected.who_has(data, subject).values())
    cut = (firsts[0] + (firsts[-1] - firsts[0]) / 2).replace(microsecond=0)
    other = next(s for s in data.subjects() if s != subject and expected.who_has(data, s))
    with _open(live, lineage_path(subject), tmp_path / "profile") as page:
        # In an en-US browser a datetime-local field showed mm/dd/yyyy and a 12-hour clock beside "UTC": the text field
        # shows ISO 8601 whatever the locale, and the browser holds back what its pattern refuses.
        page.send("Emulation.setLocaleOverride", {"locale": "en_US"}, session=page.session)
        assert page.evaluate("document.querySelector('#as_of').type") == "text"
        page.type_text("#as_of", cut.strftime("%m/%d/%Y, %I:%M %p"))
        assert page.evaluate("document.querySelector('#as_of').validity.patternMismatch") is True
        assert page.evaluate("document.querySelector('#as-of-form').checkValidity()") is False
        # A person types the instant in UTC and presses "Show": no script on the page.
        typed = cut.strftime("%Y-%m-%dT%H:%M:%SZ")
        page.type_text("#as_of", typed)
        assert page.evaluate("document.querySelector('#as-of-form').checkValidity()") is True
        page.click_and_wait("#as-of-form button")
        assert page.evaluate("location.pathname") == lineage_path(subject)
        assert page.evaluate("new URLSearchParams(location.search).get('as_of')") == typed
        assert page.evaluate("document.querySelector('#as_of').value") == typed  # shown again as it was typed
        assert page.evaluate("document.querySelector('#as-of').textContent") == cut.strftime("%Y-%m-%d %H:%M UTC")
        shown = page.evaluate("[...document.querySelectorAll('td.recipient')].map(td => td.dataset.recipient).sort()")
        assert shown == sorted(expected.who_has(data, subject, cut))
        page.full_screenshot(tmp_path / "lineage-as-of.png")
        # A bare date is midnight UTC.
        page.type_text("#as_of", cut.strftime("%Y-%m-%d"))
        page.click_and_wait("#as-of-form button")
        assert page.evaluate("document.querySelector('#as-of').textContent") == cut.strftime("%Y-%m-%d 00:00 UTC")
        # What a browser would not send (a hand-edited address) is a page naming the field, not a traceback.
        page.navigate(f"{live.base}{lineage_path(subject)}?as_of=03%2F01%2F2025")
        assert page.evaluate("document.querySelector('h2').textContent") == "422"
        assert page.evaluate("document.querySelector('.error').textContent").startswith("as_of: '03/01/2025' is not an ISO-8601")
        page.navigate(f"{live.base}{lineage_path(subject)}?as_of={typed}")
        page.evaluate(f"document.querySelector('#subject_id').value = '{other}'")
        page.click_and_wait("#subject-form button")
        assert page.evaluate("location.pathname") == lineage_path(other)
        assert page.evaluate("document.querySelector('#subject').textContent") == other
        assert page.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing else loaded
    _keep(tmp_path / "lineage-as-of.png")


def test_the_access_export_at_1280px_fits_and_says_its_dates_in_the_right_tense(
    live: Live, data: Dataset, tmp_path: Path
) -> None:
    subject = _subject(data)
    export = _export(live, subject)
    with _open(live, f"/subjects/{subject}/access", tmp_path / "profile") as page:
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        assert page.evaluate(_OVERFLOW) == []  # the recipients table's "last sent" column is inside the window
        heads = page.evaluate(
            "[...document.querySelectorAll('th')].filter(th => th.textContent === 'last sent')"
            ".map(th => th.getBoundingClientRect().right)"
        )
        assert len(heads) == 1 and heads[0] <= WIDTH
        text = page.evaluate("document.body.innerText")
        shot = page.full_screenshot(tmp_path / "access-1280.png")
    for term in ("dpv:Consent", "eu-gdpr:A6"):
        assert term not in text.split("The proof (JSON")[0], term
    for recipient in export["recipients"]:
        assert recipient["recipient_id"] in text and (recipient["name"] or "not in the registry") in text
    archive = (export["retention_plan"] or {}).get("archive_at")
    assert "is archived on" not in text
    if archive is not None and datetime.fromisoformat(archive) <= datetime.now(UTC):
        assert "was archived on" in text or "was due to be archived on" in text
        assert "No retention action is due yet" not in text
    elif archive is not None:
        assert "will be archived on" in text
    assert chromium.png_facts(shot)[0] == WIDTH
    _keep(tmp_path / "access-1280.png")


@pytest.mark.parametrize("which", ["lineage", "access"])
def test_the_pages_print_on_a4(live: Live, data: Dataset, tmp_path: Path, which: str) -> None:
    subject = _subject(data)
    path = lineage_path(subject) if which == "lineage" else f"/subjects/{subject}/access"
    with _open(live, path, tmp_path / "profile") as page:
        # Laid out as the printer lays it out, at the sheet's printable width: nothing passes the edge.
        page.send("Emulation.setEmulatedMedia", {"media": "print"}, session=page.session)
        metrics = {"width": A4_CONTENT_PX, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
        page.send("Emulation.setDeviceMetricsOverride", metrics, session=page.session)
        assert page.evaluate(_OVERFLOW) == []
        assert page.evaluate("getComputedStyle(document.querySelector('body')).backgroundColor") in (
            "rgb(255, 255, 255)",
            "rgba(0, 0, 0, 0)",
        )
        if which == "lineage":  # the forms are for the screen
            assert page.evaluate("getComputedStyle(document.querySelector('.tools')).display") == "none"
        page.send("Emulation.clearDeviceMetricsOverride", session=page.session)
        pdf = page.print_pdf(tmp_path / f"{which}-a4.pdf")
    assert pdf.startswith(b"%PDF")
    sheets = chromium.pdf_pages(tmp_path / f"{which}-a4.pdf")
    assert sheets, "pdftoppm made no page"
    for sheet in sheets:
        width, height, _ = chromium.png_facts(sheet.read_bytes())
        assert abs(height / width - 297 / 210) < 0.01, (width, height)  # A4, portrait
    assert chromium.png_facts(sheets[0].read_bytes())[2] > 16  # text on the first sheet, not a blank page
    _keep(*sheets)
