"""The HTTP API on a generated dataset in chDB, against answers computed from the generated events.

Every endpoint is asked through FastAPI's TestClient (real HTTP semantics over
ASGI) with keys of each role; the expected answers come from
``tests/support/dpo_expected.py``, plain Python over the events, never from the query
layer. Refusals are checked per role and per kind of bad input.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, KafkaError
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import CONSENT
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.http.api_keys import (
    KEYS_ENV,
    ApiKey,
    KeyFileError,
    KeyRing,
    Role,
    key_hash,
    load_keys,
    new_key,
    parse_key_env,
    read_key_file,
)
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.http.key_scopes import UNRESTRICTED
from consentflow.kafka.producer import EventProducer
from consentflow.policy.geography import EEA_COUNTRIES
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import TABLES
from consentflow.streams.embedded import run_events
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import Dataset
from tests.support.kafka_topics import fresh_topics

KEYS = {role: new_key() for role in Role}
UNKNOWN_KEY = new_key()
HOSTILE_IDS = [
    "x' OR '1'='1",
    "a;DROP TABLE ledger",
    "subj-1`",
    "sub\nj",
    "-leading-dash",
    "ü-umlaut",
    "a" * 129,
    "{db}",
    "{db:Identifier}",
]


#: The service key speaks for the cookie banner, the service the collector tests emit as.
BANNER = "cookie-banner"


def _ring() -> KeyRing:
    return KeyRing(
        ApiKey(BANNER, role, key_hash(key), UNRESTRICTED)
        if role is Role.SERVICE
        else ApiKey(f"test-{role.value}", role, key_hash(key))
        for role, key in KEYS.items()
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("http"), chdb_dsn, "http_api")


@pytest.fixture(scope="module")
def client(data: Dataset, chdb_dsn: str) -> Iterator[TestClient]:
    # Nothing listens on port 1: the collector meets an unreachable Kafka (librdkafka, for real).
    settings = ServerSettings(chdb_dsn, data.database, _ring(), bootstrap="127.0.0.1:1", collect_timeout=1.0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def get(client: TestClient, path: str, role: Role = Role.DPO, **params: Any) -> Any:
    """GET with the role's key; ``from_`` stands for ``from``."""
    query = {k.rstrip("_"): v for k, v in params.items() if v is not None}
    return client.get(path, params=query, headers={"X-API-Key": KEYS[role]})


