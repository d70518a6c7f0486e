"""Commands that run the pipeline: ``run`` an event file without Kafka, the Kafka ``worker`` and ``sink``, and
what they filled: the DPO's ``overview`` and each table's ``digest``."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from consentflow.cli.options import INSTANT, health_options, start_health
from consentflow.cli.shared import (
    CLUSTER_OPTION,
    DEFAULT_BOOTSTRAP,
    DEFAULT_DATABASE,
    DEFAULT_DSN,
    DEFAULT_PREFIX,
    REGISTRY_URL,
    SESSION_TIMEOUT_OPTION,
    StopWatch,
    check_session_accepted,
    ensure_chdb_dir,
    event_time_bounds,
    exit_if_stopped,
    fail,
    open_sink,
)
from consentflow.contracts.errors import ContractError

#: ``--checkpoint-interval``: seconds at most between a leaf and the checkpoint that signs it (issue 22: 10 at most).
CHECKPOINT_INTERVAL_OPTION = click.option(
    "--checkpoint-interval",
    type=click.FloatRange(min=0.1, max=10.0),
    default=10.0,  # notary.follower.CHECKPOINT_INTERVAL, kept out of the CLI's imports
    show_default=True,
    help="With a notary key: seconds at most between a leaf and the checkpoint that signs it.",
)

if TYPE_CHECKING:
    from consentflow.core.checkpoint import Signer
    from consentflow.notary.follower import LogFollower
    from consentflow.runtime.metrics import SinkMetrics, WorkerMetrics
    from consentflow.sinks.clickhouse import ClickHouseSink


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option(
    "--as-of",
    "as_of",
    type=INSTANT,
    default=None,
    help="Retention clock (ISO 8601; UTC when no zone). Default: the latest event time in the file, so replays agree. "
    "Never earlier than the clock an earlier run into the database reached: the clock does not go back.",
)
@click.option("--overview/--no-overview", default=True, show_default=True, help="Print the DPO overview afterwards.")
@click.option(
    "--notary-key",
    "notary_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Private key (consentflow notary keygen): every ledger entry and erasure notice written becomes a leaf of "
    "the log 'embedded', in file order, signed every 10,000 leaves and at the end. Without it no log is written.",
)
def run(file: str, dsn: str, database: str, as_of: datetime | None, overview: bool, notary_key: Path | None) -> None:
    """Run an event file (or - for stdin) through the processors into ClickHouse, without Kafka.

    Into a database an earlier run filled, it continues that run: from its subjects' states, its retention clock
    (which never goes back) and the recipients table; events already run change nothing.

    FILE is an Avro container file (consentflow generate, consentflow convert) or JSON Lines, one event a line
    (README: Writing events by hand). Every event passes the gate; one that fails becomes a dead letter naming its
    position and field, and the run goes on. Exit status 0 when the whole file was read; 3 when reading stopped
    before its end (a file cut short: what came before is in the tables, a dead letter names the byte).
    """
    from rich.console import Console

    from consentflow.cli.run_progress import run_summary, run_with_progress
    from consentflow.sinks.subject_states import SavedStateError
    from consentflow.streams.decoding_process import DecodingProcessFailed, read_events_in_child

    signer = notary_signer(notary_key)  # a bad key is refused before any event is read
    bounds = event_time_bounds()
    # Decoded and checked on the second core, in file order; it starts while ClickHouse opens.
    events = StopWatch(read_events_in_child(file, arrival=datetime.now(UTC), bounds=bounds), file)
    sink = open_sink(dsn, database)
    notary = None
    if signer is not None:
        from consentflow.notary.step import NotaryStep
        from consentflow.notary.store import EMBEDDED_LOG, LogStore

        notary = NotaryStep(LogStore.of_sink(sink, EMBEDDED_LOG), signer)
    size = Path(file).stat().st_size if file != "-" and Path(file).exists() else None
    console = Console(stderr=True)
    began = time.perf_counter()
    try:
        stats = run_with_progress(events, sink, console, as_of=as_of, continued=True, notary=notary)
    except (OSError, ContractError, DecodingProcessFailed, SavedStateError) as exc:
        fail(str(exc))
    elapsed = time.perf_counter() - began
    console.print(run_summary(stats, elapsed) + (f"; file {size / 1e6:.1f} MB" if size else ""))
    if as_of is not None and stats.clock is not None and stats.clock > as_of:
        console.print(f"retention clock kept at {stats.clock.isoformat()}, where an earlier run into {database} left it")
    if notary is not None:
        console.print(f"log {notary.store.log_id}: {notary.store.size:,} leaves, checkpoint signed by {notary.signer.name}")
    if overview:
        _print_overview(sink.reader)
    exit_if_stopped(events)


def notary_signer(path: Path | None) -> Signer | None:
    """The notary's ``Signer`` from its key file, or None without one; a key others may read, or malformed, fails."""
    if path is None:
        return None
    from consentflow.core.checkpoint import NoteError
    from consentflow.notary.keys import read_signer

    try:
        return read_signer(path)
    except (OSError, NoteError) as exc:
        fail(f"--notary-key {path}: {exc}")


