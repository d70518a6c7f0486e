"""The DPO's lineage questions over the ClickHouse tables: who has a subject's data, where it went, breach impact, transfers.

Plain functions over a ``TableReader`` and arguments already validated by
``consentflow.contracts.query_arguments``; parameterised SQL read with ``FINAL``, so a
redelivered edge counts once. Subject questions read ``lineage_edges`` (sorted
by subject, time); recipient questions read ``lineage_by_recipient`` (sorted by
recipient, time) [12].
"""

from __future__ import annotations

from datetime import datetime

from consentflow.contracts.query_arguments import LATEST, check_window, now_unless
from consentflow.core.lineage import RecipientHolding
from consentflow.core.recipients import FRAMING_MECHANISMS
from consentflow.core.storage_countries import storage_countries
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import load_policy
from consentflow.sinks.answers import BreachImpact, CategoryCount, CountrySent, SubjectCountries, Transfer
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import require_recipient, require_subject, utc
from consentflow.sinks.registry_reading import registry_from_tables
from consentflow.sinks.tables import DATETIME, LINEAGE_BY_RECIPIENT
from consentflow.sinks.transfers_filter import OUTSIDE_EEA, outside_eea_parameters

_T = DATETIME
_FRAMING = frozenset(m.value for m in FRAMING_MECHANISMS)

_WHO_HAS = f"""
SELECT recipient_id,
       argMax(recipient_kind, (occurred_at, edge_id)),
       argMax(country, (occurred_at, edge_id)),
       arraySort(groupUniqArrayArray(categories)),
       arraySort(groupUniqArray(purpose)),
       arraySort(groupUniqArray(transfer_mechanism)),
       min(occurred_at),
       max(occurred_at),
       arraySort(groupUniqArray((purpose, legal_basis)))
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE subject_id = {{s:String}} AND occurred_at <= {{as_of:{_T}}}
GROUP BY recipient_id
ORDER BY recipient_id
"""

_COUNTRIES = f"""
SELECT country,
       arraySort(groupUniqArray(recipient_id)),
       arraySort(groupUniqArray(transfer_mechanism)),
       count(),
       min(occurred_at),
       max(occurred_at)
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE subject_id = {{s:String}} AND occurred_at <= {{as_of:{_T}}}
GROUP BY country
ORDER BY country
"""

# One pass over the window, one row back: the sorted subject ids as a single array, the
# subjects per category summed from each subject's categories, the edges. (A row per
# subject is a row to convert per subject: costly on a busy recipient's month, bench/RESULTS.md §16.)
_BREACH = f"""
SELECT count(), sum(edges), arraySort(groupArray(subject_id)), sumMap(categories, arrayWithConstant(length(categories), 1))
FROM (
    SELECT subject_id, groupUniqArrayArray(categories) AS categories, toUInt64(count()) AS edges
    FROM {{db:Identifier}}.`{LINEAGE_BY_RECIPIENT}` FINAL
    WHERE recipient_id = {{r:String}} AND occurred_at >= {{start:{_T}}} AND occurred_at < {{end:{_T}}}
    GROUP BY subject_id
)
"""

_TRANSFERS = f"""
SELECT country, recipient_id, transfer_mechanism, count(), uniqExact(subject_id), min(occurred_at), max(occurred_at)
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE {{outside:UInt8}} = 0 OR {OUTSIDE_EEA}
GROUP BY country, recipient_id, transfer_mechanism
ORDER BY country, recipient_id, transfer_mechanism
"""


