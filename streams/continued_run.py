"""``consentflow run`` into a database that holds earlier runs: it continues them, never starts over.

The processors start from what the database holds: the subjects' states and the
retention clock earlier runs saved (``sinks/subject_states.py``), and the
recipient registry of the ``recipients`` table (what earlier runs and
``registry load --embedded`` wrote [4, 7]), to which the file's recipient events
add. After the sink holds every output, the states the run changed are saved.
So a file split into batches run one after another leaves the tables a single
run of the whole file leaves, and a file run twice changes nothing the second
time (every event id is in its subject's ``seen``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from mypy_extensions import mypyc_attr

from consentflow.contracts.topics import Topic
from consentflow.core.processor import Processor
from consentflow.core.state import MemoryStore, SubjectState
from consentflow.notary.step import NotaryStep
from consentflow.sinks import subject_states
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.registry_reading import registry_from_tables
from consentflow.streams.embedded import RunStats, run_events


@mypyc_attr(native_class=False)
class ChangedStates(MemoryStore):
    """A ``MemoryStore`` that remembers which subjects were put: the states a run must save.

    The processor puts a state when an event creates it, and a retention tick puts every state whose events
    changed (a holdings record is owed) or whose retention records were issued; nothing else changes a state.
    """

    __slots__ = ("changed",)

    def __init__(self, states: Mapping[str, SubjectState] | None = None) -> None:
        super().__init__(states or {})
        self.changed: set[str] = set()

    def put(self, state: SubjectState) -> None:
        """Store ``state`` and remember it changed."""
        self[state.subject_id] = state
        self.changed.add(state.subject_id)


def run_continued(
    events: Iterable[tuple[Topic, Mapping[str, Any]]],
    sink: ClickHouseSink,
    *,
    as_of: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
    notary: NotaryStep | None = None,
) -> RunStats:
    """``run_events`` from the states, clock and registry ``sink``'s database holds; then the changed states saved.

    Raises ``subject_states.SavedStateError`` (before reading any event) when the saved states cannot be continued.
    """
    saved = subject_states.load(sink)
    subject_states.begin(sink, saved.run + 1)
    store = ChangedStates(saved.states)
    processor = Processor(store=store, registry=registry_from_tables(sink.reader))
    states: list[Any] = []

    def pickle_changed() -> None:
        states[:] = subject_states.pickled([store[s] for s in sorted(store.changed)])

    stats = run_events(
        events,
        processor,
        sink,
        as_of=as_of,
        on_progress=on_progress,
        clock_since=saved.clock,
        while_flushing=pickle_changed,
        notary=notary,
    )
    # run_events returned: the sink holds every output, so the states that explain them may follow.
    subject_states.save(sink, saved.run + 1, stats.clock, stats.events, states)
    return stats
