"""The ``consentflow`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from consentflow.errors import ContractError
from consentflow.group_membership import MAX_SESSION_TIMEOUT, SESSION_TIMEOUT
from consentflow.health_options import health_options, start_health
from consentflow.instant_option import INSTANT

DEFAULT_BOOTSTRAP = os.environ.get("CONSENTFLOW_BOOTSTRAP", "127.0.0.1:9092")
DEFAULT_PREFIX = os.environ.get("CONSENTFLOW_TOPIC_PREFIX", "consentflow")
REGISTRY_URL = os.environ.get("CONSENTFLOW_SCHEMA_REGISTRY_URL") or None
DEFAULT_DSN = os.environ.get("CONSENTFLOW_CLICKHOUSE_DSN", f"chdb://{Path.cwd() / 'out' / 'chdb'}")
DEFAULT_DATABASE = os.environ.get("CONSENTFLOW_DATABASE", "consentflow")
# The worker's and the sink's: how long a killed one's partitions wait for another (consentflow.group_membership).
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


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _check_session_accepted(bootstrap: str, session_timeout: float) -> None:
    """End a worker or sink the broker would refuse, with one line and the status of an error no retry outlives."""
    from consentflow.group_membership import SessionRefused, check_session_timeout
    from consentflow.outage import EXIT_NOT_TRANSIENT

    try:
        check_session_timeout(bootstrap, session_timeout)
    except SessionRefused as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_NOT_TRANSIENT)


@click.group()
@click.version_option(package_name="consentflow")
def main() -> None:
    """Consent ledger and data lineage for the platform's privacy policy."""
    from consentflow.gc_tuning import tune_for_streaming

    tune_for_streaming()  # every command: the streaming ones (run, worker, sink, replay) are faster, the others unaffected


