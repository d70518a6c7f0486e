"""``consentflow incident``: the breach register [12; GDPR Art. 33, 34].

``open``, ``notify-authority``, ``notify-subjects`` and ``close`` record an incident event: on the ``incidents`` topic
(``--bootstrap``, as ``produce`` and ``registry load`` do; the sink stores it), or, ``--embedded``, into the database
(``--dsn``, ``--database``) through the gate and the embedded runner, as ``run`` writes. ``list`` and ``show`` read the
register: each incident's 72-hour clock (Art. 33(1)), its affected subjects and categories from the lineage (as
``breach`` finds them), and for a high risk whom to tell and who was told (Art. 34(1)).

Registered on ``consentflow.cli.main``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from consentflow.cli.dpo_output import (
    checked,
    instant,
    listed,
    print_json,
    print_line,
    print_table,
    reader_options,
    tables,
    when,
    write_output,
)
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
from consentflow.contracts.query_arguments import check_id, check_recipient_id, check_window
from consentflow.runtime.redaction import redacted_dsn

F = TypeVar("F", bound=Callable[..., Any])

#: The service the DPO's incident events name as their emitter.
SOURCE_SERVICE = "dpo"
#: How many subject ids ``show`` prints without ``--out``.
_SHOWN_IDS = 20


def writer_options(command: F) -> F:
    """Where an incident event goes: the topic (``--bootstrap``, ``--prefix``, ``--schema-registry``) or, with
    ``--embedded``, the database (``--dsn``, ``--database``, ``--cluster``)."""
    for option in reversed(
        (
            click.option("--embedded", is_flag=True, help="Into the database (--dsn, --database) instead of Kafka."),
            click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True),
            click.option("--prefix", default=DEFAULT_PREFIX, show_default=True),
            click.option("--schema-registry", "registry_url", default=REGISTRY_URL),
            click.option(
                "--dsn",
                default=DEFAULT_DSN,
                show_default=True,
                help="The ClickHouse DSN: --embedded writes there; notify-subjects --all reads the lineage there.",
            ),
            click.option("--database", default=DEFAULT_DATABASE, show_default=True),
            CLUSTER_OPTION,
        )
    ):
        command = option(command)
    return command


@click.group("incident")
def incident_group() -> None:
    """The breach register [12; GDPR Art. 33, 34]: incidents, the authority's 72 hours, the subjects to tell."""


def _record(events: Sequence[Any], where: dict[str, Any]) -> str:
    """Record incident events (``contracts.events.Event``) on the topic or, ``--embedded``, in the database; where."""
    from consentflow.contracts.errors import ContractError
    from consentflow.contracts.gate import Gate
    from consentflow.contracts.topics import INCIDENTS

    if where["embedded"]:
        from consentflow.core.processor import Processor
        from consentflow.streams.embedded import run_events

        gate, now = Gate(), datetime.now(UTC)
        try:
            for event in events:  # the gate the decoding process applies to a run's file, arrival now
                gate.check(INCIDENTS, event.record, now)
        except ContractError as exc:
            fail(str(exc))
        sink = open_sink(where["dsn"], where["database"], where["cluster"])
        stats = run_events([(e.topic, e.record) for e in events], Processor(), sink)
        if stats.dead_letters:
            fail(f"{stats.dead_letters} of {len(events)} incident events could not be stored; see the dead_letters table")
        return f"the incidents table of {where['database']} at {redacted_dsn(where['dsn'])}"
    from consentflow.contracts.codec import make_codec
    from consentflow.kafka.producer import DeliveryError, EventProducer

    prefix, bootstrap = where["prefix"], where["bootstrap"]
    topic = _incidents_topic(where)
    try:
        with EventProducer(bootstrap, codec=make_codec(where["registry_url"], prefix), prefix=prefix) as producer:
            for event in events:
                producer.send(event)  # the producer passes each through the gate
    except (ContractError, DeliveryError) as exc:
        fail(f"publishing to {topic}: {exc}")
    return topic


def _event(incident_id: str, kind: str, at: datetime, **fields: Any) -> Any:
    """An incident event built by its constructor (the edge checks); a refusal ends the command naming the field."""
    from consentflow.contracts.errors import ContractError
    from consentflow.contracts.events import incident_event

    try:
        return incident_event(incident_id, kind, source_service=SOURCE_SERVICE, occurred_at=at, **fields)
    except ContractError as exc:
        fail(str(exc))


def _required(text: str, option: str) -> datetime:
    at = instant(text, option)
    assert at is not None  # a required option
    return at


