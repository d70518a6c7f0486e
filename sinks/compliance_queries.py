"""What needs the DPO's action: active violations, retention actions due [2.3], erasure notices [12].

Verdicts and notices are versioned by ``revision`` (ReplacingMergeTree): read
with ``FINAL``, each id is its highest revision, the verdict on everything
known; a violation whose latest verdict is compliant (``active = 0``) was
retracted and is not listed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from consentflow.contracts.query_arguments import EARLIEST, now_unless
from consentflow.core import retention
from consentflow.policy.vocabulary import Rule
from consentflow.sinks.answers import ActiveViolation, ErasureNotice, RetentionDue
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import require_subject, utc
from consentflow.sinks.tables import DATETIME

_T = DATETIME

# The verdicts are merged to their latest revision first, and only then filtered on
# ``active``: filtering before the merge would resurrect a retracted violation.
_VIOLATIONS = f"""
SELECT violation_id, rule, policy_section, subject_id, occurred_at, recipient_id, purpose, categories,
       evidence_event_ids, detail, revision
FROM (SELECT * FROM {{db:Identifier}}.violations FINAL)
WHERE active = 1 AND occurred_at >= {{since:{_T}}} AND ({{rule:String}} = '' OR rule = {{rule:String}})
  AND ({{subject:String}} = '' OR subject_id = {{subject:String}})
ORDER BY occurred_at, violation_id
"""

# Retention actions are revisable too: merged to their latest revision first, then the retracted ones left out.
_RETENTION_EMITTED = f"""
SELECT action_id, subject_id, action, categories, due_at, policy_section, basis_event_id, reason
FROM (SELECT * FROM {{db:Identifier}}.retention_actions FINAL)
WHERE active = 1 AND due_at <= {{as_of:{_T}}} AND ({{subject:String}} = '' OR subject_id = {{subject:String}})
ORDER BY due_at, subject_id, action_id
"""

# Every subject's plan from its latest holdings record (FINAL: the highest revision), one row per planned action.
_RETENTION_PLANNED = f"""
SELECT subject_id, latest_event_at, action, categories, due_at, section, basis, reason
FROM (
    SELECT * FROM {{db:Identifier}}.subject_holdings FINAL
    WHERE {{subject:String}} = '' OR subject_id = {{subject:String}}
)
ARRAY JOIN planned_actions AS action, planned_categories AS categories, planned_due_at AS due_at,
           planned_sections AS section, planned_basis_event_ids AS basis, planned_reasons AS reason
WHERE due_at <= {{as_of:{_T}}}
"""

_ERASURE_NOTICES = """
SELECT notice_id, recipient_id, categories, retained_categories, request_id, requested_at, fulfilled_at, revision
FROM {db:Identifier}.erasure_notices FINAL
WHERE subject_id = {s:String}
ORDER BY notice_id
"""


def violations(
    reader: TableReader, since: datetime | None = None, rule: Rule | None = None, subject_id: str | None = None
) -> list[ActiveViolation]:
    """Violations whose latest verdict is active, that occurred at or after ``since``, of ``rule`` and ``subject_id`` if given."""
    rows = reader.query(
        _VIOLATIONS,
        {
            "since": EARLIEST if since is None else since,
            "rule": "" if rule is None else rule,
            "subject": "" if subject_id is None else subject_id,
        },
    )
    return [
        ActiveViolation(
            violation_id=violation_id,
            rule=rule_name,
            policy_section=section,
            subject_id=subject_id,
            occurred_at=utc(when),
            recipient_id=recipient_id,
            purpose=purpose,
            categories=tuple(categories),
            evidence_event_ids=tuple(evidence),
            detail=detail,
            revision=int(revision),
        )
        for violation_id, rule_name, section, subject_id, when, recipient_id, purpose, categories, evidence, detail, revision in rows
    ]


def retention_due(
    reader: TableReader, as_of: datetime | None = None, subject_id: str | None = None, *, planned: bool = True
) -> list[RetentionDue]:
    """Retention actions due at or before ``as_of`` (default: now), of ``subject_id`` if given, earliest first [2.3].

    Right for any ``as_of``, past or future: each subject's latest holdings record carries its whole plan (every
    action, due or not, on the events known up to ``RetentionDue.planned_as_of``), and the actions the pipeline
    emitted at its retention clock are added, each once (one a later-arriving fact moved or cancelled was retracted:
    left out).
    ``planned=False`` lists the emitted actions alone, what the pipeline's clock has reached.
    """
    parameters = {"as_of": now_unless(as_of), "subject": "" if subject_id is None else subject_id}
    out = {
        action_id: RetentionDue(
            action_id=action_id,
            subject_id=subject,
            action=action,
            categories=tuple(categories),
            due_at=utc(due_at),
            policy_section=section,
            basis_event_id=basis,
            reason=reason,
        )
        for action_id, subject, action, categories, due_at, section, basis, reason in reader.query(_RETENTION_EMITTED, parameters)
    }
    if planned:
        for subject, latest, action, categories, due_at, section, basis, reason in reader.query(_RETENTION_PLANNED, parameters):
            due = utc(due_at)
            key = retention.action_id(subject, action, due)
            emitted = out.get(key)
            if emitted is not None:  # what the pipeline emitted is what it said; the plan adds its clock
                out[key] = replace(emitted, planned_as_of=utc(latest))
                continue
            out[key] = RetentionDue(
                action_id=key,
                subject_id=subject,
                action=action,
                categories=tuple(categories),
                due_at=due,
                policy_section=section,
                basis_event_id=basis,
                reason=reason,
                emitted=False,
                planned_as_of=utc(latest),
            )
    return sorted(out.values(), key=lambda r: (r.due_at, r.subject_id, r.action_id))


def erasure_notices(reader: TableReader, subject_id: str) -> list[ErasureNotice]:
    """The subject's erasure notices to recipients, each at its latest revision [12; GDPR Art. 19].

    Raises ``UnknownId`` for a subject no table mentions.
    """
    rows = reader.query(_ERASURE_NOTICES, {"s": subject_id})
    if not rows:
        require_subject(reader, subject_id)
    return [
        ErasureNotice(
            notice_id=notice_id,
            subject_id=subject_id,
            recipient_id=recipient_id,
            categories=tuple(categories),
            retained_categories=tuple(retained),
            request_id=request_id,
            requested_at=utc(requested_at),
            fulfilled_at=utc(fulfilled_at),
            revision=int(revision),
        )
        for notice_id, recipient_id, categories, retained, request_id, requested_at, fulfilled_at, revision in rows
    ]
