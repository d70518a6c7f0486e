"""The lineage graph: which recipient received which categories of whose data, for what, how [4, 7].

An edge says: categories C of subject S reached recipient R for purpose P under
basis B, in country K, by transfer mechanism M (valid at that instant, from the
registry as of event time), at time T, caused by event E. Ids and categories
only, never the personal data values.

The DPO's questions over the edges are answered by the ClickHouse tables' queries
(``sinks/lineage_queries.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from consentflow.contracts.records import LineageEdge, SourceCoordinates
from consentflow.core.recipients import RecipientVersion
from consentflow.core.state import ProcessingRow
from consentflow.policy.vocabulary import RecipientKind, TransferMechanism


def lineage_edge(
    p: ProcessingRow,
    recipient: RecipientVersion | None,
    mechanism: TransferMechanism,
    source: SourceCoordinates | None,
    source_service: str,
) -> LineageEdge:
    """The ``LineageEdge`` record of processing ``p`` (a ``Processing`` or its row, naming a recipient), sent under
    ``mechanism`` by ``source_service`` (the source event's)."""
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
        "source_service": source_service,
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
    #: Per purpose, the legal bases its edges were recorded under (what the processing ran on, not what the policy says).
    legal_bases: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: The purposes whose recorded bases differ from the one the policy gives them (``Policy.basis_differs``) [3].
    legal_basis_differs: frozenset[str] = frozenset()
