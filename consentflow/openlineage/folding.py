"""Lineage edges folded into processing flows in memory: what ``sinks.lineage_flows`` reads from the tables, from the
records of the lineage topic instead, for the continuous mode [3, 4, 7].

Pure: the same edges and registry give the same flows, whatever their order. An edge id seen twice counts once, as
``FINAL`` counts a redelivered row once; a recipient's kind is that of its latest edge (time, then edge id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consentflow.core.recipients import RecipientRegistry
from consentflow.sinks.lineage_flows import (
    CategoryFlow,
    Counts,
    ProcessingFlow,
    RecipientFlow,
    TransferFlow,
    legal_name,
    processing_source,
    transfer_validity,
)


@dataclass
class _Tally:
    """Distinct subjects, edges, first and last time, of one group of edges."""

    subjects: set[str] = field(default_factory=set)
    edges: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, edge: Mapping[str, Any]) -> None:
        at = edge["occurred_at"]
        self.subjects.add(edge["subject_id"])
        self.edges += 1
        self.first = at if self.first is None or at < self.first else self.first
        self.last = at if self.last is None or at > self.last else self.last

    def counts(self) -> Counts:
        assert self.first is not None and self.last is not None  # a tally exists once an edge is added
        return Counts(len(self.subjects), self.edges, self.first, self.last)


def fold(
    edges: Iterable[Mapping[str, Any]],
    registry: RecipientRegistry,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ProcessingFlow]:
    """The processings of ``edges`` (``LineageEdge`` records) in ``[since, until)``, as ``processing_flows`` gives them."""
    unique: dict[str, Mapping[str, Any]] = {}
    for edge in edges:
        at = edge["occurred_at"]
        if (since is None or at >= since) and (until is None or at < until):
            unique[edge["edge_id"]] = edge
    jobs: dict[tuple[str, str], _Tally] = {}
    bases: dict[tuple[str, str], set[str]] = {}
    categories: dict[tuple[str, str, str], _Tally] = {}
    recipients: dict[tuple[str, str, str], _Tally] = {}
    received: dict[tuple[str, str, str], set[str]] = {}
    kinds: dict[tuple[str, str, str], tuple[datetime, str, str]] = {}
    transfers: dict[tuple[str, str, str, str, str], _Tally] = {}
    for edge in unique.values():
        job = (edge["purpose"], processing_source(edge))
        jobs.setdefault(job, _Tally()).add(edge)
        bases.setdefault(job, set()).add(edge["legal_basis"])
        for category in set(edge["categories"]):
            categories.setdefault((*job, category), _Tally()).add(edge)
        recipient = (*job, edge["recipient_id"])
        recipients.setdefault(recipient, _Tally()).add(edge)
        received.setdefault(recipient, set()).update(edge["categories"])
        latest = (edge["occurred_at"], edge["edge_id"], edge["recipient_kind"])
        kinds[recipient] = max(kinds.get(recipient, latest), latest)
        transfers.setdefault((*recipient, edge["country"], edge["transfer_mechanism"]), _Tally()).add(edge)
    flows = []
    for job in sorted(jobs):
        outputs = []
        for recipient in sorted(r for r in recipients if r[:2] == job):
            recipient_id = recipient[2]
            c = recipients[recipient].counts()
            outputs.append(
                RecipientFlow(
                    recipient_id=recipient_id,
                    recipient_kind=kinds[recipient][2],
                    legal_name=legal_name(registry, recipient_id, c.last),
                    categories=tuple(sorted(received[recipient])),
                    transfers=tuple(
                        TransferFlow(
                            country,
                            mechanism,
                            transfer_validity(registry, recipient_id, mechanism, transfers[t].counts().last),
                            transfers[t].counts(),
                        )
                        for t in sorted(t for t in transfers if t[:3] == recipient)
                        for country, mechanism in [t[3:]]
                    ),
                    counts=c,
                )
            )
        flows.append(
            ProcessingFlow(
                purpose=job[0],
                source=job[1],
                legal_bases=tuple(sorted(bases[job])),
                categories=tuple(
                    CategoryFlow(k[2], categories[k].counts()) for k in sorted(k for k in categories if k[:2] == job)
                ),
                recipients=tuple(outputs),
                counts=jobs[job].counts(),
            )
        )
    return flows
