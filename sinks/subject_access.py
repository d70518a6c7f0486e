"""The subject's access and portability export, from the tables [8.1, 12; GDPR Art. 15, 20].

"You have the right to obtain a copy of your personal data that we hold" [8.1];
"we guarantee ... the right to the portability of the Personal Data" [12]. One
plain function builds the export as JSON-ready data (``SubjectAccessExport/v3``,
its JSON Schema in ``schemas/SubjectAccessExport/v3.schema.json``; v1 and v2 stay for
exports made before) for the command line and the HTTP API alike. It asks the
DPO's query layer (``lineage_queries``, ``consent_queries``,
``compliance_queries``, ``holdings_queries``, and the registry for recipients'
names) and adds no SQL of its own: the export says what those answers say, in
DPV terms.

Consent records carry the fields of ISO/IEC TS 27560: record id, subject,
notice and policy version, purpose, lawful basis, collection method, state and
its time, withdrawal method, recipients, retention, and every event with its
evidence (channel, source service, ledger hash, Kafka coordinates).

The tables hold metadata only (ids, categories, purposes, recipients, times),
so the export names categories, never values. "Categories held" [GDPR Art.
15(1)(b)] and the retention plan [2.3; GDPR Art. 15(1)(d)] come from the
subject's holdings record (``subject_holdings``, its latest revision): the
categories provided in the profile [2.1] or named by any processing, the
archive date and every retention action planned, due or not. Both are on every
event known, whatever ``as_of``. The categories the other parts of the export
name (recipients, retention actions, notices, violations) are all among them
once the record is current; they are added anyway, so that an export made
before a worker's next tick never names less than the tables show.

The breaches that touched the subject's data (issue 24) ride along as ``incidents``: each incident of the breach
register whose recipient received the subject's data in its window, open or closed (GDPR Art. 33(5)), with the
categories concerned, when the authority was notified and when the subject was told (Art. 34(1)).

The subject's proof of record (issue 22) rides along as ``record_proof``: the
``SubjectLogProof/v1`` document ``core.log_proof`` builds from the consent log the
caller hands in (``notary.stored_log.StoredLog`` over the same tables), for
``consentflow verify-proof`` to check offline. It is the log as it stands, whatever
``as_of``: its latest checkpoints. Null without a log or without a leaf of the
subject's; a log that cannot prove them (a row gone or altered) leaves it null and
says why in ``record_proof_fault``, and the rest of the export stands.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from consentflow.contracts.query_arguments import LATEST
from consentflow.core.lineage import RecipientHolding
from consentflow.core.log_proof import build_subject_proof
from consentflow.core.log_reader import LogReader
from consentflow.core.merkle import ProofError
from consentflow.core.recipients import RecipientRegistry
from consentflow.policy.dpv import consent_action_term, consent_state_term, legal_basis_term, transfer_term
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import Policy, load_policy
from consentflow.policy.vocabulary import ConsentAction
from consentflow.sinks import (
    compliance_queries,
    consent_queries,
    holdings_queries,
    incident_queries,
    lineage_queries,
    request_queries,
)
from consentflow.sinks.answers import ConsentEvidence, PurposeConsent, jsonable
from consentflow.sinks.holdings_queries import SubjectHoldings
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import require_subject
from consentflow.sinks.registry_reading import registry_from_tables

#: Name and version of the export's contract, as in ``schemas/<name>/v<N>.schema.json``.
SCHEMA_NAME = "SubjectAccessExport"
SCHEMA_VERSION = 3  # v3 (issue 24): the subject's rights requests, and the rules issue 24 adds
SCHEMA_ID = f"{SCHEMA_NAME}/v{SCHEMA_VERSION}"

#: Where the subject's rights come from: the policy's sections and the GDPR's articles.
LEGAL_REFERENCES = {
    "policy_sections": ["8.1", "8.2", "12"],  # copy of the data; within the time limits of the law; portability
    "gdpr_articles": ["Art. 15", "Art. 20"],  # right of access; right to data portability
}


@cache
def export_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The export's JSON Schema (draft 2020-12) of ``version`` (default: the one exports follow), shipped with the package."""
    path = resources.files("consentflow.schemas") / SCHEMA_NAME / f"v{version}.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def subject_access_export(
    reader: TableReader, subject_id: str, as_of: datetime | None = None, *, log: LogReader | None = None
) -> dict[str, Any]:
    """Everything the tables hold about ``subject_id``, as it stood at ``as_of`` (None: on every fact known), with
    the subject's proof of record from ``log`` (None: no log, ``record_proof`` null).

    ``as_of`` bounds consent facts and lineage edges by event time, retention
    actions by due date (without it: those the pipeline emitted; with it: every
    action of the plan due by then, emitted or not), erasure notices by
    fulfilment and violations by the time they occurred; verdicts are the latest known. Categories held and the
    retention plan are on every event known. Arguments must come
    validated (``consentflow.contracts.query_arguments``). Raises ``UnknownId`` for a
    subject no table mentions. Returns JSON-ready data: times as ISO-8601 UTC.
    """
    require_subject(reader, subject_id)
    policy = load_policy()
    registry = registry_from_tables(reader)
    holdings = lineage_queries.who_has(reader, subject_id, as_of)
    where = lineage_queries.countries(reader, subject_id, as_of)
    consent = consent_queries.consent(reader, subject_id, as_of=as_of)
    # On every fact known, the actions already due are those the pipeline emitted at its clock; at an instant, every
    # action of the plan due by then as well.
    retention = compliance_queries.retention_due(
        reader, LATEST if as_of is None else as_of, subject_id, planned=as_of is not None
    )
    notices = [n for n in compliance_queries.erasure_notices(reader, subject_id) if as_of is None or n.fulfilled_at <= as_of]
    violations = [
        v for v in compliance_queries.violations(reader, subject_id=subject_id) if as_of is None or v.occurred_at <= as_of
    ]
    plan = holdings_queries.subject_holdings(reader, subject_id)

    held = set(plan.categories_held) if plan else set()
    held.update(c for h in holdings for c in h.categories)
    held.update(c for r in retention for c in r.categories)
    held.update(c for n in notices for c in (*n.categories, *n.retained_categories))
    held.update(c for v in violations for c in v.categories)
    by_purpose = _recipients_by_purpose(holdings)

    export = {
        "schema": SCHEMA_ID,
        "subject_id": subject_id,
        "as_of": as_of,
        "generated_at": datetime.now(UTC),
        "policy_version": policy.version,
        "legal_references": LEGAL_REFERENCES,
        "categories_held": sorted(held),
        "consent_records": [
            _consent_record(subject_id, purpose, policy, recipients=by_purpose.get(purpose.purpose, []), plan=plan)
            for purpose in consent.purposes
        ],
        "recipients": [
            {
                "recipient_id": h.recipient_id,
                "name": _name(registry, h.recipient_id, h.last),
                "kind": h.recipient_kind,
                "country": h.country or None,  # "" for a recipient outside the registry: nobody can say where
                "in_eea": in_eea(h.country) if h.country else None,
                "categories": sorted(h.categories),
                "purposes": [_recipient_purpose(policy, h, p) for p in sorted(h.purposes)],
                "transfer_mechanisms": [_mechanism(m) for m in sorted(h.mechanisms)],
                "first_sent": h.first,
                "last_sent": h.last,
            }
            for h in holdings
        ],
        # "the list of countries where we store your data and those where it is occasionally sent" [7]
        "countries": {
            "stored": list(where.stored),
            "sent": [
                {
                    "country": c.country or None,
                    "in_eea": c.in_eea if c.country else None,
                    "recipients": list(c.recipients),
                    "transfer_mechanisms": [_mechanism(m) for m in c.mechanisms],
                    "transfers": c.edges,
                    "first": c.first,
                    "last": c.last,
                }
                for c in where.sent
            ],
        },
        "retention_plan": _retention_plan(plan),
        "retention_actions": [
            {
                "action_id": r.action_id,
                "action": r.action,
                "categories": list(r.categories),
                "due_at": r.due_at,
                "policy_section": r.policy_section,
                "reason": r.reason,
                "basis_event_id": r.basis_event_id,
            }
            for r in retention
        ],
        "erasure_notices": [
            {
                "notice_id": n.notice_id,
                "recipient_id": n.recipient_id,
                "categories": list(n.categories),
                "retained_categories": list(n.retained_categories),
                "request_id": n.request_id,
                "requested_at": n.requested_at,
                "fulfilled_at": n.fulfilled_at,
            }
            for n in notices
        ],
        "violations": [
            {
                "violation_id": v.violation_id,
                "rule": v.rule,
                "policy_section": v.policy_section,
                "occurred_at": v.occurred_at,
                "recipient_id": v.recipient_id,
                "purpose": v.purpose,
                "categories": list(v.categories),
                "evidence_event_ids": list(v.evidence_event_ids),
                "detail": v.detail,
            }
            for v in violations
        ],
        # The subject's own requests and their time limits [8.2; GDPR Art. 12(3)] (v3).
        "rights_requests": _rights_requests(reader, subject_id, as_of),
        # The breaches that touched the subject's data, open or closed: every one stays documented [12; Art. 33(5)].
        "incidents": incident_queries.subject_incidents(reader, subject_id, as_of),
        **_record_proof(log, subject_id),
    }
    result: dict[str, Any] = jsonable(export)
    return result


