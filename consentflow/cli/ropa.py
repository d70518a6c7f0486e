"""``consentflow ropa``: the record of processing activities (GDPR Art. 30) as CSV or JSON.

Built from the policy (purposes, legal bases, retention [2.3]), the recipient
registry and the observed lineage (``sinks.record_of_processing``). Read-only;
registered on ``consentflow.cli.main``.
"""

from __future__ import annotations

import json

import click

from consentflow.cli.dpo_output import tables, write_output
from consentflow.cli.shared import DEFAULT_DATABASE, DEFAULT_DSN


@click.command("ropa")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the record here instead of stdout.")
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
def ropa_command(fmt: str, out: str | None, dsn: str, database: str) -> None:
    """The Art. 30 record: one row per purpose and recipient, policy and registry beside what the lineage shows, with findings."""
    from consentflow.sinks.record_of_processing import record_of_processing, ropa_csv

    with tables(dsn, database) as sink:
        record = record_of_processing(sink)
    text = ropa_csv(record["rows"]) if fmt == "csv" else json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    write_output(text, out)
