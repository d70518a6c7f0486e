"""Commands over event files: ``generate`` one, ``summarise`` it, ``produce`` it to Kafka, ``convert`` JSON Lines
into one, and ``decode`` one message value."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import click

from consentflow.cli.options import INSTANT
from consentflow.cli.shared import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_PREFIX,
    REGISTRY_URL,
    StopWatch,
    event_time_bounds,
    exit_if_stopped,
    fail,
)
from consentflow.contracts.errors import ContractError


@click.command()
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


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def summarise(file: str) -> None:
    """Summarise an event file: events per topic, subjects, time span, consents by purpose."""
    from consentflow.contracts.eventfile import read_events

    by_topic: dict[str, int] = {}
    consents: dict[str, dict[str, int]] = {}
    subjects: set[str] = set()
    first: datetime | None = None
    last: datetime | None = None
    try:
        for topic, record in read_events(file):
            by_topic[topic.short_name] = by_topic.get(topic.short_name, 0) + 1
            if record.get("subject_id"):  # the registry has none, an incident event one only when a subject is told
                subjects.add(record["subject_id"])
            when = record["occurred_at"]
            first = when if first is None or when < first else first
            last = when if last is None or when > last else last
            if topic.short_name == "consent":
                per = consents.setdefault(record["purpose"], {})
                per[record["action"]] = per.get(record["action"], 0) + 1
    except (OSError, ContractError) as exc:
        fail(str(exc))
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


@click.command()
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
    from consentflow.contracts.codec import make_codec
    from consentflow.contracts.eventfile import read_checked
    from consentflow.contracts.events import Event
    from consentflow.contracts.gate import Gate
    from consentflow.contracts.topics import DEAD_LETTER
    from consentflow.kafka.producer import DeliveryError, EventProducer

    began = time.perf_counter()
    count = refused = 0
    gate = Gate(event_time_bounds())
    try:
        codec = make_codec(registry_url, prefix)
        with EventProducer(bootstrap, codec=codec, prefix=prefix) as producer:
            items = StopWatch(read_checked(file, gate, datetime.now(UTC)), file)
            for topic, record in items:
                if topic is DEAD_LETTER:
                    refused += 1
                    click.echo(f"refused: {record['reason']}", err=True)
                    value = codec.encode(DEAD_LETTER, record)
                    key, headers = str(record["topic"]).encode(), codec.headers(DEAD_LETTER)
                    producer.send_bytes(DEAD_LETTER.name(prefix), key, value, headers=headers)
                    continue
                producer.send(Event(topic, record))
                count += 1
    except (OSError, ContractError, DeliveryError) as exc:
        fail(f"after {count} events: {exc}")
    elapsed = time.perf_counter() - began
    rate = f"{count / elapsed:,.0f}" if elapsed > 0 else "-"
    click.echo(f"produced {count} events in {elapsed:.1f} s ({rate} events/s); {refused} refused (dead letters)", err=True)
    exit_if_stopped(items)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("out", type=click.Path(dir_okay=False, allow_dash=True))
def convert(source: str, out: str) -> None:
    """Write the events of SOURCE (JSON Lines, or an Avro container file) as an Avro container file OUT (- for stdout).

    Every event passes the gate (its arrival: now). All or nothing: when any line is refused, each is named on stderr
    with its line number and field, OUT is not written, and the exit status is 1.
    """
    from consentflow.contracts.eventfile import read_checked, write_events
    from consentflow.contracts.events import Event
    from consentflow.contracts.gate import Gate
    from consentflow.contracts.topics import DEAD_LETTER

    gate = Gate(event_time_bounds())
    good: list[Event] = []
    refused: list[str] = []
    try:
        for topic, record in read_checked(source, gate, datetime.now(UTC)):
            if topic is DEAD_LETTER:
                refused.append(str(record["reason"]))
            else:
                good.append(Event(topic, record))
    except (OSError, ContractError) as exc:
        fail(str(exc))
    if refused:
        for reason in refused:
            click.echo(f"refused: {reason}", err=True)
        fail(f"{len(refused)} event(s) refused; {out} not written")
    written = write_events(out, good)
    click.echo(f"wrote {written} events to {out}", err=True)


@click.command()
@click.argument("topic")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL, help="Schema Registry URL for Confluent-framed bytes.")
def decode(topic: str, file: Any, registry_url: str | None) -> None:
    """Decode one message value of TOPIC (raw bytes from FILE or stdin) and print it as JSON."""
    from consentflow.contracts.codec import make_codec

    data = file.read()
    try:
        record = make_codec(registry_url).decode(topic, data)
    except ContractError as exc:
        fail(str(exc))
    click.echo(json.dumps(record, default=_json_default, indent=2, sort_keys=True))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot serialise {type(value).__name__}")
