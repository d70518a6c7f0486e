"""The embedded runner's notary step: every ledger entry and erasure notice the run writes is a leaf of the log
"embedded", in the order the processors gave them (file order), checkpoints signed every ``every`` leaves and at
the end, each consistent with the next; the tree equals one built in memory from a second run of the processors.
A run without a key writes no log; ``consentflow run --notary-key`` signs, a key others may read is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import cast

import pytest

from consentflow.contracts.eventfile import read_events
from consentflow.contracts.records import InputRecord
from consentflow.core.checkpoint import Signer, Verifier, open_checkpoint
from consentflow.core.merkle import MerkleTree, verify_consistency
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.notary.keys import write_key_pair
from consentflow.notary.step import NotaryStep
from consentflow.notary.store import EMBEDDED_LOG, NOTICE_KIND, LogStore, leaf_of, log_origin
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import LOG_LEAVES
from consentflow.streams.embedded import run_events

AS_OF = datetime(2023, 6, 1, tzinfo=UTC)  # after the generated year, so the tick emits retention and notices
EVERY = 100


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    path = folder / "events.avro"
    generate(GeneratorConfig(60, 365, 7, violation_share=0.05), path, folder / "truth.jsonl")
    return path


def expected_tree(path: Path) -> tuple[MerkleTree, int]:
    """The leaves of a second run of the processors over the file, in order, in memory; and how many are notices."""
    processor, tree, notices = Processor(), MerkleTree(), 0
    outputs = [
        out for topic, record in read_events(path) for out in processor.process(topic.short_name, cast(InputRecord, record))
    ]
    for topic, record in [*outputs, *processor.tick(AS_OF)]:
        leaf = leaf_of(topic, record)
        if leaf is not None:
            tree.append(leaf.data)
            notices += leaf.kind == NOTICE_KIND
    return tree, notices


def test_the_runs_leaves_and_checkpoints_are_those_of_the_tree_in_memory(event_file: Path, chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    signer = Signer.generate("consentflow.example/log")
    store = LogStore.of_sink(sink, EMBEDDED_LOG)
    step = NotaryStep(store, signer, every=EVERY)
    run_events(read_events(event_file), Processor(), sink, as_of=AS_OF, notary=step)
    tree, notices = expected_tree(event_file)
    assert tree.size > 3 * EVERY and notices > 0  # several checkpoints, and both kinds of leaf
    assert (store.size, store.root()) == (tree.size, tree.root())
    stored = sink.reader.query(
        f"SELECT leaf_hash FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE log_id = {{log:String}} ORDER BY leaf_index",
        {"log": EMBEDDED_LOG},
    )
    assert [bytes(digest) for (digest,) in stored] == [tree.leaf_hash(i) for i in range(tree.size)]

    notes = store.checkpoints()
    assert notes[-1] == step.checkpoint == store.latest_checkpoint()
    checkpoints = [open_checkpoint(note, signer.verifier, log_origin(signer.name, EMBEDDED_LOG)) for note in notes]
    assert [c.size for c in checkpoints] == [*range(EVERY, tree.size, EVERY), tree.size]
    for old, new in pairwise(checkpoints):
        assert new.root == tree.root(new.size)
        verify_consistency(old.size, new.size, old.root, new.root, store.consistency_proof(old.size, new.size))


def test_a_run_without_a_key_writes_no_log(event_file: Path, chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    run_events(read_events(event_file), Processor(), sink, as_of=AS_OF)
    assert sink.reader.query(f"SELECT count() FROM {{db:Identifier}}.`{LOG_LEAVES.name}`") == [(0,)]


_LATEST = """
import sys
from consentflow.notary.store import EMBEDDED_LOG, LogStore
from consentflow.sinks.reading import open_tables
store = LogStore(open_tables(sys.argv[1], "consentflow"), EMBEDDED_LOG)
print(store.latest_checkpoint(), end="")
"""


def _consentflow(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consentflow.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)


def test_consentflow_run_with_a_notary_key_signs_the_log(event_file: Path, tmp_path: Path) -> None:
    private, public = tmp_path / "notary.key", tmp_path / "notary.pub"
    write_key_pair("consentflow.example/log", private, public)
    dsn = f"chdb://{tmp_path / 'chdb'}"
    ran = _consentflow("run", str(event_file), "--dsn", dsn, "--no-overview", "--notary-key", str(private))
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "log embedded:" in ran.stderr and "checkpoint signed by consentflow.example/log" in ran.stderr
    latest = subprocess.run([sys.executable, "-c", _LATEST, dsn], capture_output=True, text=True, check=False)
    assert latest.returncode == 0, latest.stderr[-2000:]
    checkpoint = open_checkpoint(latest.stdout, Verifier.parse(public.read_text()))
    assert checkpoint.size > 0 and checkpoint.time is not None

    private.chmod(0o644)
    refused = _consentflow("run", str(event_file), "--dsn", dsn, "--notary-key", str(private))
    assert refused.returncode == 1 and "may be read by others" in refused.stderr


def test_run_help_says_a_run_without_a_key_writes_no_log() -> None:
    shown = _consentflow("run", "--help")
    assert "--notary-key" in shown.stdout and "Without it no log is written." in " ".join(shown.stdout.split())
