"""What every request of the HTTP API goes through: the key, its role, then the tables.

``ServerSettings`` is what ``consentflow serve`` was started with. ``Server``
holds them for the app's lifetime, with its readers (``readers``: each request
asks on a client of its own, several at once) and the lock the replay's writer
holds per statement on the process's shared client. ``caller`` is the FastAPI
dependency that turns the ``X-API-Key`` header (or, for the browser pages, the session cookie: ``sessions``) into a role,
refusing with 401 or 403; ``Server.tables`` opens the tables and turns the
query layer's exceptions into the API's refusals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader

from consentflow.contracts.query_arguments import ArgumentError, parse_instant
from consentflow.http.api_keys import Action, ApiKey, KeyRing, Role, allows
from consentflow.http.body_limit import BodyLimits
from consentflow.http.errors import ApiError
from consentflow.http.key_scopes import EmitScope
from consentflow.http.readers import Readers
from consentflow.http.sessions import SessionLimits, Sessions
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.clickhouse import SinkUnavailable
from consentflow.sinks.reader import QueryFailed, TableReader
from consentflow.sinks.reading import TablesMissing, UnknownId

T = TypeVar("T")

#: Requests that ask ClickHouse at once (``serve --readers``); more wait their turn. Measured: bench/RESULTS.md.
DEFAULT_READERS = 4

#: The header carrying the key.
KEY_HEADER = "X-API-Key"
#: The cookie the login form sets for the browser pages (HttpOnly, SameSite=Strict): a session id, not the key.
KEY_COOKIE = "consentflow_key"  # the name it had when it held the key: a new login overwrites an old key cookie

_header_scheme = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="An API key; its role decides what it may do.")
_cookie_scheme = APIKeyCookie(
    name=KEY_COOKIE, auto_error=False, description="The session the login form started, for the browser pages only."
)


@dataclass(frozen=True)
class ServerSettings:
    """What the server reads from and produces to, and the keys it accepts."""

    dsn: str
    database: str
    keys: KeyRing
    bootstrap: str = "127.0.0.1:9092"
    prefix: str = "consentflow"
    registry_url: str | None = None
    collect_timeout: float = 10.0  # seconds the collector waits for the broker's acknowledgement
    replay_timeout: float = 30.0  # seconds a replay waits for the broker
    # How the collector gets its producer; None: an ``EventProducer`` on ``bootstrap``. Tests may pass their own.
    producer_factory: Callable[[], Any] | None = None
    ready_timeout: float = 5.0  # seconds /ready waits for ClickHouse before answering 503
    # The largest request body per kind of route (serve --max-body-bytes).
    body_limits: BodyLimits = field(default_factory=BodyLimits)
    # How long the browser pages' sessions last (serve --session-idle-minutes, --session-max-hours).
    sessions: SessionLimits = field(default_factory=SessionLimits)
    # Origins browsers reach the pages at besides the request's own (serve --public-origin), normalised.
    public_origins: tuple[str, ...] = ()
    readers: int = DEFAULT_READERS  # requests that ask ClickHouse at once, each on a client of its own


@dataclass(frozen=True)
class Caller:
    """Who is asking: the name of the key presented, its role and, for a service key, what it may emit."""

    key_name: str
    role: Role
    scope: EmitScope | None = None


class Server:
    """The state of one running app: its settings, the pages' sessions, its readers, and the lock around the shared
    client."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.sessions = Sessions(settings.sessions)
        self.readers = Readers(settings.dsn, settings.database, settings.readers)
        self._statements = threading.Lock()

    @property
    def statement_lock(self) -> threading.Lock:
        """The lock held around each statement on the process's shared client (``connect``): a replay's writes."""
        return self._statements

    @contextmanager
    def tables(self) -> Iterator[TableReader]:
        """The pipeline's tables for one request, on a client of its own; the query layer's exceptions become refusals.

        Unknown ids are 404, arguments the query layer refuses 422, a database
        that lacks the tables or a ClickHouse that does not answer 503.
        """
        settings = self.settings
        with ExitStack() as lent:
            try:
                yield lent.enter_context(self.readers.tables())
            except ArgumentError as exc:
                raise ApiError(422, str(exc)) from None
            except UnknownId as exc:
                raise ApiError(404, str(exc)) from None
            except TablesMissing as exc:
                shown = f"database {settings.database} holds no consentflow tables (fill it with `consentflow run` or `consentflow sink`)"
                raise ApiError(503, shown, logged=str(exc)) from None
            except SinkUnavailable as exc:
                raise ApiError(503, "ClickHouse is unreachable", logged=str(exc)) from None
            except (QueryFailed, ConnectionError) as exc:  # the server went away or refused the query: one line
                lines = str(exc).strip().splitlines() or [type(exc).__name__]
                logged = f"ClickHouse at {redacted_dsn(settings.dsn)} failed to answer: {lines[0]}"
                raise ApiError(503, "ClickHouse failed to answer", logged=logged) from None


