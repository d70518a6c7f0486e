"""Latency of the DPO's questions on ten million lineage edges in chDB.

Run: .venv/bin/python bench/query_latency.py [--edges 10000000] [--samples 200] [--recipients 20]

Loads ``--edges`` synthetic lineage edges (and a ledger in the generator's
proportion of consent facts to edges) into a fresh database created by
``ClickHouseSink`` (so with the real DDL, the by-recipient copy filled by its
materialised view), in column-oriented batches through clickhouse-connect, and
prints the load time. The rows follow the generated mix: each edge copies
recipient, kind, country, mechanism, purpose and categories from an edge the
processors made of a small generated stream, with a random subject and a time
spread over a year; each ledger row likewise copies a real ledger entry.

Then measures, through the query layer the CLI and the HTTP API call:
``who_has`` and ``consent`` for ``--samples`` random subjects (median, p95),
and ``breach`` over a one-month window for ``--recipients`` recipients
(median, p95, max), next to the targets (who-has p95 < 50 ms, breach < 1 s).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consent_queries import consent
from consentflow.sinks.lineage_queries import breach, who_has
from consentflow.sinks.tables import LEDGER, LINEAGE, Table

START = datetime(2021, 1, 4, tzinfo=UTC)
YEAR_MICROS = 365 * 86_400 * 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WHO_HAS_P95_TARGET_MS = 50.0
BREACH_TARGET_MS = 1000.0


def main() -> None:
    """Load, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=200, help="random subjects for who-has and consent")
    parser.add_argument("--recipients", type=int, default=20, help="recipients for breach, one month each")
    parser.add_argument("--batch", type=int, default=1_000_000, help="rows per insert")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dsn", default=None, help="ClickHouse DSN (default: chDB in a temporary directory, removed after)")
    args = parser.parse_args()

    tmp = None if args.dsn else tempfile.mkdtemp(prefix="consentflow-bench-")
    dsn = args.dsn or f"chdb://{tmp}"
    try:
        _run(args, dsn)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, dsn: str) -> None:
    edge_templates, ledger_templates, edges_per_subject, facts_per_edge = _templates(args.seed)
    subjects = max(1, round(args.edges / edges_per_subject))
    ledger_rows = round(args.edges * facts_per_edge)
    database = f"bench_{random.Random().getrandbits(32):08x}"
    sink = ClickHouseSink(dsn, database)
    print(f"dsn={dsn} database={database}")
    print(f"{args.edges:,} edges over {subjects:,} subjects and a year; {ledger_rows:,} ledger rows (the generated mix)")

    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    _load_edges(sink, rng, edge_templates, args.edges, subjects, args.batch)
    edges_seconds = time.perf_counter() - began
    began = time.perf_counter()
    _load_ledger(sink, rng, ledger_templates, ledger_rows, subjects, args.batch)
    ledger_seconds = time.perf_counter() - began
    print(
        f"load: {args.edges:,} edges in {edges_seconds:.1f} s ({args.edges / edges_seconds:,.0f} rows/s, "
        f"both copies), {ledger_rows:,} ledger rows in {ledger_seconds:.1f} s"
    )
    reader = sink.reader
    parts = reader.query(
        "SELECT table, count(), sum(rows) FROM system.parts WHERE database = {d:String} AND active GROUP BY table ORDER BY table",
        {"d": database},
    )
    print("active parts: " + ", ".join(f"{table} {n} ({rows:,} rows)" for table, n, rows in parts))
    merging = reader.query("SELECT count() FROM system.merges WHERE database = {d:String}", {"d": database})[0][0]
    print(f"background merges running as the measurements start: {merging}")

    pick = random.Random(args.seed)
    # The first queries load the parts' indexes and marks: timed apart, on subjects not sampled after.
    cold = [_timed(lambda s=s: who_has(reader, s)) for s in (f"subj-{pick.randrange(subjects):07d}" for _ in range(5))]
    print(f"first queries after the load (indexes and marks cold): {', '.join(f'{ms:,.0f}' for ms in cold)} ms")
    sampled = [f"subj-{pick.randrange(subjects):07d}" for _ in range(args.samples)]
    middle = START + timedelta(days=182)
    _report("who-has (now)", [_timed(lambda s=s: who_has(reader, s)) for s in sampled], WHO_HAS_P95_TARGET_MS, "p95")
    _report(
        "who-has (--as-of mid-year)",
        [_timed(lambda s=s: who_has(reader, s, middle)) for s in sampled],
        WHO_HAS_P95_TARGET_MS,
        "p95",
    )
    _report("consent (all purposes)", [_timed(lambda s=s: consent(reader, s)) for s in sampled], None, "p95")

    recipients = sorted({t[0] for t in edge_templates})
    chosen = pick.sample(recipients, min(args.recipients, len(recipients)))
    timings: list[float] = []
    held: list[int] = []
    for recipient in chosen:
        month = START + timedelta(days=30 * pick.randrange(11))
        began = time.perf_counter()
        impact = breach(reader, recipient, month, month + timedelta(days=30))
        timings.append((time.perf_counter() - began) * 1000)
        held.append(impact.subjects)
    print(f"breach windows: {min(held):,}..{max(held):,} subjects (median {statistics.median(held):,.0f})")
    _report("breach (one month)", timings, BREACH_TARGET_MS, "max")


