"""The access export's HTML speaks to the subject in plain words [8.1, 12], and its retention wording never contradicts
itself [2.3]: a date before the export's instant in the past tense, one after it as a plan (the issue's page said
"Your data is archived on 2024-12-22" beside "No retention action is due yet")."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema

from consentflow.http.access_page import render_access_page, retention_section
from consentflow.sinks.subject_access import export_schema

MADE = "2026-12-06T15:00:00+00:00"


def _action(kind: str, due: str, categories: list[str]) -> dict[str, Any]:
    return {
        "action": kind,
        "categories": categories,
        "due_at": due,
        "policy_section": "2.3.1",
        "reason": "3 years after the last use of an open account",
        "basis_event_id": "e-9",
    }


def _plan(archive_at: str | None, *actions: dict[str, Any]) -> dict[str, Any]:
    return {
        "latest_event_at": "2021-12-22T10:00:00+00:00",
        "archive_at": archive_at,
        "policy_section": "2.3.1",
        "reason": "3 years after the last use of an open account",
        "lifecycle": {
            "registered_at": "2020-12-01T09:00:00+00:00",
            "last_use": "2021-12-22T10:00:00+00:00",
            "closed_at": None,
            "last_negative": None,
            "suspended_at": None,
        },
        "actions": list(actions),
    }


def _export(plan: dict[str, Any] | None, emitted: list[dict[str, Any]]) -> dict[str, Any]:
    """A complete ``SubjectAccessExport/v3``, checked against its schema, so the page is fed what the API sends."""
    export = {
        "schema": "SubjectAccessExport/v3",
        "subject_id": "subj-7",
        "as_of": None,
        "generated_at": MADE,
        "policy_version": "2020-11-14",
        "legal_references": {"policy_sections": ["8.1", "8.2", "12"], "gdpr_articles": ["Art. 15", "Art. 20"]},
        "categories_held": ["contact", "device_network"],
        "consent_records": [
            {
                "record_id": "subj-7:cookies_advertising",
                "subject_id": "subj-7",
                "purpose": "cookies_advertising",
                "needs_consent": True,
                "legal_basis": "eu-gdpr:A6-1-a",
                "state": "dpv:ConsentGiven",
                "state_since": "2021-01-05T08:00:00+00:00",
                "notice_id": "notice-cookies_advertising-v1",
                "policy_version": "2020-11-14",
                "collection_method": "cookie_banner",
                "withdrawal_method": None,
                "recipients": ["adnet-us"],
                "retention": {"policy_section": "2.3.1", "archive_due_at": plan["archive_at"] if plan else None},
                "events": [
                    {
                        "event_id": "e-1",
                        "sequence": 1,
                        "occurred_at": "2021-01-05T08:00:00+00:00",
                        "action": "granted",
                        "state": "dpv:ConsentGiven",
                        "channel": "cookie_banner",
                        "notice_id": "notice-cookies_advertising-v1",
                        "policy_version": "2020-11-14",
                        "source_service": "cookie-banner",
                        "entry_hash": "ab" * 32,
                        "source": None,
                    }
                ],
            }
        ],
        "recipients": [
            {
                "recipient_id": "adnet-us",
                "name": "AdNet Americas, Inc.",
                "kind": "marketing_provider",
                "country": "US",
                "in_eea": False,
                "categories": ["device_network"],
                "purposes": [{"purpose": "cookies_advertising", "legal_basis": "eu-gdpr:A6-1-a"}],
                "transfer_mechanisms": [{"mechanism": "scc", "gdpr_basis": "eu-gdpr:A46-2-c"}],
                "first_sent": "2021-01-06T08:00:00+00:00",
                "last_sent": "2021-11-06T08:00:00+00:00",
            }
        ],
        "countries": {
            "stored": ["FR"],
            "sent": [
                {
                    "country": "US",
                    "in_eea": False,
                    "recipients": ["adnet-us"],
                    "transfer_mechanisms": [{"mechanism": "scc", "gdpr_basis": "eu-gdpr:A46-2-c"}],
                    "transfers": 4,
                    "first": "2021-01-06T08:00:00+00:00",
                    "last": "2021-11-06T08:00:00+00:00",
                }
            ],
        },
        "retention_plan": plan,
        "retention_actions": [{"action_id": f"a-{i}", **a} for i, a in enumerate(emitted)],
        "erasure_notices": [],
        "violations": [],
        "record_proof": None,
        "record_proof_fault": None,
    }
    jsonschema.validate(export, export_schema())
    return export


def _visible(page: str) -> str:
    """The text a reader sees: no tags, no style, entities left as they are."""
    body = page.split("</head>", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


ARCHIVE = "2024-12-22T10:00:00+00:00"


def test_the_issues_page_no_longer_contradicts_itself() -> None:
    """Archive date past, nothing recorded: past tense, and the unrecorded action said to be overdue."""
    page = _visible(render_access_page(_export(_plan(ARCHIVE, _action("archive", ARCHIVE, ["contact"])), [])))
    assert "is archived on" not in page and "No retention action is due yet" not in page
    assert "Your data was due to be archived on 2024-12-22 10:00:00 UTC" in page
    assert "The archiving is not recorded yet" in page
    assert "None is recorded yet, though 1 action(s) fell due before 2026-12-06 15:00:00 UTC" in page
    assert re.search(r"Fell due before 2026-12-06 15:00:00 UTC .* 2024-12-22 10:00:00 UTC archive .* not yet", page)
    assert "No retention action is planned after 2026-12-06 15:00:00 UTC" in page


def test_a_future_date_is_a_plan_and_a_recorded_one_is_past() -> None:
    future = "2029-01-01T00:00:00+00:00"
    planned = retention_section(_plan(future, _action("archive", future, ["contact"])), [], datetime(2026, 12, 6, tzinfo=UTC))
    assert "Your data will be archived on <strong>2029-01-01 00:00:00 UTC</strong>" in planned
    assert "None: no retention action was due before 2026-12-06 00:00:00 UTC." in planned
    assert "No retention action fell due before" in planned
    done = _action("archive", ARCHIVE, ["contact"])
    recorded = retention_section(_plan(ARCHIVE, done), [{"action_id": "a-1", **done}], datetime(2026, 12, 6, tzinfo=UTC))
    assert "Your data was archived on <strong>2024-12-22 10:00:00 UTC</strong>" in recorded
    assert "not recorded" not in recorded and "<td>yes</td>" in recorded
    assert "1 action(s) recorded (marked “yes” above).</p>" in recorded and recorded.count("<td>archive</td>") == 1
    # Seen from an as-of instant before the date, the same plan is a plan again.
    before = retention_section(_plan(ARCHIVE, done), [], datetime(2023, 1, 1, tzinfo=UTC))
    assert "will be archived on" in before and "<td>archive</td>" in before


def test_the_subject_reads_words_not_terms() -> None:
    raw = render_access_page(_export(_plan(None), []))
    page = _visible(raw)
    for term in ("dpv:", "eu-gdpr:", "cookies_advertising", "cookie_banner", "marketing_provider", "device_network"):
        assert term not in page.split("History of")[0], term  # the summary above the histories
    assert "Advertising cookies" in page and "given" in page and "your consent (GDPR Art. 6(1)(a))" in page
    assert "the cookie banner" in page and "marketing provider" in page
    assert "Advertising cookies basis: your consent (GDPR Art. 6(1)(a))" in page  # the basis on the recipient's line
    assert "standard contractual clauses (GDPR Art. 46(2)(c))" in page and "United States (US)" in page
    # The legal name first, the id beside it; the notice id stays as evidence in the event's history only.
    assert '<td>AdNet Americas, Inc.<span class="id">adnet-us</span></td>' in raw
    assert page.count("notice-cookies_advertising-v1") == 1 and "History of" in page.split("notice-cookies_advertising")[0]


def test_the_recipients_table_fits_the_page() -> None:
    raw = render_access_page(_export(_plan(None), []))
    (table,) = [t for t in re.findall(r"<table>.*?</table>", raw) if "purposes and legal basis" in t]
    widths = [int(w) for w in re.findall(r'<col class="w(\d+)">', table)]
    assert len(widths) == table.count("<th>") == 8 and sum(widths) == 100
    assert "table-layout:fixed" in raw and "overflow-wrap:anywhere" in raw
    assert "@page{size:A4" in raw and "@media print" in raw
    assert "style=" not in raw  # the page's policy allows no style attribute


def test_a_hostile_name_stays_text() -> None:
    export = _export(_plan(None), [])
    hostile = copy.deepcopy(export)
    hostile["recipients"][0]["name"] = '<img src=x onerror=alert(1)>"'
    raw = render_access_page(hostile)
    assert "<img" not in raw and "&lt;img src=x onerror=alert(1)&gt;&quot;" in raw
