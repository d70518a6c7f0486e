"""The worker's asyncio event loop: uvloop where it is installed (a dependency).

faust's per-message layer runs on the event loop: futures made, callbacks scheduled, for every message. uvloop's
loop does that work in C (issue 25 measured faust's agents 20 % faster on it). The sink runs no event loop: it is
librdkafka's threads and a plain Python loop, so there is nothing to change there.
"""

from __future__ import annotations

import asyncio


def use_uvloop() -> str:
    """Make uvloop's the event loop of every loop made from now on; the loop's name for the startup line (plain
    ``asyncio`` where uvloop is not installed)."""
    try:
        import uvloop
    except ImportError:  # a platform without its wheel (Windows): the standard loop works, slower
        return "asyncio"
    from importlib.metadata import version

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return f"uvloop {version('uvloop')}"


__all__ = ["use_uvloop"]