def _templates(seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], float, float]:
    """Edges and ledger entries the processors make of a year of 2,000 generated subjects, and their rates."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.avro"
        generate(GeneratorConfig(subjects=2000, days=365, seed=seed), out, None)
        processor = Processor()
        edges: list[tuple[Any, ...]] = []
        ledger: list[tuple[Any, ...]] = []
        for topic, record in read_events(out):
            changes = processor.process(topic.short_name, record)
            for e in changes.lineage:
                edges.append(
                    (
                        e["recipient_id"],
                        e["recipient_kind"],
                        list(e["categories"]),
                        e["purpose"],
                        e["legal_basis"],
                        e["country"],
                        e["transfer_mechanism"],
                        e["source_kind"],
                        e["source_service"],
                    )
                )
            for entry in changes.ledger:
                ledger.append(
                    (
                        entry["purpose"],
                        entry["action"],
                        entry["channel"],
                        entry["policy_version"],
                        entry["source_service"],
                        entry["notice_id"],
                    )
                )
    return edges, ledger, len(edges) / 2000, len(ledger) / len(edges)


def _hex_ids(rng: np.random.Generator, n: int, width: int) -> list[str]:
    """``n`` random hex strings of ``width`` characters (stand-ins for event ids and hashes)."""
    text = rng.bytes(n * width // 2).hex()
    return [text[i : i + width] for i in range(0, n * width, width)]


def _times(rng: np.random.Generator, n: int, index: int, batches: int) -> list[int]:
    """Sorted microsecond timestamps in this batch's slice of the year: rows arrive roughly in event time."""
    lo = START + timedelta(microseconds=YEAR_MICROS * index // batches)
    base = int((lo - EPOCH) / timedelta(microseconds=1))
    return (base + np.sort(rng.integers(0, YEAR_MICROS // batches, n))).tolist()


def _load_edges(
    sink: ClickHouseSink, rng: np.random.Generator, templates: list[tuple[Any, ...]], total: int, subjects: int, batch: int
) -> None:
    batches = max(1, -(-total // batch))
    for index in range(batches):
        n = min(batch, total - index * batch)
        chosen = [templates[i] for i in rng.integers(0, len(templates), n).tolist()]
        ids = _hex_ids(rng, n, 32)
        columns: dict[str, list[Any]] = {
            "edge_id": ids,
            "subject_id": [f"subj-{s:07d}" for s in rng.integers(0, subjects, n).tolist()],
            "recipient_id": [t[0] for t in chosen],
            "recipient_kind": [t[1] for t in chosen],
            "categories": [t[2] for t in chosen],
            "purpose": [t[3] for t in chosen],
            "legal_basis": [t[4] for t in chosen],
            "country": [t[5] for t in chosen],
            "transfer_mechanism": [t[6] for t in chosen],
            "occurred_at": _times(rng, n, index, batches),
            "source_event_id": ids,
            "source_kind": [t[7] for t in chosen],
            "source_service": [t[8] for t in chosen],
        }
        _insert(sink, LINEAGE, columns)


def _load_ledger(
    sink: ClickHouseSink, rng: np.random.Generator, templates: list[tuple[Any, ...]], total: int, subjects: int, batch: int
) -> None:
    batches = max(1, -(-total // batch))
    sequence: dict[int, int] = {}
    for index in range(batches):
        n = min(batch, total - index * batch)
        chosen = [templates[i] for i in rng.integers(0, len(templates), n).tolist()]
        owners = rng.integers(0, subjects, n).tolist()
        sequences = []
        for owner in owners:  # each subject's entries are numbered in arrival order, as the chain is
            sequences.append(sequence.get(owner, 0))
            sequence[owner] = sequences[-1] + 1
        hashes = _hex_ids(rng, n, 64)
        columns: dict[str, list[Any]] = {
            "subject_id": [f"subj-{s:07d}" for s in owners],
            "sequence": sequences,
            "event_id": _hex_ids(rng, n, 32),
            "occurred_at": _times(rng, n, index, batches),
            "purpose": [t[0] for t in chosen],
            "action": [t[1] for t in chosen],
            "channel": [t[2] for t in chosen],
            "policy_version": [t[3] for t in chosen],
            "source_service": [t[4] for t in chosen],
            "notice_id": [t[5] for t in chosen],
            "previous_hash": hashes,
            "entry_hash": hashes,
        }
        _insert(sink, LEDGER, columns)


def _insert(sink: ClickHouseSink, table: Table, columns: dict[str, list[Any]]) -> None:
    """One column-oriented insert (columns left out take their defaults: no Kafka coordinates here)."""
    names = [c for c in table.column_names if c in columns]
    sink.client.insert(f"{sink.database}.{table.name}", [columns[c] for c in names], column_names=names, column_oriented=True)


def _timed(call: Callable[[], Any]) -> float:
    began = time.perf_counter()
    call()
    return (time.perf_counter() - began) * 1000


def _report(name: str, millis: list[float], target: float | None, against: str) -> None:
    ordered = sorted(millis)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    figure = {"p95": p95, "max": ordered[-1]}[against]
    verdict = "" if target is None else f"   target {against} < {target:,.0f} ms: {'met' if figure < target else 'MISSED'}"
    slowest = max(range(len(millis)), key=millis.__getitem__)
    print(
        f"{name:28} n={len(ordered):4}  median {statistics.median(ordered):8.1f} ms  p95 {p95:8.1f} ms  "
        f"max {ordered[-1]:8.1f} ms (query #{slowest + 1}){verdict}"
    )


if __name__ == "__main__":
    main()
