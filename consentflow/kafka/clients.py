"""What every confluent-kafka client of the project is built with: its broker, and librdkafka's log through Python's.

Left to itself, librdkafka writes its log lines to stderr from its own threads, past any
logging configuration: about twenty "Connection refused" lines a second per client while the
broker is away. Handed the ``librdkafka`` logger, it queues them and emits them when the client
is served (``poll``, ``consume``, ``flush``), where ``consentflow.kafka.quiet_logs`` can hold back the
repeats. A client nobody polls (a lag probe, the admin client) drops them when it closes:
its callers report the failure themselves (``consentflow.runtime.outage``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

#: The logger librdkafka's lines go to, for every client the project builds.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")


def client_config(bootstrap: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration of a client of ``bootstrap``: ``settings`` over the broker and the ``librdkafka`` logger."""
    return {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG, **(settings or {})}


__all__ = ["LIBRDKAFKA_LOG", "client_config"]