@main.command()
@click.option("--subjects", type=click.IntRange(min=1), required=True, help="How many data subjects.")
@click.option("--days", type=click.IntRange(min=1), required=True, help="How many days of activity.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option("--out", "out", required=True, help="Avro object container file to write, or - for stdout.")
@click.option(
    "--truth",
    type=click.Path(dir_okay=False),
    default=None,
    help="Ground-truth file of injected violations (JSON lines). Default: OUT.truth.jsonl (none for -).",
)
@click.option(
    "--violation-share",
    type=click.FloatRange(0.0, 0.5),
    default=0.002,
    show_default=True,
    help="Chance that an activity is an injected violation.",
)
@click.option(
    "--start", type=INSTANT, default="2021-01-04", show_default=True, help="First instant (ISO 8601; UTC when no zone)."
)
def generate(subjects: int, days: int, seed: int, out: str, truth: str | None, violation_share: float, start: datetime) -> None:
    """Generate a realistic, reproducible stream of platform events."""
    from consentflow.generator import GeneratorConfig
    from consentflow.generator import generate as run

    if truth is None and out != "-":
        truth = f"{out}.truth.jsonl"
    config = GeneratorConfig(subjects=subjects, days=days, seed=seed, start=start, violation_share=violation_share)
    began = time.perf_counter()
    stats = run(config, out, truth)
    elapsed = time.perf_counter() - began
    summary: dict[str, Any] = {
        "events": stats.events,
        "seconds": round(elapsed, 2),
        "events_per_second": round(stats.events / elapsed) if elapsed else None,
        "by_topic": dict(sorted(stats.by_topic.items())),
        "injected_violations": dict(sorted(stats.injected.items())),
        "injected_share": round(sum(stats.injected.values()) / stats.events, 6) if stats.events else 0,
        "out": out,
        "truth": truth,
    }
    click.echo(json.dumps(summary, indent=2), err=out == "-")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def summarise(file: str) -> None:
    """Summarise an event file: events per topic, subjects, time span, consents by purpose."""
    from consentflow.eventfile import read_events

    by_topic: dict[str, int] = {}
    consents: dict[str, dict[str, int]] = {}
    subjects: set[str] = set()
    first: datetime | None = None
    last: datetime | None = None
    try:
        for topic, record in read_events(file):
            by_topic[topic.short_name] = by_topic.get(topic.short_name, 0) + 1
            if "subject_id" in record:
                subjects.add(record["subject_id"])
            when = record["occurred_at"]
            first = when if first is None or when < first else first
            last = when if last is None or when > last else last
            if topic.short_name == "consent":
                per = consents.setdefault(record["purpose"], {})
                per[record["action"]] = per.get(record["action"], 0) + 1
    except (OSError, ContractError) as exc:
        _fail(str(exc))
    click.echo(
        json.dumps(
            {
                "events": sum(by_topic.values()),
                "subjects": len(subjects),
                "from": first.isoformat() if first else None,
                "to": last.isoformat() if last else None,
                "by_topic": dict(sorted(by_topic.items())),
                "consent_events_by_purpose": dict(sorted(consents.items())),
            },
            indent=2,
        )
    )


def _ensure_chdb_dir(dsn: str) -> None:
    """chDB keeps its data under the DSN's path: create it on first use."""
    if dsn.startswith("chdb:///"):
        Path(dsn[len("chdb://") :]).mkdir(parents=True, exist_ok=True)


def _sink(dsn: str, database: str, cluster: str | None = None) -> Any:
    from consentflow.sinks.clickhouse import ClickHouseSink, SinkUnavailable

    _ensure_chdb_dir(dsn)
    try:
        return ClickHouseSink(dsn, database, retry_for=30.0, cluster=cluster)
    except (ValueError, SinkUnavailable) as exc:
        _fail(str(exc))


@main.command()
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
def run(file: str, dsn: str, database: str, as_of: datetime | None, overview: bool) -> None:
    """Run an event file (or - for stdin) through the processors into ClickHouse, without Kafka.

    Into a database an earlier run filled, it continues that run: from its subjects' states, its retention clock
    (which never goes back) and the recipients table; events already run change nothing.

    FILE is an Avro container file (consentflow generate, consentflow convert) or JSON Lines, one event a line
    (README: Writing events by hand). Every event passes the gate; one that fails becomes a dead letter naming its
    position and field, and the run goes on. Exit status 0 when the whole file was read; 3 when reading stopped
    before its end (a file cut short: what came before is in the tables, a dead letter names the byte).
    """
    from rich.console import Console

    from consentflow.decoding_process import DecodingProcessFailed, read_events_in_child
    from consentflow.run_progress import run_summary, run_with_progress
    from consentflow.sinks.subject_states import SavedStateError

    bounds = _bounds()
    # Decoded and checked on the second core, in file order; it starts while ClickHouse opens.
    events = _StopWatch(read_events_in_child(file, arrival=datetime.now(UTC), bounds=bounds), file)
    sink = _sink(dsn, database)
    size = Path(file).stat().st_size if file != "-" and Path(file).exists() else None
    console = Console(stderr=True)
    began = time.perf_counter()
    try:
        stats = run_with_progress(events, sink, console, as_of=as_of, continued=True)
    except (OSError, ContractError, DecodingProcessFailed, SavedStateError) as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - began
    console.print(run_summary(stats, elapsed) + (f"; file {size / 1e6:.1f} MB" if size else ""))
    if as_of is not None and stats.clock is not None and stats.clock > as_of:
        console.print(f"retention clock kept at {stats.clock.isoformat()}, where an earlier run into {database} left it")
    if overview:
        _print_overview(sink.reader)
    _exit_if_stopped(events)


class _StopWatch:
    """Items passed on as they come; remembers the dead letter of a reading that stopped before the file's end."""

    def __init__(self, items: Any, path: str) -> None:
        self.items = items
        self.path = path
        self.stopped: str | None = None

    def __iter__(self) -> Any:
        from consentflow.eventfile import READING_STOPPED
        from consentflow.topics import DEAD_LETTER

        for topic, record in self.items:
            if topic is DEAD_LETTER and record["error_type"] == READING_STOPPED:
                self.stopped = f"{self.path}: {record['reason']}"
            yield topic, record


#: Exit status of run, produce and convert when reading stopped before the end of the file.
READING_STOPPED_EXIT = 3


def _exit_if_stopped(watch: _StopWatch) -> None:
    if watch.stopped is not None:
        click.echo(f"consentflow: {watch.stopped}", err=True)
        sys.exit(READING_STOPPED_EXIT)


def _bounds() -> Any:
    from consentflow.gate import EventTimeBounds

    try:
        return EventTimeBounds.from_env()
    except ValueError as exc:
        _fail(str(exc))


@main.command("overview")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True)
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def overview_command(dsn: str, database: str, as_json: bool) -> None:
    """The DPO's overview: subjects, consent rates, top recipients, transfers outside the EU/EEA, violations."""
    _print_overview(_sink(dsn, database).reader, as_json)


