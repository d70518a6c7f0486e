"""The DPO's lineage commands: ``who-has``, ``countries``, ``breach``, ``transfers`` [4, 7, 12].

Read-only; each checks its arguments, asks ``sinks.lineage_queries`` and prints
rich tables or, with ``--json``, the answer as JSON.
"""

from __future__ import annotations

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
from consentflow.contracts.query_arguments import check_recipient_id, check_subject_id, check_window, now_unless
from consentflow.sinks import lineage_queries

#: How many subject ids ``breach`` prints without ``--out``.
_SHOWN_IDS = 20


@click.command("who-has")
@click.argument("subject")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="As it stood at this instant (ISO-8601; UTC when no zone). Default: now; facts dated later are left out.",
)
@reader_options
def who_has_command(subject: str, as_of: str | None, dsn: str, database: str, as_json: bool) -> None:
    """Every recipient of SUBJECT's data: categories, purposes, country, transfer mechanism [4, 7]."""
    subject_id = checked(check_subject_id, subject)
    at = now_unless(instant(as_of, "--as-of"))
    with tables(dsn, database) as sink:
        holdings = lineage_queries.who_has(sink, subject_id, at)
    if as_json:
        print_json({"subject_id": subject_id, "as_of": at, "recipients": holdings})
        return
    print_table(
        f"Recipients of {subject_id}'s data" + (f" as of {when(at)}" if at else ""),
        ("recipient", "kind", "country", "mechanisms", "categories", "purposes", "first", "last"),
        [
            (
                h.recipient_id,
                h.recipient_kind,
                h.country or "unknown",
                listed(h.mechanisms),
                listed(h.categories),
                listed(h.purposes),
                when(h.first),
                when(h.last),
            )
            for h in holdings
        ],
    )


@click.command("countries")
@click.argument("subject")
@reader_options
def countries_command(subject: str, dsn: str, database: str, as_json: bool) -> None:
    """Where SUBJECT's data is stored and every country it was sent to [7]."""
    subject_id = checked(check_subject_id, subject)
    with tables(dsn, database) as sink:
        answer = lineage_queries.countries(sink, subject_id)
    if as_json:
        print_json(answer)
        return
    print_table(
        f"Countries where {subject_id}'s data is stored (privacy policy [7]; hosting subcontractors [4.3])",
        ("country", "EU/EEA", "stored by", "recipients", "check [7]"),
        [
            (
                c.country,
                "yes" if c.in_eea else "no",
                listed(c.stored_by),
                listed(c.recipients),
                "OUTSIDE THE EU: 'We keep your Personal Data in the European Union'" if c.outside_eu_flagged else "ok",
            )
            for c in answer.storage
        ],
        styles=["bold red" if c.outside_eu_flagged else "" for c in answer.storage],
    )
    print_table(
        f"Countries {subject_id}'s data was sent to",
        ("country", "EU/EEA", "recipients", "mechanisms", "edges", "first", "last"),
        [
            (
                c.country or "unknown (unregistered recipient)",
                "yes" if c.in_eea else "no",
                listed(c.recipients),
                listed(c.mechanisms),
                f"{c.edges:,}",
                when(c.first),
                when(c.last),
            )
            for c in answer.sent
        ],
    )


@click.command("breach")
@click.argument("recipient")
@click.option("--from", "start", required=True, help="Window start, included (ISO-8601; UTC when no zone).")
@click.option("--to", "end", required=True, help="Window end, excluded (ISO-8601; UTC when no zone).")
@click.option("--out", "out", default=None, help="Write the subject ids here, one per line.")
@reader_options
def breach_command(recipient: str, start: str, end: str, out: str | None, dsn: str, database: str, as_json: bool) -> None:
    """Subjects and categories RECIPIENT received in [--from, --to): who a breach there concerns [12]."""
    recipient_id = checked(check_recipient_id, recipient)
    window = checked(check_window, instant(start, "--from"), instant(end, "--to"))
    with tables(dsn, database) as sink:
        impact = lineage_queries.breach(sink, recipient_id, *window)
    if out is not None:
        write_output("".join(f"{subject}\n" for subject in impact.subject_ids), out)
    if as_json:
        print_json(impact)
        return
    print_line(
        f"[bold]{recipient_id}[/] received data of [bold]{impact.subjects:,}[/] subjects ({impact.edges:,} edges) "
        f"from {when(impact.start)} to {when(impact.end)} (excluded)"
    )
    print_table("Categories received", ("category", "subjects"), [(c.category, f"{c.subjects:,}") for c in impact.categories])
    if out is not None:
        print_line(f"{len(impact.subject_ids):,} subject ids written to {out}")
    elif impact.subject_ids:
        shown = ", ".join(impact.subject_ids[:_SHOWN_IDS])
        more = len(impact.subject_ids) - _SHOWN_IDS
        print_line(f"Subjects: {shown}" + (f" … and {more:,} more (--out FILE writes them all)" if more > 0 else ""))


@click.command("transfers")
@click.option("--outside-eea", "outside_eea", is_flag=True, help="Only transfers out of the EU/EEA (and to unknown countries).")
@reader_options
def transfers_command(outside_eea: bool, dsn: str, database: str, as_json: bool) -> None:
    """Transfers by country, recipient and mechanism; those nothing frames out of the EU/EEA in red [7]."""
    with tables(dsn, database) as sink:
        rows = lineage_queries.transfers(sink, outside_eea=outside_eea)
    if as_json:
        print_json(rows)
        return
    print_table(
        "Transfers outside the EU/EEA [7]" if outside_eea else "Transfers by country [7]",
        ("country", "recipient", "mechanism", "framed", "edges", "subjects", "first", "last"),
        [
            (
                t.country or "unknown",
                t.recipient_id,
                t.mechanism,
                "yes" if t.framed else "NO",
                f"{t.edges:,}",
                f"{t.subjects:,}",
                when(t.first),
                when(t.last),
            )
            for t in rows
        ],
        styles=["" if t.framed else "bold red" for t in rows],
    )
