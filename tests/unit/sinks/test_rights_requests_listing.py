"""Rights requests listed against their deadlines [8.2; GDPR Art. 12(3)]: ``consentflow requests``, ``GET /v1/requests``
and the subject's own requests in the access export (``SubjectAccessExport/v3``, JSON and HTML).

A hand-built file of five subjects' requests goes through the embedded runner into chDB, ticking at its clock (1 July
2025, 10:00 Paris); the expected last days are written out by hand from the French calendar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.processor import Processor
from consentflow.http.access_page import render_access_page
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.sinks import compliance_queries, request_queries
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reading import open_tables
from consentflow.sinks.subject_access import export_schema, subject_access_export
from consentflow.streams.embedded import run_events

PARIS = ZoneInfo("Europe/Paris")
CLOCK = datetime(2025, 7, 1, 8, tzinfo=UTC)
KEY = new_key()


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).astimezone(UTC)


def step(subject: str, right: str, status: str, when: str, **extra: Any) -> Event:
    return events.rights_event(
        subject, right, status, request_id=f"req-{subject}", source_service="support", occurred_at=paris(when), **extra
    )


EVENTS = [
    # Open; one month from 8 April 2025 ends on Thursday 8 May, Victory Day: Friday 9 May. Overdue at the clock.
    step("cand-a", "access", "requested", "2025-04-08T10:00"),
    # Open; 20 July 2025 is a Sunday: Monday 21 July. Not yet due at the clock.
    step("cand-b", "erasure", "requested", "2025-06-20T10:00"),
    # Answered in time.
    step("cand-c", "access", "requested", "2025-03-03T10:00"),
    step("cand-c", "access", "fulfilled", "2025-03-20T10:00"),
    # Extended in time by two months: due by the end of Thursday 10 April 2025; still open, overdue at the clock.
    step("cand-d", "portability", "requested", "2025-01-10T10:00"),
    step("cand-d", "portability", "extended", "2025-02-05T10:00", extension_months=2, reason_code="complexity"),
    # Post-mortem directives [8.3]: recorded, no clock.
    step("cand-e", "post_mortem_directives", "requested", "2025-05-02T10:00"),
    events.rights_event("cand-z", "access", "requested", request_id="req-clock", source_service="support", occurred_at=CLOCK),
]


@pytest.fixture(scope="module")
def database(chdb_dsn: str) -> str:
    """The events run into a database of the session's chDB engine, ticking at the clock."""
    name = "rights_requests_listing"
    sink = ClickHouseSink(chdb_dsn, name)
    run_events(((event.topic, event.record) for event in EVENTS), Processor(), sink, as_of=CLOCK)
    return name


