"""faust's own ceiling: the worker's input topics through faust agents that do nothing.

Run by bench/pipeline.py as a subprocess (faust wants its own process and
command line): ``python bench/faust_ceiling.py PREFIX EXPECTED worker -l warning``.
On uvloop, as the worker runs; ``CEILING_DRAIN=faust`` in the environment keeps
faust's own per-message path (its race in the fetcher loop, its stream's
``take_events``), else the worker's bypass (``streams/faust_compat``:
``DrainingConsumer`` hands messages over, ``queued_batches`` takes batches).
One agent per subject-keyed input topic takes batches as the real worker
does (its batch size), and only counts them; when every event has arrived it
prints ``{"events": N, "seconds": S}`` and exits. Whatever the worker does
beyond this is our code; this much is faust's per-message path.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterable
from typing import Any

import faust

from consentflow.contracts.topics import INPUT_TOPICS
from consentflow.runtime.event_loop import use_uvloop
from consentflow.streams.faust_compat import DrainingConsumer, QuietMonitor, batches
from consentflow.streams.worker import BATCH_SIZE, MAX_POLL_RECORDS, STREAM_BUFFER_MAXSIZE


def main() -> None:
    """Consume ``EXPECTED`` events from the ``PREFIX`` topics, print the time it took."""
    prefix, expected = sys.argv[1], int(sys.argv[2])
    sys.argv = [sys.argv[0], *sys.argv[3:]]  # faust's Worker reads the rest of the command line
    use_uvloop()  # before faust makes its loop, as the worker does
    at_once = os.environ.get("CEILING_DRAIN", "bypass") != "faust"
    app = faust.App(
        f"{prefix}-ceiling-{os.getpid()}",
        broker="kafka://127.0.0.1:9092" if "BOOTSTRAP" not in os.environ else f"kafka://{os.environ['BOOTSTRAP']}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="consentflow-ceiling-"),  # not the caller's working directory
        web_enabled=False,
        topic_partitions=6,
        consumer_auto_offset_reset="earliest",
        # The worker's settings, unless bench/faust_sizes.py tries others.
        broker_max_poll_records=int(os.environ.get("CEILING_MAX_POLL", MAX_POLL_RECORDS)),
        stream_buffer_maxsize=int(os.environ.get("CEILING_BUFFER", STREAM_BUFFER_MAXSIZE)),
        # The worker's QuietMonitor; CEILING_MONITOR=faust for faust's own (RESULTS §28).
        **({} if os.environ.get("CEILING_MONITOR") == "faust" else {"monitor": QuietMonitor()}),
    )
    transport: Any = app.transport

    def consumer(*args: Any, **kwargs: Any) -> DrainingConsumer:
        made = DrainingConsumer(*args, **kwargs)
        made.deliver_at_once = at_once
        return made

    transport.Consumer = consumer
    seen = [0]
    began: list[float] = []

    def make_agent(short: str) -> Any:
        async def agent(stream: AsyncIterable[Any]) -> None:
            async for events in batches(stream, BATCH_SIZE, 0.5, past_stream_layer=at_once):
                if not began:
                    began.append(time.perf_counter())
                seen[0] += len(events)
                if seen[0] >= expected:
                    print(json.dumps({"events": seen[0], "seconds": time.perf_counter() - began[0]}), flush=True)
                    os._exit(0)

        agent.__name__ = f"count_{short.replace('-', '_')}"
        return agent

    for topic in INPUT_TOPICS:
        if topic.compacted:
            continue
        channel = app.topic(topic.name(prefix), key_serializer="raw", value_serializer="raw")
        app.agent(channel, name=f"ceiling.{topic.short_name}")(make_agent(topic.short_name))
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
