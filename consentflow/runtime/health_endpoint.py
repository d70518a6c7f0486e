"""The health probe over HTTP: ``GET /live`` and ``GET /ready`` from a thread of their own.

200 with ``{"live": true}`` / ``{"ready": true}``, or 503 with the reason, e.g.
``{"ready": false, "reason": "Kafka at 127.0.0.1:9092 not answering for 12 s"}``; any other
path is 404. The server runs in a daemon thread, apart from the loop it reports on, so a
stuck loop still gets its 503 (``consentflow.runtime.health``). It binds to 127.0.0.1 unless told
otherwise: a container's own healthcheck reaches that; a Kubernetes kubelet needs 0.0.0.0.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from consentflow.runtime.health import Health, Verdict

log = logging.getLogger("consentflow.health_endpoint")  # the logger name from before the layout (issue 20): log filters know it

DEFAULT_HOST = "127.0.0.1"


class HealthEndpoint:
    """``/live`` and ``/ready`` of ``health`` on ``host:port`` (port 0: any free one, see ``port``), until ``close``."""

    def __init__(self, health: Health, port: int, host: str = DEFAULT_HOST) -> None:
        self.health = health
        self._server = ThreadingHTTPServer((host, port), _handler_for(health))
        self._server.daemon_threads = True  # a probe never holds the process open
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-endpoint", daemon=True)
        self._thread.start()
        log.info("health probes on http://%s:%d/live and /ready", host, self.port)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop answering and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler_for(health: Health) -> type[BaseHTTPRequestHandler]:
    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/live":
                self._answer("live", health.liveness())
            elif path == "/ready":
                self._answer("ready", health.readiness())
            else:
                self._send(404, {"error": f"no such probe: {path}; ask /live or /ready"})

        def _answer(self, probe: str, verdict: Verdict) -> None:
            body: dict[str, object] = {probe: verdict.ok}
            if verdict.reason is not None:
                body["reason"] = verdict.reason
            self._send(200 if verdict.ok else 503, body)

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a probe every few seconds is not news; failures show in the process's own log lines

    return Probe


__all__ = ["DEFAULT_HOST", "HealthEndpoint"]
