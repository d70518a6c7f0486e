"""How many malloc arenas the worker's threads share.

glibc gives each thread that allocates concurrently an arena of its own, up to
eight per core, each reserving 64 MiB and keeping what it freed for reuse by
that arena only. The worker's threads (faust's consumer thread, librdkafka's,
RocksDB's, the thread pool behind ``asyncio.to_thread``) churn through fetch
buffers and records, and with a large state such arenas hold a good part of
the worker's memory (bench/RESULTS.md §4.4). Two arenas bound that, at the price
of some contention between threads that allocate at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's ``mallopt`` parameter for the arena limit (malloc.h: ``M_ARENA_MAX``).
_M_ARENA_MAX = -8
#: Arenas the worker's threads share.
WORKER_ARENAS = 2


def limit_malloc_arenas(arenas: int = WORKER_ARENAS) -> bool:
    """Let threads started from now on share at most ``arenas`` malloc arenas; False where libc is not glibc.

    Call it before starting threads: arenas already made stay.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # musl and others: no arenas to limit this way
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
