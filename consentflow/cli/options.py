"""Options shared by several commands: the click type of every time option (``INSTANT``), and ``--health-port`` and
``--health-host``, shared by ``consentflow worker`` and ``consentflow sink``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from consentflow.contracts.query_arguments import ArgumentError, parse_instant
from consentflow.runtime.health import Health
from consentflow.runtime.health_endpoint import DEFAULT_HOST, HealthEndpoint

if TYPE_CHECKING:  # prometheus_client loads only in a process that reports metrics
    from prometheus_client import CollectorRegistry

F = TypeVar("F", bound=Callable[..., Any])


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


def health_options(command: F) -> F:
    """Add ``--health-port`` (off by default) and ``--health-host`` to ``command``."""
    command = click.option(
        "--health-host",
        default=DEFAULT_HOST,
        show_default=True,
        help="Address the health probe binds to: 0.0.0.0 where a Kubernetes kubelet probes it from outside the pod.",
    )(command)
    return click.option(
        "--health-port",
        type=click.IntRange(min=1, max=65535),
        default=None,
        help="Answer GET /live and GET /ready on this port (200, or 503 with the reason), and GET /metrics "
        "(Prometheus); off without it.",
    )(command)


def start_health(port: int | None, host: str, metrics: CollectorRegistry | None = None) -> Health | None:
    """A ``Health`` answered over HTTP on ``host:port`` for the rest of the process (and ``metrics`` on ``/metrics``),
    or None without a port."""
    if port is None:
        return None
    health = Health()
    try:
        HealthEndpoint(health, port, host, metrics)
    except OSError as exc:
        raise click.UsageError(f"--health-port {port}: cannot listen on {host}:{port} ({exc.strerror})") from exc
    return health


__all__ = ["INSTANT", "UtcInstant", "health_options", "start_health"]
