"""The auditor's commands, registered on ``consentflow.cli.main``: ``replay`` the input topics into a fresh
database, and ``verify`` the ledger chains and compare two databases."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click

from consentflow.cli.options import INSTANT
from consentflow.cli.shared import (
    CLUSTER_OPTION,
    DEFAULT_BOOTSTRAP,
    DEFAULT_DATABASE,
    DEFAULT_DSN,
    DEFAULT_PREFIX,
    REGISTRY_URL,
    ensure_chdb_dir,
    fail,
    open_sink,
)
from consentflow.runtime.redaction import redacted_dsn


def _check_chdb_pair(dsn: str, other: str) -> None:
    """chDB runs one engine per process, on one path: two databases compare on the same path, or on servers."""
    if dsn.startswith("chdb://") and other.startswith("chdb://") and dsn != other:
        fail(
            f"chDB runs one engine per process: {redacted_dsn(dsn)} and {redacted_dsn(other)} cannot both be open; "
            "compare two databases of the same chdb path (--against-database) or on a ClickHouse server"
        )


def _check_against(dsn: str, database: str) -> None:
    """The database compared with is the pipeline's own (``database_scope``): never ClickHouse's or another application's."""
    from consentflow.sinks.clickhouse import SinkUnavailable
    from consentflow.sinks.database_scope import check_pipeline_database

    try:
        check_pipeline_database(dsn, database)
    except (ValueError, SinkUnavailable) as exc:
        fail(f"--against-database: {exc}")


def _open(dsn: str, database: str) -> Any:
    """The tables of an existing database, for reading only (a mistyped name must not verify empty new tables)."""
    from consentflow.sinks.clickhouse import SinkUnavailable
    from consentflow.sinks.reading import TablesMissing, open_tables

    try:
        return open_tables(dsn, database)
    except (ValueError, SinkUnavailable, TablesMissing) as exc:
        fail(str(exc))


def _first_filled_table(dsn: str, database: str) -> tuple[str, int] | None:
    from consentflow.sinks.clickhouse import SinkUnavailable, check_dsn
    from consentflow.sinks.database_scope import check_database_scope, check_pipeline_database
    from consentflow.sinks.verification import first_filled_table

    try:
        check_dsn(dsn)
        check_database_scope(database)  # before a chDB directory is made for a name that would be refused
        ensure_chdb_dir(dsn)
        check_pipeline_database(dsn, database)
        return first_filled_table(dsn, database)
    except (ValueError, SinkUnavailable, OSError) as exc:
        fail(str(exc))
    raise AssertionError  # _fail raised


@click.command()
@click.option("--from-beginning", is_flag=True, help="Replay every event the input topics hold.")
@click.option("--from-time", type=INSTANT, default=None, help="Replay the events emitted at or after this instant (UTC).")
@click.option(
    "--to-time", type=INSTANT, default=None, help="Stop before the events emitted at this instant (default: the ends at start)."
)
@click.option("--into", required=True, help="ClickHouse DSN to rebuild into: chdb:///path or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True, help="A database with no rows yet.")
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL, help="Schema Registry URL for Confluent-framed topics.")
@click.option(
    "--timeout", type=click.FloatRange(min=1.0), default=30.0, show_default=True, help="Seconds to wait for the broker."
)
@CLUSTER_OPTION
def replay(
    from_beginning: bool,
    from_time: datetime | None,
    to_time: datetime | None,
    into: str,
    database: str,
    bootstrap: str,
    prefix: str,
    registry_url: str | None,
    timeout: float,
    cluster: str | None,
) -> None:
    """Rebuild the ledger and lineage graph from the input topics into a fresh database.

    The same processors as ``consentflow run``, over the events upstream
    services emitted (registry first, then partition by partition in offset order), so two replays of
    the same topics leave identical tables. Times are the messages' Kafka
    timestamps; the registry is always read from its beginning [7].
    """
    from confluent_kafka import KafkaException
    from rich.console import Console

    from consentflow.cli.run_progress import run_summary, run_with_progress
    from consentflow.contracts.codec import make_codec
    from consentflow.streams.replay import dead_letters, open_replay

    if from_beginning == (from_time is not None):
        fail("give exactly one of --from-beginning and --from-time")
    if from_time is not None and to_time is not None and to_time <= from_time:
        fail(f"--to-time {to_time.isoformat()} is not after --from-time {from_time.isoformat()}")
    filled = _first_filled_table(into, database)
    if filled is not None:
        table, rows = filled
        fail(f"database {database} at {into} is not fresh: table {table} holds {rows:,} rows; replay into a new database")
    sink = open_sink(into, database, cluster)
    console = Console(stderr=True)
    began = time.perf_counter()
    try:
        replayed = open_replay(
            bootstrap, prefix, make_codec(registry_url, prefix), from_time=from_time, to_time=to_time, timeout=timeout
        )
        try:
            stats = run_with_progress(replayed.events(), sink, console, label="replay", total=replayed.total)
        finally:
            replayed.close()
        # Messages that did not decode keep their coordinates and original bytes, as the workers' dead letters do.
        sink.add_all(("dead-letter", letter) for letter in dead_letters(replayed))
        sink.flush()
    except (LookupError, TimeoutError, RuntimeError, KafkaException) as exc:
        fail(f"replay from {redacted_dsn(bootstrap)} (prefix {prefix}): {exc}")
    elapsed = time.perf_counter() - began
    stats.dead_letters += len(replayed.undecodable)
    console.print(run_summary(stats, elapsed) + f" ({len(replayed.undecodable)} undecodable); into {database} at {into}")


