"""The notary's step inside the embedded runner (``consentflow run FILE --notary-key PATH``, issue 22): every ledger
entry and erasure notice the run writes becomes a leaf of the log ``"embedded"``, in file order, and a checkpoint is
signed every ``CHECKPOINT_EVERY`` leaves and at the end.

The driver calls ``note`` for each output it gives the sink, ``write`` once the sink holds what it was given (so
a leaf never precedes its row), and ``finish`` after its last flush. A run without a key has no step: no log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from consentflow.core.checkpoint import Signer
from consentflow.notary.store import Leaf, LogStore, leaf_of

#: Leaves between two checkpoints at most (issue 22): each checkpoint signs a size that is a multiple of it, but the last.
CHECKPOINT_EVERY = 10_000


class NotaryStep:
    """Leaves of one log waiting for the sink's flush, appended to ``store`` and signed with ``signer``."""

    def __init__(self, store: LogStore, signer: Signer, *, every: int = CHECKPOINT_EVERY) -> None:
        self.store = store
        self.signer = signer
        self.every = every
        self.pending: list[Leaf] = []
        self.checkpoint: str | None = None  # the latest signed note this step stored

    def note(self, topic: str, record: Mapping[str, Any]) -> None:
        """Remember the output record of ``topic`` (short name) as a leaf, if it is a ledger entry or erasure notice."""
        leaf = leaf_of(topic, record)
        if leaf is not None:
            self.pending.append(leaf)

    def adding(self, add: Callable[[str, Mapping[str, Any]], None]) -> Callable[[str, Mapping[str, Any]], None]:
        """``add`` (the sink's), noting each output as a leaf after the sink took it."""

        def add_and_note(topic: str, record: Mapping[str, Any]) -> None:
            add(topic, record)
            self.note(topic, record)

        return add_and_note

    @property
    def due(self) -> bool:
        """Whether enough leaves wait for a checkpoint."""
        return len(self.pending) >= self.every

    def write(self) -> None:
        """Append the waiting leaves a checkpoint's worth at a time, signing each: call once the sink holds them."""
        while self.due:
            self._append_and_sign(self.pending[: self.every])
            del self.pending[: self.every]

    def finish(self) -> str:
        """Append every waiting leaf and sign the log as it stands (even unchanged: the run's end is on record)."""
        self.write()
        note = self._append_and_sign(self.pending)
        self.pending.clear()
        return note

    def _append_and_sign(self, leaves: list[Leaf]) -> str:
        self.store.append(leaves)
        self.checkpoint = note = self.store.sign(self.signer)
        return note
