"""faust's books of acknowledged offsets, kept so that its commits follow what the worker processed.

Two ways they went wrong, both seen after a rebalance mid-stream (``tests/test_faults_handover_kafka.py``).

Read-back events (faust-streaming #216).
When faust's fetcher jumps over offsets it files the jump as a gap, which it counts as
acknowledged at its next commit (made for compacted topics and transaction markers). The
worker reads those events back and acknowledges them once processed; acknowledged twice,
an offset stands twice in faust's sorted list, whose first consecutive run then ends at
the first repeat: faust's commits crept one offset a second and the group's lag froze.
Here each read-back offset is taken out of faust's gap before it is acknowledged, and
not acknowledged when faust has already counted it from the gap.

A committed offset faust read before the group's last commit (seen: 89 where the group stood at 169, the
offsets between done by the worker that died): faust's next commit waits for 89 to be acknowledged, which
never comes, so ``tidy_acknowledged`` raises it to the group's committed offset read on assignment; offsets
below that one are done, their outputs in Kafka before the commit.

Repeats from elsewhere: an offset can still stand twice in the list after a rebalance (messages of the
revoked assignment acknowledged after the new one began), with the same creep; ``tidy_acknowledged``
takes repeats, and offsets below the committed one, out of the list before each of faust's commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.types import TP
from faust.types.tuples import Message, ack_lock


def ack_read_back(consumer: Any, message: Message) -> None:
    """Acknowledge ``message``, read back after faust skipped it, once in faust's ``consumer``'s books."""
    tp = message.tp
    with ack_lock:  # faust's own, held by its ack: the gap, the list and the ack change as one step
        gap = consumer._gap.get(tp)
        if gap:
            gap.chop(message.offset, message.offset + 1)
        if message.offset in consumer._acked.get(tp, ()):
            return  # faust moved it from its gap into the acknowledged list already
        consumer.ack(message)


def tidy_acknowledged(consumer: Any, group_committed: Mapping[TP, int]) -> None:
    """Each partition's acknowledged offsets in faust's ``consumer`` once each, none below its committed offset; and
    faust's committed offset no lower than the group's as read on assignment (``group_committed``)."""
    with ack_lock:
        for tp, floor in group_committed.items():
            if (consumer._committed_offset.get(tp) or 0) < floor:
                consumer._committed_offset[tp] = floor
        for tp, acked in consumer._acked.items():
            committed = consumer._committed_offset.get(tp)
            tidy = sorted({offset for offset in acked if committed is None or offset >= committed})
            if tidy != acked:
                acked[:] = tidy
                consumer._acked_index[tp] = set(tidy)


__all__ = ["ack_read_back", "tidy_acknowledged"]
