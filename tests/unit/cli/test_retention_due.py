"""``consentflow retention due --as-of T`` as a user runs it, for a T before and after the run's clock [2.3].

Events are built with ``consentflow.contracts.events`` and written with ``consentflow.contracts.eventfile.write_events``; the file goes
through ``consentflow run`` into a chDB directory, and ``retention due`` is asked in another process, as a DPO
would. The run's clock is the file's latest event time (1 July 2025). Due instants are written out by hand in UTC:
the data is kept through a period's last day in Paris, the action falls due at 00:00 Paris on the next day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from consentflow.contracts.eventfile import write_events
from consentflow.policy.vocabulary import ProfileAction
from tests.support.builders import QUICKPAY
from tests.support.retention_events import PROFILE, payment, profile

#: The file's latest event time: the clock `consentflow run` ticks at.
CLOCK = datetime(2025, 7, 1, 8, tzinfo=UTC)
#: cand-a: last use 1 June 2022 -> kept through 1 June 2025 [2.3.1], archived 00:00 Paris 2 June (22:00 UTC).
A_ARCHIVE = "2025-06-01T22:00:00+00:00"
#: cand-c: closed 29 February 2024 -> kept through 28 February 2025 [2.3.1], archived 00:00 Paris 1 March (23:00 UTC).
C_ARCHIVE = "2025-02-28T23:00:00+00:00"
#: cand-b: last use 15 January 2024 -> archived after 15 January 2027 [2.3.1], the payment's data kept meanwhile.
B_ARCHIVE = "2027-01-15T23:00:00+00:00"
#: cand-d: registered at the clock, 1 July 2025 (summer) -> archived 00:00 Paris 2 July 2028 [2.3.1].
D_ARCHIVE = "2028-07-01T22:00:00+00:00"
#: cand-b: paid 1 May 2020 -> financial year 2020, ten years: deleted 00:00 Paris 1 January 2031 [2.3.2].
B_DELETE = "2030-12-31T23:00:00+00:00"


def _consentflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consentflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"COLUMNS": "300"},  # a wide terminal: rows on one line each
    )


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A chDB directory filled by ``consentflow run`` from a small hand-built file."""
    directory = tmp_path_factory.mktemp("retention-due")
    events = [
        QUICKPAY.event(),
        profile(ProfileAction.REGISTERED, datetime(2021, 3, 10, 9, tzinfo=UTC), PROFILE, "cand-a"),
        profile(ProfileAction.USED, datetime(2022, 6, 1, 10, tzinfo=UTC), (), "cand-a"),
        profile(ProfileAction.REGISTERED, datetime(2020, 4, 1, 9, tzinfo=UTC), PROFILE, "cand-b"),
        payment(datetime(2020, 5, 1, 10, tzinfo=UTC), "cand-b"),
        profile(ProfileAction.USED, datetime(2024, 1, 15, 10, tzinfo=UTC), (), "cand-b"),
        profile(ProfileAction.REGISTERED, datetime(2023, 9, 1, 9, tzinfo=UTC), PROFILE, "cand-c"),
        profile(ProfileAction.CLOSED, datetime(2024, 2, 29, 12, tzinfo=UTC), (), "cand-c"),
        profile(ProfileAction.REGISTERED, CLOCK, PROFILE, "cand-d"),
    ]
    path = directory / "events.avro"
    write_events(path, events)
    target = f"chdb://{directory / 'db'}"
    ran = _consentflow("run", str(path), "--dsn", target, "--no-overview")
    assert ran.returncode == 0, ran.stderr
    return target


def due(dsn: str, as_of: str) -> list[dict[str, Any]]:
    """``retention due --as-of`` as JSON."""
    asked = _consentflow("retention", "due", "--as-of", as_of, "--dsn", dsn, "--json")
    assert asked.returncode == 0, asked.stderr
    rows: list[dict[str, Any]] = json.loads(asked.stdout)
    return rows


def listed(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, bool]]:
    return [(r["subject_id"], r["action"], r["due_at"], r["emitted"]) for r in rows]


