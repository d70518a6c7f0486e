"""The command line's ``--health-port`` and ``--health-host``, shared by ``consentflow worker`` and ``consentflow sink``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from consentflow.health import Health
from consentflow.health_endpoint import DEFAULT_HOST, HealthEndpoint

F = TypeVar("F", bound=Callable[..., Any])


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
        help="Answer GET /live and GET /ready on this port (200, or 503 with the reason); off without it.",
    )(command)


def start_health(port: int | None, host: str) -> Health | None:
    """A ``Health`` answered over HTTP on ``host:port`` for the rest of the process, or None without a port."""
    if port is None:
        return None
    health = Health()
    try:
        HealthEndpoint(health, port, host)
    except OSError as exc:
        raise click.UsageError(f"--health-port {port}: cannot listen on {host}:{port} ({exc.strerror})") from exc
    return health


__all__ = ["health_options", "start_health"]