def _known_incident(where: dict[str, Any], incident_id: str) -> None:
    """Refuse an incident never opened: with ``--embedded``, in the database; on Kafka, on the incidents topic itself
    (kept forever, Art. 33(5)), since the sink's tables may lag behind it."""
    if not where["embedded"]:
        topic = _incidents_topic(where)
        if "opened" not in _kinds_on_topic(where, topic, incident_id):
            fail(f"unknown incident {incident_id!r}: no opening on {topic}")
        return
    from consentflow.sinks import incident_queries
    from consentflow.sinks.reading import UnknownId

    with tables(where["dsn"], where["database"]) as reader:
        if not any(e["kind"] == "opened" for e in incident_queries.incident_events(reader, incident_id)):
            raise UnknownId(f"unknown incident {incident_id!r}: no opening recorded in {where['database']}")


def _incidents_topic(where: dict[str, Any]) -> str:
    """The incidents topic's name, once the broker says it exists (producing would make it with the broker's retention,
    not forever: Art. 33(5))."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from consentflow.contracts.topics import INCIDENTS
    from consentflow.kafka.clients import client_config

    prefix, bootstrap = where["prefix"], where["bootstrap"]
    topic = INCIDENTS.name(prefix)
    try:
        existing = AdminClient(client_config(bootstrap)).list_topics(timeout=10).topics
    except KafkaException as exc:
        fail(f"Kafka at {redacted_dsn(bootstrap)} did not answer: {exc.args[0]}")
    if topic not in existing:
        fail(f"incidents topic {topic} does not exist; create it with consentflow topics create --prefix {prefix}")
    return topic


def _kinds_on_topic(where: dict[str, Any], topic: str, incident_id: str) -> list[str]:
    """The kinds of ``incident_id``'s events on the incidents topic, in offset order (records the gate refuses are the
    sink's dead letters, not facts)."""
    from confluent_kafka import KafkaException

    from consentflow.contracts.codec import make_codec
    from consentflow.contracts.errors import ContractError
    from consentflow.contracts.topics import INCIDENTS
    from consentflow.kafka.lag import end_offsets, start_offsets
    from consentflow.streams.partition_range import messages_in, range_consumer

    bootstrap, key = where["bootstrap"], incident_id.encode()
    codec = make_codec(where["registry_url"], where["prefix"])
    kinds: list[str] = []
    try:
        ends = end_offsets(bootstrap, [topic])
        starts = start_offsets(bootstrap, ends)
        consumer = range_consumer(bootstrap, "consentflow-incident-check")
        try:
            for (name, partition), end in sorted(ends.items()):
                for message in messages_in(consumer, name, partition, range(starts[(name, partition)], end), 30.0):
                    if message.key() != key or message.value() is None:  # keyed by incident id: others are not ours
                        continue
                    try:
                        record = codec.decode(INCIDENTS, message.value())
                    except ContractError:
                        continue
                    if record.get("incident_id") == incident_id:
                        kinds.append(str(record["kind"]))
        finally:
            consumer.close()
    except (KafkaException, TimeoutError, RuntimeError) as exc:
        fail(f"reading {topic} at {redacted_dsn(bootstrap)}: {exc}")
    return kinds


def _require_recipient_on_kafka(where: dict[str, Any], recipient_id: str) -> None:
    """Refuse a recipient neither the registry topic nor the sink's lineage (``--dsn``, when it has the tables)
    names: a breach there is a typo, as ``breach`` says [4]. An unregistered recipient that received data is known
    to the lineage only."""
    from consentflow.contracts.codec import make_codec
    from consentflow.sinks.clickhouse import SinkUnavailable
    from consentflow.sinks.reader import QueryFailed
    from consentflow.sinks.reading import TablesMissing, open_tables, recipient_known
    from consentflow.streams.registry_feed import RegistryFeed

    feed = RegistryFeed(where["bootstrap"], where["prefix"], make_codec(where["registry_url"], where["prefix"]))
    try:
        feed.catch_up(timeout=30.0)
    except TimeoutError as exc:
        fail(str(exc))
    finally:
        feed.close()
    if feed.registry.latest(recipient_id) is not None:
        return
    try:
        reader = open_tables(where["dsn"], where["database"])
        known = recipient_known(reader, recipient_id)
    except (ValueError, TablesMissing, SinkUnavailable, QueryFailed):  # no sink tables here: the registry topic decides
        known = False
    if not known:
        fail(
            f"unknown recipient {recipient_id!r}: not in the registry topic {feed.topic}"
            f" and never received data in {where['database']} at {redacted_dsn(where['dsn'])}"
        )