def kafka_notary(sink: ClickHouseSink, signer: Signer, bootstrap: str, prefix: str, interval: float) -> LogFollower:
    """The notary of the output partitions a Kafka consumer reads: leaves into ``sink``'s database, signed every
    10,000 leaves or ``interval`` seconds, each signed note onto the checkpoints table and topic."""
    from consentflow.kafka.checkpoints import CheckpointPublisher, missing_topic
    from consentflow.notary.follower import LogFollower

    missing = missing_topic(bootstrap, prefix)  # each note would wait out a delivery timeout: say so at once
    if missing is not None:
        fail(missing)
    return LogFollower(sink, signer, interval=interval, publish=CheckpointPublisher(bootstrap, prefix))


def sink_metrics() -> SinkMetrics:
    """The sink's metrics, in a registry of their own (``/metrics`` on the health port)."""
    from prometheus_client import CollectorRegistry

    from consentflow.runtime.metrics import SinkMetrics

    return SinkMetrics(CollectorRegistry())


def worker_metrics() -> WorkerMetrics:
    """The worker's metrics, in a registry of their own (``/metrics`` on the health port)."""
    from prometheus_client import CollectorRegistry

    from consentflow.runtime.metrics import WorkerMetrics

    return WorkerMetrics(CollectorRegistry())


@click.command("overview")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True)
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def overview_command(dsn: str, database: str, as_json: bool) -> None:
    """The DPO's overview: subjects, consent rates, top recipients, transfers outside the EU/EEA, violations."""
    _print_overview(open_sink(dsn, database).reader, as_json)


def _print_overview(sink: Any, as_json: bool = False) -> None:
    from rich.table import Table

    from consentflow.cli.dpo_output import stdout_console
    from consentflow.sinks.queries import overview

    data = overview(sink)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    console = stdout_console()
    console.print(f"[bold]Subjects:[/] {data['subjects']:,}")
    table = Table(title="Consent by purpose (current state, subjects asked)")
    for col in ("purpose", "granted", "asked", "rate"):
        table.add_column(col)
    for row in data["consent_by_purpose"]:
        table.add_row(row["purpose"], f"{row['granted']:,}", f"{row['asked']:,}", f"{row['rate']:.1%}")
    console.print(table)
    table = Table(title="Top recipients")
    for col in ("recipient", "country", "mechanism", "subjects", "edges"):
        table.add_column(col)
    for row in data["top_recipients"]:
        table.add_row(row["recipient_id"], row["country"] or "?", row["mechanism"], f"{row['subjects']:,}", f"{row['edges']:,}")
    console.print(table)
    table = Table(title="Transfers outside the EU/EEA [7]")
    for col in ("country", "mechanism", "edges", "subjects", "recipients"):
        table.add_column(col)
    for row in data["transfers_outside_eea"]:
        style = "bold red" if row["mechanism"] in ("none", "unknown") else ""
        table.add_row(
            row["country"],
            row["mechanism"],
            f"{row['edges']:,}",
            f"{row['subjects']:,}",
            ", ".join(row["recipients"]),
            style=style,
        )
    console.print(table)
    table = Table(title="Violations by rule")
    for col in ("rule", "section", "count"):
        table.add_column(col)
    for row in data["violations_by_rule"]:
        table.add_row(row["rule"], row["policy_section"], f"{row['count']:,}")
    console.print(table)
    table = Table(title="Consents awaiting re-consent [13] (a policy version, in force or upcoming, asks them again)")
    for col in ("purpose", "version", "from", "subjects"):
        table.add_column(col)
    for row in data.get("awaiting_reconsent", []):
        table.add_row(row["purpose"], row["version"], row["since"], f"{row['subjects']:,}")
    console.print(table)
    _print_calendar(console, data["calendar"])


