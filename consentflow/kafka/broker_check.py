"""Whether the Kafka broker answers, asked every few seconds for a readiness probe.

A worker with no partition to follow, or a sink waiting in ``consume``, may make no call of
its own that fails while the broker is away; this check makes one, cheap (a metadata request
on a client kept between checks), and reports it to the process's ``Outage`` for Kafka, so the
probe says not-ready within seconds of the broker going, and ready again once it is back.
"""

from __future__ import annotations

import asyncio
import threading
import time

from confluent_kafka.admin import AdminClient

from consentflow.runtime.health import Health
from consentflow.runtime.outage import Outage
from consentflow.runtime.redaction import redacted_dsn

#: Seconds between checks; with ``ASK_WITHIN`` the probe follows the broker within about 10 s.
CHECK_EVERY = 2.0
#: Seconds a check waits for the broker's metadata.
ASK_WITHIN = 5.0
DOING = "checking that the broker answers"


class BrokerCheck:
    """Asks the broker at ``bootstrap`` for its metadata."""

    def __init__(self, bootstrap: str, timeout: float = ASK_WITHIN) -> None:
        self.timeout = timeout
        self._admin = AdminClient(
            {
                "bootstrap.servers": bootstrap,
                "reconnect.backoff.max.ms": 1000,  # a broker back is noticed on the next check, not 10 s later
                "log_level": 0,  # its "Connection refused" lines repeat what the Outage logs once per outage
            }
        )

    def ask(self) -> None:
        """Returns when the broker answered; raises ``KafkaException`` when it did not within ``timeout``."""
        self._admin.list_topics(timeout=self.timeout)

    def report_to(self, outage: Outage) -> None:
        """Ask once and tell ``outage`` the result (which may end the process on an error no retry outlives)."""
        try:
            self.ask()
        except Exception as exc:  # noqa: BLE001 -- Outage decides: wait out a transient error, exit on any other
            outage.failed(exc, DOING)
        else:
            outage.succeeded()

    async def report_from_loop(self, outage: Outage) -> None:
        """``report_to`` for an ``outage`` the event loop's callers share: the ask in a thread, the outage told
        on the loop (``Outage`` is not thread-safe). Unlike ``Outage.attempt``, it ignores the back-off: asking
        is cheap, and a success ends the outage for every caller at once."""
        try:
            await asyncio.to_thread(self.ask)
        except Exception as exc:  # noqa: BLE001 -- as in report_to
            outage.failed(exc, DOING)
        else:
            outage.succeeded()

    def keep_reporting_to(self, outage: Outage, every: float = CHECK_EVERY) -> threading.Thread:
        """``report_to(outage)`` every ``every`` seconds in a daemon thread (the sink's consumer shares ``outage``)."""

        def loop() -> None:
            while True:
                self.report_to(outage)
                time.sleep(every)

        thread = threading.Thread(target=loop, name="broker-check", daemon=True)
        thread.start()
        return thread


def watch_broker(health: Health, bootstrap: str) -> Outage:
    """Not ready while the broker at ``bootstrap`` does not answer, checked from a thread of its own (for a process
    without an event loop, the sink); the ``Outage`` it reports to."""
    kafka = Outage(f"Kafka at {redacted_dsn(bootstrap)}")
    health.watch(kafka)
    BrokerCheck(bootstrap).keep_reporting_to(kafka)
    return kafka


__all__ = ["CHECK_EVERY", "BrokerCheck", "watch_broker"]
