"""``consentflow topics create``: the pipeline's Kafka topics."""

from __future__ import annotations

import click

from consentflow.cli.shared import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX, fail


@click.group()
def topics() -> None:
    """Manage the pipeline's Kafka topics."""


@topics.command("create")
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True, help="Kafka bootstrap servers.")
@click.option("--partitions", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--replication-factor", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="Topic name prefix.")
@click.option("--output-retention-ms", default="-1", show_default=True, help="Retention of output topics (-1: forever).")
@click.option(
    "--input-retention-ms", default="-1", show_default=True, help="Retention of input topics (-1: forever, for replays)."
)
def topics_create(
    bootstrap: str, partitions: int, replication_factor: int, prefix: str, output_retention_ms: str, input_retention_ms: str
) -> None:
    """Create every topic; existing ones are left untouched."""
    from consentflow.kafka.admin import create_topics

    for value, name in ((output_retention_ms, "--output-retention-ms"), (input_retention_ms, "--input-retention-ms")):
        if not value.lstrip("-").isdigit() or int(value) < -1:
            fail(f"{name} must be -1 or a number of milliseconds, got {value!r}")
    try:
        outcomes = create_topics(
            bootstrap,
            partitions=partitions,
            replication_factor=replication_factor,
            prefix=prefix,
            output_retention_ms=output_retention_ms,
            input_retention_ms=input_retention_ms,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        fail(str(exc))
    for outcome in outcomes:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(outcome.config.items()))
        click.echo(f"{outcome.status:8} {outcome.name} partitions={outcome.partitions} {settings}")
