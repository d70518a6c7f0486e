"""The table model in ``sinks/``: one declaration per table, from which the single-node DDL, the cluster DDL, the
digests and the verification derive; the database given as a query parameter, never as text; and the EU/EEA filter
that the overview and ``transfers --outside-eea`` share."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

import pytest
from clickhouse_connect.driver.binding import bind_query

from consentflow.core.processor import Processor
from consentflow.policy.vocabulary import LegalBasis, Purpose
from consentflow.sinks.clickhouse import ClickHouseSink, connect
from consentflow.sinks.cluster import cluster_ddl, distributed_ddl, local_name, replicated_ddl, sharding_key
from consentflow.sinks.digest import compared_columns, table_digests
from consentflow.sinks.lineage_flows import processing_flows
from consentflow.sinks.lineage_queries import transfers
from consentflow.sinks.queries import overview
from consentflow.sinks.reading import open_tables
from consentflow.sinks.tables import BY_RECIPIENT, INCIDENTS, LINEAGE, LOG_TABLES, TABLES, schema_ddl
from consentflow.sinks.verification import first_difference
from consentflow.streams.embedded import run_events
from tests.support.builders import CLOUDNEST, POSTWAVE, at, disclose, processor_with
from tests.support.paths import DATA

#: The tables' columns and DDL as the sink made them before the table model (2026-12-06): the schemas are public.
BEFORE = json.loads((DATA / "table_schemas_2026-12-06.json").read_text())


def _columns(statement: str) -> list[str]:
    """The column definitions of a CREATE TABLE statement, in order."""
    body = statement[statement.index("(\n") + 2 : statement.index("\n)")]
    return [line.strip().rstrip(",") for line in body.splitlines()]


#: LineageEdge v2 (issue 23): the one column added to the lineage tables since, last, and the ALTER of each made before.
SERVICE = "`source_service` LowCardinality(String)"
ALTERS = {
    name: f"ALTER TABLE `consentflow`.`{name}` ADD COLUMN IF NOT EXISTS {SERVICE} DEFAULT ''"
    for name in ("lineage_edges", "lineage_by_recipient")
}


def _with_service(statement: str) -> str:
    """A lineage table's CREATE TABLE of the snapshot with LineageEdge v2's column last; any other statement as it is."""
    if not any(f"`consentflow`.`{name}` (" in statement for name in ALTERS):
        return statement
    return statement.replace("\n) ENGINE", f",\n  {SERVICE}\n) ENGINE")


#: Tables added since, each a statement of its own: the tables before keep their columns and DDL (issue 24).
ADDED = {"rights_requests", "incidents"}  # the requests and the breach register


def test_the_tables_columns_and_single_node_ddl_are_those_before_the_model() -> None:
    columns = {t.name: [list(c) for c in t.columns] for t in TABLES if t.name not in ADDED}
    assert columns.pop("lineage_edges") == [*BEFORE["columns"]["lineage_edges"], ["source_service", "LowCardinality(String)"]]
    assert columns == {name: c for name, c in BEFORE["columns"].items() if name != "lineage_edges"}
    statements = [s.replace("{db:Identifier}", "`consentflow`") for s in schema_ddl()]
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `consentflow`"
    added = [t.ddl().replace("{db:Identifier}", "`consentflow`") for t in TABLES if t.name in ADDED]
    assert all(statement in statements for statement in added)
    kept = [statement for statement in statements[1:] if statement not in added]
    expected = [_with_service(s) for s in BEFORE["ddl"]]
    # Each lineage table's ALTER right after its CREATE's place (after retention's for lineage_edges).
    expected.insert(
        expected.index(next(s for s in expected if "ALTER TABLE `consentflow`.`retention_actions`" in s)) + 1,
        ALTERS["lineage_edges"],
    )
    expected.insert(
        expected.index(next(s for s in expected if "`lineage_by_recipient` (" in s)) + 1, ALTERS["lineage_by_recipient"]
    )
    before = len(expected)
    assert kept[:before] == expected
    # The consent log's tables come after (issue 22): the statements before are unchanged.
    assert kept[before:] == [t.ddl().replace("{db:Identifier}", "`consentflow`") for t in LOG_TABLES]


def test_the_cluster_ddl_adds_the_service_to_each_lineage_table_made_before_local_and_distributed() -> None:
    alters = [s for s in cluster_ddl("main") if s.startswith("ALTER") and "source_service" in s]
    assert alters == [
        f"ALTER TABLE {{db:Identifier}}.`{name}` ON CLUSTER `main` ADD COLUMN IF NOT EXISTS {SERVICE} DEFAULT ''"
        for name in ("lineage_edges_local", "lineage_edges", "lineage_by_recipient_local", "lineage_by_recipient")
    ]


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


CONTRACT = Purpose.CONTRACT_INTRODUCTIONS, LegalBasis.CONTRACT


def _v1_database(dsn: str, database: str) -> Processor:
    """``database`` made with the snapshot's DDL and two edges written as LineageEdge v1; the processor that made them."""
    client = connect(dsn)
    client.command("CREATE DATABASE IF NOT EXISTS {db:Identifier}", parameters={"db": database})
    for statement in BEFORE["ddl"]:
        client.command(statement.replace("`consentflow`", "{db:Identifier}"), parameters={"db": database})
    for table in TABLES:  # the tables added since, which the readers require (the sink or `run` creates them)
        if table.name in ADDED:
            client.command(table.ddl(), parameters={"db": database})
    v1 = dataclasses.replace(LINEAGE, columns=LINEAGE.columns[:-1], added=())
    processor = processor_with([CLOUDNEST, POSTWAVE])
    before = [disclose(f"cand-{n}", CLOUDNEST, ["contact"], at(n), purpose=CONTRACT[0], basis=CONTRACT[1]) for n in (1, 2)]
    edges = [e for event in before for e in processor.process("disclosure", event.record).lineage]
    written_as_v1 = [{k: v for k, v in edge.items() if k != "source_service"} for edge in edges]
    client.insert_arrow(LINEAGE.name, v1.to_arrow(written_as_v1), database=database)
    return processor


