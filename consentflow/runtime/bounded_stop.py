"""A stop that never takes longer than ``STOP_WITHIN`` seconds, for the worker and the sink.

SIGTERM asks a process to finish its batch, or give it up, and end. With the broker or ClickHouse away a call can
block past any supervisor's grace period, so a stop is bounded: past it the process exits (75) at once, and what it
had not committed is redelivered to the next one; every effect is idempotent, so nothing is lost
[DESIGN: processes never hang].
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("consentflow.bounded_stop")  # the logger name from before the layout (issue 20): log filters know it

#: Seconds a stopping process may take (a supervisor's grace period is longer: systemd's default is 90, Kubernetes' 30).
STOP_WITHIN = 25.0
#: Exit status of a process that abandoned its stop (EX_TEMPFAIL): its uncommitted batch goes to the next one.
EXIT_STOP_ABANDONED = 75


def abandon_stop(why: str, end_process: Callable[[int], object] = os._exit) -> None:
    """End the process (``EXIT_STOP_ABANDONED``) with one line saying ``why`` its stop gave up the batch in flight."""
    log.critical("%s; exiting, the uncommitted batch is redelivered", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    end_process(EXIT_STOP_ABANDONED)


class StopRequest:
    """SIGTERM or SIGINT as a flag the process's loops read (call it: ``should_stop``), and a bound on the stop:
    ``within`` seconds after the first signal the process ends (75), whatever call it is blocked in."""

    def __init__(self, waiting_for: str, *, within: float = STOP_WITHIN, end_process: Callable[[int], object] = os._exit) -> None:
        self.waiting_for = waiting_for  # what a stop past the bound is likely stuck on, for the exit line
        self.within = within
        self.requested = False
        self._exit = end_process

    def __call__(self) -> bool:
        """Whether a stop was asked."""
        return self.requested

    def request(self, *_: object) -> None:
        """Ask for the stop (a signal handler) and start its bound; a second request changes nothing."""
        if self.requested:
            return
        self.requested = True
        why = f"stop not finished in {self.within:.0f} s ({self.waiting_for})"
        # A thread, not an alarm signal: Python runs signal handlers only between bytecodes, never inside a C call.
        timer = threading.Timer(self.within, abandon_stop, (why, self._exit))
        timer.daemon = True
        timer.start()

    def on_signals(self) -> StopRequest:
        """Make SIGTERM and SIGINT request the stop; this request, for chaining."""
        signal.signal(signal.SIGTERM, self.request)
        signal.signal(signal.SIGINT, self.request)
        return self


__all__ = ["EXIT_STOP_ABANDONED", "STOP_WITHIN", "StopRequest", "abandon_stop"]
