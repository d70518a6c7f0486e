"""The lineage tests' reference model: an in-memory index over lineage edges answering the DPO's questions [7, 12].

An independent oracle the tests hold the product's answers against: the product answers these questions in
``sinks/`` (``sinks/lineage_queries.py``, over ClickHouse); this index answers them over the edges the processors emit,
in plain Python, so that a test can say what the answer must be without the query under test.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from consentflow.core.lineage import RecipientHolding
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import load_policy
from consentflow.policy.vocabulary import LegalBasis


class LineageGraph:
    """An index over lineage edges for the DPO's questions [7, 12]."""

    def __init__(self, edges: Iterable[Mapping[str, Any]] = ()) -> None:
        self._by_subject: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self._by_recipient: dict[str, list[tuple[datetime, str, Mapping[str, Any]]]] = defaultdict(list)
        self._ids: set[str] = set()
        for edge in edges:
            self.add(edge)

    def add(self, edge: Mapping[str, Any]) -> bool:
        """Add an edge; a redelivered edge (same id) changes nothing."""
        if edge["edge_id"] in self._ids:
            return False
        self._ids.add(edge["edge_id"])
        self._by_subject[edge["subject_id"]].append(edge)
        bisect.insort(self._by_recipient[edge["recipient_id"]], (edge["occurred_at"], edge["edge_id"], edge), key=lambda x: x[:2])
        return True

    def recipients_of(self, subject_id: str, as_of: datetime | None = None) -> list[RecipientHolding]:
        """Every recipient that received the subject's data (up to ``as_of``), with categories, purposes, country, mechanism."""
        grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for edge in self._by_subject.get(subject_id, []):
            if as_of is None or edge["occurred_at"] <= as_of:
                grouped[edge["recipient_id"]].append(edge)
        holdings = []
        policy = load_policy()
        for recipient_id, edges in sorted(grouped.items()):
            latest = max(edges, key=lambda e: (e["occurred_at"], e["edge_id"]))
            bases: dict[str, frozenset[str]] = {
                p: frozenset(e["legal_basis"] for e in edges if e["purpose"] == p) for p in sorted({e["purpose"] for e in edges})
            }
            # The policy's basis, written out here rather than through Policy.basis_differs: the oracle stays apart.
            given = {p: policy.basis_of(p) for p in bases}
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
                    legal_bases=bases,
                    legal_basis_differs=frozenset(
                        p for p, b in bases.items() if given[p] is not LegalBasis.UNKNOWN and b != {given[p].value}
                    ),
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
        """Edges leaving the EU/EEA, counted by (country, mechanism) then recipient [7]; an unknown country (``""``)
        counts as outside, since §7 promises the data stays in the EU and nothing shows that it did."""
        table: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for edges in self._by_recipient.values():
            for _, _, edge in edges:
                if not edge["country"] or not in_eea(edge["country"]):
                    table[(edge["country"], edge["transfer_mechanism"])][edge["recipient_id"]] += 1
        return {key: dict(sorted(value.items())) for key, value in sorted(table.items())}
