"""When a worker's retention tick must read every subject it holds, and when the subjects events changed suffice.

A tick [2.3] owes two things: a holdings record for every subject whose events
changed since its last one, and every retention action that fell due. The first
needs only the subjects events touched since the last tick. The second needs a
sweep over every subject, but only once the worker's clock (its event-time
watermark) has passed the earliest action still ahead, which the last sweep
and the ticks since have found. A sweep reads every state from RocksDB: with a
million subjects that is minutes of work, so sweeps are also spaced by
``sweep_interval`` seconds, and an action is emitted at most that long after
the watermark passed its due time (its record, due date included, is the same).
A worker sweeps when it starts and whenever partitions are assigned to it:
their subjects' actions are not in what it has found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consentflow.core.retention import earliest


@dataclass
class RetentionAgenda:
    """What a worker's retention ticks have found: the earliest action ahead, and when the last sweep ran."""

    sweep_interval: float  # seconds between sweeps at least
    next_due: datetime | None = None  # the earliest instant an action of a subject held falls due, as found
    swept_at: float | None = None  # monotonic seconds of the last sweep; None: none since the last assignment

    def sweep_due(self, clock: datetime, now: float) -> bool:
        """Whether the tick at watermark ``clock`` (monotonic ``now``) must read every subject."""
        if self.swept_at is None:
            return True
        return self.next_due is not None and clock >= self.next_due and now - self.swept_at >= self.sweep_interval

    def swept(self, next_due: datetime | None, now: float) -> None:
        """A sweep ended at monotonic ``now``; ``next_due`` is the earliest action ahead among every subject."""
        self.swept_at, self.next_due = now, next_due

    def ticked(self, next_due: datetime | None) -> None:
        """A tick over the touched subjects found ``next_due`` as the earliest action ahead among them."""
        self.next_due = earliest(self.next_due, next_due)

    def reassigned(self) -> None:
        """Partitions were assigned: the next tick sweeps, since their subjects' actions are not in ``next_due``."""
        self.swept_at = None
