"""Fresh topics for one test or module on the shared broker, deleted afterwards."""

from __future__ import annotations

import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from confluent_kafka.admin import AdminClient

from consentflow.kafka.admin import create_topics
from consentflow.kafka.lag import end_offsets


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
