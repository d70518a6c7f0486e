"""``consentflow proof`` and ``consentflow checkpoint latest`` over a ``consentflow run --notary-key`` database: the
proof written verifies with ``consentflow verify-proof`` and the public key alone; a subject without leaves is one
line; the latest checkpoint printed is the log's signed note."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from consentflow.contracts.eventfile import read_events
from consentflow.contracts.topics import CONSENT
from consentflow.core.checkpoint import Verifier, open_checkpoint
from consentflow.generator import GeneratorConfig, generate
from consentflow.notary.keys import write_key_pair


@dataclass(frozen=True)
class SignedRun:
    dsn: str
    public: Path
    subject: str  # one with consent events, so with ledger entries


def _consentflow(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consentflow.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory: pytest.TempPathFactory) -> SignedRun:
    folder = tmp_path_factory.mktemp("signed")
    events = folder / "events.avro"
    generate(GeneratorConfig(30, 365, 7, violation_share=0.05), events, folder / "truth.jsonl")
    private, public = folder / "notary.key", folder / "notary.pub"
    write_key_pair("consentflow.example/log", private, public)
    dsn = f"chdb://{folder / 'chdb'}"
    ran = _consentflow("run", str(events), "--dsn", dsn, "--no-overview", "--notary-key", str(private))
    assert ran.returncode == 0, ran.stderr[-2000:]
    subject = next(record["subject_id"] for topic, record in read_events(events) if topic == CONSENT)
    return SignedRun(dsn, public, subject)


def test_the_proof_written_verifies_with_the_public_key(signed_run: SignedRun, tmp_path: Path) -> None:
    out = tmp_path / "proof.json"
    written = _consentflow("proof", signed_run.subject, "--dsn", signed_run.dsn, "--out", str(out))
    assert written.returncode == 0, written.stderr[-2000:]
    document = json.loads(out.read_text())
    assert document["subject_id"] == signed_run.subject and document["leaves"] and document["pending"] == 0
    checked = _consentflow("verify-proof", str(out), "--public-key", str(signed_run.public))
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert f"proof holds: subject {signed_run.subject}" in checked.stdout

    shown = _consentflow("proof", signed_run.subject, "--dsn", signed_run.dsn)
    assert shown.returncode == 0 and json.loads(shown.stdout) == document


def test_a_subject_without_leaves_is_one_line(signed_run: SignedRun) -> None:
    refused = _consentflow("proof", "nobody-at-all", "--dsn", signed_run.dsn)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        "Error: subject nobody-at-all has no record in the consent log (was the pipeline run with a notary key?)"
    ]


def test_checkpoint_latest_prints_the_logs_signed_note(signed_run: SignedRun) -> None:
    shown = _consentflow("checkpoint", "latest", "--dsn", signed_run.dsn)
    assert shown.returncode == 0, shown.stderr[-2000:]
    checkpoint = open_checkpoint(shown.stdout, Verifier.parse(signed_run.public.read_text()))
    assert checkpoint.origin == "consentflow.example/log/embedded" and checkpoint.size > 0
    named = _consentflow("checkpoint", "latest", "--log", "embedded", "--dsn", signed_run.dsn)
    assert named.returncode == 0 and named.stdout == shown.stdout


def test_checkpoint_latest_of_a_log_never_signed_is_one_line(signed_run: SignedRun) -> None:
    refused = _consentflow("checkpoint", "latest", "--log", "ledger/0", "--dsn", signed_run.dsn)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == ["Error: log 'ledger/0' has no signed checkpoint"]
