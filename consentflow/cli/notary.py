"""The consent log's commands (issue 22), registered on ``consentflow.cli.main``: ``notary keygen`` writes the log's
key pair, ``proof`` writes a subject's proof document from the log tables, ``checkpoint latest`` prints a log's latest
signed note, ``verify-proof`` checks a proof document offline with the public key alone."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import click

from consentflow.cli.dpo_output import checked, tables, write_output
from consentflow.cli.pipeline import CHECKPOINT_INTERVAL_OPTION
from consentflow.cli.shared import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_DATABASE,
    DEFAULT_DSN,
    DEFAULT_PREFIX,
    REGISTRY_URL,
    SESSION_TIMEOUT_OPTION,
    check_session_accepted,
    ensure_chdb_dir,
    fail,
)
from consentflow.contracts.query_arguments import check_subject_id
from consentflow.core.log_proof import SCHEMA_NAME, SCHEMA_VERSION

DEFAULT_KEY_NAME = "consentflow.example/log"


@cache
def proof_schema() -> dict[str, Any]:
    """The proof document's JSON Schema (draft 2020-12), shipped with the package."""
    path = resources.files("consentflow.schemas") / SCHEMA_NAME / f"v{SCHEMA_VERSION}.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def schema_fault(document: Any) -> str | None:
    """The first way ``document`` breaks the proof's JSON Schema, in a line (None: it follows it)."""
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(proof_schema()).iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "the document"
    return f"{where}: {error.message}"


@click.group(invoke_without_command=True)
@click.option(
    "--private-key",
    "private_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The signing key (notary keygen): needed to run the notary.",
)
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: http(s)://host:port, or a chDB path of its own.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--group-id", default="consentflow-notary", show_default=True)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL)
@CHECKPOINT_INTERVAL_OPTION
@SESSION_TIMEOUT_OPTION
@click.pass_context
def notary(
    ctx: click.Context,
    private_path: Path | None,
    bootstrap: str,
    prefix: str,
    dsn: str,
    database: str,
    group_id: str,
    registry_url: str | None,
    checkpoint_interval: float,
    session_timeout: float,
) -> None:
    """The consent log's notary: with --private-key, follow the ledger and erasure-notice topics into the log's
    tables (one log per output partition, in offset order), signing a checkpoint every 10,000 leaves or 10 s onto the
    checkpoints table and topic; `keygen` writes the key pair its checkpoints are signed with.

    For a ClickHouse server (or a chDB path of its own): with the sink on chDB, run the sink with --notary-key instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    if private_path is None:
        raise click.UsageError("--private-key is needed to run the notary (or give a subcommand: keygen)")
    _run_notary(private_path, bootstrap, prefix, dsn, database, group_id, registry_url, checkpoint_interval, session_timeout)


def _run_notary(
    private_path: Path,
    bootstrap: str,
    prefix: str,
    dsn: str,
    database: str,
    group_id: str,
    registry_url: str | None,
    checkpoint_interval: float,
    session_timeout: float,
) -> None:
    """The sink's start-up (cli.pipeline.sink), for a consumer that writes leaves only."""
    import logging
    import os

    from consentflow.cli.pipeline import kafka_notary, notary_signer
    from consentflow.contracts.codec import make_codec
    from consentflow.kafka.quiet_logs import quiet_client_logs
    from consentflow.notary.consumer import NotaryConsumer
    from consentflow.runtime.bounded_stop import StopRequest, abandon_stop
    from consentflow.sinks.clickhouse import ClickHouseSink, RetryAbandoned, clickhouse_outage
    from consentflow.sinks.consumer import run_sink
    from consentflow.sinks.tables import log_schema_ddl

    signer = notary_signer(private_path)  # a bad key is refused before anything is consumed
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_client_logs()
    clickhouse = clickhouse_outage(dsn, end_process=os._exit)
    ensure_chdb_dir(dsn)
    check_session_accepted(bootstrap, session_timeout)
    stopping = StopRequest("Kafka or ClickHouse away?").on_signals()
    try:
        target = ClickHouseSink(dsn, database, outage=clickhouse, should_stop=stopping, schema=log_schema_ddl())
    except ValueError as exc:
        fail(str(exc))
    except RetryAbandoned as exc:
        abandon_stop(str(exc))
    assert signer is not None  # a path was given
    follower = kafka_notary(target, signer, bootstrap, prefix, checkpoint_interval)
    codec = make_codec(registry_url, prefix)
    consumer = NotaryConsumer(bootstrap, prefix, codec, target, follower, group_id=group_id, session_timeout=session_timeout)
    run_sink(consumer, stopping)