def _print_calendar(console: Any, panel: dict[str, Any]) -> None:
    """The overview's calendar panel: requests against their deadlines, open incidents' hours left, re-consent."""
    from rich.panel import Panel
    from rich.table import Table

    requests = panel["requests"]
    lines = [
        f"Rights requests [8.2; Art. 12(3)]: {requests['open']:,} open, {requests['due_this_week']:,} due within 7 days, "
        f"{requests['overdue']:,} overdue",
        f"Consents awaiting re-consent [13]: {panel['awaiting_reconsent']:,}",
        f"Incidents open [12; Art. 33]: {len(panel['incidents_open']):,}",
    ]
    incidents = Table(box=None)
    for col in ("incident", "recipient", "risk", "authority due", "hours left", "notification"):
        incidents.add_column(col)
    for row in panel["incidents_open"]:
        left = "" if row["hours_left"] is None else f"{row['hours_left']:,.1f}"
        style = "bold red" if row["flagged"] else ""
        incidents.add_row(
            row["incident_id"], row["recipient_id"], row["risk"], row["authority_due"], left, row["notification"], style=style
        )
    body: Any = "\n".join(lines)
    if panel["incidents_open"]:
        from rich.console import Group

        body = Group(body, incidents)
    console.print(Panel(body, title=f"The DPO's calendar, as of {panel['as_of']}"))


@click.command()
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--app-id", default="consentflow-worker", show_default=True, help="Consumer group of the workers.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default="out/worker",
    show_default=True,
    help="Where this worker keeps its RocksDB state.",
)
@click.option("--store", type=click.Choice(["rocksdb", "memory"]), default="rocksdb", show_default=True)
@click.option("--partitions", type=click.IntRange(min=1), default=6, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10_000,  # streams.worker.BATCH_SIZE, kept out of the CLI's imports
    show_default=True,
    help="Events a batch takes at most: each changed state is written once a batch, its outputs acknowledged in one wait.",
)
@click.option(
    "--retention-interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between retention ticks (clock: the latest event time this worker has seen).",
)
@click.option(
    "--retention-sweep-interval",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds at least between ticks that read every subject held, to emit the retention actions that fell due; "
    "other ticks read only the subjects events changed.",
)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL)
@SESSION_TIMEOUT_OPTION
@click.option(
    "--drain-bypass/--no-drain-bypass",
    default=True,
    show_default=True,
    envvar="CONSENTFLOW_DRAIN_BYPASS",
    help="Hand each fetched message to the agents directly when nothing can make it wait (faust's race otherwise), "
    "and take batches from the agents' queues past faust's stream layer (streams/faust_compat.py). Off: faust's own "
    "per-message path throughout. CONSENTFLOW_DRAIN_BYPASS=0 in the environment turns it off where no option says.",
)
@click.option("--loglevel", default="warning", show_default=True)
@health_options
def worker(
    bootstrap: str,
    prefix: str,
    app_id: str,
    data_dir: str,
    store: str,
    partitions: int,
    batch_size: int,
    retention_interval: float,
    retention_sweep_interval: float,
    registry_url: str | None,
    session_timeout: float,
    drain_bypass: bool,
    loglevel: str,
    health_port: int | None,
    health_host: str,
) -> None:
    """Run a faust worker: input topics through the processors to the output topics. Run more to scale."""
    from consentflow.streams.worker import WorkerSettings, run_worker

    settings = WorkerSettings(
        bootstrap=bootstrap,
        prefix=prefix,
        app_id=app_id,
        data_dir=Path(data_dir),
        store=f"{store}://",
        partitions=partitions,
        batch_size=batch_size,
        registry_url=registry_url,
        retention_interval=retention_interval,
        retention_sweep_interval=retention_sweep_interval,
        session_timeout=session_timeout,
        drain_bypass=drain_bypass,
    )
    check_session_accepted(bootstrap, session_timeout)
    metrics = worker_metrics() if health_port is not None else None  # counted only where /metrics serves them
    health = start_health(health_port, health_host, None if metrics is None else metrics.registry)
    sys.argv = [sys.argv[0], "worker", "-l", loglevel]  # faust's Worker reads its own command line
    run_worker(settings, loglevel, health, metrics)


