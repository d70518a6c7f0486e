"""The notary on the Kafka path (issue 22), on the real broker: ``consentflow sink --notary-key`` (chDB) and the
standalone ``consentflow notary``, each log an output partition's ledger entries or erasure notices in offset order.

Each test checks every log it finds (``tests.support.kafka_notary.check_log``): leaf indices 0..n-1 once each, no
source offset twice, every checkpoint's signature and its root against the root recomputed from the stored leaf
hashes at its size, each consistent with the latest; and that the log is exactly its partition, as read back from
the topic. The embedded runner's log of the same file holds, per subject, the same set of leaves: the order
differs by design (file order there, each partition's offset order here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from consentflow.contracts.topics import ERASURE_NOTICES, LEDGER
from consentflow.core.checkpoint import Verifier, open_checkpoint
from consentflow.core.merkle import verify_consistency
from consentflow.kafka.lag import group_lag
from consentflow.notary.keys import read_verifier, write_key_pair
from tests.support.kafka_notary import (
    check_log,
    dump,
    partition_leaves,
    sink_with_notary,
    standalone_notary,
    subject_leaf_sets,
    superseded_notice_leaves,
    topic_checkpoints,
    wait_joined,
)
from tests.support.kafka_pipeline import Pipeline

pytestmark = pytest.mark.kafka


def key_pair(tmp_path: Path, name: str) -> tuple[Path, Verifier]:
    """A key named ``name``: the sink's notary and the standalone one sign with their own, so that each one's notes
    on the shared checkpoints topic are told apart by their origin."""
    private, public = tmp_path / f"{name.replace('/', '-')}.key", tmp_path / f"{name.replace('/', '-')}.pub"
    write_key_pair(name, private, public)
    return private, read_verifier(public)


def _signed_by(pipeline: Pipeline, verifier: Verifier) -> list[tuple[str, str]]:
    """The checkpoints topic's notes whose origin names ``verifier``'s key."""
    return [
        (log, note)
        for log, note in topic_checkpoints(pipeline.bootstrap, pipeline.prefix)
        if note.startswith(f"{verifier.name}/")
    ]


def _leaf_topics(pipeline: Pipeline) -> list[str]:
    return [LEDGER.name(pipeline.prefix), ERASURE_NOTICES.name(pipeline.prefix)]


def wait_signed(pipeline: Pipeline, group: str, verifier: Verifier, timeout: float = 90.0) -> dict[str, list[tuple[int, bytes]]]:
    """Until ``group`` has consumed the leaf topics and the checkpoints topic signs each partition's every leaf with
    ``verifier``'s key; what each log must hold."""
    deadline = time.monotonic() + timeout
    while group_lag(pipeline.bootstrap, group, _leaf_topics(pipeline)) > 0:
        assert time.monotonic() < deadline, f"{group} did not catch up"
        time.sleep(1)
    expected = partition_leaves(pipeline.bootstrap, pipeline.prefix)
    while True:
        signed: dict[str, int] = {}
        for log, note in _signed_by(pipeline, verifier):
            signed[log] = max(signed.get(log, 0), int(note.split("\n")[1]))
        if all(signed.get(log, 0) >= len(leaves) for log, leaves in expected.items()):
            return expected
        assert time.monotonic() < deadline, f"checkpoints on the topic {signed} do not yet sign every leaf"
        time.sleep(2)


def check_logs(stored: dict[str, object], expected: dict[str, list[tuple[int, bytes]]], verifier: Verifier) -> dict[str, int]:
    """Every stored log passes ``check_log`` and is exactly its partition's leaves in offset order; each log's size."""
    logs = stored["logs"]
    assert isinstance(logs, dict)
    assert set(logs) == set(expected), "one log per output partition that holds a ledger entry or notice"
    sizes = {}
    for log, leaves in expected.items():
        kept, latest = check_log(log, logs[log], verifier)
        assert kept == leaves, f"log {log} is not its partition's records in offset order"
        assert latest.size == len(leaves)
        sizes[log] = latest.size
    return sizes


def check_rows_are_leaves(stored: dict[str, object], rows: dict[str, object]) -> None:
    """Every ledger row and erasure notice of ``rows`` (a sink's database) is a leaf of ``stored``'s logs."""
    logs = stored["logs"]
    assert isinstance(logs, dict)
    leaves = {(row[5], row[6]) for log in logs.values() for row in log["leaves"]}  # (record_id, revision)
    ledger, notices = rows["ledger"], rows["notices"]
    assert isinstance(ledger, list) and isinstance(notices, list) and ledger and notices
    assert not [row for row in ledger if (row[1], 0) not in leaves], "a ledger row with no leaf"
    assert not [row for row in notices if (row[1], row[2]) not in leaves], "an erasure notice with no leaf"


