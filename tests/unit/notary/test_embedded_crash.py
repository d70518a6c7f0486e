"""The embedded runner cut between the sink's flush and the notary's append (issue 22: a kill mid-stream): the rows
written since the last append are no leaves, and ``verify --checkpoint`` names them; the same file run again (the
recovery a run stopped before its states were saved takes: nothing of it counts as seen) appends them, the rest
again as redeliveries, and the log verifies against the checkpoint saved after the crash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from consentflow.cli import main
from consentflow.contracts.eventfile import read_events
from consentflow.generator import GeneratorConfig, generate
from consentflow.notary.keys import write_key_pair
from consentflow.notary.step import NotaryStep
from consentflow.notary.store import EMBEDDED_LOG, LogStore
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.streams.continued_run import run_continued

AS_OF = datetime(2023, 6, 1, tzinfo=UTC)


class Crash(BaseException):
    """The process gone between two steps (a BaseException: nothing on the way handles it)."""


def test_a_run_cut_between_flush_and_append_verifies_once_its_file_runs_again(
    tmp_path: Path, chdb_dsn: str, database: str
) -> None:
    events = tmp_path / "events.avro"
    generate(GeneratorConfig(40, 365, 7, violation_share=0.05), events, tmp_path / "truth.jsonl")
    private, public = tmp_path / "notary.key", tmp_path / "notary.pub"
    signer = write_key_pair("consentflow.example/log", private, public)
    sink = ClickHouseSink(chdb_dsn, database)
    step = NotaryStep(LogStore.of_sink(sink, EMBEDDED_LOG), signer, every=100)
    append_and_sign, appends = step.write, [0]

    def cut_at_the_third() -> None:
        appends[0] += 1
        if appends[0] == 3:  # the sink has just flushed the rows of these leaves
            raise Crash
        append_and_sign()

    step.write = cut_at_the_third  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run_continued(read_events(events), sink, as_of=AS_OF, notary=step)

    where = ["--dsn", chdb_dsn, "--database", database]
    saved = tmp_path / "checkpoint.txt"
    latest = CliRunner().invoke(main, ["checkpoint", "latest", *where])
    assert latest.exit_code == 0, latest.output
    saved.write_text(latest.output)

    def verify() -> Result:
        return CliRunner().invoke(main, ["verify", *where, "--checkpoint", str(saved), "--public-key", str(public)])

    cut = verify()
    assert cut.exit_code == 1 and "is not a leaf of the log" in cut.output, cut.output

    again = CliRunner().invoke(
        main, ["run", str(events), *where, "--as-of", AS_OF.isoformat(), "--notary-key", str(private), "--no-overview"]
    )
    assert again.exit_code == 0, again.output
    recovered = verify()
    assert recovered.exit_code == 0, recovered.output
    assert "the log extends the saved checkpoint; every checkpoint, leaf and row agrees" in recovered.output
