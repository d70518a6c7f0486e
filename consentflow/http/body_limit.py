"""Request bodies bounded before they are read: a pure ASGI middleware, a limit per kind of route.

A body larger than its route takes is refused with 413 before the handler
reads it: at once when ``Content-Length`` announces more, and as soon as the
bytes counted on arrival exceed the limit otherwise (chunked bodies). The
answer closes the connection, so the server reads no more of what the client
still sends. The limits are small by default (a login form, one event, a
replay request are a few hundred bytes) and set with ``serve --max-body-bytes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentflow.http.errors import API_PREFIX, error_response

KIB = 1024
MIB = 1024 * KIB
_UNITS = {"": 1, "b": 1, "kib": KIB, "k": KIB, "mib": MIB, "m": MIB, "gib": 1024 * MIB, "g": 1024 * MIB}
_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body, in bytes, each kind of route takes: the login form, the collector, a replay
    request, and every other route."""

    login: int = 64 * KIB
    collect: int = MIB
    replay: int = 64 * KIB
    other: int = 64 * KIB

    def of(self, path: str) -> tuple[str, int]:
        """The kind of route ``path`` is and its limit."""
        if path == "/login":
            return "login", self.login
        if path.startswith(f"{API_PREFIX}/collect/"):
            return "collect", self.collect
        if path == f"{API_PREFIX}/audit/replay":
            return "replay", self.replay
        return "other", self.other

    def with_setting(self, text: str) -> BodyLimits:
        """These limits with one ``ROUTE=SIZE`` setting applied (``collect=2MiB``); ``ValueError`` naming what is wrong."""
        route, sep, size = text.partition("=")
        route = route.strip()
        if not sep or route not in ROUTES:
            raise ValueError(f"--max-body-bytes {text!r}: expected ROUTE=SIZE with ROUTE one of {', '.join(ROUTES)}")
        return replace(self, **{route: parse_size(size, f"--max-body-bytes {route}")})


#: The kinds of route a limit is set for.
ROUTES = ("login", "collect", "replay", "other")


def parse_size(text: str, name: str) -> int:
    """A size in bytes: digits, optionally followed by KiB, MiB or GiB (``64KiB``); at least 1 byte."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or int(match.group(1)) < 1:
        raise ValueError(f"{name}: {text!r} is not a size (a positive number of bytes, optionally KiB, MiB or GiB)")
    return int(match.group(1)) * _UNITS[unit]


def size_text(size: int) -> str:
    """``size`` bytes as a reader writes them: ``64 KiB``, ``1 MiB``, ``1000 bytes``."""
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} bytes"


def _announced_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


class BodyLimit:
    """The ASGI middleware: 413 naming the limit for a body larger than its route takes, before it is read."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a receive that counts the body's bytes; refuse once they exceed the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, limit = self.limits.of(scope["path"])
        announced = _announced_length(scope)
        if announced is not None and announced > limit:
            await _refuse(scope, send, route, limit, f"{announced:,} bytes announced")
            return
        received = 0
        started = refused = cut = False

        async def counted() -> Message:
            nonlocal received, refused, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    if not started:
                        refused = True
                        await _refuse(scope, send, route, limit, f"more than {size_text(limit)} sent")
                    # The handler sees the client gone and reads no further.
                    return {"type": "http.disconnect"}
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; what the handler says about the cut body is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not refused:
                raise
            # The handler failed on the body it was denied: the 413 already answered it.


async def _refuse(scope: Scope, send: Send, route: str, limit: int, what: str) -> None:
    detail = f"body: {what}; this route takes at most {size_text(limit)} (serve --max-body-bytes {route}=SIZE sets the limit)"
    response = error_response(Request(scope), 413, detail, "body", {"Connection": "close"})

    async def nothing_read() -> Any:
        return {"type": "http.disconnect"}

    await response(scope, nothing_read, send)
