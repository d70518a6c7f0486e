"""The lineage page's as-of field: ISO 8601 in UTC whatever the browser's locale, checked by the server [7].

The field is plain text with a pattern (a ``datetime-local`` field shows mm/dd/yyyy and a 12-hour clock in an
en-US browser beside a label saying UTC); what the browser lets through is parsed again on the server, and anything
else is a 422 page naming the field, never a traceback. Asked through FastAPI's TestClient over chDB, as a browser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from consentflow.contracts.events import data_disclosed, recipient_registered
from consentflow.core.processor import Processor
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.policy.vocabulary import DataCategory, LegalBasis, Purpose, RecipientKind
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events

KEY = new_key()
T0 = datetime(2021, 3, 1, tzinfo=UTC)
#: A disclosure dated in the future (a service's clock ahead, an event time set forward): not held "now".
LATER = (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0)


@pytest.fixture(scope="module")
def browser(chdb_dsn: str) -> Iterator[TestClient]:
    database = "as_of_field"
    events = [
        recipient_registered(
            "acme-fr",
            name="Acme SA",
            kind=RecipientKind.CORPORATE_CUSTOMER,
            country="FR",
            allowed_purposes=[Purpose.CONTRACT_INTRODUCTIONS],
            source_service="vendor-registry",
            occurred_at=T0,
        ),
        *(
            data_disclosed(
                "subj-a",
                "acme-fr",
                [category],
                purpose=Purpose.CONTRACT_INTRODUCTIONS,
                legal_basis=LegalBasis.CONTRACT,
                source_service="matching",
                occurred_at=T0 + timedelta(days=day),
            )
            for category, day in ((DataCategory.PROFESSIONAL_CV, 1), (DataCategory.CONTACT, 3))
        ),
        recipient_registered(
            "later-fr",
            name="Later SAS",
            kind=RecipientKind.CORPORATE_CUSTOMER,
            country="FR",
            allowed_purposes=[Purpose.CONTRACT_INTRODUCTIONS],
            source_service="vendor-registry",
            occurred_at=T0,
        ),
        data_disclosed(
            "subj-a",
            "later-fr",
            [DataCategory.PROFESSIONAL_CV],
            purpose=Purpose.CONTRACT_INTRODUCTIONS,
            legal_basis=LegalBasis.CONTRACT,
            source_service="matching",
            occurred_at=LATER,
        ),
    ]
    run_events(((e.topic, e.record) for e in events), Processor(), ClickHouseSink(chdb_dsn, database))
    ring = KeyRing([ApiKey("test-dpo", Role.DPO, key_hash(KEY))])
    with TestClient(create_app(ServerSettings(chdb_dsn, database, ring, bootstrap="127.0.0.1:1"))) as client:
        form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://testserver"}
        client.post("/login", content=f"key={KEY}&next=/", headers=form, follow_redirects=False)
        yield client


def _field(page: str) -> str:
    (field,) = re.findall(r'<input type="text" id="as_of"[^>]*>', page)
    return field


@pytest.mark.parametrize("typed", ["2021-03-02T00:00:00Z", "2021-03-02", "2021-03-02T00:00Z", "2021-03-02T01:00:00+01:00"])
def test_an_instant_in_iso_8601_shows_the_lineage_then_and_comes_back_in_utc(browser: TestClient, typed: str) -> None:
    page = browser.get("/subjects/subj-a/lineage", params={"as_of": typed})
    assert page.status_code == 200, page.text
    assert 'id="as-of">2021-03-02 00:00 UTC' in page.text
    assert 'value="2021-03-02T00:00:00Z"' in _field(page.text)  # what the person sees again: UTC, with its Z
    assert "CV" in page.text and "Contact" not in page.text.split('id="categories"')[1].split("</ul>")[0]
    assert 'href="/subjects/subj-a/access?as_of=2021-03-02T00%3A00%3A00Z"' in page.text


def test_an_empty_field_means_now(browser: TestClient) -> None:
    page = browser.get("/subjects/subj-a/lineage", params={"as_of": ""})
    assert page.status_code == 200 and "as of now" in page.text and 'value=""' in _field(page.text)


@pytest.mark.parametrize(
    "typed", ["03/02/2021", "03/02/2021, 12:00 AM", "2021-13-45", "yesterday", "2021-03-02T25:00:00Z", "9999-12-31", "\x00"]
)
@pytest.mark.parametrize("page", ["lineage", "access"])
def test_anything_else_is_a_422_page_naming_the_field(browser: TestClient, typed: str, page: str) -> None:
    response = browser.get(f"/subjects/subj-a/{page}", params={"as_of": typed})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("text/html")
    (reason,) = re.findall(r'<p class="error">([^<]*)</p>', response.text)
    assert reason.startswith("as_of: ") and ("ISO-8601" in reason or "outside" in reason), reason
    assert "Traceback" not in response.text


def test_now_on_the_pages_is_the_present_instant_as_in_the_json_api(browser: TestClient) -> None:
    """[7] "now" leaves out an edge dated later, on the lineage page, the access page and the JSON API alike."""
    api = browser.get("/v1/subjects/subj-a/recipients", headers={"X-API-Key": KEY}).json()
    assert [r["recipient_id"] for r in api["recipients"]] == ["acme-fr"]
    for typed in ("", None):
        page = browser.get("/subjects/subj-a/lineage", params={} if typed is None else {"as_of": typed}).text
        assert 'data-recipient="acme-fr"' in page and 'data-recipient="later-fr"' not in page
        assert "as of now" in page and 'id="as-of-now"' not in page
    access = browser.get("/subjects/subj-a/access").text
    assert "acme-fr" in access and "later-fr" not in access
    # Named, the instant after it shows it everywhere.
    after = (LATER + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert 'data-recipient="later-fr"' in browser.get("/subjects/subj-a/lineage", params={"as_of": after}).text
    assert "later-fr" in browser.get("/subjects/subj-a/access", params={"as_of": after}).text
