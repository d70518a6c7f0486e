"""The rights tests' reference model of the access export [8.1; GDPR Art. 15, 20], from one subject's state in memory.

An independent oracle the tests hold the product's answers against: the product's export is
``sinks.subject_access.subject_access_export``, read from the tables; this one is computed from the processor's
state of the subject, its registry and its retention schedule, in plain Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consentflow.core.processor import Processor
from consentflow.core.recipients import RecipientRegistry
from consentflow.core.retention import RetentionSchedule
from consentflow.core.rights import received_by_recipient
from consentflow.core.state import SubjectState
from consentflow.core.storage_countries import storage_countries


def access_export_of(processor: Processor, subject_id: str, as_of: datetime) -> dict[str, Any] | None:
    """Everything ``processor`` knows about the subject [8.1; GDPR Art. 15, 20], or None for an unknown subject."""
    state = processor.store.get(subject_id)
    return None if state is None else access_export(state, processor.registry, processor.schedule, as_of=as_of)


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
        if rows[0][0] <= as_of  # its first fact's time
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
