"""The embedded runner: an event file through the processors into ClickHouse, no Kafka needed.

It drives the same ``Processor`` as the faust workers and writes the same
tables through the same sink, so the same input leaves the same table contents
(apart from Kafka coordinates, which only Kafka runs have).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consentflow.dead_letters import dead_letter
from consentflow.processor import Processor
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.topics import Topic

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What a run did."""

    events: int = 0
    outputs: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    watermark: datetime | None = None  # the latest event time seen: the retention clock


def run_events(
    events: Iterable[tuple[Topic, Mapping[str, Any]]],
    processor: Processor,
    sink: ClickHouseSink,
    *,
    as_of: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Process ``events`` in order into ``sink``; then emit the retention actions due at ``as_of``.

    ``as_of`` defaults to the latest event time seen, so a replay of the same
    events gives the same retention actions whatever the wall clock says.
    """
    stats = RunStats()
    for index, (topic, record) in enumerate(_kept_on_fault(events, sink, stats)):
        stats.events += 1
        name = topic.short_name
        if name == "recipients":
            sink.add("recipients", record)
        try:
            changes = processor.process(name, record)
        except Exception as exc:  # noqa: BLE001 -- one bad event must not stop the stream: it goes to the dead letters
            log.warning("event %d of topic %s could not be processed: %s", index, name, exc)
            sink.add(
                "dead-letter",
                dead_letter(
                    name,
                    f"processing failed: {exc}",
                    exc,
                    partition=None,
                    offset=index,
                    key=str(record.get("subject_id", "")).encode() or None,
                    value=None,
                ),
            )
            stats.dead_letters += 1
            continue
        when = record.get("occurred_at")
        if when is not None and (stats.watermark is None or when > stats.watermark):
            stats.watermark = when
        for out_topic, out_record in changes.records:
            sink.add(out_topic, out_record)
            stats.outputs[out_topic] = stats.outputs.get(out_topic, 0) + 1
        if sink.flush_due():
            sink.flush()
            if on_progress is not None:
                on_progress(stats.events)
    clock = as_of or stats.watermark
    if clock is not None:
        for out_topic, out_record in processor.tick(clock).records:
            sink.add(out_topic, out_record)
            stats.outputs[out_topic] = stats.outputs.get(out_topic, 0) + 1
    sink.flush()
    if on_progress is not None:
        on_progress(stats.events)
    return stats


def _kept_on_fault(
    events: Iterable[tuple[Topic, Mapping[str, Any]]], sink: ClickHouseSink, stats: RunStats
) -> Iterator[tuple[Topic, Mapping[str, Any]]]:
    """``events``; when reading them fails (a file that breaks off, a closed pipe), the outputs of the events already
    processed are written before the error goes on, so the tables hold exactly what was read, never a part of it."""
    iterator = iter(events)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception:
            log.error("input failed after %d events; writing their outputs before stopping", stats.events)
            sink.flush()
            raise
        yield item
