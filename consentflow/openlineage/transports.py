"""Where ``consentflow openlineage emit`` sends its events: openlineage-python's own transports, built by its factory.

console prints one JSON event a line on stdout; file appends one a line to a file; http posts each to a lineage
endpoint (Marquez: ``http://host:5000``, ``/api/v1/lineage``); kafka produces each to a topic, keyed by job as the
client keys run events, so one job's events keep their order.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

from openlineage.client.event_v2 import RunEvent
from openlineage.client.transport import Transport, get_default_factory

#: The transports the command offers, as the client names them.
KINDS = ("console", "file", "http", "kafka")
_CONSOLE_LOGGER = "openlineage.client.transport.console"


def transport_config(
    kind: str,
    *,
    file: str | None = None,
    url: str | None = None,
    endpoint: str = "api/v1/lineage",
    api_key: str | None = None,
    timeout: float = 5.0,
    bootstrap: str | None = None,
    topic: str | None = None,
) -> dict[str, Any]:
    """The client's transport configuration (the ``transport:`` block of its openlineage.yml) for ``kind``.

    Raises ``ValueError`` naming the option a kind needs and did not get.
    """
    if kind == "console":
        return {"type": "console"}
    if kind == "file":
        if not file:
            raise ValueError("--transport file needs --file PATH")
        return {"type": "file", "log_file_path": file, "append": True}
    if kind == "http":
        if not url:
            raise ValueError("--transport http needs --url (Marquez: http://localhost:5000)")
        config: dict[str, Any] = {"type": "http", "url": url, "endpoint": endpoint, "timeout": timeout}
        if api_key:
            config["auth"] = {"type": "api_key", "apiKey": api_key}
        return config
    if kind == "kafka":
        if not bootstrap or not topic:
            raise ValueError("--transport kafka needs --bootstrap and --topic")
        return {"type": "kafka", "topic": topic, "config": {"bootstrap.servers": bootstrap}, "flush": True}
    raise ValueError(f"unknown transport {kind!r}: one of {', '.join(KINDS)}")


def open_transport(config: dict[str, Any]) -> Transport:
    """The client's transport for ``config``; console's log lines go to stdout as bare JSON."""
    if config["type"] == "console":
        logger = logging.getLogger(_CONSOLE_LOGGER)
        logger.handlers = [logging.StreamHandler(sys.stdout)]  # the current stdout: click's runner swaps it in tests
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return get_default_factory().create(config)


def send(transport: Transport, events: Iterable[RunEvent]) -> int:
    """Emit every event through ``transport``, in order; how many were sent. A failure raises the transport's error."""
    sent = 0
    for event in events:
        transport.emit(event)
        sent += 1
    return sent
