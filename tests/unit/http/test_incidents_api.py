"""``GET /v1/incidents``: the breach register over HTTP, as ``consentflow incident list --json`` [12; GDPR Art. 33]."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.contracts import events
from consentflow.core.processor import Processor
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events
from tests.support.incident_scenario import AFFECTED, AWARE, RECIPIENT, WINDOW_FROM, WINDOW_TO, scenario_events

H = timedelta(hours=1)


def test_the_register_over_http_answers_the_dpo_as_the_command_line_does(chdb_dsn: str) -> None:
    database = f"incidents_api_{uuid.uuid4().hex[:8]}"
    opened = [
        events.incident_event(
            incident_id, "opened", recipient_id=RECIPIENT, window_from=WINDOW_FROM, window_to=WINDOW_TO, aware_at=AWARE,
            risk="low", source_service="dpo", occurred_at=AWARE,
        )
        for incident_id in ("inc-open", "inc-closed")
    ]  # fmt: skip
    closed = events.incident_event("inc-closed", "closed", source_service="dpo", occurred_at=AWARE + 5 * H)
    items = [*scenario_events(), *opened, closed]
    run_events(((e.topic, e.record) for e in items), Processor(), ClickHouseSink(chdb_dsn, database))
    keys = KeyRing(
        [
            ApiKey("dpo", Role.DPO, key_hash("test-key-incidents-dpo")),
            ApiKey("svc", Role.SERVICE, key_hash("test-key-incidents-svc")),
        ]
    )
    client = TestClient(create_app(ServerSettings(chdb_dsn, database, keys)))
    dpo = {"X-API-Key": "test-key-incidents-dpo"}
    answer = client.get("/v1/incidents", headers=dpo)
    assert answer.status_code == 200, answer.text
    listed = CliRunner().invoke(main, ["incident", "list", "--json", "--dsn", chdb_dsn, "--database", database])
    assert answer.json() == json.loads(listed.stdout)
    assert {i["incident_id"]: (i["notification"], i["hours_left"], i["affected_subjects"]) for i in answer.json()} == {
        "inc-open": ("overdue", -168.0, len(AFFECTED)),
        "inc-closed": ("overdue", -168.0, len(AFFECTED)),
    }
    only_open = client.get("/v1/incidents", params={"open": "true", "as_of": (AWARE + 70 * H).isoformat()}, headers=dpo)
    assert [(i["incident_id"], i["hours_left"]) for i in only_open.json()] == [("inc-open", 2.0)]
    assert client.get("/v1/incidents", params={"as_of": "yesterday"}, headers=dpo).status_code == 422
    assert client.get("/v1/incidents", headers={"X-API-Key": "test-key-incidents-svc"}).status_code == 403
    assert "/v1/incidents" in client.get("/openapi.json", headers=dpo).json()["paths"]
