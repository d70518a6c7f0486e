"""The notary over Kafka (issue 22): every ledger entry and erasure notice, as its output message was written, becomes
a leaf of its output partition's log ``"<topic>/<partition>"``, in offset order: Kafka's own order, so the workers
need no coordination and each log is a partition's history as any consumer reads it.

Transport-free: a driver (the sink's consumer, or ``notary.consumer.NotaryConsumer``) calls ``note`` for each message
it consumed, ``write`` once what it noted may be appended (after the sink's rows, before its offsets are committed),
and ``sign_due`` on a turn with nothing to read. Redelivered messages are skipped by offset: a log holds each offset
once, so a restart from the last committed offset appends only what the log lacks. A worker that re-produced its
outputs after a crash wrote them again at new offsets: those are leaves too (the log records what was written; the
tables deduplicate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consentflow.core.checkpoint import Signer
from consentflow.notary.step import CHECKPOINT_EVERY
from consentflow.notary.store import Leaf, LogStore, leaf_of
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.tables import CHECKPOINTS

#: Seconds at most between a leaf's append and the checkpoint that signs it (issue 22: at least every 10 s).
CHECKPOINT_INTERVAL = 10.0


def log_id_of(topic_name: str, partition: int) -> str:
    """The log of an output partition: ``"<topic name>/<partition>"``."""
    return f"{topic_name}/{partition}"


@dataclass
class _FollowedLog:
    """One log as the follower keeps it: its store, the offset it holds up to, what waits and what is unsigned."""

    store: LogStore
    last_offset: int | None  # the highest offset the log holds; a message at or below it is already a leaf
    pending: dict[int, Leaf] = field(default_factory=dict)  # by offset: a message delivered twice is one leaf
    unsigned: int = 0  # leaves appended since the last checkpoint
    unsigned_since: float | None = None  # when the oldest unsigned leaf was noted
    pending_since: float | None = None  # when the oldest pending leaf was noted


class LogFollower:
    """The logs of the output partitions a driver consumes, appended to ``sink``'s database and signed by ``signer``
    every ``every`` leaves and at most ``interval`` seconds after a leaf; each signed note goes to the checkpoints
    table and to ``publish(log_id, note)``."""

    def __init__(
        self,
        sink: ClickHouseSink,
        signer: Signer,
        *,
        every: int = CHECKPOINT_EVERY,
        interval: float = CHECKPOINT_INTERVAL,
        publish: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1 leaf, got {every}")
        self.sink = sink
        self.signer = signer
        self.every = every
        self.interval = interval
        self.publish = publish
        self.clock = clock
        self.logs: dict[str, _FollowedLog] = {}
        self.appended = 0  # leaves this follower appended
        self.skipped = 0  # messages noted that their log already held (redelivered after a restart)
        self.signed = 0  # checkpoints this follower signed

    # -- noting --------------------------------------------------------------------------

    def note(self, topic_name: str, partition: int, offset: int, short_name: str, record: Mapping[str, Any]) -> None:
        """Keep the output message at ``offset`` of ``topic_name``'s ``partition`` (its record decoded, its topic's
        short name ``short_name``) as a leaf of that partition's log, if it is a ledger entry or an erasure notice."""
        leaf = leaf_of(short_name, record)
        if leaf is None:
            return
        followed = self._followed(log_id_of(topic_name, partition))
        if followed.last_offset is not None and offset <= followed.last_offset:
            self.skipped += 1
            return
        if not followed.pending:
            followed.pending_since = self.clock()
        followed.pending[offset] = leaf

    def _followed(self, log_id: str) -> _FollowedLog:
        """The log ``log_id``, opened on first use: where it ends (its last offset, its right edge), and its leaves a
        checkpoint has not signed yet (a restart's), which wait from now."""
        followed = self.logs.get(log_id)
        if followed is None:
            store = LogStore.of_sink(self.sink, log_id)
            followed = _FollowedLog(store, store.last_offset())
            signed = self._signed_size(log_id)
            if store.size > signed:
                followed.unsigned, followed.unsigned_since = store.size - signed, self.clock()
            self.logs[log_id] = followed
        return followed

    def _signed_size(self, log_id: str) -> int:
        rows = self.sink.reader.query(
            f"SELECT max(size) FROM {{db:Identifier}}.`{CHECKPOINTS.name}` WHERE log_id = {{log:String}}", {"log": log_id}
        )
        return int(rows[0][0] or 0) if rows else 0

    @property
    def pending(self) -> int:
        """Leaves noted and not yet appended."""
        return sum(len(followed.pending) for followed in self.logs.values())

    def write_due(self, max_leaves: int, max_seconds: float) -> bool:
        """Whether ``max_leaves`` leaves wait, or one has waited ``max_seconds`` (a driver's batch, as its sink's)."""
        oldest = min((f.pending_since for f in self.logs.values() if f.pending_since is not None), default=None)
        return self.pending >= max_leaves or (oldest is not None and self.clock() - oldest >= max_seconds)

    # -- writing and signing -----------------------------------------------------------

    def write(self) -> int:
        """Append every pending leaf to its log in offset order, a checkpoint's worth at most per insert, and sign
        each log ``every`` leaves or ``interval`` seconds call for; returns how many leaves were appended. Call once
        the rows the leaves stand for are in the tables, and before the messages' offsets are committed."""
        appended = 0
        for log_id, followed in self.logs.items():
            if not followed.pending:
                continue
            ready = sorted(followed.pending.items())
            noted = followed.pending_since
            followed.pending.clear()
            followed.pending_since = None
            while ready:
                chunk, ready = ready[: self.every - followed.unsigned], ready[self.every - followed.unsigned :]
                followed.store.append([leaf for _, leaf in chunk], offsets=[offset for offset, _ in chunk])
                followed.last_offset = chunk[-1][0]
                followed.unsigned += len(chunk)
                if followed.unsigned_since is None:  # these leaves wait for a checkpoint since they were noted
                    followed.unsigned_since = noted
                appended += len(chunk)
                if followed.unsigned >= self.every:
                    self._sign(log_id, followed)
        self.appended += appended
        self.sign_due()
        return appended

    def sign_due(self) -> int:
        """Sign each log whose oldest unsigned leaf has waited ``interval`` seconds (a driver's idle turn); how many."""
        now = self.clock()
        due = [
            (log_id, followed)
            for log_id, followed in self.logs.items()
            if followed.unsigned and followed.unsigned_since is not None and now - followed.unsigned_since >= self.interval
        ]
        for log_id, followed in due:
            self._sign(log_id, followed)
        return len(due)

    def sign_unsigned(self) -> int:
        """Sign every log with leaves no checkpoint signs yet (a driver's clean stop: its logs signed to their end)."""
        due = [(log_id, followed) for log_id, followed in self.logs.items() if followed.unsigned]
        for log_id, followed in due:
            self._sign(log_id, followed)
        return len(due)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the logs of ``partitions`` (topic name, partition), revoked from the driver: their pending leaves
        (their offsets uncommitted: the partition's next owner appends them) and what was known of their end, which
        the next owner moves; a log assigned again is read afresh."""
        for topic_name, partition in partitions:
            self.logs.pop(log_id_of(topic_name, partition), None)

    def _sign(self, log_id: str, followed: _FollowedLog) -> None:
        note = followed.store.sign(self.signer)
        followed.unsigned, followed.unsigned_since = 0, None
        self.signed += 1
        if self.publish is not None:
            self.publish(log_id, note)