def ok(response: Any) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _instants(data: Dataset) -> list[datetime]:
    times = sorted(r["occurred_at"] for topic, r in data.events if topic != "recipients")
    return [times[len(times) // 3], times[2 * len(times) // 3]]


def _sample(data: Dataset, n: int) -> list[str]:
    subjects = data.subjects()
    return subjects[:: max(1, len(subjects) // n)]


# -- each endpoint against the events --------------------------------------------------------


def test_health_is_open(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_who_has_now_and_as_of_past_instants(client: TestClient, data: Dataset) -> None:
    compared = 0
    for subject in _sample(data, 40):
        for as_of in [None, *_instants(data)]:
            asked = datetime.now(UTC)
            body = ok(get(client, f"/v1/subjects/{subject}/recipients", as_of=None if as_of is None else as_of.isoformat()))
            assert body["subject_id"] == subject
            if as_of is None:  # the default is now, named in the answer
                assert asked <= t(body["as_of"]) <= datetime.now(UTC)
            else:
                assert t(body["as_of"]) == as_of
            got = {
                h["recipient_id"]: {
                    "recipient_kind": h["recipient_kind"],
                    "country": h["country"],
                    "categories": h["categories"],
                    "purposes": h["purposes"],
                    "mechanisms": h["mechanisms"],
                    "first": t(h["first"]),
                    "last": t(h["last"]),
                }
                for h in body["recipients"]
            }
            assert got == expected.who_has(data, subject, as_of), (subject, as_of)
            compared += len(got)
    assert compared > 100


def test_countries_where_data_is_stored_and_sent(client: TestClient, data: Dataset) -> None:
    for subject in _sample(data, 30):
        body = ok(get(client, f"/v1/subjects/{subject}/countries"))
        stored = expected.countries_stored(data, datetime.now(UTC))
        assert body["stored"] == sorted(stored)
        assert {c["country"]: c["recipients"] for c in body["storage"]} == stored
        got = {
            c["country"]: {"recipients": c["recipients"], "mechanisms": c["mechanisms"], "edges": c["edges"]}
            for c in body["sent"]
        }
        assert got == expected.countries_sent(data, subject), subject
        assert all(c["in_eea"] == (c["country"] in EEA_COUNTRIES) for c in body["sent"])


def test_consent_per_purpose_with_its_evidence(client: TestClient, data: Dataset) -> None:
    consenting = sorted({r["subject_id"] for r in data.of_topic("consent")})
    for subject in consenting[:: max(1, len(consenting) // 25)]:
        for as_of in [None, *_instants(data)]:
            body = ok(get(client, f"/v1/subjects/{subject}/consent", as_of=None if as_of is None else as_of.isoformat()))
            got = {p["purpose"]: (p["state"], [f["event_id"] for f in p["history"]]) for p in body["purposes"]}
            want = {
                purpose: (state, [f["event_id"] for f in facts])
                for purpose, (state, facts) in expected.consent(data, subject, as_of).items()
            }
            assert got == want, (subject, as_of)
    # One purpose only.
    fact = data.of_topic("consent")[0]
    body = ok(get(client, f"/v1/subjects/{fact['subject_id']}/consent", purpose=fact["purpose"]))
    assert [p["purpose"] for p in body["purposes"]] == [fact["purpose"]]
    assert body["purposes"][0]["state"] == expected.consent(data, fact["subject_id"])[fact["purpose"]][0]


def test_breach_window_of_a_recipient(client: TestClient, data: Dataset) -> None:
    counts: dict[str, int] = defaultdict(int)
    for p in data.processings:
        counts[p.recipient_id] += 1
    times = sorted(p.at for p in data.processings)
    start, end = times[len(times) // 4], times[3 * len(times) // 4]
    for recipient in sorted(counts, key=lambda r: -counts[r])[:4]:
        body = ok(get(client, f"/v1/recipients/{recipient}/breach", from_=start.isoformat(), to=end.isoformat()))
        want = expected.breach(data, recipient, start, end)
        assert body["subject_ids"] == want["subject_ids"] and body["subjects"] == len(want["subject_ids"])
        assert body["edges"] == want["edges"] > 0
        assert {c["category"]: c["subjects"] for c in body["categories"]} == want["categories"]


@pytest.mark.parametrize("outside_eea", [False, True])
def test_transfers_by_country_recipient_and_mechanism(client: TestClient, data: Dataset, outside_eea: bool) -> None:
    body = ok(get(client, "/v1/transfers", outside_eea=str(outside_eea).lower()))
    got = {
        (row["country"], row["recipient_id"], row["mechanism"]): {
            "edges": row["edges"],
            "subjects": row["subjects"],
            "framed": row["framed"],
        }
        for row in body
    }
    assert got == expected.transfers(data, outside_eea)


def test_violations_are_the_injected_ones(client: TestClient, data: Dataset) -> None:
    body = ok(get(client, "/v1/violations"))
    assert {(v["rule"], v["evidence_event_ids"][0], v["subject_id"]) for v in body} == expected.injected(data)
    since = sorted(t(v["occurred_at"]) for v in body)[len(body) // 2]
    rule = body[0]["rule"]
    narrowed = ok(get(client, "/v1/violations", since=since.isoformat(), rule=rule))
    assert {(v["rule"], v["evidence_event_ids"][0], v["subject_id"]) for v in narrowed} == expected.injected(data, since, rule)
    subject = body[0]["subject_id"]
    mine = ok(get(client, "/v1/violations", subject_id=subject))
    assert {(v["rule"], v["evidence_event_ids"][0]) for v in mine} == {
        (r, e) for r, e, s in expected.injected(data) if s == subject
    }


def test_retention_due_as_of_an_instant(client: TestClient, data: Dataset) -> None:
    archives = expected.open_account_archives(data)
    as_of = sorted(at for at, _ in archives.values())[len(archives) // 2]
    body = ok(get(client, "/v1/retention/due", as_of=as_of.isoformat()))
    assert all(t(r["due_at"]) <= as_of for r in body)
    archived = {
        r["subject_id"]: (t(r["due_at"]), r["basis_event_id"])
        for r in body
        if r["action"] == "archive" and r["subject_id"] in archives
    }
    assert archived == {s: a for s, a in archives.items() if a[0] <= as_of}


def test_retention_due_after_the_runs_clock_comes_from_the_plans(client: TestClient, data: Dataset) -> None:
    """Finding 6 over HTTP: the financial deletions [2.3.2] due after the run's clock, not yet emitted, with the clock
    of each plan; the fields are in the OpenAPI document's response model."""
    deletions = expected.financial_deletions(data)
    later = max(due for due, _ in deletions.values())
    body = ok(get(client, "/v1/retention/due", as_of=later.isoformat()))
    deleted = {r["subject_id"]: (t(r["due_at"]), r["basis_event_id"]) for r in body if r["action"] == "delete"}
    assert deleted == deletions
    latest = expected.latest_event_times(data)
    assert all((r["emitted"], t(r["planned_as_of"])) == (False, latest[r["subject_id"]]) for r in body if r["action"] == "delete")
    model = client.get("/openapi.json", headers={"X-API-Key": KEYS[Role.DPO]}).json()["components"]["schemas"]["RetentionDue"][
        "properties"
    ]
    assert {"emitted", "planned_as_of", "due_at", "action_id"} <= set(model)


def test_erasure_notices_of_erased_subjects(client: TestClient, data: Dataset) -> None:
    erased = sorted({r["subject_id"] for r in data.of_topic("rights") if r["right"] == "erasure" and r["status"] == "fulfilled"})
    assert erased
    for subject in erased:
        got = {
            n["notice_id"]: {
                "recipient_id": n["recipient_id"],
                "categories": n["categories"],
                "retained_categories": n["retained_categories"],
                "fulfilled_at": t(n["fulfilled_at"]),
            }
            for n in ok(get(client, f"/v1/subjects/{subject}/erasure-notices"))
        }
        assert got == expected.erasure_notices(data, subject), subject


def test_overview_counts_subjects_and_violations(client: TestClient, data: Dataset) -> None:
    body = ok(get(client, "/v1/overview"))
    with_facts = {r["subject_id"] for r in data.of_topic("consent")} | {p.subject_id for p in data.processings}
    assert body["subjects"] == len(with_facts)
    per_rule: dict[str, int] = defaultdict(int)
    for rule, _, _ in expected.injected(data):
        per_rule[rule] += 1
    assert {v["rule"]: v["count"] for v in body["violations_by_rule"]} == per_rule
    # An unknown country (an unregistered recipient) cannot be shown inside the EU/EEA: it counts outside [7].
    outside = {(p.country, p.mechanism) for p in data.processings if p.country not in EEA_COUNTRIES}
    assert {(row["country"], row["mechanism"]) for row in body["transfers_outside_eea"]} == outside


def test_access_export_names_every_recipient_and_category(client: TestClient, data: Dataset) -> None:
    for subject in _sample(data, 10):
        body = ok(get(client, f"/v1/subjects/{subject}/access-export"))
        holdings = expected.who_has(data, subject)
        assert body["subject_id"] == subject
        assert {r["recipient_id"] for r in body["recipients"]} == set(holdings)
        assert {c for h in holdings.values() for c in h["categories"]} <= set(body["categories_held"])


def test_ropa_rows_cover_every_observed_purpose_and_recipient(client: TestClient, data: Dataset) -> None:
    grouped: dict[tuple[str, str], list[expected.Processing]] = defaultdict(list)
    for p in data.processings:
        grouped[(p.purpose, p.recipient_id)].append(p)
    body = ok(get(client, "/v1/ropa"))
    rows = {(r["purpose"], r["recipient_id"]): r for r in body["rows"]}
    for key, ps in grouped.items():
        assert rows[key]["transfers"] == len(ps), key
        assert rows[key]["subjects"] == len({p.subject_id for p in ps}), key
    csv = get(client, "/v1/ropa", format="csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.strip().splitlines()) == len(body["rows"]) + 1  # a header line, then one line per row


# -- the auditor's verify ---------------------------------------------------------------------------


def _copy_database(dsn: str, source: str) -> str:
    target = f"t_{uuid.uuid4().hex[:10]}"
    sink = ClickHouseSink(dsn, target)  # creates the schema, the materialised copy's view included
    for table in TABLES:
        sink.client.command(f"INSERT INTO `{target}`.`{table.name}` SELECT * FROM `{source}`.`{table.name}` FINAL")
    return target


def test_verify_checks_every_chain_and_compares_with_a_copy(client: TestClient, data: Dataset, chdb_dsn: str) -> None:
    consent_events = {r["event_id"]: r for r in data.of_topic("consent")}
    body = ok(get(client, "/v1/audit/verify", Role.AUDITOR))
    assert body["ok"] is True and body["broken"] == []
    assert body["entries"] == len(consent_events)
    assert body["subjects"] == len({r["subject_id"] for r in consent_events.values()})
    assert {d["table"]: d["rows"] for d in body["digests"]}["ledger"] == len(consent_events)

    copy = _copy_database(chdb_dsn, data.database)
    same = ok(get(client, "/v1/audit/verify", Role.AUDITOR, against_database=copy))
    assert same["equal"] is True and same["ok"] is True and same["first_difference"] is None
    assert same["against_digests"] == same["digests"]

    # An auditor's reason to compare: a ledger row altered in place (its hashes kept) verifies as a chain, but differs.
    victim = sorted(consent_events)[0]
    sink = ClickHouseSink(chdb_dsn, copy)
    sink.client.command(
        f"ALTER TABLE `{copy}`.ledger UPDATE source_service = 'tampered' WHERE event_id = '{victim}' SETTINGS mutations_sync = 1"
    )
    differs = ok(get(client, "/v1/audit/verify", Role.AUDITOR, against_database=copy))
    assert differs["equal"] is False and differs["ok"] is False
    first = differs["first_difference"]
    assert first["table"] == "ledger" and first["key"]["subject_id"] == repr(consent_events[victim]["subject_id"])
    assert first["columns"]["source_service"][1] == "'tampered'"

    # Served from the tampered copy, the chain itself names the altered entry.
    tampered = ServerSettings(chdb_dsn, copy, _ring())
    with TestClient(create_app(tampered)) as other:
        report = ok(get(other, "/v1/audit/verify", Role.AUDITOR))
    assert report["ok"] is False and [b["event_id"] for b in report["broken"]] == [victim]


def test_verify_refuses_a_malformed_or_missing_database(client: TestClient, data: Dataset) -> None:
    bad = get(client, "/v1/audit/verify", Role.AUDITOR, against_database="x;drop")
    assert bad.status_code == 422 and bad.json()["field"] == "against_database"
    same = get(client, "/v1/audit/verify", Role.AUDITOR, against_database=data.database)
    assert same.status_code == 422 and "being verified" in same.json()["detail"]
    missing = get(client, "/v1/audit/verify", Role.AUDITOR, against_database="no_such_database")
    assert missing.status_code == 404 and missing.json()["field"] == "against_database"


# -- keys and roles --------------------------------------------------------------------------------


def _keyed_routes(client: TestClient, data: Dataset) -> list[tuple[str, str, str]]:
    """(method, concrete path, action) for every endpoint of the OpenAPI document that needs a key."""
    subject = data.subjects()[0]
    recipient = data.processings[0].recipient_id
    routes = []
    document = client.get("/openapi.json", headers={"X-API-Key": KEYS[Role.DPO]}).json()
    for path, operations in document["paths"].items():
        if path in ("/health", "/ready"):  # the probes: open, they tell nothing about the data
            continue
        concrete = path.replace("{subject_id}", subject).replace("{recipient_id}", recipient)
        if "/breach" in path:
            concrete += "?from=2020-01-01&to=2030-01-01"
        if path == "/subjects":
            concrete += f"?subject_id={subject}"
        for method in operations:
            action = "collect" if "/collect/" in path else "audit" if "/audit/" in path else "read"
            routes.append((method.upper(), concrete, action))
    return routes


def test_every_endpoint_but_health_needs_a_known_key(client: TestClient, data: Dataset) -> None:
    routes = _keyed_routes(client, data)
    assert len(routes) >= 20
    for method, path, _ in routes:
        for headers in ({}, {"X-API-Key": UNKNOWN_KEY}, {"X-API-Key": ""}):
            response = client.request(method, path, headers=headers, json={}, follow_redirects=False)
            assert response.status_code == 401, (method, path, headers, response.text)
            if path.startswith("/v1/"):
                assert response.json()["field"] == "X-API-Key"


def test_the_openapi_document_needs_a_key_of_any_role_and_only_the_offline_viewer_is_served(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", headers={"X-API-Key": UNKNOWN_KEY}).status_code == 401
    for role in Role:
        document = client.get("/openapi.json", headers={"X-API-Key": KEYS[role]})
        assert document.status_code == 200 and "/v1/collect/consent" in document.json()["paths"], role
    assert client.get("/redoc", headers={"X-API-Key": KEYS[Role.DPO]}).status_code == 404
    assert client.get("/docs", headers={"X-API-Key": KEYS[Role.DPO]}).status_code == 200  # served here: test_http_docs.py


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_do_what_it_is_for_and_nothing_else(client: TestClient, data: Dataset, role: Role) -> None:
    allowed: set[str] = {
        Role.DPO: {"read", "audit", "collect"},
        Role.AUDITOR: {"read", "audit"},
        Role.SERVICE: {"collect"},
        Role.OPERATOR: set(),  # the API's metrics only: tests/unit/http/test_request_metrics.py
    }[role]
    for method, path, action in _keyed_routes(client, data):
        # An empty body: the collector refuses it (422) once the key passes; nothing reaches Kafka.
        response = client.request(method, path, headers={"X-API-Key": KEYS[role]}, json={}, follow_redirects=False)
        if action in allowed:
            assert response.status_code in (200, 303, 422), (role, method, path, response.text)
            if action == "collect":
                assert response.status_code == 422 and "subject_id" in response.json()["detail"]
        else:
            assert response.status_code == 403, (role, method, path, response.text)
            if path.startswith("/v1/"):
                assert role.value in response.json()["detail"]


def test_the_json_api_does_not_take_the_browser_cookie(client: TestClient) -> None:
    with TestClient(client.app) as browser:
        form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://testserver"}
        browser.post("/login", content=f"key={KEYS[Role.DPO]}&next=/", headers=form, follow_redirects=False)
        assert browser.get("/v1/transfers").status_code == 401
        assert browser.get("/").status_code == 200  # the pages do take its session


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["recipients", "countries", "consent", "erasure-notices", "access-export"])
def test_an_unknown_subject_is_404(client: TestClient, endpoint: str) -> None:
    response = get(client, f"/v1/subjects/nobody-{uuid.uuid4().hex[:8]}/{endpoint}")
    assert response.status_code == 404 and "unknown subject" in response.json()["detail"]
    assert get(client, "/v1/violations", subject_id="nobody-at-all").status_code == 404


def test_an_unknown_recipient_is_404(client: TestClient) -> None:
    response = get(client, "/v1/recipients/nobody-inc/breach", from_="2020-01-01", to="2030-01-01")
    assert response.status_code == 404 and "unknown recipient" in response.json()["detail"]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_ids_with_sql_metacharacters_are_refused_naming_the_parameter(client: TestClient, data: Dataset, hostile: str) -> None:
    for path, field in (
        ("/v1/subjects/{}/recipients", "subject_id"),
        ("/v1/subjects/{}/consent", "subject_id"),
        ("/v1/recipients/{}/breach?from=2020-01-01&to=2021-01-01", "recipient_id"),
    ):
        target = path.replace("{}", quote(hostile, safe=""))
        response = client.get(target, headers={"X-API-Key": KEYS[Role.DPO]})
        assert response.status_code in (404, 422), (hostile, response.text)  # 404: the id held a "/" and left the route
        if response.status_code == 422:
            assert response.json()["field"] == field and "not a well-formed id" in response.json()["detail"]
    refused = get(client, "/v1/violations", subject_id=hostile)
    assert refused.status_code == 422 and refused.json()["field"] == "subject_id"
    # The tables are untouched: the dataset still answers as before.
    assert ok(get(client, "/v1/overview"))["subjects"] > 0


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/subjects/{s}/recipients", {"as_of": "yesterday"}, "as_of"),
        ("/v1/subjects/{s}/consent", {"as_of": "2021-13-01"}, "as_of"),
        ("/v1/subjects/{s}/consent", {"purpose": "world_domination"}, "purpose"),
        ("/v1/violations", {"since": "2021-02-30T00:00:00Z"}, "since"),
        ("/v1/violations", {"rule": "no_such_rule"}, "rule"),
        ("/v1/retention/due", {"as_of": "3021-01-01"}, "as_of"),
        ("/v1/recipients/{r}/breach", {"from": "2021-01-01"}, "to"),
        ("/v1/recipients/{r}/breach", {"from": "soon", "to": "2021-01-01"}, "from"),
        ("/v1/recipients/{r}/breach", {"from": "2021-02-01", "to": "2021-01-01"}, "to"),
        ("/v1/transfers", {"outside_eea": "perhaps"}, "outside_eea"),
        ("/v1/ropa", {"format": "xlsx"}, "format"),
    ],
)
def test_malformed_parameters_are_422_naming_the_parameter(
    client: TestClient, data: Dataset, path: str, params: dict[str, str], field: str
) -> None:
    concrete = path.replace("{s}", data.subjects()[0]).replace("{r}", data.processings[0].recipient_id)
    response = client.get(concrete, params=params, headers={"X-API-Key": KEYS[Role.DPO]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and field in body["detail"] and "\n" not in body["detail"]


# -- the collector ------------------------------------------------------------------------------------


def _consent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject_id": "subj-banner-1",
        "purpose": "cookies_analytics",
        "action": "granted",
        "channel": "cookie_banner",
        "source_service": "cookie-banner",
        "occurred_at": "2021-03-01T12:00:00Z",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def collect(client: TestClient, topic: str, body: Any, role: Role = Role.SERVICE) -> Any:
    return client.post(f"/v1/collect/{topic}", json=body, headers={"X-API-Key": KEYS[role]})


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_consent_body(purpose="world_domination"), "purpose", "not a Purpose"),
        (_consent_body(subject_id="jane@example.com"), "subject_id", "not a pseudonymous id"),
        (_consent_body(subject_id=...), "subject_id", "missing"),
        (_consent_body(email="jane@example.com"), "email", "not in the ConsentEvent contract"),
        (_consent_body(occurred_at="2021-03-01T12:00:00"), "occurred_at", "no time zone"),
        (_consent_body(occurred_at="last tuesday"), "occurred_at", "not an ISO-8601 time"),
        (_consent_body(event_id="not-a-uuid"), "event_id", "not a UUID"),
        (_consent_body(channel=["cookie_banner"]), "channel", "expected a string"),
        (_consent_body(source_service="Cookie Banner"), "source_service", "not a service name"),
        # event-time bounds [finding 4]: not later than the arrival plus an hour, not before 2000-01-01
        (_consent_body(occurred_at="2199-12-31T00:00:00Z"), "occurred_at", "is later than the event's arrival"),
        (_consent_body(occurred_at="1000-01-01T00:00:00Z"), "occurred_at", "is before the earliest event time accepted"),
    ],
)
def test_the_collector_refuses_an_invalid_event_naming_the_field(client: TestClient, body: Any, field: str, words: str) -> None:
    response = collect(client, "consent", body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field and words in response.json()["detail"]


def test_a_service_key_emits_only_as_the_service_it_is_named_after(client: TestClient) -> None:
    """The ledger keeps each consent's source_service as evidence of where it came from [6]: the cookie banner's key
    cannot record a consent as given through the profile service. 403 naming the field, before anything is sent;
    the DPO's key may emit as any service (here Kafka is unreachable: 503, past the check)."""
    refused = collect(client, "consent", _consent_body(source_service="profile"))
    assert refused.status_code == 403
    assert refused.json()["field"] == "source_service"
    assert f"key {BANNER} may emit only as source_service '{BANNER}', not 'profile'" in refused.json()["detail"]
    assert collect(client, "consent", _consent_body()).status_code == 503  # its own name: accepted, Kafka is away
    assert collect(client, "consent", _consent_body(source_service="profile"), role=Role.DPO).status_code == 503


def test_the_collector_refuses_what_is_not_a_json_object(client: TestClient) -> None:
    headers = {"X-API-Key": KEYS[Role.SERVICE], "Content-Type": "application/json"}
    not_json = client.post("/v1/collect/consent", content=b"{subject_id: 1", headers=headers)
    assert not_json.status_code == 422 and not_json.json()["field"] == "body"
    array = collect(client, "consent", [_consent_body()])
    assert array.status_code == 422 and "JSON object" in array.json()["detail"]
    registry = collect(client, "recipients", {"recipient_id": "evil-corp"})
    assert registry.status_code == 404  # the registry is the DPO's, not an emitter's


def test_the_collector_answers_503_when_kafka_is_unreachable(client: TestClient) -> None:
    began = time.monotonic()
    response = collect(
        client,
        "cookie",
        {
            "subject_id": "subj-banner-2",
            "vendor_id": "adnet-us",
            "cookie_category": "analytics",
            "cookie_name": "_ga",
            "source_service": "cookie-banner",
        },
    )
    assert response.status_code == 503, response.text
    assert "Kafka did not take the event" in response.json()["detail"]  # where Kafka is, only the server log says
    assert time.monotonic() - began < 10


@pytest.mark.kafka
def test_the_collector_produces_to_the_input_topic(kafka_bootstrap: str, chdb_dsn: str, data: Dataset) -> None:
    with fresh_topics(kafka_bootstrap, "testcollect", partitions=1) as prefix:
        settings = ServerSettings(chdb_dsn, data.database, _ring(), bootstrap=kafka_bootstrap, prefix=prefix, collect_timeout=10)
        with TestClient(create_app(settings)) as api:
            event_id = str(uuid.uuid4())
            response = collect(api, "consent", _consent_body(event_id=event_id, notice_id="banner-2021-03"))
            assert response.status_code == 202, response.text
            assert response.json() == {"event_id": event_id, "topic": "consent", "subject_id": "subj-banner-1"}
        consumer = Consumer(
            {"bootstrap.servers": kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([CONSENT.name(prefix)])
        try:
            message = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                candidate = consumer.poll(0.5)
                if candidate is None:
                    continue
                error = candidate.error()
                if error is not None and error.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue
                message = candidate
                break
        finally:
            consumer.close()
        assert message is not None and message.error() is None
        assert message.key() == b"subj-banner-1"
        value = message.value()
        assert value is not None
        record = SingleObjectCodec().decode(CONSENT, value)
        assert record["event_id"] == event_id
        assert (record["purpose"], record["action"], record["channel"]) == ("cookies_analytics", "granted", "cookie_banner")
        assert record["notice_id"] == "banner-2021-03" and record["source_service"] == "cookie-banner"
        assert record["occurred_at"] == datetime.fromisoformat("2021-03-01T12:00:00+00:00")


@pytest.mark.kafka
def test_a_replay_through_the_api_equals_the_embedded_run(kafka_bootstrap: str, chdb_dsn: str, tmp_path: Path) -> None:
    events_file = tmp_path / "events.avro"
    generate(GeneratorConfig(subjects=1500, days=365, seed=21, violation_share=0.05), events_file, None)
    with fresh_topics(kafka_bootstrap, "testreplay", partitions=2) as prefix:
        produced = 0
        with EventProducer(kafka_bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            for topic, record in read_events(events_file):
                producer.send(Event(topic, record))
                produced += 1
        served = f"t_{uuid.uuid4().hex[:10]}"
        run_events(read_events(events_file), Processor(), ClickHouseSink(chdb_dsn, served))
        settings = ServerSettings(chdb_dsn, served, _ring(), bootstrap=kafka_bootstrap, prefix=prefix)
        rebuilt = f"t_{uuid.uuid4().hex[:10]}"
        with TestClient(create_app(settings)) as api:
            auditor = {"X-API-Key": KEYS[Role.AUDITOR]}
            assert (
                api.post("/v1/audit/replay", json={"database": rebuilt}, headers={"X-API-Key": KEYS[Role.SERVICE]}).status_code
                == 403
            )
            # The replay answers 202 at once and runs on; other requests are answered while it runs
            # (it holds the ClickHouse lock one statement at a time), and GET follows it to its end.
            started = api.post("/v1/audit/replay", json={"database": rebuilt}, headers=auditor)
            assert started.status_code == 202, started.text
            replay_id = started.json()["replay_id"]
            assert started.json()["status"] == "running" and started.json()["database"] == rebuilt
            assert started.headers["location"] == f"/v1/audit/replays/{replay_id}"
            busy = api.post("/v1/audit/replay", json={"database": f"{rebuilt}_b"}, headers=auditor)
            assert busy.status_code == 409 and "a replay is running" in busy.json()["detail"]
            answered_meanwhile = 0  # reads answered while the replay still ran
            while (status := ok(get(api, f"/v1/audit/replays/{replay_id}", Role.AUDITOR)))["status"] == "running":
                assert get(api, "/v1/overview").status_code == 200
                answered_meanwhile += 1
            assert status["status"] == "done" and status["error"] is None, status
            body = status["result"]
            assert body["seconds"] > 1.5, "the replay is long enough for the check above to mean something"
            assert answered_meanwhile >= 3
            assert body["database"] == rebuilt and body["events"] == produced and body["undecodable"] == 0
            assert body["outputs"]["ledger"] == len({r["event_id"] for t, r in read_events(events_file) if t is CONSENT})
            verdict = ok(get(api, "/v1/audit/verify", Role.AUDITOR, against_database=rebuilt))
            assert verdict["equal"] is True and verdict["ok"] is True and verdict["against_digests"] == verdict["digests"]
            again = api.post("/v1/audit/replay", json={"database": rebuilt}, headers=auditor)
            assert again.status_code == 409 and again.json()["field"] == "database" and "not fresh" in again.json()["detail"]
            backwards = {"database": "t_never", "from_time": "2021-02-01", "to_time": "2021-01-01"}
            refused = api.post("/v1/audit/replay", json=backwards, headers=auditor)
            assert refused.status_code == 422 and refused.json()["field"] == "to_time"


def test_a_second_replay_while_one_runs_is_refused(client: TestClient) -> None:
    """One replay at a time: two could fill the same fresh database. 409 naming it, until the first has ended."""
    replays = client.app.state.replays  # type: ignore[attr-defined]
    assert replays.running.acquire(blocking=False)  # a replay is running
    try:
        refused = client.post("/v1/audit/replay", json={"database": "t_second"}, headers={"X-API-Key": KEYS[Role.AUDITOR]})
    finally:
        replays.running.release()
    assert refused.status_code == 409 and refused.json()["field"] == "database"
    assert "a replay is running" in refused.json()["detail"]


def test_a_replay_that_cannot_reach_kafka_ends_failed_naming_why(chdb_dsn: str) -> None:
    """The failure of a replay running in the background is kept for the auditor who follows it, and the next may start."""
    served = ClickHouseSink(chdb_dsn, f"t_{uuid.uuid4().hex[:10]}").database  # the served tables, empty
    settings = ServerSettings(chdb_dsn, served, _ring(), bootstrap="127.0.0.1:9", prefix="nowhere", replay_timeout=1)
    with TestClient(create_app(settings)) as api:
        auditor = {"X-API-Key": KEYS[Role.AUDITOR]}
        started = api.post("/v1/audit/replay", json={"database": f"t_{uuid.uuid4().hex[:10]}"}, headers=auditor)
        assert started.status_code == 202, started.text
        status = _followed_to_its_end(api, started.json()["replay_id"])
        assert status["status"] == "failed" and status["result"] is None
        assert "127.0.0.1:9" in status["error"], status["error"]
        again = api.post("/v1/audit/replay", json={"database": f"t_{uuid.uuid4().hex[:10]}"}, headers=auditor)
        assert again.status_code == 202  # the lock went with the failed one
        assert _followed_to_its_end(api, again.json()["replay_id"])["status"] == "failed"


def _followed_to_its_end(api: TestClient, replay_id: str, within: float = 60) -> Any:
    """The replay's status once it no longer runs."""
    deadline = time.monotonic() + within
    while (status := ok(get(api, f"/v1/audit/replays/{replay_id}", Role.AUDITOR)))["status"] == "running":
        assert time.monotonic() < deadline, f"replay {replay_id} still running after {within:.0f} s"
        time.sleep(0.2)
    return status


@pytest.mark.parametrize(("replay_id", "code"), [("0" * 32, 404), ("not-an-id", 422)])
def test_an_unknown_or_malformed_replay_id_is_refused(client: TestClient, replay_id: str, code: int) -> None:
    answer = get(client, f"/v1/audit/replays/{replay_id}", Role.AUDITOR)
    assert answer.status_code == code
    assert "replay_id" in answer.text


# -- the key file, the environment, the commands ------------------------------------------------------


def test_api_key_add_stores_only_the_hash_and_the_key_opens_the_api(tmp_path: Path, chdb_dsn: str, data: Dataset) -> None:
    keys_file = tmp_path / "keys.toml"
    result = CliRunner().invoke(main, ["api-key", "add", "--keys", str(keys_file), "--name", "auditor-1", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    stored = keys_file.read_text()
    assert key not in stored and key_hash(key) in stored
    assert read_key_file(keys_file) == [ApiKey("auditor-1", Role.AUDITOR, key_hash(key))]
    again = CliRunner().invoke(main, ["api-key", "add", "--keys", str(keys_file), "--name", "auditor-1", "--role", "dpo"])
    assert again.exit_code != 0 and "exists already" in again.output
    with TestClient(create_app(ServerSettings(chdb_dsn, data.database, load_keys(keys_file, {})))) as api:
        assert api.get("/v1/transfers", headers={"X-API-Key": key}).status_code == 200
        assert api.post("/v1/collect/consent", json=_consent_body(), headers={"X-API-Key": key}).status_code == 403


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[keys]]\nname = "a"\nrole = "root"\nsha256 = "' + "0" * 64 + '"\n', "role 'root'"),
        ('[[keys]]\nname = "a"\nrole = "dpo"\nsha256 = "short"\n', "64 lowercase hex"),
        ('[[keys]]\nname = "a"\nrole = "dpo"\nkey = "plain-text-key-123456789"\n', "unknown field(s) key"),
        ('[[keys]]\nname = "a b"\nrole = "dpo"\nsha256 = "' + "0" * 64 + '"\n', "name 'a b'"),
        ("keys = [", "not TOML"),
    ],
)
def test_a_malformed_key_file_is_refused_naming_the_entry(tmp_path: Path, text: str, words: str) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(text)
    with pytest.raises(KeyFileError, match="key file") as caught:
        read_key_file(keys_file)
    assert words in str(caught.value)


def test_keys_from_the_environment_are_hashed_and_checked() -> None:
    key = new_key()
    ring = load_keys(None, {KEYS_ENV: f"auditor:{key}, dpo:{KEYS[Role.DPO]}"})
    found = ring.find(key)
    assert found is not None and found.role is Role.AUDITOR and found.sha256 == key_hash(key)
    assert ring.find(key + "x") is None and ring.find("") is None
    named = parse_key_env(f"service@{BANNER}[any]:{key}, service[any]:{KEYS[Role.SERVICE]}")
    assert [(k.name, k.role) for k in named] == [(BANNER, Role.SERVICE), ("env-2-service", Role.SERVICE)]
    bad_pairs = (
        ("auditor", "expected role:key"),
        ("root:" + key, "role 'root'"),
        ("dpo:short", "22-256 characters"),
        (f"service@bad name:{key}", "name 'bad name'"),
    )
    for bad, words in bad_pairs:
        with pytest.raises(KeyFileError, match=words):
            parse_key_env(bad)
    with pytest.raises(KeyFileError, match="no API keys"):
        load_keys(None, {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_consentflow_serve_starts_the_api_and_refuses_a_bad_start(tmp_path: Path) -> None:
    env = {**os.environ, KEYS_ENV: f"dpo:{KEYS[Role.DPO]}"}
    serve = [sys.executable, "-c", "from consentflow.cli import main; main()", "serve"]
    command = [*serve, "--dsn", f"chdb://{tmp_path}/none", "--log-level", "warning"]
    no_keys = subprocess.run(
        command, env={k: v for k, v in env.items() if k != KEYS_ENV}, capture_output=True, text=True, timeout=60
    )
    assert no_keys.returncode != 0 and "no API keys" in no_keys.stderr
    bad_dsn = subprocess.run([*serve, "--dsn", "mysql://x"], env=env, capture_output=True, text=True, timeout=60)
    assert bad_dsn.returncode != 0 and "must be chdb:///path" in bad_dsn.stderr

    port = _free_port()
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "consentflow serve did not come up"
                time.sleep(0.3)
        assert health.json() == {"status": "ok"}
        # No tables at that DSN: a clear 503, not an empty answer.
        empty = httpx.get(f"{base}/v1/overview", headers={"X-API-Key": KEYS[Role.DPO]}, timeout=10)
        assert empty.status_code == 503 and "holds no consentflow tables" in empty.json()["detail"]
        document = httpx.get(f"{base}/openapi.json", headers={"X-API-Key": KEYS[Role.DPO]}, timeout=10)
        assert document.json()["info"]["title"] == "consentflow"
    finally:
        server.terminate()
        server.wait(timeout=30)
