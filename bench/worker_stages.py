"""Where a worker's CPU goes, by stage: py-spy's collapsed stacks of a running worker, each sample given to the stage
of the innermost frame that names one, and the stage's share turned into µs of CPU per event.

Used by ``bench/pipeline.py --profile-worker``: py-spy samples the worker of (b) (``py-spy record --format raw``);
``stage_shares`` reads the file. Stages, by the function that marks them (the first found from the leaf up wins):

- decode and gate: ``Gate.admit`` (the codec's decode and the edge checks, with the Kafka timestamp as arrival);
- processors: ``Processor.process``, and ``InputStep.message`` whose compiled callee's frames do not show;
- outputs: ``Worker.write_output`` (encoding, librdkafka's produce);
- acknowledge: ``Worker.acknowledge`` and the producer's ``flush`` it runs in a thread (the wait is idle, not sampled);
- state writes: ``TableStore.write_batch`` and ``changelog_acknowledged`` (pickling, RocksDB, the changelog);
- retention ticks: ``Worker.retention``;
- worker's own per-event: the rest of ``Worker.process_batch`` / ``process_event`` (origins, watermark, books);
- faust: every other Python frame of the main thread (fetcher, conductor, streams, the loop);
- other threads: librdkafka's, aiokafka's and the thread pool's Python frames.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

#: (stage, function names marking it), in the order a sample is checked against them from its leaf up.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode and gate", ("Gate.admit (",)),
    # Compiled, the processors' own frames do not show: their time is the calling frame's.
    ("processors", ("Processor.process (", "InputStep.message (")),
    ("outputs", ("Worker.write_output (",)),
    ("acknowledge", ("Worker.acknowledge (", "EventProducer.flush (")),
    ("state writes", ("TableStore.write_batch (", "TableStore.changelog_acknowledged (")),
    ("retention ticks", ("Worker.retention (",)),
    ("worker's own per-event", ("Worker.process_event (", "Worker.process_batch (", "Worker.count_processed (")),
)


def stage_of(frames: list[str]) -> str:
    """The stage one sample belongs to: its frames root first, as py-spy's raw format writes them."""
    for frame in reversed(frames):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    return "faust and the loop"


def stage_shares(raw: Path) -> dict[str, float]:
    """Each stage's share of the samples in py-spy's raw output (``frame;frame;... count`` per line)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")  # "thread (TID): NAME", then the frames from the root
        stage = stage_of(frames)
        if stage == "faust and the loop" and not thread.endswith(": MainThread"):
            stage = "other threads"
        counts[stage] += int(count)
    total = sum(counts.values()) or 1
    return {stage: counts[stage] / total for stage, _ in (*STAGES, ("faust and the loop", ()), ("other threads", ()))}


__all__ = ["STAGES", "stage_of", "stage_shares"]