@incident_group.command("open")
@click.argument("recipient")
@click.option("--from", "start", required=True, help="Breach window start, included (ISO-8601; UTC when no zone).")
@click.option("--to", "end", required=True, help="Breach window end, excluded (ISO-8601; UTC when no zone).")
@click.option("--aware-at", "aware_at", required=True, help="When the controller became aware: the 72 hours run from it.")
@click.option("--risk", type=click.Choice(["low", "high"]), required=True, help="high: the subjects must be told (Art. 34).")
@click.option("--categories", "categories", multiple=True, help="A category known to be concerned (repeat, or a,b,c).")
@click.option("--id", "incident_id", default=None, help="The incident's id (default: a new inc-… id).")
@click.option("--at", "at", default=None, help="When the incident is recorded (default: --aware-at).")
@writer_options
def open_command(
    recipient: str, start: str, end: str, aware_at: str, risk: str, categories: tuple[str, ...], incident_id: str | None,
    at: str | None, **where: Any,
) -> None:  # fmt: skip
    """Record a breach at RECIPIENT over [--from, --to), known since --aware-at [12; GDPR Art. 33(1), 33(5)]."""
    recipient_id = checked(check_recipient_id, recipient)
    window = checked(check_window, _required(start, "--from"), _required(end, "--to"))
    aware = _required(aware_at, "--aware-at")
    ident = checked(check_id, incident_id, "--id") if incident_id else f"inc-{uuid.uuid4().hex[:12]}"
    named = [c.strip() for text in categories for c in text.split(",") if c.strip()]
    event = _event(
        ident, "opened", instant(at, "--at") or aware, recipient_id=recipient_id, window_from=window[0],
        window_to=window[1], aware_at=aware, risk=risk, categories=named,
    )  # fmt: skip
    if where["embedded"]:  # the database at hand: a recipient no table knows is a typo, as `breach` says
        from consentflow.sinks.reading import require_recipient

        with tables(where["dsn"], where["database"]) as reader:
            require_recipient(reader, recipient_id)
    else:
        _incidents_topic(where)  # a missing topic is said first
        _require_recipient_on_kafka(where, recipient_id)
    target = _record([event], where)
    from consentflow.core.incidents import authority_due

    click.echo(f"opened incident {ident} in {target}; the authority's notification is due by {when(authority_due(aware))}")


@incident_group.command("notify-authority")
@click.argument("incident_id")
@click.option("--at", "at", required=True, help="When the supervisory authority was notified (ISO-8601).")
@click.option("--reasons", default=None, help="Why later than 72 hours (Art. 33(1)): a short line or code, no personal data.")
@writer_options
def notify_authority_command(incident_id: str, at: str, reasons: str | None, **where: Any) -> None:
    """Record that the supervisory authority was notified of INCIDENT_ID [12; GDPR Art. 33(1)]."""
    ident = checked(check_id, incident_id, "INCIDENT_ID")
    event = _event(ident, "authority_notified", _required(at, "--at"), delay_reason=reasons)
    _known_incident(where, ident)
    click.echo(f"recorded the authority's notification of {ident} in {_record([event], where)}")


@incident_group.command("notify-subjects")
@click.argument("incident_id")
@click.argument("subjects", nargs=-1)
@click.option("--at", "at", required=True, help="When the subjects were told (ISO-8601).")
@click.option("--all", "everyone", is_flag=True, help="Every affected subject not told yet (from the lineage at --dsn).")
@writer_options
def notify_subjects_command(incident_id: str, subjects: tuple[str, ...], at: str, everyone: bool, **where: Any) -> None:
    """Record that SUBJECTS (or, --all, every affected subject not yet told) were told of INCIDENT_ID [GDPR Art. 34(1)]."""
    ident = checked(check_id, incident_id, "INCIDENT_ID")
    if everyone == bool(subjects):
        fail("name the subjects told, or --all (not both)")
    when_told = _required(at, "--at")
    if everyone:
        from consentflow.sinks import incident_queries

        with tables(where["dsn"], where["database"]) as reader:
            subjects = incident_queries.incident_detail(reader, ident).to_inform.not_told
        if not subjects:
            click.echo(f"every affected subject of {ident} was told already; nothing recorded")
            return
    events = [_event(ident, "subject_notified", when_told, subject_id=s) for s in dict.fromkeys(subjects)]
    if not everyone:
        _known_incident(where, ident)
    click.echo(f"recorded {len(events):,} subjects told of {ident} in {_record(events, where)}")


@incident_group.command("close")
@click.argument("incident_id")
@click.option("--at", "at", required=True, help="When the incident was closed (ISO-8601).")
@writer_options
def close_command(incident_id: str, at: str, **where: Any) -> None:
    """Record that INCIDENT_ID is closed; it stays in the register (Art. 33(5))."""
    ident = checked(check_id, incident_id, "INCIDENT_ID")
    event = _event(ident, "closed", _required(at, "--at"))
    _known_incident(where, ident)
    click.echo(f"recorded the closing of {ident} in {_record([event], where)}")


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}"


_AS_OF_HELP = "Judge at this instant (ISO-8601). Default: the pipeline's clock, the latest event time the tables hold."


