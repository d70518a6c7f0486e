"""The Kafka notary's commands refuse a bad key before they consume anything (no broker is asked: the bootstrap
here answers nobody), as ``run --notary-key`` does; ``notary keygen`` stays a subcommand of ``notary``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from consentflow.cli import main
from consentflow.notary.keys import write_key_pair

NOBODY = "127.0.0.1:1"


@pytest.fixture
def readable_key(tmp_path: Path) -> Path:
    private = tmp_path / "notary.key"
    write_key_pair("consentflow.example/log", private, tmp_path / "notary.pub")
    private.chmod(0o644)
    return private


def test_sink_refuses_a_key_others_may_read_before_consuming(readable_key: Path, tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'chdb'}"
    result = CliRunner().invoke(main, ["sink", "--bootstrap", NOBODY, "--dsn", dsn, "--notary-key", str(readable_key)])
    assert result.exit_code == 1 and "may be read by others" in result.output
    assert not (tmp_path / "chdb").exists()  # refused before the database was opened


def test_sink_refuses_a_key_that_is_not_one(tmp_path: Path) -> None:
    bad = tmp_path / "notary.key"
    bad.write_text("not a key\n")
    bad.chmod(0o600)
    result = CliRunner().invoke(main, ["sink", "--bootstrap", NOBODY, "--notary-key", str(bad)])
    assert result.exit_code == 1 and f"--notary-key {bad}:" in result.output


def test_the_standalone_notary_refuses_a_key_others_may_read_and_asks_for_one(readable_key: Path, tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'chdb'}"
    result = CliRunner().invoke(main, ["notary", "--bootstrap", NOBODY, "--dsn", dsn, "--private-key", str(readable_key)])
    assert result.exit_code == 1 and "may be read by others" in result.output
    assert not (tmp_path / "chdb").exists()
    missing = CliRunner().invoke(main, ["notary", "--bootstrap", NOBODY, "--dsn", dsn])
    assert missing.exit_code == 2 and "--private-key is needed to run the notary" in missing.output


def test_notary_keygen_is_still_a_subcommand(tmp_path: Path) -> None:
    private, public = tmp_path / "k.key", tmp_path / "k.pub"
    result = CliRunner().invoke(main, ["notary", "keygen", "--private-key", str(private), "--public-key", str(public)])
    assert result.exit_code == 0, result.output
    assert private.stat().st_mode & 0o777 == 0o600 and public.read_text().startswith("consentflow.example/log+")


@pytest.mark.parametrize("command", ["sink", "notary"])
def test_a_checkpoint_interval_over_10_s_is_refused(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--bootstrap", NOBODY, "--checkpoint-interval", "11"])
    assert result.exit_code == 2 and "--checkpoint-interval" in result.output
