"""Calls to the broker outside faust's own loop: which errors are transient, and one log line per outage.

faust retries its own fetches and commits; the worker's timers and callbacks
(the read-back of quiet partitions, the committed offsets on assignment) call
the broker through their own confluent-kafka clients, and an error there used
to crash the app. Every such caller asks ``Outage`` before a call
(``due``), reports the result (``failed`` / ``succeeded``) and skips to a later
tick while the broker is away, with doubling back-off. An outage is logged
twice whatever its length: when it starts and when it ends, with its duration.
A client's own report of a failure (librdkafka's error callback) is a sign to
check, not a failure: librdkafka serves it at the next ``consume``, perhaps
after a check that found the broker back, so only a check that fails starts
an outage (``reported``, ``check_due``).
An error that is not transient (a bug, a refused request) ends the process
with one line naming it, so a supervisor restarts it rather than a worker
sitting on a loop that can never succeed [DESIGN: processes never hang].
The sink's calls to ClickHouse go through an ``Outage`` too, with ClickHouse's
own test of what is transient (``consentflow.sinks.clickhouse``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka.errors import KafkaError as AIOKafkaError
from confluent_kafka import KafkaError, KafkaException

log = logging.getLogger("consentflow.outage")  # the logger name from before the layout (issue 20): log filters know it

T = TypeVar("T")

#: Exit status of a process that met an error it cannot wait out (EX_SOFTWARE is 70, taken by a failed batch).
EXIT_NOT_TRANSIENT = 71

# librdkafka's codes for a broker away, restarting or handing leadership over; all pass with time.
_TRANSIENT_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError._RESOLVE,
        KafkaError._DESTROY,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.REPLICA_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.UNKNOWN_TOPIC_OR_PART,  # a restarted broker serves metadata before it has loaded every log
        KafkaError._UNKNOWN_PARTITION,  # the same, seen by librdkafka's metadata cache (bench/RESULTS.md §9)
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.KAFKA_STORAGE_ERROR,
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the kind of error a broker outage or restart raises, which a later retry outlives.

    A ``KafkaException`` is transient when its code says the broker is away or
    moving leadership, or librdkafka marks it retriable; so is an error aiokafka
    (faust's client) marks retriable; a timeout or a refused or reset connection
    is transient; anything else is not.
    """
    if isinstance(exc, AIOKafkaError):
        return bool(exc.retriable)
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        if not isinstance(error, KafkaError):
            return False
        return error.code() in _TRANSIENT_CODES or bool(error.retriable())
    return isinstance(exc, (TimeoutError, ConnectionError))


def describe(exc: BaseException) -> str:
    """``exc`` in one line: librdkafka's code name and text for a ``KafkaException``, else type and the message's
    first line (a ClickHouse server's error goes on for a stack trace)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error = exc.args[0]
        return f"{error.name()}: {error.str()}"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class Outage:
    """One dependency (e.g. "Kafka at 127.0.0.1:9092") as its callers see it: up, or away since when.

    ``transient`` says which errors an outage raises (the broker's by default). ``end_process`` ends the process
    on any other error; None leaves the error to the caller, for a library call in a process that is not ours
    to end (the embedded runner, the HTTP API's replay). Callers in several threads may share one (the sink's loop
    and its broker check): an outage still starts and ends once.
    """

    def __init__(
        self,
        what: str,
        *,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        end_process: Callable[[int], object] | None = os._exit,  # not SystemExit: faust catches it in a timer
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self.what = what
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.transient = transient
        self._clock = clock
        self._exit = end_process
        self.since: float | None = None  # when the current outage started; None while up
        self.failures = 0  # consecutive failed calls in the current outage
        self.backoff = 0.0  # seconds from the last failed call to the next try
        self._next_try = 0.0
        self._sign: tuple[BaseException, str] | None = None  # a report while up, waiting for a check to confirm it
        self._lock = threading.Lock()  # uncontended on one event loop; two threads must not both log the start

    @property
    def away(self) -> bool:
        """Whether the last call failed with a transient error."""
        return self.since is not None

    def due(self) -> bool:
        """Whether a caller should try now: always while up; during an outage, once its back-off has passed."""
        return self.since is None or self._clock() >= self._next_try

    def check_due(self) -> bool:
        """Whether a caller that only checks the dependency (a probe, no work of its own) should check now: a
        report waits for a check to confirm it, or an outage's back-off has passed."""
        return self._sign is not None or (self.since is not None and self._clock() >= self._next_try)

    def failed(self, exc: BaseException, doing: str) -> None:
        """A call made while ``doing`` raised ``exc``: a transient error starts or extends the outage (logged only
        when it starts); any other ends the process with one line naming it and a non-zero exit (or, without
        ``end_process``, is raised again)."""
        if not self.transient(exc):
            if self._exit is None:
                raise exc
            log.critical("%s failed while %s, not transiently: %s; exiting", self.what, doing, describe(exc))
            logging.shutdown()
            self._exit(EXIT_NOT_TRANSIENT)
            return
        with self._lock:
            now = self._clock()
            if self.since is None:
                first, doing = self._sign or (exc, doing)  # a report this failure confirms was the first sign
                self._sign = None
                self.since = now
                log.warning("%s not answering while %s (%s); retrying with back-off", self.what, doing, describe(first))
            self.failures += 1
            self.backoff = min(self.max_backoff, self.first_backoff * 2 ** (self.failures - 1))
            self._next_try = now + self.backoff

    def reported(self, exc: BaseException, doing: str) -> None:
        """A failure a client reported on its own (an error callback at each reconnection), not a call made when
        ``due``. Its client may deliver it late, after a call that found the dependency back (librdkafka queues it
        until the next ``consume``): while up it starts no outage but makes ``check_due`` true, and the check's
        failure starts the outage, its line naming this report; a check that succeeds drops it. During an outage
        it is counted but puts the next try off no further, or reports many times a second would keep the try
        that notices the end from ever coming due. An error no retry outlives is ``failed`` at once."""
        if not self.transient(exc):
            self.failed(exc, doing)
            return
        with self._lock:
            if self.since is not None:
                self.failures += 1
            elif self._sign is None:
                self._sign = (exc, doing)

    async def attempt(self, doing: str, call: Callable[..., T], *args: Any) -> T | None:
        """``call(*args)`` in a thread, unless an outage's back-off is still running; None when skipped or failed
        transiently (the caller tries again on its next tick). A blocking client call never stalls the event loop."""
        if not self.due():
            return None
        try:
            result = await asyncio.to_thread(call, *args)
        except Exception as exc:  # noqa: BLE001 -- failed() decides: wait out a transient error, exit on any other
            self.failed(exc, doing)
            return None
        self.succeeded()
        return result

    def succeeded(self) -> None:
        """A call went through: ends the outage, if any, with one line giving its duration."""
        with self._lock:
            self._sign = None  # a report older than this success, or one the dependency has outlived
            if self.since is None:
                return
            log.warning("%s back after %.1f s (%d failed attempts)", self.what, self._clock() - self.since, self.failures)
            self.since = None
            self.failures = 0
            self.backoff = 0.0
            self._next_try = 0.0


__all__ = ["EXIT_NOT_TRANSIENT", "Outage", "describe", "is_transient"]
