"""``consentflow openlineage emit`` end to end: a generated file through ``consentflow run`` into chDB, then its events
on the console and in a file; every event valid against OpenLineage's schemas, the counts those of the events in the
file (re-computed here from the file, not from the tables), no subject id anywhere, the same events on a second run."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events
from tests.support.dpo_expected import processings
from tests.support.lineage_server import LineageServer
from tests.support.openlineage_schemas import event_errors, registry

DATABASE = "openlineage_emit"


def _consentflow(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> tuple[Path, list[tuple[str, dict[str, Any]]]]:
    """The generated file, run into the module's database, and its events."""
    events = tmp_path_factory.mktemp("openlineage") / "events.avro"
    generated = _consentflow("generate", "--subjects", "40", "--days", "90", "--seed", "7", "--out", str(events))
    assert generated.exit_code == 0, generated.output
    run = _consentflow("run", str(events), "--dsn", chdb_dsn, "--database", DATABASE, "--no-overview")
    assert run.exit_code == 0, run.output
    return events, [(topic.short_name, record) for topic, record in read_events(events)]


def _emit(chdb_dsn: str, *args: str) -> Result:
    result = _consentflow("openlineage", "emit", "--dsn", chdb_dsn, "--database", DATABASE, *args)
    assert result.exit_code == 0, result.output
    return result


def _console(chdb_dsn: str, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _emit(chdb_dsn, *args).stdout.splitlines()]


def _expected(stream: list[tuple[str, dict[str, Any]]], since: datetime | None = None) -> dict[str, Any]:
    """Per job: subjects, edges, per category subjects, per recipient subjects and categories, per transfer subjects."""
    service_of = {r["event_id"]: r["source_service"] for t, r in stream if t != "recipients"}
    jobs: dict[str, Any] = defaultdict(lambda: {"subjects": set(), "edges": 0, "categories": defaultdict(set), "recipients": {}})
    for p in processings(stream):
        if since is not None and p.at < since:
            continue
        job = jobs[f"processing.{p.purpose}.{service_of[p.event_id]}"]  # a job per purpose and emitting service
        job["subjects"].add(p.subject_id)
        job["edges"] += 1
        for category in p.categories:
            job["categories"][category].add(p.subject_id)
        recipient = job["recipients"].setdefault(
            p.recipient_id, {"subjects": set(), "categories": set(), "transfers": defaultdict(set)}
        )
        recipient["subjects"].add(p.subject_id)
        recipient["categories"] |= p.categories
        recipient["transfers"][p.country, p.mechanism].add(p.subject_id)
    return {
        name: {
            "subjects": len(j["subjects"]),
            "edges": j["edges"],
            "categories": {c: len(s) for c, s in j["categories"].items()},
            "recipients": {
                r: (len(v["subjects"]), sorted(v["categories"]), {k: len(s) for k, s in v["transfers"].items()})
                for r, v in j["recipients"].items()
            },
        }
        for name, j in jobs.items()
    }


def _observed(events: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for e in events:
        if e["eventType"] != "COMPLETE":
            continue
        processing = e["job"]["facets"]["consentflow_processing"]
        recipients = {}
        for d in e["outputs"]:
            facet = d["facets"]["consentflow_recipient"]
            transfers = {(t["country"], t["mechanism"]): t["subjects"] for t in d["facets"]["consentflow_transfers"]["transfers"]}
            recipients[facet["recipientId"]] = (facet["subjects"], facet["categories"], transfers)
        out[e["job"]["name"]] = {
            "subjects": processing["subjects"],
            "edges": processing["edges"],
            "categories": {
                d["facets"]["consentflow_category"]["category"]: d["facets"]["consentflow_category"]["subjects"]
                for d in e["inputs"]
            },
            "recipients": recipients,
        }
    return out


def test_console_events_are_valid_count_what_the_file_holds_and_name_no_subject(ran: Any, chdb_dsn: str) -> None:
    _, stream = ran
    events = _console(chdb_dsn)
    assert events, "no events"
    schemas = registry()
    for event in events:
        assert event_errors(event, schemas) == []
    assert _observed(events) == _expected(stream)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * (len(events) // 2)
    text = json.dumps(events)
    subjects = {r["subject_id"] for t, r in stream if t != "recipients"}
    assert not [s for s in subjects if s in text]


def test_since_leaves_the_earlier_edges_out(ran: Any, chdb_dsn: str) -> None:
    _, stream = ran
    times = sorted(p.at for p in processings(stream))
    since = times[len(times) // 2] + timedelta(microseconds=1)
    events = _console(chdb_dsn, "--since", since.isoformat())
    assert _observed(events) == _expected(stream, since)
    assert all(datetime.fromisoformat(e["eventTime"]) >= since for e in events)


def test_the_file_transport_appends_the_same_events_a_replay_gives_again(ran: Any, chdb_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "lineage.jsonl"
    result = _emit(chdb_dsn, "--transport", "file", "--file", str(out))
    lines = out.read_text().splitlines()
    assert f"{len(lines)} OpenLineage events" in result.stderr
    assert [json.loads(line) for line in lines] == _console(chdb_dsn)
    _emit(chdb_dsn, "--transport", "file", "--file", str(out))
    assert out.read_text().splitlines() == lines + lines  # byte for byte: run ids and times come from the edges


def test_a_transport_without_its_options_ends_with_one_line(chdb_dsn: str) -> None:
    for args, needs in ((["--transport", "file"], "--file"), (["--transport", "http"], "--url")):
        result = _consentflow("openlineage", "emit", "--dsn", chdb_dsn, "--database", DATABASE, *args)
        assert result.exit_code != 0
        assert needs in result.output


def test_the_http_transport_posts_each_event_to_the_lineage_endpoint_with_its_key(ran: Any, chdb_dsn: str) -> None:
    with LineageServer() as server:
        result = _emit(chdb_dsn, "--transport", "http", "--url", server.url, "--api-key", "k-123")
        assert server.received.events == _console(chdb_dsn)
        assert set(server.received.authorizations) == {"Bearer k-123"}
        assert f"{len(server.received.events)} OpenLineage events" in result.stderr


def test_a_lineage_endpoint_that_refuses_ends_the_command_with_one_line(ran: Any, chdb_dsn: str) -> None:
    with LineageServer() as server:
        server.received.status = 422  # Marquez's answer to an event it cannot take; not one the client retries
        result = _consentflow(
            "openlineage", "emit", "--dsn", chdb_dsn, "--database", DATABASE, "--transport", "http", "--url", server.url
        )
    assert result.exit_code == 1
    assert "OpenLineage http transport failed: 422" in result.output
    assert "Traceback" not in result.output