@notary.command()
@click.option(
    "--private-key",
    "private_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the signing key (owner-only, 0600; never over an existing file).",
)
@click.option(
    "--public-key",
    "public_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the verifier key, the one given to auditors.",
)
@click.option(
    "--name",
    default=DEFAULT_KEY_NAME,
    show_default=True,
    help="The key's name, the checkpoints' origin: a schema-less URL naming the log, no spaces, no '+'.",
)
def keygen(private_path: Path, public_path: Path, name: str) -> None:
    """Write a new Ed25519 key pair for signing the log's checkpoints (C2SP signed-note keys)."""
    from consentflow.core.checkpoint import NoteError
    from consentflow.notary.keys import write_key_pair

    for path in (private_path, public_path):
        if path.exists():
            fail(f"{path} exists: a key is never overwritten (move it away, or give another path)")
        if not path.parent.is_dir():
            fail(f"{path.parent} is not a directory")
    if private_path.resolve() == public_path.resolve():
        fail("--private-key and --public-key name the same file")
    try:
        signer = write_key_pair(name, private_path, public_path)
    except NoteError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the key pair: {exc.strerror}: {exc.filename}")
    click.echo(f"{signer.verifier}")


@click.command("verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The log's verifier key (from notary keygen).",
)
def verify_proof(file: Path, public_path: Path) -> None:
    """Check a subject's proof document with no database: each checkpoint's signature, each record's leaf (a ledger
    entry's hashes to its entry_hash) and its inclusion in the signed tree.

    Exits 0 when all hold; otherwise non-zero, naming the first record that fails and what failed.
    """
    from consentflow.core.checkpoint import NoteError
    from consentflow.core.log_proof import ProofRefused, verify_subject_proof
    from consentflow.notary.keys import read_verifier

    try:
        verifier = read_verifier(public_path)
    except NoteError as exc:
        fail(f"{public_path}: {exc}")
    except OSError as exc:
        fail(f"cannot read the public key: {exc.strerror}: {exc.filename}")
    try:
        document = json.loads(file.read_bytes())
    except OSError as exc:
        fail(f"cannot read the proof: {exc.strerror}: {exc.filename}")
    except ValueError as exc:
        fail(f"{file} is not JSON: {exc}")
    fault = schema_fault(document)
    if fault is not None:
        fail(f"{file} is not a {SCHEMA_NAME}/v{SCHEMA_VERSION} proof: {fault}")
    try:
        summary = verify_subject_proof(document, verifier)
    except ProofRefused as exc:
        fail(f"proof refused: {exc}")
    sizes = ", ".join(f"{cp.origin} at {cp.size} leaves" for cp in summary.checkpoints) or "no checkpoint"
    click.echo(
        f"proof holds: subject {summary.subject_id}; ledger entries: {summary.ledger_entries}, erasure notices: "
        f"{summary.erasure_notices}; in the log under {sizes}, signed by {verifier.name}"
        + (f"; {summary.pending} more after the latest checkpoint, not proved here" if summary.pending else "")
    )


@click.command("proof")
@click.argument("subject")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the proof here instead of stdout.")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def proof_command(subject: str, out: str | None, dsn: str, database: str) -> None:
    """SUBJECT's proof of record: each ledger entry and erasure notice of theirs with its inclusion path in the consent
    log, and the signed checkpoints the paths lead to (JSON, for `verify-proof`)."""
    from consentflow.core.log_proof import build_subject_proof
    from consentflow.core.merkle import ProofError
    from consentflow.notary.stored_log import StoredLog, StoredLogError

    subject_id = checked(check_subject_id, subject)
    with tables(dsn, database) as reader:
        try:
            document = build_subject_proof(StoredLog(reader), subject_id)
        except (StoredLogError, ProofError) as exc:
            fail(f"cannot prove subject {subject_id}: {exc}")
    if not document["leaves"] and not document["pending"]:
        fail(f"subject {subject_id} has no record in the consent log (was the pipeline run with a notary key?)")
    write_output(json.dumps(document, indent=2) + "\n", out)


@click.group("checkpoint")
def checkpoint_group() -> None:
    """The consent log's signed checkpoints: `latest` prints the one a proof is checked against."""


@checkpoint_group.command("latest")
@click.option("--log", "log_id", default=None, help="The log (e.g. 'embedded', 'ledger/0'); needed when several are kept.")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def latest_checkpoint(log_id: str | None, dsn: str, database: str) -> None:
    """Print the log's latest signed checkpoint (a C2SP signed note), as a witness or an auditor takes it."""
    from consentflow.notary.stored_log import StoredLog

    with tables(dsn, database) as reader:
        log = StoredLog(reader)
        if log_id is None:
            logs = log.logs()
            if len(logs) != 1:
                fail(
                    f"--log: the database keeps {len(logs)} signed logs ({', '.join(logs)}): name one"
                    if logs
                    else "no log has a signed checkpoint (was the pipeline run with a notary key?)"
                )
            log_id = logs[0]
        note = log.latest_checkpoint(log_id)
    if note is None:
        fail(f"log {log_id!r} has no signed checkpoint")
    click.echo(note, nl=False)
