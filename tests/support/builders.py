"""Small builders for the domain tests: fixed ids and times, a registry fed through the processor, final verdicts.

Events are built with the public constructors of ``consentflow.contracts.events`` and fed to ``Processor.process``
exactly as a driver would; nothing here computes an expected result.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.events import Event, MechanismPeriod
from consentflow.core.processor import Changes, Processor
from consentflow.policy.vocabulary import (
    ConsentAction,
    ConsentChannel,
    LegalBasis,
    Purpose,
    RecipientKind,
    TransferMechanism,
)

Record = dict[str, Any]

#: A Monday morning, 09:00 UTC: the scenarios' reference instant.
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
#: When every scenario recipient enters the registry (well before T0).
REGISTERED = T0 - timedelta(days=400)
LONG_AGO = T0 - timedelta(days=4000)


def eid(*parts: object) -> str:
    """A fixed UUID per name, so scenarios are reproducible and ids readable in failures."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "consentflow-tests/" + "/".join(str(p) for p in parts)))


def at(hours: float = 0.0, *, days: float = 0.0, minutes: float = 0.0) -> datetime:
    """T0 shifted by the given amount."""
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


@dataclass(frozen=True)
class RecipientSpec:
    """A registry entry as a test writes it down (the test's own copy of the facts)."""

    recipient_id: str
    kind: RecipientKind
    country: str
    purposes: tuple[Purpose, ...]
    mechanisms: tuple[MechanismPeriod, ...] = ()
    since: datetime = REGISTERED
    active: bool = True

    def event(self, version: int = 0) -> Event:
        """The ``recipients`` event registering this entry."""
        return events.recipient_registered(
            self.recipient_id,
            name=f"{self.recipient_id} (test)",
            kind=self.kind,
            country=self.country,
            transfer_mechanisms=self.mechanisms,
            allowed_purposes=self.purposes,
            active=self.active,
            source_service="vendor-registry",
            occurred_at=self.since,
            event_id=eid("recipient", self.recipient_id, version, self.since.isoformat()),
        )


def scc_from(start: datetime, until: datetime | None = None) -> tuple[MechanismPeriod, ...]:
    """Standard contractual clauses holding from ``start`` (to ``until``) [7]."""
    return (MechanismPeriod(TransferMechanism.SCC, start, until),)


