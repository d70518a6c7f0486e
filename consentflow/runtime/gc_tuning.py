"""The cyclic garbage collector's thresholds for the pipeline's processes.

The drivers allocate and drop records by the hundred thousand: decoded events,
output records, rows. Reference counting frees nearly all of them; the cyclic
collector would still walk the young ones every 700 allocations and the whole
heap (subject states, sink buffers) every hundred such passes, for almost
nothing. Collecting the young generation every 100,000 allocations instead
makes the drivers faster (bench/RESULTS.md §5). Cycles are still collected,
only less often.
"""

from __future__ import annotations

import gc

#: Allocations between young-generation collections, and the two older generations' ratios.
STREAMING_THRESHOLDS = (100_000, 50, 100)


def tune_for_streaming() -> None:
    """Set the collector's thresholds for a process that streams events (run and its decoding process, worker, sink, replay)."""
    gc.set_threshold(*STREAMING_THRESHOLDS)
