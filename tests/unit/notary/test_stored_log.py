"""The log as ClickHouse keeps it, read as a ``LogReader``: after an embedded run signed by the notary, each subject's
proof built from the tables verifies with the public key alone; every leaf is rebuilt from its row and checked
against its stored hash, and a row altered after signing is named, leaf and record; a notice's revision superseded
in the table is left out of the proof, its successor proven."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events
from consentflow.core.checkpoint import Signer
from consentflow.core.log_proof import build_subject_proof, verify_subject_proof
from consentflow.core.log_reader import LeafKind
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.notary.step import NotaryStep
from consentflow.notary.store import EMBEDDED_LOG, Leaf, LogStore, leaf_of
from consentflow.notary.stored_log import StoredLog, StoredLogError
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import ERASURE_NOTICES, LEDGER, LOG_LEAVES
from consentflow.streams.embedded import run_events
from tests.support.memory_log import erasure_notice

AS_OF = datetime(2023, 6, 1, tzinfo=UTC)  # after the generated year, so the tick emits erasure notices
EVERY = 100


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    path = folder / "events.avro"
    generate(GeneratorConfig(40, 365, 7, violation_share=0.05), path, folder / "truth.jsonl")
    return path


def signed_run(event_file: Path, chdb_dsn: str, database: str) -> tuple[ClickHouseSink, Signer]:
    """An embedded run of the file with the notary signing every ``EVERY`` leaves and at the end."""
    sink = ClickHouseSink(chdb_dsn, database)
    signer = Signer.generate("consentflow.example/log")
    step = NotaryStep(LogStore.of_sink(sink, EMBEDDED_LOG), signer, every=EVERY)
    run_events(read_events(event_file), Processor(), sink, as_of=AS_OF, notary=step)
    return sink, signer


def subject_with(sink: ClickHouseSink, kind: str) -> str:
    """A subject with a leaf of ``kind``."""
    rows = sink.reader.query(
        f"SELECT subject_id FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE kind = {{kind:String}} ORDER BY subject_id LIMIT 1",
        {"kind": kind},
    )
    return str(rows[0][0])


def test_each_subjects_proof_from_the_tables_verifies(event_file: Path, chdb_dsn: str, database: str) -> None:
    sink, signer = signed_run(event_file, chdb_dsn, database)
    log = StoredLog(sink.reader)
    assert log.logs() == [EMBEDDED_LOG]
    subjects = [str(s) for (s,) in sink.reader.query(f"SELECT DISTINCT subject_id FROM {{db:Identifier}}.`{LOG_LEAVES.name}`")]
    counts = dict.fromkeys(LeafKind, 0)
    for subject in subjects:
        document = build_subject_proof(log, subject)
        summary = verify_subject_proof(document, signer.verifier)
        assert (summary.pending, len(document["leaves"])) == (0, len(log.leaves_of(subject)))
        counts[LeafKind.LEDGER_ENTRY] += summary.ledger_entries
        counts[LeafKind.ERASURE_NOTICE] += summary.erasure_notices
    total = sink.reader.query(f"SELECT count() FROM {{db:Identifier}}.`{LOG_LEAVES.name}`")[0][0]
    assert sum(counts.values()) == total and all(counts.values())


def test_a_subject_without_leaves_has_none(event_file: Path, chdb_dsn: str, database: str) -> None:
    sink, _ = signed_run(event_file, chdb_dsn, database)
    assert StoredLog(sink.reader).leaves_of("nobody-at-all") == []


def test_a_ledger_row_altered_after_signing_is_named(event_file: Path, chdb_dsn: str, database: str) -> None:
    sink, _ = signed_run(event_file, chdb_dsn, database)
    subject = subject_with(sink, "ledger")
    sink.reader.query(
        f"ALTER TABLE {{db:Identifier}}.`{LEDGER.name}` UPDATE purpose = 'profiling' WHERE subject_id = {{s:String}} "
        "SETTINGS mutations_sync = 1",
        {"s": subject},
    )
    with pytest.raises(StoredLogError, match=r"leaf \d+ of log 'embedded' \(ledger-entry [0-9a-f]{64}\): .* altered"):
        StoredLog(sink.reader).leaves_of(subject)


def test_a_ledger_row_deleted_after_signing_is_named(event_file: Path, chdb_dsn: str, database: str) -> None:
    sink, _ = signed_run(event_file, chdb_dsn, database)
    subject = subject_with(sink, "ledger")
    sink.reader.query(
        f"ALTER TABLE {{db:Identifier}}.`{LEDGER.name}` DELETE WHERE subject_id = {{s:String}} SETTINGS mutations_sync = 1",
        {"s": subject},
    )
    with pytest.raises(StoredLogError, match=r"leaf \d+ of log 'embedded' \(ledger-entry [0-9a-f]{64}\): .* not in the tables"):
        StoredLog(sink.reader).leaves_of(subject)


def test_checkpoint_latest_names_the_log_when_several_are_signed(chdb_dsn: str, database: str) -> None:
    sink, signer = ClickHouseSink(chdb_dsn, database), Signer.generate("consentflow.example/log")
    notes = {}
    for log in ("ledger/0", "ledger/1"):
        store = LogStore.of_sink(sink, log)
        store.append([Leaf(log.encode(), "s-1", "ledger", log)])
        notes[log] = store.sign(signer)
    assert StoredLog(sink.reader).logs() == ["ledger/0", "ledger/1"]
    where = ["--dsn", chdb_dsn, "--database", database]
    unnamed = CliRunner().invoke(main, ["checkpoint", "latest", *where])
    assert unnamed.exit_code == 1 and "the database keeps 2 signed logs (ledger/0, ledger/1): name one" in unnamed.output
    named = CliRunner().invoke(main, ["checkpoint", "latest", "--log", "ledger/1", *where])
    assert named.exit_code == 0 and named.output == notes["ledger/1"]


def test_a_notice_revision_superseded_in_the_table_is_left_out_of_the_proof(chdb_dsn: str, database: str) -> None:
    sink, signer = ClickHouseSink(chdb_dsn, database), Signer.generate("consentflow.example/log")
    first, second = erasure_notice("s-revised", "n-1", revision=1), erasure_notice("s-revised", "n-1", revision=2)
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    store.append([leaf for leaf in (leaf_of("erasure-notices", first), leaf_of("erasure-notices", second)) if leaf])
    store.sign(signer)
    sink.insert_now(ERASURE_NOTICES.name, ERASURE_NOTICES.to_arrow([second]))  # merged: only the latest revision kept
    where = ["--dsn", chdb_dsn, "--database", database]
    merged = CliRunner().invoke(main, ["proof", "s-revised", *where])
    assert merged.exit_code == 0, merged.output
    document = json.loads(merged.output)
    assert [(leaf["index"], leaf["record"]) for leaf in document["leaves"]] == [(1, "n-1@2")]
    assert verify_subject_proof(document, signer.verifier).erasure_notices == 1

    sink.insert_now(ERASURE_NOTICES.name, ERASURE_NOTICES.to_arrow([first]))  # before the merge: both revisions kept
    unmerged = CliRunner().invoke(main, ["proof", "s-revised", *where])
    assert unmerged.exit_code == 0 and json.loads(unmerged.output) == document
