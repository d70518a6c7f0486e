"""The Kafka clients' own log lines during an outage: the first of a kind, then one line counting the rest.

While the broker is away, aiokafka (faust's consumer and producer) and librdkafka (the
project's clients, through ``consentflow.kafka.clients``) log every failed connect,
fetch and metadata request: hundreds of lines a minute that say one thing. A
``OncePerWindow`` filter on a handler lets the first record of a kind through, holds
back the rest of that kind for a window (60 s), and when the window ends logs one line
with the first message and how many were held back. A kind is the logger, the level
and the message with its numbers blanked (node ids, ports, milliseconds, client
numbers). The project's own line per outage (``consentflow.runtime.outage``) is not filtered.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Loggers whose records are filtered: faust's Kafka client, and librdkafka's lines (``consentflow.kafka.clients``).
CLIENT_LOGGERS = ("aiokafka", "librdkafka")
#: Seconds a kind of record is held back after its first one passes.
WINDOW = 60.0

_NUMBERS = re.compile(r"[0-9a-f]{8,}|\d+")  # member ids and hex too, or every client instance would be a new kind


@dataclass
class _Window:
    first: logging.LogRecord
    opened: float
    held: int = 0


class OncePerWindow(logging.Filter):
    """A filter for one handler: per kind of client record, the first in a window passes, the rest are counted.

    When a window ends with records held back, one summary line goes to the handler:
    the first message and "(N similar suppressed in 60 s)". Thread-safe: librdkafka's
    lines arrive from whichever thread polls its client.
    """

    def __init__(
        self,
        handler: logging.Handler,
        *,
        window: float = WINDOW,
        loggers: Iterable[str] = CLIENT_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.window = window
        self._prefixes = tuple(loggers)
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[tuple[str, int, str], _Window] = {}
        self._timer: threading.Timer | None = None

    def _filtered(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self._prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is emitted: any record of other loggers, a summary, or the first of its kind."""
        if getattr(record, "summary", False) or not self._filtered(record.name):
            return True
        kind = (record.name, record.levelno, _NUMBERS.sub("N", record.getMessage()))
        now = self._clock()
        with self._lock:
            ended = self._close(now)
            window = self._open.get(kind)
            if window is None:
                self._open[kind] = _Window(record, now)
            else:
                window.held += 1
                self._schedule(window.opened + self.window - now)
        self._emit(ended)
        return window is None

    def summarise(self) -> None:
        """Close the windows that have ended, logging one line for each that held records back."""
        with self._lock:
            self._timer = None
            ended = self._close(self._clock())
            if any(w.held for w in self._open.values()):
                self._schedule(min(w.opened for w in self._open.values() if w.held) + self.window - self._clock())
        self._emit(ended)

    def _close(self, now: float) -> list[_Window]:
        ended = [kind for kind, w in self._open.items() if now - w.opened >= self.window]
        return [w for w in (self._open.pop(kind) for kind in ended) if w.held]

    def _schedule(self, delay: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(max(delay, 0.0), self.summarise)
            self._timer.daemon = True
            self._timer.start()

    def _emit(self, ended: list[_Window]) -> None:
        for window in ended:
            first = window.first
            summary = logging.makeLogRecord(
                {
                    "name": first.name,
                    "levelno": first.levelno,
                    "levelname": first.levelname,
                    "msg": "%s (%d similar suppressed in %.0f s)",
                    "args": (first.getMessage(), window.held, self.window),
                    "summary": True,
                }
            )
            if summary.levelno >= self.handler.level:
                self.handler.handle(summary)


def quiet_client_logs(logger: logging.Logger | None = None, *, window: float = WINDOW) -> None:
    """Filter the Kafka clients' records on every handler of ``logger`` (default: the root logger) that has none yet.

    On handlers rather than on loggers: a logger's filter sees only the records of that very
    logger, not of its children (``aiokafka.conn``, ``aiokafka.consumer.fetcher``, ...).
    """
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, OncePerWindow) for f in handler.filters):
            handler.addFilter(OncePerWindow(handler, window=window))


__all__ = ["CLIENT_LOGGERS", "WINDOW", "OncePerWindow", "quiet_client_logs"]
