"""The embedded runner stores the breach register's events as read [12; GDPR Art. 33(5)]: each one once, in any order,
without moving the retention clock (no worker sees them on the Kafka path: the sink stores them there)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.processor import Processor
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.digest import table_digests
from consentflow.sinks.incident_queries import incident_events, register_clock
from consentflow.streams.embedded import run_events
from tests.support.incident_scenario import AWARE, CLOCK, RECIPIENT, WINDOW_FROM, WINDOW_TO, scenario_events

H = timedelta(hours=1)


def _incident_events() -> list[Event]:
    opened = events.incident_event(
        "inc-run", "opened", recipient_id=RECIPIENT, window_from=WINDOW_FROM, window_to=WINDOW_TO, aware_at=AWARE,
        risk="high", source_service="dpo", occurred_at=AWARE, event_id=str(uuid.UUID(int=1)),
    )  # fmt: skip
    closed = events.incident_event(
        "inc-run", "closed", source_service="dpo", occurred_at=CLOCK + 30 * 24 * H, event_id=str(uuid.UUID(int=2))
    )
    return [opened, closed]


def _run(dsn: str, items: list[Event]) -> tuple[ClickHouseSink, object]:
    sink = ClickHouseSink(dsn, f"incidents_{uuid.uuid4().hex[:8]}")
    stats = run_events(((e.topic, e.record) for e in items), Processor(), sink)
    return sink, stats


def test_incident_events_are_stored_once_and_leave_the_retention_clock_alone(chdb_dsn: str) -> None:
    """An incident event dated a month after the last subject event: the run's clock is still the subjects' latest
    event (a worker never sees incidents, so retention actions must not depend on them); a second run of the same
    events adds no row."""
    sink, stats = _run(chdb_dsn, [*scenario_events(), *_incident_events()])
    assert stats.clock == CLOCK  # type: ignore[attr-defined]
    stored = incident_events(sink.reader)
    assert [(e["kind"], e["occurred_at"]) for e in stored] == [("opened", AWARE), ("closed", CLOCK + 30 * 24 * H)]
    assert stored[0]["categories"] == [] and stored[0]["risk"] == "high"
    run_events(((e.topic, e.record) for e in _incident_events()), Processor(), sink)
    assert len(incident_events(sink.reader)) == 2
    assert register_clock(sink.reader) == CLOCK + 30 * 24 * H  # the register's clock knows the incidents' own times


def test_the_incidents_table_digest_is_the_same_in_any_order(chdb_dsn: str) -> None:
    """The incidents table is among the digests runs are compared by; the incident events first or last give the same
    tables (every table's digest)."""
    first, _ = _run(chdb_dsn, [*_incident_events(), *scenario_events()])
    last, _ = _run(chdb_dsn, [*scenario_events(), *_incident_events()])
    digests = table_digests(first.reader)
    assert digests["incidents"][0] == 2
    assert digests == table_digests(last.reader)
