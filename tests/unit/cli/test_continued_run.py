"""``consentflow run`` into a database an earlier run filled continues that run [issue 18, findings 1 and 2].

Each ``run`` here is the command itself, through click's runner: a fresh processor that knows only what the
database holds (saved subject states, the retention clock, the recipients table). The demo-file property, where
every batch is a process of its own, is in test_continued_run_demo.py.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pyarrow
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events, write_events
from consentflow.contracts.events import Event, profile_event
from consentflow.core.state import STATE_FORMAT
from consentflow.generator import generate
from consentflow.generator.simulation import GeneratorConfig
from consentflow.policy.vocabulary import AccountKind, ConsentAction, DataCategory, ProfileAction, Purpose
from consentflow.sinks import subject_states
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.digest import table_digests
from consentflow.sinks.holdings_queries import subject_holdings
from consentflow.sinks.lineage_queries import who_has
from consentflow.sinks.verification import verify_ledger
from tests.support.builders import POSTWAVE, T0, at, consent, eid, newsletter
from tests.support.paths import DEPLOY

SUBJECT = "cand-continued"
REGISTRY = DEPLOY / "registry.example.yaml"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run(path: Path, dsn: str, database: str, *more: str) -> Result:
    result = cli("run", str(path), "--dsn", dsn, "--database", database, "--no-overview", *more)
    assert result.exit_code == 0, result.output
    return result


def batch(path: Path, events: Sequence[Event]) -> Path:
    write_events(path, events)
    return path


def registered(subject: str, when: object, name: str = "registered", action: ProfileAction = ProfileAction.REGISTERED) -> Event:
    return profile_event(
        subject,
        action,
        account_kind=AccountKind.APPLICANT,
        categories=(DataCategory.IDENTITY, DataCategory.CONTACT),
        source_service="profile",
        occurred_at=when,  # type: ignore[arg-type]
        event_id=eid(subject, name),
    )


def test_a_second_run_keeps_the_first_runs_facts(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    """Batch 1: a registration and a marketing grant; batch 2: the withdrawal and a newsletter after it [6]."""
    first = batch(
        tmp_path / "1.avro",
        [POSTWAVE.event(), registered(SUBJECT, T0), consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, at(1))],
    )
    second = batch(
        tmp_path / "2.avro",
        [consent(SUBJECT, Purpose.MARKETING, ConsentAction.WITHDRAWN, at(days=10)), newsletter(SUBJECT, at(days=20))],
    )
    run(first, chdb_dsn, database)
    run(second, chdb_dsn, database)

    sink = ClickHouseSink(chdb_dsn, database)
    ledger = sink.reader.query(
        "SELECT sequence, action FROM {db:Identifier}.ledger FINAL WHERE subject_id = {s:String} ORDER BY sequence",
        {"s": SUBJECT},
    )
    assert ledger == [(0, "granted"), (1, "withdrawn")]
    between = cli(
        "consent",
        SUBJECT,
        "--purpose",
        "marketing",
        "--as-of",
        at(days=5).isoformat(),
        "--json",
        "--dsn",
        chdb_dsn,
        "--database",
        database,
    )
    assert between.exit_code == 0, between.output
    assert '"state": "granted"' in between.output
    holdings = subject_holdings(sink.reader, SUBJECT)
    assert holdings is not None and holdings.registered_at == T0 and holdings.revision == 4
    check = verify_ledger(sink.reader)
    assert check.ok and check.entries == 2
    # The newsletter after the withdrawal is the violation it is in one run, with the withdrawal as evidence [6].
    withdrawal = consent(SUBJECT, Purpose.MARKETING, ConsentAction.WITHDRAWN, at(days=10)).record["event_id"]
    ((rule, evidence),) = sink.reader.query(
        "SELECT rule, evidence_event_ids FROM (SELECT * FROM {db:Identifier}.violations FINAL) WHERE active = 1"
    )
    assert rule == "marketing_without_consent" and withdrawal in evidence


def test_a_run_reads_the_registry_loaded_into_the_recipients_table(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    loaded = cli("registry", "load", str(REGISTRY), "--embedded", "--dsn", chdb_dsn, "--database", database)
    assert loaded.exit_code == 0, loaded.output
    when = T0
    run(
        batch(tmp_path / "events.avro", [registered(SUBJECT, when), newsletter(SUBJECT, when + timedelta(hours=1))]),
        chdb_dsn,
        database,
    )

    sink = ClickHouseSink(chdb_dsn, database)
    (holding,) = who_has(sink.reader, SUBJECT)
    assert (holding.recipient_id, holding.recipient_kind, holding.country) == ("postwave", "emailing_provider", "US")
    assert holding.mechanisms == frozenset({"scc"})  # signed 2020-03-10 [7]
    rules = sink.reader.query("SELECT rule FROM (SELECT * FROM {db:Identifier}.violations FINAL) WHERE active = 1")
    assert ("unregistered_recipient",) not in rules


def test_running_a_file_again_changes_nothing(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    events = batch(
        tmp_path / "1.avro",
        [POSTWAVE.event(), registered(SUBJECT, T0), consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, at(1))],
    )
    run(events, chdb_dsn, database)
    sink = ClickHouseSink(chdb_dsn, database)
    before = sink.reader.query("SELECT count() FROM {db:Identifier}.ledger"), table_digests(sink.reader)
    again = run(events, chdb_dsn, database)
    assert (sink.reader.query("SELECT count() FROM {db:Identifier}.ledger"), table_digests(sink.reader)) == before
    assert "outputs: {}" in again.stderr or "outputs: {}" in again.output


def test_the_retention_clock_never_goes_back(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    """Run 1 ticks at T0 + 4 years (its --as-of: no event may be dated after its arrival), past the archive date
    [2.3.1]; run 2 holds an older event only, and no --as-of: the action stays."""
    run(
        batch(tmp_path / "1.avro", [registered(SUBJECT, T0)]),
        chdb_dsn,
        database,
        "--as-of",
        (T0 + timedelta(days=4 * 365)).isoformat(),
    )
    run(batch(tmp_path / "2.avro", [registered("cand-early", T0 + timedelta(days=1))]), chdb_dsn, database)
    sink = ClickHouseSink(chdb_dsn, database)
    live = sink.reader.query(
        "SELECT subject_id, action FROM (SELECT * FROM {db:Identifier}.retention_actions FINAL) WHERE active = 1 ORDER BY subject_id"
    )
    # cand-early's archive (T0 + 1 day + 3 years) fell due at the clock run 1 reached, though run 2's events end earlier.
    assert live == [("cand-continued", "archive"), ("cand-early", "archive")]
    (clock,) = sink.reader.query("SELECT max(clock) FROM {db:Identifier}.embedded_runs")[0]
    assert clock.replace(tzinfo=None) == (T0 + timedelta(days=4 * 365)).replace(tzinfo=None)


def test_an_action_a_later_fact_moves_is_retracted_and_the_new_one_issued(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    """Run 1's clock passes A's archive date [2.3.1]; run 2 brings a use of A's account from before that clock, which
    moves the archive date past it: the action issued is retracted (same id, higher revision, inactive)."""
    late = T0 + timedelta(days=3 * 365 + 30)  # after today: the clock, not an event (the gate bounds event times)
    run(batch(tmp_path / "1.avro", [registered(SUBJECT, T0)]), chdb_dsn, database, "--as-of", late.isoformat())
    sink = ClickHouseSink(chdb_dsn, database)
    (issued,) = sink.reader.query(
        "SELECT action_id, revision, active FROM {db:Identifier}.retention_actions WHERE subject_id = {s:String}", {"s": SUBJECT}
    )
    assert issued[2] == 1
    used = registered(SUBJECT, T0 + timedelta(days=200), name="used", action=ProfileAction.USED)
    run(batch(tmp_path / "2.avro", [used]), chdb_dsn, database)
    rows = sink.reader.query(
        "SELECT action_id, revision, active FROM {db:Identifier}.retention_actions FINAL WHERE subject_id = {s:String}",
        {"s": SUBJECT},
    )
    assert rows == [(issued[0], issued[1] + 1, 0)], "retracted: its archive date is now T0 + 200 days + 3 years, ahead"
    due = cli("retention", "due", "--as-of", late.isoformat(), "--json", "--dsn", chdb_dsn, "--database", database)
    assert due.exit_code == 0, due.output
    assert SUBJECT not in due.output


def test_states_written_in_another_format_are_refused_with_one_line(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    events = batch(tmp_path / "1.avro", [registered(SUBJECT, T0)])
    run(events, chdb_dsn, database)
    sink = ClickHouseSink(chdb_dsn, database)
    sink.command(
        "INSERT INTO {db:Identifier}.subject_states SELECT subject_id, format + 1, run + 1, state FROM {db:Identifier}.subject_states"
    )
    result = cli("run", str(events), "--dsn", chdb_dsn, "--database", database, "--no-overview")
    assert result.exit_code != 0
    line = result.output.strip().splitlines()[-1]
    assert f"format {STATE_FORMAT}, {STATE_FORMAT + 1}" in line and f"reads format {STATE_FORMAT} only" in line


def test_outputs_without_saved_states_are_refused(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    sink.command(
        "INSERT INTO {db:Identifier}.subject_holdings (subject_id, revision, latest_event_at) VALUES ('cand-x', 1, now64(6))"
    )
    result = cli("run", str(batch(tmp_path / "1.avro", [registered(SUBJECT, T0)])), "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code != 0 and "no saved states" in result.output


def test_saved_states_are_the_pickled_form_the_workers_share(tmp_path: Path, chdb_dsn: str, database: str) -> None:
    run(batch(tmp_path / "1.avro", [registered(SUBJECT, T0)]), chdb_dsn, database)
    sink = ClickHouseSink(chdb_dsn, database)
    ((data, fmt),) = sink.reader.query(
        "SELECT state, format FROM {db:Identifier}.subject_states FINAL", column_formats={"state": "bytes"}
    )
    state = pickle.loads(data)
    assert fmt == STATE_FORMAT and state.subject_id == SUBJECT and state.__getstate__()[0] is None
    assert subject_states.load(sink).states[SUBJECT].seen == state.seen


# ----------------------------------------------------------------------------- the batch-split property


@pytest.fixture(scope="module", params=[200, 1200], ids=lambda days: f"{days}-days")
def small_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Event]]:
    """``consentflow generate --subjects 30 --days 200``: its events, with the registry first; and over 1,200 days,
    where retention actions fall due [2.3.1] before the file ends, so a batch's tick issues some the next may move."""
    path = tmp_path_factory.mktemp("split") / "small.avro"
    config = GeneratorConfig(subjects=30, days=request.param, seed=7)
    generate(config, path, None)
    events = [Event(topic, record) for topic, record in read_events(path)]
    # Two subjects whose archive date [2.3.1] a later fact moves: one comes back after three years and two months,
    # in event-time order; the other's use, from long before, arrives last. A batch that ends after the first
    # archive date issues both actions; the batches after retract them (the whole file issues neither).
    start, archive = config.start, timedelta(days=3 * 365)
    first_subject = next(i for i, e in enumerate(events) if e.topic.short_name != "recipients")
    events[first_subject:first_subject] = [registered("cand-gap", start), registered("cand-late", start)]
    back = start + archive + timedelta(days=60)
    came_back = next((i for i, e in enumerate(events) if e.record["occurred_at"] > back), len(events))
    events.insert(came_back, registered("cand-gap", back, name="back", action=ProfileAction.USED))
    events.append(registered("cand-late", start + timedelta(days=100), name="used", action=ProfileAction.USED))
    write_events(path, events)
    return path, events


