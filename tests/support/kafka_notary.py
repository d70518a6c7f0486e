"""The Kafka notary under test: its processes (``consentflow sink --notary-key``, ``consentflow notary``), what the
topics say each log must hold, the stored log read back in a process of its own (chDB opens one path per process),
and the checks every notary test makes of a log.

``python -m tests.support.kafka_notary DSN DATABASE`` prints the stored logs as JSON: each log's leaf rows as stored
(no FINAL: a duplicate would show), its signed notes, and the consistency proof from each note's size to the log's
size (``LogStore.consistency_proof``); with the ledger rows and erasure notices when the database has them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import ERASURE_NOTICES, LEDGER, checkpoints_topic
from consentflow.core.checkpoint import Checkpoint, Verifier, open_checkpoint
from consentflow.core.merkle import MerkleTree, leaf_hash, verify_consistency
from consentflow.kafka.group_membership import group_view
from consentflow.notary.follower import log_id_of
from consentflow.notary.store import NOTICE_KIND, leaf_of
from tests.support.kafka_pipeline import Pipeline
from tests.support.kafka_topics import read_to_end

#: A killed process's partitions move after 6 s (the broker's minimum), not librdkafka's 45; a checkpoint each second,
#: so that some are signed before a kill mid-stream.
TIMING = ("--session-timeout", "6", "--checkpoint-interval", "1")


class CliProcess:
    """``consentflow ARGS`` as a subprocess of the pipeline, logging to ``<name>.log``; killed at teardown."""

    def __init__(self, pipeline: Pipeline, name: str, args: Sequence[str]) -> None:
        self.log_path = pipeline.tmp / f"{name}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 -- lives as long as the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consentflow.cli", *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        pipeline.others.append(self.process)

    def kill(self) -> None:
        """``kill -9``, and wait for it."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM: finish the batch, commit, exit 0."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)
        assert self.process.returncode == 0, f"exit {self.process.returncode}; see {self.log_path}"

    def alive(self) -> None:
        assert self.process.poll() is None, f"exited with {self.process.returncode}; see {self.log_path}"


def wait_joined(pipeline: Pipeline, group: str, timeout: float = 60.0) -> None:
    """Until ``group`` is stable with a member: the process started, opened its database and subscribed."""
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    deadline = time.monotonic() + timeout
    while not (view := group_view(admin, group)).stable or not view.shares:
        assert time.monotonic() < deadline, f"{group} has no member after {timeout:.0f} s; see {pipeline.tmp}/*.log"
        time.sleep(0.3)


def sink_with_notary(pipeline: Pipeline, name: str, dsn: str, key: Path) -> CliProcess:
    """``consentflow sink --notary-key`` into ``dsn``, database ``<prefix>_sink``, group ``<prefix>-sink``."""
    args = ["sink", "--bootstrap", pipeline.bootstrap, "--prefix", pipeline.prefix, "--dsn", dsn]
    args += ["--database", f"{pipeline.prefix}_sink", "--group-id", f"{pipeline.prefix}-sink"]
    return CliProcess(pipeline, name, [*args, *TIMING, "--notary-key", str(key)])


def standalone_notary(pipeline: Pipeline, name: str, dsn: str, key: Path) -> CliProcess:
    """``consentflow notary`` into ``dsn`` (a chDB path of its own), database ``<prefix>_notary``."""
    args = ["notary", "--private-key", str(key), "--bootstrap", pipeline.bootstrap, "--prefix", pipeline.prefix]
    args += ["--dsn", dsn, "--database", f"{pipeline.prefix}_notary", "--group-id", f"{pipeline.prefix}-notary"]
    return CliProcess(pipeline, name, [*args, *TIMING])


def partition_leaves(bootstrap: str, prefix: str) -> dict[str, list[tuple[int, bytes]]]:
    """What each log must hold: its output partition's ledger entries or erasure notices, as (offset, leaf hash)
    in offset order."""
    codec, logs = SingleObjectCodec(), defaultdict(list)
    for topic in (LEDGER, ERASURE_NOTICES):
        for message in read_to_end(bootstrap, [topic.name(prefix)]):
            if message.value() is None:
                continue
            leaf = leaf_of(topic.short_name, codec.decode(topic, message.value()))
            assert leaf is not None
            log = log_id_of(str(message.topic()), int(message.partition() or 0))
            logs[log].append((int(message.offset() or 0), leaf_hash(leaf.data)))
    return {log: sorted(leaves) for log, leaves in logs.items()}


def topic_checkpoints(bootstrap: str, prefix: str) -> list[tuple[str, str]]:
    """The checkpoints topic's messages: (log id, signed note)."""
    return [
        (bytes(message.key()).decode(), bytes(message.value()).decode())
        for message in read_to_end(bootstrap, [checkpoints_topic(prefix)])
    ]


