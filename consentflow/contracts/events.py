"""Typed constructors for every input event, validated at the edge.

Upstream services build events here and hand them to ``EventProducer``; the
generator builds them here too, so every event in the system passed the same
checks. Each constructor returns an ``Event``: the topic it belongs on and its
Avro record. Only metadata about personal data goes in: ids, categories,
purposes, recipients, times, never the values themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from consentflow.contracts import edge_checks, topics
from consentflow.contracts.edge_checks import ID_RULE as ID_RULE  # re-exported: callers import the id rule from here
from consentflow.contracts.edge_checks import is_pseudonymous_id as is_pseudonymous_id
from consentflow.contracts.topics import Topic
from consentflow.policy.vocabulary import (
    CURRENT_POLICY_VERSION,
    AccountKind,
    ConsentAction,
    ConsentChannel,
    CookieAccess,
    CookieCategory,
    DataCategory,
    IncidentEventKind,
    IncidentRisk,
    LegalBasis,
    MessageChannel,
    MessageKind,
    ProfileAction,
    Purpose,
    RecipientKind,
    RequestStatus,
    Right,
    TransferMechanism,
)

Record = dict[str, Any]
E = TypeVar("E", bound=StrEnum)

_MEMBERS: dict[type[StrEnum], dict[str, StrEnum]] = {}


@dataclass(frozen=True, slots=True)
class Event:
    """An input event: the topic it belongs on and its Avro record."""

    topic: Topic
    record: Record

    @property
    def key(self) -> str:
        """Kafka key: the subject id (recipient id for the registry)."""
        return str(self.record[self.topic.key_field])


@dataclass(frozen=True, slots=True)
class MechanismPeriod:
    """A transfer mechanism and the period it holds [7]; ``valid_until`` None is open-ended."""

    mechanism: TransferMechanism
    valid_from: datetime
    valid_until: datetime | None = None


def new_event_id() -> str:
    """A fresh random event id."""
    return str(uuid.uuid4())


# The rules live in ``edge_checks``, which the gate calls on everything read too; these only name the topic.
def _id(topic: Topic, field: str, value: object) -> str:
    return edge_checks.pseudonymous_id(topic.short_name, field, value)


def _time(topic: Topic, field: str, value: object) -> datetime:
    return edge_checks.instant(topic.short_name, field, value)


def _members(kind: type[E]) -> dict[str, E]:
    members = _MEMBERS.get(kind)
    if members is None:
        members = _MEMBERS[kind] = edge_checks.known_symbols(kind)
    return members  # type: ignore[return-value]


def _enum(topic: Topic, field: str, kind: type[E], value: object) -> E:
    return edge_checks.symbol(topic.short_name, field, kind.__name__, _members(kind), value)


def _enums(topic: Topic, field: str, kind: type[E], values: Iterable[object]) -> list[str]:
    return [m.value for m in edge_checks.symbols(topic.short_name, field, kind.__name__, _members(kind), values)]


def _envelope(
    topic: Topic,
    subject_id: str,
    source_service: str,
    occurred_at: datetime | None,
    event_id: str | None,
    policy_version: str,
) -> Record:
    record: Record = _header(topic, source_service, occurred_at, event_id, policy_version)
    record["subject_id"] = _id(topic, "subject_id", subject_id)
    return record


def _header(topic: Topic, source_service: str, occurred_at: datetime | None, event_id: str | None, policy_version: str) -> Record:
    name = topic.short_name
    return {
        "event_id": new_event_id() if event_id is None else edge_checks.event_id(name, "event_id", event_id),
        "occurred_at": datetime.now(UTC) if occurred_at is None else _time(topic, "occurred_at", occurred_at),
        "source_service": edge_checks.service_name(name, "source_service", source_service),
        "policy_version": edge_checks.policy_version(name, "policy_version", policy_version),
    }


def profile_event(
    subject_id: str,
    action: ProfileAction | str,
    *,
    account_kind: AccountKind | str,
    categories: Iterable[DataCategory | str] = (),
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """A step in the account lifecycle [2.3]: registered, updated, used, closed, suspended..."""
    t = topics.PROFILE
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["action"] = _enum(t, "action", ProfileAction, action).value
    record["account_kind"] = _enum(t, "account_kind", AccountKind, account_kind).value
    record["categories"] = _enums(t, "categories", DataCategory, categories)
    return Event(t, record)


def consent_event(
    subject_id: str,
    purpose: Purpose | str,
    action: ConsentAction | str,
    *,
    channel: ConsentChannel | str,
    source_service: str,
    notice_id: str | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """A consent granted, withdrawn or refused for one purpose [6]."""
    t = topics.CONSENT
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["purpose"] = _enum(t, "purpose", Purpose, purpose).value
    record["action"] = _enum(t, "action", ConsentAction, action).value
    record["channel"] = _enum(t, "channel", ConsentChannel, channel).value
    record["notice_id"] = None if notice_id is None else _id(t, "notice_id", notice_id)
    return Event(t, record)


def consent_granted(subject_id: str, purpose: Purpose | str, **kw: Any) -> Event:
    """The subject gave consent for ``purpose`` (``channel=`` and ``source_service=`` required)."""
    return consent_event(subject_id, purpose, ConsentAction.GRANTED, **kw)


def consent_withdrawn(subject_id: str, purpose: Purpose | str, **kw: Any) -> Event:
    """The subject withdrew consent for ``purpose``, which they may do at any time [6]."""
    return consent_event(subject_id, purpose, ConsentAction.WITHDRAWN, **kw)


def consent_refused(subject_id: str, purpose: Purpose | str, **kw: Any) -> Event:
    """The subject was asked and declined."""
    return consent_event(subject_id, purpose, ConsentAction.REFUSED, **kw)


def cookie_accessed(
    subject_id: str,
    vendor_id: str,
    cookie_category: CookieCategory | str,
    *,
    cookie_name: str,
    access: CookieAccess | str = CookieAccess.SET,
    categories: Iterable[DataCategory | str] = (DataCategory.DEVICE_NETWORK,),
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """A cookie set or read for a vendor [2.2.1]."""
    t = topics.COOKIE
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["cookie_category"] = _enum(t, "cookie_category", CookieCategory, cookie_category).value
    record["access"] = _enum(t, "access", CookieAccess, access).value
    record["vendor_id"] = _id(t, "vendor_id", vendor_id)
    record["cookie_name"] = edge_checks.cookie_name(t.short_name, "cookie_name", cookie_name)
    record["categories"] = _enums(t, "categories", DataCategory, categories)
    return Event(t, record)


def message_sent(
    subject_id: str,
    kind: MessageKind | str,
    *,
    channel: MessageChannel | str,
    purpose: Purpose | str,
    processor_id: str | None = None,
    categories: Iterable[DataCategory | str] = (DataCategory.CONTACT,),
    counterpart_subject_id: str | None = None,
    campaign_id: str | None = None,
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """A message sent to the subject, through ``processor_id`` when a processor delivered it [7]."""
    t = topics.MESSAGE
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["kind"] = _enum(t, "kind", MessageKind, kind).value
    record["channel"] = _enum(t, "channel", MessageChannel, channel).value
    record["purpose"] = _enum(t, "purpose", Purpose, purpose).value
    record["processor_id"] = None if processor_id is None else _id(t, "processor_id", processor_id)
    record["categories"] = _enums(t, "categories", DataCategory, categories)
    record["counterpart_subject_id"] = (
        None if counterpart_subject_id is None else _id(t, "counterpart_subject_id", counterpart_subject_id)
    )
    record["campaign_id"] = None if campaign_id is None else _id(t, "campaign_id", campaign_id)
    return Event(t, record)


def newsletter_sent(
    subject_id: str,
    processor_id: str,
    *,
    channel: MessageChannel | str = MessageChannel.EMAIL,
    campaign_id: str | None = None,
    **kw: Any,
) -> Event:
    """A newsletter sent through an emailing or SMS provider: marketing, needs consent [3.8, 6, 7]."""
    return message_sent(
        subject_id,
        MessageKind.NEWSLETTER,
        channel=channel,
        purpose=Purpose.MARKETING,
        processor_id=processor_id,
        campaign_id=campaign_id,
        **kw,
    )


def data_disclosed(
    subject_id: str,
    recipient_id: str,
    categories: Iterable[DataCategory | str],
    *,
    purpose: Purpose | str,
    legal_basis: LegalBasis | str,
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """Categories of the subject's data handed to a recipient [4, 7]."""
    t = topics.DISCLOSURE
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["recipient_id"] = _id(t, "recipient_id", recipient_id)
    record["categories"] = _enums(t, "categories", DataCategory, categories)
    edge_checks.names_a_category(t.short_name, "categories", record["categories"])
    record["purpose"] = _enum(t, "purpose", Purpose, purpose).value
    record["legal_basis"] = _enum(t, "legal_basis", LegalBasis, legal_basis).value
    return Event(t, record)


