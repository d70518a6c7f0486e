"""How the HTTP API says no: one JSON shape, one line naming what is wrong, the right 4xx or 5xx.

``{"detail": "...", "field": "..."}``: ``detail`` is the one-line reason (the same
words the command line prints), ``field`` the parameter or body field concerned
when there is one. Pages (paths outside ``/v1/``) get the same reason as a small
HTML page, so a browser never shows raw JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from consentflow.contracts.echo import ECHO_LIMIT, echoed, shortened_echoes
from consentflow.http.request_ids import REQUEST_ID_HEADER, logged_failure

#: Where the JSON API lives; everything else but ``/health``, ``/ready`` and the OpenAPI document is a page.
API_PREFIX = "/v1"


class ErrorBody(BaseModel):
    """Why a request was refused: one line, and the parameter or field at fault when there is one."""

    detail: str
    field: str | None = None


class ApiError(Exception):
    """A refusal with its HTTP status; raised anywhere in a handler, answered by ``install_error_handlers``."""

    def __init__(
        self,
        status: int,
        detail: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        logged: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.logged = logged  # what went wrong in full (paths, hosts): the server log's, never the client's


def _described(*statuses: int) -> dict[int | str, dict[str, Any]]:
    words = {
        401: "No API key, or a key the server does not know (header X-API-Key).",
        403: "The key's role may not do this.",
        404: "Unknown subject or recipient.",
        413: "The body is larger than this route takes (serve --max-body-bytes); refused before it is read.",
        422: "A malformed parameter or body; `detail` names it.",
        503: "ClickHouse or Kafka cannot answer now, or the database lacks the pipeline's tables.",
    }
    return {status: {"model": ErrorBody, "description": words[status]} for status in statuses}


#: The refusals every keyed JSON endpoint may answer with, for the OpenAPI document.
KEYED = _described(401, 403, 422, 503)
#: ... and for endpoints about one subject or recipient.
KEYED_BY_ID = _described(401, 403, 404, 422, 503)
#: ... and for endpoints that take a body.
KEYED_WITH_BODY = _described(401, 403, 413, 422, 503)


def _is_page(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith(API_PREFIX + "/") or path in ("/health", "/ready", "/openapi.json"))


def error_response(
    request: Request,
    status: int,
    detail: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    logged: str | None = None,
    exc_info: BaseException | None = None,
) -> Response:
    """The refusal as JSON for the API, as a minimal HTML page for the browser pages; a 5xx names a request id
    under which the server log holds ``logged`` (the detail a client is not shown)."""
    detail = shortened_echoes(detail)  # the one place: whatever layer wrote the words, a long value is cut here
    if status >= 500:
        request_id, detail = logged_failure(request, status, detail, logged, exc_info)
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id}
    if _is_page(request):
        from consentflow.http.lineage_page import error_page, login_page  # the page module renders every HTML the server sends

        if status == 401:  # a browser without a known key gets the form to present one
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            shown = detail if detail.startswith("unknown") else ""
            return HTMLResponse(login_page(target, shown), status_code=401, headers=headers)
        return HTMLResponse(error_page(status, detail), status_code=status, headers=headers)
    return JSONResponse(ErrorBody(detail=detail, field=field).model_dump(), status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> tuple[str, str | None]:
    """FastAPI's validation errors as one line naming the first bad parameter."""
    errors = exc.errors()
    if not errors:
        return "malformed request", None
    first = errors[0]
    location = [str(part) for part in first.get("loc", ())]
    where, name = (location[0], ".".join(location[1:])) if location else ("request", "")
    message = str(first.get("msg", "invalid"))
    kind = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body field"}.get(where, where)
    return (f"{kind} {name}: {message}" if name else f"{kind}: {message}"), (name or None)


def install_error_handlers(app: FastAPI) -> None:
    """Answer ``ApiError``, FastAPI's own validation errors and unrouted paths in the one shape."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status, exc.detail, exc.field, exc.headers, logged=exc.logged)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail, field = _validation_detail(exc)
        return error_response(request, 422, detail, field)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 400:  # FastAPI's "error parsing the body": malformed input, answered as every other (422)
            if isinstance(exc.__cause__, RecursionError):  # Python's parser gives up a thousand levels down
                return error_response(request, 422, "body: JSON nested too deep (arrays and objects in each other)", "body")
            return error_response(request, 422, "body: not a JSON document in UTF-8", "body")
        path = request.url.path
        path = path if len(path) <= ECHO_LIMIT else echoed(path)  # unquoted when short, as before
        if exc.status_code == 404:
            detail = f"no such path: {path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {path}"
        return error_response(request, exc.status_code, detail, headers=dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette logs the exception again after this answer; the line with the request id is the one to find.
        # Sent from outside the headers' middleware: the answer carries its own.
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
        return error_response(request, 500, "internal error", None, headers, logged=f"{type(exc).__name__}: {exc}", exc_info=exc)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
