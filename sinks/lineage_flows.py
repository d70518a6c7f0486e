"""The observed lineage folded by processing, for a data catalog: purpose × source, its categories, its recipients [3, 4, 7].

A processing is a purpose of the policy over the source events of one service (``source_service``, LineageEdge v2);
an edge written as v1 names no service, and the source event's kind (disclosure, message, cookie) stands for it.
Each processing has the categories it used and
the recipients it sent them to, each recipient with the countries and transfer mechanisms its edges went under and
the periods the registry gives those mechanisms [7]. Counts of subjects, never their ids. Parameterised SQL read with
``FINAL``, so a redelivered edge counts once; rows sorted, so a replay of the same topics reads the same flows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consentflow.core.recipients import MechanismWindow, RecipientRegistry
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc
from consentflow.sinks.registry_reading import registry_from_tables
from consentflow.sinks.tables import DATETIME, LINEAGE

_T = DATETIME
#: ``since`` when none is given: before any event the pipeline accepts.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_WINDOW = f"occurred_at >= {{since:{_T}}} AND occurred_at < {{until:{_T}}}"
_COUNTS = "uniqExact(subject_id), count(), min(occurred_at), max(occurred_at)"
#: A processing's source (``processing_source`` in SQL): the service, else, for a v1 edge, the source kind; in a
#: table made before LineageEdge v2 and not altered yet (a reader runs no DDL), the kind.
_SOURCE = "if(source_service = '', source_kind, source_service) AS source"
_SOURCE_BEFORE_V2 = "source_kind AS source"

_PROCESSINGS = f"""
SELECT purpose, {{source}}, arraySort(groupUniqArray(legal_basis)), {_COUNTS}
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE {_WINDOW}
GROUP BY purpose, source
ORDER BY purpose, source
"""

_CATEGORIES = f"""
SELECT purpose, {{source}}, category, {_COUNTS}
FROM {{db:Identifier}}.lineage_edges FINAL
ARRAY JOIN categories AS category
WHERE {_WINDOW}
GROUP BY purpose, source, category
ORDER BY purpose, source, category
"""

_RECIPIENTS = f"""
SELECT purpose, {{source}}, recipient_id, argMax(recipient_kind, (occurred_at, edge_id)),
       arraySort(groupUniqArrayArray(categories)), {_COUNTS}
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE {_WINDOW}
GROUP BY purpose, source, recipient_id
ORDER BY purpose, source, recipient_id
"""

_TRANSFERS = f"""
SELECT purpose, {{source}}, recipient_id, country, transfer_mechanism, {_COUNTS}
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE {_WINDOW}
GROUP BY purpose, source, recipient_id, country, transfer_mechanism
ORDER BY purpose, source, recipient_id, country, transfer_mechanism
"""


@dataclass(frozen=True, slots=True)
class Counts:
    """Distinct subjects and edges, and the event times of the first and last edge."""

    subjects: int
    edges: int
    first: datetime
    last: datetime


@dataclass(frozen=True, slots=True)
class CategoryFlow:
    """One data category a processing used [2.1, 2.2]."""

    category: str
    counts: Counts


@dataclass(frozen=True, slots=True)
class TransferFlow:
    """Edges to a recipient in one country under one mechanism, with the periods the registry gives it [7]."""

    country: str
    mechanism: str
    validity: tuple[MechanismWindow, ...]
    counts: Counts


@dataclass(frozen=True, slots=True)
class RecipientFlow:
    """One recipient a processing sent data to [4]: kind, registered name, categories, transfers."""

    recipient_id: str
    recipient_kind: str
    legal_name: str | None
    categories: tuple[str, ...]
    transfers: tuple[TransferFlow, ...]
    counts: Counts


@dataclass(frozen=True, slots=True)
class ProcessingFlow:
    """A purpose over the events of one source service: legal bases, categories in, recipients out [3, 4]."""

    purpose: str
    #: The service that emitted the source events; for edges written as v1 (no service), their source kind.
    source: str
    legal_bases: tuple[str, ...]
    categories: tuple[CategoryFlow, ...]
    recipients: tuple[RecipientFlow, ...]
    counts: Counts


def processing_source(edge: Mapping[str, Any]) -> str:
    """The source of the processing a ``LineageEdge`` belongs to: its service, else (a v1 edge) its source kind."""
    return str(edge.get("source_service") or edge["source_kind"])


def _counts(subjects: int, edges: int, first: datetime, last: datetime) -> Counts:
    return Counts(int(subjects), int(edges), utc(first), utc(last))


def transfer_validity(
    registry: RecipientRegistry, recipient_id: str, mechanism: str, at: datetime
) -> tuple[MechanismWindow, ...]:
    """The periods of ``mechanism`` in the recipient's registry version in force at ``at`` (none: not registered) [7]."""
    version = registry.at(recipient_id, at)
    if version is None:
        return ()
    return tuple(w for w in version.mechanisms if w.mechanism.value == mechanism)


def legal_name(registry: RecipientRegistry, recipient_id: str, at: datetime) -> str | None:
    """The registry's name of the recipient at ``at``, else its latest; None when the registry has none [4]."""
    version = registry.at(recipient_id, at) or registry.latest(recipient_id)
    return version.name if version is not None and version.name else None


def processing_flows(reader: TableReader, since: datetime | None = None, until: datetime | None = None) -> list[ProcessingFlow]:
    """Every processing with edges in ``[since, until)`` (all of them by default), sorted by purpose and source."""
    window = {"since": since or EPOCH, "until": until or datetime(2200, 1, 1, tzinfo=UTC)}
    source_sql = _SOURCE if "source_service" in reader.columns(LINEAGE.name) else _SOURCE_BEFORE_V2

    def ask(template: str) -> list[tuple[Any, ...]]:
        return reader.query(template.replace("{source}", source_sql), window)

    registry = registry_from_tables(reader)
    categories: dict[tuple[str, str], list[CategoryFlow]] = defaultdict(list)
    for purpose, source, category, *counts in ask(_CATEGORIES):
        categories[purpose, source].append(CategoryFlow(category, _counts(*counts)))
    transfers: dict[tuple[str, str, str], list[TransferFlow]] = defaultdict(list)
    for purpose, source, recipient_id, country, mechanism, *counts in ask(_TRANSFERS):
        c = _counts(*counts)
        transfers[purpose, source, recipient_id].append(
            TransferFlow(country, mechanism, transfer_validity(registry, recipient_id, mechanism, c.last), c)
        )
    recipients: dict[tuple[str, str], list[RecipientFlow]] = defaultdict(list)
    for purpose, source, recipient_id, kind, received, *counts in ask(_RECIPIENTS):
        c = _counts(*counts)
        recipients[purpose, source].append(
            RecipientFlow(
                recipient_id=recipient_id,
                recipient_kind=kind,
                legal_name=legal_name(registry, recipient_id, c.last),
                categories=tuple(received),
                transfers=tuple(transfers[purpose, source, recipient_id]),
                counts=c,
            )
        )
    return [
        ProcessingFlow(
            purpose=purpose,
            source=source,
            legal_bases=tuple(bases),
            categories=tuple(categories[purpose, source]),
            recipients=tuple(recipients[purpose, source]),
            counts=_counts(*counts),
        )
        for purpose, source, bases, *counts in ask(_PROCESSINGS)
    ]
