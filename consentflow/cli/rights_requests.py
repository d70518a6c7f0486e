"""``consentflow requests``: rights requests against their legal deadlines [8.2; GDPR Art. 12(3), 12(4)].

Read-only, like the DPO's other commands: checks its arguments, asks ``sinks.request_queries`` and prints a table or,
with ``--json``, the answer as JSON.
"""

from __future__ import annotations

import click

from consentflow.cli.dpo_output import instant, print_json, print_table, reader_options, tables, when
from consentflow.contracts.query_arguments import now_unless
from consentflow.sinks import request_queries
from consentflow.sinks.answers import RightsRequestRow


@click.command("requests")
@click.option("--open", "open_only", is_flag=True, help="Only requests on the one-month clock with no outcome yet.")
@click.option("--overdue", "overdue_only", is_flag=True, help="Only those answered late, or open past their due date.")
@click.option(
    "--due-before", "due_before", default=None, help="Only those whose time limit expires before this instant (ISO-8601)."
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="As they stood at this instant (ISO-8601; UTC when no zone): open, overdue. Default: now.",
)
@reader_options
def requests_command(
    open_only: bool, overdue_only: bool, due_before: str | None, as_of: str | None, dsn: str, database: str, as_json: bool
) -> None:
    """Rights requests with their due dates: one month from receipt (GDPR Art. 12(3)), counted as Regulation 1182/71
    counts periods in the controller's calendar, extended by up to two months when notified in time; earliest due first.
    """
    before = instant(due_before, "--due-before")
    at = now_unless(instant(as_of, "--as-of"))
    with tables(dsn, database) as sink:
        rows = request_queries.rights_requests(sink, open_only=open_only, overdue_only=overdue_only, due_before=before, as_of=at)
    if as_json:
        print_json(rows)
        return
    overdue = sum(r.overdue for r in rows)
    print_table(
        f"Rights requests ({len(rows):,}; {overdue:,} overdue as of {when(at)})",
        ("subject", "request", "right", "state", "received", "identity", "last day", "extension", "outcome", "overdue"),
        [
            (
                r.subject_id,
                r.request_id,
                r.right,
                r.state,
                when(r.received_at) if r.received_at else "",
                _identity(r),
                r.last_day or "",
                (f"+{r.extension_months} month(s)" if r.extension_months else "")
                + (" (refused: notified late)" if r.extension_refused else ""),
                f"{r.outcome} {when(r.outcome_at)}" if r.outcome and r.outcome_at else "",
                ("late" if r.late else "yes") if r.overdue else "",
            )
            for r in rows
        ],
    )


def _identity(r: RightsRequestRow) -> str:
    """The identity check [Art. 12(6)]: when verified (the month runs from then), or asked and awaited."""
    if r.identity_verified_at is not None:
        return f"verified {when(r.identity_verified_at)}"
    return "asked, awaited" if r.identity_requested_at is not None else ""