def cli(chdb_dsn: str, database: str, *options: str) -> list[dict[str, Any]]:
    """``consentflow requests OPTIONS --json``."""
    result = CliRunner().invoke(main, ["requests", *options, "--dsn", chdb_dsn, "--database", database, "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def subjects(rows: list[dict[str, Any]]) -> list[str]:
    return [row["subject_id"] for row in rows]


def test_every_request_is_listed_earliest_due_first_with_its_last_day(chdb_dsn: str, database: str) -> None:
    rows = cli(chdb_dsn, database, "--as-of", CLOCK.isoformat())
    assert subjects(rows) == ["cand-c", "cand-d", "cand-a", "cand-b", "cand-z", "cand-e"]
    last = {row["subject_id"]: row["last_day"] for row in rows}
    assert last == {
        "cand-c": "2025-04-03",
        "cand-d": "2025-04-10",
        "cand-a": "2025-05-09",
        "cand-b": "2025-07-21",
        "cand-z": "2025-08-01",
        "cand-e": None,
    }
    by = {row["subject_id"]: row for row in rows}
    assert (by["cand-d"]["extension_months"], by["cand-d"]["extension_reason"]) == (2, "complexity")
    assert (by["cand-e"]["clock"], by["cand-e"]["state"]) == ("none", "recorded")


def test_open_overdue_and_due_before_filter_as_the_options_say(chdb_dsn: str, database: str) -> None:
    at = ["--as-of", CLOCK.isoformat()]
    assert subjects(cli(chdb_dsn, database, "--open", *at)) == ["cand-d", "cand-a", "cand-b", "cand-z"]
    overdue = cli(chdb_dsn, database, "--overdue", *at)
    assert subjects(overdue) == ["cand-d", "cand-a"] and all(row["overdue"] for row in overdue)
    assert subjects(cli(chdb_dsn, database, "--open", "--due-before", "2025-07-22", *at)) == ["cand-d", "cand-a", "cand-b"]
    # Before cand-a's due instant (00:00 Paris, 10 May), only cand-d is overdue.
    assert subjects(cli(chdb_dsn, database, "--overdue", "--as-of", "2025-05-09T21:59:59Z")) == ["cand-d"]
    # As they stood on 10 March: cand-c, answered on the 20th, was open; the others not yet received.
    then = cli(chdb_dsn, database, "--open", "--as-of", "2025-03-10T00:00Z")
    assert subjects(then) == ["cand-c", "cand-d"] and (then[0]["state"], then[0]["outcome"]) == ("open", None)


def test_the_overview_counts_open_due_this_week_and_overdue(chdb_dsn: str, database: str) -> None:
    """At the clock (1 July): a, b, d and z open, none due within the week (b's last day is 21 July), a and d overdue;
    on 16 July, b falls due within the week."""
    counts = request_queries.request_counts(open_tables(chdb_dsn, database), CLOCK)
    assert (counts.open, counts.due_this_week, counts.overdue) == (4, 0, 2)
    later = request_queries.request_counts(open_tables(chdb_dsn, database), paris("2025-07-16T10:00"))
    assert (later.open, later.due_this_week, later.overdue) == (4, 1, 2)  # b's limit expires 22 July, 00:00 Paris


def test_a_bad_instant_ends_with_one_line_naming_the_option(chdb_dsn: str, database: str) -> None:
    result = CliRunner().invoke(main, ["requests", "--due-before", "soon", "--dsn", chdb_dsn, "--database", database])
    assert result.exit_code == 1 and "--due-before" in result.output


def test_the_pipeline_judged_the_overdue_requests_by_its_clock(chdb_dsn: str, database: str) -> None:
    """``request_overdue`` [8.2; Art. 12(3)] at the run's retention clock: cand-a and cand-d, not cand-b."""
    found = compliance_queries.violations(open_tables(chdb_dsn, database), rule=None)
    assert sorted((v.subject_id, v.rule) for v in found) == [("cand-a", "request_overdue"), ("cand-d", "request_overdue")]


@pytest.fixture(scope="module")
def api(chdb_dsn: str, database: str) -> Iterator[TestClient]:
    ring = KeyRing([ApiKey("test-dpo", Role.DPO, key_hash(KEY))])
    with TestClient(create_app(ServerSettings(chdb_dsn, database, ring, bootstrap="127.0.0.1:1"))) as client:
        yield client


def test_the_http_route_answers_what_the_command_does(chdb_dsn: str, database: str, api: TestClient) -> None:
    params = {"open": "true", "overdue": "true", "as_of": CLOCK.isoformat()}
    answer = api.get("/v1/requests", params=params, headers={"X-API-Key": KEY})
    assert answer.status_code == 200, answer.text
    assert answer.json() == cli(chdb_dsn, database, "--open", "--overdue", "--as-of", CLOCK.isoformat())
    mine = api.get("/v1/requests", params={"subject_id": "cand-b"}, headers={"X-API-Key": KEY}).json()
    assert subjects(mine) == ["cand-b"]
    bad = api.get("/v1/requests", params={"due_before": "soon"}, headers={"X-API-Key": KEY})
    assert bad.status_code == 422 and bad.json()["field"] == "due_before"
    assert api.get("/v1/requests").status_code == 401
    assert "/v1/requests" in api.get("/openapi.json", headers={"X-API-Key": KEY}).json()["paths"]


def test_the_access_export_shows_the_subjects_own_requests(chdb_dsn: str, database: str) -> None:
    """[8.1, 8.2] the subject sees its requests and their deadlines, in JSON (v3) and on the page."""
    export = subject_access_export(open_tables(chdb_dsn, database), "cand-d", CLOCK)
    assert export["schema"] == "SubjectAccessExport/v3"
    jsonschema.Draft202012Validator(export_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(
        export
    )
    (request,) = export["rights_requests"]
    assert (request["request_id"], request["last_day"], request["overdue"]) == ("req-cand-d", "2025-04-10", True)
    assert [v["rule"] for v in export["violations"]] == ["request_overdue"]
    page = render_access_page(export)
    assert "Your requests and when we must answer" in page and "2025-04-10" in page and "2 further month(s)" in page
    earlier = subject_access_export(open_tables(chdb_dsn, database), "cand-d", paris("2025-01-05T00:00"))
    assert earlier["rights_requests"] == []