def test_an_embedded_database_a_v1_run_made_gets_the_service_and_keeps_its_rows_and_its_digest(
    chdb_dsn: str, database: str
) -> None:
    """A database the snapshot's DDL made, holding edges of LineageEdge v1: read as it is (no DDL), its digest is the
    one the release before computed and its processings are named by source kind; the sink adds the column to both
    lineage tables, the rows stay (no service), the digest stays; edges written after carry their service."""
    processor = _v1_database(chdb_dsn, database)
    v1 = dataclasses.replace(LINEAGE, columns=LINEAGE.columns[:-1], added=())
    columns = ", ".join(f"`{c}`" for c in compared_columns(v1))
    ((rows, then),) = (
        connect(chdb_dsn)
        .query(
            f"SELECT count(), groupBitXor(cityHash64(tuple({columns}))) FROM {{db:Identifier}}.lineage_edges FINAL",
            parameters={"db": database},
        )
        .result_rows
    )
    digest = (int(rows), f"{int(then):016x}")
    unaltered = open_tables(chdb_dsn, database)
    assert "source_service" not in unaltered.columns(LINEAGE.name)
    assert table_digests(unaltered)["lineage_edges"] == digest
    assert [(f.purpose, f.source) for f in processing_flows(unaltered)] == [("contract_introductions", "disclosure")]

    sink = ClickHouseSink(chdb_dsn, database)
    kept = "SELECT subject_id, source_service FROM {db:Identifier}.`%s` FINAL ORDER BY subject_id"
    for table in (LINEAGE, BY_RECIPIENT):
        assert sink.reader.query(kept % table.name) == [("cand-1", ""), ("cand-2", "")]
    assert table_digests(sink.reader)["lineage_edges"] == digest
    assert processing_flows(sink.reader) == processing_flows(unaltered)

    later = disclose("cand-3", CLOUDNEST, ["contact"], at(3), purpose=CONTRACT[0], basis=CONTRACT[1])
    run_events([(later.topic, later.record)], processor, sink)
    for table in (LINEAGE, BY_RECIPIENT):  # the view copies the new column too
        assert sink.reader.query(kept % table.name) == [("cand-1", ""), ("cand-2", ""), ("cand-3", "matching")]
    assert [(f.source, f.counts.edges) for f in processing_flows(sink.reader)] == [("disclosure", 2), ("matching", 1)]


def test_verify_compares_a_v1_database_not_altered_yet_with_one_the_sink_altered(chdb_dsn: str) -> None:
    """Equal content, one table lacking the column: equal; a v2 edge on one side only: that edge is the difference."""
    left, right = f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}"
    _v1_database(chdb_dsn, left)
    processor = _v1_database(chdb_dsn, right)
    sink = ClickHouseSink(chdb_dsn, right)
    assert first_difference(open_tables(chdb_dsn, left), sink.reader) is None
    later = disclose("cand-3", CLOUDNEST, ["contact"], at(3), purpose=CONTRACT[0], basis=CONTRACT[1])
    run_events([(later.topic, later.record)], processor, sink)
    difference = first_difference(open_tables(chdb_dsn, left), sink.reader)
    assert difference is not None and difference.table == "lineage_edges"
    assert (difference.left, difference.right is not None and difference.right["source_service"]) == (None, "matching")


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
