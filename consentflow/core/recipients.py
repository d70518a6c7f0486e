"""The recipient registry as of any instant [4, 7].

A recipient's record can change (a new country, new SCC dates, off-boarding);
every version is kept and the version in force at an event's time decides.
Transfer mechanisms carry their own validity periods, so a transfer is framed
only if one of them holds at that instant (SCCs not yet signed or expired do
not count) [7]. A tombstone on the compacted registry topic removes a recipient
from its Kafka timestamp on: an inactive version in force from then, which
names nothing (``consentflow.contracts.null_values``).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consentflow.policy.geography import in_eea
from consentflow.policy.vocabulary import Purpose, RecipientKind, TransferMechanism

#: Mechanisms that frame a transfer outside the EU/EEA (GDPR Art. 45-49).
FRAMING_MECHANISMS = frozenset(
    {TransferMechanism.ADEQUACY, TransferMechanism.SCC, TransferMechanism.BCR, TransferMechanism.DEROGATION}
)
_WITHIN_EEA = TransferMechanism.WITHIN_EEA
_NONE = TransferMechanism.NONE
_UNREGISTERED: tuple[None, TransferMechanism] = (None, TransferMechanism.UNKNOWN)


@dataclass(frozen=True, slots=True)
class MechanismWindow:
    """A transfer mechanism and the half-open period ``[valid_from, valid_until)`` it holds."""

    mechanism: TransferMechanism
    valid_from: datetime
    valid_until: datetime | None

    def holds_at(self, t: datetime) -> bool:
        """Whether the mechanism frames a transfer at ``t``."""
        return self.valid_from <= t and (self.valid_until is None or t < self.valid_until)


@dataclass(frozen=True, slots=True)
class RecipientVersion:
    """One version of a registry entry, in force from ``since``."""

    recipient_id: str
    name: str
    kind: RecipientKind
    country: str
    mechanisms: tuple[MechanismWindow, ...]
    allowed_purposes: frozenset[Purpose]
    active: bool
    since: datetime
    event_id: str

    outside_eea: bool  # whether data sent to this recipient leaves the EU/EEA [7]

    @property
    def removal(self) -> bool:
        """Whether this version is a registry tombstone's removal (``consentflow.contracts.null_values``): it names nothing."""
        return not self.name

    def mechanism_at(self, t: datetime) -> TransferMechanism:
        """The mechanism framing a transfer at ``t``: ``WITHIN_EEA`` inside, ``NONE`` when nothing holds [7]."""
        if not self.outside_eea:
            return _WITHIN_EEA
        for window in self.mechanisms:
            if window.mechanism in FRAMING_MECHANISMS and window.holds_at(t):
                return window.mechanism
        return _NONE

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RecipientVersion:
        """Build from a decoded ``RecipientRecord`` (or a row of the ``recipients`` table: the fields read here)."""
        return cls(
            recipient_id=record["recipient_id"],
            name=record["name"],
            kind=RecipientKind(record["kind"]),
            country=record["country"],
            mechanisms=tuple(
                MechanismWindow(TransferMechanism(m["mechanism"]), m["valid_from"], m["valid_until"])
                for m in record["transfer_mechanisms"]
            ),
            allowed_purposes=frozenset(Purpose(p) for p in record["allowed_purposes"]),
            active=record["active"],
            since=record["occurred_at"],
            event_id=record["event_id"],
            outside_eea=not in_eea(record["country"]),
        )


class RecipientRegistry:
    """Every version of every recipient, looked up as of an instant."""

    def __init__(self) -> None:
        self._versions: dict[str, list[RecipientVersion]] = {}
        self._starts: dict[str, list[tuple[datetime, str]]] = {}
        # Per recipient, the instants where its (version, mechanism) answer changes and the answer
        # from each one on: built on first lookup, dropped when a version arrives.
        self._segments: dict[str, tuple[list[datetime], list[tuple[RecipientVersion | None, TransferMechanism]]]] = {}

    def add(self, version: RecipientVersion) -> bool:
        """Record a version; returns False for a duplicate (same event id)."""
        versions = self._versions.setdefault(version.recipient_id, [])
        starts = self._starts.setdefault(version.recipient_id, [])
        if any(v.event_id == version.event_id for v in versions):
            return False
        key = (version.since, version.event_id)
        at = bisect.bisect_right(starts, key)
        starts.insert(at, key)
        versions.insert(at, version)
        self._segments.pop(version.recipient_id, None)
        return True

    def resolve(self, recipient_id: str, t: datetime) -> tuple[RecipientVersion | None, TransferMechanism]:
        """``(at(recipient_id, t), its mechanism_at(t))``, or ``(None, UNKNOWN)``: one bisect per processing.

        The answer only changes where a version starts or a mechanism window opens
        or closes, so it is computed once per such segment and looked up after.
        """
        segments = self._segments.get(recipient_id)
        if segments is None:
            segments = self._segments[recipient_id] = self._build_segments(recipient_id)
        bounds, answers = segments
        index = bisect.bisect_right(bounds, t) - 1
        return answers[index] if index >= 0 else _UNREGISTERED

    def _build_segments(
        self, recipient_id: str
    ) -> tuple[list[datetime], list[tuple[RecipientVersion | None, TransferMechanism]]]:
        instants: set[datetime] = set()
        for version in self._versions.get(recipient_id, []):
            instants.add(version.since)
            for window in version.mechanisms:
                instants.add(window.valid_from)
                if window.valid_until is not None:
                    instants.add(window.valid_until)
        bounds = sorted(instants)
        answers: list[tuple[RecipientVersion | None, TransferMechanism]] = []
        for instant in bounds:
            in_force = self.at(recipient_id, instant)
            answers.append(_UNREGISTERED if in_force is None else (in_force, in_force.mechanism_at(instant)))
        return bounds, answers

    def at(self, recipient_id: str, t: datetime) -> RecipientVersion | None:
        """The version in force at ``t``; None if the recipient was not registered (or was off-boarded, or removed by
        a tombstone) then."""
        starts = self._starts.get(recipient_id)
        if not starts:
            return None
        if len(starts) == 1:  # the common case: one version
            only = self._versions[recipient_id][0]
            return only if only.active and only.since <= t else None
        # Versions in force from the same instant are ordered by event id, so the choice is deterministic.
        index = bisect.bisect_right(starts, (t, "\uffff")) - 1
        if index < 0:
            return None
        version = self._versions[recipient_id][index]
        return version if version.active else None

    def latest(self, recipient_id: str) -> RecipientVersion | None:
        """The newest version of a recipient, whatever its state.

        A removal (a tombstone, ``consentflow.contracts.null_values``) names nothing, so the recipient is described by its
        newest named version, inactive from the removal on; None when no version ever named it.
        """
        versions = self._versions.get(recipient_id)
        if not versions:
            return None
        newest = versions[-1]
        if not newest.removal:
            return newest
        for v in reversed(versions):
            if not v.removal:
                return RecipientVersion(
                    v.recipient_id, v.name, v.kind, v.country, v.mechanisms, v.allowed_purposes, False,
                    newest.since, newest.event_id, v.outside_eea,
                )  # fmt: skip
        return None

    def recipient_ids(self) -> list[str]:
        """Ids of every recipient ever registered."""
        return sorted(self._versions)

    def __len__(self) -> int:
        return len(self._versions)
