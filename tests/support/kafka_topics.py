"""Fresh topics for one test or module on the shared broker, deleted afterwards."""

from __future__ import annotations

import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from consentflow.cli import main
from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import end_offsets
from consentflow.sinks.clickhouse import ClickHouseSink


@contextmanager
def fresh_topics(bootstrap: str, label: str, *, partitions: int = 3) -> Iterator[str]:
    """Every pipeline topic under a new prefix (``label`` + random hex); yields the prefix, then deletes them."""
    prefix = f"{label}{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, partitions=partitions, prefix=prefix)
    try:
        yield prefix
    finally:
        delete_topics_under(bootstrap, prefix)


def delete_topics_under(bootstrap: str, prefix: str) -> None:
    """Delete ``prefix``'s pipeline topics and those of apps named after it (faust changelogs): a broker kept
    between test runs would otherwise pile up thousands of partitions until its heap runs out."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith((f"{prefix}.", f"{prefix}-"))]
    for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else []:
        future.result()


def assert_topics_hold(bootstrap: str, sent: Mapping[str, int], acknowledged: object = None) -> None:
    """What a test compares on must be in Kafka whole: a loss there is the producer's or the broker's, not the
    code's under test. Asked again for a few seconds (a partition's end offset has been seen short of what was
    acknowledged, now and then, never on a rerun), then naming the topics that stay short, if any do."""
    deadline, reads = time.monotonic() + 10, 0
    while True:
        reads += 1
        held: Counter[str] = Counter()
        for (topic_name, _), end in end_offsets(bootstrap, list(sent)).items():
            held[topic_name] += end
        if held == sent or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if reads > 1 and held == sent:
        warnings.warn(f"the input topics' end offsets reached what was sent only at read {reads}", stacklevel=2)
    short = {name: (held[name], count) for name, count in sent.items() if held[name] != count}
    assert not short, f"topics holding other than what was sent (held, sent): {short}; acknowledged {acknowledged}"


def read_to_end(bootstrap: str, topics: Sequence[str]) -> list[Any]:
    """Every message of ``topics`` from the start to the end offsets of now (a reader of no group's offsets)."""
    ends = {tp: end for tp, end in end_offsets(bootstrap, topics).items() if end > 0}
    if not ends:
        return []
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"test-reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0) for topic, partition in ends])
    messages, left = [], dict(ends)
    deadline = time.monotonic() + 60
    try:
        while left and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is not None:
                    continue
                where = (str(message.topic()), int(message.partition() or 0))
                messages.append(message)
                if int(message.offset() or 0) + 1 >= left.get(where, 0):
                    left.pop(where, None)
    finally:
        consumer.close()
    assert not left, f"could not read {sorted(left)} to their end"
    return messages


def replay_topics(bootstrap: str, prefix: str, chdb_dsn: str) -> ClickHouseSink:
    """``prefix``'s topics replayed from the beginning by ``consentflow replay`` into a fresh database at ``chdb_dsn``,
    as an auditor replays them; that database's sink."""
    database = f"rep_{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(
        main, ["replay", "--from-beginning", "--into", chdb_dsn, "--database", database,
               "--bootstrap", bootstrap, "--prefix", prefix, "--timeout", "20"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return ClickHouseSink(chdb_dsn, database)
