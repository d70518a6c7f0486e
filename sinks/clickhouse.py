"""The ClickHouse sink: batched columnar inserts, idempotent under redelivery, patient when ClickHouse is away.

The DSN chooses the engine: ``chdb:///path`` (the default, embedded: the real
ClickHouse engine in-process, one per process) or ``http(s)://host:port`` for a
server or cluster. The SQL is the same on both.

While ClickHouse is away every statement is retried with back-off (0.5 s doubling
to 30 s) through an ``Outage``: one line when it goes away, one when it is back.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from consentflow.runtime.outage import Outage
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.cluster import cluster_ddl, local_name
from consentflow.sinks.connection import (
    DEFAULT_DATABASE,
    DEFAULT_DSN,
    IDENTIFIER,
    check_database_name,
    check_dsn,
    connect,
)
from consentflow.sinks.reader import TableReader
from consentflow.sinks.tables import LOG_TABLES, TABLES, Table, schema_ddl

if TYPE_CHECKING:  # prometheus_client loads only in a process that reports metrics
    from consentflow.runtime.metrics import SinkMetrics

# The connection's names stay importable from here, where the modules before sinks/connection.py found them.
__all__ = [
    "CONVERT_EVERY",
    "DEFAULT_DATABASE",
    "DEFAULT_DSN",
    "ClickHouseSink",
    "RetryAbandoned",
    "SinkUnavailable",
    "TableBuffer",
    "check_database_name",
    "check_dsn",
    "clickhouse_outage",
    "connect",
]

log = logging.getLogger(__name__)

# ReplacingMergeTree would collapse duplicate keys within each inserted block; every reader already asks with
# FINAL (redelivery puts duplicates in different blocks anyway), so that pass only costs (bench/RESULTS.md §5).
_INSERT_SETTINGS = {"optimize_on_insert": 0}
# How often a back-off looks whether a stop was asked: a stopping sink must not sleep through its bound.
_STOP_CHECK_EVERY = 0.25


#: Records of one table converted to Arrow together as they arrive. A record just made is still in the CPU's
#: cache; read 50,000 records later, at the flush, it is not, and reading the columns weighed on the flush when the
#: conversion waited for it (bench/RESULTS.md §5).
CONVERT_EVERY = 1_024


class TableBuffer:
    """One table's rows waiting for ClickHouse: the records added since the last conversion, and Arrow tables of
    the records before them (``Table.to_arrow``: columns read from the records)."""

    __slots__ = ("converted", "records", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        self.records: list[Mapping[str, Any]] = []
        self.converted: list[Any] = []  # pyarrow.Table, in the order their records came

    def convert(self) -> None:
        """Convert the records held to Arrow. A record that cannot fill the table raises ``ValueError`` naming it;
        then nothing is converted and every record stays held."""
        if self.records:
            self.converted.append(self.table.to_arrow(self.records))
            self.records.clear()

    def arrow(self) -> Any:
        """Everything held, as one ``pyarrow.Table``, or None when nothing is."""
        self.convert()
        if not self.converted:
            return None
        if len(self.converted) > 1:
            import pyarrow

            self.converted[:] = [pyarrow.concat_tables(self.converted)]  # no copy: the converted batches stay as they are
        return self.converted[0]


class SinkUnavailable(RuntimeError):
    """ClickHouse could not be reached within the retry budget."""

    @classmethod
    def reaching(cls, dsn: str, exc: BaseException) -> SinkUnavailable:
        """ClickHouse at ``dsn`` (credentials removed) unreachable, with the first line of what the driver raised."""
        first_line = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        return cls(f"ClickHouse at {redacted_dsn(dsn)} unreachable: {first_line}")


class RetryAbandoned(SinkUnavailable):
    """A stop was asked while ClickHouse was away: the rows not written stay buffered, and nothing says they were."""


def clickhouse_outage(dsn: str, *, end_process: Callable[[int], object] | None = None) -> Outage:
    """ClickHouse at ``dsn`` as a sink's statements see it: connection trouble waited out with back-off from 0.5 s,
    logged once per outage. Any other error ends the process with ``end_process`` (71, one line), or without it is
    raised to the caller (a library call: the embedded runner, the HTTP API's replay)."""
    return Outage(f"ClickHouse at {redacted_dsn(dsn)}", first_backoff=0.5, end_process=end_process, transient=_transient)


class ClickHouseSink:
    """Buffers output records per table and inserts them in columnar batches.

    ``add`` buffers; ``flush`` inserts everything buffered and returns only once
    ClickHouse holds it, retrying with backoff while it is unreachable (drivers
    commit offsets only after ``flush`` returns). ``flush_due`` says when size or
    time calls for a flush. ``clickhouse_outage`` is ClickHouse as its statements
    see it (``.away``); pass ``outage`` to watch it while the schema is made.
    A retry gives up with ``RetryAbandoned`` once ``should_stop()``; it calls ``beat()`` as it waits.
    ``metrics``, when given, counts each table's inserted rows and times its insert (once per table and batch).
    """

    def __init__(
        self,
        dsn: str = DEFAULT_DSN,
        database: str = DEFAULT_DATABASE,
        *,
        max_rows: int = 50_000,
        max_seconds: float = 1.0,
        retry_for: float | None = None,
        client_factory: Callable[[str], Any] = connect,
        sleep: Callable[[float], None] | None = None,
        statement_lock: AbstractContextManager[Any] | None = None,
        outage: Outage | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        beat: Callable[[], None] = lambda: None,
        cluster: str | None = None,
        schema: list[str] | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.dsn = check_dsn(dsn)
        self.database = check_database_name(database)
        if cluster and self.dsn.startswith("chdb://"):
            raise ValueError("--cluster needs a ClickHouse server (http://...): chDB is one node")
        self.cluster = cluster  # None: one node's tables; else each table replicated per node, read through Distributed
        #: The statements that make the schema, its database the parameter ``{db:Identifier}`` (``schema``: a writer of
        #: some tables only, the notary's).
        self.schema = schema if schema is not None else cluster_ddl(cluster) if cluster else schema_ddl()
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.retry_for = retry_for  # None: retry forever (a worker pauses, it does not crash-loop)
        self._client_factory = client_factory
        self._sleep = sleep  # None: time.sleep in slices, watching should_stop; a test's clock takes whole back-offs
        self._should_stop = should_stop
        self._beat = beat  # at each slice of a back-off: a health probe's heartbeat, a sink waiting on purpose is live
        self.clickhouse_outage = outage or clickhouse_outage(self.dsn)
        # Held around each statement when threads share one ClickHouse (the HTTP API's replay beside its readers:
        # chDB is one engine per process), so others may query between this sink's inserts.
        self._statement_lock: AbstractContextManager[Any] = statement_lock or nullcontext()
        self._client: Any = None
        self._buffers: dict[str, TableBuffer] = {t.name: TableBuffer(t) for t in TABLES}
        self._buffer_of_topic = {t.topic: self._buffers[t.name] for t in TABLES}
        self._rows = 0
        self._since = time.monotonic()
        self.inserted = 0
        self._writer: ThreadPoolExecutor | None = None  # flush_behind's thread, started with its first insert
        self._behind: tuple[Future[int], list[tuple[Table, Any]]] | None = None
        self.metrics = metrics
        self._with_retry("creating the schema", self._ensure_schema)
        for table in TABLES:  # pyarrow (and the pandas it looks for) load here, not in the middle of the first batch
            table.to_arrow([])

    # -- schema ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The connected client (connecting on first use)."""
        if self._client is None:
            self._client = self._client_factory(self.dsn)
        return self._client

    def _ensure_schema(self) -> None:
        for statement in self.schema:
            self.client.command(statement, parameters={"db": self.database})
        self._check_sorting_keys()

    def _check_sorting_keys(self) -> None:
        """Refuse tables an older version made with another sorting key: ``CREATE ... IF NOT EXISTS`` keeps them as
        they are, and the key decides which rows ``FINAL`` collapses (the ledger's holds the entry hash, so a fork
        stays visible). ClickHouse cannot re-key a table in place: the README says how to migrate."""
        rows = self.client.query(
            "SELECT name, sorting_key FROM system.tables WHERE database = {database:String}",
            parameters={"database": self.database},
        ).result_rows
        stored = {str(name): str(key) for name, key in rows}
        for table in (*TABLES, *LOG_TABLES):
            expected = ", ".join(table.sorting_key)
            found = stored.get(local_name(table) if self.cluster else table.name)  # a Distributed table has no key
            if found is not None and _key_columns(found) != list(table.sorting_key):
                raise ValueError(
                    f"table {self.database}.{table.name} is sorted by ({found}), this version needs ({expected}): "
                    "an older version made it; replay into a fresh database (README, migration notes)"
                )

    # -- writing -----------------------------------------------------------------------

    def add(self, topic: str, record: Mapping[str, Any]) -> None:
        """Buffer one output record of ``topic`` (short name)."""
        buffer = self._buffer_of_topic[topic]  # KeyError for a topic that fills no table
        records = buffer.records
        records.append(record)
        self._rows += 1
        if len(records) >= CONVERT_EVERY:
            buffer.convert()

    def add_all(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Buffer ``(topic, record)`` pairs."""
        for topic, record in items:
            self.add(topic, record)

    @property
    def pending(self) -> int:
        """Rows buffered or being inserted behind, and not yet in ClickHouse."""
        in_flight = 0 if self._behind is None else sum(arrow.num_rows for _, arrow in list(self._behind[1]))
        return self._rows + in_flight

    def flush_due(self) -> bool:
        """Whether the buffer is big or old enough to flush."""
        return self._rows >= self.max_rows or (self._rows > 0 and time.monotonic() - self._since >= self.max_seconds)

    def flush(self) -> int:
        """Insert every buffered row; returns only once ClickHouse has them all (or raises ``SinkUnavailable``), with
        how many rows reached it in this call (an insert ``flush_behind`` started included). Rows that did not reach
        it stay buffered."""
        behind = self._wait_behind()
        taken = self._take_all()
        try:
            written = self._insert_all(taken)
        except BaseException:
            self._put_back(taken)
            raise
        self.inserted += written
        return behind + written

    def flush_behind(self) -> None:
        """Start inserting every buffered row on the sink's writer thread, and return at once.

        For a driver with no offsets to commit once ClickHouse holds a batch (the embedded runner):
        its processing goes on while ClickHouse inserts, as chDB releases the GIL while it works.
        One insert runs behind at a time: this call, like ``flush``, first waits for the one before,
        and raises what it raised, with the rows it did not insert back in the buffers.
        """
        self._wait_behind()
        taken = self._take_all()
        if taken:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-insert")
            self._behind = (self._writer.submit(self._insert_all, taken), taken)

    def _take_all(self) -> list[tuple[Table, Any]]:
        """Every buffered row, out of the buffers, as one Arrow table per table (none taken if one cannot convert)."""
        arrows = [(table, self._buffers[table.name].arrow()) for table in TABLES]
        taken = [(table, arrow) for table, arrow in arrows if arrow is not None]
        for table, _ in taken:
            self._buffers[table.name].converted.clear()
        self._rows = 0
        self._since = time.monotonic()
        return taken

    def _insert_all(self, taken: list[tuple[Table, Any]]) -> int:
        """Insert ``taken`` in order, each dropped from it once ClickHouse holds it; how many rows."""
        written = 0
        while taken:
            table, arrow = taken[0]
            started = time.perf_counter()
            self._with_retry(f"inserting into {table.name}", functools.partial(self._insert, table, arrow))
            if self.metrics is not None:
                self.metrics.inserted(table.name, arrow.num_rows, time.perf_counter() - started)
            written += arrow.num_rows
            del taken[0]
        return written

    def _put_back(self, taken: list[tuple[Table, Any]]) -> None:
        """Rows taken and not inserted, back in front of their buffers: nothing is lost."""
        for table, arrow in taken:
            self._buffers[table.name].converted.insert(0, arrow)
            self._rows += arrow.num_rows

    def _wait_behind(self) -> int:
        """Wait for the insert ``flush_behind`` started, if any; how many rows it wrote."""
        if self._behind is None:
            return 0
        future, taken = self._behind
        self._behind = None
        try:
            written: int = future.result()
        except BaseException:
            self._put_back(taken)
            raise
        self.inserted += written
        return written

    def _insert(self, table: Table, arrow: Any) -> None:
        self.client.insert_arrow(table.name, arrow, database=self.database, settings=_INSERT_SETTINGS)

    def _with_retry(self, doing: str, action: Callable[[], None]) -> None:
        """``action``, retried while ClickHouse is away until it goes through, the budget (``retry_for``) is spent
        (``SinkUnavailable``) or a stop is asked (``RetryAbandoned``). Any other error ends the process or is
        raised, as ``clickhouse_outage`` says."""
        outage = self.clickhouse_outage
        waited = 0.0
        while True:
            try:
                with self._statement_lock:
                    action()
            except Exception as exc:
                if not outage.transient(exc):
                    outage.failed(exc, doing)  # one line and the process ends, or (a library's call) raised again
                    raise
                if self.retry_for is not None and waited >= self.retry_for:
                    raise SinkUnavailable(
                        f"ClickHouse at {redacted_dsn(self.dsn)} unreachable for {waited:.0f} s: {exc}"
                    ) from exc
                outage.failed(exc, doing)  # logged when the outage starts, not at each retry
                self._client = None  # reconnect on the next try
                if self._stop_asked_within(outage.backoff):
                    raise RetryAbandoned(f"stop asked while ClickHouse at {redacted_dsn(self.dsn)} is away") from exc
                waited += outage.backoff
            else:
                outage.succeeded()
                return

    def _stop_asked_within(self, seconds: float) -> bool:
        """Sleep ``seconds`` of back-off, or until a stop is asked; whether one was."""
        if self._sleep is not None:
            self._sleep(seconds)
            return self._should_stop()
        deadline = time.monotonic() + seconds
        while not self._should_stop():
            self._beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, _STOP_CHECK_EVERY))
        return True

    # -- reading back what it wrote ---------------------------------------------------

    @property
    def reader(self) -> TableReader:
        """A reader of this sink's database on the sink's own connection and statement lock: for a driver that reads
        back what it wrote (the embedded runner's saved states and overview)."""
        return TableReader(self.dsn, self.database, client_factory=lambda _dsn: self.client, statement_lock=self._statement_lock)

    # -- tables beside the outputs (the embedded runner's saved states) ------------------

    def command(self, statement: str) -> None:
        """Run a statement whose identifiers come from our modules (DDL), retrying while ClickHouse is unreachable;
        ``{db:Identifier}`` is this sink's database."""
        self._with_retry("running a statement", lambda: self.client.command(statement, parameters={"db": self.database}))

    def insert_now(self, table_name: str, arrow: Any) -> None:
        """Insert a ``pyarrow.Table`` into ``table_name`` of this database now, retrying like ``flush``: for tables
        that are not outputs, which their owner creates with ``command``."""
        if not IDENTIFIER.match(table_name):
            raise ValueError(f"table name {table_name!r} is not an identifier")
        self._with_retry(
            f"inserting into {table_name}",
            lambda: self.client.insert_arrow(table_name, arrow, database=self.database, settings=_INSERT_SETTINGS),
        )


def _key_columns(sorting_key: str) -> list[str]:
    """The columns of a sorting key as ClickHouse or our DDL write it (``a, b``; one column may come as ``(a)``)."""
    return [name.strip(" ()`") for name in sorting_key.split(",")]


def _transient(exc: BaseException) -> bool:
    """Connection trouble is worth retrying; a bad statement or bad data is not."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    if isinstance(exc, OperationalError | ConnectionError | TimeoutError | OSError):
        return True
    if isinstance(exc, DatabaseError):
        text = str(exc).lower()
        return any(word in text for word in ("connection", "timeout", "timed out", "unavailable", "refused", "reset"))
    return False
