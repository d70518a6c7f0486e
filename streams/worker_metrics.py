"""The worker's part in its metrics (``consentflow.runtime.metrics``): outputs tallied as a batch writes them, added
to the counters once the broker has them; events in per batch. (The group's lag: ``kafka.lag.lag_metric``.)

A tally is a plain dict per label, a few tens of nanoseconds an output; the counters, with their locks, are touched
once per batch and label. Counted after the outputs are acknowledged, so the counts are what reached Kafka (a
redelivered batch counts again, as it is written again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consentflow.contracts.topics import DEAD_LETTER, RETENTION, VIOLATIONS
from consentflow.runtime.metrics import WorkerMetrics

_VIOLATIONS, _RETENTION, _DEAD_LETTER = VIOLATIONS.short_name, RETENTION.short_name, DEAD_LETTER.short_name


class OutputTally:
    """What a batch wrote, by kind, verdict, retention action and dead letter reason, until ``add_to``."""

    __slots__ = ("dead_letters", "events_in", "kinds", "retention", "verdicts")

    def __init__(self) -> None:
        self.events_in: dict[str, int] = {}
        self.kinds: dict[str, int] = {}
        self.verdicts: dict[tuple[str, str], int] = {}
        self.retention: dict[tuple[str, str], int] = {}
        self.dead_letters: dict[str, int] = {}

    def taken(self, topic: str, events: int) -> None:
        """A batch of ``events`` input events of ``topic`` (short name) processed."""
        self.events_in[topic] = self.events_in.get(topic, 0) + events

    def written(self, kind: str, record: Mapping[str, Any]) -> None:
        """One output record of ``kind`` (its topic's short name) written."""
        kinds = self.kinds
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == _VIOLATIONS:  # active: a violation; inactive: the verdict is compliant (or withdrawn)
            verdict = (str(record["rule"]), "violation" if record["active"] else "compliant")
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        elif kind == _RETENTION:
            action = (str(record["action"]), "issued" if record.get("active", True) else "retracted")
            self.retention[action] = self.retention.get(action, 0) + 1
        elif kind == _DEAD_LETTER:
            reason = str(record["error_type"])
            self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1

    def add_to(self, metrics: WorkerMetrics) -> None:
        """Add the tally to ``metrics``' counters and start again from nothing."""
        for family, counts in (
            (metrics.events_in, self.events_in),
            (metrics.outputs, self.kinds),
            (metrics.dead_letters, self.dead_letters),
        ):
            for label, count in counts.items():
                family.labels(label).inc(count)
            counts.clear()
        for family2, pairs in ((metrics.verdicts, self.verdicts), (metrics.retention_actions, self.retention)):
            for (first, second), count in pairs.items():
                family2.labels(first, second).inc(count)
            pairs.clear()


__all__ = ["OutputTally"]
