"""Events through the processors into ClickHouse with a progress bar: what ``run``, ``replay`` and ``registry load`` share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from consentflow.contracts.topics import Topic
from consentflow.core.processor import Processor
from consentflow.notary.step import NotaryStep
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.continued_run import run_continued
from consentflow.streams.embedded import RunStats, run_events


def event_progress(console: Console) -> Progress:
    """A progress display counting events, one bar per task (its description as the label)."""
    return Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_with_progress(
    events: Iterable[tuple[Topic, Mapping[str, Any]]],
    sink: ClickHouseSink,
    console: Console,
    *,
    label: str = "run",
    total: int | None = None,
    as_of: datetime | None = None,
    continued: bool = False,
    notary: NotaryStep | None = None,
) -> RunStats:
    """``run_events`` through a fresh ``Processor`` into ``sink``, showing progress on ``console``; ``continued``:
    from the states, clock and registry earlier runs left in the database, saving the states after (``run_continued``); ``notary``: the log of what was written, signed (``notary.step``)."""
    with event_progress(console) as progress:
        task = progress.add_task(label, total=total)
        step = lambda n: progress.update(task, completed=n)  # noqa: E731 -- one line, two callers
        if continued:
            stats = run_continued(events, sink, as_of=as_of, on_progress=step, notary=notary)
        else:
            stats = run_events(events, Processor(), sink, as_of=as_of, on_progress=step, notary=notary)
        progress.update(task, total=stats.events, completed=stats.events)
    return stats


def run_summary(stats: RunStats, elapsed: float) -> str:
    """One line: events, speed, outputs per topic, dead letters."""
    rate = f"{stats.events / elapsed:,.0f}" if elapsed > 0 else "-"
    return (
        f"{stats.events:,} events in {elapsed:.1f} s ({rate} events/s); "
        f"outputs: {dict(sorted(stats.outputs.items()))}; dead letters: {stats.dead_letters}"
    )
