"""The click type of every time option: ISO 8601 with or without a zone, read as ``query_arguments.parse_instant`` reads it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from consentflow.query_arguments import ArgumentError, parse_instant


class UtcInstant(click.ParamType):
    """An ISO 8601 instant (``2024-05-01``, ``2024-05-01T12:00:00``, ``2024-05-01T12:00:00Z``, ``...+01:00``) as UTC.

    Without a zone it is taken as UTC; a date alone is its midnight, UTC. The command line and the HTTP API thus
    accept and refuse the same texts, with the same one-line reason.
    """

    name = "instant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """Parse and normalise to UTC, or fail naming the option."""
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        name = param.opts[0] if param is not None and param.opts else "time"
        try:
            return parse_instant(str(value), name)
        except ArgumentError as exc:
            self.fail(str(exc).removeprefix(f"{name}: "), param, ctx)  # click names the option itself


#: The one instance every time option uses.
INSTANT = UtcInstant()
