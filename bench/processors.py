"""The domain processors alone over decoded events of the generated mix, on one core.

Run: .venv/bin/python bench/processors.py [--subjects N] [--days D]

Prints, measured in the same run:
(a) processors: ``Processor.process`` over events already decoded in memory, events/s;
(b) the raw limit of the stage before it: fastavro decoding the same events
    from single-object-encoded bytes (``SingleObjectCodec.decode``), events/s;
the ratio (a)/(b), peak RSS, and detection quality against the ground truth.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.runtime import native
from consentflow.runtime.gc_tuning import tune_for_streaming


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--violation-share", type=float, default=0.002)
    parser.add_argument("--repeat", type=int, default=5, help="passes over the events, each from an empty state")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.avro"
        truth_path = Path(tmp) / "truth.jsonl"
        generate(GeneratorConfig(args.subjects, args.days, args.seed, violation_share=args.violation_share), out, truth_path)
        events = [(topic.short_name, record) for topic, record in read_events(out)]
        truth = {(d["rule"], d["event_id"]) for d in map(json.loads, truth_path.read_text().splitlines())}

    codec = SingleObjectCodec()
    encoded = [(name, codec.encode(name, record)) for name, record in events]
    began = time.perf_counter()
    for name, data in encoded:
        codec.decode(name, data)
    decode_rate = len(encoded) / (time.perf_counter() - began)
    del encoded

    # The decoded events held for the benchmark are not the processors' work:
    # keep the cyclic collector from rescanning them on every collection.
    gc.collect()
    gc.freeze()
    tune_for_streaming()  # the thresholds every consentflow command runs with
    # This VM's speed varies by half between runs: each repeat starts from an
    # empty state, and the median and the range are reported.
    rates: list[float] = []
    for _ in range(args.repeat):
        rates.append(_run(events))
        gc.collect()
    outputs, found = _detected(events)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = statistics.median(rates)

    print(f"subjects={args.subjects} days={args.days} events={len(events):,} outputs={outputs:,}")
    print(f"processors: {native.described()}")
    print(
        f"(a) processors over decoded events:  {rate:12,.0f} events/s  median of {len(rates)} "
        f"(range {min(rates):,.0f}..{max(rates):,.0f})"
    )
    print(f"(b) single-object decode (fastavro): {decode_rate:12,.0f} events/s")
    print(f"ratio (a)/(b): {rate / decode_rate:.2f}")
    print(f"peak RSS (events held in memory + state): {peak:,.0f} MiB")
    true_positives = len(found & truth)
    precision = true_positives / len(found) if found else 1.0
    recall = true_positives / len(truth) if truth else 1.0
    print(f"violations: {len(found)} found, {len(truth)} injected, precision {precision:.3f}, recall {recall:.3f}")


def _run(events: list[tuple[str, dict[str, Any]]]) -> float:
    """One timed pass of a fresh ``Processor`` over ``events``: events/s. Only ``process`` runs in the loop."""
    process = Processor().process
    began = time.perf_counter()
    for name, record in events:
        process(name, record)
    return len(events) / (time.perf_counter() - began)


def _detected(events: list[tuple[str, dict[str, Any]]]) -> tuple[int, set[tuple[str, str]]]:
    """An untimed pass: how many outputs, and the violations active at the end as (rule, offending event id)."""
    process = Processor().process
    outputs = 0
    active: dict[tuple[str, str], bool] = {}
    for name, record in events:
        changes = process(name, record)
        outputs += len(changes)
        for topic, out_record in changes:
            if topic == "violations":
                active[(out_record["rule"], out_record["evidence_event_ids"][0])] = out_record["active"]
    return outputs, {key for key, is_active in active.items() if is_active}


if __name__ == "__main__":
    main()