@incident_group.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only incidents not closed.")
@click.option("--as-of", "as_of", default=None, help=_AS_OF_HELP)
@reader_options
def list_command(open_only: bool, as_of: str | None, dsn: str, database: str, as_json: bool) -> None:
    """The breach register: each incident's clock (hours left, negative when overdue), affected subjects and categories
    [12; GDPR Art. 33(1), 33(5)]; flagged in red: not notified in time, or late without reasons."""
    from consentflow.sinks import incident_queries

    at = instant(as_of, "--as-of")
    with tables(dsn, database) as reader:
        rows = incident_queries.incident_register(reader, at, open_only=open_only)
    if as_json:
        print_json(rows)
        return
    clock = when(rows[0].as_of) if rows else ""
    print_table(
        ("Open incidents" if open_only else "Incidents") + (f" at {clock}" if clock else "") + " [12; GDPR Art. 33]",
        ("incident", "recipient", "risk", "aware", "due", "hours left", "authority", "subjects", "categories", "told", "closed"),
        [
            (
                r.incident_id,
                r.recipient_id,
                r.risk,
                when(r.aware_at),
                when(r.authority_due),
                _hours(r.hours_left),
                r.notification.replace("_", " ") + (f" ({r.notified_after_hours:.1f} h)" if r.notified_after_hours else ""),
                f"{r.affected_subjects:,}",
                f"{len(r.affected_categories)}",
                f"{r.subjects_told:,}" if r.risk == "high" else "",
                when(r.closed_at),
            )
            for r in rows
        ],
        styles=["bold red" if r.flagged else "" for r in rows],
    )


@incident_group.command("show", short_help="One incident: its clock, its facts, whom to tell and who was told.")
@click.argument("incident_id")
@click.option("--as-of", "as_of", default=None, help=_AS_OF_HELP)
@click.option("--out", "out", default=None, help="Write the ids of the affected subjects not told yet here, one per line.")
@reader_options
def show_command(incident_id: str, as_of: str | None, out: str | None, dsn: str, database: str, as_json: bool) -> None:
    """One incident: its clock, its facts (Art. 33(5)), and for a high risk whom to tell and who was told (Art. 34(1))."""
    from consentflow.sinks import incident_queries

    ident = checked(check_id, incident_id, "INCIDENT_ID")
    at = instant(as_of, "--as-of")
    with tables(dsn, database) as reader:
        detail = incident_queries.incident_detail(reader, ident, at)
    if out is not None:
        write_output("".join(f"{s}\n" for s in detail.to_inform.not_told), out)
    if as_json:
        print_json(detail)
        return
    i, art34 = detail.incident, detail.to_inform
    print_line(
        f"[bold]{i.incident_id}[/]: a breach at [bold]{i.recipient_id}[/] from {when(i.window_from)} to {when(i.window_to)} "
        f"(excluded), risk {i.risk}; aware {when(i.aware_at)}, the authority due by {when(i.authority_due)} [{i.section}]"
    )
    state = i.notification.replace("_", " ")
    line = f"authority: {state}" + (f", {_hours(i.hours_left)} h left" if i.hours_left is not None else "")
    if i.authority_notified_at is not None:
        line += f", notified {when(i.authority_notified_at)} ({i.notified_after_hours:.1f} h after awareness)"
    if i.delay_reason:
        line += f"; reasons: {i.delay_reason}"
    print_line(("[bold red]" if i.flagged else "") + line + ("[/]" if i.flagged else ""))
    print_line(
        f"affected: {i.affected_subjects:,} subjects; categories received: "
        f"{', '.join(f'{c.category} ({c.subjects:,})' for c in i.affected_categories) or 'none'}"
        + (f"; declared: {listed(i.declared_categories)}" if i.declared_categories else "")
    )
    print_table(
        "Facts recorded (Art. 33(5))",
        ("at", "kind", "subject", "reasons"),
        [(when(f.occurred_at), f.kind, f.subject_id or "", f.delay_reason or "") for f in detail.facts],
    )
    if not art34.required:
        print_line("risk low: the subjects need not be told (Art. 34(1) asks it for a high risk)")
        return
    print_line(f"to tell (Art. 34(1)): {len(art34.affected):,}; told: {len(art34.told):,}; not yet: {len(art34.not_told):,}")
    if art34.told:
        print_table("Subjects told", ("subject", "at"), [(t.subject_id, when(t.notified_at)) for t in art34.told[:_SHOWN_IDS]])
    if out is not None:
        print_line(f"{len(art34.not_told):,} subject ids not told yet written to {out}")
    elif art34.not_told:
        more = len(art34.not_told) - _SHOWN_IDS
        print_line(
            f"Not told yet: {', '.join(art34.not_told[:_SHOWN_IDS])}"
            + (f" … and {more:,} more (--out FILE writes them all)" if more > 0 else "")
        )
