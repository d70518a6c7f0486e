"""The worker's part in its health probe (``consentflow.runtime.health``): a heartbeat on its event loop, its start, Kafka.

The heartbeat is a callback the event loop runs every second, whatever faust is doing
(its timers and agents start only once the table is recovered, which may take minutes):
it stops only when the loop itself is stuck. The worker is ready once faust runs its
timers, and while the broker answers a check made every few seconds through the same
``Outage`` as the worker's own calls to Kafka.
"""

from __future__ import annotations

import asyncio

import faust

from consentflow.kafka.broker_check import CHECK_EVERY, BrokerCheck
from consentflow.runtime.health import Health
from consentflow.runtime.outage import Outage

#: Seconds between heartbeats.
BEAT_EVERY = 1.0


def report_health(app: faust.App, health: Health, kafka: Outage, bootstrap: str) -> None:
    """Tell ``health`` when ``app`` has started and whether the broker (``kafka``, the app's Outage) answers."""
    health.watch(kafka)
    check = BrokerCheck(bootstrap)

    @app.timer(interval=CHECK_EVERY)
    async def check_broker() -> None:
        """Whether the broker answers, told to ``kafka``: an idle worker may make no other call that would notice."""
        health.started()  # faust starts its timers once the app runs, its table recovered
        await check.report_from_loop(kafka)


def keep_beating(loop: asyncio.AbstractEventLoop, health: Health, every: float = BEAT_EVERY) -> None:
    """Beat ``health`` from ``loop`` every ``every`` seconds, for as long as the loop turns."""

    def beat() -> None:
        health.beat()
        loop.call_later(every, beat)

    loop.call_soon(beat)


__all__ = ["keep_beating", "report_health"]
