"""``consentflow serve`` (the HTTP API) and ``consentflow api-key add`` (a key for it), registered on ``cli.main``."""

from __future__ import annotations

from pathlib import Path

import click

from consentflow.cli.shared import DEFAULT_BOOTSTRAP, DEFAULT_DATABASE, DEFAULT_DSN, DEFAULT_PREFIX, REGISTRY_URL, fail
from consentflow.runtime.redaction import redacted_dsn


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
    help="TOML key file of SHA-256 hashes (consentflow api-key add), writable by its owner only; CONSENTFLOW_API_KEYS adds role:key or role@name[scope]:key pairs.",
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
    "--max-body-bytes",
    "body_limits",
    multiple=True,
    metavar="ROUTE=SIZE",
    help="The largest request body a kind of route takes, refused with 413 before it is read (repeatable; ROUTE: "
    "login, collect, replay, other; SIZE in bytes or with KiB/MiB). Defaults: login=64KiB collect=1MiB replay=64KiB other=64KiB.",
)
@click.option(
    "--session-idle-minutes",
    type=click.FloatRange(min=1, max=7 * 24 * 60),
    default=30.0,
    show_default=True,
    help="Minutes a browser page session may go unused before it ends (the key form is shown again).",
)
@click.option(
    "--session-max-hours",
    type=click.FloatRange(min=0.1, max=30 * 24),
    default=12.0,
    show_default=True,
    help="Hours a browser page session lasts at most, however busy.",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies believed about the browser's scheme and address (X-Forwarded-Proto, X-Forwarded-For): IP addresses "
    "or networks, comma-separated, or *. Behind a proxy that ends TLS the session cookie is then Secure. Default: none.",
)
@click.option(
    "--public-origin",
    "public_origins",
    multiple=True,
    metavar="URL",
    help="An origin browsers reach the pages at, e.g. https://consent.example.org, when a proxy rewrites the Host "
    "header (repeatable); /login and /logout take posts from it and from the request's own origin only.",
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
    body_limits: tuple[str, ...],
    session_idle_minutes: float,
    session_max_hours: float,
    forwarded_allow_ips: str | None,
    public_origins: tuple[str, ...],
    readers: int,
    log_level: str,
) -> None:
    """Serve the HTTP API: the DPO's and auditors' questions, the lineage pages, the collector (OpenAPI document at /openapi.json, with a key)."""
    import uvicorn

    from consentflow.http.api_keys import KeyFileError, load_keys
    from consentflow.http.app import create_app
    from consentflow.http.body_limit import BodyLimits
    from consentflow.http.context import ServerSettings
    from consentflow.http.followed_keys import FollowedKeyRing
    from consentflow.http.proxies import check_forwarded_allow_ips, proxy_settings
    from consentflow.http.same_origin import check_public_origin
    from consentflow.http.sessions import SessionLimits
    from consentflow.sinks.clickhouse import check_database_name, check_dsn

    try:
        check_dsn(dsn)
        check_database_name(database)
        keys = load_keys(None) if keys_file is None else FollowedKeyRing(keys_file)  # a key removed from the file ends
        limits = BodyLimits()
        for setting in body_limits:
            limits = limits.with_setting(setting)
        proxies = None if forwarded_allow_ips is None else check_forwarded_allow_ips(forwarded_allow_ips)
        origins = tuple(check_public_origin(origin) for origin in public_origins)
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
        body_limits=limits,
        sessions=SessionLimits(idle=session_idle_minutes * 60, lifetime=session_max_hours * 3600),
        public_origins=origins,
        readers=readers,
    )
    click.echo(
        f"consentflow API on http://{host}:{port} ({len(keys)} keys; {database} at {redacted_dsn(dsn)}; OpenAPI document at /openapi.json)",
        err=True,
    )
    # One worker process: chDB is one engine per process; its threads read side by side (--readers).
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, **proxy_settings(proxies))


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
@click.option("--role", type=click.Choice(["dpo", "auditor", "service", "operator"]), required=True)
@click.option("--topics", default=None, help="A service key: the topics it may emit, comma-separated (e.g. cookie,consent).")
@click.option(
    "--purposes",
    default=None,
    help="With consent among --topics: the purposes it may record, comma-separated; 'cookies_*' patterns.",
)
@click.option(
    "--channels", default=None, help="With consent among --topics: the consent channels, comma-separated (cookie_banner)."
)
def api_key_add(keys_file: Path, name: str, role: str, topics: str | None, purposes: str | None, channels: str | None) -> None:
    """Create a key, store its SHA-256 hash (and a service key's scope) in the key file, and print the key (shown this
    once, stored nowhere)."""
    from consentflow.http.api_keys import KeyFileError, Role, add_key
    from consentflow.http.key_scopes import ScopeError, scope_of

    def listed(text: str | None) -> list[str] | None:
        return None if text is None else [part.strip() for part in text.split(",") if part.strip()]

    scope = None
    try:
        if topics is not None:
            scope = scope_of(listed(topics) or [], listed(purposes), listed(channels))
        elif purposes is not None or channels is not None:
            raise ScopeError("purposes and channels scope consent events: give --topics too")
    except ScopeError as exc:
        fail(f"--{exc}")
    try:
        key = add_key(keys_file, name, Role(role), scope)
    except (KeyFileError, OSError) as exc:
        fail(str(exc))
    click.echo(key)
    click.echo(f"key {name!r} ({role}) added to {keys_file}; keep the key above, it is not stored", err=True)
