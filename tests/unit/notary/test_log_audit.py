"""``consentflow verify --checkpoint OLD --public-key KEY`` as an auditor runs it on the sink's database (issue 22):
an embedded run signed by the notary, its latest checkpoint saved with ``checkpoint latest``, then the tables tampered
with in SQL. Each tamper is named, log and leaf, node, row or checkpoint; the ones plain ``verify`` passes (the
issue's complaint) are shown to pass it still; a clean database verifies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events
from consentflow.core.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint, time_extension
from consentflow.core.ledger import HASHED_FIELDS, entry_hash
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.notary.keys import read_signer, write_key_pair
from consentflow.notary.step import NotaryStep
from consentflow.notary.store import EMBEDDED_LOG, LogStore, leaf_of, log_origin
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reading import utc
from consentflow.sinks.tables import CHECKPOINTS, ERASURE_NOTICES, LEDGER, LOG_LEAVES, LOG_NODES, Table
from consentflow.streams.embedded import run_events
from tests.support.memory_log import erasure_notice

AS_OF = datetime(2023, 6, 1, tzinfo=UTC)  # after the generated year, so the tick emits erasure notices
EVERY = 100  # leaves between checkpoints: several checkpoints for the truncation to fall between
KEY_NAME = "consentflow.example/log"
_LEDGER_COLUMNS = (*HASHED_FIELDS, "entry_hash")


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    path = folder / "events.avro"
    generate(GeneratorConfig(40, 365, 7, violation_share=0.05), path, folder / "truth.jsonl")
    return path


@dataclass
class Audited:
    """A signed run's database, its keys, and the checkpoint the auditor saved after it."""

    sink: ClickHouseSink
    dsn: str
    database: str
    private: Path
    public: Path
    saved: Path

    def sql(self, statement: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.sink.reader.query(statement, parameters)

    def delete(self, table: Table, where: str, parameters: dict[str, Any]) -> None:
        self.sql(f"ALTER TABLE {{db:Identifier}}.`{table.name}` DELETE WHERE {where} SETTINGS mutations_sync = 2", parameters)

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.sink.insert_now(table.name, table.to_arrow(rows))

    def verify(self, *, audit: bool = True) -> Result:
        where = ["--dsn", self.dsn, "--database", self.database]
        keys = ["--checkpoint", str(self.saved), "--public-key", str(self.public)] if audit else []
        return CliRunner().invoke(main, ["verify", *where, *keys])


@pytest.fixture
def run(event_file: Path, chdb_dsn: str, database: str, tmp_path: Path) -> Audited:
    private, public = tmp_path / "notary.key", tmp_path / "notary.pub"
    signer = write_key_pair(KEY_NAME, private, public)
    sink = ClickHouseSink(chdb_dsn, database)
    run_events(
        read_events(event_file),
        Processor(),
        sink,
        as_of=AS_OF,
        notary=NotaryStep(LogStore.of_sink(sink, EMBEDDED_LOG), signer, every=EVERY),
    )
    latest = CliRunner().invoke(main, ["checkpoint", "latest", "--dsn", chdb_dsn, "--database", database])
    assert latest.exit_code == 0, latest.output
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(latest.output)
    return Audited(sink, chdb_dsn, database, private, public, saved)


def subject_entries(run: Audited, least: int = 3) -> list[dict[str, Any]]:
    """The ledger entries, in sequence order, of the first subject with at least ``least``."""
    (subject,) = run.sql(
        f"SELECT subject_id FROM {{db:Identifier}}.`{LEDGER.name}` GROUP BY subject_id HAVING count() >= {{n:UInt32}} "
        "ORDER BY subject_id LIMIT 1",
        {"n": least},
    )[0]
    columns = ", ".join(f"`{name}`" for name in _LEDGER_COLUMNS)
    rows = run.sql(
        f"SELECT {columns} FROM {{db:Identifier}}.`{LEDGER.name}` WHERE subject_id = {{s:String}} ORDER BY sequence",
        {"s": subject},
    )
    entries = [dict(zip(_LEDGER_COLUMNS, row, strict=True)) for row in rows]
    for entry in entries:
        entry["occurred_at"] = utc(entry["occurred_at"])
    return entries


def leaf_index_of(run: Audited, entry: dict[str, Any]) -> int:
    rows = run.sql(
        f"SELECT leaf_index FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE record_id = {{h:String}}", {"h": entry["entry_hash"]}
    )
    return int(rows[0][0])


def replace_entries(run: Audited, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """Swap ledger rows: ``entry_hash`` is in the table's key, so a rewrite is a delete and an insert."""
    run.delete(LEDGER, "entry_hash IN {h:Array(String)}", {"h": [entry["entry_hash"] for entry in old]})
    run.insert(LEDGER, new)


def rechained(entries: list[dict[str, Any]], first: int, change: dict[str, Any]) -> list[dict[str, Any]]:
    """``entries`` from ``first`` on, each with ``change`` applied and the chain's hashes recomputed (core.ledger)."""
    previous = entries[first - 1]["entry_hash"] if first else entries[0]["previous_hash"]
    out = []
    for entry in entries[first:]:
        forged = {**entry, **change, "previous_hash": previous}
        forged["entry_hash"] = previous = entry_hash(forged)
        out.append(forged)
    return out


def assert_found(result: Result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "the consent log does not hold" in result.output
    for word in words:
        assert word in result.output, f"{word!r} not in:\n{result.output}"


def test_a_clean_run_verifies(run: Audited) -> None:
    result = run.verify()
    assert result.exit_code == 0, result.output
    assert "every checkpoint, leaf and row agrees" in result.output
    assert "1 log(s) (embedded)" in result.output and "saved checkpoint: log 'embedded'" in result.output


def test_checkpoint_and_public_key_come_together(run: Audited) -> None:
    where = ["verify", "--dsn", run.dsn, "--database", run.database]
    alone = CliRunner().invoke(main, [*where, "--checkpoint", str(run.saved)])
    assert alone.exit_code == 2 and "--checkpoint needs --public-key" in alone.output
    alone = CliRunner().invoke(main, [*where, "--public-key", str(run.public)])
    assert alone.exit_code == 2 and "--public-key needs --checkpoint" in alone.output


def test_a_subjects_last_entry_deleted(run: Audited) -> None:
    entries = subject_entries(run)
    last, index = entries[-1], leaf_index_of(run, entries[-1])
    run.delete(LEDGER, "entry_hash = {h:String}", {"h": last["entry_hash"]})
    assert run.verify(audit=False).exit_code == 0  # the chain that is left verifies: the gap the issue names
    assert_found(
        run.verify(),
        f"log 'embedded', leaf {index}: ledger entry {last['entry_hash']} of subject {last['subject_id']}: "
        "no row rebuilds to it (the row deleted or altered)",
    )


def test_a_subjects_last_entry_altered_and_rehashed(run: Audited) -> None:
    entries = subject_entries(run)
    forged = rechained(entries, len(entries) - 1, {"channel": "forged-channel"})
    replace_entries(run, entries[-1:], forged)
    assert run.verify(audit=False).exit_code == 0
    assert_found(
        run.verify(),
        f"ledger row of subject {forged[0]['subject_id']}, sequence {forged[0]['sequence']} "
        f"(entry_hash {forged[0]['entry_hash']}): is not a leaf of the log",
        f"log 'embedded', leaf {leaf_index_of(run, entries[-1])}: ledger entry {entries[-1]['entry_hash']}",
    )


def test_a_subjects_whole_chain_rewritten_consistently(run: Audited) -> None:
    entries = subject_entries(run)
    forged = rechained(entries, 0, {"channel": "forged-channel"})
    replace_entries(run, entries, forged)
    assert run.verify(audit=False).exit_code == 0  # new hashes, chain intact
    result = run.verify()
    assert_found(result, *(f"(entry_hash {entry['entry_hash']}): is not a leaf of the log" for entry in forged))
    findings = [line for line in result.output.splitlines() if line.startswith("  LOG ")]
    assert sum("no row rebuilds to it" in line for line in findings) == len(entries)  # each old entry's leaf


def test_a_middle_ledger_row_deleted(run: Audited) -> None:
    entries = subject_entries(run)
    middle = entries[len(entries) // 2]
    run.delete(LEDGER, "entry_hash = {h:String}", {"h": middle["entry_hash"]})
    assert_found(
        run.verify(), f"log 'embedded', leaf {leaf_index_of(run, middle)}: ledger entry {middle['entry_hash']}", "no row rebuilds"
    )


def _stored(run: Audited, table: Table, where: str, parameters: dict[str, Any]) -> dict[str, Any]:
    rows = run.sql(f"SELECT * FROM {{db:Identifier}}.`{table.name}` WHERE log_id = 'embedded' AND {where}", parameters)
    assert len(rows) == 1
    row = dict(zip(table.column_names, rows[0], strict=True))
    return {name: utc(value) if isinstance(value, datetime) else value for name, value in row.items()}


def test_a_leaf_hash_altered_in_the_stored_tree(run: Audited) -> None:
    leaf = _stored(run, LOG_LEAVES, "leaf_index = 5", {})
    run.delete(LOG_LEAVES, "log_id = 'embedded' AND leaf_index = 5", {})
    run.insert(LOG_LEAVES, [{**leaf, "leaf_hash": hashlib.sha256(b"forged").digest()}])
    result = run.verify()
    assert "node (2, 1)" not in result.output  # the nodes above the lowest that differs are not named again
    assert_found(
        result,
        "log 'embedded', node (1, 2): differs from the hash recomputed from leaves 4 to 5 (a node or leaf altered)",
        f"log 'embedded', stored checkpoint at size {EVERY}: its signed root is not the root of the stored leaves",
        f"log 'embedded', leaf 5: ledger entry {leaf['record_id']}",
    )


def test_a_node_altered_in_the_stored_tree(run: Audited) -> None:
    node = _stored(run, LOG_NODES, "level = 2 AND node_index = 1", {})
    run.delete(LOG_NODES, "log_id = 'embedded' AND level = 2 AND node_index = 1", {})
    run.insert(LOG_NODES, [{**node, "hash": hashlib.sha256(b"forged").digest()}])
    assert_found(run.verify(), "log 'embedded', node (2, 1): differs from the hash recomputed from leaves 4 to 7")


def test_the_log_truncated_below_the_saved_checkpoint(run: Audited) -> None:
    saved = open_checkpoint(run.saved.read_text(), read_signer(run.private).verifier)
    keep = 2 * EVERY + 50
    assert saved.size > keep
    run.delete(LOG_LEAVES, "leaf_index >= {k:UInt64}", {"k": keep})
    run.delete(LOG_NODES, "bitShiftLeft(node_index + 1, level) > {k:UInt64}", {"k": keep})
    run.delete(CHECKPOINTS, "size > {k:UInt64}", {"k": keep})
    assert_found(
        run.verify(),
        f"log 'embedded', the saved checkpoint (size {saved.size}): log truncated (rolled back) below the saved "
        f"checkpoint: {keep} leaves stored, checkpoint signs {saved.size}",
    )


def test_a_checkpoint_signed_with_another_key(run: Audited, tmp_path: Path) -> None:
    other_key = tmp_path / "other.key"
    made = CliRunner().invoke(
        main, ["notary", "keygen", "--private-key", str(other_key), "--public-key", str(tmp_path / "o.pub")]
    )
    assert made.exit_code == 0, made.output
    other = read_signer(other_key)
    store = LogStore(run.sink.reader, EMBEDDED_LOG)
    size = store.size
    when = datetime.now(UTC)
    checkpoint = Checkpoint(log_origin(other.name, EMBEDDED_LOG), size, store.root(), (time_extension(when),))
    note = sign_checkpoint(checkpoint, other)
    run.insert(CHECKPOINTS, [{"log_id": EMBEDDED_LOG, "size": size, "root": checkpoint.root, "note": note, "signed_at": when}])
    count = len(store.checkpoints())
    assert_found(
        run.verify(),
        f"log 'embedded', stored checkpoint {count} of {count} (size {size}): no signature by the trusted key "
        f"{KEY_NAME}+{read_signer(run.private).verifier.key_id:08x} (signed by {KEY_NAME}+{other.verifier.key_id:08x}): "
        "signed with another key",
    )


def test_a_notice_revision_superseded_in_the_table_still_verifies(run: Audited) -> None:
    first, second = erasure_notice("s-revised", "n-1", revision=1), erasure_notice("s-revised", "n-1", revision=2)
    store = LogStore.of_sink(run.sink, EMBEDDED_LOG)
    store.append([leaf for leaf in (leaf_of("erasure-notices", first), leaf_of("erasure-notices", second)) if leaf])
    store.sign(read_signer(run.private))
    run.insert(ERASURE_NOTICES, [second])  # merged: the table keeps only the latest revision
    result = run.verify()
    assert result.exit_code == 0, result.output
    run.delete(ERASURE_NOTICES, "notice_id = 'n-1'", {})
    assert_found(run.verify(), "erasure notice n-1@2 of subject s-revised: no row rebuilds to it")
