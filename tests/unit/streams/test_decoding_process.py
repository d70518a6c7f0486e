"""The embedded runner's decoding process: the same events in the same order as decoding in process, and the same
errors, clearer where the file breaks off; ``consentflow run`` through it leaves the same tables from a file and
from standard input."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import fastavro
import psutil
import pytest

from consentflow.contracts.errors import ContractError
from consentflow.contracts.eventfile import READING_STOPPED, ReadingStopped, input_union_schema, read_events
from consentflow.contracts.topics import DEAD_LETTER
from consentflow.generator import GeneratorConfig, generate
from consentflow.streams.decoding_process import PIPE_BYTES, _deepen, read_events_in_child


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("decoding") / "events.avro"
    generate(GeneratorConfig(subjects=120, days=90, seed=11), out, None)
    return out


def test_the_child_yields_every_event_of_the_file_in_file_order(event_file: Path) -> None:
    in_process = [(topic.short_name, record) for topic, record in read_events(event_file)]
    # Small chunks, so the file crosses many frames.
    in_child = [(topic.short_name, record) for topic, record in read_events_in_child(event_file, chunk=37)]
    assert len(in_child) > 1_000
    assert in_child == in_process


def test_a_file_that_breaks_off_yields_what_decoded_then_a_dead_letter_naming_the_byte(event_file: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.avro"
    data = event_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    decoded_in_process = []
    with pytest.raises(ReadingStopped, match=r"reading stopped at byte \d+, after item \d+: EOFError"):
        for item in read_events(truncated):  # strict: the dead letter is raised
            decoded_in_process.append(item)
    in_child = list(read_events_in_child(truncated, chunk=50))
    *decoded_in_child, (last_topic, letter) = in_child
    assert decoded_in_child == decoded_in_process
    assert decoded_in_child
    assert last_topic is DEAD_LETTER and letter["error_type"] == READING_STOPPED
    stopped_at = int(re.search(r"at byte (\d+)", letter["reason"]).group(1))  # type: ignore[union-attr]
    assert 0 < stopped_at < len(data) // 2
    assert letter["offset"] == len(decoded_in_child)  # the first item not read


def test_a_timestamp_no_datetime_can_hold_is_a_dead_letter_after_the_events_before_it(event_file: Path, tmp_path: Path) -> None:
    """Timestamps cross from the child as integers; the gate refuses one past the year 9999 there, naming it."""
    first = [(f"consentflow.{topic.record}", record) for topic, record in itertools.islice(read_events(event_file), 5)]
    name, record = first[-1]
    odd = tmp_path / "far-future.avro"
    with open(odd, "wb") as out:
        fastavro.writer(out, input_union_schema(), [*first, (name, dict(record, occurred_at=2**62))])
    with pytest.raises(ContractError):
        list(read_events(odd))
    decoded_in_child = []
    letters = []
    for topic, decoded in read_events_in_child(odd):
        if topic is DEAD_LETTER:
            letters.append(decoded)
        else:
            decoded_in_child.append((f"consentflow.{topic.record}", decoded))
    assert decoded_in_child == first
    (letter,) = letters
    assert letter["offset"] == 5 and "field occurred_at" in letter["reason"]


def test_a_file_that_is_not_an_event_file_gets_the_in_process_error(tmp_path: Path) -> None:
    not_avro = tmp_path / "notes.txt"
    not_avro.write_text("not avro at all\n")
    with pytest.raises(ContractError) as in_process:
        list(read_events(not_avro))
    with pytest.raises(ContractError) as in_child:
        list(read_events_in_child(not_avro))
    assert str(in_child.value) == str(in_process.value)
    assert "not an Avro object container file" in str(in_child.value)


def test_a_missing_file_is_an_os_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.avro"
    with pytest.raises(FileNotFoundError, match=re.escape("absent.avro")):
        list(read_events_in_child(missing))


def test_closing_the_reader_early_stops_the_child(event_file: Path) -> None:
    before = {p.pid for p in psutil.Process().children()}
    events = read_events_in_child(event_file, chunk=10)
    next(events)
    started = {p.pid for p in psutil.Process().children()} - before
    assert len(started) == 1
    events.close()
    assert {p.pid for p in psutil.Process().children()} - before == set()


def test_the_child_starts_with_the_reader_and_stops_when_a_reader_never_read_is_dropped(event_file: Path) -> None:
    """The child's start-up overlaps what the caller does before the first event (``consentflow run`` opens ClickHouse)."""
    before = {p.pid for p in psutil.Process().children()}
    events = read_events_in_child(event_file)
    assert len({p.pid for p in psutil.Process().children()} - before) == 1  # before any event is asked for
    del events
    assert {p.pid for p in psutil.Process().children()} - before == set()


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_pipe_from_the_child_holds_several_frames() -> None:
    """The child may run ahead of the runner by about five frames, not one: a moment when ClickHouse's threads hold
    its core then costs the runner no wait."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(write_end, "wb"):
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) < PIPE_BYTES  # the kernel's default
        _deepen(pipe)
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES


def _consentflow(*args: str, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consentflow.cli", *args]
    with open(stdin, "rb") if stdin else open("/dev/null", "rb") as source:
        return subprocess.run(command, stdin=source, capture_output=True, text=True, timeout=300, check=False)


def test_consentflow_run_reads_a_file_and_standard_input_into_the_same_tables(event_file: Path, tmp_path: Path) -> None:
    """The command users run: events decoded by the child, processed and written; stdin gives the same digest."""
    expected = sum(1 for _ in read_events(event_file))
    digests = []
    for name, source, stdin in (("file", str(event_file), None), ("stdin", "-", event_file)):
        dsn = f"chdb://{tmp_path / name}"
        ran = _consentflow("run", source, "--dsn", dsn, "--no-overview", stdin=stdin)
        assert ran.returncode == 0, ran.stderr
        assert f"{expected:,} events in" in ran.stderr
        digest = _consentflow("digest", "--dsn", dsn)
        assert digest.returncode == 0, digest.stderr
        digests.append(json.loads(digest.stdout))
    assert digests[0] == digests[1]
    assert digests[0]["ledger"][0] > 0 and digests[0]["lineage_edges"][0] > 0  # (rows, hash) per table


def test_consentflow_run_keeps_what_it_read_of_a_file_that_breaks_off_and_exits_3(event_file: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.avro"
    data = event_file.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    dsn = f"chdb://{tmp_path / 'db'}"
    ran = _consentflow("run", str(truncated), "--dsn", dsn, "--no-overview")
    assert ran.returncode == 3, ran.stderr
    assert re.search(rf"{re.escape(str(truncated))}: reading stopped at byte \d+", ran.stderr)
    assert "Traceback" not in ran.stderr
    kept = json.loads(_consentflow("digest", "--dsn", dsn).stdout)
    assert kept["ledger"][0] > 0  # the events read before the fault keep their outputs
    assert kept["dead_letters"][0] == 1  # one dead letter, naming the byte
