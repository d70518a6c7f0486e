"""The legal basis on each recipient line is the one the pipeline recorded on the edges, flagged where the policy
gives the purpose another [3; GDPR Art. 6(1)]: the JSON API, the lineage page, the access export and its page.

Events run through the processor into chDB and are asked through FastAPI's TestClient, as a browser and a client would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from fastapi.testclient import TestClient

from consentflow.contracts.events import data_disclosed, recipient_registered
from consentflow.core.processor import Processor
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.policy.vocabulary import DataCategory, LegalBasis, Purpose, RecipientKind
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.subject_access import export_schema
from consentflow.streams.embedded import run_events

KEY = new_key()
T0 = datetime(2021, 3, 1, tzinfo=UTC)
INTRODUCTIONS = Purpose.CONTRACT_INTRODUCTIONS.value


@pytest.fixture(scope="module")
def client(chdb_dsn: str) -> Iterator[TestClient]:
    database = "recorded_basis"
    registered = [
        recipient_registered(
            r,
            name=name,
            kind=RecipientKind.CORPORATE_CUSTOMER,
            country="FR",
            allowed_purposes=[Purpose.CONTRACT_INTRODUCTIONS],
            source_service="vendor-registry",
            occurred_at=T0,
        )
        for r, name in (("acme-fr", "Acme SA"), ("beta-fr", "Beta SARL"))
    ]
    disclosed = [
        # [3.2] introductions rest on the contract: the matching service recorded a legitimate interest for Acme.
        data_disclosed(
            "subj-a",
            recipient,
            [DataCategory.PROFESSIONAL_CV],
            purpose=Purpose.CONTRACT_INTRODUCTIONS,
            legal_basis=basis,
            source_service="matching",
            occurred_at=T0 + timedelta(days=day),
        )
        for recipient, basis, day in (("acme-fr", LegalBasis.LEGITIMATE_INTEREST, 1), ("beta-fr", LegalBasis.CONTRACT, 2))
    ]
    run_events(((e.topic, e.record) for e in (*registered, *disclosed)), Processor(), ClickHouseSink(chdb_dsn, database))
    ring = KeyRing([ApiKey("test-dpo", Role.DPO, key_hash(KEY))])
    with TestClient(create_app(ServerSettings(chdb_dsn, database, ring, bootstrap="127.0.0.1:1"))) as test_client:
        yield test_client


def _json(client: TestClient, path: str) -> dict:
    response = client.get(path, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def _page(client: TestClient, path: str) -> str:
    with TestClient(client.app) as browser:
        form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://testserver"}
        browser.post("/login", content=f"key={KEY}&next=/", headers=form, follow_redirects=False)
        response = browser.get(path)
    assert response.status_code == 200, response.text
    return response.text


def test_the_json_api_names_the_recorded_basis_per_purpose_and_flags_the_one_the_policy_does_not_give(client: TestClient) -> None:
    recipients = {h["recipient_id"]: h for h in _json(client, "/v1/subjects/subj-a/recipients")["recipients"]}
    assert recipients["acme-fr"]["legal_bases"] == {INTRODUCTIONS: ["legitimate_interest"]}
    assert recipients["acme-fr"]["legal_basis_differs"] == [INTRODUCTIONS]
    assert recipients["beta-fr"]["legal_bases"] == {INTRODUCTIONS: ["contract"]}
    assert recipients["beta-fr"]["legal_basis_differs"] == []


def test_the_openapi_document_describes_the_new_members(client: TestClient) -> None:
    holding = _json(client, "/openapi.json")["components"]["schemas"]["RecipientHolding"]["properties"]
    assert {"legal_bases", "legal_basis_differs"} <= set(holding)


def _row(page: str, recipient: str) -> str:
    (row,) = [r for r in page.split("<tr") if f'data-recipient="{recipient}"' in r]
    return row


def test_the_lineage_page_shows_the_recorded_basis_and_says_when_the_policy_gives_another(client: TestClient) -> None:
    page = _page(client, "/subjects/subj-a/lineage")
    acme, beta = _row(page, "acme-fr"), _row(page, "beta-fr")
    assert re.search(r"basis: our legitimate interest \(GDPR Art\. 6\(1\)\(f\)\)", acme)
    assert "not the policy's basis" in acme
    assert re.search(r"the policy gives this purpose our contract with you \(GDPR Art\. 6\(1\)\(b\)\)", acme)
    assert re.search(r"basis: our contract with you", beta) and "not the policy" not in beta
    # One basis line per purpose (the flag is its own line): what the screenshot test counts.
    assert acme.count('class="basis"') == beta.count('class="basis"') == 1 and acme.count('class="differs"') == 1


def test_the_access_export_carries_the_recorded_basis_and_its_page_shows_it(client: TestClient) -> None:
    export = _json(client, "/v1/subjects/subj-a/access-export")
    jsonschema.validate(export, export_schema())
    purposes = {r["recipient_id"]: r["purposes"] for r in export["recipients"]}
    assert purposes["acme-fr"] == [
        {
            "purpose": INTRODUCTIONS,
            "legal_basis": "eu-gdpr:A6-1-b",  # the policy's, as before
            "recorded_legal_bases": ["eu-gdpr:A6-1-f"],
            "legal_basis_differs": True,
        }
    ]
    assert (
        purposes["beta-fr"][0]["recorded_legal_bases"] == ["eu-gdpr:A6-1-b"] and not purposes["beta-fr"][0]["legal_basis_differs"]
    )

    page = _page(client, "/subjects/subj-a/access")
    received = page.split("Who received your data")[1].split("<h2")[0]
    (acme,) = [r for r in received.split("<tr") if "acme-fr" in r]
    (beta,) = [r for r in received.split("<tr") if "beta-fr" in r]
    assert "basis: our legitimate interest" in acme
    assert "Not the basis the privacy policy gives this purpose: our contract with you" in acme
    assert "basis: our contract with you" in beta and "Not the basis" not in beta
