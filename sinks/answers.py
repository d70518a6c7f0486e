"""The shapes of the DPO's answers, and their JSON form.

Small frozen dataclasses, one per kind of row an answer holds, so that the
command line and the HTTP API read the same fields. Ids, categories, purposes,
recipients, countries and times only: the tables hold nothing else [7, 12].
Who-has answers reuse ``consentflow.core.lineage.RecipientHolding``, what the
tests' in-memory lineage graph (``tests/support/lineage_graph.py``) answers the same question with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from consentflow.core.incidents import SubjectsToInform
from consentflow.core.storage_countries import StorageCountry


@dataclass(frozen=True)
class CountrySent:
    """One country a subject's data reached [7]: who received it there, under which mechanisms, when."""

    country: str  # "" when the recipient was not in the registry: nobody can say where the data went
    in_eea: bool
    recipients: tuple[str, ...]
    mechanisms: tuple[str, ...]
    edges: int
    first: datetime
    last: datetime


@dataclass(frozen=True)
class SubjectCountries:
    """Where a subject's data is stored and where it was sent [7]."""

    subject_id: str
    stored: tuple[str, ...]  # the countries of ``storage``: the controller's and its hosting subcontractors' [7, 4.3]
    sent: tuple[CountrySent, ...]
    # Each storage country, who stores there, and whether "we keep your Personal Data in the European Union" fails there.
    storage: tuple[StorageCountry, ...] = ()


@dataclass(frozen=True)
class CategoryCount:
    """A data category and how many subjects it was received of."""

    category: str
    subjects: int


@dataclass(frozen=True)
class BreachImpact:
    """What one recipient received in a window ``[start, end)``: the subjects to consider informing [12]."""

    recipient_id: str
    start: datetime
    end: datetime
    edges: int
    subjects: int
    categories: tuple[CategoryCount, ...]  # most subjects first
    subject_ids: tuple[str, ...]  # sorted


@dataclass(frozen=True)
class Transfer:
    """Edges to one recipient in one country under one mechanism [7]."""

    country: str  # "" for a recipient outside the registry
    recipient_id: str
    mechanism: str
    edges: int
    subjects: int
    first: datetime
    last: datetime
    in_eea: bool
    framed: bool  # inside the EU/EEA, or outside under a mechanism that frames the transfer (GDPR Art. 45-49)


@dataclass(frozen=True)
class ConsentEvidence:
    """One consent fact from the ledger, with what proves it: channel, policy version, source service and coordinates."""

    sequence: int
    event_id: str
    occurred_at: datetime
    purpose: str
    action: str
    channel: str
    policy_version: str
    source_service: str
    notice_id: str | None
    source_topic: str | None  # Kafka coordinates: only Kafka runs have them
    source_partition: int | None
    source_offset: int | None
    entry_hash: str


@dataclass(frozen=True)
class PurposeConsent:
    """Where a subject's consent for one purpose stands at an instant, and every fact up to then [6]."""

    purpose: str
    state: str  # a ConsentState value: granted, withdrawn, refused, never_asked
    needs_consent: bool  # whether the policy makes this purpose depend on consent
    since: datetime | None  # event time of the fact that decides the state
    history: tuple[ConsentEvidence, ...]  # in event time order
    # The policy version that asks this consent again when the grant in force predates it: it no longer counts [13].
    awaiting_reconsent: str | None = None


@dataclass(frozen=True)
class SubjectConsent:
    """A subject's consent, purpose by purpose, as it stood at ``as_of`` (None: everything known)."""

    subject_id: str
    as_of: datetime | None
    purposes: tuple[PurposeConsent, ...]


@dataclass(frozen=True)
class ActiveViolation:
    """A violation whose latest verdict stands."""

    violation_id: str
    rule: str
    policy_section: str
    subject_id: str
    occurred_at: datetime
    recipient_id: str | None
    purpose: str | None
    categories: tuple[str, ...]
    evidence_event_ids: tuple[str, ...]
    detail: str
    revision: int