def who_has(reader: TableReader, subject_id: str, as_of: datetime | None = None) -> list[RecipientHolding]:
    """Every recipient of the subject's data, with categories, purposes, country and transfer mechanisms [4, 7].

    ``as_of`` answers as it stood at that instant: edges with ``occurred_at <= as_of``.
    Kind and country are those of the recipient's latest edge; mechanisms are every
    one its edges went under (a transfer made before SCCs held shows ``none``); legal bases
    those its edges recorded, per purpose, flagged where they differ from the policy's [3].
    Raises ``UnknownId`` for a subject no table mentions.
    """
    rows = reader.query(_WHO_HAS, {"s": subject_id, "as_of": LATEST if as_of is None else as_of})
    if not rows:
        require_subject(reader, subject_id)
    policy = load_policy()
    holdings = []
    for recipient_id, kind, country, categories, purposes, mechanisms, first, last, pairs in rows:
        bases: dict[str, set[str]] = {}
        for purpose, basis in pairs:
            bases.setdefault(purpose, set()).add(basis)
        holdings.append(
            RecipientHolding(
                recipient_id=recipient_id,
                recipient_kind=kind,
                country=country,
                categories=frozenset(categories),
                purposes=frozenset(purposes),
                mechanisms=frozenset(mechanisms),
                first=utc(first),
                last=utc(last),
                legal_bases={p: frozenset(b) for p, b in sorted(bases.items())},
                legal_basis_differs=frozenset(p for p, b in bases.items() if policy.basis_differs(p, b)),
            )
        )
    return holdings


def countries(reader: TableReader, subject_id: str, as_of: datetime | None = None) -> SubjectCountries:
    """Where the subject's data is stored and every country it was sent to: the list §7 promises [7].

    Stored: the policy's storage countries and those of the technical subcontractors the registry has in force
    (``storage_countries``), at ``as_of`` or now; one outside the EU/EEA is flagged. Sent: ``as_of`` answers as it
    stood at that instant (edges with ``occurred_at <= as_of``), everything known by default.
    Raises ``UnknownId`` for a subject no table mentions.
    """
    rows = reader.query(_COUNTRIES, {"s": subject_id, "as_of": LATEST if as_of is None else as_of})
    if not rows:
        require_subject(reader, subject_id)
    storage = storage_countries(load_policy(), registry_from_tables(reader), now_unless(as_of))
    return SubjectCountries(
        subject_id=subject_id,
        storage=tuple(storage),
        stored=tuple(s.country for s in storage),
        sent=tuple(
            CountrySent(
                country=country,
                in_eea=in_eea(country),
                recipients=tuple(recipients),
                mechanisms=tuple(mechanisms),
                edges=int(edges),
                first=utc(first),
                last=utc(last),
            )
            for country, recipients, mechanisms, edges, first, last in rows
        ),
    )


def breach(reader: TableReader, recipient_id: str, start: datetime, end: datetime) -> BreachImpact:
    """Subjects and categories the recipient received in ``[start, end)``: who to consider informing [12].

    Raises ``UnknownId`` for a recipient neither the registry nor the lineage names,
    ``ArgumentError`` for an empty window.
    """
    check_window(start, end)
    subjects, edges, subject_ids, (categories, counts) = reader.query(_BREACH, {"r": recipient_id, "start": start, "end": end})[0]
    if not subjects:
        require_recipient(reader, recipient_id)
    return BreachImpact(
        recipient_id=recipient_id,
        start=start,
        end=end,
        edges=int(edges),
        subjects=int(subjects),
        categories=tuple(
            CategoryCount(category, int(n))
            for n, category in sorted(zip(counts, categories, strict=True), key=lambda c: (-c[0], c[1]))
        ),
        subject_ids=tuple(subject_ids),
    )


def transfers(reader: TableReader, *, outside_eea: bool = False) -> list[Transfer]:
    """Edges by country, recipient and mechanism [7]; ``framed`` is False where nothing frames a transfer out of the EU/EEA.

    ``outside_eea`` keeps the transfers outside the EU/EEA (``sinks.transfers_filter``).
    """
    rows = reader.query(_TRANSFERS, {"outside": int(outside_eea), **outside_eea_parameters()})
    out = []
    for country, recipient_id, mechanism, edges, subjects, first, last in rows:
        inside = in_eea(country)
        out.append(
            Transfer(
                country=country,
                recipient_id=recipient_id,
                mechanism=mechanism,
                edges=int(edges),
                subjects=int(subjects),
                first=utc(first),
                last=utc(last),
                in_eea=inside,
                framed=inside or mechanism in _FRAMING,
            )
        )
    return out
