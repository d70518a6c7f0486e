"""The dead-letter record: an input that could not be processed, with the reason and the original bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from consentflow.contracts.records import DeadLetter


def dead_letter(
    topic: str,
    reason: str,
    error: Exception,
    *,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
) -> DeadLetter:
    """A ``DeadLetter`` record for an input that could not be processed."""
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "value": value,
        "reason": reason,
        "error_type": type(error).__name__,
        "failed_at": datetime.now(UTC),
    }
