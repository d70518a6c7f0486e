"""The DPO's read-only commands through click's runner, on chDB, against answers computed from the generated events.

Successful commands exit 0 and print JSON (``--json``) or tables; every bad
argument, unknown id or unreachable service ends with one line naming it and a
non-zero exit, before or without touching the tables.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from consentflow.cli import main
from consentflow.sinks.clickhouse import ClickHouseSink
from tests.support import dpo_expected as expected
from tests.support.dpo_expected import Dataset

DATABASE = "dpo_cli"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, chdb_dsn: str) -> Dataset:
    return expected.load(tmp_path_factory.mktemp("dpo-cli"), chdb_dsn, DATABASE)


@pytest.fixture(scope="module")
def run(data: Dataset, chdb_dsn: str) -> Any:
    """``run(*args)``: the command against the dataset's tables; ``run.json(*args)`` parses its ``--json`` output."""

    class Runner:
        def __call__(self, *args: str, dsn: str = chdb_dsn, database: str = DATABASE) -> Result:
            # A wide terminal, so that tables print ids whole.
            return CliRunner(env={"COLUMNS": "300"}).invoke(main, [*args, "--dsn", dsn, "--database", database])

        def json(self, *args: str) -> Any:
            result = self(*args, "--json")
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)

    return Runner()


def _iso(t: datetime) -> str:
    return t.isoformat()


def _subjects(data: Dataset, n: int) -> list[str]:
    return sorted(random.Random(n).sample(data.subjects(), n))


