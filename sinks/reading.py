"""Reading the tables for the DPO: open only what exists, answer only about ids the tables know.

Writers create the schema (``ClickHouseSink``); a reader (``TableReader``) must not: a mistyped
database or chDB path would otherwise answer "nobody" from fresh empty tables.
An id no table mentions is an unknown id, not an empty answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.clickhouse import SinkUnavailable, check_database_name, check_dsn, connect
from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import LINEAGE_BY_RECIPIENT, TABLES


class TablesMissing(LookupError):
    """The DSN holds no consentflow tables under that database name."""


class UnknownId(LookupError):
    """No table mentions the subject or recipient asked about."""


def open_tables(dsn: str, database: str, *, client_factory: Callable[[str], Any] = connect) -> TableReader:
    """The pipeline's tables at ``dsn`` for reading.

    Raises ``ValueError`` for a malformed DSN or database name, ``SinkUnavailable``
    when ClickHouse does not answer (no retries: a reader is waiting), and
    ``TablesMissing`` when there is nothing to read.
    """
    check_dsn(dsn)
    check_database_name(database)
    require_chdb_data(dsn)
    expected = sorted({t.name for t in TABLES} | {LINEAGE_BY_RECIPIENT})
    try:
        client = client_factory(dsn)
        found = {
            str(name)
            for (name,) in client.query(
                "SELECT name FROM system.tables WHERE database = {d:String} AND name IN {names:Array(String)}",
                parameters={"d": database, "names": expected},
            ).result_rows
        }
    except Exception as exc:  # any failure to reach ClickHouse is reported as such, in one line
        raise SinkUnavailable.reaching(dsn, exc) from exc
    if not found:
        raise TablesMissing(
            f"database {database!r} at {redacted_dsn(dsn)} lacks the consentflow tables (fill it with `consentflow run` or `consentflow sink`)"
        )
    if missing := sorted(set(expected) - found):
        # A database an earlier release made: the tables added since are created when a writer opens it.
        raise TablesMissing(
            f"database {database!r} at {redacted_dsn(dsn)} lacks the table(s) {', '.join(missing)} of this release "
            "(made by an earlier one: `consentflow sink` or `consentflow run` creates them when it opens the database)"
        )
    # No DDL at all, so a read-only ClickHouse user can ask too (the tables were checked above).
    return TableReader(dsn, database, client_factory=client_factory)


def require_chdb_data(dsn: str) -> None:
    """Raise ``TablesMissing`` for a chDB path that does not exist: opening it would create it, empty."""
    if dsn.startswith("chdb:///") and not Path(dsn[len("chdb://") :]).is_dir():
        raise TablesMissing(f"no chDB data at {dsn[len('chdb://') :]} (fill it with `consentflow run` or `consentflow sink`)")


def subject_known(reader: TableReader, subject_id: str) -> bool:
    """Whether any table mentions the subject (every table is sorted by subject first: a few granules each)."""
    sql = " UNION ALL ".join(
        f"(SELECT 1 FROM {{db:Identifier}}.`{table}` WHERE subject_id = {{s:String}} LIMIT 1)"
        for table in ("ledger", "lineage_edges", "violations", "retention_actions", "erasure_notices", "subject_holdings")
    )
    return bool(reader.query(f"SELECT count() FROM ({sql})", {"s": subject_id})[0][0])


def recipient_known(reader: TableReader, recipient_id: str) -> bool:
    """Whether the registry or the lineage names the recipient (an unregistered one can still have received data)."""
    sql = (
        "SELECT count() FROM ("
        "(SELECT 1 FROM {db:Identifier}.recipients WHERE recipient_id = {r:String} LIMIT 1) UNION ALL "
        f"(SELECT 1 FROM {{db:Identifier}}.`{LINEAGE_BY_RECIPIENT}` WHERE recipient_id = {{r:String}} LIMIT 1))"
    )
    return bool(reader.query(sql, {"r": recipient_id})[0][0])


def require_subject(reader: TableReader, subject_id: str) -> None:
    """Raise ``UnknownId`` unless a table mentions the subject."""
    if not subject_known(reader, subject_id):
        raise UnknownId(
            f"unknown subject {subject_id!r}: no ledger entry, lineage edge, violation, retention action, notice or holdings"
        )


def require_recipient(reader: TableReader, recipient_id: str) -> None:
    """Raise ``UnknownId`` unless the registry or the lineage names the recipient."""
    if not recipient_known(reader, recipient_id):
        raise UnknownId(f"unknown recipient {recipient_id!r}: not in the registry and never received data")


def utc(value: datetime) -> datetime:
    """A time read from a DateTime64(6, 'UTC') column, as the UTC instant it is (the client hands it back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    """``utc`` of a time read from a ``Nullable(DateTime64(6, 'UTC'))`` column; None stays None."""
    return None if value is None else utc(value)
