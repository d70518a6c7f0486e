"""The DPO's consent question over the ledger table: state per purpose at any instant, with the evidence [6].

Event time decides: the state of a purpose at ``as_of`` is the action of its
latest fact at or before ``as_of`` (ties broken by event id, as the processors
do), whatever order the facts arrived in. A purpose that needs consent and has
no fact yet was never asked. A purpose granted by a consent that a later policy
version asks again, given before that version's day, is still ``granted`` in the
ledger's words, and ``awaiting_reconsent`` names the version [13].
"""

from __future__ import annotations

from datetime import datetime

from consentflow.contracts.query_arguments import LATEST
from consentflow.policy.versions import load_history
from consentflow.policy.vocabulary import ConsentAction, ConsentState, Purpose
from consentflow.sinks.answers import ConsentEvidence, PurposeConsent, SubjectConsent
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import require_subject, utc
from consentflow.sinks.tables import DATETIME

_HISTORY = f"""
SELECT sequence, event_id, occurred_at, purpose, action, channel, policy_version, source_service, notice_id,
       source_topic, source_partition, source_offset, entry_hash
FROM {{db:Identifier}}.ledger FINAL
WHERE subject_id = {{s:String}}
  AND occurred_at <= {{as_of:{DATETIME}}}
  AND ({{purpose:String}} = '' OR purpose = {{purpose:String}})
ORDER BY purpose, occurred_at, action != {{granted:String}}, event_id
"""
# The ledger's timeline order (consentflow.core.ledger.fact_order): at the same instant a withdrawal or refusal
# comes after a grant and is in force [6; GDPR Art. 7(1)].
# A ledger action names the state it leaves (an action a newer schema added reads as "unknown").
_STATES = {state.value: state.value for state in ConsentState}


def consent(
    reader: TableReader, subject_id: str, purpose: Purpose | None = None, as_of: datetime | None = None
) -> SubjectConsent:
    """The subject's consent state per purpose at ``as_of`` (None: on every fact known), with each fact's evidence.

    Covers every purpose that needs consent by the policy version in force at ``as_of`` (None: the newest) and
    every purpose the ledger has facts for, or only ``purpose``. A granted purpose whose consent a version in force
    by then asks again, given before that version's day under an earlier notice, is awaiting re-consent [13].
    Raises ``UnknownId`` for a subject no table mentions.
    """
    rows = reader.query(
        _HISTORY,
        {
            "s": subject_id,
            "as_of": LATEST if as_of is None else as_of,
            "purpose": "" if purpose is None else purpose,
            "granted": ConsentAction.GRANTED.value,
        },
    )
    if not rows:
        require_subject(reader, subject_id)
    history: dict[str, list[ConsentEvidence]] = {}
    for seq, event_id, when, p, action, channel, version, service, notice, topic, partition, offset, entry_hash in rows:
        history.setdefault(p, []).append(
            ConsentEvidence(
                sequence=int(seq),
                event_id=event_id,
                occurred_at=utc(when),
                purpose=p,
                action=action,
                channel=channel,
                policy_version=version,
                source_service=service,
                notice_id=notice,
                source_topic=topic,
                source_partition=partition,
                source_offset=offset,
                entry_hash=entry_hash,
            )
        )
    versions = load_history()
    index = len(versions.versions) - 1 if as_of is None else versions.index_in_force(as_of)
    policy, renewals = versions.versions[index], versions.renewals(index)
    asked = {purpose.value} if purpose is not None else {p.value for p in policy.consent_required} | set(history)
    purposes = []
    for name in sorted(asked):
        facts = history.get(name, [])
        decisive = facts[-1] if facts else None  # rows come in the timeline's order
        renewal = renewals.get(name)
        stale = (
            renewal is not None
            and decisive is not None
            and decisive.action == ConsentAction.GRANTED.value
            and renewal.stale(decisive.occurred_at, decisive.policy_version)
        )
        purposes.append(
            PurposeConsent(
                purpose=name,
                state=ConsentState.NEVER_ASKED.value if decisive is None else _STATES.get(decisive.action, "unknown"),
                needs_consent=policy.needs_consent(name),
                since=None if decisive is None else decisive.occurred_at,
                history=tuple(facts),
                awaiting_reconsent=renewal.version if stale and renewal is not None else None,
            )
        )
    return SubjectConsent(subject_id=subject_id, as_of=as_of, purposes=tuple(purposes))
