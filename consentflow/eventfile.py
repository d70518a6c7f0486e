"""``consentflow.eventfile``, kept for the imports written before the package took its layout (issue 20):
event files (Avro container, JSON Lines), now in ``consentflow.contracts.eventfile``."""

from consentflow.contracts.eventfile import (
    READING_STOPPED,
    ReadingStopped,
    input_union_document,
    input_union_schema,
    read_checked,
    read_events,
    write_events,
)

__all__ = [
    "READING_STOPPED",
    "ReadingStopped",
    "input_union_document",
    "input_union_schema",
    "read_checked",
    "read_events",
    "write_events",
]
