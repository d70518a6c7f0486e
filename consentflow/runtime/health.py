"""Whether a long-running process (worker, sink) is live and ready, as a supervisor asks it; no I/O here.

Liveness is a heartbeat: the process's own loop calls ``beat()`` (the worker's event
loop every second, the sink's consume loop and its retry sleeps), and the process is
not live once the last beat is older than ``stale_after``. The answer is read from
another thread (``consentflow.runtime.health_endpoint``), so a loop that is stuck cannot beat
but the probe still answers, and says so [DESIGN: processes never hang].

Readiness: the process has started (the worker's app is running, the sink has
subscribed) and none of the dependencies it watches is away (``Outage.away``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports this module: no Kafka client at import
    from consentflow.runtime.outage import Outage

#: Seconds without a heartbeat after which a process is not live (a supervisor then restarts it).
STALE_AFTER = 30.0


@dataclass(frozen=True)
class Verdict:
    """One answer to a probe: yes, or no and why (a line an operator can act on)."""

    ok: bool
    reason: str | None = None


class Health:
    """The heartbeat, the start and the watched dependencies of one process.

    Written by the process's loop, read by the probe's thread: each field is one attribute
    assignment, atomic under the GIL, so no lock is needed. ``clock`` must be the clock of the
    watched ``Outage`` objects (both ``time.monotonic`` by default), since their ``since`` is read here.
    """

    def __init__(self, *, stale_after: float = STALE_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._last_beat = clock()  # a process is live from its start until its loop has had time to beat
        self._started = False
        self._watched: list[Outage] = []

    def beat(self) -> None:
        """The process's loop is turning."""
        self._last_beat = self._clock()

    def sleep(self, seconds: float) -> None:
        """``time.sleep(seconds)``, beating every second: a process that waits on purpose (a retry) is live."""
        end = self._clock() + seconds
        while (left := end - self._clock()) > 0:
            self.beat()
            time.sleep(min(1.0, left))
        self.beat()

    def started(self) -> None:
        """The process has started its work: ready from now on while its dependencies answer."""
        self._started = True

    def watch(self, *dependencies: Outage) -> None:
        """Not ready while any of ``dependencies`` is away."""
        self._watched.extend(dependencies)

    def liveness(self) -> Verdict:
        """Live while the last beat is younger than ``stale_after``."""
        silent = self._clock() - self._last_beat
        if silent > self.stale_after:
            return Verdict(False, f"no heartbeat for {silent:.0f} s (stale after {self.stale_after:.0f} s): the loop is stuck")
        return Verdict(True)

    def readiness(self) -> Verdict:
        """Ready when live, started, and no watched dependency is away."""
        live = self.liveness()
        if not live.ok:
            return live
        if not self._started:
            return Verdict(False, "starting")
        now = self._clock()
        for outage in self._watched:
            since = outage.since
            if since is not None:
                return Verdict(False, f"{outage.what} not answering for {now - since:.0f} s")
        return Verdict(True)


__all__ = ["STALE_AFTER", "Health", "Verdict"]