def dump(dsn: str, database: str) -> dict[str, Any]:
    """The stored logs of ``database`` at ``dsn``, read by a process of its own (``main``)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.kafka_notary", dsn, database], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(out.stdout)
    return loaded


def check_log(name: str, stored: dict[str, Any], verifier: Verifier) -> tuple[list[tuple[int, bytes]], Checkpoint]:
    """A stored log's checks: leaf indices 0..n-1 each once, source offsets rising (none twice), every checkpoint's
    signature, its root equal to the root recomputed from the stored leaf hashes at its size (``core.merkle``), and
    each consistent with the latest (``LogStore.consistency_proof`` verified by ``merkle.verify_consistency``).
    Returns the log's (source offset, leaf hash) in index order, and its latest checkpoint."""
    rows = stored["leaves"]
    assert [row[0] for row in rows] == list(range(len(rows))), f"{name}: leaf indices not 0..n-1 each once"
    offsets = [row[2] for row in rows]
    assert all(a < b for a, b in pairwise(offsets)), f"{name}: a source offset twice or out of order"
    tree = MerkleTree()
    for row in rows:
        tree.append_hash(bytes.fromhex(row[1]))
    checkpoints = [open_checkpoint(note, verifier) for note in stored["checkpoints"]]
    assert checkpoints, f"{name}: no checkpoint"
    for checkpoint in checkpoints:
        assert checkpoint.origin == f"{verifier.name}/{name}"
        assert checkpoint.root == tree.root(checkpoint.size), f"{name}: checkpoint at {checkpoint.size} is not the stored tree's"
    latest = max(checkpoints, key=lambda c: c.size)
    for checkpoint in checkpoints:
        if checkpoint.size < latest.size:
            proof = [bytes.fromhex(h) for h in stored["consistency"][str(checkpoint.size)][str(latest.size)]]
            verify_consistency(checkpoint.size, latest.size, checkpoint.root, latest.root, proof)
    return [(row[2], bytes.fromhex(row[1])) for row in rows], latest


def subject_leaf_sets(stored: dict[str, Any]) -> dict[str, set[str]]:
    """Per subject, the set of its leaf hashes (hex) across every log."""
    sets: dict[str, set[str]] = defaultdict(set)
    for log in stored["logs"].values():
        for _index, digest, _offset, subject, *_ in log["leaves"]:
            sets[subject].add(digest)
    return dict(sets)


def superseded_notice_leaves(stored: dict[str, Any]) -> set[str]:
    """The leaf hashes (hex) of erasure-notice revisions a later revision of the same notice supersedes."""
    latest: dict[str, int] = {}
    notices = [row for log in stored["logs"].values() for row in log["leaves"] if row[4] == NOTICE_KIND]
    for row in notices:
        latest[row[5]] = max(latest.get(row[5], row[6]), row[6])
    return {row[1] for row in notices if row[6] < latest[row[5]]}


def main(dsn: str, database: str) -> None:
    """Print the stored logs of ``database`` as JSON (see the module's docstring)."""
    from consentflow.notary.store import LogStore
    from consentflow.sinks.reader import TableReader
    from consentflow.sinks.tables import CHECKPOINTS, LOG_LEAVES
    from consentflow.sinks.tables import ERASURE_NOTICES as NOTICES_TABLE
    from consentflow.sinks.tables import LEDGER as LEDGER_TABLE

    reader = TableReader(dsn, database)
    logs: dict[str, Any] = {}
    rows = reader.query(
        "SELECT log_id, leaf_index, hex(leaf_hash), source_offset, subject_id, kind, record_id, revision "
        f"FROM {{db:Identifier}}.`{LOG_LEAVES.name}` ORDER BY log_id, leaf_index"
    )
    for log, *rest in rows:
        logs.setdefault(str(log), {"leaves": [], "checkpoints": [], "consistency": {}})["leaves"].append(
            [int(rest[0]), str(rest[1]).lower(), int(rest[2]), str(rest[3]), str(rest[4]), str(rest[5]), int(rest[6])]
        )
    for log, note in reader.query(
        f"SELECT log_id, note FROM {{db:Identifier}}.`{CHECKPOINTS.name}` ORDER BY log_id, size, signed_at"
    ):
        logs.setdefault(str(log), {"leaves": [], "checkpoints": [], "consistency": {}})["checkpoints"].append(str(note))
    for log, stored in logs.items():
        store = LogStore(reader, log)
        sizes = _sizes(stored["checkpoints"])
        for old in sorted(set(sizes)):
            if 0 < old < max(sizes):
                proof = store.consistency_proof(old, max(sizes))
                stored["consistency"].setdefault(str(old), {})[str(max(sizes))] = [h.hex() for h in proof]
    tables = {str(name) for (name,) in reader.query("SELECT name FROM system.tables WHERE database = {db:String}")}
    ledger: list[list[Any]] = []
    notices: list[list[Any]] = []
    if LEDGER_TABLE.name in tables:
        ledger = [
            [str(s), str(h)]
            for s, h in reader.query(f"SELECT subject_id, entry_hash FROM {{db:Identifier}}.`{LEDGER_TABLE.name}`")
        ]
    if NOTICES_TABLE.name in tables:
        notices = [
            [str(s), str(n), int(r)]
            for s, n, r in reader.query(f"SELECT subject_id, notice_id, revision FROM {{db:Identifier}}.`{NOTICES_TABLE.name}`")
        ]
    json.dump({"logs": logs, "ledger": ledger, "notices": notices}, sys.stdout)


def _sizes(notes: list[str]) -> list[int]:
    """Each note's tree size (its second line), unverified: the test verifies the signatures."""
    return [int(note.split("\n")[1]) for note in notes]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
