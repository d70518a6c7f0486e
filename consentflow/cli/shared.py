"""What the command modules share: the defaults from the environment, the session option, and the helpers that end a
command with one line, open ClickHouse, and watch a reading for a stop before the end of its file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from consentflow.kafka.group_membership import MAX_SESSION_TIMEOUT, SESSION_TIMEOUT

DEFAULT_BOOTSTRAP = os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092")
DEFAULT_PREFIX = os.environ.get("CONSENTFLOW_TOPIC_PREFIX", "consentflow")
REGISTRY_URL = os.environ.get("CONSENTFLOW_SCHEMA_REGISTRY_URL") or None
DEFAULT_DSN = os.environ.get("CONSENTFLOW_CLICKHOUSE_DSN", f"chdb://{Path.cwd() / 'out' / 'chdb'}")
DEFAULT_DATABASE = os.environ.get("CONSENTFLOW_DATABASE", "consentflow")
# The worker's and the sink's: how long a killed one's partitions wait for another (consentflow.kafka.group_membership).
#: The writers' --cluster: the tables on every node of a ClickHouse cluster (sinks.cluster); chDB is one node.
CLUSTER_OPTION = click.option(
    "--cluster",
    default=None,
    help="Create the tables ON CLUSTER NAME: replicated on each node, read and written through Distributed tables "
    "sharded by subject (needs a server: http(s)://).",
)
SESSION_TIMEOUT_OPTION = click.option(
    "--session-timeout",
    type=click.FloatRange(min=1.0, max=MAX_SESSION_TIMEOUT),
    default=SESSION_TIMEOUT,
    show_default=True,
    help="Seconds without a heartbeat before the group gives a killed process's partitions to the others "
    "(the broker accepts 6 to 1800 by default; a stopped one hands them over at once).",
)


def fail(message: str) -> NoReturn:
    """End the command with ``Error: message`` and exit status 1."""
    raise click.ClickException(message)


def check_session_accepted(bootstrap: str, session_timeout: float) -> None:
    """End a worker or sink the broker would refuse, with one line and the status of an error no retry outlives."""
    from consentflow.kafka.group_membership import SessionRefused, check_session_timeout
    from consentflow.runtime.outage import EXIT_NOT_TRANSIENT

    try:
        check_session_timeout(bootstrap, session_timeout)
    except SessionRefused as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_NOT_TRANSIENT)


def ensure_chdb_dir(dsn: str) -> None:
    """chDB keeps its data under the DSN's path: create it on first use."""
    if dsn.startswith("chdb:///"):
        Path(dsn[len("chdb://") :]).mkdir(parents=True, exist_ok=True)


def open_sink(dsn: str, database: str, cluster: str | None = None) -> Any:
    """A ``ClickHouseSink`` on ``dsn`` (waiting up to 30 s for a server), or the command ends with the reason."""
    from consentflow.sinks.clickhouse import ClickHouseSink, SinkUnavailable

    ensure_chdb_dir(dsn)
    try:
        return ClickHouseSink(dsn, database, retry_for=30.0, cluster=cluster)
    except (ValueError, SinkUnavailable) as exc:
        fail(str(exc))


class StopWatch:
    """Items passed on as they come; remembers the dead letter of a reading that stopped before the file's end."""

    def __init__(self, items: Any, path: str) -> None:
        self.items = items
        self.path = path
        self.stopped: str | None = None

    def __iter__(self) -> Any:
        from consentflow.contracts.eventfile import READING_STOPPED
        from consentflow.contracts.topics import DEAD_LETTER

        for topic, record in self.items:
            if topic is DEAD_LETTER and record["error_type"] == READING_STOPPED:
                self.stopped = f"{self.path}: {record['reason']}"
            yield topic, record


#: Exit status of run, produce and convert when reading stopped before the end of the file.
READING_STOPPED_EXIT = 3


def exit_if_stopped(watch: StopWatch) -> None:
    """Exit with ``READING_STOPPED_EXIT`` when the reading ``watch`` saw stopped before the end of its file."""
    if watch.stopped is not None:
        click.echo(f"consentflow: {watch.stopped}", err=True)
        sys.exit(READING_STOPPED_EXIT)


def event_time_bounds() -> Any:
    """The gate's event-time bounds from the environment, or the command ends with the reason."""
    from consentflow.contracts.gate import EventTimeBounds

    try:
        return EventTimeBounds.from_env()
    except ValueError as exc:
        fail(str(exc))
