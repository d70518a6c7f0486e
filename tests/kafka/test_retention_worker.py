"""A worker's retention ticks on the real broker [2.3]: what a tick emits and records reaches the changelog, so a
replacement worker that recovers the states from it does not emit it again; and a worker's store remembers how far
the changelog holds its writes, so a restart on it reads only what follows.

Two subjects: A registered at T0, B three years and ten days later. B's event moves the worker's clock (its
event-time watermark) past A's archive date [2.3.1]. When a sweep is owed is tested in test_retention_agenda.py.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import rocksdict

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.events import profile_event
from consentflow.contracts.topics import topic_named
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import end_offsets
from consentflow.kafka.producer import EventProducer
from consentflow.policy.vocabulary import AccountKind, DataCategory, ProfileAction
from consentflow.streams.partition_range import messages_in, range_consumer
from tests.support.builders import T0, eid
from tests.support.dpo_expected import after
from tests.support.kafka_topics import delete_topics_under

pytestmark = pytest.mark.kafka

YEAR = timedelta(days=365)
HELD = (DataCategory.IDENTITY, DataCategory.CONTACT, DataCategory.PROFESSIONAL_CV)


@pytest.fixture(autouse=True)
def far_skew(monkeypatch: pytest.MonkeyPatch) -> None:
    """B's registration (T0 + 3 years) lies beyond today's clock, and the broker takes no message timestamp more than
    an hour ahead: the gate here (the producer, and the workers, which inherit the environment) accepts five years."""
    monkeypatch.setenv("CONSENTFLOW_MAX_EVENT_SKEW", str(5 * 365 * 86_400))


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    name = f"rt{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, prefix=name)
    yield name
    delete_topics_under(kafka_bootstrap, name)


def start_worker(bootstrap: str, prefix: str, data_dir: Path, log: Path, store: str = "rocksdb") -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "consentflow.cli", "worker", "--bootstrap", bootstrap, "--prefix", prefix]
    command += ["--app-id", f"{prefix}-worker", "--data-dir", str(data_dir), "--loglevel", "info", "--store", store]
    command += ["--retention-interval", "0.5", "--retention-sweep-interval", "1"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(condition: Any, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode} while waiting for {what}; see {log}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s; see {log}")
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def persisted_offsets(data_dir: Path) -> dict[int, int]:
    """Partition -> the changelog offset each partition database of the subject table says it holds up to."""
    found = {}
    for path in data_dir.rglob("subjects-*.db"):
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only())
        try:
            offset = db.get(b"__faust\0offset__")  # faust's key (faust.stores.rocksdb.Store.offset_key)
        finally:
            db.close()
        if offset is not None:
            found[int(path.name.removesuffix(".db").rsplit("-", 1)[1])] = int(offset)
    return found


def stored_states(data_dir: Path) -> dict[str, bytes]:
    """Subject id -> the bytes the subject table's partition databases hold for it (faust's keys are JSON text)."""
    found = {}
    for path in data_dir.rglob("subjects-*.db"):
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only())
        try:
            found.update({json.loads(key): value for key, value in db.items() if not key.startswith(b"__faust")})
        finally:
            db.close()
    return found


def records(bootstrap: str, prefix: str, short_name: str) -> list[dict[str, Any]]:
    """Every record in an output topic, decoded."""
    name, codec, found = topic_named(short_name).name(prefix), SingleObjectCodec(), []
    consumer = range_consumer(bootstrap, f"{prefix}-reader")
    try:
        for (_, partition), end in sorted(end_offsets(bootstrap, [name]).items()):
            found += [codec.decode(short_name, m.value()) for m in messages_in(consumer, name, partition, range(end), 30.0)]
    finally:
        consumer.close()
    return found


def test_a_sweep_emits_what_fell_due_and_a_replacement_worker_does_not_emit_it_again(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    first_worker_emits_the_action_that_fell_due(kafka_bootstrap, prefix, tmp_path / "w1", "rocksdb")
    # Each partition's store holds the offset of the last changelog record written from it, as faust's own
    # writes leave it: a restart on this directory reads the changelog only past that.
    changelog = {p: end for (_, p), end in end_offsets(kafka_bootstrap, [f"{prefix}-worker-subjects-changelog"]).items() if end}
    assert changelog, "the states reached the changelog"
    assert persisted_offsets(tmp_path / "w1") == {p: end - 1 for p, end in changelog.items()}
    # Both subjects' states, each a pickle of its own (no base64 layer), in the database of its partition.
    stored = stored_states(tmp_path / "w1")
    assert len(stored) == 2
    assert all(value[:1] == b"\x80" and pickle.loads(value).subject_id == subject for subject, value in stored.items())

    # A new machine: an empty data directory, the states from the changelog only.
    sweep_remembers_what_was_emitted(kafka_bootstrap, prefix, tmp_path / "w2", tmp_path / "w2.log")
    # The first machine again, on its own data directory: the states come from its RocksDB databases, in the
    # bytes the worker wrote there, and the changelog is read only past the offsets they recorded.
    sweep_remembers_what_was_emitted(kafka_bootstrap, prefix, tmp_path / "w1", tmp_path / "w1-again.log")


def test_a_worker_on_the_memory_store_writes_a_changelog_its_replacement_recovers(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    first_worker_emits_the_action_that_fell_due(kafka_bootstrap, prefix, tmp_path / "w1", "memory")
    # The memory store has no partition databases for a sweep to file its writes under, so what a sweep
    # records stays in its cache (ARCHITECTURE.md); the states its batches wrote reach the replacement.
    sweep_reads_both_states(kafka_bootstrap, prefix, tmp_path / "w2", tmp_path / "w2.log")


def first_worker_emits_the_action_that_fell_due(bootstrap: str, prefix: str, data_dir: Path, store: str) -> None:
    """Two subjects' registrations; a worker on ``data_dir`` with ``store`` issues both holdings and A's archive action."""
    a_used, b_registered = T0, T0 + 3 * YEAR + timedelta(days=10)
    with EventProducer(bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
        for subject, when in (("cand-a", a_used), ("cand-b", b_registered)):
            event = profile_event(
                subject,
                ProfileAction.REGISTERED,
                account_kind=AccountKind.APPLICANT,
                categories=HELD,
                source_service="profile",
                occurred_at=when,
                event_id=eid(subject, "registered"),
            )
            producer.send(event)

    log = data_dir.with_name(f"{data_dir.name}.log")
    first = start_worker(bootstrap, prefix, data_dir, log, store)
    try:
        wait_for(lambda: len(records(bootstrap, prefix, "holdings")) == 2, "holdings of both subjects", first, log)
        wait_for(lambda: records(bootstrap, prefix, "retention"), "retention action", first, log)
    finally:
        stop(first)
    actions = records(bootstrap, prefix, "retention")
    assert {(a["subject_id"], a["action"], a["due_at"]) for a in actions} == {("cand-a", "archive", after(a_used, 3))}
    assert len(actions) == 1


def sweep_reads_both_states(bootstrap: str, prefix: str, data_dir: Path, log: Path) -> None:
    """A worker on ``data_dir`` recovers both subjects' states and sweeps them."""
    worker = start_worker(bootstrap, prefix, data_dir, log)
    try:
        wait_for(lambda: "retention sweep at" in log.read_text(), f"sweep by the worker on {data_dir.name}", worker, log)
    finally:
        stop(worker)
    assert "read 2 subjects" in log.read_text(), "the worker swept the states it recovered"


def sweep_remembers_what_was_emitted(bootstrap: str, prefix: str, data_dir: Path, log: Path) -> None:
    """A worker on ``data_dir`` sweeps both subjects' states and emits neither the action nor the holdings again."""
    sweep_reads_both_states(bootstrap, prefix, data_dir, log)
    assert len(records(bootstrap, prefix, "retention")) == 1, "the action emitted before was remembered"
    assert len(records(bootstrap, prefix, "holdings")) == 2, "the holdings issued before were remembered"
