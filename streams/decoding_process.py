"""An event file decoded in a second process, for the embedded runner.

Decoding a container file (inflating its blocks, fastavro, the contracts'
logical readers) costs the embedded runner about as much as the processors do,
and it needs nothing they hold. A child process decodes the file in order and
hands the records over in pickled chunks, which unpickle at a fraction of the
cost of decoding: the runner's own process is left with processing and writing,
on a machine's second core. One child and one pipe keep the file's order.

Frames on the child's stdout: an 8-byte big-endian length, then a pickle of
``("events", [(topic short name, record), ...])`` (the gate's dead letters among them, as ``("dead-letter",
record)``) or, when decoding fails,
``("contract-error", (topic, reason, field))``, ``("os-error", (errno, text, filename))``.
The pickles come from our own child only, never from input.

Timestamps cross as the integers the file stores (``timestamp_plan``): pickling a
datetime cost the child more than decoding the rest of its event. Once the file's
header is read, the child sends ``("timestamps", plan)`` (the plan of its writer
schema, or None when it has none: then the records carry datetimes), and the
runner makes the datetimes as it takes the events.
"""

from __future__ import annotations

import contextlib
import fcntl
import pickle
import struct
import subprocess
import sys
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import EventTimeBounds
from consentflow.contracts.timestamp_plan import Plan, RecordConverter, as_is, micros, record_converters, timestamp_plan
from consentflow.contracts.topics import Topic, topic_named

_LENGTH = struct.Struct(">Q")


class DecodingProcessFailed(RuntimeError):
    """The decoding process died or broke its framing (killed, out of memory): not a fault of the file."""


#: The pipe's buffer: about five frames.
PIPE_BYTES = 1 << 20

#: Events per frame: big enough that framing costs nothing, small enough that the runner starts at once.
CHUNK = 2_000


def read_events_in_child(
    path: str | Path, chunk: int = CHUNK, *, arrival: datetime | None = None, bounds: EventTimeBounds | None = None
) -> Iterator[tuple[Topic, dict[str, Any]]]:
    """``eventfile.read_checked(path, Gate(bounds), arrival)``, read by a child process: the same items in the same
    order (dead letters among them, as ``(DEAD_LETTER, record)``), the same errors.

    The gate runs in the child, on the second core. ``arrival`` (default: now) is the run's time, the arrival of every
    event of the file; ``bounds`` default to the environment's (``EventTimeBounds.from_env``).

    ``-`` reads standard input (the child inherits it). The child starts at once, so that its start-up
    (its imports) overlaps whatever the caller does before asking for the first event,
    such as opening ClickHouse. Closing the iterator early, or dropping it, stops the child. A file that
    breaks off mid-way yields what decoded before the fault, then a ``ReadingStopped`` dead letter naming the byte.
    """
    bounds = bounds or EventTimeBounds.from_env()
    arrived = micros(arrival or datetime.now(UTC))
    gate = [str(arrived), str(micros(bounds.earliest)), str(bounds.skew // timedelta(microseconds=1))]
    command = [sys.executable, "-m", "consentflow.streams.decoding_process", str(path), str(chunk), *gate]
    child = subprocess.Popen(command, stdout=subprocess.PIPE)  # stdin and stderr inherited
    _deepen(child.stdout)
    events = _events_from(child, path)
    weakref.finalize(events, _stop, child)  # a generator never started runs no ``finally``
    return events


def _deepen(pipe: IO[bytes] | None) -> None:
    """Let the child run several frames ahead (Linux: the pipe's buffer from 64 KiB to 1 MiB, the unprivileged
    maximum), so that a moment when ClickHouse's threads hold the child's core does not leave the runner waiting."""
    if pipe is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):  # a smaller maximum (fs.pipe-max-size) keeps the default: only slower
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    if child.stdout is not None:
        child.stdout.close()
    child.wait()


def _events_from(child: subprocess.Popen[bytes], path: str | Path) -> Iterator[tuple[Topic, dict[str, Any]]]:
    assert child.stdout is not None
    try:
        topics: dict[str, tuple[Topic, RecordConverter | None]] = {}  # short name -> topic, its timestamp converter
        converters: dict[str, RecordConverter] = {}
        while True:
            frame = _read_frame(child.stdout)
            if frame is None:
                break
            kind, payload = frame
            if kind == "events":
                for name, record in payload:
                    known = topics.get(name)
                    if known is None:
                        topic = topic_named(name)
                        known = topics[name] = (topic, converters.get(topic.record))
                    topic, convert = known
                    if convert is not None:
                        try:
                            convert(record)
                        except (OverflowError, ValueError) as exc:  # as fastavro fails on such an integer, in the child
                            raise ContractError(str(path), f"cannot be decoded: {type(exc).__name__}: {exc}") from None
                    yield topic, record
            elif kind == "timestamps":
                converters = record_converters(payload) if payload is not None else {}
            elif kind == "contract-error":
                raise ContractError(*payload)
            elif kind == "os-error":
                raise OSError(*payload)
            else:
                raise DecodingProcessFailed(f"decoding process sent an unknown frame {kind!r}")
        code = child.wait()
        if code != 0:
            raise DecodingProcessFailed(f"decoding process for {path} exited with code {code} before the end of the file")
    finally:
        _stop(child)


def _read_frame(stream: IO[bytes]) -> tuple[str, Any] | None:
    header = stream.read(_LENGTH.size)
    if not header:
        return None
    if len(header) < _LENGTH.size:
        raise DecodingProcessFailed("decoding process stopped in the middle of a frame")
    (size,) = _LENGTH.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise DecodingProcessFailed("decoding process stopped in the middle of a frame")
    frame: tuple[str, Any] = pickle.loads(body)
    return frame


def _write_frame(stream: IO[bytes], kind: str, payload: Any) -> None:
    body = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)))
    stream.write(body)