def verify(dsn: str, database: str, saved: Path, public: Path) -> None:
    """``consentflow verify --checkpoint`` of the database exits 0: the log extends the saved checkpoint, every stored
    checkpoint holds, every ledger and notice row is a leaf (and every leaf a row, a redelivery or a superseded one)."""
    command = ["verify", "--dsn", dsn, "--database", database, "--checkpoint", str(saved), "--public-key", str(public)]
    audited = subprocess.run([sys.executable, "-m", "consentflow.cli", *command], capture_output=True, text=True, check=False)
    assert audited.returncode == 0, audited.stdout[-3000:] + audited.stderr[-2000:]
    assert "extends the saved checkpoint" in audited.stdout or "extends its saved checkpoint" in audited.stdout


def check_topic_notes(pipeline: Pipeline, stored: dict[str, object], verifier: Verifier, *, all_stored: bool) -> None:
    """Each note on the checkpoints topic verifies with the public key and is one the table holds (all of them when
    no process was killed between storing and publishing one)."""
    logs = stored["logs"]
    assert isinstance(logs, dict)
    table = {(log, note) for log, kept in logs.items() for note in kept["checkpoints"]}
    topic = _signed_by(pipeline, verifier)
    assert topic
    for log, note in topic:
        assert open_checkpoint(note, verifier, f"{verifier.name}/{log}").size > 0
    assert set(topic) <= table
    if all_stored:
        assert set(topic) == table


