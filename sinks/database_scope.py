"""Which databases replay may write into and verify may compare with: the pipeline's own, never ClickHouse's or another's.

A replay creates the pipeline's tables in the database it is given, and an
auditor names that database: without a check, ``system`` or a database another
application owns would receive the eight tables (issue 21). ``check_pipeline_database``
is the one check, run at the edge by ``consentflow replay --database``,
``consentflow verify --against-database`` and their HTTP routes: the name is an
identifier (``connection.IDENTIFIER``), not one of ClickHouse's reserved
databases, and the database holds no table but the pipeline's (a database
that does not exist yet holds none).
"""

from __future__ import annotations

from consentflow.sinks.cluster import local_name
from consentflow.sinks.connection import check_database_name, connect
from consentflow.sinks.subject_states import RUNS, STATES
from consentflow.sinks.tables import BY_RECIPIENT, LOG_TABLES, TABLES

#: ClickHouse's own databases, refused whatever their case (``SYSTEM`` is a typo for ``system``, not a new database).
RESERVED_DATABASES = frozenset({"system", "information_schema", "default", "_temporary_and_external_tables"})
_MODELLED = (*TABLES, BY_RECIPIENT, *LOG_TABLES)  # the consent log's tables (issue 22) are the pipeline's too
#: Every table and view the pipeline creates, on one node or on a cluster (``sinks.cluster``).
PIPELINE_TABLES = frozenset(
    {t.name for t in _MODELLED}
    | {local_name(t) for t in _MODELLED}
    | {f"{BY_RECIPIENT.name}_mv", f"{local_name(BY_RECIPIENT)}_mv", STATES, RUNS}
)
#: How many foreign tables a refusal names.
_NAMED = 3


class DatabaseRefused(ValueError):
    """A database replay or verify may not use; the message names it and says why, on one line."""


def check_database_scope(name: str) -> str:
    """``name`` if it is an identifier and not a reserved database, without asking ClickHouse; else ``DatabaseRefused``."""
    try:
        check_database_name(name)
    except ValueError as exc:
        raise DatabaseRefused(str(exc)) from None
    if name.lower() in RESERVED_DATABASES:
        raise DatabaseRefused(f"database {name} is reserved to ClickHouse; name a database of the pipeline's own")
    return name


def check_pipeline_database(dsn: str, name: str) -> str:
    """``name`` if replay may fill it and verify may compare with it: ``check_database_scope``, and every table it holds
    is the pipeline's; else ``DatabaseRefused``. ``SinkUnavailable`` when ClickHouse does not answer."""
    check_database_scope(name)
    foreign = sorted(set(_table_names(dsn, name)) - PIPELINE_TABLES)
    if foreign:
        shown = ", ".join(foreign[:_NAMED]) + (f" and {len(foreign) - _NAMED} more" if len(foreign) > _NAMED else "")
        raise DatabaseRefused(
            f"database {name} holds tables that are not the pipeline's ({shown}); name a database of the pipeline's own"
        )
    return name


def _table_names(dsn: str, name: str) -> list[str]:
    """The tables and views of database ``name`` (none when it does not exist)."""
    from consentflow.sinks.clickhouse import SinkUnavailable

    try:
        rows = connect(dsn).query(
            "SELECT name FROM system.tables WHERE database = {database:String}", parameters={"database": name}
        )
    except Exception as exc:  # whatever the driver raises, the answer is that ClickHouse is not there
        raise SinkUnavailable.reaching(dsn, exc) from exc
    return [str(row[0]) for row in rows.result_rows]
