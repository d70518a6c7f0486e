"""A subject's answers speak of now unless a reader names another instant (issue 18, finding 4).

A fact dated after the moment of asking (a clock gone wrong upstream, an event recorded before the gate that bounds
event times existed) must not decide today's consent state, today's recipients or today's access export: the
consent query, who-has and the export default to now, as their help and the OpenAPI document say.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.contracts.events import Event
from consentflow.core.processor import Processor
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.policy.dpv import consent_state_term
from consentflow.policy.vocabulary import ConsentAction, LegalBasis, Purpose
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events
from tests.support.builders import CLOUDNEST, SCENARIO_REGISTRY, consent, disclose

SUBJECT = "subj-clock-skew"


@pytest.fixture(scope="module")
def database(chdb_dsn: str) -> str:
    """A grant last month, then facts dated next week: a withdrawal and a disclosure."""
    name = f"defaults_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    granted, ahead = now - timedelta(days=30), now + timedelta(days=7)
    items: list[Event] = [spec.event() for spec in SCENARIO_REGISTRY]
    items += [
        consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, granted),
        disclose(SUBJECT, CLOUDNEST, ["contact"], granted, purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT),
        consent(SUBJECT, Purpose.MARKETING, ConsentAction.WITHDRAWN, ahead),
        disclose(
            SUBJECT, "future-recipient", ["identity"], ahead, purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT
        ),
    ]
    run_events(((item.topic, item.record) for item in items), Processor(), ClickHouseSink(chdb_dsn, name))
    return name


def _cli(chdb_dsn: str, database: str, *args: str) -> Any:
    result = CliRunner().invoke(main, [*args, "--dsn", chdb_dsn, "--database", database])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _marketing(answer: dict[str, Any]) -> str:
    return str(next(p["state"] for p in answer["purposes"] if p["purpose"] == "marketing"))


def test_consent_who_has_and_the_export_default_to_now_on_the_command_line(chdb_dsn: str, database: str) -> None:
    assert _marketing(_cli(chdb_dsn, database, "consent", SUBJECT, "--json")) == "granted"
    assert (
        _marketing(_cli(chdb_dsn, database, "consent", SUBJECT, "--json", "--as-of", "2199-12-31T23:00:00+01:00")) == "withdrawn"
    )
    recipients = _cli(chdb_dsn, database, "who-has", SUBJECT, "--json")["recipients"]
    assert [r["recipient_id"] for r in recipients] == [CLOUDNEST.recipient_id]
    later = _cli(chdb_dsn, database, "who-has", SUBJECT, "--json", "--as-of", "2199-12-31")["recipients"]
    assert sorted(r["recipient_id"] for r in later) == sorted([CLOUDNEST.recipient_id, "future-recipient"])
    export = _cli(chdb_dsn, database, "dsar", SUBJECT)
    assert [r["recipient_id"] for r in export["recipients"]] == [CLOUDNEST.recipient_id]
    assert {c["purpose"]: c["state"] for c in export["consent_records"]}["marketing"] == consent_state_term("granted")


def test_the_http_answers_default_to_now_and_the_openapi_document_says_so(chdb_dsn: str, database: str) -> None:
    keys = KeyRing([ApiKey("dpo-laptop", Role.DPO, key_hash("test-key-defaults"))])
    client = TestClient(create_app(ServerSettings(chdb_dsn, database, keys)))
    headers = {"X-API-Key": "test-key-defaults"}
    consent_now = client.get(f"/v1/subjects/{SUBJECT}/consent", headers=headers)
    assert consent_now.status_code == 200, consent_now.text
    assert _marketing(consent_now.json()) == "granted"
    recipients = client.get(f"/v1/subjects/{SUBJECT}/recipients", headers=headers).json()["recipients"]
    assert [r["recipient_id"] for r in recipients] == [CLOUDNEST.recipient_id]
    export = client.get(f"/v1/subjects/{SUBJECT}/access-export", headers=headers).json()
    assert [r["recipient_id"] for r in export["recipients"]] == [CLOUDNEST.recipient_id]
    document = client.get("/openapi.json", headers=headers).json()
    for path in ("consent", "recipients", "access-export"):
        parameters = document["paths"][f"/v1/subjects/{{subject_id}}/{path}"]["get"]["parameters"]
        (as_of,) = [p for p in parameters if p["name"] == "as_of"]
        assert "Default: now" in as_of["description"], path
