"""Free text made safe where it leaves (issue 21): CSV cells never run as formulas; names never hold controls.

A recipient named ``=cmd|' /C calc'!A0`` came out verbatim in ``GET /v1/ropa?format=csv``
(a formula when the DPO opens it in a spreadsheet); U+202E reversed a name on
the access export; a NUL byte reached the CLI's HTML file. Now every CSV cell
that starts like a formula gets OWASP's single quote, over HTTP and on the
command line, and a name holding a control character, NUL or a bidirectional
control is refused at the one edge every way in passes (the registry file, the
constructors, the gate), naming the field.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import data_disclosed, recipient_registered
from consentflow.contracts.gate import Gate
from consentflow.contracts.registry_file import RegistryFileError, load_registry_file
from consentflow.contracts.topics import RECIPIENTS
from consentflow.core.processor import Processor
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash, new_key
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.policy.vocabulary import DataCategory, LegalBasis, Purpose, RecipientKind
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.csv_cells import spreadsheet_safe
from consentflow.streams.embedded import run_events

DPO = new_key()
#: Names a spreadsheet would run, by id; and one it shows as it is.
FORMULAS = {
    "calc-fr": "=cmd|' /C calc'!A0",
    "sum-fr": "@SUM(1+1)*cmd|' /C calc'!A0",
    "plus-fr": "+33 1 23 45 67 89",
    "minus-fr": "-2+3+cmd|' /C calc'!A0",
}
PLAIN = {"acme-fr": "Acme SA", "societe-fr": "Société Générale"}
T0 = datetime(2021, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def database(chdb_dsn: str) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    events = []
    for number, (recipient, label) in enumerate({**FORMULAS, **PLAIN}.items()):
        events.append(
            recipient_registered(
                recipient,
                name=label,
                kind=RecipientKind.CORPORATE_CUSTOMER,
                country="FR",
                allowed_purposes=[Purpose.CONTRACT_INTRODUCTIONS],
                source_service="vendor-registry",
                occurred_at=T0,
            )
        )
        events.append(
            data_disclosed(
                f"subj-{number}",
                recipient,
                [DataCategory.CONTACT],
                purpose=Purpose.CONTRACT_INTRODUCTIONS,
                legal_basis=LegalBasis.CONTRACT,
                source_service="matching",
                occurred_at=T0 + timedelta(days=1),
            )
        )
    run_events(((e.topic, e.record) for e in events), Processor(), ClickHouseSink(chdb_dsn, name))
    return name


def _names_by_recipient(text: str) -> dict[str, str]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {row["recipient_id"]: row["recipient_name"] for row in rows if row["recipient_id"]}


def _expected() -> dict[str, str]:
    return {**{r: "'" + name for r, name in FORMULAS.items()}, **PLAIN}


def test_the_record_of_processing_as_csv_over_http_quotes_every_formula(chdb_dsn: str, database: str) -> None:
    keys = KeyRing([ApiKey("dpo", Role.DPO, key_hash(DPO))])
    with TestClient(create_app(ServerSettings(chdb_dsn, database, keys))) as api:
        answer = api.get("/v1/ropa", params={"format": "csv"}, headers={"X-API-Key": DPO})
        as_json = api.get("/v1/ropa", headers={"X-API-Key": DPO}).json()
    assert answer.status_code == 200, answer.text
    assert _names_by_recipient(answer.text) == _expected()
    # JSON is not a spreadsheet: its names stay as the registry gave them.
    assert {r["recipient_id"]: r["recipient_name"] for r in as_json["rows"] if r["recipient_id"]} == {**FORMULAS, **PLAIN}


def test_the_record_of_processing_as_csv_on_the_command_line_quotes_every_formula(chdb_dsn: str, database: str) -> None:
    result = CliRunner().invoke(main, ["ropa", "--format", "csv", "--dsn", chdb_dsn, "--database", database])
    assert result.exit_code == 0, result.output
    assert _names_by_recipient(result.stdout) == _expected()


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=1", "a=1"),
        ("", ""),
        ("'=1", "'=1"),
    ],
)
def test_spreadsheet_safe_follows_owasps_rule(cell: str, shown: str) -> None:
    assert spreadsheet_safe(cell) == shown


UNPRINTABLE = [
    ("Acme\u202eAS", "U+202E, a bidirectional control, at 4"),
    ("Acme\u2066SA", "U+2066, a bidirectional control, at 4"),
    ("Acme\u200fSA", "U+200F, a bidirectional control, at 4"),
    ("Acme\x00SA", "U+0000, a control character, at 4"),
    ("Acme\tSA", "U+0009, a control character, at 4"),
    ("Acme\nSA", "U+000A, a control character, at 4"),
    ("Acme\x1bSA", "U+001B, a control character, at 4"),
]


@pytest.mark.parametrize(("name", "words"), UNPRINTABLE)
def test_a_name_holding_a_control_is_refused_by_the_constructor_and_the_gate(name: str, words: str) -> None:
    fields: dict[str, Any] = {
        "kind": RecipientKind.CORPORATE_CUSTOMER,
        "country": "FR",
        "allowed_purposes": [Purpose.MARKETING],
        "source_service": "vendor-registry",
        "occurred_at": T0,
    }
    with pytest.raises(ContractError) as constructed:
        recipient_registered("acme-fr", name=name, **fields)
    assert constructed.value.field == "name" and words in str(constructed.value)
    record = dict(recipient_registered("acme-fr", name="Acme SA", **fields).record, name=name)
    with pytest.raises(ContractError) as gated:  # what a worker, a replay or the sink reads from Kafka
        Gate().check(RECIPIENTS, record, T0 + timedelta(days=1))
    assert gated.value.field == "name" and words in str(gated.value)


@pytest.mark.parametrize(("escaped", "words"), [("Acme\\u202EAS", "U+202E"), ("Acme\\0SA", "U+0000"), ("Acme\\x85SA", "U+0085")])
def test_a_registry_file_with_such_a_name_is_refused_naming_the_entry_and_field(tmp_path: Path, escaped: str, words: str) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "recipients:\n"
        f'  - {{recipient_id: acme-fr, name: "{escaped}", kind: corporate_customer, country: FR,'
        " since: 2021-01-03T00:00:00Z, allowed_purposes: [marketing]}\n",
        encoding="utf-8",
    )
    with pytest.raises(RegistryFileError) as caught:
        load_registry_file(registry)
    assert f"entry 1 (acme-fr): field name: a recipient name holds {words}" in str(caught.value)


def test_names_in_any_script_still_pass() -> None:
    """Nothing accepted before is lost but the controls: letters, marks and punctuation of every script pass."""
    for name in ("Société Générale", "東京海上", "شركة الاتصالات", "Ελληνικά Α.Ε.", "O'Brien & Sons (UK) Ltd.", "=Formula Ltd"):
        event = recipient_registered(
            "acme-fr",
            name=name,
            kind=RecipientKind.CORPORATE_CUSTOMER,
            country="FR",
            allowed_purposes=[Purpose.MARKETING],
            source_service="vendor-registry",
        )
        assert event.record["name"] == name
