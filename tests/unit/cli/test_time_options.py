"""Every time option takes ISO 8601 with or without a zone, as the DPO's queries do (issue 18, finding 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest

from consentflow.cli import main
from consentflow.generator import GeneratorConfig, generate

#: Option names that hold an instant, whichever command they belong to.
TIME_OPTIONS = {"as_of", "since", "from_time", "to_time", "start", "from_", "to", "start_time", "end_time"}


def _time_options() -> list[tuple[str, click.Option]]:
    found = []
    for name, command in sorted(main.commands.items()):
        commands = command.commands.items() if isinstance(command, click.Group) else [("", command)]
        for sub, leaf in commands:
            for param in leaf.params:
                if isinstance(param, click.Option) and param.name in TIME_OPTIONS and param.type is not click.STRING:
                    found.append((f"{name} {sub}".strip() + " " + param.opts[0], param))
    return found


def test_there_are_typed_time_options_to_check() -> None:
    names = [name for name, _ in _time_options()]
    assert "run --as-of" in names and "replay --from-time" in names and "generate --start" in names


@pytest.mark.parametrize(("name", "option"), _time_options(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_time_option_reads_a_zone_an_offset_a_naive_time_and_a_date(name: str, option: click.Option) -> None:
    convert = option.type.convert
    zulu = convert("2026-12-06T00:00:00Z", option, None)
    assert zulu == datetime(2026, 12, 6, tzinfo=UTC)
    assert convert("2026-12-06T01:00:00+01:00", option, None) == zulu  # the same instant, given in Paris winter time
    assert convert("2026-12-06T00:00:00", option, None) == zulu  # no zone: UTC
    assert convert("2026-12-06", option, None) == zulu  # a date: its midnight, UTC
    with pytest.raises(click.BadParameter, match="not an ISO-8601 time"):
        convert("2026-13-06", option, None)


def _consentflow(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consentflow.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_run_as_of_an_instant_with_a_zone_is_the_retention_clock(tmp_path: Path) -> None:
    """``run --as-of 2026-12-06T00:00:00Z`` was refused; the same instant written with an offset gives the same tables."""
    events = tmp_path / "events.avro"
    generate(GeneratorConfig(subjects=40, days=60, seed=3), events, None)
    digests = []
    for name, as_of in (("zulu", "2026-12-06T00:00:00Z"), ("offset", "2026-12-06T01:00:00+01:00")):
        dsn = f"chdb://{tmp_path / name}"
        ran = _consentflow("run", str(events), "--dsn", dsn, "--no-overview", "--as-of", as_of)
        assert ran.returncode == 0, ran.stderr
        digests.append(json.loads(_consentflow("digest", "--dsn", dsn).stdout))
    assert digests[0] == digests[1]
    assert digests[0]["retention_actions"][0] > 0  # five years after the file's events, actions fell due
