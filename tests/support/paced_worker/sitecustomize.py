"""Loaded at start-up by a worker subprocess given this folder on PYTHONPATH (``Pipeline.start_worker(paced=True)``):
after each batch the worker pauses ``CONSENTFLOW_TEST_PACE`` seconds, so that a test acting mid-stream (a kill, a
SIGTERM, the broker stopped) finds the worker mid-stream however fast it has become. The whole stream took about two
seconds unpaced, less than the group's commits and the test's polls need to see it half done. Only the time between
batches changes; each batch runs as the worker runs it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from consentflow.streams.worker import Worker

PAUSE = float(os.environ["CONSENTFLOW_TEST_PACE"])
_process_batch = Worker.process_batch


async def _paced(self: Worker, events: list[Any], topic: Any) -> None:
    await _process_batch(self, events, topic)
    await asyncio.sleep(PAUSE)


Worker.process_batch = _paced  # type: ignore[method-assign]
