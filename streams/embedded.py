"""The embedded runner: an event file through the processors into ClickHouse, no Kafka needed.

It drives the same ``Processor`` as the faust workers and writes the same
tables through the same sink, so the same input leaves the same table contents
(apart from Kafka coordinates, which only Kafka runs have).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from consentflow.contracts.records import InputRecord
from consentflow.contracts.topics import DEAD_LETTER, INCIDENTS, RECIPIENTS, Topic
from consentflow.core.processor import Changes, Processor
from consentflow.notary.step import NotaryStep
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.input_step import InputStep, OriginOf, file_origin

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """What a run did."""

    events: int = 0
    outputs: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    watermark: datetime | None = None  # the latest event time seen
    clock: datetime | None = None  # the retention clock the run ticked at, if it ticked


#: Events between two looks at whether the sink's buffer is due a flush: asking costs a clock read, and a
#: flush a few events late changes nothing (the sink's own limits are 50,000 rows or a second).
FLUSH_CHECK_EVERY = 64


def run_events(
    events: Iterable[tuple[Topic, Mapping[str, Any]]],
    processor: Processor,
    sink: ClickHouseSink,
    *,
    as_of: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
    clock_since: datetime | None = None,
    while_flushing: Callable[[], None] | None = None,
    origin_of: OriginOf | None = None,
    notary: NotaryStep | None = None,
) -> RunStats:
    """Process ``events`` in order into ``sink``; then emit the retention actions due at ``as_of``.

    ``events`` may hold dead letters, ``(DEAD_LETTER, record)``, for inputs the gate refused as they were read:
    they go to the dead-letter table and are counted. ``as_of`` defaults to the latest event time seen, so a replay of the same
    events gives the same retention actions whatever the wall clock says.
    ``clock_since`` is the clock an earlier run into the same tables ticked at:
    the retention clock never goes back, so the tick is at the later of the two.
    ``while_flushing`` is called after the tick, while the last outputs are
    inserted behind (the continued runner pickles the states it will save).
    When reading ``events`` fails (a file that breaks off, a closed pipe), the
    outputs of the events already processed are written before the error goes
    on, so the tables hold exactly what was read, never a part of it.
    An event that fails processing becomes a dead letter (``InputStep``) named by ``origin_of``, else by the
    ``origin_of`` of ``events`` when it has one (a replay names the Kafka message), else by its index in the run.
    ``notary`` makes each ledger entry and erasure notice written a leaf of its log, in file order, appended once the
    sink holds it; it signs every 10,000 leaves and at the end (``notary.step``). Without it, no log is written.
    """
    # The loop runs once per event: counters live in locals and reach ``RunStats`` at the end.
    take, flush_due = InputStep(processor).event, sink.flush_due
    add: Callable[[str, Mapping[str, Any]], None] = sink.add if notary is None else notary.adding(sink.add)
    named_by: OriginOf = origin_of or cast(OriginOf, getattr(events, "origin_of", file_origin))
    outputs: defaultdict[str, int] = defaultdict(int)
    dead_letters = 0
    watermark: datetime | None = None  # the latest event time seen: the retention clock
    count = 0
    reading = True  # whether an exception came from ``events`` rather than from processing or the sink
    try:
        for count, (topic, record) in enumerate(events, 1):
            reading = False
            name = topic.short_name
            if topic is DEAD_LETTER:  # an input the gate refused while reading (eventfile.read_checked)
                add(DEAD_LETTER.short_name, record)
                dead_letters += 1
                reading = True
                continue
            if topic is RECIPIENTS:
                add(name, record)
            elif topic is INCIDENTS:  # the breach register's facts, stored as read; no subject's state, nor the clock, moves
                add(name, record)
                reading = True
                continue
            changes = take(topic, cast(InputRecord, record), count - 1, named_by)  # read and gated as its topic's record
            if not isinstance(changes, Changes):  # one bad event must not stop the stream: it is a dead letter
                log.warning("event %d of topic %s could not be processed: %s", count - 1, name, changes["reason"])
                add(DEAD_LETTER.short_name, changes)
                dead_letters += 1
                reading = True
                continue
            when = record.get("occurred_at")
            if when is not None and (watermark is None or when > watermark):
                watermark = when
            for out_topic, out_record in changes:
                add(out_topic, out_record)
                outputs[out_topic] += 1
            if not count % FLUSH_CHECK_EVERY:
                if notary is not None and notary.due:
                    sink.flush()  # the leaves follow their rows, and the notary's inserts never overlap the sink's
                    notary.write()
                if flush_due():
                    sink.flush_behind()  # processing goes on while ClickHouse inserts
                    if on_progress is not None:
                        on_progress(count)
            reading = True
    except Exception:
        if reading:
            log.error("input failed after %d events; writing their outputs before stopping", count)
            sink.flush()
            if notary is not None:
                notary.finish()
        raise
    clock = as_of or watermark
    if clock_since is not None and (clock is None or clock < clock_since):
        clock = clock_since
    if clock is not None:
        for out_topic, out_record in processor.tick(clock):
            add(out_topic, out_record)
            outputs[out_topic] += 1
    if while_flushing is not None:
        sink.flush_behind()
        while_flushing()
    sink.flush()
    if notary is not None:
        notary.finish()
    if on_progress is not None:
        on_progress(count)
    return RunStats(events=count, outputs=dict(outputs), dead_letters=dead_letters, watermark=watermark, clock=clock)
