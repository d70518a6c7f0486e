"""The DPO's ``consent`` command: a subject's consent per purpose at any instant, with the evidence [6].

Read-only; checks its arguments, asks ``sinks.consent_queries`` and prints rich
tables or, with ``--json``, the answer as JSON.
"""

from __future__ import annotations

import click

from consentflow.cli.dpo_output import checked, instant, print_json, print_table, reader_options, tables, when
from consentflow.contracts.query_arguments import check_subject_id, now_unless, parse_purpose
from consentflow.sinks import consent_queries
from consentflow.sinks.answers import PurposeConsent

_STATE_STYLE = {"granted": "green", "withdrawn": "yellow", "refused": "red", "never_asked": "dim"}


@click.command("consent")
@click.argument("subject")
@click.option("--purpose", default=None, help="Only this purpose (the policy's words, e.g. marketing).")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="As it stood at this instant (ISO-8601; UTC when no zone). Default: now; facts dated later are left out.",
)
@reader_options
def consent_command(subject: str, purpose: str | None, as_of: str | None, dsn: str, database: str, as_json: bool) -> None:
    """SUBJECT's consent state per purpose (event time decides) and every fact behind it, with its evidence [6]."""
    subject_id = checked(check_subject_id, subject)
    only = None if purpose is None else checked(parse_purpose, purpose)
    at = now_unless(instant(as_of, "--as-of"))
    with tables(dsn, database) as sink:
        answer = consent_queries.consent(sink, subject_id, only, at)
    if as_json:
        print_json(answer)
        return
    print_table(
        f"Consent of {subject_id}" + (f" as of {when(at)}" if at else ""),
        ("purpose", "state", "since", "needs consent", "facts"),
        [(p.purpose, _state(p), when(p.since), "yes" if p.needs_consent else "no", str(len(p.history))) for p in answer.purposes],
        styles=["yellow" if p.awaiting_reconsent else _STATE_STYLE.get(p.state, "") for p in answer.purposes],
    )
    facts = [f for p in answer.purposes for f in p.history]
    print_table(
        "Evidence (ledger, event time order per purpose)",
        ("purpose", "occurred", "action", "channel", "policy", "service", "notice", "source", "seq", "entry hash"),
        [
            (
                f.purpose,
                when(f.occurred_at),
                f.action,
                f.channel,
                f.policy_version,
                f.source_service,
                f.notice_id or "",
                "" if f.source_topic is None else f"{f.source_topic}[{f.source_partition}]@{f.source_offset}",
                str(f.sequence),
                f.entry_hash[:12],
            )
            for f in facts
        ],
    )


def _state(p: PurposeConsent) -> str:
    """The state as a person reads it: a grant a later policy version asks again says so [13]."""
    if p.awaiting_reconsent is None:
        return p.state
    return f"{p.state}, awaiting re-consent (version {p.awaiting_reconsent})"
