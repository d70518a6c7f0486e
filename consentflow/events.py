"""Typed constructors for every input event, validated at the edge.

Upstream services build events here and hand them to ``EventProducer``; the
generator builds them here too, so every event in the system passed the same
checks. Each constructor returns an ``Event``: the topic it belongs on and its
Avro record. Only metadata about personal data goes in: ids, categories,
purposes, recipients, times, never the values themselves.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeGuard, TypeVar

from consentflow import topics
from consentflow.contracts import UUID_TEXT
from consentflow.errors import ContractError
from consentflow.topics import Topic
from consentflow.vocabulary import (
    CURRENT_POLICY_VERSION,
    AccountKind,
    ConsentAction,
    ConsentChannel,
    CookieAccess,
    CookieCategory,
    DataCategory,
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

# Pseudonymous ids only: letters, digits and . _ : - (no "@", no spaces), so an
# email address or a name cannot pass for an id and leak into the pipeline.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_POLICY_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_MEMBERS: dict[type[StrEnum], dict[str, StrEnum]] = {}
# A cookie name is an RFC 6265 token (``_ga``, ``__Secure-id``...), not an id of a person.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


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


#: What a pseudonymous id may be, in words, for error messages.
ID_RULE = "1-128 of A-Z a-z 0-9 . _ : -, starting alphanumeric"


def is_pseudonymous_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a pseudonymous id (``ID_RULE``): what every id field, and every id a reader asks about, must be."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None  # fullmatch: "$" alone lets a trailing newline through


def _id(topic: Topic, field: str, value: object) -> str:
    if not is_pseudonymous_id(value):
        raise ContractError(topic.short_name, f"{value!r} is not a pseudonymous id ({ID_RULE})", field)
    return value


def _time(topic: Topic, field: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ContractError(topic.short_name, f"{value!r} is not a datetime", field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ContractError(topic.short_name, f"{value.isoformat()} has no time zone; event times are UTC instants", field)
    return value.astimezone(UTC)


def _enum(topic: Topic, field: str, kind: type[E], value: object) -> E:
    # "unknown" is the Avro default an old reader falls back to for a newer
    # symbol; an emitter that does not know the value must say so by failing.
    members = _MEMBERS.get(kind)
    if members is None:
        members = _MEMBERS[kind] = {m.value: m for m in kind if m.value != "unknown"}
    member = members.get(value) if isinstance(value, str) else None  # StrEnum members are str too
    if member is None:
        known = ", ".join(members)
        raise ContractError(topic.short_name, f"{value!r} is not a {kind.__name__} (one of {known})", field)
    return member  # type: ignore[return-value]


def _enums(topic: Topic, field: str, kind: type[E], values: Iterable[object]) -> list[str]:
    if isinstance(values, str):
        raise ContractError(topic.short_name, f"expected a list of {kind.__name__}, got the string {values!r}", field)
    out: list[str] = []
    for value in values:
        item = _enum(topic, field, kind, value).value
        if item not in out:
            out.append(item)
    return out


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
    if event_id is None:
        event_id = new_event_id()
    elif not (isinstance(event_id, str) and UUID_TEXT.fullmatch(event_id)):  # canonical text passes as is
        try:
            event_id = str(uuid.UUID(event_id))
        except (ValueError, TypeError, AttributeError):
            raise ContractError(topic.short_name, f"{event_id!r} is not a UUID", "event_id") from None
    if not isinstance(source_service, str) or not _SERVICE.match(source_service):
        raise ContractError(
            topic.short_name, f"{source_service!r} is not a service name (lowercase, digits, -)", "source_service"
        )
    if not isinstance(policy_version, str) or not _POLICY_VERSION.match(policy_version):
        raise ContractError(topic.short_name, f"{policy_version!r} is not a policy version (YYYY-MM-DD)", "policy_version")
    when = datetime.now(UTC) if occurred_at is None else _time(topic, "occurred_at", occurred_at)
    return {"event_id": event_id, "occurred_at": when, "source_service": source_service, "policy_version": policy_version}


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
    if not isinstance(cookie_name, str) or not _COOKIE_NAME.match(cookie_name):
        raise ContractError(
            t.short_name, f"{cookie_name!r} is not a cookie name (RFC 6265 token, 1-128 characters)", "cookie_name"
        )
    record["cookie_name"] = cookie_name
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
    if not record["categories"]:
        raise ContractError(t.short_name, "a disclosure names at least one data category", "categories")
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
) -> Event:
    """A rights request or its outcome [8, 12]."""
    t = topics.RIGHTS
    record = _envelope(t, subject_id, source_service, occurred_at, event_id, policy_version)
    record["request_id"] = _id(t, "request_id", request_id)
    record["right"] = _enum(t, "right", Right, right).value
    record["status"] = _enum(t, "status", RequestStatus, status).value
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
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ContractError(t.short_name, f"{name!r} is not a recipient name (1-200 characters)", "name")
    record["name"] = name.strip()
    record["kind"] = _enum(t, "kind", RecipientKind, kind).value
    if not isinstance(country, str) or not _COUNTRY.match(country):
        raise ContractError(t.short_name, f"{country!r} is not an ISO 3166-1 alpha-2 country code", "country")
    record["country"] = country
    periods = []
    for period in transfer_mechanisms:
        start = _time(t, "transfer_mechanisms.valid_from", period.valid_from)
        end = None if period.valid_until is None else _time(t, "transfer_mechanisms.valid_until", period.valid_until)
        if end is not None and end <= start:
            raise ContractError(
                t.short_name, f"period ends ({end.isoformat()}) before it starts", "transfer_mechanisms.valid_until"
            )
        mechanism = _enum(t, "transfer_mechanisms.mechanism", TransferMechanism, period.mechanism).value
        periods.append({"mechanism": mechanism, "valid_from": start, "valid_until": end})
    record["transfer_mechanisms"] = periods
    record["allowed_purposes"] = _enums(t, "allowed_purposes", Purpose, allowed_purposes)
    record["active"] = bool(active)
    return Event(t, record)
