"""The affected subjects' access exports show the incidents that touched their data [12; GDPR Art. 33(5), 34(1)]:
every incident whose recipient received the subject's data in the window, open or closed, with the categories
concerned and when the subject was told; JSON (``SubjectAccessExport/v3``, its optional ``incidents``) and the page.

The tables hold the scenario of ``tests/support/incident_scenario.py`` and two incidents at cloudnest.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import jsonschema
import pytest

from consentflow.contracts import events
from consentflow.core.processor import Processor
from consentflow.http.access_page import render_access_page
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.subject_access import export_schema, subject_access_export
from consentflow.streams.embedded import run_events
from tests.support.incident_scenario import AFFECTED, AWARE, BEFORE, RECIPIENT, WINDOW_FROM, WINDOW_TO, scenario_events

H = timedelta(hours=1)


def _iso(hours: float) -> str:
    return (AWARE + hours * H).isoformat()


@pytest.fixture(scope="module")
def sink(chdb_dsn: str) -> ClickHouseSink:
    """A closed high-risk incident over the whole window (subj-b2 told), an open low-risk one over its first two days."""
    opened = [
        events.incident_event(
            incident_id, "opened", recipient_id=RECIPIENT, window_from=WINDOW_FROM, window_to=window_to, aware_at=AWARE,
            risk=risk, source_service="dpo", occurred_at=AWARE,
        )
        for incident_id, risk, window_to in (("inc-high", "high", WINDOW_TO), ("inc-low", "low", WINDOW_FROM + 48 * H))
    ]  # fmt: skip
    later = [
        events.incident_event("inc-high", "authority_notified", source_service="dpo", occurred_at=AWARE + 10 * H),
        events.incident_event(
            "inc-high", "subject_notified", subject_id="subj-b2", source_service="dpo", occurred_at=AWARE + 20 * H
        ),
        events.incident_event("inc-high", "closed", source_service="dpo", occurred_at=AWARE + 50 * H),
    ]
    sink = ClickHouseSink(chdb_dsn, f"incident_export_{uuid.uuid4().hex[:8]}")
    run_events(((e.topic, e.record) for e in [*scenario_events(), *opened, *later]), Processor(), sink)
    return sink


def _export(sink: ClickHouseSink, subject: str) -> dict[str, Any]:
    return subject_access_export(sink.reader, subject)


def test_each_affected_subject_sees_the_incidents_that_touched_its_data(sink: ClickHouseSink) -> None:
    """subj-b1's data reached cloudnest on day 1 (both windows), subj-b2's on day 2 (the first window ends there,
    excluded), subj-b3's on day 3: each sees the incidents whose window holds it, closed ones too (Art. 33(5))."""
    got = {s: {i["incident_id"]: i for i in _export(sink, s)["incidents"]} for s in AFFECTED}
    assert {s: sorted(i) for s, i in got.items()} == {
        "subj-b1": ["inc-high", "inc-low"],
        "subj-b2": ["inc-high"],
        "subj-b3": ["inc-high"],
    }
    assert got["subj-b2"]["inc-high"] == {
        "incident_id": "inc-high", "recipient_id": RECIPIENT, "window_from": WINDOW_FROM.isoformat(),
        "window_to": WINDOW_TO.isoformat(), "aware_at": AWARE.isoformat(), "risk": "high",
        "categories": ["contact", "identity"], "authority_notified_at": _iso(10), "notified_at": _iso(20),
        "closed_at": _iso(50),
    }  # fmt: skip
    assert (got["subj-b1"]["inc-low"]["categories"], got["subj-b1"]["inc-low"]["notified_at"]) == (["contact"], None)
    assert _export(sink, BEFORE)["incidents"] == []  # its data reached cloudnest before the window


def test_the_export_with_incidents_follows_the_shipped_schema(sink: ClickHouseSink) -> None:
    """``incidents`` is an optional member of v3: the shipped schema takes an export with it, and refuses an incident
    with an unknown member (the schema refuses unknown members)."""
    validator = jsonschema.Draft202012Validator(export_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    export = _export(sink, "subj-b1")
    validator.validate(export)
    validator.validate({k: v for k, v in export.items() if k != "incidents"})  # an export made before
    broken = dict(export, incidents=[dict(export["incidents"][0], reasons="free text")])
    assert not validator.is_valid(broken)


def test_the_page_shows_the_incidents(sink: ClickHouseSink) -> None:
    """The subject's page names each incident, its risk and when the subject was told, or that nothing concerned it."""
    page = render_access_page(_export(sink, "subj-b2"))
    assert "Data breaches that concerned your data" in page
    assert "inc-high" in page and "inc-low" not in page
    assert "No data breach concerned your data." in render_access_page(_export(sink, BEFORE))