def _rights_requests(reader: TableReader, subject_id: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """The subject's rights requests as they stood at ``as_of`` (None: now), overdue judged then [8.2]."""
    rows = request_queries.rights_requests(reader, subject_id=subject_id, as_of=as_of)
    return [
        {
            "request_id": r.request_id,
            "right": r.right,
            "clock": r.clock,
            "state": r.state,
            "purpose": r.purpose,
            "received_at": r.received_at,
            "due_at": r.due_at,
            "last_day": r.last_day,
            "extension_months": r.extension_months,
            "extension_refused": r.extension_refused,
            "identity_requested_at": r.identity_requested_at,
            "identity_verified_at": r.identity_verified_at,
            "outcome": r.outcome,
            "outcome_at": r.outcome_at,
            "late": r.late,
            "overdue": r.overdue,
        }
        for r in rows
    ]


def _record_proof(log: LogReader | None, subject_id: str) -> dict[str, Any]:
    """``record_proof`` (the proof document, or None when the log holds no leaf of the subject's) and
    ``record_proof_fault`` (why the log could not prove them, or None)."""
    if log is None:
        return {"record_proof": None, "record_proof_fault": None}
    try:
        document = build_subject_proof(log, subject_id)
    except ProofError as error:  # a leaf's row gone or altered, a node missing: named, the export still answers
        return {"record_proof": None, "record_proof_fault": f"the consent log cannot prove the record: {error}"}
    held = document["leaves"] or document["pending"]
    return {"record_proof": document if held else None, "record_proof_fault": None}


def _retention_plan(plan: SubjectHoldings | None) -> dict[str, Any] | None:
    """How long the data is kept [2.3; GDPR Art. 15(1)(d)]: the archive date, what it runs from, every action planned."""
    if plan is None:
        return None
    return {
        "latest_event_at": plan.latest_event_at,
        "archive_at": plan.archive_at,
        "policy_section": plan.archive_section,
        "reason": plan.archive_reason,
        "lifecycle": {
            "registered_at": plan.registered_at,
            "last_use": plan.last_use,
            "closed_at": plan.closed_at,
            "last_negative": plan.last_negative,
            "suspended_at": plan.suspended_at,
        },
        "actions": [
            {
                "action": a.action,
                "categories": list(a.categories),
                "due_at": a.due_at,
                "policy_section": a.policy_section,
                "reason": a.reason,
                "basis_event_id": a.basis_event_id,
            }
            for a in plan.planned
        ],
    }


def _recipient_purpose(policy: Policy, holding: RecipientHolding, purpose: str) -> dict[str, Any]:
    """One purpose of a recipient: the legal basis the policy gives it, those its edges were recorded under (GDPR
    terms) and whether they differ [3; GDPR Art. 6(1)]."""
    return {
        "purpose": purpose,
        "legal_basis": legal_basis_term(policy.basis_of(purpose)),
        "recorded_legal_bases": [legal_basis_term(b) for b in sorted(holding.legal_bases.get(purpose, ()))],
        "legal_basis_differs": purpose in holding.legal_basis_differs,
    }


def _recipients_by_purpose(holdings: list[RecipientHolding]) -> dict[str, list[str]]:
    """Per purpose, the recipients that received the subject's data for it, by id."""
    by_purpose: dict[str, list[str]] = {}
    for h in holdings:  # sorted by recipient id
        for purpose in h.purposes:
            by_purpose.setdefault(purpose, []).append(h.recipient_id)
    return by_purpose


def _consent_record(
    subject_id: str,
    purpose: PurposeConsent,
    policy: Policy,
    *,
    recipients: list[str],
    plan: SubjectHoldings | None,
) -> dict[str, Any]:
    """One ISO/IEC TS 27560 consent record: the purpose's state, how it was collected and withdrawn, and every event."""
    facts = purpose.history  # event-time order
    decisive = facts[-1] if facts else None
    answers = [f for f in facts if f.action in (ConsentAction.GRANTED, ConsentAction.REFUSED)]
    withdrawals = [f for f in facts if f.action == ConsentAction.WITHDRAWN]
    return {
        "record_id": f"{subject_id}:{purpose.purpose}",
        "subject_id": subject_id,
        "purpose": purpose.purpose,
        "needs_consent": purpose.needs_consent,
        "legal_basis": legal_basis_term(policy.basis_of(purpose.purpose)),
        "state": consent_state_term(purpose.state),
        "state_since": purpose.since,
        "notice_id": decisive.notice_id if decisive else None,
        "policy_version": decisive.policy_version if decisive else None,
        # How the subject answered when asked, and how a consent was withdrawn [6]: channels of the latest such facts.
        "collection_method": answers[-1].channel if answers else None,
        "withdrawal_method": withdrawals[-1].channel if withdrawals else None,
        "recipients": recipients,
        # The record is kept with the subject's data: archived when it is [2.3.1, 2.3.3].
        "retention": {
            "policy_section": (plan.archive_section if plan else None) or "2.3.1",
            "archive_due_at": plan.archive_at if plan else None,
        },
        "events": [_consent_event(f) for f in facts],
    }


def _consent_event(fact: ConsentEvidence) -> dict[str, Any]:
    """One consent fact with what proves it: channel, notice, source service, ledger hash, Kafka coordinates."""
    source = None
    if fact.source_topic is not None:
        source = {"topic": fact.source_topic, "partition": fact.source_partition, "offset": fact.source_offset}
    return {
        "event_id": fact.event_id,
        "sequence": fact.sequence,
        "occurred_at": fact.occurred_at,
        "action": fact.action,
        "state": consent_action_term(fact.action),
        "channel": fact.channel,
        "notice_id": fact.notice_id,
        "policy_version": fact.policy_version,
        "source_service": fact.source_service,
        "entry_hash": fact.entry_hash,
        "source": source,
    }


def _mechanism(mechanism: str) -> dict[str, str | None]:
    """A transfer mechanism in our words and as the GDPR provision that frames it [7]."""
    return {"mechanism": mechanism, "gdpr_basis": transfer_term(mechanism)}


def _name(registry: RecipientRegistry, recipient_id: str, at: datetime) -> str | None:
    """The recipient's name in the registry as of ``at`` (its newest version otherwise); None when unregistered."""
    version = registry.at(recipient_id, at) or registry.latest(recipient_id)
    return None if version is None else version.name
