"""Replay and verify use the pipeline's own databases only (issue 21): never ClickHouse's, never another application's.

Over HTTP (``POST /v1/audit/replay``, ``GET /v1/audit/verify?against_database=``)
and on the command line (``consentflow replay --database``, ``verify
--against-database``), in a real chDB: a reserved database, a database holding
a table that is not the pipeline's, or a name outside the identifier pattern is
refused naming the database and why, and nothing is created in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.connection import connect

AUDITOR = new_key()
RESERVED = ["system", "INFORMATION_SCHEMA", "information_schema", "default"]


def _fresh() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def served(chdb_dsn: str) -> str:
    """The served database: the pipeline's tables, empty."""
    return ClickHouseSink(chdb_dsn, _fresh()).database


@pytest.fixture(scope="module")
def foreign(chdb_dsn: str) -> str:
    """A database another application owns: the pipeline's tables beside one of its own."""
    name = ClickHouseSink(chdb_dsn, _fresh()).database
    connect(chdb_dsn).command(f"CREATE TABLE {name}.customers (id UInt64) ENGINE = MergeTree ORDER BY id")
    return name


@pytest.fixture(scope="module")
def api(chdb_dsn: str, served: str) -> Iterator[TestClient]:
    # Nothing listens on port 9: a replay that got past the checks starts, then fails on Kafka.
    keys = KeyRing([ApiKey("auditor-1", Role.AUDITOR, key_hash(AUDITOR))])
    settings = ServerSettings(chdb_dsn, served, keys, bootstrap="127.0.0.1:9", prefix="nowhere", replay_timeout=1)
    with TestClient(create_app(settings)) as client:
        yield client


def _pipeline_tables_in(chdb_dsn: str, database: str) -> list[str]:
    rows = connect(chdb_dsn).query(
        "SELECT name FROM system.tables WHERE database = {d:String} AND name IN ('ledger', 'lineage')", parameters={"d": database}
    )
    return [str(row[0]) for row in rows.result_rows]


def _replay(api: TestClient, database: str) -> httpx.Response:
    return api.post("/v1/audit/replay", json={"database": database}, headers={"X-API-Key": AUDITOR})


@pytest.mark.parametrize("database", RESERVED)
def test_a_replay_into_a_reserved_database_is_refused_and_creates_nothing(api: TestClient, chdb_dsn: str, database: str) -> None:
    refused = _replay(api, database)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["field"] == "database"
    assert f"database {database} is reserved to ClickHouse" in body["detail"]
    assert _pipeline_tables_in(chdb_dsn, database) == []


def test_a_replay_into_a_database_holding_another_applications_table_is_refused(api: TestClient, foreign: str) -> None:
    refused = _replay(api, foreign)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "database"
    assert f"database {foreign} holds tables that are not the pipeline's (customers)" in refused.json()["detail"]


@pytest.mark.parametrize("database", ["a-b", "x" * 65, "1st", "db;DROP", ""])
def test_a_replay_into_a_name_outside_the_pattern_is_refused(api: TestClient, database: str) -> None:
    refused = _replay(api, database)
    assert refused.status_code == 422 and refused.json()["field"] == "database"
    assert "must be letters, digits and underscores" in refused.json()["detail"]


def test_a_replay_into_a_new_or_pipeline_only_database_still_starts(api: TestClient, chdb_dsn: str) -> None:
    """The check refuses only what it must: a database that does not exist yet, or one holding only the pipeline's
    (empty) tables, is a replay's target as before."""
    for database in (_fresh(), ClickHouseSink(chdb_dsn, _fresh()).database):
        started = _replay(api, database)
        assert started.status_code == 202, started.text
        replay_id = started.json()["replay_id"]
        while api.get(f"/v1/audit/replays/{replay_id}", headers={"X-API-Key": AUDITOR}).json()["status"] == "running":
            pass  # the next replay may start once this one (which cannot reach Kafka) has failed


@pytest.mark.parametrize("database", [*RESERVED, "foreign"])
def test_verify_against_a_reserved_or_foreign_database_is_refused(api: TestClient, foreign: str, database: str) -> None:
    database = foreign if database == "foreign" else database
    refused = api.get("/v1/audit/verify", params={"against_database": database}, headers={"X-API-Key": AUDITOR})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "against_database"
    assert refused.json()["detail"].startswith(f"against_database: database {database} ")


@pytest.mark.parametrize("database", [*RESERVED, "foreign"])
def test_the_command_line_refuses_the_same_databases(chdb_dsn: str, served: str, foreign: str, database: str) -> None:
    database = foreign if database == "foreign" else database
    why = "holds tables that are not the pipeline's" if database == foreign else "is reserved to ClickHouse"
    kafka = ["--bootstrap", "127.0.0.1:9", "--timeout", "1"]
    replay = CliRunner().invoke(main, ["replay", "--from-beginning", "--into", chdb_dsn, "--database", database, *kafka])
    assert replay.exit_code == 1 and f"database {database} {why}" in replay.output, replay.output
    assert database == foreign or _pipeline_tables_in(chdb_dsn, database) == []
    verify = CliRunner().invoke(main, ["verify", "--dsn", chdb_dsn, "--database", served, "--against-database", database])
    assert verify.exit_code == 1 and f"--against-database: database {database} {why}" in verify.output, verify.output
