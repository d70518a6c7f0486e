"""The reader the DPO's queries and the audit ask through: parameterised SELECTs on one database, no DDL, no inserts.

Apart from the writer (``sinks.clickhouse.ClickHouseSink``), so a query cannot create
a table or wait out an outage: a reader answers now or says ClickHouse did not.
The database is the query parameter ``{db:Identifier}``, bound by ClickHouse itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from consentflow.sinks.connection import check_database_name, check_dsn, connect

#: What a query raises when ClickHouse refuses it or goes away mid-answer: the CLI and HTTP layers catch this name.
QueryFailed = ClickHouseError


class TableReader:
    """The pipeline's tables in ``database`` at ``dsn``, for reading."""

    def __init__(
        self,
        dsn: str,
        database: str,
        *,
        client_factory: Callable[[str], Any] = connect,
        statement_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.dsn = check_dsn(dsn)
        self.database = check_database_name(database)
        self._client_factory = client_factory
        # Held around each statement when threads share one ClickHouse (chDB is one engine per process).
        self._statement_lock: AbstractContextManager[Any] = statement_lock or nullcontext()

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, column_formats: Mapping[str, str] | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of a parameterised query (``{name:Type}`` placeholders); ``{db:Identifier}`` is this database.
        ``column_formats`` as clickhouse-connect takes them (``{"state": "bytes"}``: a String column as bytes)."""
        with self._statement_lock:
            result = self._client_factory(self.dsn).query(
                sql,
                parameters={"db": self.database, **(parameters or {})},
                column_formats=dict(column_formats) if column_formats else None,
            )
        return [tuple(row) for row in result.result_rows]

    def columns(self, table: str) -> frozenset[str]:
        """The columns ``table`` has in this database: one an older release made lacks the columns added since, until a
        writer opens the database (a reader runs no DDL)."""
        rows = self.query(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String}",
            {"d": self.database, "t": table},
        )
        return frozenset(str(name) for (name,) in rows)

    @contextmanager
    def blocks(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Iterator[Iterator[list[Any]]]:
        """The rows of a query a block at a time, never all at once (the ledger's chains, subject by subject)."""
        with self._client_factory(self.dsn).query_row_block_stream(
            sql, parameters={"db": self.database, **(parameters or {})}
        ) as stream:
            yield stream
