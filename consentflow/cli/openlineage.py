"""``consentflow openlineage emit`` and ``follow``: the observed lineage as OpenLineage run events for a catalog [3, 4, 7].

``emit`` reads the processings from the tables (``sinks.lineage_flows``); ``follow`` folds the lineage topic's edges
batch by batch (``consentflow.openlineage.follow``). Both map them (``consentflow.openlineage.events``) and send them
through openlineage-python's transports (``consentflow.openlineage.transports``): events on stdout with ``--transport
console``, what was sent on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from requests import RequestException

from consentflow.cli.dpo_output import tables
from consentflow.cli.options import INSTANT
from consentflow.cli.shared import DEFAULT_BOOTSTRAP, DEFAULT_DATABASE, DEFAULT_DSN, DEFAULT_PREFIX, REGISTRY_URL, fail
from consentflow.openlineage.events import DEFAULT_NAMESPACE, lineage_events
from consentflow.openlineage.transports import KINDS, open_transport, send, transport_config
from consentflow.sinks.lineage_flows import processing_flows

F = TypeVar("F", bound=Callable[..., Any])


def transport_options(command: F) -> F:
    """``--transport`` and what each transport needs, ``--namespace``; the command gets ``transport`` (its config)."""
    options = [
        click.option("--transport", "kind", type=click.Choice(KINDS), default="console", show_default=True),
        click.option("--file", "file", default=None, help="--transport file: the file to append one event a line to."),
        click.option("--url", default=None, help="--transport http: the lineage server (Marquez: http://localhost:5000)."),
        click.option("--endpoint", default="api/v1/lineage", show_default=True, help="--transport http: its endpoint."),
        click.option("--api-key", envvar="OPENLINEAGE_API_KEY", default=None, help="--transport http: bearer API key."),
        click.option(
            "--ol-bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True, help="--transport kafka: the brokers to send to."
        ),
        click.option(
            "--ol-topic", default=f"{DEFAULT_PREFIX}.openlineage", show_default=True, help="--transport kafka: the topic."
        ),
        click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True, help="The jobs' and datasets' namespace."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _config(kind: str, file: str | None, url: str | None, endpoint: str, api_key: str | None, bootstrap: str, topic: str) -> Any:
    try:
        return transport_config(kind, file=file, url=url, endpoint=endpoint, api_key=api_key, bootstrap=bootstrap, topic=topic)
    except ValueError as exc:
        fail(str(exc))


@click.group("openlineage")
def openlineage_group() -> None:
    """The observed lineage as OpenLineage events, for a catalog (Marquez, DataHub, OpenMetadata)."""


@openlineage_group.command("emit")
@click.option("--since", type=INSTANT, default=None, help="Only edges at or after this instant (ISO-8601; UTC when no zone).")
@transport_options
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def emit_command(
    since: datetime | None,
    kind: str,
    file: str | None,
    url: str | None,
    endpoint: str,
    api_key: str | None,
    ol_bootstrap: str,
    ol_topic: str,
    namespace: str,
    dsn: str,
    database: str,
) -> None:
    """A job per processing (purpose × source service), a dataset per data category in and per recipient out; counts, never ids."""
    config = _config(kind, file, url, endpoint, api_key, ol_bootstrap, ol_topic)
    with tables(dsn, database) as sink:
        flows = processing_flows(sink, since)
    transport = open_transport(config)
    try:
        sent = send(transport, lineage_events(flows, namespace))
    except (RequestException, OSError) as exc:  # the server refused or went away: one line, not a trace
        fail(f"OpenLineage {kind} transport failed: {exc}")
    finally:
        transport.close()
    click.echo(f"{sent} OpenLineage events for {len(flows)} processings sent by {kind}", err=True)


@openlineage_group.command("follow")
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True, help="The pipeline's brokers.")
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL)
@click.option("--group", default="consentflow-openlineage", show_default=True, help="The follower's consumer group.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds per batch.")
@click.option("--max-edges", type=click.IntRange(min=1), default=5000, show_default=True, help="Edges per batch at most.")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds with no edge.")
@transport_options
def follow_command(
    bootstrap: str,
    prefix: str,
    registry_url: str | None,
    group: str,
    interval: float,
    max_edges: int,
    idle_exit: float | None,
    kind: str,
    file: str | None,
    url: str | None,
    endpoint: str,
    api_key: str | None,
    ol_bootstrap: str,
    ol_topic: str,
    namespace: str,
) -> None:
    """Follow the lineage topic: each batch's processings as run events, offsets committed once sent (at least once)."""
    from consentflow.contracts.codec import make_codec
    from consentflow.openlineage.follow import LineageFollower

    config = _config(kind, file, url, endpoint, api_key, ol_bootstrap, ol_topic)
    transport = open_transport(config)
    follower = LineageFollower(
        bootstrap, prefix, make_codec(registry_url, prefix), transport, group=group, namespace=namespace, max_edges=max_edges
    )
    try:
        follower.run(interval, idle_exit=idle_exit)
    except (RequestException, OSError) as exc:  # offsets of the batch not committed: read again on the next start
        fail(f"OpenLineage {kind} transport failed: {exc}")
    except KeyboardInterrupt:
        pass
    finally:
        follower.close()
        transport.close()
        click.echo(f"{follower.sent} OpenLineage events from {follower.edges} lineage edges sent by {kind}", err=True)
