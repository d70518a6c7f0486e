"""The DPO overview's calendar panel (issue 24): rights requests open / due within seven days / overdue [8.2; GDPR Art.
12(3)], incidents open with the hours left to notify the authority [12; Art. 33(1)], consents awaiting re-consent [13].

One hand-built stream through the embedded runner into chDB; every figure is counted by hand from the French calendar
and the 72-hour rule, at one instant (1 July 2025, 10:00 Paris), in the JSON (``overview``, ``GET /v1/overview``) and
in the CLI's panel.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.cli.pipeline import _print_calendar
from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.core.processor import Processor
from consentflow.policy.vocabulary import ConsentAction, Purpose
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.queries import overview
from consentflow.streams.embedded import run_events
from tests.support.builders import CLOUDNEST, consent

PARIS = ZoneInfo("Europe/Paris")
AT = datetime(2025, 7, 1, 8, tzinfo=UTC)  # 10:00 Paris
H = timedelta(hours=1)


def paris(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).astimezone(UTC)


def request(subject: str, status: str, when: str, right: str = "access") -> Event:
    return events.rights_event(
        subject, right, status, request_id=f"req-{subject}", source_service="support", occurred_at=paris(when)
    )


def incident(incident_id: str, kind: str, when: datetime, **fields: Any) -> Event:
    return events.incident_event(incident_id, kind, source_service="dpo", occurred_at=when, **fields)


def opened(incident_id: str, aware: datetime) -> Event:
    return incident(
        incident_id,
        "opened",
        aware,
        recipient_id=CLOUDNEST.recipient_id,
        window_from=aware - 240 * H,
        window_to=aware,
        aware_at=aware,
        risk="low",
    )


EVENTS = [
    # Due Friday 9 May (8 May is Victory Day): open and overdue at AT.
    request("cand-a", "requested", "2025-04-08T10:00"),
    # Due Monday 21 July (20 July is a Sunday): open, not within the week.
    request("cand-b", "requested", "2025-06-20T10:00", right="erasure"),
    # Due Thursday 3 July: open and due within the week.
    request("cand-e", "requested", "2025-06-03T10:00"),
    # Answered in time: in no figure.
    request("cand-c", "requested", "2025-03-03T10:00"),
    request("cand-c", "fulfilled", "2025-03-20T10:00"),
    # Aware 30 h before AT: 42 h left to notify the authority.
    opened("inc-open", AT - 30 * H),
    # Aware 80 h before AT, never notified: 8 h overdue, flagged.
    opened("inc-late", AT - 80 * H),
    # Notified and closed: not in the panel.
    opened("inc-closed", AT - 200 * H),
    incident("inc-closed", "authority_notified", AT - 190 * H),
    incident("inc-closed", "closed", AT - 100 * H),
    # A marketing consent given before 2027-01-01, which asks marketing again [13]: awaiting re-consent.
    consent("cand-m", Purpose.MARKETING, ConsentAction.GRANTED, paris("2025-05-01T09:00")),
]


@pytest.fixture(scope="module")
def sink(chdb_dsn: str) -> ClickHouseSink:
    sink = ClickHouseSink(chdb_dsn, f"calendar_{uuid.uuid4().hex[:8]}")
    run_events(((e.topic, e.record) for e in EVENTS), Processor(), sink, as_of=AT)
    return sink


def test_the_panel_counts_requests_incidents_and_reconsent_at_one_instant(sink: ClickHouseSink) -> None:
    panel = overview(sink.reader, as_of=AT)["calendar"]
    assert panel["as_of"] == AT.isoformat()
    assert panel["requests"] == {"open": 3, "due_this_week": 1, "overdue": 1}
    by_id = {row["incident_id"]: row for row in panel["incidents_open"]}
    assert set(by_id) == {"inc-open", "inc-late"}
    assert (by_id["inc-open"]["hours_left"], by_id["inc-open"]["flagged"]) == (42.0, False)
    assert (by_id["inc-late"]["hours_left"], by_id["inc-late"]["flagged"]) == (-8.0, True)
    assert by_id["inc-open"]["authority_due"] == (AT + 42 * H).isoformat()
    assert panel["awaiting_reconsent"] == 1


def test_a_week_later_the_due_request_is_overdue_and_the_open_incident_too(sink: ClickHouseSink) -> None:
    """The same facts at another instant: cand-e's Thursday has passed; inc-open's 72 hours too [Art. 12(3), 33(1)]."""
    panel = overview(sink.reader, as_of=AT + timedelta(days=7))["calendar"]
    assert panel["requests"] == {"open": 3, "due_this_week": 0, "overdue": 2}
    assert sorted((row["incident_id"], row["flagged"]) for row in panel["incidents_open"]) == [
        ("inc-late", True),
        ("inc-open", True),
    ]


def test_the_cli_prints_the_panel(sink: ClickHouseSink) -> None:
    from rich.console import Console

    console = Console(record=True, width=160)
    _print_calendar(console, overview(sink.reader, as_of=AT)["calendar"])
    text = console.export_text()
    assert "3 open, 1 due within 7 days, 1 overdue" in text
    assert "Consents awaiting re-consent [13]: 1" in text
    assert "inc-late" in text and "-8.0" in text and "inc-closed" not in text


def test_the_overview_command_shows_the_panel_as_json(sink: ClickHouseSink, chdb_dsn: str) -> None:
    result = CliRunner().invoke(
        main,
        ["overview", "--dsn", chdb_dsn, "--database", sink.database, "--json"],
    )
    assert result.exit_code == 0, result.output
    panel = json.loads(result.output)["calendar"]
    assert set(panel) == {"as_of", "requests", "incidents_open", "awaiting_reconsent"}
    assert panel["awaiting_reconsent"] == 1