def server_of(request: Request) -> Server:
    """The ``Server`` of the app handling ``request``."""
    server = request.app.state.server
    assert isinstance(server, Server)
    return server


def argument(parse: Callable[..., T], field: str, *args: Any) -> T:
    """``parse(*args)``, or a 422 naming ``field`` with the parser's one-line reason."""
    try:
        return parse(*args)
    except ArgumentError as exc:
        raise ApiError(422, str(exc), field) from None


def identify(request: Request, presented: str | None, action: Action) -> Caller:
    """The caller a presented key stands for, if its role may take ``action``; 401 or 403 otherwise."""
    return _identify(request, presented, action)


def _identify(request: Request, presented: str | None, action: Action) -> Caller:
    if not presented:
        raise ApiError(401, f"missing API key: send it in the {KEY_HEADER} header", KEY_HEADER, _challenge())
    key = server_of(request).settings.keys.find(presented)
    if key is None:
        raise ApiError(401, "unknown API key", KEY_HEADER, _challenge())
    return _allowed(key, action)


def _allowed(key: ApiKey, action: Action) -> Caller:
    if not allows(key.role, action):
        raise ApiError(403, f"the {key.role.value} role may not {action.value} (key {key.name})")
    return Caller(key.name, key.role, key.scope)


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": f'APIKey header="{KEY_HEADER}"'}


def caller(action: Action) -> Callable[..., Caller]:
    """A FastAPI dependency: the caller of a JSON endpoint needing ``action``, by the ``X-API-Key`` header."""

    def dependency(request: Request, key: str | None = Security(_header_scheme)) -> Caller:
        return _identify(request, key, action)

    return dependency


#: The callers of JSON endpoints, by what they may do (roles: ``api_keys``).
Reader = Annotated[Caller, Depends(caller(Action.READ))]
Auditor = Annotated[Caller, Depends(caller(Action.AUDIT))]
Emitter = Annotated[Caller, Depends(caller(Action.COLLECT))]
Describer = Annotated[Caller, Depends(caller(Action.DESCRIBE))]


def page_caller(action: Action) -> Callable[..., Caller]:
    """A FastAPI dependency for a browser page: the header, or else the session the login form started.

    Only pages that change nothing (GET) accept the cookie: a cookie rides along
    on requests other sites trigger, a header never does.
    """

    def dependency(
        request: Request,
        key: str | None = Security(_header_scheme),
        cookie: str | None = Security(_cookie_scheme),
    ) -> Caller:
        if key or not cookie:
            return _identify(request, key, action)
        server = server_of(request)
        found = server.sessions.look_up(cookie, server.settings.keys)
        if found is None:  # "unknown ...": the form shows why it is back
            raise ApiError(401, "unknown or ended session: enter the key again", KEY_COOKIE, _challenge())
        return _allowed(found, action)

    return dependency


def known_key(request: Request, presented: str) -> Caller | None:
    """The caller a key presented in the login form stands for, whatever its role; None for an unknown key."""
    key = server_of(request).settings.keys.find(presented)
    return None if key is None else Caller(key.name, key.role)


def instant_argument(text: str | None, field: str) -> datetime | None:
    """An optional instant parameter or body field (ISO-8601; UTC when no zone): 422 naming ``field`` when malformed."""
    return None if text is None else argument(parse_instant, field, text, field)
