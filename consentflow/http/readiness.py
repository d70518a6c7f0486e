"""``/ready``: whether the server can answer from ClickHouse now, for a readiness probe (``/health`` says only that
the process runs, and answers at once whatever ClickHouse does).

The check opens the served tables as every read does, behind the same reads;
it runs on a thread of its own (one probe at a time), so a pool full of
queued reads does not hold it up, and answers 503 when ClickHouse has not
answered within ``ServerSettings.ready_timeout`` seconds.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from consentflow.http.context import Server, server_of
from consentflow.http.errors import ApiError, ErrorBody


class Readiness(BaseModel):
    """The server reads its tables: ClickHouse answered and the database holds the pipeline's tables."""

    status: str


def _tables_open(server: Server) -> None:
    with server.tables():
        pass  # opening them asked ClickHouse whether every table is there


def add_readiness_route(app: FastAPI) -> None:
    """Register ``GET /ready`` on ``app``."""
    limiter: list[anyio.CapacityLimiter] = []  # made on first use: a limiter belongs to the running event loop

    @app.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": ErrorBody, "description": "ClickHouse did not answer in time, or the tables are missing."}},
        tags=["server"],
    )
    async def ready(request: Request) -> JSONResponse:
        """Whether ClickHouse answers and the served database holds the pipeline's tables; open to everyone."""
        server = server_of(request)
        if not limiter:
            limiter.append(anyio.CapacityLimiter(1))
        within = server.settings.ready_timeout
        try:
            with anyio.fail_after(within):
                # Abandoned on timeout: the thread ends when ClickHouse answers; the next probe waits for it, not for reads.
                await anyio.to_thread.run_sync(_tables_open, server, limiter=limiter[0], abandon_on_cancel=True)
        except TimeoutError:
            raise ApiError(
                503, f"not ready: ClickHouse did not answer within {within:g} s (slow, or reads queued ahead)"
            ) from None
        except ApiError as exc:  # open to everyone: the reason goes to the log, the caller learns only "not ready"
            raise ApiError(
                503, "not ready: ClickHouse is unreachable or lacks the served tables", logged=exc.logged or exc.detail
            ) from None
        return JSONResponse(Readiness(status="ready").model_dump())