def test_who_has_prints_every_recipient_with_categories_purposes_country_and_mechanism(data: Dataset, run: Any) -> None:
    middle = data.processings[len(data.processings) // 2].at
    for subject in _subjects(data, 15):
        for as_of in (None, middle):
            args = ["who-has", subject] + ([] if as_of is None else ["--as-of", _iso(as_of)])
            asked = datetime.now(UTC)
            answer = run.json(*args)
            want = expected.who_has(data, subject, as_of)
            assert answer["subject_id"] == subject
            if as_of is None:  # the default is now, named in the answer
                assert asked <= datetime.fromisoformat(answer["as_of"]) <= datetime.now(UTC)
            else:
                assert answer["as_of"] == _iso(as_of)
            for r in answer["recipients"]:  # the recorded bases (issue 23): one entry per purpose; the rest as before
                bases, differs = r.pop("legal_bases"), r.pop("legal_basis_differs")
                assert sorted(bases) == r["purposes"] and all(bases.values()) and set(differs) <= set(bases)
            assert {r.pop("recipient_id"): r for r in answer["recipients"]} == {
                recipient: dict(w, first=_iso(w["first"]), last=_iso(w["last"])) for recipient, w in want.items()
            }


def test_who_has_reads_any_zone_and_a_naive_time_as_utc(data: Dataset, run: Any) -> None:
    subject = data.processings[0].subject_id
    utc = run.json("who-has", subject, "--as-of", "2021-06-01T12:00:00")
    assert run.json("who-has", subject, "--as-of", "2021-06-01T14:00:00+02:00") == utc
    assert run.json("who-has", subject, "--as-of", "2021-06-01T12:00:00Z") == utc
    assert utc["as_of"] == "2021-06-01T12:00:00+00:00"


def test_who_has_as_a_table(data: Dataset, run: Any) -> None:
    subject = max(data.subjects(), key=lambda s: len(expected.who_has(data, s)))
    result = run("who-has", subject)
    assert result.exit_code == 0, result.output
    for recipient, holding in expected.who_has(data, subject).items():
        line = next(line for line in result.stdout.splitlines() if f" {recipient} " in line)
        assert holding["recipient_kind"] in line and (holding["country"] or "unknown") in line


def test_countries_prints_storage_and_every_country_sent_to(data: Dataset, run: Any) -> None:
    for subject in _subjects(data, 10):
        answer = run.json("countries", subject)
        stored = expected.countries_stored(data, datetime.now(UTC))
        assert answer["stored"] == sorted(stored)  # the policy's storage country and the hosting subcontractors' [7, 4.3]
        assert {c["country"]: c["recipients"] for c in answer["storage"]} == stored
        assert "IE" in stored and all(c["in_eea"] and not c["outside_eu_flagged"] for c in answer["storage"])
        got = {
            c["country"]: {"recipients": c["recipients"], "mechanisms": c["mechanisms"], "edges": c["edges"]}
            for c in answer["sent"]
        }
        assert got == expected.countries_sent(data, subject)


def test_consent_prints_state_and_evidence_per_purpose(data: Dataset, run: Any) -> None:
    withdrawal = next(r for r in data.of_topic("consent") if r["action"] == "withdrawn")
    subject, purpose, t = withdrawal["subject_id"], withdrawal["purpose"], withdrawal["occurred_at"]
    for as_of in (t - timedelta(microseconds=1), t, None):
        args = ["consent", subject] + ([] if as_of is None else ["--as-of", _iso(as_of)])
        answer = run.json(*args)
        want = expected.consent(data, subject, as_of)
        assert {p["purpose"]: p["state"] for p in answer["purposes"]} == {k: v[0] for k, v in want.items()}
        for p in answer["purposes"]:
            evidence = [(f["event_id"], f["channel"], f["policy_version"], f["source_service"]) for f in p["history"]]
            assert evidence == [
                (r["event_id"], r["channel"], r["policy_version"], r["source_service"]) for r in want[p["purpose"]][1]
            ]
    one = run.json("consent", subject, "--purpose", purpose, "--as-of", _iso(t))
    assert [(p["purpose"], p["state"]) for p in one["purposes"]] == [(purpose, "withdrawn")]
    table = run("consent", subject, "--purpose", purpose, "--as-of", _iso(t))
    assert table.exit_code == 0 and "withdrawn" in table.stdout and withdrawal["channel"] in table.stdout


def test_breach_writes_the_subject_ids_and_counts_the_categories(data: Dataset, run: Any, tmp_path: Path) -> None:
    busiest = max({p.recipient_id for p in data.processings}, key=lambda r: sum(p.recipient_id == r for p in data.processings))
    start, end = datetime.fromisoformat("2021-03-01T00:00:00+00:00"), datetime.fromisoformat("2021-04-01T00:00:00+00:00")
    want = expected.breach(data, busiest, start, end)
    assert len(want["subject_ids"]) > 20
    out = tmp_path / "subjects.txt"
    answer = run.json("breach", busiest, "--from", "2021-03-01", "--to", "2021-04-01", "--out", str(out))
    assert out.read_text().splitlines() == want["subject_ids"] == answer["subject_ids"]
    assert answer["subjects"] == len(want["subject_ids"]) and answer["edges"] == want["edges"]
    assert {c["category"]: c["subjects"] for c in answer["categories"]} == want["categories"]
    out.unlink()
    table = run("breach", busiest, "--from", "2021-03-01", "--to", "2021-04-01", "--out", str(out))
    assert table.exit_code == 0 and f"{len(want['subject_ids']):,} subject ids written to {out}" in table.stdout
    assert out.read_text().splitlines() == want["subject_ids"]


def test_transfers_flag_those_without_a_valid_mechanism(data: Dataset, run: Any) -> None:
    for flag in ([], ["--outside-eea"]):
        rows = run.json("transfers", *flag)
        got = {
            (t["country"], t["recipient_id"], t["mechanism"]): {k: t[k] for k in ("edges", "subjects", "framed")} for t in rows
        }
        assert got == expected.transfers(data, bool(flag))
    table = run("transfers", "--outside-eea")
    unframed = [key for key, t in expected.transfers(data, True).items() if not t["framed"]]
    assert unframed
    for _, recipient, mechanism in unframed:
        assert any(recipient in line and mechanism in line and " NO " in line for line in table.stdout.splitlines())


def test_violations_by_rule_and_since(data: Dataset, run: Any) -> None:
    rows = run.json("violations")
    assert {(v["rule"], v["evidence_event_ids"][0], v["subject_id"]) for v in rows} == expected.injected(data)
    rule = max({t["rule"] for t in data.truth}, key=lambda r: sum(t["rule"] == r for t in data.truth))
    since = datetime.fromisoformat(sorted(t["occurred_at"] for t in data.truth)[len(data.truth) // 2])
    rows = run.json("violations", "--rule", rule, "--since", _iso(since))
    assert {(v["rule"], v["evidence_event_ids"][0], v["subject_id"]) for v in rows} == expected.injected(data, since, rule)


def test_retention_due_as_of_an_instant(data: Dataset, run: Any) -> None:
    archives = expected.open_account_archives(data)
    as_of = sorted(at for at, _ in archives.values())[len(archives) // 3]
    rows = run.json("retention", "due", "--as-of", _iso(as_of))
    archived = {r["subject_id"]: r["due_at"] for r in rows if r["action"] == "archive" and r["subject_id"] in archives}
    assert archived == {s: _iso(at) for s, (at, _) in archives.items() if at <= as_of}
    assert all(r["due_at"] <= _iso(as_of) for r in rows)


def test_erasure_notices_per_subject(data: Dataset, run: Any) -> None:
    erased = {r["subject_id"] for r in data.of_topic("rights") if r["right"] == "erasure" and r["status"] == "fulfilled"}
    for subject in sorted(erased):
        rows = run.json("erasure-notices", subject)
        got = {n["notice_id"]: (n["recipient_id"], n["categories"], n["retained_categories"]) for n in rows}
        want = expected.erasure_notices(data, subject)
        assert got == {k: (w["recipient_id"], w["categories"], w["retained_categories"]) for k, w in want.items()}


# -- what a reader can get wrong ---------------------------------------------------------


BAD = [
    (["who-has", "subj-9999999"], "unknown subject 'subj-9999999'"),
    (["who-has", "x'; DROP TABLE ledger; --"], 'subject id: "x\'; DROP TABLE ledger; --" is not a well-formed id'),
    (["countries", "subj-1 OR 1=1"], "is not a well-formed id"),
    (["erasure-notices", "subj-0000001\n"], "is not a well-formed id"),
    (["who-has", "subj-0000001", "--as-of", "last tuesday"], "--as-of: 'last tuesday' is not an ISO-8601 time"),
    (["consent", "subj-0000001", "--purpose", "spam"], "purpose: 'spam' is not a purpose"),
    (["consent", "subj-0000001", "--as-of", "2021-02-30"], "--as-of: '2021-02-30' is not an ISO-8601 time"),
    (["violations", "--rule", "speeding"], "rule: 'speeding' is not a rule"),
    (["violations", "--since", "01/03/2021"], "--since: '01/03/2021' is not an ISO-8601 time"),
    (["retention", "due", "--as-of", "soon"], "--as-of: 'soon' is not an ISO-8601 time"),
    (["breach", "cloudnest", "--from", "2021-04-01", "--to", "2021-03-01"], "must come after the start"),
    (["breach", "cloudnest", "--from", "March", "--to", "2021-03-01"], "--from: 'March' is not an ISO-8601 time"),
    (["breach", "nobody-inc", "--from", "2021-03-01", "--to", "2021-04-01"], "unknown recipient 'nobody-inc'"),
    (
        ["breach", "cloudnest' --", "--from", "2021-03-01", "--to", "2021-04-01"],
        'recipient id: "cloudnest\' --" is not a well-formed id',
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_argument_or_unknown_id_ends_with_one_line_and_harms_nothing(
    data: Dataset, run: Any, chdb_dsn: str, args: list[str], message: str
) -> None:
    sink = ClickHouseSink(chdb_dsn, DATABASE)
    before = sink.reader.query("SELECT count() FROM {db:Identifier}.ledger")[0][0]
    result = run(*args)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message in lines[0]
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.ledger")[0][0] == before > 0


@pytest.mark.parametrize("where", ["no/such/dir.txt", "."], ids=["missing directory", "a directory"])
def test_an_unwritable_out_file_is_one_line(data: Dataset, run: Any, tmp_path: Path, where: str) -> None:
    result = run("breach", "cloudnest", "--from", "2021-03-01", "--to", "2021-04-01", "--out", str(tmp_path / where))
    assert result.exit_code == 1 and len(result.output.splitlines()) == 1 and "--out: cannot write" in result.output


@pytest.mark.parametrize(
    ("dsn", "database", "message"),
    [
        ("http://127.0.0.1:9", DATABASE, "ClickHouse at http://127.0.0.1:9 unreachable"),
        ("mysql://localhost", DATABASE, "must be chdb:///path"),
        ("chdb:///nonexistent/consentflow-data", DATABASE, "no chDB data at /nonexistent/consentflow-data"),
        (None, "x; DROP DATABASE dpo_cli", "must be letters, digits and underscores"),
        (None, "no_such_database", "database 'no_such_database' at chdb://"),
    ],
)
def test_an_unreachable_or_empty_clickhouse_ends_with_one_line(
    data: Dataset, run: Any, chdb_dsn: str, dsn: str | None, database: str, message: str
) -> None:
    result = run("who-has", "subj-0000001", dsn=dsn or chdb_dsn, database=database)
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1 and result.output.startswith("Error: ")
    assert message in result.output
    assert not Path("/nonexistent").exists()
    databases = ClickHouseSink(chdb_dsn, DATABASE).reader.query(
        "SELECT name FROM system.databases WHERE name = 'no_such_database'"
    )
    assert databases == []  # a reader creates nothing


def test_tables_written_to_a_file_or_pipe_keep_one_line_per_row(data: Dataset, chdb_dsn: str) -> None:
    """A DPO who saves an answer (``consentflow transfers > transfers.txt``) gets each row on one line: with no
    terminal and no COLUMNS, rich would wrap at 80 columns and split ids across lines."""
    piped = CliRunner(env={"COLUMNS": None}).invoke(main, ["transfers", "--dsn", chdb_dsn, "--database", DATABASE])
    assert piped.exit_code == 0, piped.output
    rows = expected.transfers(data, False)
    for country, recipient, mechanism in rows:
        assert any(
            f" {country} " in line and f" {recipient} " in line and f" {mechanism} " in line for line in piped.stdout.splitlines()
        ), (country, recipient, mechanism)
    assert max(len(line) for line in piped.stdout.splitlines()) > 80
