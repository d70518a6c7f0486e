"""``consentflow dsar SUBJECT``: the subject's access and portability export [8.1, 12; GDPR Art. 15, 20].

JSON (``SubjectAccessExport/v3``, the machine-readable copy a subject may take
elsewhere) or one self-contained HTML page (the readable copy). Read-only;
every argument is checked before ClickHouse is touched, and every failure ends
with one line and a non-zero exit. Registered on ``consentflow.cli.main``.
"""

from __future__ import annotations

import json

import click

from consentflow.cli.dpo_output import checked, instant, tables, write_output
from consentflow.cli.shared import DEFAULT_DATABASE, DEFAULT_DSN
from consentflow.contracts.query_arguments import check_subject_id, now_unless


@click.command("dsar")
@click.argument("subject")
@click.option("--format", "fmt", type=click.Choice(["json", "html"]), default="json", show_default=True)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="As it stood at this instant (ISO-8601; UTC when no zone). Default: now; facts dated later are left out.",
)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the export here instead of stdout.")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def dsar_command(subject: str, fmt: str, as_of: str | None, out: str | None, dsn: str, database: str) -> None:
    """SUBJECT's access and portability export: data held, consents with evidence, recipients, countries, retention,
    and the proof of record in the consent log (for `verify-proof`)."""
    from consentflow.http.access_page import render_access_page
    from consentflow.notary.stored_log import StoredLog
    from consentflow.sinks.subject_access import subject_access_export

    subject_id = checked(check_subject_id, subject)
    at = now_unless(instant(as_of, "--as-of"))
    with tables(dsn, database) as sink:
        export = subject_access_export(sink, subject_id, at, log=StoredLog(sink))
    text = json.dumps(export, indent=2, ensure_ascii=False) + "\n" if fmt == "json" else render_access_page(export)
    write_output(text, out)
