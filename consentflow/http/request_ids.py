"""A server-side failure told twice: briefly to the client with a request id, in full in the server log under it.

A 5xx answer's words come from ClickHouse, Kafka or Python: they may name the
chDB path, hosts, or a traceback. The client gets the API's one line and the
request id; the log line with the same id carries what went wrong, for the
operator the client forwards the id to.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import Request

from consentflow.contracts.echo import echoed

log = logging.getLogger("consentflow.http")
#: The answer header naming the request id.
REQUEST_ID_HEADER = "X-Request-Id"


def new_request_id() -> str:
    """A random id for one failed request (16 hex digits)."""
    return uuid.uuid4().hex[:16]


def logged_failure(
    request: Request, status: int, shown: str, logged: str | None, exc_info: BaseException | None = None
) -> tuple[str, str]:
    """Log the failure in full under a new request id; the id and the client's line, which names the id."""
    request_id = new_request_id()
    log.error(
        "request %s: %s %s answered %d: %s",
        request_id,
        request.method,
        echoed(request.url.path, 200),
        status,
        logged or shown,
        exc_info=exc_info,
    )
    return request_id, f"{shown} (request {request_id}; the server log has the detail)"
