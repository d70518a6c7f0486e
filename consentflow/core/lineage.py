"""The lineage graph: which recipient received which categories of whose data, for what, how [4, 7].

An edge says: categories C of subject S reached recipient R for purpose P under
basis B, in country K, by transfer mechanism M (valid at that instant, from the
registry as of event time), at time T, caused by event E. Ids and categories
only, never the personal data values.

``LineageGraph`` answers the DPO's questions over a set of edges in memory; the
ClickHouse tables answer the same questions at scale.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from consentflow.contracts.records import LineageEdge, SourceCoordinates
from consentflow.core.recipients import RecipientVersion
from consentflow.core.state import ProcessingRow
from consentflow.policy.geography import in_eea
from consentflow.policy.vocabulary import RecipientKind, TransferMechanism


def lineage_edge(
    p: ProcessingRow, recipient: RecipientVersion | None, mechanism: TransferMechanism, source: SourceCoordinates | None
) -> LineageEdge:
    """The ``LineageEdge`` record of processing ``p`` (a ``Processing`` or its row, naming a recipient), sent under ``mechanism``."""
    occurred_at, event_id, subject_id, source_kind, recipient_id, purpose, legal_basis, categories = p
    if recipient is None:
        kind, country = RecipientKind.UNKNOWN, ""
    else:
        kind, country = recipient.kind, recipient.country
    return {
        "edge_id": event_id,
        "subject_id": subject_id,
        "recipient_id": recipient_id,  # type: ignore[typeddict-item]  # an edge is made only for a row naming a recipient
        # Enum members are str: stored as they are, they encode and compare as their values.
        "recipient_kind": kind,
        "categories": list(categories),
        "purpose": purpose,
        "legal_basis": legal_basis,
        "country": country,
        "transfer_mechanism": mechanism,
        "occurred_at": occurred_at,
        "source_event_id": event_id,
        "source_kind": source_kind,
        "source": None if source is None else source.copy(),
    }


@dataclass(frozen=True)
class RecipientHolding:
    """What one recipient received of one subject."""

    recipient_id: str
    recipient_kind: str
    country: str
    categories: frozenset[str]
    purposes: frozenset[str]
    mechanisms: frozenset[str]
    first: datetime
    last: datetime


class LineageGraph:
    """An index over lineage edges for the DPO's questions [7, 12]."""

    def __init__(self, edges: Iterable[LineageEdge] = ()) -> None:
        self._by_subject: dict[str, list[LineageEdge]] = defaultdict(list)
        self._by_recipient: dict[str, list[tuple[datetime, str, LineageEdge]]] = defaultdict(list)
        self._ids: set[str] = set()
        for edge in edges:
            self.add(edge)

    def add(self, edge: LineageEdge) -> bool:
        """Add an edge; a redelivered edge (same id) changes nothing."""
        if edge["edge_id"] in self._ids:
            return False
        self._ids.add(edge["edge_id"])
        self._by_subject[edge["subject_id"]].append(edge)
        bisect.insort(self._by_recipient[edge["recipient_id"]], (edge["occurred_at"], edge["edge_id"], edge), key=lambda x: x[:2])
        return True

    def recipients_of(self, subject_id: str, as_of: datetime | None = None) -> list[RecipientHolding]:
        """Every recipient that received the subject's data (up to ``as_of``), with categories, purposes, country, mechanism."""
        grouped: dict[str, list[LineageEdge]] = defaultdict(list)
        for edge in self._by_subject.get(subject_id, []):
            if as_of is None or edge["occurred_at"] <= as_of:
                grouped[edge["recipient_id"]].append(edge)
        holdings = []
        for recipient_id, edges in sorted(grouped.items()):
            latest = max(edges, key=lambda e: (e["occurred_at"], e["edge_id"]))
            holdings.append(
                RecipientHolding(
                    recipient_id=recipient_id,
                    recipient_kind=latest["recipient_kind"],
                    country=latest["country"],
                    categories=frozenset(c for e in edges for c in e["categories"]),
                    purposes=frozenset(e["purpose"] for e in edges),
                    mechanisms=frozenset(e["transfer_mechanism"] for e in edges),
                    first=min(e["occurred_at"] for e in edges),
                    last=latest["occurred_at"],
                )
            )
        return holdings

    def countries_of(self, subject_id: str, storage_countries: Iterable[str]) -> dict[str, list[str]]:
        """Where the subject's data is stored and where it was sent [7]: ``{"stored": [...], "sent": [...]}``."""
        sent = sorted({e["country"] for e in self._by_subject.get(subject_id, []) if e["country"]})
        return {"stored": sorted(set(storage_countries)), "sent": sent}

    def held_by(self, recipient_id: str, start: datetime, end: datetime) -> dict[str, frozenset[str]]:
        """Subjects, with their categories, whose data recipient received in ``[start, end)`` (breach impact [12])."""
        edges = self._by_recipient.get(recipient_id, [])
        lo = bisect.bisect_left(edges, start, key=lambda x: x[0])
        hi = bisect.bisect_left(edges, end, key=lambda x: x[0])
        found: dict[str, set[str]] = defaultdict(set)
        for _, _, edge in edges[lo:hi]:
            found[edge["subject_id"]].update(edge["categories"])
        return {subject: frozenset(categories) for subject, categories in sorted(found.items())}

    def transfers_outside_eea(self) -> dict[tuple[str, str], dict[str, int]]:
        """Edges leaving the EU/EEA, counted by (country, mechanism) then recipient [7]."""
        table: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for edges in self._by_recipient.values():
            for _, _, edge in edges:
                if edge["country"] and not in_eea(edge["country"]):
                    table[(edge["country"], edge["transfer_mechanism"])][edge["recipient_id"]] += 1
        return {key: dict(sorted(value.items())) for key, value in sorted(table.items())}
