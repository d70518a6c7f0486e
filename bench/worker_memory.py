"""The faust worker's resident memory with many subjects in its state.

Run (the Kafka broker must be up: bash deploy/kafka.sh start):
    .venv/bin/python bench/worker_memory.py [--subjects 1000000]

Produces one registration per subject (a profile event, so every subject gets
a state), runs one worker over them until it has caught up, and prints the
worker's peak RSS (sampled with psutil) and its throughput. The states are small
(one event each): what this measures is the worker with N subjects in its table
(RocksDB on disk, a bounded in-process cache of recent states). A state grows with
a subject's history (about 8.6 KiB in memory for a year of the generated mix,
45 events; see bench/RESULTS.md §4), and at most ``TableStore.cache_size`` of them are
held in memory.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import PeakRss, worker_command  # shared with the pipeline benchmark

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.events import profile_event
from consentflow.contracts.topics import INPUT_TOPICS
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import group_lag
from consentflow.kafka.producer import EventProducer
from consentflow.policy.vocabulary import AccountKind, DataCategory, ProfileAction


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", default=os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument(
        "--retention-interval", type=float, default=30.0, help="the worker's, as deployed: ticks run during the load"
    )
    args = parser.parse_args()

    prefix = f"mem{uuid.uuid4().hex[:6]}"
    create_topics(args.bootstrap, prefix=prefix)
    start = datetime(2021, 1, 1, tzinfo=UTC)
    with EventProducer(args.bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
        for n in range(args.subjects):
            producer.send(
                profile_event(
                    f"subj-{n:07d}",
                    ProfileAction.REGISTERED,
                    account_kind=AccountKind.APPLICANT,
                    categories=[DataCategory.IDENTITY, DataCategory.CONTACT],
                    source_service="registration",
                    occurred_at=start + timedelta(seconds=n),
                )
            )
    inputs = [t.name(prefix) for t in INPUT_TOPICS if not t.compacted]
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        log_path = Path(tmp) / "worker.log"
        with open(log_path, "wb") as log:
            worker = subprocess.Popen(
                worker_command(
                    args.bootstrap,
                    prefix,
                    Path(tmp) / "worker",
                    *("--retention-interval", str(args.retention_interval), "--loglevel", "info"),
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        rss = PeakRss(worker.pid)
        while group_lag(args.bootstrap, f"{prefix}-w", inputs) > 0 or time.perf_counter() - began < 10:
            time.sleep(2)
        elapsed = time.perf_counter() - began
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(120)
        peak = rss.stop()
        sweeps = [line.split("] ", 3)[-1].strip() for line in log_path.read_text().splitlines() if "retention sweep" in line]
    print(f"subjects in the worker's state: {args.subjects:,}")
    print(f"retention ticks every {args.retention_interval:g} s; sweeps over every subject: {len(sweeps)}")
    for sweep in sweeps:
        print(f"  {sweep}")
    print(f"worker: {args.subjects / elapsed:,.0f} events/s including start-up ({elapsed:.0f} s)")
    print(f"worker peak RSS: {peak / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
