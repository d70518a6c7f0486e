"""A ClickHouse server going away, played over the real chDB engine (no server can run here), and a free port."""

from __future__ import annotations

import socket
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError


def refused(url: str) -> OperationalError:
    """What clickhouse-connect raises when no server listens at ``url`` (its message, shortened)."""
    return OperationalError(
        f"Error HTTPConnectionPool(host='clickhouse', port=8123): Max retries exceeded (Caused by NewConnectionError("
        f"'Failed to establish a new connection: [Errno 111] Connection refused')) executing HTTP request attempt 1 ({url})"
    )


class ClickHouseAway:
    """The real engine behind a server that is away for the next ``failures`` inserts (and statements, once
    ``statements_too``), raising ``error``: connection refused unless told otherwise."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failures = 0
        self.statements_too = False
        self.error: Exception = refused("http://clickhouse:8123")
        self.calls = 0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return getattr(self.real, name)(*args, **kwargs)

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("insert_arrow", *args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        if self.statements_too:
            return self._call("command", *args, **kwargs)
        return self.real.command(*args, **kwargs)

    def query(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.query(*args, **kwargs)


def free_port() -> int:
    """A port nothing listens on (taken from the kernel, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
