"""Rights of the data subject: erasure notices to recipients, and the access export [8, 12].

* Erasure [12; GDPR Art. 17, 19]: once an erasure is carried out, every
  recipient that received the subject's data before it gets a notice naming the
  categories to erase; what a legal obligation keeps (financial data for the
  accounting period [2.3.2]) is named as retained. "Other users" are no single
  party that can be notified [4.1], so they get none.
* Access and portability [8.1, 12; GDPR Art. 15, 20]: everything the project
  knows about the subject, as one structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consentflow.contracts.records import ErasureNotice
from consentflow.core.recipients import RecipientRegistry
from consentflow.core.retention import RetentionSchedule
from consentflow.core.state import OCCURRED_AT, SubjectState
from consentflow.core.storage_countries import storage_countries
from consentflow.policy.versions import Policy
from consentflow.policy.vocabulary import RecipientKind


@dataclass(slots=True)
class Received:
    """What one recipient received of the subject: each category with the first time it was sent."""

    first_sent: dict[str, datetime] = field(default_factory=dict)
    purposes: set[str] = field(default_factory=set)
    last_sent: datetime | None = None
    processings: int = 0  # how many processings sent it data


def received_by_recipient(state: SubjectState, until: datetime | None = None) -> dict[str, Received]:
    """What each recipient received (up to ``until``), from the subject's processings (in event-time order)."""
    out: dict[str, Received] = {}
    for p in state.processings():
        if until is not None and p.occurred_at > until:
            break
        if p.recipient_id is None:
            continue
        received = out.get(p.recipient_id)
        if received is None:
            received = out[p.recipient_id] = Received()
        for category in p.categories:
            received.first_sent.setdefault(category, p.occurred_at)
        received.purposes.add(p.purpose)
        received.last_sent = p.occurred_at
        received.processings += 1
    return out


def erasure_notices(state: SubjectState, registry: RecipientRegistry, policy: Policy) -> list[ErasureNotice]:
    """Notices for the subject's fulfilled erasure whose revision moved since they were last sent; updates ``state.notices``.

    A notice's revision counts the facts it rests on: the erasure requests and
    fulfilments known (high bits), then the processings to that recipient up to
    the erasure (low bits). Both only grow as facts arrive, whatever their order
    and whichever worker saw them, so the highest revision of a notice id is the
    notice on everything known [12; GDPR Art. 19]; a notice is re-issued whenever
    its revision moves, even with the same categories, so that it overwrites one
    a crashed worker issued on less.
    """
    erased = state.erasure_fulfilled_at
    if erased is None or state.erasure_request_id is None:
        return []
    financial = frozenset(c.value for c in policy.financial_categories)
    out: list[ErasureNotice] = []
    for recipient_id, received in sorted(received_by_recipient(state, erased).items()):
        categories = frozenset(received.first_sent)
        if not categories:
            continue
        version = registry.at(recipient_id, erased) or registry.latest(recipient_id)
        if version is not None and version.kind is RecipientKind.OTHER_USERS:
            continue
        revision = (state.erasure_events << 32) | received.processings
        sent = state.notices.get(recipient_id)
        if sent is not None and sent[1] == revision:
            continue
        state.notices[recipient_id] = (categories, revision)
        out.append(
            {
                "notice_id": f"{state.erasure_request_id}:{recipient_id}",
                "subject_id": state.subject_id,
                "recipient_id": recipient_id,
                "categories": sorted(categories - financial),
                "retained_categories": sorted(categories & financial),
                "request_id": state.erasure_request_id,
                "requested_at": state.erasure_requested_at or erased,
                "fulfilled_at": erased,
                "revision": revision,
            }
        )
    return out


def access_export(
    state: SubjectState, registry: RecipientRegistry, schedule: RetentionSchedule, *, as_of: datetime
) -> dict[str, Any]:
    """Everything known about the subject as it stood at ``as_of`` [8.1; GDPR Art. 15, 20].

    Consent history with evidence and the recipients count only facts up to
    ``as_of``; categories held and retention dates are as known now.
    """
    consents = {
        purpose: [
            {
                "event_id": f.event_id,
                "occurred_at": f.occurred_at,
                "action": f.action,
                "channel": f.channel,
                "policy_version": f.policy_version,
                "source_service": f.source_service,
                "notice_id": f.notice_id,
            }
            for f in state.facts(purpose)
            if f.occurred_at <= as_of
        ]
        for purpose, rows in sorted(state.consents.items())
        if rows[0][OCCURRED_AT] <= as_of  # its first fact's time
    }
    recipients = []
    for recipient_id, received in sorted(received_by_recipient(state, as_of).items()):
        version = registry.latest(recipient_id)
        # Where the data went and what framed it: the registry as of the last transfer, as in the lineage graph [7].
        then = (registry.at(recipient_id, received.last_sent) if received.last_sent else None) or version
        recipients.append(
            {
                "recipient_id": recipient_id,
                "name": version.name if version else None,
                "kind": version.kind.value if version else None,
                "country": then.country if then else None,
                "transfer_mechanism": then.mechanism_at(received.last_sent).value if then and received.last_sent else None,
                "categories": sorted(received.first_sent),
                "purposes": sorted(received.purposes),
                "first_sent": min(received.first_sent.values()),
                "last_sent": received.last_sent,
            }
        )
    plan = schedule.plan(state)
    archive = plan.archive
    return {
        "subject_id": state.subject_id,
        "as_of": as_of,
        "account_kind": state.account_kind,
        "categories_held": sorted(plan.held),
        "consents": consents,
        "recipients": recipients,
        "countries": {
            "stored": [s.country for s in storage_countries(schedule.policy, registry, as_of)],
            "sent": sorted({r["country"] for r in recipients if r["country"]}),
        },
        "retention": {
            "archive_at": archive.at if archive else None,
            "section": archive.section if archive else None,
            "planned": plan.actions,
        },
        "requests": [dict(request, request_id=request_id) for request_id, request in sorted(state.requests.items())],
        "erasure_fulfilled_at": state.erasure_fulfilled_at,
    }