def test_the_sinks_notary_logs_each_partition_in_offset_order_and_the_embedded_run_the_same_leaves(
    pipeline: Pipeline, dataset: Path, tmp_path: Path
) -> None:
    private, verifier = key_pair(tmp_path, "consentflow.example/log")
    dsn = f"chdb://{tmp_path / 'sink-chdb'}"
    sink = sink_with_notary(pipeline, "sink", dsn, private)
    pipeline.start_worker("w1")
    pipeline.wait_caught_up()
    pipeline.stop()
    expected = wait_signed(pipeline, f"{pipeline.prefix}-sink", verifier)
    sink.stop()
    stored = dump(dsn, f"{pipeline.prefix}_sink")
    check_logs(stored, expected, verifier)
    check_rows_are_leaves(stored, stored)
    check_topic_notes(pipeline, stored, verifier, all_stored=True)
    first = tmp_path / "first.txt"
    first.write_text(min(_signed_by(pipeline, verifier), key=lambda item: int(item[1].split("\n")[1]))[1])
    verify(dsn, f"{pipeline.prefix}_sink", first, private.with_suffix(".pub"))

    # (d) The same file through the embedded runner: per subject, the same set of leaves.
    embedded_dsn = f"chdb://{tmp_path / 'embedded-chdb'}"
    command = ["run", str(dataset), "--dsn", embedded_dsn, "--no-overview", "--notary-key", str(private)]
    ran = subprocess.run([sys.executable, "-m", "consentflow.cli", *command], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    embedded = dump(embedded_dsn, "consentflow")
    assert set(embedded["logs"]) == {"embedded"}
    kafka_sets, embedded_sets = subject_leaf_sets(stored), subject_leaf_sets(embedded)
    assert set(kafka_sets) == set(embedded_sets)
    # The workers' retention ticks between events can notify a recipient twice, the later revision superseding the
    # earlier (the tables keep the latest); the embedded run ticks once. Those superseded revisions are the only
    # leaves one path has and the other lacks.
    superseded = superseded_notice_leaves(stored)
    differ = sorted(subject for subject in kafka_sets if kafka_sets[subject] - superseded != embedded_sets[subject])
    assert not differ, f"{len(differ)} subjects' leaves differ, e.g. {differ[:3]}"


def test_kill_9_of_the_sinks_notary_the_standalone_notary_and_a_worker_mid_stream_leaves_consistent_logs(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    sink_key, sink_verifier = key_pair(tmp_path, "consentflow.example/sink")
    notary_key, notary_verifier = key_pair(tmp_path, "consentflow.example/notary")
    sink_dsn, notary_dsn = f"chdb://{tmp_path / 'sink-chdb'}", f"chdb://{tmp_path / 'notary-chdb'}"
    sink = sink_with_notary(pipeline, "sink1", sink_dsn, sink_key)
    notary = standalone_notary(pipeline, "notary1", notary_dsn, notary_key)
    for group in (f"{pipeline.prefix}-sink", f"{pipeline.prefix}-notary"):
        wait_joined(pipeline, group)  # following the outputs from their first message
    worker = pipeline.start_worker("w1", paced=True)
    pipeline.wait_mid_stream(0.6, "the worker is killed")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    pipeline.workers.remove(worker)
    # The checkpoints each notary signed of the outputs so far: the ones an auditor saved.
    deadline = time.monotonic() + 60
    while not (_signed_by(pipeline, sink_verifier) and _signed_by(pipeline, notary_verifier)):
        assert time.monotonic() < deadline, "no checkpoint published before the kill"
        time.sleep(0.5)
    saved = {verifier.name: _signed_by(pipeline, verifier) for verifier in (sink_verifier, notary_verifier)}

    pipeline.start_worker("w2")  # a new machine: empty data dir, state from the changelog; it re-produces some outputs
    pipeline.wait_outputs(300, 120, "the second worker")  # the notaries are following w2's outputs: kill them now
    for process in (sink, notary):
        process.alive()
        process.kill()
    sink = sink_with_notary(pipeline, "sink2", sink_dsn, sink_key)
    notary = standalone_notary(pipeline, "notary2", notary_dsn, notary_key)
    pipeline.wait_caught_up()
    pipeline.stop()
    expected = wait_signed(pipeline, f"{pipeline.prefix}-sink", sink_verifier, timeout=150)
    wait_signed(pipeline, f"{pipeline.prefix}-notary", notary_verifier, timeout=60)
    sink.stop()
    notary.stop()

    for dsn, database, verifier in (
        (sink_dsn, f"{pipeline.prefix}_sink", sink_verifier),
        (notary_dsn, f"{pipeline.prefix}_notary", notary_verifier),
    ):
        stored = dump(dsn, database)
        sizes = check_logs(stored, expected, verifier)
        logs = stored["logs"]
        assert isinstance(logs, dict)
        for log, note in saved[verifier.name]:  # saved before the kill: consistent with the log's latest
            old = open_checkpoint(note, verifier, f"{verifier.name}/{log}")
            latest = max((open_checkpoint(n, verifier) for n in logs[log]["checkpoints"]), key=lambda c: c.size)
            assert latest.size == sizes[log] >= old.size
            if old.size < latest.size:
                proof = [bytes.fromhex(h) for h in logs[log]["consistency"][str(old.size)][str(latest.size)]]
                verify_consistency(old.size, latest.size, old.root, latest.root, proof)
        check_topic_notes(pipeline, stored, verifier, all_stored=False)
    sink_rows = dump(sink_dsn, f"{pipeline.prefix}_sink")
    check_rows_are_leaves(sink_rows, sink_rows)
    # The auditor's own check passes too: each log's latest checkpoint saved before the kill, one file (as
    # `checkpoint latest` prints them), against the sink's database.
    latest_saved: dict[str, str] = {}
    for log, note in sorted(saved[sink_verifier.name], key=lambda item: int(item[1].split("\n")[1])):
        latest_saved[log] = note
    saved_notes = tmp_path / "saved.txt"
    saved_notes.write_text("\n".join(latest_saved.values()))
    verify(sink_dsn, f"{pipeline.prefix}_sink", saved_notes, sink_key.with_suffix(".pub"))
    check_rows_are_leaves(dump(notary_dsn, f"{pipeline.prefix}_notary"), sink_rows)  # the sink's rows, in its log


@pytest.mark.parametrize("command", ["sink", "notary"])
def test_a_notary_without_its_checkpoints_topic_says_so_at_once(kafka_bootstrap: str, tmp_path: Path, command: str) -> None:
    private, _ = key_pair(tmp_path, "consentflow.example/log")
    prefix = f"none{uuid.uuid4().hex[:8]}"  # no topic made for it
    key = ["--notary-key" if command == "sink" else "--private-key", str(private)]
    args = [command, "--bootstrap", kafka_bootstrap, "--prefix", prefix, "--dsn", f"chdb://{tmp_path / 'chdb'}", *key]
    began = time.monotonic()
    ran = subprocess.run([sys.executable, "-m", "consentflow.cli", *args], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1, ran.stderr[-2000:]
    assert (
        f"topic {prefix}.checkpoints does not exist: create it with `consentflow topics create --prefix {prefix}`" in ran.stderr
    )
    assert time.monotonic() - began < 60
