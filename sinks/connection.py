"""Where the tables are: the DSN (``chdb:///path`` embedded, ``http(s)://`` a server) and the database name, checked;
one clickhouse-connect client per DSN per process, shared by the writer and the readers."""

from __future__ import annotations

import logging
import re
from typing import Any

import clickhouse_connect

from consentflow.runtime.redaction import redacted_dsn

DEFAULT_DSN = "chdb:///tmp/consentflow-chdb"
DEFAULT_DATABASE = "consentflow"
#: A database or table name: letters, digits and underscores, nothing to inject.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CLIENTS: dict[str, Any] = {}
# They log a warning at each failed HTTP attempt, then raise it: the Outage says it once per outage instead.
_ATTEMPT_LOGGERS = ("clickhouse_connect.driver._backend.http_sync", "urllib3.connectionpool")


def check_database_name(name: str) -> str:
    """A database name is an identifier: letters, digits and underscores, nothing to inject."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"database name {name!r} must be letters, digits and underscores (max 64), starting with a letter")
    return name


def check_dsn(dsn: str) -> str:
    """Accept ``chdb:///path`` and ``http(s)://host:port[...]``; anything else is refused with the reason."""
    if dsn.startswith("chdb://"):
        if not dsn.startswith("chdb:///") or len(dsn) <= len("chdb:///"):
            raise ValueError(f"chDB DSN {redacted_dsn(dsn)!r} needs an absolute path: chdb:///path/to/dir")
        return dsn
    if dsn.startswith(("http://", "https://")):
        return dsn
    raise ValueError(f"ClickHouse DSN {redacted_dsn(dsn)!r} must be chdb:///path (embedded) or http(s)://host:port (server)")


def connect(dsn: str) -> Any:
    """A clickhouse-connect client for ``dsn``; one per DSN per process (chDB allows one engine per process)."""
    dsn = check_dsn(dsn)
    client = _CLIENTS.get(dsn)
    if client is None:
        client = _CLIENTS[dsn] = _open(dsn)
    return client


def new_client(dsn: str) -> Any:
    """A client of ``dsn`` of its own, beside ``connect``'s (a chDB handle on the same engine, or an HTTP session), for
    a thread that asks while others do (``client_pool``); on chDB only the path this process opened, if any."""
    return _open(check_dsn(dsn))


def _open(dsn: str) -> Any:
    opened = next((other for other in _CLIENTS if other.startswith("chdb://")), None)
    if opened is not None and opened != dsn and dsn.startswith("chdb://"):
        # chDB would refuse too, but in words a retry loop takes for a connection failure and waits on forever.
        raise ValueError(
            f"chDB runs one engine per process: this process already opened {redacted_dsn(opened)}, so not {redacted_dsn(dsn)}"
        )
    if not dsn.startswith("chdb://"):
        for name in _ATTEMPT_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    return clickhouse_connect.get_client(dsn=dsn)
