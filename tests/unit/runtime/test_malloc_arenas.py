"""The worker's threads share a bounded number of malloc arenas (consentflow/runtime/malloc_arenas.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Eight threads allocate at once and hold what they allocated; then glibc's malloc_stats lists the
# process's arenas ("Arena N:"), one block each.
_CHILD = """
import json, sys, threading
from consentflow.runtime.malloc_arenas import limit_malloc_arenas
limited = limit_malloc_arenas(2) if sys.argv[1] == "limit" else None
barrier = threading.Barrier(8)
kept = []
def allocate():
    barrier.wait()
    kept.append([bytearray(4096) for _ in range(2000)])
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
import ctypes, ctypes.util, os
libc = ctypes.CDLL(ctypes.util.find_library("c"))
os.dup2(1, 2)  # malloc_stats writes to stderr: read it from stdout
sys.stdout.flush()
libc.malloc_stats()
print(json.dumps({"limited": limited}))
"""


def _arenas(mode: str) -> dict[str, int | bool | None]:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], check=True, capture_output=True, text=True).stdout
    report = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    report["arenas"] = sum(line.startswith("Arena ") for line in out.splitlines())
    return report  # type: ignore[no-any-return]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_threads_allocating_at_once_share_at_most_the_arenas_allowed() -> None:
    limited = _arenas("limit")
    if limited["limited"] is False:
        pytest.skip("libc is not glibc: no mallopt arena limit")
    unlimited = _arenas("free")
    assert limited["limited"] is True
    assert 1 <= limited["arenas"] <= 2
    assert unlimited["arenas"] > limited["arenas"]  # what the limit prevents happens without it
