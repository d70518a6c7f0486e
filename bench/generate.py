"""Generator throughput and peak RSS, with the ratio to a bare fastavro container write.

Run: .venv/bin/python bench/generate.py [--subjects N] [--days D]

(a) the generator end to end (`consentflow generate`, a subprocess so its peak
    RSS is its own), events/s and peak RSS;
(b) the raw limit for the same events: fastavro writing the already-built
    records of (a)'s output file into a container file, events/s;
and the ratio (a)/(b).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastavro

from consentflow.contracts.eventfile import input_union_schema


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--raw-sample", type=int, default=300_000, help="events held in memory for the raw write")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "events.avro"
        cmd = [
            sys.executable,
            "-m",
            "consentflow.cli",
            "generate",
            "--subjects",
            str(args.subjects),
            "--days",
            str(args.days),
            "--seed",
            str(args.seed),
            "--out",
            str(out),
        ]
        began = time.perf_counter()
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        elapsed = time.perf_counter() - began
        summary = json.loads(done.stdout)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        events = summary["events"]
        gen_rate = events / elapsed

        with open(out, "rb") as handle:
            items = []
            for item in fastavro.reader(handle, return_record_name=True):
                items.append(item)
                if len(items) >= args.raw_sample:
                    break
        schema = input_union_schema()
        began = time.perf_counter()
        fastavro.writer(io.BytesIO(), schema, items, codec="deflate", sync_interval=64_000, strict_allow_default=True)
        raw_rate = len(items) / (time.perf_counter() - began)

    print(f"subjects={args.subjects} days={args.days} seed={args.seed} events={events}")
    print(f"(a) generator end to end:        {gen_rate:12,.0f} events/s  ({elapsed:.1f} s, peak RSS {peak_kib / 1024:.0f} MiB)")
    print(f"(b) raw fastavro container write: {raw_rate:12,.0f} events/s  ({len(items):,} pre-built records, deflate)")
    print(f"ratio (a)/(b): {gen_rate / raw_rate:.2f}")
    print(f"injected violations: {sum(summary['injected_violations'].values())} ({summary['injected_share']:.4%} of events)")
    print(f"cpu count: {os.cpu_count()}")


if __name__ == "__main__":
    main()
