"""The processor: one decoded input event in, what changes out.

Plain, typed Python over decoded records, with subject state behind a
``SubjectStore``. The faust workers and the embedded runner drive this same
code, so the same input gives the same ledger, graph and violations.

Output records follow the output contracts (``LedgerEntry``, ``LineageEdge``,
``Violation``, ``RetentionAction``, ``ErasureNotice``). Every effect is
idempotent: an event id seen before changes nothing, and output ids are
deterministic so a redelivered output overwrites itself in the sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consentflow import ledger
from consentflow.enforcement import PolicyEnforcement, Processing, violation, violation_id
from consentflow.lineage import lineage_edge
from consentflow.policy import Policy, load_policy
from consentflow.recipients import RecipientRegistry, RecipientVersion
from consentflow.retention import RetentionSchedule
from consentflow.rights import access_export, erasure_notices
from consentflow.state import Activity, MemoryStore, Received, SubjectState, SubjectStore
from consentflow.vocabulary import ProfileAction, RequestStatus, Right, Rule

Record = dict[str, Any]


@dataclass
class Changes:
    """What one event (or one clock tick) changed: records for each output topic."""

    ledger: list[Record] = field(default_factory=list)
    lineage: list[Record] = field(default_factory=list)
    violations: list[Record] = field(default_factory=list)
    retention: list[Record] = field(default_factory=list)
    erasure_notices: list[Record] = field(default_factory=list)

    def extend(self, other: Changes) -> None:
        """Append ``other``'s records to these."""
        self.ledger.extend(other.ledger)
        self.lineage.extend(other.lineage)
        self.violations.extend(other.violations)
        self.retention.extend(other.retention)
        self.erasure_notices.extend(other.erasure_notices)

    def by_topic(self) -> dict[str, list[Record]]:
        """Records keyed by output topic short name."""
        return {
            "ledger": self.ledger,
            "lineage": self.lineage,
            "violations": self.violations,
            "retention": self.retention,
            "erasure-notices": self.erasure_notices,
        }

    def __bool__(self) -> bool:
        return bool(self.ledger or self.lineage or self.violations or self.retention or self.erasure_notices)


_EMPTY = Changes()
_LIFECYCLE_USE = frozenset({ProfileAction.REGISTERED.value, ProfileAction.USED.value, ProfileAction.UPDATED.value})
_NEGATIVE = frozenset({ProfileAction.NEGATIVE_DECISION.value, ProfileAction.NOTIFICATION.value})
_SUSPENSION = frozenset({ProfileAction.SUSPENDED.value, ProfileAction.BLOCKED.value})


