"""What the self-describing headers (issue 23) cost the worker's output path: encode a trusted output record and
hand it to ``EventProducer.send_bytes``, then flush to the broker, with the headers and without, in alternating pairs.

Run (the Kafka broker must be up: bash deploy/kafka.sh start):
    .venv/bin/python bench/headers.py [--records N] [--pairs P] [--bootstrap HOST:PORT]

Prints, per run, records a second from the first send to the broker's acknowledgement of the last, and the median
and spread of each side.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.releases import default_store
from consentflow.contracts.topics import LEDGER
from consentflow.kafka.admin import create_topics
from consentflow.kafka.producer import EventProducer
from tests.support.kafka_topics import delete_topics_under
from tests.support.samples import sample_record


def one_run(bootstrap: str, prefix: str, records: list[dict[str, object]], with_headers: bool) -> float:
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
    rng = random.Random(23)
    schema = default_store().latest(LEDGER.record).schema
    records = [sample_record(schema, rng) for _ in range(min(args.records, 5_000))]
    records = (records * (args.records // len(records) + 1))[: args.records]
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for pair in range(args.pairs):
            for with_headers in (pair % 2 == 0, pair % 2 == 1):
                rate = one_run(args.bootstrap, prefix, records, with_headers)
                rates[with_headers].append(rate)
                print(f"pair {pair + 1} {'headers   ' if with_headers else 'no headers'} {rate:>10,.0f} records/s", flush=True)
    finally:
        delete_topics_under(args.bootstrap, prefix)
    for side, label in ((False, "no headers"), (True, "headers")):
        values = rates[side]
        print(f"{label:10}: median {statistics.median(values):,.0f} records/s, spread {min(values):,.0f}-{max(values):,.0f}")


if __name__ == "__main__":
    main()
