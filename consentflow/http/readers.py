"""The served tables for many requests at once: a client of its own for each request, and the tables' check kept a moment.

A request borrows a client from a small ``ClientPool`` for as long as it asks
(the pool's size is ``serve --readers``), so requests ask ClickHouse side by side
instead of queueing behind one lock (``bench/api_load.py``; figures in
bench/RESULTS.md). Before answering, a reader checks that the database holds the
pipeline's tables (``open_tables``); once found, that check is taken as true for
``RECHECK_SECONDS`` (or until a statement fails), so most requests spend their
statements on the question.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from consentflow.sinks.clickhouse import SinkUnavailable
from consentflow.sinks.client_pool import ClientPool
from consentflow.sinks.connection import new_client
from consentflow.sinks.reader import QueryFailed, TableReader
from consentflow.sinks.reading import open_tables, require_chdb_data

#: Seconds the tables of a database, once found, are taken as there without asking again.
RECHECK_SECONDS = 5.0


class Readers:
    """Readers of the served ClickHouse: at most ``size`` asking at once, each on its own client."""

    def __init__(self, dsn: str, database: str, size: int, *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.dsn = dsn
        self.database = database
        self.pool = ClientPool(dsn, size, open_client=_connect)
        self._recheck_seconds = recheck_seconds
        self._found: dict[str, float] = {}  # database: when its tables were last found (monotonic seconds)
        self._finding = threading.Lock()

    @contextmanager
    def tables(self, database: str | None = None) -> Iterator[TableReader]:
        """The pipeline's tables in ``database`` (default: the served one) on a client this thread holds until the
        block ends; raises what ``open_tables`` raises."""
        if self.pool.opened == 0:
            require_chdb_data(self.dsn)  # before a client opens the path, which would create it
        name = database or self.database
        with self.pool.lend() as client:
            try:
                yield self._open(client, name)
            except QueryFailed:
                with self._finding:
                    self._found.pop(name, None)  # a table may have gone: the next request checks again
                raise

    def beside(self, database: str) -> TableReader:
        """The pipeline's tables in another ``database``, on the client this thread holds inside ``tables``."""
        client = self.pool.held()
        if client is None:
            raise RuntimeError("Readers.beside is for a thread inside Readers.tables: it holds no client")
        return self._open(client, database)

    def _open(self, client: Any, database: str) -> TableReader:
        def lent(_dsn: str) -> Any:
            return client

        now = time.monotonic()
        with self._finding:
            found = self._found.get(database)
        if found is not None and now - found < self._recheck_seconds:
            return TableReader(self.dsn, database, client_factory=lent)
        reader = open_tables(self.dsn, database, client_factory=lent)
        with self._finding:
            self._found[database] = now
        return reader


def _connect(dsn: str) -> Any:
    """A client of its own for the pool; failing to open one is ClickHouse being unreachable, as ``open_tables`` says."""
    try:
        return new_client(dsn)
    except Exception as exc:
        raise SinkUnavailable.reaching(dsn, exc) from exc
