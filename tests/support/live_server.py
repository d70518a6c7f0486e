"""``create_app`` served by a real uvicorn on a loopback port, in a thread of the test process (chDB is one engine
per process: the server shares the tests' engine)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from consentflow.http.app import create_app
from consentflow.http.context import Server, ServerSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    """A ``consentflow`` app served by uvicorn in this process."""

    app: FastAPI
    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def server(self) -> Server:
        server = self.app.state.server
        assert isinstance(server, Server)
        return server


@contextmanager
def served(settings: ServerSettings) -> Iterator[Live]:
    """``create_app(settings)`` served on a free loopback port for the ``with`` block."""
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Live(app, "127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