def _print_overview(sink: Any, as_json: bool = False) -> None:
    from rich.table import Table

    from consentflow.dpo_cli import stdout_console
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


@main.command()
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
@click.option("--batch-size", type=click.IntRange(min=1), default=2000, show_default=True)
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
    )
    _check_session_accepted(bootstrap, session_timeout)
    health = start_health(health_port, health_host)
    sys.argv = [sys.argv[0], "worker", "-l", loglevel]  # faust's Worker reads its own command line
    run_worker(settings, loglevel, health)


@main.command()
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option("--dsn", default=DEFAULT_DSN, show_default=True)
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option("--group-id", default="consentflow-sink", show_default=True)
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL)
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
    session_timeout: float,
    health_port: int | None,
    health_host: str,
    cluster: str | None,
) -> None:
    """Write the output topics and the registry into ClickHouse, committing offsets only after each insert."""
    import logging
    import os

    from consentflow.bounded_stop import StopRequest, abandon_stop
    from consentflow.broker_check import watch_broker
    from consentflow.codec import make_codec
    from consentflow.health import Health
    from consentflow.quiet_logs import quiet_client_logs
    from consentflow.sinks.clickhouse import ClickHouseSink, RetryAbandoned, clickhouse_outage
    from consentflow.sinks.consumer import SinkConsumer, run_sink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_client_logs()  # librdkafka's repeated lines while the broker is away: the first, then a count
    health = start_health(health_port, health_host) or Health()  # without a port, nobody asks: it beats unheard
    # One Outage per dependency, whoever notices: the broker check and the consumer say a Kafka outage once.
    kafka = watch_broker(health, bootstrap) if health_port is not None else None
    clickhouse = clickhouse_outage(dsn, end_process=os._exit)  # an error no retry outlives: one line, exit 71
    health.watch(clickhouse)
    _ensure_chdb_dir(dsn)
    _check_session_accepted(bootstrap, session_timeout)
    stopping = StopRequest("Kafka or ClickHouse away?").on_signals()  # before the schema: ClickHouse may be away
    try:
        # Retries forever while ClickHouse is away: pause, don't crash-loop; live while it waits.
        target = ClickHouseSink(dsn, database, outage=clickhouse, should_stop=stopping, beat=health.beat, cluster=cluster)
    except ValueError as exc:
        _fail(str(exc))
    except RetryAbandoned as exc:
        abandon_stop(str(exc))
    codec = make_codec(registry_url, prefix)
    consumer = SinkConsumer(
        bootstrap, prefix, codec, target, group_id=group_id, kafka_outage=kafka, session_timeout=session_timeout
    )
    health.started()  # subscribed
    run_sink(consumer, stopping, beat=health.beat)


@main.command()
@click.option("--dsn", default=DEFAULT_DSN, show_default=True)
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def digest(dsn: str, database: str) -> None:
    """One digest per table (rows and an order-independent hash), to compare two runs or databases."""
    from consentflow.sinks.digest import table_digests

    click.echo(json.dumps(table_digests(_sink(dsn, database).reader), indent=2, sort_keys=True))