class Processor:
    """Applies the policy to every input event: ledger, lineage, enforcement, retention, rights."""

    def __init__(
        self,
        store: SubjectStore | None = None,
        registry: RecipientRegistry | None = None,
        policy: Policy | None = None,
        schedule: RetentionSchedule | None = None,
    ) -> None:
        self.store: SubjectStore = store if store is not None else MemoryStore()
        self.registry = registry if registry is not None else RecipientRegistry()
        self.policy = policy or load_policy()
        self.enforcement = PolicyEnforcement(self.policy)
        self.schedule = schedule or RetentionSchedule(self.policy)
        self._financial = frozenset(c.value for c in self.policy.financial_categories)
        self._cookie_purpose = {c.value: p.value for c, p in self.policy.cookie_purpose.items()}
        self._handlers = {
            "consent": self._consent,
            "message": self._message,
            "cookie": self._cookie,
            "disclosure": self._disclosure,
            "profile": self._profile,
            "rights": self._rights,
        }

    # -- entry points ----------------------------------------------------------------

    def process(self, topic: str, record: Mapping[str, Any], source: Mapping[str, Any] | None = None) -> Changes:
        """Apply one decoded input event of ``topic`` (short name); ``source`` is its Kafka coordinates, if any."""
        if topic == "recipients":
            self.registry.add(RecipientVersion.from_record(dict(record)))
            return _EMPTY
        handler = self._handlers.get(topic)
        if handler is None:
            raise ValueError(f"no processor for topic {topic!r}")
        subject_id = record["subject_id"]
        state = self.store.get(subject_id)
        if state is None:
            state = SubjectState(subject_id)
        elif record["event_id"] in state.seen:
            return _EMPTY  # a duplicate changes nothing
        state.seen.add(record["event_id"])
        changes = handler(state, record, source)
        self.store.put(state)
        return changes

    def tick(self, now: datetime) -> Changes:
        """Retention actions due at ``now`` for every subject in the store, each emitted once [2.3]."""
        changes = Changes()
        for state in self.store.states():
            due = self.schedule.due(state, now)
            if due:
                changes.retention.extend(due)
                self.store.put(state)
        return changes

    def state_at(self, subject_id: str, purpose: str, t: datetime) -> str:
        """Consent state of a subject's purpose at instant ``t`` [6]."""
        return ledger.state_at(self.store.get(subject_id), purpose, t).value

    def access_export(self, subject_id: str, as_of: datetime) -> dict[str, Any] | None:
        """Everything known about the subject [8.1; GDPR Art. 15, 20], or None for an unknown subject."""
        state = self.store.get(subject_id)
        return None if state is None else access_export(state, self.registry, self.schedule, as_of=as_of)

    # -- consent -----------------------------------------------------------------------

    def _consent(self, state: SubjectState, record: Mapping[str, Any], source: Mapping[str, Any] | None) -> Changes:
        changes = Changes()
        fact = ledger.record_fact(state, record)
        changes.ledger.append(ledger.append_entry(state, record, source))
        state.revision += 1
        # A fact older than processings already seen may change their verdict: re-evaluate those [6].
        purpose = record["purpose"]
        for activity in state.activities:
            if activity.occurred_at >= fact.occurred_at and any(p == purpose for _, p in activity.needs):
                self._reevaluate(state, activity, changes)
        return changes

    # -- processing: messages, cookies, disclosures ----------------------------------

    def _message(self, state: SubjectState, record: Mapping[str, Any], source: Mapping[str, Any] | None) -> Changes:
        purpose = record["purpose"]
        processing = Processing(
            state.subject_id,
            record["event_id"],
            record["occurred_at"],
            "message",
            record.get("processor_id"),
            purpose,
            self.policy.basis_of(purpose).value,
            tuple(record["categories"]),
        )
        return self._processing(state, processing, source)

    def _cookie(self, state: SubjectState, record: Mapping[str, Any], source: Mapping[str, Any] | None) -> Changes:
        purpose = self._cookie_purpose.get(record["cookie_category"], "unknown")
        processing = Processing(
            state.subject_id,
            record["event_id"],
            record["occurred_at"],
            "cookie",
            record["vendor_id"],
            purpose,
            self.policy.basis_of(purpose).value,
            tuple(record["categories"]),
        )
        return self._processing(state, processing, source)

    def _disclosure(self, state: SubjectState, record: Mapping[str, Any], source: Mapping[str, Any] | None) -> Changes:
        processing = Processing(
            state.subject_id,
            record["event_id"],
            record["occurred_at"],
            "disclosure",
            record["recipient_id"],
            record["purpose"],
            record["legal_basis"],
            tuple(record["categories"]),
        )
        return self._processing(state, processing, source)

    def _processing(self, state: SubjectState, p: Processing, source: Mapping[str, Any] | None) -> Changes:
        changes = Changes()
        state.held.update(p.categories)
        if self._financial.intersection(p.categories) and (state.last_financial is None or p.occurred_at > state.last_financial):
            state.last_financial = p.occurred_at
            state.basis_events["financial"] = p.event_id
        recipient = None
        if p.recipient_id is not None:
            recipient = self.registry.at(p.recipient_id, p.occurred_at)
            changes.lineage.append(lineage_edge(p, recipient, source))
            received = state.received.get(p.recipient_id)
            if received is None:
                received = state.received[p.recipient_id] = Received()
            for category in p.categories:
                first = received.first_sent.get(category)
                if first is None or p.occurred_at < first:
                    received.first_sent[category] = p.occurred_at
            received.purposes.add(p.purpose)
            if received.last_sent is None or p.occurred_at > received.last_sent:
                received.last_sent = p.occurred_at
        changes.violations.extend(self.enforcement.static_violations(p, recipient))
        activity = Activity(
            p.occurred_at,
            p.event_id,
            self.enforcement.consent_needs(p),
            self.enforcement.exempt_after_erasure(p),
            p.recipient_id,
            p.purpose,
            p.categories,
        )
        state.activities.append(activity)
        self._reevaluate(state, activity, changes)
        if state.erasure_fulfilled_at is not None and p.recipient_id is not None and p.occurred_at <= state.erasure_fulfilled_at:
            # A disclosure from before the erasure arrived late: the recipient's notice widens [GDPR Art. 19].
            changes.erasure_notices.extend(erasure_notices(state, self.registry, self.policy))
        return changes

    def _reevaluate(self, state: SubjectState, activity: Activity, changes: Changes) -> None:
        """Bring the consent- and erasure-dependent verdicts of ``activity`` up to date, emitting what changed.

        A verdict is re-emitted whenever it or its evidence changes, each time with
        the subject's current revision, so the highest revision of a violation id
        is the verdict on everything known, whatever order the facts arrived in.
        """
        if not activity.needs and state.erasure_fulfilled_at is None:
            return
        verdicts = self.enforcement.dependent_verdicts(state, activity)
        rules = [rule for rule, _ in activity.needs] + [Rule.PROCESSING_AFTER_ERASURE.value]
        for rule_value in rules:
            vid = violation_id(rule_value, activity.event_id)
            verdict = verdicts.get(vid)
            before = state.active_violations.get(vid)
            if verdict is not None:
                rule, evidence, detail = verdict
                if before != tuple(evidence):
                    state.active_violations[vid] = tuple(evidence)
                    changes.violations.append(
                        violation(rule, _processing_of(state, activity), evidence, detail, revision=state.revision)
                    )
            elif before is not None:
                del state.active_violations[vid]
                detail = "cleared: a fact that arrived late shows the processing was allowed"
                changes.violations.append(
                    violation(
                        Rule(rule_value),
                        _processing_of(state, activity),
                        list(before),
                        detail,
                        active=False,
                        revision=state.revision,
                    )
                )

    # -- account lifecycle and rights -------------------------------------------------

    def _profile(self, state: SubjectState, record: Mapping[str, Any], source: Mapping[str, Any] | None) -> Changes:
        action = record["action"]
        t = record["occurred_at"]
        event_id = record["event_id"]
        state.held.update(record["categories"])
        state.account_kind = record["account_kind"]
        if action == ProfileAction.REGISTERED.value and (state.registered_at is None or t < state.registered_at):
            state.registered_at = t
        if action in _LIFECYCLE_USE and (state.last_use is None or t > state.last_use):
            state.last_use, state.basis_events["last_use"] = t, event_id
        elif action == ProfileAction.CLOSED.value and (state.closed_at is None or t < state.closed_at):
            state.closed_at, state.basis_events["closed"] = t, event_id
        elif action in _NEGATIVE and (state.last_negative is None or t > state.last_negative):
            state.last_negative, state.basis_events["negative"] = t, event_id
        elif action in _SUSPENSION and (state.suspended_at is None or t > state.suspended_at):
            state.suspended_at, state.basis_events["suspended"] = t, event_id
        elif action == ProfileAction.REINSTATED.value and state.suspended_at is not None and t > state.suspended_at:
            state.suspended_at = None
            state.basis_events.pop("suspended", None)
        return _EMPTY

    def _rights(self, state: SubjectState, record: Mapping[str, Any], source: Mapping[str, Any] | None) -> Changes:
        request_id = record["request_id"]
        status = record["status"]
        t = record["occurred_at"]
        request = state.requests.setdefault(request_id, {"right": record["right"]})
        request[status] = t
        if record["right"] != Right.ERASURE.value:
            return _EMPTY
        if status == RequestStatus.REQUESTED.value:
            if state.erasure_requested_at is None or t < state.erasure_requested_at:
                state.erasure_request_id, state.erasure_requested_at = request_id, t
            return _EMPTY
        if status != RequestStatus.FULFILLED.value or (
            state.erasure_fulfilled_at is not None and t >= state.erasure_fulfilled_at
        ):
            return _EMPTY
        changes = Changes()
        state.erasure_fulfilled_at, state.erasure_event_id = t, record["event_id"]
        state.erasure_request_id = request_id
        state.revision += 1
        for activity in state.activities:
            if activity.occurred_at > t:
                self._reevaluate(state, activity, changes)
        changes.erasure_notices.extend(erasure_notices(state, self.registry, self.policy))
        return changes


def _processing_of(state: SubjectState, activity: Activity) -> Processing:
    return Processing(
        state.subject_id,
        activity.event_id,
        activity.occurred_at,
        "",
        activity.recipient_id,
        activity.purpose,
        "",
        activity.categories,
    )
