"""The table model in ``sinks/``: one declaration per table, from which the single-node DDL, the cluster DDL, the
digests and the verification derive; the database given as a query parameter, never as text; and the EU/EEA filter
that the overview and ``transfers --outside-eea`` share."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from clickhouse_connect.driver.binding import bind_query

from consentflow.core.processor import Processor
from consentflow.policy.vocabulary import LegalBasis, Purpose
from consentflow.sinks.clickhouse import ClickHouseSink, connect
from consentflow.sinks.cluster import cluster_ddl, distributed_ddl, local_name, replicated_ddl, sharding_key
from consentflow.sinks.lineage_queries import transfers
from consentflow.sinks.queries import overview
from consentflow.sinks.tables import BY_RECIPIENT, INCIDENTS, LOG_TABLES, TABLES, schema_ddl
from consentflow.streams.embedded import run_events
from tests.support.builders import CLOUDNEST, POSTWAVE, at, disclose, processor_with
from tests.support.paths import DATA

#: The tables' columns and DDL as the sink made them before the table model (2026-12-06): the schemas are public.
BEFORE = json.loads((DATA / "table_schemas_2026-12-06.json").read_text())


def _columns(statement: str) -> list[str]:
    """The column definitions of a CREATE TABLE statement, in order."""
    body = statement[statement.index("(\n") + 2 : statement.index("\n)")]
    return [line.strip().rstrip(",") for line in body.splitlines()]


def test_the_tables_columns_and_single_node_ddl_are_those_before_the_model() -> None:
    # The breach register's table (issue 24) is new beside them: every table before is unchanged.
    assert {t.name: [list(c) for c in t.columns] for t in TABLES if t is not INCIDENTS} == BEFORE["columns"]
    statements = [s.replace("{db:Identifier}", "`consentflow`") for s in schema_ddl()]
    statements.remove(INCIDENTS.ddl().replace("{db:Identifier}", "`consentflow`"))
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `consentflow`"
    before = len(BEFORE["ddl"])
    assert statements[1 : before + 1] == BEFORE["ddl"]
    # The consent log's tables come after (issue 22): the statements before are unchanged.
    assert statements[before + 1 :] == [t.ddl().replace("{db:Identifier}", "`consentflow`") for t in LOG_TABLES]


def test_every_statement_binds_the_database_on_the_server_not_in_the_text() -> None:
    """Over HTTP clickhouse-connect sends ``{db:Identifier}`` as the parameter ``param_db``: the text stays as written."""
    for statement in [*schema_ddl(), *cluster_ddl("main")]:
        sql, parameters = bind_query(statement, {"db": "consentflow"})
        assert sql == statement and parameters == {"param_db": "consentflow"}
        assert "consentflow" not in sql


@pytest.mark.parametrize("table", [*TABLES, BY_RECIPIENT, *LOG_TABLES], ids=lambda t: t.name)
def test_the_cluster_ddl_replicates_each_table_with_its_version_and_reads_it_through_a_distributed_table(table: Any) -> None:
    replicated, distributed = replicated_ddl(table, "main"), distributed_ddl(table, "main")
    assert f"{{db:Identifier}}.`{local_name(table)}` ON CLUSTER `main`" in replicated
    engine = re.search(r"ENGINE = ReplicatedReplacingMergeTree\(([^)]*)\)", replicated)
    assert engine is not None
    arguments = [a.strip() for a in engine.group(1).split(",")]
    assert arguments[:2] == ["'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'"]
    assert arguments[2:] == ([table.version] if table.version else [])
    assert f"ORDER BY ({', '.join(table.sorting_key)})" in replicated
    assert f"{{db:Identifier}}.`{table.name}` ON CLUSTER `main`" in distributed
    assert f"ENGINE = Distributed(`main`, {{db:Identifier}}, `{local_name(table)}`, {sharding_key(table)})" in distributed
    single = table.ddl()
    assert _columns(replicated) == _columns(distributed) == _columns(single)


def test_the_subjects_tables_are_sharded_by_subject() -> None:
    keyed = {t.name: sharding_key(t) for t in TABLES}
    assert {name for name, key in keyed.items() if key == "cityHash64(`subject_id`)"} == {
        t.name for t in TABLES if "subject_id" in t.column_names and t is not INCIDENTS
    }
    # An incident's rows name a subject only when one is told (a Nullable key cannot shard): by its sorting key.
    assert keyed["incidents"] == "cityHash64(`incident_id`, `occurred_at`, `event_id`)"
    assert keyed["recipients"] == "cityHash64(`recipient_id`, `since`, `event_id`)"
    # A proof reads one log: the consent log's tables are sharded by log, log_leaves too though it names subjects.
    assert {sharding_key(t) for t in LOG_TABLES} == {"cityHash64(`log_id`)"}


def test_the_cluster_statements_parse_and_every_one_runs_on_the_cluster(chdb_dsn: str) -> None:
    """ClickHouse's own parser (chDB's ``formatQuery``) reads each statement; none would run on one node only."""
    statements = cluster_ddl("main")
    client = connect(chdb_dsn)
    for statement in statements:
        (formatted,) = client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0]
        assert "ON CLUSTER main" in formatted
    views = [s for s in statements if "MATERIALIZED VIEW" in s]
    assert views == [
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db:Identifier}.`lineage_by_recipient_local_mv` ON CLUSTER `main` "
        "TO {db:Identifier}.`lineage_by_recipient_local` AS SELECT * FROM {db:Identifier}.`lineage_edges_local`"
    ]


def test_a_cluster_is_refused_on_chdb(chdb_dsn: str, database: str) -> None:
    with pytest.raises(ValueError, match="--cluster needs a ClickHouse server"):
        ClickHouseSink(chdb_dsn, database, cluster="main")


def test_the_overview_and_transfers_outside_the_eea_agree_on_a_recipient_of_unknown_country(chdb_dsn: str, database: str) -> None:
    """§7: "We keep your Personal Data in the European Union"; a transfer to a recipient the registry does not know
    cannot be shown to stay there, so both answers count it outside the EU/EEA."""
    sink = ClickHouseSink(chdb_dsn, database)
    processor: Processor = processor_with([CLOUDNEST, POSTWAVE])
    sent = [
        disclose(
            "cand-far", "shadow-broker", ["contact"], at(1), purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT
        ),
        disclose("cand-far", CLOUDNEST, ["contact"], at(2), purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT),
        disclose("cand-far", POSTWAVE, ["contact"], at(3), purpose=Purpose.SUPPORT, basis=LegalBasis.CONTRACT),
    ]
    run_events([(event.topic, event.record) for event in sent], processor, sink)
    listed = {(t.country, t.recipient_id) for t in transfers(sink.reader, outside_eea=True)}
    summed = {(row["country"], tuple(row["recipients"])) for row in overview(sink.reader)["transfers_outside_eea"]}
    assert listed == {("", "shadow-broker"), ("US", "postwave")}
    assert summed == {(country, (recipient,)) for country, recipient in listed}