def main(argv: list[str]) -> int:
    """The child: read ``argv[0]`` in chunks of ``argv[1]`` events onto stdout, through the gate, the events' arrival
    ``argv[2]`` and the bounds ``argv[3]`` (earliest) and ``argv[4]`` (skew), all in microseconds (without them: now,
    and the environment's bounds)."""
    from consentflow.contracts.eventfile import read_checked
    from consentflow.contracts.gate import Gate
    from consentflow.runtime.gc_tuning import tune_for_streaming

    tune_for_streaming()  # it allocates a dict per event and keeps none: the collector has nothing to find
    path, chunk = argv[0], int(argv[1])
    if len(argv) >= 5:
        arrival = int(argv[2])
        earliest = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(argv[3]))
        gate = Gate(EventTimeBounds(earliest, timedelta(microseconds=int(argv[4]))))
    else:  # run by hand: now, and the environment's bounds
        arrival, gate = micros(datetime.now(UTC)), Gate()
    out = sys.stdout.buffer
    batch: list[tuple[str, dict[str, Any]]] = []

    def send_timestamp_plan(writer_schema: Any) -> None:
        plan: Plan | None = None if writer_schema is None else timestamp_plan(writer_schema)
        if plan is not None:
            import fastavro

            # This process only decodes: fastavro's reader is looked up for each value, so from here on
            # the file's timestamps stay the integers it stores, and the runner makes the datetimes.
            fastavro.read.LOGICAL_READERS["long-timestamp-micros"] = as_is
        _write_frame(out, "timestamps", plan)

    try:
        for topic, record in read_checked(path, gate, arrival, on_schema=send_timestamp_plan):
            batch.append((topic.short_name, record))
            if len(batch) >= chunk:
                _write_frame(out, "events", batch)
                batch = []
        _write_frame(out, "events", batch)
    except BrokenPipeError:
        return 0  # the reader stopped early
    except ContractError as exc:
        _write_frame(out, "events", batch)  # what decoded before the fault still counts, as when read in process
        _write_frame(out, "contract-error", (exc.topic, exc.reason, exc.field))
    except OSError as exc:
        _write_frame(out, "os-error", (exc.errno, exc.strerror, exc.filename))
    except Exception as exc:  # noqa: BLE001 -- a corrupt block: name the file and what fastavro said
        _write_frame(out, "events", batch)
        _write_frame(out, "contract-error", (str(path), f"cannot be decoded: {type(exc).__name__}: {exc}", None))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
