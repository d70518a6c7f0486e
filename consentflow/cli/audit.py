"""The auditor's commands, registered on ``consentflow.cli.main``: ``replay`` the input topics into a fresh
database, and ``verify`` the ledger chains and compare two databases."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from consentflow.core.checkpoint import Verifier


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


#: Findings of the log's audit printed at most; the count of the rest follows.
SHOWN_FINDINGS = 50


def _saved_checkpoint(checkpoint_path: Path | None, public_path: Path | None) -> tuple[str, Verifier] | None:
    """The saved note and the verifier key of ``--checkpoint`` and ``--public-key``, which come together."""
    from consentflow.core.checkpoint import NoteError, Verifier

    if checkpoint_path is None and public_path is None:
        return None
    if checkpoint_path is None or public_path is None:
        given, missing = ("--checkpoint", "--public-key") if public_path is None else ("--public-key", "--checkpoint")
        raise click.UsageError(f"{given} needs {missing}: the saved checkpoint is checked with the log's verifier key")
    try:
        note = checkpoint_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--checkpoint {checkpoint_path}: {exc}")
    try:
        verifier = Verifier.parse(public_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        fail(f"--public-key {public_path}: {exc}")
    return note, verifier


def _audit_log(reader: Any, note: str, verifier: Verifier) -> str | None:
    """Audit the consent log against the saved checkpoint, print what was checked and found; the reason to fail."""
    from consentflow.notary.log_audit import audit_log
    from consentflow.sinks.reader import QueryFailed

    try:
        audit = audit_log(reader, verifier, note)
    except QueryFailed as exc:
        fail(f"cannot read the consent log: {str(exc).splitlines()[0]}")
    click.echo(
        f"consent log, key {verifier.name}: {len(audit.logs)} log(s) ({', '.join(audit.logs) or 'none'}), "
        f"{audit.leaves:,} leaves, {audit.checkpoints:,} stored checkpoints; {audit.ledger_rows:,} ledger rows and "
        f"{audit.notices:,} erasure-notice rows matched against the leaves"
    )
    if audit.saved is not None:
        log, saved = audit.saved
        latest = audit.latest.get(log)
        click.echo(
            f"  saved checkpoint: log {log!r} at {saved.size:,} leaves; the latest stored checkpoint signs "
            + (f"{latest.size:,}" if latest else "none")
        )
    if audit.ok:
        click.echo("  the log extends the saved checkpoint; every checkpoint, leaf and row agrees")
        return None
    for finding in audit.findings[:SHOWN_FINDINGS]:
        click.echo(f"  LOG {finding}")
    if len(audit.findings) > SHOWN_FINDINGS:
        click.echo(f"  ... and {len(audit.findings) - SHOWN_FINDINGS:,} more")
    return f"the consent log does not hold: {len(audit.findings)} finding(s); first: {audit.findings[0]}"


@click.command()
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="The database to verify.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--against", default=None, help="A second ClickHouse DSN to compare with (default: --dsn).")
@click.option("--against-database", default=None, help="The second database (default: --database).")
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A signed checkpoint saved earlier (`checkpoint latest`): prove the consent log still extends it, check every "
    "stored checkpoint, and that the ledger and erasure-notice rows are the log's leaves. Needs --public-key.",
)
@click.option(
    "--public-key",
    "public_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The log's verifier key (from notary keygen), with --checkpoint.",
)
def verify(
    dsn: str,
    database: str,
    against: str | None,
    against_database: str | None,
    checkpoint_path: Path | None,
    public_path: Path | None,
) -> None:
    """Verify every subject's ledger hash chain, print a digest per table, and optionally compare with a second database
    and audit the consent log against a saved checkpoint.

    Exits 0 when every chain verifies (and the databases are equal, and the log holds); otherwise
    non-zero with the first broken entry, the first difference or the log's findings, one a line.
    """
    from consentflow.sinks.digest import table_digests
    from consentflow.sinks.verification import first_difference, shown, verify_ledger

    saved = _saved_checkpoint(checkpoint_path, public_path)
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
    if saved is not None:
        failed = _audit_log(sink, *saved)
        if failed is not None:
            reasons.append(failed)
    if reasons:
        fail("; ".join(reasons))