@dataclass(frozen=True)
class RetentionDue:
    """A retention action due [2.3]: planned in the subject's latest holdings record, emitted by the pipeline, or both.

    ``planned_as_of`` is the clock the subject's stored plan was computed at: the latest event time it rests on (a plan
    depends on the events known, never on a wall clock); None for an action emitted that the current plan no longer
    holds (a later fact moved it). ``emitted``: whether the pipeline's retention clock reached it and emitted it;
    an action due after that clock is listed from the plan, not yet emitted.
    """

    action_id: str
    subject_id: str
    action: str
    categories: tuple[str, ...]
    due_at: datetime
    policy_section: str
    basis_event_id: str | None
    reason: str
    emitted: bool = True
    planned_as_of: datetime | None = None


@dataclass(frozen=True)
class ErasureNotice:
    """The latest revision of a notice telling a recipient what to erase [12; GDPR Art. 19]."""

    notice_id: str
    subject_id: str
    recipient_id: str
    categories: tuple[str, ...]
    retained_categories: tuple[str, ...]  # kept by a legal obligation [2.3.2]
    request_id: str
    requested_at: datetime
    fulfilled_at: datetime
    revision: int


@dataclass(frozen=True)
class RightsRequestRow:
    """A rights request as tracked, at its latest revision, and whether it is overdue at the instant asked about
    [8.2; GDPR Art. 12(3), 12(4)]. ``due_at`` is when its time limit expires (00:00 in the controller's zone after
    ``last_day``); ``overdue``: answered late, or still open at the instant asked about with that limit passed."""

    subject_id: str
    request_id: str
    right: str
    clock: str  # one_month, at_once or none
    state: str  # open, awaiting_identity, fulfilled, rejected, recorded, incomplete
    purpose: str | None
    received_at: datetime | None
    first_due_at: datetime | None
    due_at: datetime | None
    last_day: str | None
    extension_months: int
    extension_reason: str | None
    extension_refused: bool
    identity_requested_at: datetime | None
    identity_verified_at: datetime | None
    outcome: str | None
    outcome_at: datetime | None
    outcome_reason: str | None
    late: bool
    overdue: bool


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: dataclasses as objects, times in ISO-8601 UTC (days as YYYY-MM-DD), sets as sorted lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, datetime | date):  # a day (a policy version's effective day) as YYYY-MM-DD
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(jsonable(item) for item in value)
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class IncidentSummary:
    """One incident of the breach register at ``as_of`` [12; GDPR Art. 33, 34]: its clock and whom it concerns."""

    incident_id: str
    recipient_id: str
    window_from: datetime  # included
    window_to: datetime  # excluded
    aware_at: datetime
    risk: str  # low | high
    declared_categories: tuple[str, ...]  # what the controller said was concerned (Art. 33(3)(a))
    opened_at: datetime
    authority_due: datetime  # aware_at + 72 h (Art. 33(1))
    authority_notified_at: datetime | None
    notified_after_hours: float | None
    hours_left: float | None  # until authority_due while not notified; negative: overdue
    notification: str  # core.incidents.Notification
    flagged: bool  # overdue, or notified late without reasons
    delay_reason: str | None
    closed_at: datetime | None
    open: bool
    affected_subjects: int  # whose data the recipient received in the window (the lineage, as ``breach`` finds them)
    affected_categories: tuple[CategoryCount, ...]  # most subjects first
    subjects_told: int  # affected subjects told (Art. 34(1))
    as_of: datetime  # the instant judged at: the pipeline's clock unless named
    section: str


@dataclass(frozen=True)
class IncidentFact:
    """One recorded fact of an incident (Art. 33(5) documentation)."""

    event_id: str
    occurred_at: datetime
    kind: str
    subject_id: str | None
    delay_reason: str | None


@dataclass(frozen=True)
class IncidentDetail:
    """One incident: its summary, its facts, and whom Art. 34(1) asks to tell (``core.incidents.SubjectsToInform``)."""

    incident: IncidentSummary
    facts: tuple[IncidentFact, ...]
    to_inform: SubjectsToInform


@dataclass(frozen=True)
class SubjectIncident:
    """An incident that touched one subject: its recipient received the subject's data in the window [12; Art. 33(5)]."""

    incident_id: str
    recipient_id: str
    window_from: datetime
    window_to: datetime
    aware_at: datetime
    risk: str
    categories: tuple[str, ...]  # the subject's categories the recipient received in the window
    authority_notified_at: datetime | None
    notified_at: datetime | None  # when the subject was told (Art. 34(1)), if it was
    closed_at: datetime | None
