"""``consentflow registry load``: a recipient registry file to the compacted topic or the recipients table [4, 7].

Registered on ``consentflow.cli.main``.
"""

from __future__ import annotations

import click

from consentflow.cli.shared import (
    CLUSTER_OPTION,
    DEFAULT_BOOTSTRAP,
    DEFAULT_DATABASE,
    DEFAULT_DSN,
    DEFAULT_PREFIX,
    REGISTRY_URL,
    fail,
    open_sink,
)
from consentflow.runtime.redaction import redacted_dsn


@click.group("registry")
def registry_group() -> None:
    """The recipient registry [4, 7]: who receives personal data, where, under which transfer mechanism."""


@registry_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--embedded", is_flag=True, help="Load into the recipients table (--dsn, --database) instead of Kafka.")
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL)
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="With --embedded: the ClickHouse DSN.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True, help="With --embedded: the database.")
@CLUSTER_OPTION
def registry_load(
    file: str, embedded: bool, bootstrap: str, prefix: str, registry_url: str | None, dsn: str, database: str, cluster: str | None
) -> None:
    """Publish the recipients of a YAML FILE to the compacted registry topic (or, --embedded, into the recipients table).

    Every entry is validated first; one bad entry rejects the whole file and nothing is published.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    from rich.console import Console

    from consentflow.cli.run_progress import run_with_progress
    from consentflow.contracts.codec import make_codec
    from consentflow.contracts.errors import ContractError
    from consentflow.contracts.registry_file import RegistryFileError, load_registry_file
    from consentflow.contracts.topics import RECIPIENTS
    from consentflow.kafka.clients import client_config
    from consentflow.kafka.producer import DeliveryError, EventProducer

    try:
        events = load_registry_file(file)
    except RegistryFileError as exc:
        fail(str(exc))
    if embedded:
        sink = open_sink(dsn, database, cluster)
        stats = run_with_progress(
            ((e.topic, e.record) for e in events), sink, Console(stderr=True), label="registry", total=len(events)
        )
        if stats.dead_letters:
            fail(f"{stats.dead_letters} of {len(events)} registry records could not be processed; see the dead_letters table")
        click.echo(f"loaded {stats.events} registry records into the recipients table of {database} at {redacted_dsn(dsn)}")
        return
    topic = RECIPIENTS.name(prefix)
    try:
        existing = AdminClient(client_config(bootstrap)).list_topics(timeout=10).topics
    except KafkaException as exc:
        fail(f"Kafka at {redacted_dsn(bootstrap)} did not answer: {exc.args[0]}")
    if topic not in existing:  # the compacted topic must exist: producing would auto-create a plain one
        fail(f"registry topic {topic} does not exist; create it with consentflow topics create --prefix {prefix}")
    try:
        with EventProducer(bootstrap, codec=make_codec(registry_url, prefix), prefix=prefix) as producer:
            for event in events:
                producer.send(event)
    except (ContractError, DeliveryError) as exc:
        fail(f"publishing to {topic}: {exc}")
    click.echo(f"published {len(events)} registry records to {topic}")
