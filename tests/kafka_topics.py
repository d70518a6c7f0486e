"""Fresh topics for one test or module on the shared broker, deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka.admin import AdminClient

from consentflow.admin import create_topics


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