# The scenario registry. Purposes are chosen so that each scenario breaks exactly the rule it is about.
POSTWAVE = RecipientSpec(
    "postwave",
    RecipientKind.EMAILING_PROVIDER,
    "US",
    (Purpose.MARKETING, Purpose.SERVICE_INFORMATION, Purpose.SUPPORT),
    scc_from(LONG_AGO),
)
METRICLY = RecipientSpec(
    "metricly", RecipientKind.ANALYTICS_PROVIDER, "US", (Purpose.COOKIES_ANALYTICS, Purpose.SITE_OPTIMISATION), scc_from(LONG_AGO)
)
ADNEXUS = RecipientSpec("adnexus", RecipientKind.MARKETING_PROVIDER, "IE", (Purpose.COOKIES_ADVERTISING,))
CLOUDNEST = RecipientSpec(
    "cloudnest",
    RecipientKind.TECHNICAL_SUBCONTRACTOR,
    "IE",
    (
        Purpose.TECHNICAL_OPERATIONS_ANALYTICS,
        Purpose.SITE_OPTIMISATION,
        Purpose.EXPERIENCE_IMPROVEMENT,
        Purpose.SECURITY_FRAUD_PREVENTION,
        Purpose.GEOLOCATION_SERVICES,
    ),
)
VERIFID = RecipientSpec("verifid", RecipientKind.IDENTITY_VERIFICATION_PROVIDER, "DE", (Purpose.IDENTITY_VERIFICATION,))
TRIBUNAL = RecipientSpec(
    "tribunal-paris", RecipientKind.AUTHORITY, "FR", (Purpose.LEGAL_OBLIGATION_COMPLIANCE, Purpose.IDENTITY_VERIFICATION)
)
QUICKPAY = RecipientSpec(
    "quickpay", RecipientKind.PAYMENT_PROVIDER, "FR", (Purpose.CONTRACT_INTRODUCTIONS, Purpose.LEGAL_OBLIGATION_COMPLIANCE)
)
OTHER_USERS = RecipientSpec(
    "other-users", RecipientKind.OTHER_USERS, "FR", (Purpose.PROFILE_MATCHING, Purpose.USER_COMMUNICATION)
)
CUSTOMER = RecipientSpec(
    "customer-nordlicht", RecipientKind.CORPORATE_CUSTOMER, "DE", (Purpose.PROFILE_MATCHING, Purpose.CONTRACT_INTRODUCTIONS)
)
GROUP_DE = RecipientSpec(
    "valumen-deutschland", RecipientKind.GROUP_ENTITY, "DE", (Purpose.CONTRACT_INTRODUCTIONS, Purpose.PROFILE_MATCHING)
)
PARTNER = RecipientSpec("partner-talentmap", RecipientKind.BUSINESS_PARTNER, "FR", (Purpose.PARTNER_AGGREGATION,))
#: SCCs signed ten days after T0: transfers before then are framed by nothing [7].
LATE_SCC = RecipientSpec("brightfunnel", RecipientKind.MARKETING_PROVIDER, "US", (Purpose.MARKETING,), scc_from(at(days=10)))
#: SCCs that expired a day before T0.
EXPIRED_SCC = RecipientSpec(
    "oldmail",
    RecipientKind.EMAILING_PROVIDER,
    "US",
    (Purpose.SERVICE_INFORMATION, Purpose.MARKETING),
    scc_from(LONG_AGO, at(days=-1)),
)
#: Outside the EU/EEA with no mechanism at all.
NO_MECHANISM = RecipientSpec("shadowstats", RecipientKind.ANALYTICS_PROVIDER, "IN", (Purpose.TECHNICAL_OPERATIONS_ANALYTICS,))
#: Registered only five days after T0.
LATE_REGISTERED = RecipientSpec(
    "latecomer", RecipientKind.TECHNICAL_SUBCONTRACTOR, "FR", (Purpose.TECHNICAL_OPERATIONS_ANALYTICS,), since=at(days=5)
)

SCENARIO_REGISTRY: tuple[RecipientSpec, ...] = (
    POSTWAVE,
    METRICLY,
    ADNEXUS,
    CLOUDNEST,
    VERIFID,
    TRIBUNAL,
    QUICKPAY,
    OTHER_USERS,
    CUSTOMER,
    GROUP_DE,
    PARTNER,
    LATE_SCC,
    EXPIRED_SCC,
    NO_MECHANISM,
    LATE_REGISTERED,
)


def processor_with(specs: Iterable[RecipientSpec] = SCENARIO_REGISTRY, **kw: Any) -> Processor:
    """A fresh processor whose registry was fed through ``process("recipients", ...)``."""
    processor = Processor(**kw)
    for spec in specs:
        assert not processor.process("recipients", spec.event().record)
    return processor


def feed(processor: Processor, *items: Event, source: Mapping[str, Any] | None = None) -> Changes:
    """Process events in the order given; everything they changed."""
    changes = Changes()
    for item in items:
        changes.extend(processor.process(item.topic.short_name, item.record, source))
    return changes


# ------------------------------------------------------------------------------- event shorthands


def consent(
    subject: str,
    purpose: Purpose,
    action: ConsentAction,
    when: datetime,
    *,
    channel: ConsentChannel = ConsentChannel.ACCOUNT_SETTINGS,
    name: str | None = None,
) -> Event:
    """A consent event with a fixed id."""
    return events.consent_event(
        subject,
        purpose,
        action,
        channel=channel,
        source_service="profile",
        notice_id=f"notice-{purpose.value}-v1",
        occurred_at=when,
        event_id=eid(subject, "consent", name or f"{purpose}-{action}-{when.isoformat()}"),
    )


def newsletter(subject: str, when: datetime, *, processor_id: str = POSTWAVE.recipient_id, name: str | None = None) -> Event:
    """A newsletter (marketing [3.8, 6]) delivered through a processor."""
    return events.newsletter_sent(
        subject,
        processor_id,
        source_service="mailing",
        occurred_at=when,
        event_id=eid(subject, "newsletter", name or when.isoformat()),
    )


