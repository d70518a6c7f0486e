"""A minimal OpenLineage HTTP endpoint, for tests only: what Marquez's ``POST /api/v1/lineage`` does to a client.

Marquez needs PostgreSQL and a JVM service this machine does not run, so this serves, over real HTTP on 127.0.0.1,
the one call openlineage-python's HTTP transport makes: a JSON run event posted to the lineage endpoint, answered
201 (as Marquez answers), or the status a test asks for. It keeps each body and its ``Authorization`` header.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENDPOINT = "/api/v1/lineage"


@dataclass
class Received:
    """What the endpoint got, in order; ``status`` is what it answers."""

    events: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    status: int = 201
    lock: threading.Lock = field(default_factory=threading.Lock)


class LineageServer:
    """``with LineageServer() as server:`` a lineage endpoint at ``server.url``; ``server.received`` holds the posts."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with received.lock:
                    status = received.status
                    if self.path == ENDPOINT and status < 300:
                        received.events.append(json.loads(body))
                        received.authorizations.append(self.headers.get("Authorization"))
                self.send_response(status if self.path == ENDPOINT else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the test output is the test's
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL (the transport adds ``api/v1/lineage``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LineageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
