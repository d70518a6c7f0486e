"""The API's own metrics: every request counted by route, method and status, and timed; ``GET /metrics`` serves them.

The route is the matched route's template (``/v1/subjects/{subject_id}/recipients``), never the path asked: a
subject id in a label would put people's pseudonyms into the monitoring system, and every id a new series. A path
no route matches counts as ``unmatched``.

``/metrics`` needs a key whose role may read metrics (``operator``, or ``dpo``: ``api_keys``), in ``X-API-Key`` or
as ``Authorization: Bearer <key>``, which is what a Prometheus scrape config's ``authorization`` section sends.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import FastAPI, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentflow.http.api_keys import Action
from consentflow.http.context import KEY_HEADER, identify
from consentflow.runtime.metrics import CONTENT_TYPE, ApiMetrics, exposition

#: The route label of a request no route matched (its path is not a label: anyone could make new series).
UNMATCHED = "unmatched"

_header = APIKeyHeader(name=KEY_HEADER, auto_error=False)
_bearer = HTTPBearer(auto_error=False, description="An API key whose role may read the metrics, as a Prometheus server sends it.")


class RequestMetrics:
    """ASGI middleware: each HTTP request counted once its answer is sent (or its handling raised: 500)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting its status, then count and time it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # raised before an answer started: the server's 500

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            route = scope.get("route")  # set by the router when a route matched
            template = str(getattr(route, "path", UNMATCHED)) if route is not None else UNMATCHED
            self.metrics.answered(template, str(scope["method"]), status, time.perf_counter() - started)


def add_request_metrics(app: FastAPI) -> ApiMetrics:
    """Count every request of ``app`` (outermost: a refusal by any other middleware counts too) and serve
    ``GET /metrics``; the metrics, in a registry of the app's own."""
    metrics = ApiMetrics(CollectorRegistry())
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def metrics_text(
        request: Request,
        key: Annotated[str | None, Security(_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Response:
        """The API's metrics as Prometheus text, for a key that may read them."""
        identify(request, key or (bearer.credentials if bearer is not None else None), Action.METRICS)
        return Response(exposition(metrics.registry), media_type=CONTENT_TYPE)

    return metrics


__all__ = ["UNMATCHED", "RequestMetrics", "add_request_metrics"]
