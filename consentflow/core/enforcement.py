"""Policy enforcement: which processings break which rule, with the events that prove it.

Each rule is written from the privacy policy and cites it; the thresholds and
lists come from the policy file. Two kinds of checks:

* **static** — decided by the processing and the recipient registry alone
  (transfer mechanism at that instant [7], registered purpose [4.4], categories
  other users may see [4.1], identity documents [2.1.9, 3.10], unregistered
  recipient [4.3]);
* **consent- and erasure-dependent** — decided by the subject's history in event
  time, so re-evaluated when an older consent or erasure fact arrives late
  (marketing [3.8, 6], cookies [2.2.1], geolocation [2.1.8], partner
  aggregation [4.4.7], processing after erasure [12]).

One ``PolicyEnforcement`` per policy version: the processor judges each
processing under the version in force at its event time [13]. A version that
asks a purpose's consent again (``reconsent``) makes a consent given before its
day stop counting from that day: a processing for that purpose afterwards, on
such a consent alone, is ``consent_not_renewed`` (naming the version the
consent was given under and the one in force), not ``marketing_without_consent``,
so each offending processing is one violation [13; GDPR Art. 7(1)].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from consentflow.contracts.records import Violation
from consentflow.contracts.timestamp_plan import micros
from consentflow.core.ledger import fact_index_at
from consentflow.core.recipients import RecipientVersion
from consentflow.core.state import (
    CATEGORIES,
    EVENT_ID,
    FACT_ACTION,
    FACT_CHANNEL,
    FACT_POLICY_VERSION,
    LEGAL_BASIS,
    OCCURRED_AT,
    PURPOSE,
    Processing,
    ProcessingRow,
    SubjectState,
)
from consentflow.policy.versions import Policy, Renewal
from consentflow.policy.vocabulary import (
    RULE_SECTIONS,
    ConsentAction,
    DataCategory,
    LegalBasis,
    Purpose,
    RecipientKind,
    Rule,
    TransferMechanism,
)

#: The rule broken when processing for a consent purpose happens without consent.
_CONSENT_RULE: dict[str, Rule] = {
    Purpose.MARKETING.value: Rule.MARKETING_WITHOUT_CONSENT,  # [3.8, 6]
    Purpose.PARTNER_AGGREGATION.value: Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT,  # [4.4.7]
    Purpose.GEOLOCATION_SERVICES.value: Rule.GEOLOCATION_WITHOUT_CONSENT,  # [2.1.8]
    Purpose.COOKIES_PREFERENCES.value: Rule.COOKIE_WITHOUT_CONSENT,  # [2.2.1]
    Purpose.COOKIES_ANALYTICS.value: Rule.COOKIE_WITHOUT_CONSENT,
    Purpose.COOKIES_ADVERTISING.value: Rule.COOKIE_WITHOUT_CONSENT,
    Purpose.COOKIES_SOCIAL_MEDIA.value: Rule.COOKIE_WITHOUT_CONSENT,
}
# Final: compiled (consentflow.runtime.native), a Final constant is read where it is used, not looked up in the module.
_USERS: Final = frozenset({RecipientKind.OTHER_USERS, RecipientKind.CORPORATE_CUSTOMER})
_NONE: Final = TransferMechanism.NONE
_IDENTITY_DOCUMENTS: Final = DataCategory.IDENTITY_DOCUMENTS.value
_LEGAL_OBLIGATION: Final = LegalBasis.LEGAL_OBLIGATION.value
_LEGAL_PURPOSE: Final = Purpose.LEGAL_OBLIGATION_COMPLIANCE.value
_GRANTED: Final = ConsentAction.GRANTED.value
_NOT_RENEWED: Final = Rule.CONSENT_NOT_RENEWED.value


def violation_id(rule: Rule | str, event_id: str) -> str:
    """Deterministic id of the violation of ``rule`` by event ``event_id``."""
    return f"{rule}:{event_id}"


def violation(
    rule: Rule | str,
    p: ProcessingRow,
    evidence: list[str],
    detail: str,
    *,
    active: bool = True,
    revision: int = 0,
) -> Violation:
    """A ``Violation`` record for processing ``p`` (a ``Processing``, or the row a state keeps)."""
    occurred_at, event_id, subject_id, _, recipient_id, purpose, _, categories = p  # one unpacking, not six lookups
    return {
        "violation_id": violation_id(rule, event_id),
        "rule": rule,  # a Rule is a str: stored as it is, it encodes and compares as its value
        "policy_section": RULE_SECTIONS[rule],  # type: ignore[index]  # a rule's value finds its member
        "subject_id": subject_id,
        "occurred_at": occurred_at,
        "evidence_event_ids": evidence,
        "recipient_id": recipient_id,
        "purpose": purpose,
        "categories": list(categories),
        "detail": detail,
        "active": active,
        "revision": revision,
    }


class PolicyEnforcement:
    """The rules of one policy version applied to processings.

    ``renewals``: the purposes whose consent this version or an earlier one asked again, each with the latest
    version that did (``PolicyHistory.renewals``) [13].
    """

    def __init__(self, policy: Policy, renewals: Mapping[str, Renewal] | None = None) -> None:
        self.policy = policy
        self._renewals: dict[str, Renewal] = dict(renewals or {})
        self._visible = frozenset(c.value for c in policy.visible_to_other_users)
        self._id_doc_purposes = frozenset(p.value for p in policy.identity_documents_allowed_purposes)
        self._consent_required = frozenset(p.value for p in policy.consent_required)
        self._gated = {c.value: p.value for c, p in policy.consent_gated_categories.items()}
        self._needs_cache: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], ...]] = {}

    def static_violations(
        self, p: Processing, recipient: RecipientVersion | None, mechanism: TransferMechanism
    ) -> list[Violation]:
        """Violations decided by the processing, the registry as of its time and the ``mechanism`` then in force."""
        found: list[Violation] = []
        if p.recipient_id is not None:
            if recipient is None:
                # [4.3, 4.4]: data is shared only with the recipients the policy names; the registry lists them.
                found.append(
                    violation(
                        Rule.UNREGISTERED_RECIPIENT,
                        p,
                        [p.event_id],
                        f"recipient {p.recipient_id} is not in the registry at {p.occurred_at.isoformat()}",
                    )
                )
            else:
                evidence = [p.event_id, recipient.event_id]  # the registry entry in force is evidence too
                if mechanism is _NONE:
                    # [7]: transfers outside the EU are framed by standard contractual clauses (or another Chapter V mechanism).
                    windows = (
                        "; ".join(
                            f"{w.mechanism} {w.valid_from.date()}..{w.valid_until.date() if w.valid_until else 'open'}"
                            for w in recipient.mechanisms
                        )
                        or "none registered"
                    )
                    found.append(
                        violation(
                            Rule.TRANSFER_WITHOUT_MECHANISM,
                            p,
                            evidence,
                            f"{p.recipient_id} in {recipient.country} (outside the EU/EEA): no mechanism holds on {p.occurred_at.date()} ({windows})",
                        )
                    )
                if p.purpose not in recipient.allowed_purposes:
                    # [4.4]: a third party receives data only in the cases, and for the purposes, it is engaged for.
                    allowed = ", ".join(sorted(recipient.allowed_purposes))
                    found.append(
                        violation(
                            Rule.PURPOSE_NOT_REGISTERED,
                            p,
                            evidence,
                            f"{p.recipient_id} is registered for {allowed}, not {p.purpose}",
                        )
                    )
                if recipient.kind in _USERS:
                    extra = sorted(set(p.categories) - self._visible)
                    if extra:
                        # [4.1]: only professional information is transmitted to other users.
                        found.append(
                            violation(
                                Rule.NON_PROFESSIONAL_DATA_TO_USERS,
                                p,
                                evidence,
                                f"{', '.join(extra)} shown to {recipient.kind} {p.recipient_id}; only {', '.join(sorted(self._visible))} may be",
                            )
                        )
        if _IDENTITY_DOCUMENTS in p.categories and p.purpose not in self._id_doc_purposes:
            # [2.1.9, 3.10]: identity documents only prove identity in litigation, complaints or legal requests.
            found.append(violation(Rule.IDENTITY_DOCUMENT_MISUSE, p, [p.event_id], f"identity documents used for {p.purpose}"))
        return found

    # The per-processing checks take the row a state keeps (``ProcessingRow``, ``Processing``'s
    # fields): the processors call them for every processing, and a row needs no named view built.

    def consent_needs(self, row: ProcessingRow) -> tuple[tuple[str, str], ...]:
        """The (rule, consent purpose) pairs whose consent must be in force at the processing's time."""
        key = (row[PURPOSE], row[CATEGORIES])
        cached = self._needs_cache.get(key)
        if cached is None:
            cached = self._needs_cache[key] = self._consent_needs(Processing._make(row))
        return cached

    def _consent_needs(self, p: Processing) -> tuple[tuple[str, str], ...]:
        needs: list[tuple[str, str]] = []
        rule = _CONSENT_RULE.get(p.purpose)
        if rule is not None and p.purpose in self._consent_required:
            needs.append((rule.value, p.purpose))
        for category in p.categories:
            purpose = self._gated.get(category)
            if purpose is None or purpose == p.purpose:
                continue
            gated_rule = _CONSENT_RULE.get(purpose)
            if gated_rule is not None and (gated_rule.value, purpose) not in needs:
                needs.append((gated_rule.value, purpose))  # e.g. geolocation data needs its consent [2.1.8]
        # A consent this version (or an earlier one) asks again must also be renewed: a second verdict [13].
        renewed = [(_NOT_RENEWED, purpose) for _, purpose in needs if purpose in self._renewals]
        return tuple(needs + renewed)

    def exempt_after_erasure(self, row: ProcessingRow) -> bool:
        """Processing a legal obligation requires continues after erasure [2.3.2, 4.4.4 (ii)]."""
        return row[LEGAL_BASIS] == _LEGAL_OBLIGATION or row[PURPOSE] == _LEGAL_PURPOSE

    def consent_verdict(self, state: SubjectState, activity: ProcessingRow, rule_value: str, purpose: str) -> Violation:
        """The verdict on ``activity`` under consent rule ``rule_value`` given everything known now.

        Always a record: active when no consent for ``purpose`` was in force at the
        processing's time, inactive (compliant) when one was, its evidence naming the
        consent fact either way. Its revision counts the facts of the purpose up to
        that governing one: it only grows as facts arrive, whatever their order and
        whichever worker saw them, so the highest revision of a violation id is the
        verdict on everything known [6].
        """
        t, activity_id = activity[OCCURRED_AT], activity[EVENT_ID]
        index = fact_index_at(state, purpose, t)
        if rule_value == _NOT_RENEWED:
            return self._renewal_verdict(state, activity, purpose, index)
        if index < 0:
            return violation(
                rule_value, activity, [activity_id], f"no consent for {purpose} was ever given before {t.isoformat()}"
            )
        fact = state.consents[purpose][index]
        at, event_id, action, channel = fact[OCCURRED_AT], fact[EVENT_ID], fact[FACT_ACTION], fact[FACT_CHANNEL]
        if action == _GRANTED:
            renewal = self._renewals.get(purpose)
            if renewal is not None and renewal.stale(at, fact[FACT_POLICY_VERSION]):
                # Judged once, as consent_not_renewed: this rule holds (a consent was given), that one is broken [13].
                return violation(
                    rule_value,
                    activity,
                    [activity_id, event_id],
                    f"consent for {purpose} granted via {channel} stopped counting on {renewal.since.isoformat()}: "
                    f"see {_NOT_RENEWED}",
                    active=False,
                    revision=index + 1,
                )
            return violation(
                rule_value,
                activity,
                [activity_id, event_id],
                f"compliant: consent for {purpose} granted via {channel}, in force",
                active=False,
                revision=index + 1,
            )
        return violation(
            rule_value,
            activity,
            [activity_id, event_id],
            f"consent for {purpose} {action} at {at.isoformat()} via {channel}, still in force at {t.isoformat()}",
            revision=index + 1,
        )

    def _renewal_verdict(self, state: SubjectState, activity: ProcessingRow, purpose: str, index: int) -> Violation:
        """The consent-not-renewed verdict on ``activity``, whose purpose's consent a version asked again [13].

        Active when the consent in force at the processing's time was granted before that version's day, under an
        earlier notice, and none was given since: it names the version the consent was given under (its recorded
        ``policy_version``) and the one in force. Inactive otherwise (no consent, a withdrawal or refusal: the
        purpose's own consent rule judges those; or a consent given since). Its revision counts the purpose's facts
        up to the governing one, as ``consent_verdict``'s does, so it only grows as facts arrive.
        """
        record = self._renewal_record(state, activity, purpose, index)
        if purpose != activity[PURPOSE]:  # a gated category's consent: one verdict per purpose asked again [13]
            record["violation_id"] = f"{record['violation_id']}:{purpose}"
        return record

    def _renewal_record(self, state: SubjectState, activity: ProcessingRow, purpose: str, index: int) -> Violation:
        t, activity_id = activity[OCCURRED_AT], activity[EVENT_ID]
        renewal = self._renewals[purpose]
        asked = f"version {renewal.version} asks it again since {renewal.since.isoformat()}"
        if index < 0:
            return violation(_NOT_RENEWED, activity, [activity_id], f"no consent for {purpose} to renew ({asked})", active=False)
        fact = state.consents[purpose][index]
        at, event_id, action, under = fact[OCCURRED_AT], fact[EVENT_ID], fact[FACT_ACTION], fact[FACT_POLICY_VERSION]
        evidence = [activity_id, event_id]
        if action != _GRANTED:
            return violation(
                _NOT_RENEWED,
                activity,
                evidence,
                f"consent for {purpose} {action}: nothing to renew",
                active=False,
                revision=index + 1,
            )
        if not renewal.stale(at, under):
            return violation(
                _NOT_RENEWED,
                activity,
                evidence,
                f"compliant: consent for {purpose} given at {at.isoformat()} under version {under} counts ({asked})",
                active=False,
                revision=index + 1,
            )
        return violation(
            _NOT_RENEWED,
            activity,
            evidence,
            f"consent for {purpose} given at {at.isoformat()} under version {under}; {asked} and none was given since; "
            f"version {self.policy.version} in force at {t.isoformat()}",
            revision=index + 1,
        )

    def erasure_verdict(self, state: SubjectState, activity: ProcessingRow) -> Violation | None:
        """The processing-after-erasure violation of ``activity``, if it happened after the earliest fulfilled erasure [12].

        Its revision counts the fulfilled erasures known: the earliest one only moves
        earlier as they arrive, so the highest revision is the verdict on all of them.
        """
        erased = state.erasure_fulfilled_at
        t = activity[OCCURRED_AT]
        if erased is None or micros(t) <= micros(erased) or self.exempt_after_erasure(activity):
            return None
        evidence = [activity[EVENT_ID]] + ([state.erasure_event_id] if state.erasure_event_id else [])
        return violation(
            Rule.PROCESSING_AFTER_ERASURE,
            activity,
            evidence,
            f"erasure fulfilled at {erased.isoformat()}, processing at {t.isoformat()}",
            revision=state.erasures_fulfilled,
        )
