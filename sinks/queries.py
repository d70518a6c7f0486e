"""The DPO's questions as parameterised SQL over the pipeline's tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consentflow.contracts.query_arguments import now_unless
from consentflow.policy.versions import load_history
from consentflow.policy.vocabulary import ConsentAction
from consentflow.sinks.incident_queries import incident_register
from consentflow.sinks.reader import TableReader
from consentflow.sinks.request_queries import request_counts
from consentflow.sinks.tables import DATETIME
from consentflow.sinks.transfers_filter import OUTSIDE_EEA, outside_eea_parameters


def overview(reader: TableReader, *, top: int = 10, as_of: datetime | None = None) -> dict[str, Any]:
    """Subjects, consent rates by purpose, top recipients, transfers outside the EU/EEA, violations by rule, consents
    awaiting re-consent, and the calendar panel at ``as_of`` (default: now; ``calendar_panel``)."""
    subjects = reader.query(
        "SELECT uniqExact(subject_id) FROM (SELECT subject_id FROM {db:Identifier}.ledger UNION ALL SELECT subject_id FROM {db:Identifier}.lineage_edges)"
    )[0][0]
    consent = reader.query(
        """
        SELECT purpose, countIf(state = {granted:String}) AS granted, count() AS asked
        FROM (
            SELECT subject_id, purpose, argMax(action, (occurred_at, action != {granted:String}, event_id)) AS state
            FROM {db:Identifier}.ledger FINAL GROUP BY subject_id, purpose
        )
        GROUP BY purpose ORDER BY purpose
        """,
        {"granted": ConsentAction.GRANTED.value},  # the timeline's order: consentflow.core.ledger.fact_order
    )
    recipients = reader.query(
        """
        SELECT recipient_id, any(country), any(transfer_mechanism), uniqExact(subject_id) AS subjects, count() AS edges
        FROM {db:Identifier}.lineage_edges FINAL
        GROUP BY recipient_id ORDER BY subjects DESC, recipient_id LIMIT {top:UInt32}
        """,
        {"top": top},
    )
    transfers = reader.query(
        f"""
        SELECT country, transfer_mechanism, count() AS edges, uniqExact(subject_id) AS subjects,
               arraySort(groupUniqArray(recipient_id)) AS recipients
        FROM {{db:Identifier}}.lineage_edges FINAL
        WHERE {OUTSIDE_EEA}
        GROUP BY country, transfer_mechanism ORDER BY country, transfer_mechanism
        """,
        outside_eea_parameters(),
    )
    violations = reader.query(
        """
        SELECT rule, any(policy_section), count() AS n
        FROM {db:Identifier}.violations FINAL WHERE active
        GROUP BY rule ORDER BY n DESC, rule
        """
    )
    reconsent = awaiting_reconsent(reader)
    return {
        "subjects": int(subjects),
        "consent_by_purpose": [
            {"purpose": p, "granted": int(g), "asked": int(a), "rate": round(g / a, 4) if a else 0.0} for p, g, a in consent
        ],
        "top_recipients": [
            {"recipient_id": r, "country": c, "mechanism": m, "subjects": int(s), "edges": int(e)} for r, c, m, s, e in recipients
        ],
        "transfers_outside_eea": [
            {"country": c, "mechanism": m, "edges": int(e), "subjects": int(s), "recipients": list(rs)}
            for c, m, e, s, rs in transfers
        ],
        "violations_by_rule": [{"rule": r, "policy_section": s, "count": int(n)} for r, s, n in violations],
        "awaiting_reconsent": reconsent,
        "calendar": calendar_panel(reader, as_of, reconsent),
    }


def calendar_panel(
    reader: TableReader, as_of: datetime | None = None, reconsent: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The DPO's calendar at one instant (``as_of``, default now): rights requests open, due within seven days and
    overdue [8.2; GDPR Art. 12(3)]; incidents not closed, with the hours left to notify the authority (negative:
    overdue) [12; Art. 33(1)]; subjects whose consent awaits re-consent [13] (``reconsent``: ``awaiting_reconsent``'s
    answer when already read)."""
    at = now_unless(as_of)
    counts = request_counts(reader, at)
    incidents = incident_register(reader, at, open_only=True)
    awaiting = awaiting_reconsent(reader) if reconsent is None else reconsent
    return {
        "as_of": at.isoformat(),
        "requests": {"open": counts.open, "due_this_week": counts.due_this_week, "overdue": counts.overdue},
        "incidents_open": [
            {
                "incident_id": i.incident_id,
                "recipient_id": i.recipient_id,
                "risk": i.risk,
                "authority_due": i.authority_due.isoformat(),
                "hours_left": None if i.hours_left is None else round(i.hours_left, 1),
                "notification": i.notification,
                "flagged": i.flagged,
                "affected_subjects": i.affected_subjects,
            }
            for i in incidents
        ],
        "awaiting_reconsent": sum(int(row["subjects"]) for row in awaiting),
    }


_STALE_GRANTS = f"""
SELECT count() FROM (
    SELECT subject_id, argMax((action, occurred_at, policy_version), (occurred_at, action != {{granted:String}}, event_id)) AS d
    FROM {{db:Identifier}}.ledger FINAL WHERE purpose = {{purpose:String}} GROUP BY subject_id
)
WHERE d.1 = {{granted:String}} AND d.2 < {{since:{DATETIME}}} AND NOT has({{answered:Array(String)}}, d.3)
"""


def awaiting_reconsent(reader: TableReader) -> list[dict[str, Any]]:
    """Per purpose a shipped policy version asks again (in force or upcoming): the subjects whose consent in force is a
    grant given before that version's day under an earlier notice, so it stops counting on that day [13]."""
    history = load_history()
    out = []
    for purpose, renewal in sorted(history.renewals(len(history.versions) - 1).items()):
        params = {
            "granted": ConsentAction.GRANTED.value,
            "purpose": purpose,
            "since": renewal.since,
            "answered": sorted(renewal.answered_by),
        }
        subjects = reader.query(_STALE_GRANTS, params)[0][0]
        out.append(
            {"purpose": purpose, "version": renewal.version, "since": renewal.since.isoformat(), "subjects": int(subjects)}
        )
    return out
