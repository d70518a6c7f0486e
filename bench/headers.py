"""What the self-describing headers (issue 23) cost the worker's output path: encode a trusted output record and
hand it to ``EventProducer.send_bytes``, then flush to the broker, with the headers and without, in alternating pairs.

Run (the Kafka broker must be up: bash deploy/kafka.sh start):
    .venv/bin/python bench/headers.py [--records N] [--pairs P] [--bootstrap HOST:PORT]

Prints, per run, records a second from the first send to the broker's acknowledgement of the last, and the median
and spread of each side.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka.admin import AdminClient

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import ALL_TOPICS, LEDGER, checkpoints_topic
from consentflow.kafka.admin import create_topics
from consentflow.kafka.producer import EventProducer

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def ledger_entry(i: int) -> dict[str, Any]:
    """Ledger entry ``i`` of one of 5,000 made-up subjects, shaped as a worker writes it."""
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    return {
        "subject_id": f"cand-{i % 5000:06d}",
        "sequence": i // 5000 + 1,
        "event_id": str(uuid.UUID(int=i, version=4)),
        "occurred_at": T0 + timedelta(seconds=i),
        "purpose": "marketing",
        "action": "granted",
        "channel": "registration_form",
        "policy_version": "2020-11-14",
        "source_service": "registration",
        "notice_id": "notice-2020-11-14",
        "previous_hash": digest,
        "entry_hash": digest,
        "source": {"topic": "consentflow.consent", "partition": i % 6, "offset": i // 6},
    }


def one_run(bootstrap: str, prefix: str, records: list[dict[str, Any]], with_headers: bool) -> float:
    """Records a second through the worker's output path (``streams/worker.write_output``'s calls)."""
    codec = SingleObjectCodec()
    producer = EventProducer(bootstrap, codec=codec, prefix=prefix, config={"linger.ms": 5})
    topic = LEDGER.name(prefix)
    began = time.perf_counter()
    for record in records:
        value = codec.encode(LEDGER, record, trusted=True)
        if with_headers:
            producer.send_bytes(topic, b"subj-0000042", value, headers=codec.headers(LEDGER))
        else:
            producer.send_bytes(topic, b"subj-0000042", value)
    producer.flush()
    return len(records) / (time.perf_counter() - began)


def main() -> None:
    """Alternating pairs, the side that goes first alternating too."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--bootstrap", default=os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092"))
    args = parser.parse_args()
    prefix = f"benchhd{uuid.uuid4().hex[:6]}"
    create_topics(args.bootstrap, partitions=6, prefix=prefix)
    records = [ledger_entry(i) for i in range(args.records)]
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for pair in range(args.pairs):
            for with_headers in (pair % 2 == 0, pair % 2 == 1):
                rate = one_run(args.bootstrap, prefix, records, with_headers)
                rates[with_headers].append(rate)
                print(f"pair {pair + 1} {'headers   ' if with_headers else 'no headers'} {rate:>10,.0f} records/s", flush=True)
    finally:
        mine = [t.name(prefix) for t in ALL_TOPICS] + [checkpoints_topic(prefix)]
        AdminClient({"bootstrap.servers": args.bootstrap}).delete_topics(mine, operation_timeout=30)
    for side, label in ((False, "no headers"), (True, "headers")):
        values = rates[side]
        print(f"{label:10}: median {statistics.median(values):,.0f} records/s, spread {min(values):,.0f}-{max(values):,.0f}")


if __name__ == "__main__":
    main()
