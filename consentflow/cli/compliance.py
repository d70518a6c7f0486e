"""The DPO's to-do commands: ``violations``, ``retention due`` [2.3], ``erasure-notices`` [12].

Read-only; each checks its arguments, asks ``sinks.compliance_queries`` and
prints rich tables or, with ``--json``, the answer as JSON.
"""

from __future__ import annotations

import click

from consentflow.cli.dpo_output import checked, instant, listed, print_json, print_table, reader_options, tables, when
from consentflow.contracts.query_arguments import check_subject_id, parse_rule
from consentflow.sinks import compliance_queries


@click.command("violations")
@click.option("--since", default=None, help="Only violations that occurred at or after this instant (ISO-8601).")
@click.option("--rule", default=None, help="Only this rule (e.g. marketing_without_consent).")
@reader_options
def violations_command(since: str | None, rule: str | None, dsn: str, database: str, as_json: bool) -> None:
    """Violations whose latest verdict stands (retracted ones are left out), oldest first."""
    start = instant(since, "--since")
    only = None if rule is None else checked(parse_rule, rule)
    with tables(dsn, database) as sink:
        rows = compliance_queries.violations(sink, start, only)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"Active violations ({len(rows):,})",
        ("occurred", "rule", "section", "subject", "recipient", "purpose", "categories", "evidence", "detail"),
        [
            (
                when(v.occurred_at),
                v.rule,
                v.policy_section,
                v.subject_id,
                v.recipient_id or "",
                v.purpose or "",
                listed(v.categories),
                ", ".join(v.evidence_event_ids),
                v.detail,
            )
            for v in rows
        ],
    )


@click.group("retention")
def retention() -> None:
    """Retention actions [2.3]."""


@retention.command("due")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Due at or before this instant, past or future (ISO-8601; UTC when no zone). Default: now.",
)
@reader_options
def retention_due_command(as_of: str | None, dsn: str, database: str, as_json: bool) -> None:
    """Retention actions due at or before --as-of: archive, anonymise, keep for the legal period, delete [2.3].

    Read from each subject's retention plan (its latest holdings record) and the actions the pipeline emitted: an
    action due after the pipeline's clock is listed, marked not yet emitted. "plan as of" is the latest event time
    the subject's plan was computed on.
    """
    at = instant(as_of, "--as-of")
    with tables(dsn, database) as sink:
        rows = compliance_queries.retention_due(sink, at)
    if as_json:
        print_json(rows)
        return
    clocks = [r.planned_as_of for r in rows if r.planned_as_of is not None]
    waiting = sum(not r.emitted for r in rows)
    print_table(
        f"Retention actions due ({len(rows):,}; {waiting:,} not yet emitted"
        + (f"; plans on events up to {when(max(clocks))})" if clocks else ")"),
        ("due", "subject", "action", "categories", "section", "reason", "emitted", "plan as of"),
        [
            (
                when(r.due_at),
                r.subject_id,
                r.action,
                listed(r.categories),
                r.policy_section,
                r.reason,
                "yes" if r.emitted else "not yet",
                when(r.planned_as_of),
            )
            for r in rows
        ],
    )


@click.command("erasure-notices")
@click.argument("subject")
@reader_options
def erasure_notices_command(subject: str, dsn: str, database: str, as_json: bool) -> None:
    """The notices telling SUBJECT's recipients what to erase, each at its latest revision [12; GDPR Art. 19]."""
    subject_id = checked(check_subject_id, subject)
    with tables(dsn, database) as sink:
        rows = compliance_queries.erasure_notices(sink, subject_id)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"Erasure notices for {subject_id}",
        ("recipient", "erase", "retained [2.3.2]", "request", "requested", "fulfilled", "notice"),
        [
            (
                n.recipient_id,
                listed(n.categories),
                listed(n.retained_categories),
                n.request_id,
                when(n.requested_at),
                when(n.fulfilled_at),
                n.notice_id,
            )
            for n in rows
        ],
    )
