"""``consentflow policy versions`` and ``consentflow policy diff A B``: the policy versions shipped as data [13].

Read-only, from the policy files (``consentflow/policy/policies/``); no database.
"""

from __future__ import annotations

from datetime import datetime

import click

from consentflow.cli.dpo_output import print_json, print_table, when
from consentflow.cli.options import INSTANT
from consentflow.cli.shared import fail
from consentflow.contracts.query_arguments import now_unless
from consentflow.policy.diff import policy_diff, summary
from consentflow.policy.versions import PolicyError, PolicyHistory, load_history


@click.group("policy")
def policy_group() -> None:
    """The privacy policy's versions: when each takes effect, which consents it asks again, what changed [13]."""


def _status(history: PolicyHistory, index: int, at: datetime) -> str:
    """Where version ``index`` stands at ``at``: in force, superseded or upcoming."""
    in_force = history.index_in_force(at)
    return "in force" if index == in_force else "superseded" if index < in_force else "upcoming"


@policy_group.command("versions")
@click.option(
    "--as-of",
    "as_of",
    type=INSTANT,
    default=None,
    help="Which version is in force at this instant (ISO-8601; UTC when no zone). Default: now.",
)
@click.option("--json", "as_json", is_flag=True, help="The answer as JSON.")
def versions_command(as_of: datetime | None, as_json: bool) -> None:
    """Each policy version, the day it takes effect (00:00 in the controller's time zone), the purposes whose
    consent it asks again, and whether it is in force."""
    history = load_history()
    at = now_unless(as_of)
    rows = [(summary(p), p.effective_at, _status(history, index, at)) for index, p in enumerate(history.versions)]
    if as_json:
        print_json(
            [
                {
                    "version": s.version,
                    "effective_from": s.effective_from.isoformat(),
                    "effective_at": start.isoformat(),
                    "reconsent": list(s.reconsent),
                    "status": status,
                }
                for s, start, status in rows
            ]
        )
        return
    print_table(
        f"Policy versions as of {when(at)}",
        ("version", "effective from", "from (UTC)", "asks consent again", "status"),
        [
            (s.version, s.effective_from.isoformat(), when(start), ", ".join(s.reconsent) or "-", status)
            for s, start, status in rows
        ],
        styles=["bold" if status == "in force" else "" for _, _, status in rows],
    )


@policy_group.command("diff")
@click.argument("before")
@click.argument("after")
@click.option("--json", "as_json", is_flag=True, help="The answer as JSON.")
def diff_command(before: str, after: str, as_json: bool) -> None:
    """What changed from policy version BEFORE to version AFTER: purposes needing consent, legal bases, cookie
    purposes, what other users may see, identity documents, storage countries, retention periods, and the
    consents AFTER asks again of a subject who gave them under BEFORE [13]."""
    try:
        answer = policy_diff(load_history(), before, after)
    except PolicyError as exc:
        fail(str(exc))
    if as_json:
        print_json(answer)
        return
    a, b = answer.before, answer.after
    print_table(
        f"Policy {a.version} (from {a.effective_from}) -> {b.version} (from {b.effective_from})",
        ("rule", "item", a.version, b.version, "section"),
        [(c.what, c.item, c.before or "-", c.after or "-", c.section) for c in answer.changes],
    )
    if answer.reconsent:
        click.echo(
            f"Asked again [13]: consent to {', '.join(answer.reconsent)} given before {b.effective_from} "
            f"under {a.version} stops counting on that day."
        )
    if not answer.changes:
        click.echo("No rule differs.")