@pytest.fixture(scope="module")
def whole_digests(small_file: tuple[Path, list[Event]], chdb_dsn: str) -> dict[str, tuple[int, str]]:
    database = f"split_whole_{uuid.uuid4().hex[:12]}"
    run(small_file[0], chdb_dsn, database)
    return digests(chdb_dsn, database)


def digests(dsn: str, database: str) -> dict[str, tuple[int, str]]:
    found = table_digests(ClickHouseSink(dsn, database).reader)
    found.pop("dead_letters")
    return found


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_split_into_batches_gives_the_digests_of_one_run(
    data: st.DataObject,
    small_file: tuple[Path, list[Event]],
    whole_digests: dict[str, tuple[int, str]],
    chdb_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _, events = small_file
    # sampled_from: split points spread over the whole file (integers would favour its first events)
    points = st.sampled_from(range(1, len(events)))
    cuts = sorted(data.draw(st.sets(points, min_size=1, max_size=5), label="split points"))
    assert split_run_digests(events, cuts, chdb_dsn, tmp_path_factory.mktemp("batches")) == whole_digests


def test_a_split_where_a_batch_issues_what_the_next_retracts_gives_the_digests_of_one_run(
    small_file: tuple[Path, list[Event]],
    whole_digests: dict[str, tuple[int, str]],
    chdb_dsn: str,
    tmp_path: Path,
) -> None:
    """Cut just before cand-gap comes back and before cand-late's late use: the first batches' tick is past both
    archive dates when the file is long enough [2.3.1]; the last batch moves them."""
    _, events = small_file
    back = next(i for i, e in enumerate(events) if e.record.get("event_id") == eid("cand-gap", "back"))
    database = split_run(events, [back, len(events) - 1], chdb_dsn, tmp_path)
    sink = ClickHouseSink(chdb_dsn, database)
    retracted = sink.reader.query(
        "SELECT subject_id FROM {db:Identifier}.retention_actions FINAL WHERE active = 0 ORDER BY subject_id"
    )
    archived = GeneratorConfig(subjects=1, days=1, seed=0).start + timedelta(days=3 * 365)  # both registered at the start

    def clock_passed_archive(batches: Sequence[Event]) -> bool:
        return max(e.record["occurred_at"] for e in batches) >= archived

    expected = [("cand-gap",)] if clock_passed_archive(events[:back]) else []
    assert retracted == expected + ([("cand-late",)] if clock_passed_archive(events[:-1]) else [])
    assert events[-1].record["occurred_at"] < archived < events[-2].record["occurred_at"], "cand-late's use arrives late"
    assert digests(chdb_dsn, database) == whole_digests


def split_run(events: Sequence[Event], cuts: Sequence[int], dsn: str, folder: Path) -> str:
    """``events`` cut at ``cuts``, each batch a ``consentflow run`` into one new database; its name."""
    database = f"split_{uuid.uuid4().hex[:12]}"
    for index, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(events)], strict=True)):
        run(batch(folder / f"{index}.avro", events[start:end]), dsn, database)
    return database


