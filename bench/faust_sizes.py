"""faust's fetch and buffer sizes, chosen by measurement: (a') at each size pair, in alternating rounds.

Run (the Kafka broker must be up: bash deploy/kafka.sh start):
    .venv/bin/python bench/faust_sizes.py [--subjects N] [--days D] [--rounds R]

Generates and produces one dataset, then runs bench/faust_ceiling.py (faust agents that only take batches, with the
worker's drain bypass, on uvloop) over it once per size pair per round, the pairs in a rotated order each round so
that drift on this noisy machine falls on every pair alike. Prints events/s per pair and round, and the median.
``broker_max_poll_records`` is how many records aiokafka hands faust per fetch; ``stream_buffer_maxsize`` how many
events a topic's stream buffers before faust pauses fetching it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import uuid
from pathlib import Path

from pipeline import faust_ceiling  # shared with the pipeline benchmark

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.eventfile import read_events
from consentflow.contracts.events import Event
from consentflow.contracts.topics import INPUT_TOPICS
from consentflow.generator import GeneratorConfig, generate
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import end_offsets
from consentflow.kafka.producer import EventProducer

#: (broker_max_poll_records, stream_buffer_maxsize) tried; the first is the worker's setting before issue 25.
SIZES = ((5_000, 20_000), (20_000, 100_000), (2_000, 20_000), (10_000, 50_000))


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        events_file = Path(tmp) / "events.avro"
        generate(GeneratorConfig(args.subjects, args.days, 1), events_file, None)
        prefix = f"sizes{uuid.uuid4().hex[:6]}"
        create_topics(args.bootstrap, prefix=prefix)
        with EventProducer(args.bootstrap, codec=SingleObjectCodec(), prefix=prefix) as producer:
            producer.send_all(Event(t, r) for t, r in read_events(events_file))
    inputs = [t.name(prefix) for t in INPUT_TOPICS if not t.compacted]
    events = sum(end_offsets(args.bootstrap, inputs).values())
    rates: dict[tuple[int, int], list[float]] = {size: [] for size in SIZES}
    for round_ in range(args.rounds):
        order = SIZES[round_ % len(SIZES) :] + SIZES[: round_ % len(SIZES)]
        for poll, buffer in order:
            os.environ["CEILING_MAX_POLL"], os.environ["CEILING_BUFFER"] = str(poll), str(buffer)
            rate = faust_ceiling(args.bootstrap, prefix, events, "bypass")
            rates[(poll, buffer)].append(rate)
            print(
                f"round {round_ + 1}: max_poll_records={poll:>6,} stream_buffer_maxsize={buffer:>7,}: {rate:10,.0f} events/s",
                flush=True,
            )
    print(f"{events:,} events on the subject topics; medians over {args.rounds} rounds:")
    for (poll, buffer), each in rates.items():
        print(f"  max_poll_records={poll:>6,} stream_buffer_maxsize={buffer:>7,}: {statistics.median(each):10,.0f} events/s")


if __name__ == "__main__":
    main()
