"""The batch-split property on the demo file [issue 18]: ``make demo``'s events (5,000 subjects, a year, seed 1) run
whole, in 2 batches and in 7, each batch a ``consentflow run`` process of its own into one chDB path (chDB is one
engine per process), leave the same per-table digests (dead letters aside: they carry a position in the file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from consentflow.contracts.eventfile import read_events, write_events
from consentflow.contracts.events import Event
from consentflow.generator import GeneratorConfig, generate

_DIGESTS = """
import json, sys
from consentflow.sinks.digest import table_digests
from consentflow.sinks.reading import open_tables
found = table_digests(open_tables(sys.argv[1], "consentflow"))
found.pop("dead_letters")
print(json.dumps(found))
"""


def consentflow(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "consentflow.cli", *args], capture_output=True, text=True, env=os.environ.copy(), check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def digests(dsn: str) -> dict[str, list[object]]:
    done = subprocess.run([sys.executable, "-c", _DIGESTS, dsn], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, list[object]] = json.loads(done.stdout)
    return found


def run_in_batches(events: list[Event], batches: int, folder: Path) -> dict[str, list[object]]:
    folder.mkdir()
    dsn = f"chdb://{folder / 'chdb'}"
    cuts = [len(events) * i // batches for i in range(batches + 1)]
    for index in range(batches):
        path = folder / f"{index}.avro"
        write_events(path, events[cuts[index] : cuts[index + 1]], codec="null")
        consentflow("run", str(path), "--dsn", dsn, "--no-overview")
    return digests(dsn)


def test_the_demo_file_in_1_2_and_7_batches_leaves_the_same_digests(tmp_path: Path) -> None:
    demo = tmp_path / "demo.avro"
    generate(GeneratorConfig(subjects=5000, days=365, seed=1), demo, None)
    whole = f"chdb://{tmp_path / 'whole'}"
    consentflow("run", str(demo), "--dsn", whole, "--no-overview")  # one batch: the file as make demo runs it
    expected = digests(whole)
    assert expected["ledger"][0] > 30_000 and expected["subject_holdings"][0] == 5000
    events = [Event(topic, record) for topic, record in read_events(demo)]
    assert run_in_batches(events, 2, tmp_path / "two") == expected
    assert run_in_batches(events, 7, tmp_path / "seven") == expected
