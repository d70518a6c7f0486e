"""The embedded runner's subject states and retention clock, kept in ClickHouse beside the tables they produced.

A second ``consentflow run`` into the same database continues from where the
first stopped: the processors need every subject's state (facts, chain head,
event ids seen, retention actions issued) and the clock the first run ticked at,
which never goes back. Two tables hold them, in the same ClickHouse as the
outputs, so chDB and a server alike keep them with what they explain:

* ``subject_states``: one row per subject, the pickled ``SubjectState`` (its form
  is ``state.STATE_FORMAT``, kept in each row), versioned by the run that saved it
  (ReplacingMergeTree: the latest run's state is the subject's);
* ``embedded_runs``: one row per run, written when it starts and again, with the clock it ticked at, when it saves.

A run saves only after the sink holds all its outputs, the run's row first (so
the clock never goes back, even if the states' insert is cut short), then the
states its events or its tick changed. A run killed before leaves the earlier
states: re-running it emits the same deterministic ids, which the tables absorb.
States written in another format are refused, never mixed with this version's.
"""

from __future__ import annotations

import pickle
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consentflow.core.state import STATE_FORMAT, MemoryStore, SubjectState
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reading import utc_or_none
from consentflow.sinks.tables import DATETIME

STATES = "subject_states"
RUNS = "embedded_runs"
_T = DATETIME

_DDL = (
    f"CREATE TABLE IF NOT EXISTS {{db:Identifier}}.`{STATES}` (\n"
    "  `subject_id` String, `format` UInt16, `run` UInt64, `state` String\n"
    ") ENGINE = ReplacingMergeTree(run) ORDER BY subject_id",
    f"CREATE TABLE IF NOT EXISTS {{db:Identifier}}.`{RUNS}` (\n"
    f"  `run` UInt64, `format` UInt16, `clock` Nullable({_T}), `events` UInt64, `states_saved` UInt64\n"
    ") ENGINE = ReplacingMergeTree ORDER BY run",
)


class SavedStateError(ValueError):
    """The database's saved states cannot be continued from (another format, or outputs without states)."""


@dataclass
class SavedRun:
    """What earlier runs left in a database: the subjects' states, the clock, and the last run's number."""

    states: MemoryStore
    clock: datetime | None
    run: int  # 0: no run saved states here


def ensure_tables(sink: ClickHouseSink) -> None:
    """Create the two tables if they do not exist."""
    for statement in _DDL:
        sink.command(statement)


def load(sink: ClickHouseSink) -> SavedRun:
    """The states and clock earlier runs saved in ``sink``'s database (creating their tables on first use).

    Raises ``SavedStateError`` when they were written in a format this version does not read, or when the
    tables hold subjects' outputs but no run saved states (an earlier consentflow, or the Kafka pipeline).
    """
    ensure_tables(sink)
    formats = {int(f) for (f,) in sink.reader.query(f"SELECT DISTINCT format FROM {{db:Identifier}}.`{STATES}`")}
    formats |= {int(f) for (f,) in sink.reader.query(f"SELECT DISTINCT format FROM {{db:Identifier}}.`{RUNS}`")}
    foreign = sorted(formats - {STATE_FORMAT})
    if foreign:
        written = ", ".join(str(f) for f in sorted(formats))
        raise SavedStateError(
            f"{sink.database} at {redacted_dsn(sink.dsn)}: the subject states were written in format {written}; "
            f"this consentflow reads format {STATE_FORMAT} only: run into a fresh database"
        )
    run, clock = sink.reader.query(f"SELECT max(run), max(clock) FROM {{db:Identifier}}.`{RUNS}`")[0]
    (last_state_run,) = sink.reader.query(f"SELECT max(run) FROM {{db:Identifier}}.`{STATES}`")[0]
    store = MemoryStore()
    if not formats:
        (held,) = sink.reader.query("SELECT count() FROM {db:Identifier}.subject_holdings")[0]
        if held:
            raise SavedStateError(
                f"{sink.database} at {redacted_dsn(sink.dsn)} holds the outputs of {held} subjects but no saved states to continue "
                "from (written by an earlier consentflow, or by the Kafka pipeline): run into a fresh database"
            )
        return SavedRun(store, None, 0)
    loads = pickle.loads
    for subject_id, data in sink.reader.query(
        f"SELECT subject_id, state FROM {{db:Identifier}}.`{STATES}` FINAL", column_formats={"state": "bytes"}
    ):
        try:
            store[subject_id] = loads(data)
        except Exception as exc:  # noqa: BLE001 -- whatever unpickling raised, the answer is the same one line
            raise SavedStateError(
                f"{sink.database} at {redacted_dsn(sink.dsn)}: the saved state of subject {subject_id!r} cannot be read by this "
                f"consentflow (format {STATE_FORMAT}): {type(exc).__name__}: {exc}"
            ) from None
    return SavedRun(store, utc_or_none(clock), max(int(run or 0), int(last_state_run or 0)))


#: States per insert.
SAVE_CHUNK = 1_000


def pickled(states: Collection[SubjectState]) -> list[Any]:
    """``states`` pickled, as the ``pyarrow.Table`` chunks ``save`` inserts (the runner pickles them while the sink
    inserts its last outputs: chDB releases the GIL while it works)."""
    import pyarrow

    dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
    ordered = list(states)
    chunks = []
    for at in range(0, len(ordered), SAVE_CHUNK):
        chunk = ordered[at : at + SAVE_CHUNK]
        chunks.append(
            pyarrow.table(
                {
                    "subject_id": pyarrow.array([state.subject_id for state in chunk], pyarrow.string()),
                    "format": pyarrow.array([STATE_FORMAT] * len(chunk), pyarrow.uint16()),
                    "state": pyarrow.array([dumps(state, protocol) for state in chunk], pyarrow.binary()),
                }
            )
        )
    return chunks


def begin(sink: ClickHouseSink, run: int) -> None:
    """Record that run ``run`` started (no clock yet), before it writes any output: a database whose first run was
    killed after its outputs and before its states is then one to run the same file into again, not one filled by
    something that saves no states."""
    _run_row(sink, run, None, 0, 0)


def save(sink: ClickHouseSink, run: int, clock: datetime | None, events: int, states: list[Any]) -> int:
    """Save ``states`` (``pickled``) as run ``run``'s, after its row with ``clock``; how many. Call once the sink
    holds the run's outputs (``flush`` returned)."""
    import pyarrow

    count: int = sum(chunk.num_rows for chunk in states)
    _run_row(sink, run, clock, events, count)
    for chunk in states:
        sink.insert_now(STATES, chunk.append_column("run", pyarrow.array([run] * chunk.num_rows, pyarrow.uint64())))
    return count


def _run_row(sink: ClickHouseSink, run: int, clock: datetime | None, events: int, saved: int) -> None:
    """Insert run ``run``'s row (the later of two for one run replaces the earlier)."""
    import pyarrow

    row = {
        "run": pyarrow.array([run], pyarrow.uint64()),
        "format": pyarrow.array([STATE_FORMAT], pyarrow.uint16()),
        "clock": pyarrow.array([clock], pyarrow.timestamp("us", tz="UTC")),
        "events": pyarrow.array([events], pyarrow.uint64()),
        "states_saved": pyarrow.array([saved], pyarrow.uint64()),
    }
    sink.insert_now(RUNS, pyarrow.table(row))
