"""What the DPO's read-only commands share: options, argument checks, error lines, output.

Every argument is checked (``consentflow.contracts.query_arguments``) before ClickHouse is
touched; every failure, a bad argument, an unknown id, missing tables or an
unreachable server, ends the command with one line naming it and a non-zero
exit. ``--json`` prints the answer's JSON form (``sinks.answers.jsonable``);
otherwise rich tables.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from consentflow.cli.shared import DEFAULT_DATABASE, DEFAULT_DSN, fail
from consentflow.contracts.query_arguments import ArgumentError, parse_instant
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.answers import jsonable
from consentflow.sinks.clickhouse import SinkUnavailable
from consentflow.sinks.reader import QueryFailed, TableReader
from consentflow.sinks.reading import TablesMissing, UnknownId, open_tables

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def reader_options(command: F) -> F:
    """``--dsn``, ``--database`` and ``--json``, as every read-only command takes them."""
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(command)
    command = click.option("--database", default=DEFAULT_DATABASE, show_default=True)(command)
    return click.option(
        "--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port."
    )(command)


def checked(parse: Callable[..., T], *args: Any) -> T:
    """``parse(*args)``, or the command ends with the argument's one-line reason."""
    try:
        return parse(*args)
    except ArgumentError as exc:
        fail(str(exc))


def instant(text: str | None, option: str) -> datetime | None:
    """The instant an option names (ISO-8601, UTC when naive), None when not given."""
    return None if text is None else checked(parse_instant, text, option)


@contextmanager
def tables(dsn: str, database: str) -> Iterator[TableReader]:
    """The pipeline's tables for reading; any failure inside ends the command with its one-line reason."""
    try:
        sink = open_tables(dsn, database)
    except (ValueError, TablesMissing, SinkUnavailable) as exc:  # ValueError: a malformed DSN or database name
        fail(str(exc))
    try:
        yield sink
    except (ArgumentError, UnknownId) as exc:
        fail(str(exc))
    except (QueryFailed, ConnectionError) as exc:  # the server went away or refused the query: one line, not a trace
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        fail(f"ClickHouse at {redacted_dsn(dsn)} failed to answer: {lines[0]}")


def print_json(answer: Any) -> None:
    """The answer as indented JSON on stdout."""
    click.echo(json.dumps(jsonable(answer), indent=2))


def when(value: datetime | None) -> str:
    """A UTC instant as a table shows it."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def listed(values: Sequence[str] | frozenset[str]) -> str:
    """Several symbols in one cell."""
    return ", ".join(sorted(values))


#: Width of tables written to a file or a pipe, where rich would assume 80 columns and wrap every long row.
PIPED_WIDTH = 200


def stdout_console() -> Console:
    """The console for tables on stdout: the terminal's width, or ``PIPED_WIDTH`` when stdout is a file or a pipe
    and ``COLUMNS`` does not say otherwise, so a DPO's saved answer keeps one line per row."""
    from rich.console import Console

    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPED_WIDTH if piped else None)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, styles: Sequence[str] = ()) -> None:
    """A rich table on stdout; ``styles`` gives a style per row (e.g. red for a transfer nothing frames)."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for index, row in enumerate(rows):
        table.add_row(*row, style=styles[index] if index < len(styles) else None)
    stdout_console().print(table)


def print_line(text: str) -> None:
    """One line of rich markup on stdout."""
    stdout_console().print(text)


def write_output(text: str, out: str | None) -> None:
    """``text`` to the file ``out`` (``--out``), or to stdout when None; a file that cannot be written ends the command in one line."""
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"--out: cannot write {out}: {exc.strerror or exc}")
