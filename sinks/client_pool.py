"""Clients for readers that ask at once: a small pool of clickhouse-connect clients of one DSN.

``connect`` keeps one client per DSN per process, which a thread must hold alone
while it asks: a chDB handle runs one statement at a time, and a clickhouse-connect
HTTP client sends its session id, which a server lets run one query at a time.
A ``ClientPool`` lends each thread a client of its own instead, at most ``size``
at once (more threads wait their turn, first come first served): on chDB each is
a handle of its own on the process's one engine (concurrent reads on the one
engine give the serial answers), on a server a client with its own session.
A thread that already holds a client is lent the same one again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from consentflow.sinks.connection import new_client

#: Seconds a waiting thread waits before it looks again whether it may open a client itself.
_RECHECK = 0.5


class ClientPool:
    """At most ``size`` clients of ``dsn``, opened when first needed, each lent to one thread at a time."""

    def __init__(self, dsn: str, size: int, *, open_client: Callable[[str], Any] = new_client) -> None:
        if size < 1:
            raise ValueError(f"a pool of ClickHouse clients needs at least one, not {size}")
        self.dsn = dsn
        self.size = size
        self._open_client = open_client
        self._idle: queue.Queue[Any] = queue.Queue()
        self._opened = 0
        self._opening = threading.Lock()
        self._held = threading.local()

    @property
    def opened(self) -> int:
        """How many clients the pool has opened so far (never more than ``size``)."""
        return self._opened

    def held(self) -> Any | None:
        """The client this thread holds (inside ``lend``), or None."""
        return getattr(self._held, "client", None)

    @contextmanager
    def lend(self) -> Iterator[Any]:
        """A client for this thread alone until the block ends (the one it holds already, if any)."""
        held = self.held()
        if held is not None:
            yield held
            return
        client = self._take()
        self._held.client = client
        try:
            yield client
        finally:
            self._held.client = None
            self._idle.put(client)

    def _take(self) -> Any:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._opening:
                opening = self._opened < self.size
                if opening:
                    self._opened += 1  # counted before opening, so two threads never open past size
            if opening:
                return self._open(self.dsn)
            try:
                return self._idle.get(timeout=_RECHECK)  # Queue wakes its waiters in the order they came
            except queue.Empty:
                continue  # a client that failed to open gave its place back: this thread may open one

    def _open(self, dsn: str) -> Any:
        try:
            return self._open_client(dsn)
        except BaseException:
            with self._opening:
                self._opened -= 1  # a client that failed to open takes no place: the next thread tries again
            raise