def rights_event(
    subject_id: str,
    right: Right | str,
    status: RequestStatus | str,
    *,
    request_id: str,
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
    purpose: Purpose | str | None = None,
    extension_months: int | None = None,
    reason_code: str | None = None,
) -> Event:
    """A rights request, a step of its handling or its outcome [8, 12; GDPR Art. 12]: ``extension_months`` (1 or 2)
    with the status ``extended`` only, ``purpose`` for a consent withdrawal or an objection only, ``reason_code`` a
    short code (RightsEvent v2)."""
    t = topics.RIGHTS
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["request_id"] = _id(t, "request_id", request_id)
    record["right"] = _enum(t, "right", Right, right).value
    record["status"] = _enum(t, "status", RequestStatus, status).value
    record["purpose"] = None if purpose is None else _enum(t, "purpose", Purpose, purpose).value
    record["extension_months"] = (
        None if extension_months is None else edge_checks.integer(t.short_name, "extension_months", extension_months)
    )
    record["reason_code"] = None if reason_code is None else edge_checks.reason_code(t.short_name, "reason_code", reason_code)
    edge_checks.rights_request(t.short_name, record)
    return Event(t, record)


def recipient_registered(
    recipient_id: str,
    *,
    name: str,
    kind: RecipientKind | str,
    country: str,
    transfer_mechanisms: Iterable[MechanismPeriod] = (),
    allowed_purposes: Iterable[Purpose | str],
    active: bool = True,
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """An entry of the recipient registry [4, 7]; a later one for the same id supersedes it."""
    t = topics.RECIPIENTS
    record = _header(t, source_service, occurred_at, event_id, policy_version)
    record["recipient_id"] = _id(t, "recipient_id", recipient_id)
    record["name"] = edge_checks.recipient_name(t.short_name, "name", name)
    record["kind"] = _enum(t, "kind", RecipientKind, kind).value
    record["country"] = edge_checks.country(t.short_name, "country", country)
    periods = []
    for period in transfer_mechanisms:
        start = _time(t, "transfer_mechanisms.valid_from", period.valid_from)
        end = None if period.valid_until is None else _time(t, "transfer_mechanisms.valid_until", period.valid_until)
        edge_checks.period_order(t.short_name, "transfer_mechanisms.valid_until", start, end)
        mechanism = _enum(t, "transfer_mechanisms.mechanism", TransferMechanism, period.mechanism).value
        periods.append({"mechanism": mechanism, "valid_from": start, "valid_until": end})
    record["transfer_mechanisms"] = periods
    record["allowed_purposes"] = _enums(t, "allowed_purposes", Purpose, allowed_purposes)
    record["active"] = bool(active)
    return Event(t, record)


def incident_event(
    incident_id: str,
    kind: IncidentEventKind | str,
    *,
    recipient_id: str | None = None,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
    aware_at: datetime | None = None,
    risk: IncidentRisk | str | None = None,
    categories: Iterable[DataCategory | str] = (),
    subject_id: str | None = None,
    delay_reason: str | None = None,
    source_service: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    policy_version: str = CURRENT_POLICY_VERSION,
) -> Event:
    """A fact of the breach register [12; GDPR Art. 33, 34]: ``opened`` (recipient, window, aware_at, risk, the
    categories known), ``authority_notified`` (with ``delay_reason`` when later than 72 hours), ``subject_notified``
    (one subject told), ``closed``. Each kind carries its fields only (``edge_checks.incident_shape``)."""
    t = topics.INCIDENTS
    name = t.short_name
    record = _header(t, source_service, occurred_at, event_id, policy_version)
    record["incident_id"] = _id(t, "incident_id", incident_id)
    record["kind"] = _enum(t, "kind", IncidentEventKind, kind).value
    record["recipient_id"] = None if recipient_id is None else _id(t, "recipient_id", recipient_id)
    record["window_from"] = None if window_from is None else _time(t, "window_from", window_from)
    record["window_to"] = None if window_to is None else _time(t, "window_to", window_to)
    record["aware_at"] = None if aware_at is None else _time(t, "aware_at", aware_at)
    record["risk"] = None if risk is None else _enum(t, "risk", IncidentRisk, risk).value
    record["categories"] = _enums(t, "categories", DataCategory, categories)
    record["subject_id"] = None if subject_id is None else _id(t, "subject_id", subject_id)
    record["delay_reason"] = None if delay_reason is None else edge_checks.reason_line(name, "delay_reason", delay_reason)
    edge_checks.incident_shape(name, record)
    return Event(t, record)
