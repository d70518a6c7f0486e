"""The API explorer at ``/docs``: Swagger UI, served by this server itself, nothing loaded from another origin.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, which the pages' policy
forbids (and a DPO's network may not reach). The script and style come instead
from the ``fastapi-offline`` package, which bundles them (MIT), and are served
under ``/docs/assets/``; the page's policy lets scripts, styles and fetches come
from this origin only (Swagger UI's icons are ``data:`` images). The page needs
a key of any role, as ``/openapi.json`` does: in the ``X-API-Key`` header, or the
cookie the login form sets, so a browser can open it and the explorer can load
the document; "Authorize" then takes a key for trying the endpoints.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated

from fastapi import Depends, FastAPI, Path
from fastapi.responses import HTMLResponse, Response

from consentflow.http.api_keys import Action
from consentflow.http.context import Caller, page_caller
from consentflow.http.errors import ApiError

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
#: The files served under ``ASSETS_PATH``, and their types: the bundled ones, and the script starting the explorer.
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
    "start.js": "text/javascript; charset=utf-8",
}
#: What the explorer page may load and run: this origin's scripts, styles and fetches, and inline images.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
#: The explorer over the keyed document; a request that tries an endpoint carries the key given to "Authorize".
START_SCRIPT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: false
  });
});
"""
DOCS_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>consentflow API</title>
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon.png">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/start.js"></script></body></html>
"""

#: A caller of the explorer and of ``/openapi.json``: any role, by the header or the login form's cookie.
DocsReader = Annotated[Caller, Depends(page_caller(Action.DESCRIBE))]


@cache
def asset(name: str) -> bytes:
    """The bytes of one of ``ASSET_TYPES``: bundled by ``fastapi-offline``, or the start script."""
    if name == "start.js":
        return START_SCRIPT.encode()
    return (files("fastapi_offline") / "static" / name).read_bytes()


def add_docs_routes(app: FastAPI) -> None:
    """Register ``/docs`` and ``/docs/assets/{name}`` on ``app``."""

    @app.get(DOCS_PATH, response_class=HTMLResponse, include_in_schema=False)
    def docs(_: DocsReader) -> HTMLResponse:
        """The API explorer (Swagger UI) over ``/openapi.json``."""
        return HTMLResponse(DOCS_PAGE, headers={"Content-Security-Policy": DOCS_POLICY})

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    def docs_asset(name: Annotated[str, Path()]) -> Response:
        """Swagger UI's script, style and icon, and the script starting it: code, no data, so no key is needed."""
        media_type = ASSET_TYPES.get(name)
        if media_type is None:
            raise ApiError(404, f"no such path: {ASSETS_PATH}/{name[:64]}")
        return Response(asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