@click.command()
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="The database to verify.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--against", default=None, help="A second ClickHouse DSN to compare with (default: --dsn).")
@click.option("--against-database", default=None, help="The second database (default: --database).")
def verify(dsn: str, database: str, against: str | None, against_database: str | None) -> None:
    """Verify every subject's ledger hash chain, print a digest per table, and optionally compare with a second database.

    Exits 0 when every chain verifies (and the databases are equal); otherwise
    non-zero with the first broken entry or the first difference.
    """
    from consentflow.sinks.digest import table_digests
    from consentflow.sinks.verification import first_difference, shown, verify_ledger

    comparing = against is not None or against_database is not None
    other_dsn, other_database = against or dsn, against_database or database
    if comparing:
        _check_chdb_pair(dsn, other_dsn)
        if (other_dsn, other_database) == (dsn, database):
            fail(f"--against names the database being verified ({database} at {redacted_dsn(dsn)}); give another database")
        _check_against(other_dsn, other_database)
    sink = _open(dsn, database)
    other_sink = _open(other_dsn, other_database) if comparing else None
    check = verify_ledger(sink)
    click.echo(f"ledger of {database}: {check.entries:,} entries of {check.subjects:,} subjects")
    if check.ok:
        click.echo("  every chain verifies")
    for broken in check.broken:
        click.echo(f"  BROKEN {broken}")
    digests = table_digests(sink)
    other = table_digests(other_sink) if other_sink is not None else None
    click.echo("digests (rows, hash)" + (f": {database} | {other_database}" if other else ":"))
    for table, (rows, digest) in digests.items():
        line = f"  {table:<18} {rows:>10,}  {digest}"
        if other is not None:
            other_rows, other_digest = other[table]
            verdict = "equal" if (rows, digest) == (other_rows, other_digest) else "DIFFERS"
            line += f" | {other_rows:>10,}  {other_digest}  {verdict}"
        click.echo(line)
    reasons = []
    if not check.ok:
        reasons.append(f"{len(check.broken)} of {check.subjects} subjects' ledger chains do not verify; first: {check.broken[0]}")
    if other_sink is not None:
        difference = first_difference(sink, other_sink)
        if difference is not None:
            click.echo(f"first difference: {difference}")
            for label, row in (
                (f"{database} at {redacted_dsn(dsn)}", difference.left),
                (f"{other_database} at {redacted_dsn(other_dsn)}", difference.right),
            ):
                values = "absent" if row is None else ", ".join(f"{k}={shown(v)}" for k, v in row.items())
                click.echo(f"  {label}: {values}")
            reasons.append(f"the databases differ: {difference}")
        else:
            click.echo(f"{database} and {other_database} are equal, table by table")
    if reasons:
        fail("; ".join(reasons))
