"""``consentflow serve`` (the HTTP API) and ``consentflow api-key add`` (a key for it), registered on ``cli.main``."""

from __future__ import annotations

from pathlib import Path

import click

from consentflow.cli.shared import DEFAULT_BOOTSTRAP, DEFAULT_DATABASE, DEFAULT_DSN, DEFAULT_PREFIX, REGISTRY_URL, fail


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--dsn", default=DEFAULT_DSN, show_default=True, help="ClickHouse: chdb:///path (embedded) or http(s)://host:port.")
@click.option("--database", default=DEFAULT_DATABASE, show_default=True)
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML key file of SHA-256 hashes (consentflow api-key add); CONSENTFLOW_API_KEYS adds role:key or role@name:key pairs.",
)
@click.option("--bootstrap", default=DEFAULT_BOOTSTRAP, show_default=True, help="Kafka, for the collector.")
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="Topic name prefix, for the collector.")
@click.option("--schema-registry", "registry_url", default=REGISTRY_URL, help="Schema Registry URL (Confluent framing).")
@click.option(
    "--collect-timeout",
    type=click.FloatRange(min=0.1, max=120),
    default=10.0,
    show_default=True,
    help="Seconds the collector waits for Kafka's acknowledgement before answering 503.",
)
@click.option(
    "--replay-timeout",
    type=click.FloatRange(min=1, max=600),
    default=30.0,
    show_default=True,
    help="Seconds a replay (POST /v1/audit/replay) waits for Kafka.",
)
@click.option(
    "--readers",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Requests that ask ClickHouse at once, each on a client of its own; more wait their turn.",
)
@click.option(
    "--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info", show_default=True
)
def serve(
    host: str,
    port: int,
    dsn: str,
    database: str,
    keys_file: Path | None,
    bootstrap: str,
    prefix: str,
    registry_url: str | None,
    collect_timeout: float,
    replay_timeout: float,
    readers: int,
    log_level: str,
) -> None:
    """Serve the HTTP API: the DPO's and auditors' questions, the lineage pages, the collector (OpenAPI document at /openapi.json, with a key)."""
    import uvicorn

    from consentflow.http.api_keys import KeyFileError, load_keys
    from consentflow.http.app import create_app
    from consentflow.http.context import ServerSettings
    from consentflow.sinks.clickhouse import check_database_name, check_dsn

    try:
        check_dsn(dsn)
        check_database_name(database)
        keys = load_keys(keys_file)
    except (ValueError, KeyFileError) as exc:
        fail(str(exc))
    settings = ServerSettings(
        dsn=dsn,
        database=database,
        keys=keys,
        bootstrap=bootstrap,
        prefix=prefix,
        registry_url=registry_url,
        collect_timeout=collect_timeout,
        replay_timeout=replay_timeout,
        readers=readers,
    )
    click.echo(
        f"consentflow API on http://{host}:{port} ({len(keys)} keys; {database} at {dsn}; OpenAPI document at /openapi.json)",
        err=True,
    )
    # One worker process: chDB is one engine per process; its threads read side by side (--readers).
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=False)


@click.group("api-key")
def api_key() -> None:
    """API keys of the HTTP API."""


@api_key.command("add")
@click.option("--keys", "keys_file", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The TOML key file.")
@click.option(
    "--name",
    required=True,
    help="Who holds the key (letters, digits, . _ -); a service key is named after its service, the only source_service it may emit as.",
)
@click.option("--role", type=click.Choice(["dpo", "auditor", "service"]), required=True)
def api_key_add(keys_file: Path, name: str, role: str) -> None:
    """Create a key, store its SHA-256 hash in the key file, and print the key (shown this once, stored nowhere)."""
    from consentflow.http.api_keys import KeyFileError, Role, add_key

    try:
        key = add_key(keys_file, name, Role(role))
    except (KeyFileError, OSError) as exc:
        fail(str(exc))
    click.echo(key)
    click.echo(f"key {name!r} ({role}) added to {keys_file}; keep the key above, it is not stored", err=True)
