"""``consentflow openlineage emit``: the observed lineage as OpenLineage run events for a data catalog [3, 4, 7].

Reads the processings from the tables (``sinks.lineage_flows``), maps them (``consentflow.openlineage.events``) and
sends them through openlineage-python's transports (``consentflow.openlineage.transports``). Events on stdout with
``--transport console``; what was sent, on stderr.
"""

from __future__ import annotations

from datetime import datetime

import click
from requests import RequestException

from consentflow.cli.dpo_output import tables
from consentflow.cli.options import INSTANT
from consentflow.cli.shared import DEFAULT_BOOTSTRAP, DEFAULT_DATABASE, DEFAULT_DSN, DEFAULT_PREFIX, fail
from consentflow.openlineage.events import DEFAULT_NAMESPACE, lineage_events
from consentflow.openlineage.transports import KINDS, open_transport, send, transport_config
from consentflow.sinks.lineage_flows import processing_flows


@click.group("openlineage")
def openlineage_group() -> None:
    """The observed lineage as OpenLineage events, for a catalog (Marquez, DataHub, OpenMetadata)."""


@openlineage_group.command("emit")
@click.option("--since", type=INSTANT, default=None, help="Only edges at or after this instant (ISO-8601; UTC when no zone).")
@click.option("--transport", "kind", type=click.Choice(KINDS), default="console", show_default=True)
@click.option("--file", "file", default=None, help="--transport file: the file to append one event a line to.")
@click.option("--url", default=None, help="--transport http: the lineage server (Marquez: http://localhost:5000).")
@click.option("--endpoint", default="api/v1/lineage", show_default=True, help="--transport http: its lineage endpoint.")
@click.option("--api-key", envvar="OPENLINEAGE_API_KEY", default=None, help="--transport http: bearer API key.")
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True, help="--transport kafka: the brokers.")
@click.option("--topic", default=f"{DEFAULT_PREFIX}.openlineage", show_default=True, help="--transport kafka: the topic.")
@click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True, help="The jobs' and datasets' namespace.")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def emit_command(
    since: datetime | None,
    kind: str,
    file: str | None,
    url: str | None,
    endpoint: str,
    api_key: str | None,
    bootstrap: str,
    topic: str,
    namespace: str,
    dsn: str,
    database: str,
) -> None:
    """A job per processing (purpose × source), a dataset per data category in and per recipient out; counts, never ids."""
    try:
        config = transport_config(kind, file=file, url=url, endpoint=endpoint, api_key=api_key, bootstrap=bootstrap, topic=topic)
    except ValueError as exc:
        fail(str(exc))
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
