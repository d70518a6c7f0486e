"""``consentflow incident`` on the embedded path: record a breach, notify, list with hours left, show whom to tell
[12; GDPR Art. 33, 34].

The tables hold the scenario of ``tests/support/incident_scenario.py``: cloudnest received three subjects' data in
the window, a fourth's before it, and the pipeline's clock stands ten days after awareness.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from consentflow.cli import main
from consentflow.core.processor import Processor
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.embedded import run_events
from tests.support.incident_scenario import AFFECTED, AWARE, CLOCK, RECIPIENT, WINDOW_FROM, WINDOW_TO, scenario_events

H = timedelta(hours=1)


@pytest.fixture
def database(chdb_dsn: str) -> str:
    name = f"incidents_{uuid.uuid4().hex[:8]}"
    run_events(((e.topic, e.record) for e in scenario_events()), Processor(), ClickHouseSink(chdb_dsn, name))
    return name


@pytest.fixture
def cli(chdb_dsn: str, database: str) -> Any:
    def invoke(*args: str) -> Result:
        return CliRunner(env={"COLUMNS": "300"}).invoke(main, [*args, "--dsn", chdb_dsn, "--database", database])

    return invoke


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def _open(cli: Any, incident_id: str, risk: str = "low", *extra: str) -> Result:
    return _ok(
        cli(
            "incident", "open", RECIPIENT, "--from", WINDOW_FROM.isoformat(), "--to", WINDOW_TO.isoformat(),
            "--aware-at", AWARE.isoformat(), "--risk", risk, "--id", incident_id, "--embedded", *extra,
        )
    )  # fmt: skip


def _listed(cli: Any, *extra: str) -> dict[str, dict[str, Any]]:
    return {i["incident_id"]: i for i in json.loads(_ok(cli("incident", "list", "--json", *extra)).stdout)}


def _at(hours: float) -> str:
    return (AWARE + hours * H).isoformat()


def test_the_authority_clock_in_time_late_with_and_without_reasons_and_overdue(cli: Any) -> None:
    """§12 / GDPR Art. 33(1): four incidents at cloudnest, all aware at the same instant, judged at the pipeline's
    clock (the latest event time held, 240 h after awareness): notified at 70 h (in time), at 75 h without reasons
    (flagged), at 75 h with reasons (accepted), never (overdue by 168 h, flagged)."""
    opened = _open(cli, "inc-70", "low", "--categories", "contact,identity")
    assert "due by 2024-05-19 09:00:00Z" in opened.stdout  # aware 2024-05-16 09:00 + 72 h
    for incident_id in ("inc-75", "inc-75r", "inc-never"):
        _open(cli, incident_id)
    _ok(cli("incident", "notify-authority", "inc-70", "--at", _at(70), "--embedded"))
    _ok(cli("incident", "notify-authority", "inc-75", "--at", _at(75), "--embedded"))
    _ok(cli("incident", "notify-authority", "inc-75r", "--at", _at(75), "--reasons", "processor-reported-late", "--embedded"))
    listed = _listed(cli)
    state = {i: (row["notification"], row["flagged"], row["hours_left"]) for i, row in listed.items()}
    assert state == {
        "inc-70": ("in_time", False, None),
        "inc-75": ("late_without_reasons", True, None),
        "inc-75r": ("late_with_reasons", False, None),
        "inc-never": ("overdue", True, -168.0),
    }
    row = listed["inc-70"]
    assert datetime.fromisoformat(row["as_of"]) == CLOCK
    assert (row["affected_subjects"], row["declared_categories"]) == (len(AFFECTED), ["contact", "identity"])
    assert {c["category"]: c["subjects"] for c in row["affected_categories"]} == {"contact": 2, "identity": 2}
    assert (row["notified_after_hours"], listed["inc-75r"]["delay_reason"]) == (70.0, "processor-reported-late")
    before = _listed(cli, "--as-of", _at(71))  # judged at 71 h: the later notifications are not known yet
    assert {i: (r["notification"], r["hours_left"]) for i, r in before.items()} == {
        "inc-70": ("in_time", None),
        **{i: ("pending", 1.0) for i in ("inc-75", "inc-75r", "inc-never")},
    }
    table = _ok(cli("incident", "list")).stdout
    assert "inc-never" in table and "-168.0" in table


def test_a_closed_incident_leaves_the_open_list_and_stays_in_the_register(cli: Any) -> None:
    """GDPR Art. 33(5): every breach stays documented; ``--open`` shows those not closed."""
    _open(cli, "inc-a")
    _open(cli, "inc-b")
    _ok(cli("incident", "close", "inc-a", "--at", _at(100), "--embedded"))
    assert set(_listed(cli)) == {"inc-a", "inc-b"}
    assert set(_listed(cli, "--open")) == {"inc-b"}


def test_a_high_risk_incident_shows_whom_to_tell_and_records_who_was_told(cli: Any, tmp_path: Any) -> None:
    """§12 / GDPR Art. 34(1): a high risk: the subjects cloudnest received in the window are to be told (not the one
    it received before); one told by name, then the rest with --all; ``show`` lists who was told and who not yet."""
    _open(cli, "inc-high", "high")
    _ok(cli("incident", "notify-subjects", "inc-high", "subj-b1", "--at", _at(30), "--embedded"))
    shown = json.loads(_ok(cli("incident", "show", "inc-high", "--json")).stdout)
    art34 = shown["to_inform"]
    assert art34["required"] and art34["affected"] == sorted(AFFECTED)
    assert [(t["subject_id"], t["notified_at"]) for t in art34["told"]] == [("subj-b1", _at(30))]
    assert art34["not_told"] == ["subj-b2", "subj-b3"]
    assert [f["kind"] for f in shown["facts"]] == ["opened", "subject_notified"]
    out = tmp_path / "to-tell.txt"
    _ok(cli("incident", "show", "inc-high", "--out", str(out)))
    assert out.read_text() == "subj-b2\nsubj-b3\n"
    _ok(cli("incident", "notify-subjects", "inc-high", "--all", "--at", _at(40), "--embedded"))
    after = json.loads(_ok(cli("incident", "show", "inc-high", "--json")).stdout)["to_inform"]
    assert (after["not_told"], [t["subject_id"] for t in after["told"]]) == ([], sorted(AFFECTED))
    assert _listed(cli)["inc-high"]["subjects_told"] == len(AFFECTED)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["open", RECIPIENT, "--from", WINDOW_TO.isoformat(), "--to", WINDOW_FROM.isoformat(), "--aware-at", AWARE.isoformat(),
          "--risk", "low"], "window"),
        (["open", "cloudnets", "--from", WINDOW_FROM.isoformat(), "--to", WINDOW_TO.isoformat(), "--aware-at",
          AWARE.isoformat(), "--risk", "low"], "unknown recipient 'cloudnets'"),
        (["notify-authority", "inc-nowhere", "--at", _at(1)], "unknown incident 'inc-nowhere'"),
        (["notify-authority", "inc-nowhere", "--at", _at(1), "--reasons", "x" * 200], "delay_reason"),
        (["notify-subjects", "inc-nowhere", "--at", _at(1)], "or --all"),
        (["notify-subjects", "inc-nowhere", "someone@example.com", "--at", _at(1)], "subject_id"),
    ],
    ids=["window-reversed", "unknown-recipient", "unknown-incident", "long-reason", "nobody-named", "subject-not-pseudonymous"],
)  # fmt: skip
def test_a_refused_incident_event_is_one_line_and_nothing_is_stored(cli: Any, args: list[str], says: str) -> None:
    """The embedded way in checks what the gate checks and names it; the register stays empty."""
    result = cli("incident", *args, "--embedded")
    assert result.exit_code == 1 and says in result.output, result.output
    assert _listed(cli) == {}