def test_a_future_instant_lists_the_actions_the_plan_holds_not_yet_emitted(dsn: str) -> None:
    """Finding 6: after the run's clock, the actions the holdings' plans carry are due too, marked not yet emitted,
    with the clock each plan was computed at (the latest event time of its subject)."""
    rows = due(dsn, "2031-01-01T00:00:00+01:00")  # 00:00 Paris on 1 January 2031: B's deletion falls due
    assert listed(rows) == [
        ("cand-c", "archive", C_ARCHIVE, True),
        ("cand-a", "archive", A_ARCHIVE, True),
        ("cand-b", "archive", B_ARCHIVE, False),
        ("cand-b", "keep_for_legal_period", B_ARCHIVE, False),
        ("cand-d", "archive", D_ARCHIVE, False),
        ("cand-b", "delete", B_DELETE, False),
    ]
    plans = {r["subject_id"]: r["planned_as_of"] for r in rows}
    assert plans == {
        "cand-a": "2022-06-01T10:00:00+00:00",
        "cand-b": "2024-01-15T10:00:00+00:00",
        "cand-c": "2024-02-29T12:00:00+00:00",
        "cand-d": CLOCK.isoformat(),
    }
    delete = rows[-1]
    assert (delete["policy_section"], delete["categories"]) == ("2.3.2", ["banking", "financial_transactions"])
    # One second before 00:00 Paris on 1 January 2031 the financial data is still kept.
    assert ("cand-b", "delete", B_DELETE, False) not in listed(due(dsn, "2030-12-31T23:59:59+01:00"))


@pytest.mark.parametrize(
    ("as_of", "subjects"),
    [
        ("2025-02-28T22:59:59Z", []),  # 23:59:59 Paris on 28 February: C's data is kept through that day
        ("2025-03-01T00:00:00+01:00", ["cand-c"]),
        ("2025-06-01T23:59:59+02:00", ["cand-c"]),  # A's data is kept through 1 June 2025 in Paris
        ("2025-06-02T00:00:00+02:00", ["cand-c", "cand-a"]),
        ("2025-06-02", ["cand-c", "cand-a"]),  # no zone: UTC
    ],
)
def test_a_past_instant_lists_what_had_fallen_due_by_then(dsn: str, as_of: str, subjects: list[str]) -> None:
    """Before the run's clock, the answer is what had fallen due by then, each action once, emitted."""
    rows = due(dsn, as_of)
    assert [r["subject_id"] for r in rows] == subjects
    assert all(r["emitted"] and r["action"] == "archive" for r in rows)


def test_the_table_says_what_is_not_yet_emitted_and_the_clock_of_the_plans(dsn: str) -> None:
    shown = _consentflow("retention", "due", "--as-of", "2040-01-01", "--dsn", dsn)
    assert shown.returncode == 0, shown.stderr
    assert "Retention actions due (6; 4 not yet emitted; plans on events up to 2025-07-01 08:00:00Z)" in shown.stdout
    assert shown.stdout.count("not yet") == 5  # the title and four rows
    (delete,) = [line for line in shown.stdout.splitlines() if "delete" in line]
    assert "2030-12-31 23:00:00Z" in delete and "not yet" in delete and "2024-01-15 10:00:00Z" in delete


def test_an_emitted_action_the_plan_no_longer_holds_is_still_listed_once(chdb_dsn: str, database: str) -> None:
    """An action the pipeline emitted stays in the answer though a later fact moved the plan's date (it fell due);
    an action both emitted and planned is listed once, emitted, with its plan's clock."""
    from consentflow.core.retention import action_id
    from consentflow.sinks import compliance_queries
    from consentflow.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(chdb_dsn, database)
    moved, kept = datetime(2025, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 1, 23, tzinfo=UTC)
    latest = datetime(2023, 3, 1, 10, tzinfo=UTC)
    for due_at in (moved, kept):
        sink.add(
            "retention",
            {
                "action_id": action_id("s1", "archive", due_at),
                "subject_id": "s1",
                "action": "archive",
                "categories": ["identity"],
                "due_at": due_at,
                "policy_section": "2.3.1",
                "basis_event_id": None,
                "reason": "three years after the last use",
            },
        )
    planned = {"action": "archive", "categories": ["identity"], "policy_section": "2.3.1", "basis_event_id": None}
    sink.add(
        "holdings",
        {
            "subject_id": "s1",
            "revision": 3,
            "latest_event_at": latest,
            "account_kind": "applicant",
            "categories_held": ["identity"],
            "registered_at": None,
            "last_use": latest,
            "closed_at": None,
            "last_negative": None,
            "suspended_at": None,
            "archive_at": kept,
            "archive_section": "2.3.1",
            "archive_reason": "three years after the last use",
            "planned": [planned | {"due_at": kept, "reason": "three years after the last use"}],
        },
    )
    sink.flush()
    rows = compliance_queries.retention_due(sink.reader, datetime(2030, 1, 1, tzinfo=UTC))
    assert [(r.due_at, r.emitted, r.planned_as_of) for r in rows] == [(moved, True, None), (kept, True, latest)]
    assert [r.due_at for r in compliance_queries.retention_due(sink.reader, moved)] == [moved]
    assert [r.due_at for r in compliance_queries.retention_due(sink.reader, datetime(2030, 1, 1, tzinfo=UTC), planned=False)] == [
        moved,
        kept,
    ]
