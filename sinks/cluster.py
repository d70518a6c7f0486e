"""The tables on a ClickHouse cluster, from the same model as one node's: the way past one machine.

Each table becomes a ``<name>_local`` table on every node (``ON CLUSTER``), a
``ReplicatedReplacingMergeTree`` with the table's version column, and a
``Distributed`` table of the table's own name over them, sharded by a hash of the
subject: every row of a subject, and so every row ``FINAL`` must collapse, lands on
one shard. Writers insert into and readers query the ``Distributed`` tables, by the
names one node uses, so the queries do not change. chDB keeps the single-node DDL.
"""

from __future__ import annotations

import re

from consentflow.sinks.tables import (
    BY_RECIPIENT,
    LINEAGE,
    LOG_TABLES,
    RETENTION,
    TABLES,
    Table,
    added_columns,
    by_recipient_view,
    on_cluster,
    retention_v2,
)

#: Where each replicated table keeps its replication log: ClickHouse's macros, filled in on each node.
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"
LOCAL_SUFFIX = "_local"
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


def check_cluster_name(name: str) -> str:
    """A cluster name as ``remote_servers`` spells it: letters, digits, ``_``, ``.``, ``-``, nothing to inject."""
    if not _CLUSTER_NAME.match(name):
        raise ValueError(f"cluster name {name!r} must be letters, digits, '_', '.' or '-', starting with a letter")
    return name


def local_name(table: Table) -> str:
    """The name of a table's replicated part on each node."""
    return table.name + LOCAL_SUFFIX


def sharding_key(table: Table) -> str:
    """By log for the consent log's tables (a proof reads one log); by subject where every row has one; else by its
    sorting key, so rows ``FINAL`` collapses share a shard (the incidents: a subject only on a notification's rows)."""
    if "log_id" in table.column_names:
        columns: tuple[str, ...] = ("log_id",)
    else:
        columns = ("subject_id",) if dict(table.columns).get("subject_id") == "String" else table.sorting_key
    return f"cityHash64({', '.join(f'`{c}`' for c in columns)})"


def replicated_ddl(table: Table, cluster: str) -> str:
    """The ``<name>_local`` table on every node of ``cluster``, replicated, keeping the table's version column."""
    return (
        f"CREATE TABLE IF NOT EXISTS {{db:Identifier}}.`{local_name(table)}`{on_cluster(cluster)} "
        f"(\n  {table.column_list}\n) {table.engine(replicated=(REPLICA_PATH, REPLICA_NAME))}"
    )


def distributed_ddl(table: Table, cluster: str) -> str:
    """The table of the table's own name on every node: reads and inserts spread over the shards' local tables."""
    return (
        f"CREATE TABLE IF NOT EXISTS {{db:Identifier}}.`{table.name}`{on_cluster(cluster)} (\n  {table.column_list}\n) "
        f"ENGINE = Distributed(`{cluster}`, {{db:Identifier}}, `{local_name(table)}`, {sharding_key(table)})"
    )


def cluster_ddl(cluster: str) -> list[str]:
    """Every statement a writer runs on ``cluster``, in order, its database the parameter ``{db:Identifier}``.

    The by-recipient copy of the lineage is filled on each node from that node's lineage edges, so it is sharded
    by subject too; the breach query reads it through its ``Distributed`` table.
    """
    cluster = check_cluster_name(cluster)
    statements = [f"CREATE DATABASE IF NOT EXISTS {{db:Identifier}}{on_cluster(cluster)}"]
    for table in TABLES:
        statements += [replicated_ddl(table, cluster), distributed_ddl(table, cluster)]
    statements += [
        retention_v2(local_name(RETENTION), cluster),
        retention_v2(RETENTION.name, cluster),
        added_columns(LINEAGE, local_name(LINEAGE), cluster),
        added_columns(LINEAGE, LINEAGE.name, cluster),
        replicated_ddl(BY_RECIPIENT, cluster),
        distributed_ddl(BY_RECIPIENT, cluster),
        added_columns(BY_RECIPIENT, local_name(BY_RECIPIENT), cluster),
        added_columns(BY_RECIPIENT, BY_RECIPIENT.name, cluster),
        by_recipient_view(local_name(LINEAGE), local_name(BY_RECIPIENT), cluster),
    ]
    for table in LOG_TABLES:
        statements += [replicated_ddl(table, cluster), distributed_ddl(table, cluster)]
    return statements
