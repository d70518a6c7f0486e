"""The health probe over HTTP: ``GET /live`` and ``GET /ready`` from a thread of their own; ``GET /metrics`` too.

200 with ``{"live": true}`` / ``{"ready": true}``, or 503 with the reason, e.g.
``{"ready": false, "reason": "Kafka at 127.0.0.1:9092 not answering for 12 s"}``; any other
path is 404. The server runs in a daemon thread, apart from the loop it reports on, so a
stuck loop still gets its 503 (``consentflow.runtime.health``). It binds to 127.0.0.1 unless told
otherwise: a container's own healthcheck reaches that; a Kubernetes kubelet needs 0.0.0.0.
Given a registry, ``/metrics`` serves it as Prometheus text (``consentflow.runtime.metrics``), on the same port:
counts of topics, tables and error types, no subject's data.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from consentflow.runtime.health import Health, Verdict

if TYPE_CHECKING:  # the command line imports this module: prometheus_client loads only with a registry
    from prometheus_client import CollectorRegistry

log = logging.getLogger("consentflow.health_endpoint")  # the logger name from before the layout (issue 20): log filters know it

DEFAULT_HOST = "127.0.0.1"


class HealthEndpoint:
    """``/live`` and ``/ready`` of ``health`` on ``host:port`` (port 0: any free one, see ``port``), until ``close``;
    ``/metrics`` of ``metrics`` when given."""

    def __init__(self, health: Health, port: int, host: str = DEFAULT_HOST, metrics: CollectorRegistry | None = None) -> None:
        self.health = health
        self._server = ThreadingHTTPServer((host, port), _handler_for(health, metrics))
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


def _handler_for(health: Health, metrics: CollectorRegistry | None) -> type[BaseHTTPRequestHandler]:
    asked = "/live, /ready or /metrics" if metrics is not None else "/live or /ready"

    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/live":
                self._answer("live", health.liveness())
            elif path == "/ready":
                self._answer("ready", health.readiness())
            elif path == "/metrics" and metrics is not None:
                self._metrics(metrics)
            else:
                self._send(404, {"error": f"no such probe: {path}; ask {asked}"})

        def _metrics(self, registry: CollectorRegistry) -> None:
            from consentflow.runtime.metrics import CONTENT_TYPE, exposition

            data = exposition(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