def split_run_digests(events: Sequence[Event], cuts: Sequence[int], dsn: str, folder: Path) -> dict[str, tuple[int, str]]:
    return digests(dsn, split_run(events, cuts, dsn, folder))


def test_an_as_of_before_the_clock_an_earlier_run_reached_is_said_and_not_followed(
    tmp_path: Path, chdb_dsn: str, database: str
) -> None:
    events = batch(tmp_path / "1.avro", [registered(SUBJECT, T0)])
    later = T0 + timedelta(days=4 * 365)
    run(events, chdb_dsn, database, "--as-of", later.strftime("%Y-%m-%dT%H:%M:%S"))
    again = run(events, chdb_dsn, database, "--as-of", T0.strftime("%Y-%m-%dT%H:%M:%S"))
    assert f"retention clock kept at {later.isoformat()}" in again.output
    sink = ClickHouseSink(chdb_dsn, database)
    live = sink.reader.query("SELECT count() FROM (SELECT * FROM {db:Identifier}.retention_actions FINAL) WHERE active = 1")
    assert live == [(1,)], "the archive issued at the later clock stands [2.3.1]"


def test_a_first_run_cut_short_after_its_outputs_is_run_again_to_the_same_tables(
    tmp_path: Path, chdb_dsn: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between the sink's last insert and the states' save: the database holds outputs, holdings included,
    and no states; running the same file again re-emits the same ids, which the tables absorb."""
    events = batch(
        tmp_path / "1.avro",
        [POSTWAVE.event(), registered(SUBJECT, T0), consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, at(1))],
    )
    clean = f"{database}_clean"
    run(events, chdb_dsn, clean)

    def killed(*_: object) -> int:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(subject_states, "save", killed)
        assert cli("run", str(events), "--dsn", chdb_dsn, "--database", database, "--no-overview").exit_code != 0
    sink = ClickHouseSink(chdb_dsn, database)
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.subject_holdings") == [(1,)]
    assert sink.reader.query("SELECT count() FROM {db:Identifier}.subject_states") == [(0,)]
    run(events, chdb_dsn, database)
    assert digests(chdb_dsn, database) == digests(chdb_dsn, clean)


def test_a_saved_state_this_version_cannot_unpickle_is_refused_with_one_line(
    tmp_path: Path, chdb_dsn: str, database: str
) -> None:
    """A state of this format with a field a later version added (its __setstate__ would know it, this one not)."""
    events = batch(tmp_path / "1.avro", [registered(SUBJECT, T0)])
    run(events, chdb_dsn, database)
    sink = ClickHouseSink(chdb_dsn, database)
    ((data,),) = sink.reader.query("SELECT state FROM {db:Identifier}.subject_states FINAL", column_formats={"state": "bytes"})
    state = pickle.loads(data)
    _, values = state.__getstate__()
    later = pickle.dumps(state).replace(b"holdings_revision", b"holdings_revisiox")  # a field this version lacks
    assert "holdings_revision" in values and pickle.loads(data) is not None
    row = {
        "subject_id": pyarrow.array([SUBJECT]),
        "format": pyarrow.array([STATE_FORMAT], pyarrow.uint16()),
        "state": pyarrow.array([later], pyarrow.binary()),
        "run": pyarrow.array([99], pyarrow.uint64()),
    }
    sink.insert_now("subject_states", pyarrow.table(row))
    result = cli("run", str(events), "--dsn", chdb_dsn, "--database", database, "--no-overview")
    assert result.exit_code != 0
    assert f"saved state of subject {SUBJECT!r} cannot be read" in result.output.strip().splitlines()[-1]
