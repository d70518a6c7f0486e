"""The auditor's replay over HTTP: started by one request, run in the background, followed by another.

A replay of a year of topics takes minutes, longer than a client or a proxy
waits for an answer. ``POST /v1/audit/replay`` checks the request and the
target database, starts the replay and answers 202 with its id at once;
``GET /v1/audit/replays/{replay_id}`` says whether it is running, done (with
what it wrote) or failed (with why). One replay runs at a time: two could fill
the same fresh database. The replay writes on the process's shared client, holding
its lock one statement at a time; the other requests read on clients of their
own (``readers``), so they are answered meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from consentflow.http.context import Auditor, Server, instant_argument, server_of
from consentflow.http.errors import API_PREFIX, KEYED_BY_ID, KEYED_WITH_BODY, ApiError, ErrorBody
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.answers import jsonable
from consentflow.sinks.database_scope import DatabaseRefused, check_database_scope, check_pipeline_database

log = logging.getLogger("consentflow.http_replay")  # the logger name from before the layout (issue 20): log filters know it

#: Finished replays the server remembers for ``GET``; the oldest are forgotten first.
KEPT_REPLAYS = 100


class ReplayRequest(BaseModel):
    """Which window of the input topics to rebuild, into which fresh database of the served ClickHouse."""

    database: str = Field(description="A database of the served ClickHouse that holds no rows yet.")
    from_time: str | None = Field(
        None, description="Replay what was emitted at or after this instant (ISO-8601); none: from the beginning."
    )
    to_time: str | None = Field(None, description="Stop before what was emitted at this instant; none: the topics' ends now.")


@dataclass(frozen=True)
class Replayed:
    """What a replay wrote (``consentflow replay``): compare it with ``GET /v1/audit/verify?against_database=``."""

    database: str
    events: int
    outputs: dict[str, int]
    dead_letters: int
    undecodable: int
    seconds: float


@dataclass
class ReplayStatus:
    """One replay: ``running``; ``done``, with ``result``; or ``failed``, with ``error`` naming what failed."""

    replay_id: str
    database: str
    started_at: datetime
    status: Literal["running", "done", "failed"] = "running"
    result: Replayed | None = None
    error: str | None = None


class Replays:
    """The replays of one server: at most one running, the last ``KEPT_REPLAYS`` remembered."""

    def __init__(self) -> None:
        self.running = threading.Lock()
        self._known: OrderedDict[str, ReplayStatus] = OrderedDict()

    def begin(self, database: str) -> ReplayStatus:
        """A new running replay into ``database`` (the caller holds ``running``)."""
        status = ReplayStatus(uuid.uuid4().hex, database, datetime.now(UTC))
        self._known[status.replay_id] = status
        while len(self._known) > KEPT_REPLAYS:
            self._known.popitem(last=False)
        return status

    def get(self, replay_id: str) -> ReplayStatus | None:
        """The replay of that id, if remembered."""
        return self._known.get(replay_id)


def replays_of(request: Request) -> Replays:
    """The replays of the app handling ``request``."""
    replays = request.app.state.replays
    assert isinstance(replays, Replays)
    return replays


def add_replay_routes(app: FastAPI) -> None:
    """``POST /v1/audit/replay`` and ``GET /v1/audit/replays/{replay_id}``."""
    app.state.replays = Replays()
    refusals = dict(KEYED_WITH_BODY)
    refusals[409] = {
        "model": ErrorBody,
        "description": "The database already holds rows (replay into a fresh one), or a replay is running.",
    }

    @app.post(
        f"{API_PREFIX}/audit/replay",
        status_code=202,
        response_model=ReplayStatus,
        responses=refusals,
        tags=["audit"],
        summary="Start rebuilding the tables from the input topics into a fresh database",
    )
    def replay(request: Request, _: Auditor, body: ReplayRequest) -> Response:
        """The input topics (registry first, then each partition in offset order) through the same processors into a
        fresh database of the served ClickHouse, as ``consentflow replay``. Answers 202 once it has started, with the
        id to follow it by (``GET /v1/audit/replays/{replay_id}``, also in ``Location``); when it is done,
        ``GET /v1/audit/verify?against_database=`` compares it with the served tables. A second replay is 409 while
        one runs."""
        from consentflow.sinks.verification import first_filled_table

        server = server_of(request)
        try:
            database = check_database_scope(body.database)
        except DatabaseRefused as exc:
            raise ApiError(422, f"database: {exc}", "database") from None
        start, end = instant_argument(body.from_time, "from_time"), instant_argument(body.to_time, "to_time")
        if start is not None and end is not None and end <= start:
            raise ApiError(422, f"to_time: {body.to_time!r} is not after from_time: {body.from_time!r}", "to_time")
        replays = replays_of(request)
        if not replays.running.acquire(blocking=False):
            raise ApiError(409, "a replay is running; send this one when GET /v1/audit/replays/{id} says it ended", "database")
        try:
            with server.tables(), server.statement_lock:  # the scope and fresh checks, on the shared client replays write on
                try:
                    check_pipeline_database(server.settings.dsn, database)
                except DatabaseRefused as exc:
                    raise ApiError(422, f"database: {exc}", "database") from None
                filled = first_filled_table(server.settings.dsn, database)
            if filled is not None:
                table, rows = filled
                raise ApiError(409, f"database {database} is not fresh: table {table} holds {rows:,} rows", "database")
            status = replays.begin(database)
            threading.Thread(
                target=_replay_into, args=(server, replays, status, start, end), name=f"replay-{database}", daemon=True
            ).start()
        except BaseException:
            replays.running.release()
            raise
        location = f"{API_PREFIX}/audit/replays/{status.replay_id}"
        return JSONResponse(jsonable(status), status_code=202, headers={"Location": location})

    @app.get(
        f"{API_PREFIX}/audit/replays/{{replay_id}}",
        response_model=ReplayStatus,
        responses=KEYED_BY_ID,
        tags=["audit"],
        summary="A replay: running, done with what it wrote, or failed with why",
    )
    def replay_status(
        request: Request,
        _: Auditor,
        replay_id: Annotated[str, Path(description="The id POST /v1/audit/replay answered with.", pattern="^[0-9a-f]{32}$")],
    ) -> Response:
        """The replay of that id (the server remembers the last hundred, until it restarts)."""
        status = replays_of(request).get(replay_id)
        if status is None:
            raise ApiError(
                404, f"replay_id: no replay {replay_id} on this server (it remembers the last {KEPT_REPLAYS})", "replay_id"
            )
        return JSONResponse(jsonable(status))


def _replay_into(server: Server, replays: Replays, status: ReplayStatus, start: datetime | None, end: datetime | None) -> None:
    """Run one replay to its end, then record how it ended and let the next one start."""
    from confluent_kafka import KafkaException

    from consentflow.contracts.codec import make_codec
    from consentflow.core.processor import Processor
    from consentflow.sinks.clickhouse import ClickHouseSink
    from consentflow.sinks.reader import QueryFailed
    from consentflow.streams.embedded import run_events
    from consentflow.streams.replay import dead_letters, open_replay

    settings = server.settings
    began = time.perf_counter()
    try:
        # The lock is held per statement, not for the whole replay: other requests are answered meanwhile.
        sink = ClickHouseSink(settings.dsn, status.database, retry_for=0, statement_lock=server.statement_lock)
        replayed = open_replay(
            settings.bootstrap,
            settings.prefix,
            make_codec(settings.registry_url, settings.prefix),
            from_time=start,
            to_time=end,
            timeout=settings.replay_timeout,
        )
        try:
            stats = run_events(replayed.events(), Processor(), sink)
        finally:
            replayed.close()
        sink.add_all(("dead-letter", letter) for letter in dead_letters(replayed))
        sink.flush()
        status.result = Replayed(
            database=status.database,
            events=stats.events,
            outputs=dict(sorted(stats.outputs.items())),
            dead_letters=stats.dead_letters + len(replayed.undecodable),
            undecodable=len(replayed.undecodable),
            seconds=round(time.perf_counter() - began, 3),
        )
        status.status = "done"  # after the result: a reader that sees done sees it
    except (LookupError, TimeoutError, RuntimeError, KafkaException) as exc:  # SinkUnavailable is a RuntimeError
        status.error = f"replay from {redacted_dsn(settings.bootstrap)} (prefix {settings.prefix}): {exc}"
        status.status = "failed"
    except QueryFailed as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        status.error = f"replay into {status.database}: ClickHouse failed: {lines[0]}"
        status.status = "failed"
    except Exception as exc:
        log.exception("replay %s into %s failed", status.replay_id, status.database)
        status.error = f"replay into {status.database} failed: {type(exc).__name__}: {exc}"
        status.status = "failed"
    finally:
        replays.running.release()
