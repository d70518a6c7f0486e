"""The access export carries the subject's proof of record (issue 22): after ``consentflow run --notary-key``, the
export's ``record_proof`` (JSON from ``dsar`` and the HTTP API, and embedded in the page) is a proof
``consentflow verify-proof`` accepts with the public key alone; without a log, or for a database made before the
log, it is null; a log that cannot prove the records names why and the export still answers."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consentflow.cli import main
from consentflow.cli.notary import proof_schema
from consentflow.contracts.eventfile import read_events
from consentflow.core.checkpoint import Verifier, open_checkpoint
from consentflow.core.processor import Processor
from consentflow.generator import GeneratorConfig, generate
from consentflow.http.access_page import render_access_page
from consentflow.http.api_keys import ApiKey, KeyRing, Role, key_hash
from consentflow.http.app import create_app
from consentflow.http.context import ServerSettings
from consentflow.notary.keys import write_key_pair
from consentflow.notary.stored_log import StoredLog
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.reading import open_tables
from consentflow.sinks.subject_access import export_schema, subject_access_export
from consentflow.sinks.tables import LEDGER, LOG_LEAVES, LOG_TABLES
from consentflow.streams.embedded import run_events

AS_OF = "2023-06-01T00:00:00+00:00"  # after the generated year, so the tick emits erasure notices
API_KEY = "test-key-export-proofs"


@dataclass(frozen=True)
class SignedRun:
    dsn: str
    database: str
    public: Path
    subject: str  # one with a ledger entry and an erasure notice in the log


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events")
    path = folder / "events.avro"
    generate(GeneratorConfig(30, 365, 7, violation_share=0.05), path, folder / "truth.jsonl")
    return path


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def signed(event_file: Path, chdb_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> SignedRun:
    folder = tmp_path_factory.mktemp("keys")
    private, public = folder / "notary.key", folder / "notary.pub"
    write_key_pair("consentflow.example/log", private, public)
    ran = _invoke(
        "run", str(event_file), "--dsn", chdb_dsn, "--database", "signed", "--as-of", AS_OF, "--no-overview",
        "--notary-key", str(private),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output[-2000:]
    rows = open_tables(chdb_dsn, "signed").query(
        f"SELECT subject_id FROM {{db:Identifier}}.`{LOG_LEAVES.name}` GROUP BY subject_id "
        "HAVING countIf(kind = 'ledger') > 0 AND countIf(kind = 'notice') > 0 ORDER BY subject_id LIMIT 1"
    )
    return SignedRun(chdb_dsn, "signed", public, str(rows[0][0]))


def _dsar(run: SignedRun, *args: str) -> Any:
    return _invoke("dsar", run.subject, "--dsn", run.dsn, "--database", run.database, *args)


def _validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(export_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_exports_proof_verifies_with_the_public_key(signed: SignedRun, tmp_path: Path) -> None:
    shown = _dsar(signed)
    assert shown.exit_code == 0, shown.output[-2000:]
    export = json.loads(shown.stdout)
    _validator().validate(export)
    proof = export["record_proof"]
    assert export["record_proof_fault"] is None
    kinds = {leaf["kind"] for leaf in proof["leaves"]}
    assert proof["subject_id"] == signed.subject and proof["pending"] == 0 and kinds == {"ledger-entry", "erasure-notice"}
    # The proof is the one `consentflow proof` writes, and verify-proof accepts it from a file of its own.
    alone = _invoke("proof", signed.subject, "--dsn", signed.dsn, "--database", signed.database)
    assert alone.exit_code == 0 and json.loads(alone.stdout) == proof
    saved = tmp_path / "proof.json"
    saved.write_text(json.dumps(proof), encoding="utf-8")
    checked = _invoke("verify-proof", str(saved), "--public-key", str(signed.public))
    assert checked.exit_code == 0, checked.output
    assert f"proof holds: subject {signed.subject}; ledger entries: " in checked.output
    # An entry the export carries as evidence is one the proof proves: the ledger hash is a leaf's record.
    hashes = {e["entry_hash"] for r in export["consent_records"] for e in r["events"]}
    assert hashes and hashes <= {leaf["record"] for leaf in proof["leaves"]}


def test_the_http_export_carries_the_same_proof(signed: SignedRun) -> None:
    keys = KeyRing([ApiKey("dpo-laptop", Role.DPO, key_hash(API_KEY))])
    client = TestClient(create_app(ServerSettings(signed.dsn, signed.database, keys)))
    answer = client.get(f"/v1/subjects/{signed.subject}/access-export", headers={"X-API-Key": API_KEY})
    assert answer.status_code == 200, answer.text
    expected = subject_access_export(
        open_tables(signed.dsn, signed.database), signed.subject, log=StoredLog(open_tables(signed.dsn, signed.database))
    )
    assert answer.json()["record_proof"] == expected["record_proof"] is not None
    page = client.get(f"/subjects/{signed.subject}/access", headers={"X-API-Key": API_KEY})
    assert page.status_code == 200 and "Proof of this record" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def _embedded_json(page: str) -> Any:
    (text,) = re.findall(r"<pre>(.*?)</pre>", page, flags=re.DOTALL)
    return json.loads(html.unescape(text))


def test_the_page_says_what_is_proven_under_which_checkpoint_and_how_to_check(signed: SignedRun, tmp_path: Path) -> None:
    out = tmp_path / "access.html"
    written = _dsar(signed, "--format", "html", "--out", str(out))
    assert written.exit_code == 0, written.output
    page = out.read_text(encoding="utf-8")
    proof = json.loads(_dsar(signed).stdout)["record_proof"]
    entries = sum(leaf["kind"] == "ledger-entry" for leaf in proof["leaves"])
    notices = len(proof["leaves"]) - entries
    assert f"<strong>{entries}</strong> ledger entries and <strong>{notices}</strong> erasure notices" in page
    (item,) = proof["checkpoints"]
    checkpoint = open_checkpoint(item["note"], Verifier.parse(signed.public.read_text()))
    signed_at = checkpoint.time.strftime("%Y-%m-%d %H:%M:%S UTC") if checkpoint.time else "—"
    assert f"<td>embedded</td><td>{checkpoint.origin}</td><td>{checkpoint.size}</td><td>{signed_at}</td>" in page
    assert "consentflow verify-proof proof.json --public-key KEY" in page
    # The JSON embedded, unescaped, is the proof itself: saved as a file, verify-proof accepts it.
    assert _embedded_json(page) == proof
    saved = tmp_path / "proof.json"
    saved.write_text(json.dumps(_embedded_json(page)), encoding="utf-8")
    assert _invoke("verify-proof", str(saved), "--public-key", str(signed.public)).exit_code == 0
    lowered = page.lower()
    for external in ("<script", "<link", "<img", "src=", "href=", "@import", "url("):
        assert external not in lowered, external


def test_the_page_escapes_the_proof_it_embeds(signed: SignedRun) -> None:
    export = subject_access_export(
        open_tables(signed.dsn, signed.database), signed.subject, log=StoredLog(open_tables(signed.dsn, signed.database))
    )
    hostile = "</pre><script>alert(1)</script>"
    export["record_proof"]["checkpoints"][0]["log"] = hostile
    page = render_access_page(export)
    assert hostile not in page and "<script" not in page.lower()
    assert _embedded_json(page)["checkpoints"][0]["log"] == hostile


def test_without_a_log_the_proof_is_null(event_file: Path, chdb_dsn: str, database: str) -> None:
    run_events(read_events(event_file), Processor(), ClickHouseSink(chdb_dsn, database), as_of=datetime.fromisoformat(AS_OF))
    reader = open_tables(chdb_dsn, database)
    subject = str(reader.query(f"SELECT any(subject_id) FROM {{db:Identifier}}.`{LEDGER.name}`")[0][0])
    shown = _invoke("dsar", subject, "--dsn", chdb_dsn, "--database", database)
    assert shown.exit_code == 0, shown.output
    export = json.loads(shown.stdout)
    assert (export["record_proof"], export["record_proof_fault"]) == (None, None)
    _validator().validate(export)
    assert "No proof of record" in render_access_page(export)
    # A database made before the log has no log tables at all: the same answer, not an error.
    for table in LOG_TABLES:
        reader.query(f"DROP TABLE {{db:Identifier}}.`{table.name}`")
    before = subject_access_export(reader, subject, log=StoredLog(reader))
    assert (before["record_proof"], before["record_proof_fault"]) == (None, None)


def test_a_log_that_cannot_prove_the_record_says_why_and_the_export_stands(signed: SignedRun, chdb_dsn: str) -> None:
    reader = open_tables(signed.dsn, signed.database)
    other = str(
        reader.query(
            f"SELECT subject_id FROM {{db:Identifier}}.`{LOG_LEAVES.name}` WHERE kind = 'ledger' AND subject_id != {{s:String}} "
            "ORDER BY subject_id DESC LIMIT 1",
            {"s": signed.subject},
        )[0][0]
    )
    reader.query(
        f"ALTER TABLE {{db:Identifier}}.`{LEDGER.name}` UPDATE source_service = 'rewritten' WHERE subject_id = {{s:String}} "
        "SETTINGS mutations_sync = 1",
        {"s": other},
    )
    shown = _invoke("dsar", other, "--dsn", chdb_dsn, "--database", signed.database)
    assert shown.exit_code == 0, shown.output
    export = json.loads(shown.stdout)
    _validator().validate(export)
    assert export["record_proof"] is None and export["consent_records"]
    assert re.fullmatch(
        r"the consent log cannot prove the record: leaf \d+ of log 'embedded' \(ledger-entry [0-9a-f]{64}\): .* altered\)",
        export["record_proof_fault"],
    )
    assert '<p class="alert">No proof of record: the consent log cannot prove the record: leaf ' in render_access_page(export)


def test_the_v2_schema_embeds_the_proof_schema_and_still_takes_an_export_made_before(signed: SignedRun) -> None:
    schema = export_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["subject_log_proof"] == proof_schema()
    assert not {"record_proof", "record_proof_fault"} & set(schema["required"])
    export = json.loads(_dsar(signed).stdout)
    before = {k: v for k, v in export.items() if not k.startswith("record_proof")}
    _validator().validate(before)
    broken = json.loads(json.dumps(export))
    broken["record_proof"]["leaves"][0]["inclusion"].append("not a hash")
    assert not _validator().is_valid(broken)
    del broken["record_proof"]["pending"]
    assert not _validator().is_valid(broken)