@click.command()
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--dsn", default=DEFAULT_DSN, show_default=True)
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--group-id", default="consentflow-sink", show_default=True)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL)
@click.option(
    "--notary-key",
    "notary_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Private key (consentflow notary keygen): run the notary in the sink (chDB, which one process opens): every "
    "ledger entry and erasure notice becomes a leaf of its output partition's log, signed every 10,000 leaves or 10 s, "
    "onto the checkpoints table and topic. For a ClickHouse server, run `consentflow notary` instead.",
)
@CHECKPOINT_INTERVAL_OPTION
@SESSION_TIMEOUT_OPTION
@health_options
@CLUSTER_OPTION
def sink(
    bootstrap: str,
    prefix: str,
    dsn: str,
    database: str,
    group_id: str,
    registry_url: str | None,
    notary_key: Path | None,
    checkpoint_interval: float,
    session_timeout: float,
    health_port: int | None,
    health_host: str,
    cluster: str | None,
) -> None:
    """Write the output topics and the registry into ClickHouse, committing offsets only after each insert."""
    import logging
    import os

    from consentflow.contracts.codec import make_codec
    from consentflow.kafka.broker_check import watch_broker
    from consentflow.kafka.quiet_logs import quiet_client_logs
    from consentflow.runtime.bounded_stop import StopRequest, abandon_stop
    from consentflow.runtime.health import Health
    from consentflow.sinks.clickhouse import ClickHouseSink, RetryAbandoned, clickhouse_outage
    from consentflow.sinks.consumer import SinkConsumer, run_sink

    signer = notary_signer(notary_key)  # a bad key is refused before anything is consumed
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_client_logs()  # librdkafka's repeated lines while the broker is away: the first, then a count
    metrics = sink_metrics() if health_port is not None else None  # counted only where /metrics serves them
    registry = None if metrics is None else metrics.registry
    health = start_health(health_port, health_host, registry) or Health()  # without a port, nobody asks: it beats unheard
    # One Outage per dependency, whoever notices: the broker check and the consumer say a Kafka outage once.
    kafka = watch_broker(health, bootstrap) if health_port is not None else None
    clickhouse = clickhouse_outage(dsn, end_process=os._exit)  # an error no retry outlives: one line, exit 71
    health.watch(clickhouse)
    ensure_chdb_dir(dsn)
    check_session_accepted(bootstrap, session_timeout)
    stopping = StopRequest("Kafka or ClickHouse away?").on_signals()  # before the schema: ClickHouse may be away
    try:
        # Retries forever while ClickHouse is away: pause, don't crash-loop; live while it waits.
        target = ClickHouseSink(
            dsn, database, outage=clickhouse, should_stop=stopping, beat=health.beat, cluster=cluster, metrics=metrics
        )
    except ValueError as exc:
        fail(str(exc))
    except RetryAbandoned as exc:
        abandon_stop(str(exc))
    codec = make_codec(registry_url, prefix)
    consumer = SinkConsumer(
        bootstrap,
        prefix,
        codec,
        target,
        group_id=group_id,
        kafka_outage=kafka,
        session_timeout=session_timeout,
        notary=None if signer is None else kafka_notary(target, signer, bootstrap, prefix, checkpoint_interval),
        metrics=metrics,
    )
    if metrics is not None:
        from consentflow.kafka.lag import lag_metric

        metrics.registry.register(lag_metric(bootstrap, group_id, consumer.topics))
    health.started()  # subscribed
    run_sink(consumer, stopping, beat=health.beat)


@click.command()
@click.option("--dsn", default=DEFAULT_DSN, show_default=True)
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def digest(dsn: str, database: str) -> None:
    """One digest per table (rows and an order-independent hash), to compare two runs or databases."""
    from consentflow.sinks.digest import table_digests

    click.echo(json.dumps(table_digests(open_sink(dsn, database).reader), indent=2, sort_keys=True))
