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
        admin = AdminClient({"bootstrap.servers": bootstrap})
        mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith(f"{prefix}.")]
        for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else []:
            future.result()
