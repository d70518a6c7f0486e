"""The breach register over the tables [12; GDPR Art. 33, 34]: the incidents, their 72-hour clock, whom to tell.

The ``incidents`` table holds every fact (Art. 33(5)); ``core.incidents`` judges them at an instant; the affected
subjects and categories come from the lineage as ``breach`` finds them (``lineage_queries.breach``: whose data the
recipient received in the window). Every affected subject counts, whatever categories the controller declared: the
safe side, as the lineage cannot tell which records a breach exposed.

The instant is the pipeline's clock unless the reader names one: the latest event time the tables hold (the subjects'
latest events, ``subject_holdings``, and the incidents' own), so a replay, an embedded run and the Kafka pipeline of
the same events judge alike, whatever the wall clock says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consentflow.core import incidents as register_core
from consentflow.core.incidents import Incident, SubjectsToInform
from consentflow.sinks.answers import BreachImpact, IncidentDetail, IncidentFact, IncidentSummary, SubjectIncident
from consentflow.sinks.lineage_queries import breach
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import UnknownId, utc, utc_or_none
from consentflow.sinks.tables import DATETIME, INCIDENTS

_T = DATETIME
_COLUMNS = INCIDENTS.column_names
_TIMES = frozenset(name for name, kind in INCIDENTS.columns if DATETIME in kind)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_EVENTS = f"""
SELECT {", ".join(f"`{c}`" for c in _COLUMNS)}
FROM {{db:Identifier}}.`{INCIDENTS.name}` FINAL
WHERE {{all:UInt8}} = 1 OR incident_id = {{i:String}}
ORDER BY incident_id, occurred_at, event_id
"""

_CLOCK = f"""
SELECT greatest(
    (SELECT max(latest_event_at) FROM {{db:Identifier}}.subject_holdings FINAL),
    (SELECT max(occurred_at) FROM {{db:Identifier}}.`{INCIDENTS.name}` FINAL)
)
"""

# One subject's edges to one recipient in one window: a point lookup of the lineage sorted by subject [12].
_SUBJECT_IN_WINDOW = f"""
SELECT count(), arraySort(groupUniqArrayArray(categories))
FROM {{db:Identifier}}.lineage_edges FINAL
WHERE subject_id = {{s:String}} AND recipient_id = {{r:String}}
  AND occurred_at >= {{start:{_T}}} AND occurred_at < {{end:{_T}}}
"""


def incident_events(reader: TableReader, incident_id: str | None = None) -> list[dict[str, Any]]:
    """The stored incident events (of one incident, or all), as ``IncidentEvent`` records, in event-time order."""
    rows = reader.query(_EVENTS, {"all": int(incident_id is None), "i": incident_id or ""})
    out = []
    for row in rows:
        record = dict(zip(_COLUMNS, row, strict=True))
        for name in _TIMES:
            record[name] = utc_or_none(record[name])
        record["categories"] = list(record["categories"])
        out.append(record)
    return out


def register_clock(reader: TableReader) -> datetime | None:
    """The pipeline's clock as the tables hold it: the latest event time of a subject or an incident; None when empty."""
    (latest,) = reader.query(_CLOCK)[0]
    at = utc(latest) if latest is not None else None
    return None if at is None or at <= _EPOCH else at


def _impact(reader: TableReader, incident: Incident) -> BreachImpact:
    """Whose data the incident's recipient received in its window, as ``breach`` answers (none for a recipient no table
    knows: the incident is documented all the same)."""
    try:
        return breach(reader, incident.recipient_id, incident.window_from, incident.window_to)
    except UnknownId:
        return BreachImpact(incident.recipient_id, incident.window_from, incident.window_to, 0, 0, (), ())


