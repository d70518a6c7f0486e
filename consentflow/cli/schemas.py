"""``consentflow schemas list``: every released Avro contract with the fingerprint its messages carry (issue 23)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def schemas() -> None:
    """The Avro contracts messages are written with (``schemas/<Record>/vN.avsc``)."""


@schemas.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A schemas/ folder to read instead of the installed one.",
)
def schemas_list(as_json: bool, root: Path | None) -> None:
    """Each contract, its version, its fingerprint and its file, oldest version first.

    The fingerprint is CRC-64-AVRO of the schema's Parsing Canonical Form, as Java's
    ``SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema)`` computes it: 16 hex digits of its 8 bytes
    in the order Avro single-object encoding writes them after ``c3 01``, and the ``consentflow.schema.fingerprint``
    header says. (The Python ``avro`` library's fingerprints differ for a schema with a logical type: README.)
    """
    from consentflow.contracts.headers import fingerprint_hex
    from consentflow.contracts.releases import ContractStore, default_store

    store = default_store() if root is None else ContractStore(root)
    rows = [(c.full_name, c.version, fingerprint_hex(c), str(c.path)) for c in store.all()]
    if as_json:
        for name, version, fingerprint, file in rows:
            click.echo(json.dumps({"contract": name, "version": version, "fingerprint": fingerprint, "file": file}))
        return
    width = max([len("contract"), *(len(r[0]) for r in rows)])
    click.echo(f"{'contract':{width}}  version  {'fingerprint':16}  file")
    for name, version, fingerprint, file in rows:
        click.echo(f"{name:{width}}  {version:>7}  {fingerprint}  {file}")