def disclose(
    subject: str,
    recipient: RecipientSpec | str,
    categories: Sequence[str],
    when: datetime,
    *,
    purpose: Purpose,
    basis: LegalBasis,
    name: str | None = None,
) -> Event:
    """A disclosure to a recipient [4]."""
    recipient_id = recipient if isinstance(recipient, str) else recipient.recipient_id
    return events.data_disclosed(
        subject,
        recipient_id,
        categories,
        purpose=purpose,
        legal_basis=basis,
        source_service="matching",
        occurred_at=when,
        event_id=eid(subject, "disclosure", name or f"{recipient_id}-{purpose}-{','.join(categories)}-{when.isoformat()}"),
    )


# ------------------------------------------------------------------------------- verdicts


def final_verdicts(violations: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The final record per violation id: the one with the highest revision.

    Two records of one id with the same revision must agree, or "highest revision" would decide nothing.
    """
    final: dict[str, Mapping[str, Any]] = {}
    for record in violations:
        known = final.get(record["violation_id"])
        if known is not None and record["revision"] == known["revision"]:
            assert (record["active"], record["evidence_event_ids"]) == (known["active"], known["evidence_event_ids"]), (
                f"two verdicts of {record['violation_id']} at revision {record['revision']}: {known} / {record}"
            )
        if known is None or record["revision"] >= known["revision"]:
            final[record["violation_id"]] = record
    return final


def active_verdicts(violations: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Final verdicts that are still active."""
    return {vid: r for vid, r in final_verdicts(violations).items() if r["active"]}


def crash_and_replay(
    specs: Iterable[RecipientSpec], items: Sequence[Event], draw: Callable[[Any], Any], *, ticks: bool = False
) -> Changes:
    """Everything a crashed worker and its successor emitted for ``items``.

    The first worker processes a random arrival order up to a random point; its state
    was saved at an earlier random point (the changelog lags). The successor starts
    from that saved state and processes the rest in another random order. ``draw`` is
    hypothesis's ``data.draw``. With ``ticks``, each worker also ticks after random
    events, at the latest event time it has seen (as a worker's retention timer does),
    and the successor ticks once more at the end.
    """
    order = draw(st.permutations(items))
    crashed_at = draw(st.integers(0, len(order)))
    saved_at = draw(st.integers(0, crashed_at))
    crashed = processor_with(specs)
    outputs = Changes()
    saved = copy.deepcopy(crashed.store)
    watermark: datetime | None = None  # the latest event time the running worker has seen
    for index, item in enumerate(order[:crashed_at]):
        if index == saved_at:
            saved = copy.deepcopy(crashed.store)
        outputs.extend(feed(crashed, item))
        if ticks:
            watermark = _tick_at_random(crashed, item, watermark, draw, outputs)
    if saved_at == crashed_at:
        saved = copy.deepcopy(crashed.store)
    successor = processor_with(specs, store=saved)
    # A new process: its clock starts at the latest event its recovered states know (streams/worker.py).
    watermark = max((s.latest_event_at for s in saved.states() if s.latest_event_at is not None), default=None)
    for item in draw(st.permutations(order[saved_at:])):
        outputs.extend(feed(successor, item))
        if ticks:
            watermark = _tick_at_random(successor, item, watermark, draw, outputs)
    if ticks and watermark is not None:
        outputs.extend(successor.tick(watermark))
    return outputs


def _tick_at_random(
    processor: Processor, item: Event, watermark: datetime | None, draw: Callable[[Any], Any], outputs: Changes
) -> datetime:
    """The watermark moved on to ``item``'s time; a tick there when the draw says so, its outputs added to ``outputs``."""
    when: datetime = item.record["occurred_at"]
    watermark = when if watermark is None or when > watermark else watermark
    if draw(st.booleans()):
        outputs.extend(processor.tick(watermark))
    return watermark


def highest_revisions(records: Iterable[Mapping[str, Any]], id_field: str) -> dict[str, list[Mapping[str, Any]]]:
    """Per id, every record at that id's highest revision: what a sink versioned by revision keeps."""
    top: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        known = top.get(record[id_field])
        if known is None or record["revision"] > known[0]["revision"]:
            top[record[id_field]] = [record]
        elif record["revision"] == known[0]["revision"]:
            known.append(record)
    return top