def _summary(incident: Incident, impact: BreachImpact) -> IncidentSummary:
    affected = frozenset(impact.subject_ids)
    return IncidentSummary(
        incident_id=incident.incident_id,
        recipient_id=incident.recipient_id,
        window_from=incident.window_from,
        window_to=incident.window_to,
        aware_at=incident.aware_at,
        risk=incident.risk,
        declared_categories=incident.categories,
        opened_at=incident.opened_at,
        authority_due=incident.authority_due,
        authority_notified_at=incident.authority_notified_at,
        notified_after_hours=incident.notified_after_hours,
        hours_left=incident.hours_left,
        notification=incident.notification.value,
        flagged=incident.flagged,
        delay_reason=incident.delay_reason,
        closed_at=incident.closed_at,
        open=incident.is_open,
        affected_subjects=impact.subjects,
        affected_categories=impact.categories,
        subjects_told=sum(1 for t in incident.subjects_told if t.subject_id in affected),
        as_of=incident.as_of,
        section=register_core.AUTHORITY_SECTION,
    )


def _clock(reader: TableReader, as_of: datetime | None) -> datetime:
    """``as_of``, else the pipeline's clock (the epoch for empty tables: no incident to judge then)."""
    return as_of or register_clock(reader) or _EPOCH


def incident_register(reader: TableReader, as_of: datetime | None = None, *, open_only: bool = False) -> list[IncidentSummary]:
    """Every incident (``open_only``: those not closed) judged at ``as_of`` (default: the pipeline's clock), with its
    affected subjects and categories [12; GDPR Art. 33(1), 33(5)]; closed ones stay listed unless ``open_only``."""
    judged = register_core.register(incident_events(reader), _clock(reader, as_of))
    return [_summary(i, _impact(reader, i)) for i in judged if i.is_open or not open_only]


def incident_detail(reader: TableReader, incident_id: str, as_of: datetime | None = None) -> IncidentDetail:
    """One incident: its summary, every fact recorded (Art. 33(5)) and whom Art. 34(1) asks to tell, which were told.

    Raises ``UnknownId`` for an incident no opening names (at ``as_of``).
    """
    events = incident_events(reader, incident_id)
    judged = register_core.register(events, _clock(reader, as_of))
    if not judged:
        raise UnknownId(f"unknown incident {incident_id!r}: no opening recorded" + (" by then" if events else ""))
    incident = judged[0]
    impact = _impact(reader, incident)
    return IncidentDetail(
        incident=_summary(incident, impact),
        facts=tuple(_fact(e) for e in events),
        to_inform=register_core.subjects_to_inform(incident, impact.subject_ids),
    )


def _fact(event: dict[str, Any]) -> IncidentFact:
    return IncidentFact(
        event_id=event["event_id"],
        occurred_at=event["occurred_at"],
        kind=event["kind"],
        subject_id=event["subject_id"],
        delay_reason=event["delay_reason"],
    )


def subject_incidents(reader: TableReader, subject_id: str, as_of: datetime | None = None) -> list[SubjectIncident]:
    """The incidents that touched the subject: those whose recipient received the subject's data in the window, open
    or closed (Art. 33(5): every breach stays documented), with the categories concerned and whether they were told."""
    judged = register_core.register(incident_events(reader), _clock(reader, as_of))
    out = []
    for incident in judged:
        edges, categories = reader.query(
            _SUBJECT_IN_WINDOW,
            {"s": subject_id, "r": incident.recipient_id, "start": incident.window_from, "end": incident.window_to},
        )[0]
        if not edges:
            continue
        told = next((t for t in incident.subjects_told if t.subject_id == subject_id), None)
        out.append(
            SubjectIncident(
                incident_id=incident.incident_id,
                recipient_id=incident.recipient_id,
                window_from=incident.window_from,
                window_to=incident.window_to,
                aware_at=incident.aware_at,
                risk=incident.risk,
                categories=tuple(categories),
                authority_notified_at=incident.authority_notified_at,
                notified_at=None if told is None else told.notified_at,
                closed_at=incident.closed_at,
            )
        )
    return out


__all__ = [
    "SubjectsToInform",
    "incident_detail",
    "incident_events",
    "incident_register",
    "register_clock",
    "subject_incidents",
]