@main.group()
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
    from consentflow.admin import create_topics

    for value, name in ((output_retention_ms, "--output-retention-ms"), (input_retention_ms, "--input-retention-ms")):
        if not value.lstrip("-").isdigit() or int(value) < -1:
            _fail(f"{name} must be -1 or a number of milliseconds, got {value!r}")
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
        _fail(str(exc))
    for outcome in outcomes:
        settings = ", ".join(f"{k}={v}" for k, v in sorted(outcome.config.items()))
        click.echo(f"{outcome.status:8} {outcome.name} partitions={outcome.partitions} {settings}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True)
@click.option(
    "--schema-registry",
    "registry_url",
    default=REGISTRY_URL,
    help="Schema Registry URL: use the Confluent wire format (else Avro single-object encoding).",
)
def produce(file: str, bootstrap: str, prefix: str, registry_url: str | None) -> None:
    """Produce every event of an event file (Avro container file or JSON Lines) to its topic, keyed by subject.

    Every event passes the gate first (its arrival: now); one that fails is not produced to its topic but to the
    dead-letter topic, and named on stderr with its position and field. Exit status 0 when the whole file was read,
    3 when reading stopped before its end.
    """
    from consentflow.codec import make_codec
    from consentflow.eventfile import read_checked
    from consentflow.events import Event
    from consentflow.gate import Gate
    from consentflow.producer import DeliveryError, EventProducer
    from consentflow.topics import DEAD_LETTER

    began = time.perf_counter()
    count = refused = 0
    gate = Gate(_bounds())
    try:
        codec = make_codec(registry_url, prefix)
        with EventProducer(bootstrap, codec=codec, prefix=prefix) as producer:
            items = _StopWatch(read_checked(file, gate, datetime.now(UTC)), file)
            for topic, record in items:
                if topic is DEAD_LETTER:
                    refused += 1
                    click.echo(f"refused: {record['reason']}", err=True)
                    value = codec.encode(DEAD_LETTER, record)
                    producer.send_bytes(DEAD_LETTER.name(prefix), str(record["topic"]).encode(), value)
                    continue
                producer.send(Event(topic, record))
                count += 1
    except (OSError, ContractError, DeliveryError) as exc:
        _fail(f"after {count} events: {exc}")
    elapsed = time.perf_counter() - began
    rate = f"{count / elapsed:,.0f}" if elapsed > 0 else "-"
    click.echo(f"produced {count} events in {elapsed:.1f} s ({rate} events/s); {refused} refused (dead letters)", err=True)
    _exit_if_stopped(items)


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("out", type=click.Path(dir_okay=False, allow_dash=True))
def convert(source: str, out: str) -> None:
    """Write the events of SOURCE (JSON Lines, or an Avro container file) as an Avro container file OUT (- for stdout).

    Every event passes the gate (its arrival: now). All or nothing: when any line is refused, each is named on stderr
    with its line number and field, OUT is not written, and the exit status is 1.
    """
    from consentflow.eventfile import read_checked, write_events
    from consentflow.events import Event
    from consentflow.gate import Gate
    from consentflow.topics import DEAD_LETTER

    gate = Gate(_bounds())
    good: list[Event] = []
    refused: list[str] = []
    try:
        for topic, record in read_checked(source, gate, datetime.now(UTC)):
            if topic is DEAD_LETTER:
                refused.append(str(record["reason"]))
            else:
                good.append(Event(topic, record))
    except (OSError, ContractError) as exc:
        _fail(str(exc))
    if refused:
        for reason in refused:
            click.echo(f"refused: {reason}", err=True)
        _fail(f"{len(refused)} event(s) refused; {out} not written")
    written = write_events(out, good)
    click.echo(f"wrote {written} events to {out}", err=True)


@main.command()
@click.argument("topic")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL, help="Schema Registry URL for Confluent-framed bytes.")
def decode(topic: str, file: Any, registry_url: str | None) -> None:
    """Decode one message value of TOPIC (raw bytes from FILE or stdin) and print it as JSON."""
    from consentflow.codec import make_codec

    data = file.read()
    try:
        record = make_codec(registry_url).decode(topic, data)
    except ContractError as exc:
        _fail(str(exc))
    click.echo(json.dumps(record, default=_json_default, indent=2, sort_keys=True))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")


# Commands kept in their own modules register themselves on ``main``: the DPO's read-only
# questions, the auditor's replay and verify, and the registry loader.
from consentflow import (  # noqa: E402, F401
    access_commands,
    audit_commands,
    compliance_commands,
    consent_commands,
    lineage_commands,
    registry_commands,
    ropa_commands,
    serve_commands,
)

if __name__ == "__main__":  # pragma: no cover
    # Run as a script, this file is ``__main__``: the command modules registered on
    # ``consentflow.cli.main``, the module's other copy, so that is the group to run.
    from consentflow.cli import main as registered

    sys.exit(registered())
