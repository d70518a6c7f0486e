"""The processor: one decoded input event in, what changes out.

Plain, typed Python over decoded records, with subject state behind a
``SubjectStore``. The faust workers and the embedded runner drive this same
code, so the same input gives the same ledger, graph and violations.

Output records follow the output contracts (``LedgerEntry``, ``LineageEdge``,
``Violation``, ``RetentionAction``, ``ErasureNotice``, ``SubjectHoldings``). Every effect is
idempotent: an event id seen before changes nothing, and output ids are
deterministic so a redelivered output overwrites itself in the sink.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, Final, cast

from mypy_extensions import mypyc_attr

from consentflow.contracts import topics
from consentflow.contracts.records import (
    ConsentEvent,
    CookieEvent,
    DisclosureEvent,
    ErasureNotice,
    InputRecord,
    LedgerEntry,
    LineageEdge,
    MessageEvent,
    ProfileEvent,
    RetentionAction,
    RightsEvent,
    RightsRequest,
    SourceCoordinates,
    SubjectEvent,
    SubjectHoldings,
    SubjectOutput,
    Violation,
)
from consentflow.core import ledger
from consentflow.core.enforcement import PolicyEnforcement
from consentflow.core.holdings import needs_holdings, subject_holdings
from consentflow.core.lineage import lineage_edge
from consentflow.core.recipients import RecipientRegistry, RecipientVersion
from consentflow.core.requests import fold, request_row, request_verdicts
from consentflow.core.retention import RetentionSchedule, earliest
from consentflow.core.rights import erasure_notices
from consentflow.core.state import (
    EVENT_ID,
    OCCURRED_AT,
    MemoryStore,
    Processing,
    ProcessingRow,
    SubjectState,
    SubjectStore,
)
from consentflow.policy.versions import Policy, PolicyHistory, load_history
from consentflow.policy.vocabulary import ProfileAction, Purpose, RequestStatus, Right, TransferMechanism


@mypyc_attr(native_class=False)  # compiled (consentflow.runtime.native), a list subclass stays a Python class
class Changes(list[tuple[str, SubjectOutput]]):
    """What one event (or one clock tick) changed: output records in the order they were made.

    Each item is ``(output topic short name, record)``. A list, so that adding an
    output costs one C call on the hot path; the per-topic views (``ledger``,
    ``lineage``...) are for readers that want one kind.
    """

    __slots__ = ()

    @property
    def records(self) -> list[tuple[str, SubjectOutput]]:
        """Every output, as ``(topic, record)`` in the order made."""
        return self

    def add(self, topic: str, record: SubjectOutput) -> None:
        """Append one output record for ``topic``."""
        self.append((topic, record))

    def add_all(
        self, topic: str, records: list[LedgerEntry] | list[Violation] | list[RetentionAction] | list[ErasureNotice]
    ) -> None:
        """Append output records for ``topic``."""
        self.extend([(topic, r) for r in records])

    def of(self, topic: str) -> list[SubjectOutput]:
        """The records for one output topic."""
        return [r for t, r in self if t == topic]

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Ledger entries."""
        return cast(list[LedgerEntry], self.of(LEDGER))

    @property
    def lineage(self) -> list[LineageEdge]:
        """Lineage edges."""
        return cast(list[LineageEdge], self.of(LINEAGE))

    @property
    def violations(self) -> list[Violation]:
        """Violations and their retractions."""
        return cast(list[Violation], self.of(VIOLATIONS))

    @property
    def retention(self) -> list[RetentionAction]:
        """Retention actions."""
        return cast(list[RetentionAction], self.of(RETENTION))

    @property
    def erasure_notices(self) -> list[ErasureNotice]:
        """Erasure notices."""
        return cast(list[ErasureNotice], self.of(ERASURE_NOTICES))

    @property
    def holdings(self) -> list[SubjectHoldings]:
        """What the platform holds of subjects, and until when."""
        return cast(list[SubjectHoldings], self.of(HOLDINGS))

    @property
    def requests(self) -> list[RightsRequest]:
        """Rights requests, each as folded from its events known."""
        return cast(list[RightsRequest], self.of(REQUESTS))


# Final: compiled (consentflow.runtime.native), a Final constant is read where it is used, not looked up in the module.
_UNKNOWN_MECHANISM: Final = TransferMechanism.UNKNOWN
_TIME: Final = itemgetter(OCCURRED_AT)
_TIME_AND_ID: Final = itemgetter(OCCURRED_AT, EVENT_ID)
# The topics' short names, as contracts.topics spells them once.
LEDGER: Final = topics.LEDGER.short_name
LINEAGE: Final = topics.LINEAGE.short_name
VIOLATIONS: Final = topics.VIOLATIONS.short_name
RETENTION: Final = topics.RETENTION.short_name
ERASURE_NOTICES: Final = topics.ERASURE_NOTICES.short_name
HOLDINGS: Final = topics.HOLDINGS.short_name
REQUESTS: Final = topics.REQUESTS.short_name
_PROFILE: Final = topics.PROFILE.short_name
_CONSENT: Final = topics.CONSENT.short_name
_COOKIE: Final = topics.COOKIE.short_name
_MESSAGE: Final = topics.MESSAGE.short_name
_DISCLOSURE: Final = topics.DISCLOSURE.short_name
_RECIPIENTS: Final = topics.RECIPIENTS.short_name
_INCIDENTS: Final = topics.INCIDENTS.short_name
_LIFECYCLE_USE: Final = frozenset({ProfileAction.REGISTERED.value, ProfileAction.USED.value, ProfileAction.UPDATED.value})
_NEGATIVE: Final = frozenset({ProfileAction.NEGATIVE_DECISION.value, ProfileAction.NOTIFICATION.value})
_SUSPENSION: Final = frozenset({ProfileAction.SUSPENDED.value, ProfileAction.BLOCKED.value})
_REGISTERED: Final = ProfileAction.REGISTERED.value
_CLOSED: Final = ProfileAction.CLOSED.value
_REINSTATED: Final = ProfileAction.REINSTATED.value
_SUBJECT_TOPICS: Final = frozenset(t.short_name for t in topics.INPUT_TOPICS if t.key_field == "subject_id")


@dataclass(frozen=True)
class RetentionTick:
    """What a retention tick over some subjects changed, and when the next of their actions falls due [2.3]."""

    changes: Changes
    next_due: datetime | None  # None: none of those subjects has an action ahead


class Processor:
    """Applies the policy to every input event: ledger, lineage, enforcement, retention, rights.

    Every processing is judged under the policy version in force at its event time (``PolicyHistory``) [13]:
    its legal basis, its consent needs and its static rules. ``history`` given: its versions do; else ``policy``
    given: that one version judges everything; else every shipped version does, each from its day. Retention and
    erasure notices follow the newest version.
    """

    def __init__(
        self,
        store: SubjectStore | None = None,
        registry: RecipientRegistry | None = None,
        policy: Policy | None = None,
        schedule: RetentionSchedule | None = None,
        history: PolicyHistory | None = None,
    ) -> None:
        self.store: SubjectStore = store if store is not None else MemoryStore()
        self._get, self._put = self.store.get, self.store.put  # bound once: called for every event
        self.registry = registry if registry is not None else RecipientRegistry()
        if history is None:
            history = PolicyHistory((policy,)) if policy is not None else load_history()
        self.history = history
        self.policy = self.history.latest
        versions = self.history.versions
        # Per version, in effective order: picked by a processing's event time (``_version_at``).
        self._starts = self.history.starts
        self._enforcements = tuple(PolicyEnforcement(v, self.history.renewals(k)) for k, v in enumerate(versions))
        self._cookie_purposes = tuple({c.value: p.value for c, p in v.cookie_purpose.items()} for v in versions)
        self._bases = tuple({p.value: v.basis_of(p).value for p in Purpose} for v in versions)
        self.enforcement = self._enforcements[-1]
        self.schedule = schedule or RetentionSchedule(self.policy)
        # Static-check inputs known to break no rule -> their consent needs.
        self._clean: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}
        # One tuple per distinct list of categories, shared by every processing that names it: a state
        # keeps a row per processing, and the collector walks every new container until it is old.
        self._categories: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._put_every_state = not self.store.keeps_references

    # -- entry points ----------------------------------------------------------------

    def process(self, topic: str, record: InputRecord, source: SourceCoordinates | None = None) -> Changes:
        """Apply one decoded input event of ``topic`` (short name); ``source`` is its Kafka coordinates, if any."""
        if topic == _RECIPIENTS:
            self.registry.add(RecipientVersion.from_record(dict(record)))
            return Changes()
        if topic == _INCIDENTS:  # the breach register is judged from its stored events when read (core.incidents)
            return Changes()
        if topic not in _SUBJECT_TOPICS:
            raise ValueError(f"no processor for topic {topic!r}")
        event = cast(SubjectEvent, record)  # the topic names its record: one of a subject's events
        subject_id = event["subject_id"]
        event_id = event["event_id"]
        state = self._get(subject_id)
        if state is None:
            state = SubjectState(subject_id)
            self._put(state)
        elif event_id in state.seen:
            return Changes()  # a duplicate changes nothing
        state.seen.add(event_id)
        t = event["occurred_at"]
        latest = state.latest_event_at
        if latest is None or t > latest:
            state.latest_event_at = t
        # Called by name, not through a table of bound methods: compiled, each is a direct call.
        if topic == _COOKIE:
            changes = self._cookie(state, cast(CookieEvent, event), source)
        elif topic == _PROFILE:
            changes = self._profile(state, cast(ProfileEvent, event), source)
        elif topic == _CONSENT:
            changes = self._consent(state, cast(ConsentEvent, event), source)
        elif topic == _DISCLOSURE:
            changes = self._disclosure(state, cast(DisclosureEvent, event), source)
        elif topic == _MESSAGE:
            changes = self._message(state, cast(MessageEvent, event), source)
        else:
            changes = self._rights(state, cast(RightsEvent, event), source)
        if self._put_every_state:
            self._put(state)
        return changes

    def tick(self, now: datetime) -> Changes:
        """Retention actions due at ``now`` for every subject in the store, each emitted once [2.3]; then a
        ``SubjectHoldings`` record for every subject whose knowledge changed since its last one."""
        return self.retention_tick(now, self.store.states()).changes

    def retention_tick(self, now: datetime, states: Iterable[SubjectState]) -> RetentionTick:
        """``tick`` over ``states`` only (a driver that knows which subjects changed, or whose actions fell due,
        need not read the others), and the earliest instant after ``now`` at which one of them has an action due."""
        changes = Changes()
        schedule = self.schedule
        next_due: datetime | None = None
        for state in states:
            plan = schedule.plan(state)  # once: the due actions and the holdings record both rest on it
            due = schedule.due(state, now, plan)
            if due:
                changes.add_all(RETENTION, due)
            ahead = next((a["due_at"] for a in plan.actions if a["due_at"] > now), None)  # actions are in due order
            next_due = earliest(next_due, ahead)
            verdicts: list[Violation] = []
            if state.request_events:  # rights requests against their time limits [8.2; GDPR Art. 12(3)]
                verdicts, request_due = request_verdicts(state, now, self.policy)
                if verdicts:
                    changes.add_all(VIOLATIONS, verdicts)
                next_due = earliest(next_due, request_due)
            # A holdings record is a function of the set of events known for the subject, and its
            # revision is their number. The set only grows, so the highest revision of a subject is
            # the record on everything known, whichever worker issued the others: a worker killed
            # before saving its state may have issued records on fewer events, and its successor's
            # last tick outranks them. Issued at ticks, not per event: one record per tick with news.
            news = needs_holdings(state)
            if news:
                changes.add(HOLDINGS, subject_holdings(state, plan))
            if due or news or verdicts:
                self.store.put(state)
        return RetentionTick(changes, next_due)

    def _version_at(self, t: datetime) -> int:
        """The position of the policy version in force at ``t`` [13]."""
        starts = self._starts
        last = len(starts) - 1
        if t >= starts[last]:  # the common case: the newest version, or the only one
            return last
        return max(0, bisect.bisect_right(starts, t) - 1)

    def state_at(self, subject_id: str, purpose: str, t: datetime) -> str:
        """Consent state of a subject's purpose at instant ``t`` [6]."""
        return ledger.state_at(self.store.get(subject_id), purpose, t).value

    # -- consent -----------------------------------------------------------------------

    def _consent(self, state: SubjectState, record: ConsentEvent, source: SourceCoordinates | None) -> Changes:
        changes = Changes()
        out: list[tuple[str, SubjectOutput]] = changes  # appended to as a list: compiled, one C call
        fact = ledger.record_fact(state, record)
        out.append((LEDGER, ledger.append_entry(state, record, source)))
        # The verdicts of later processings that need this purpose rest on this fact now, or
        # count it among those before theirs: re-issue them with their new revision [6].
        activities = state.activities
        if (
            activities and activities[-1][OCCURRED_AT] >= fact[OCCURRED_AT]
        ):  # the common case, a fact newer than every processing, skips this
            purpose = record["purpose"]
            enforcements = self._enforcements
            for index in range(bisect.bisect_left(activities, fact[OCCURRED_AT], key=_TIME), len(activities)):
                activity = activities[index]
                enforcement = enforcements[self._version_at(activity[OCCURRED_AT])]  # its version's rules [13]
                for rule_value, needed in enforcement.consent_needs(activity):
                    if needed == purpose:
                        out.append((VIOLATIONS, enforcement.consent_verdict(state, activity, rule_value, purpose)))
        return changes

    # -- processing: messages, cookies, disclosures ----------------------------------

    def _message(self, state: SubjectState, record: MessageEvent, source: SourceCoordinates | None) -> Changes:
        purpose = record["purpose"]
        t = record["occurred_at"]
        version = self._version_at(t)
        row: ProcessingRow = (
            t,
            record["event_id"],
            state.subject_id,
            _MESSAGE,
            record.get("processor_id"),
            purpose,
            self._bases[version].get(purpose, "unknown"),
            self._shared(record["categories"]),
        )
        return self._processing(state, row, source, record["source_service"], version)

    def _cookie(self, state: SubjectState, record: CookieEvent, source: SourceCoordinates | None) -> Changes:
        t = record["occurred_at"]
        version = self._version_at(t)
        purpose = self._cookie_purposes[version].get(record["cookie_category"], "unknown")
        row: ProcessingRow = (
            t,
            record["event_id"],
            state.subject_id,
            _COOKIE,
            record["vendor_id"],
            purpose,
            self._bases[version].get(purpose, "unknown"),
            self._shared(record["categories"]),
        )
        return self._processing(state, row, source, record["source_service"], version)

    def _disclosure(self, state: SubjectState, record: DisclosureEvent, source: SourceCoordinates | None) -> Changes:
        t = record["occurred_at"]
        row: ProcessingRow = (
            t,
            record["event_id"],
            state.subject_id,
            _DISCLOSURE,
            record["recipient_id"],
            record["purpose"],
            record["legal_basis"],
            self._shared(record["categories"]),
        )
        return self._processing(state, row, source, record["source_service"], self._version_at(t))

    def _shared(self, categories: Iterable[str]) -> tuple[str, ...]:
        """``tuple(categories)``, the same object for equal lists (up to 10,000 distinct ones)."""
        key = tuple(categories)
        shared = self._categories.get(key)
        if shared is not None:
            return shared
        if len(self._categories) < 10_000:
            self._categories[key] = key
        return key

    def _processing(
        self, state: SubjectState, row: ProcessingRow, source: SourceCoordinates | None, source_service: str, version: int
    ) -> Changes:
        """Lineage and verdicts of one processing, judged under the policy version at position ``version`` [13]."""
        t, event_id, _, _, recipient_id, purpose, _, categories = row
        changes = Changes()
        out: list[tuple[str, SubjectOutput]] = changes  # appended to as a list: compiled, one C call
        if recipient_id is not None:
            recipient, mechanism = self.registry.resolve(recipient_id, t)
            out.append((LINEAGE, lineage_edge(row, recipient, mechanism, source, source_service)))
        else:
            recipient, mechanism = None, _UNKNOWN_MECHANISM
        enforcement = self._enforcements[version]
        # Static verdicts and consent needs depend only on (registry version, mechanism, purpose,
        # categories, policy version): remember the needs of the combinations known to break no static rule.
        key = (None if recipient is None else recipient.event_id, mechanism, purpose, categories, version)
        needs = self._clean.get(key)
        if needs is None:
            needs = enforcement.consent_needs(row)
            static = enforcement.static_violations(Processing._make(row), recipient, mechanism)
            if static:
                changes.add_all(VIOLATIONS, static)
            elif len(self._clean) < 100_000:
                self._clean[key] = needs
        activities = state.activities
        last = activities[-1] if activities else None
        if last is not None and (last[OCCURRED_AT] > t or (last[OCCURRED_AT] == t and last[EVENT_ID] > event_id)):
            bisect.insort(activities, row, key=_TIME_AND_ID)  # arrived late: keep event-time order
        else:
            activities.append(row)
        # Every consent-gated processing gets a verdict, compliant or not, so that a worker
        # that replays it after another's crash overwrites a verdict issued on less [6].
        for rule_value, needed in needs:
            out.append((VIOLATIONS, enforcement.consent_verdict(state, row, rule_value, needed)))
        erased = state.erasure_fulfilled_at
        if erased is not None:
            after_erasure = enforcement.erasure_verdict(state, row)
            if after_erasure is not None:
                out.append((VIOLATIONS, after_erasure))
            if recipient_id is not None and t <= erased:
                # A disclosure from before the erasure arrived late: the recipient's notice widens [GDPR Art. 19].
                changes.add_all(ERASURE_NOTICES, erasure_notices(state, self.registry, self.policy))
        return changes

    # -- account lifecycle and rights -------------------------------------------------

    def _profile(self, state: SubjectState, record: ProfileEvent, source: SourceCoordinates | None) -> Changes:
        action = record["action"]
        t = record["occurred_at"]
        event_id = record["event_id"]
        state.held.update(record["categories"])
        state.account_kind = record["account_kind"]
        if action == _REGISTERED and (state.registered_at is None or t < state.registered_at):
            state.registered_at = t
        if action in _LIFECYCLE_USE and (state.last_use is None or t > state.last_use):
            state.last_use, state.basis_events["last_use"] = t, event_id
        elif action == _CLOSED and (state.closed_at is None or t < state.closed_at):
            state.closed_at, state.basis_events["closed"] = t, event_id
        elif action in _NEGATIVE and (state.last_negative is None or t > state.last_negative):
            state.last_negative, state.basis_events["negative"] = t, event_id
        elif action in _SUSPENSION and (state.suspended_at is None or t > state.suspended_at):
            state.suspended_at, state.basis_events["suspended"] = t, event_id
        elif action == _REINSTATED and (state.reinstated_at is None or t > state.reinstated_at):
            state.reinstated_at = t  # whether it lifts a suspension is decided by event time (SubjectState.suspension)
        return Changes()

    def _rights(self, state: SubjectState, record: RightsEvent, source: SourceCoordinates | None) -> Changes:
        request_id = record["request_id"]
        status = record["status"]
        t = record["occurred_at"]
        request = state.requests.setdefault(request_id, {"right": record["right"]})
        request[status] = t
        # The request as a tracked object: folded from every event of it known [8.2; GDPR Art. 12(3)].
        rows = state.request_events.setdefault(request_id, [])
        rows.append(request_row(record))
        tracked = Changes()
        tracked.add(REQUESTS, fold(request_id, state.subject_id, rows, self.policy).record())
        if record["right"] != Right.ERASURE.value:
            return tracked
        tracked.extend(self._erasure(state, record))
        return tracked

    def _erasure(self, state: SubjectState, record: RightsEvent) -> Changes:
        """An erasure's request or fulfilment [12; GDPR Art. 17, 19]: the subject's erasure facts, notices, verdicts."""
        request_id = record["request_id"]
        status = record["status"]
        t = record["occurred_at"]
        if status == RequestStatus.REQUESTED.value:
            state.erasure_events += 1
            if state.erasure_requested_at is None or t < state.erasure_requested_at:
                state.erasure_request_id, state.erasure_requested_at = request_id, t
            if state.erasure_fulfilled_at is None:
                return Changes()
            changes = Changes()  # the notices name the request: re-issue them [12]
            changes.add_all(ERASURE_NOTICES, erasure_notices(state, self.registry, self.policy))
            return changes
        if status != RequestStatus.FULFILLED.value:
            return Changes()
        state.erasure_events += 1
        changes = Changes()
        state.erasures_fulfilled += 1
        event_id = record["event_id"]
        erased = state.erasure_fulfilled_at
        earliest = erased is None or (t, event_id) < (erased, state.erasure_event_id or "")
        if earliest:
            state.erasure_fulfilled_at, state.erasure_event_id = t, event_id
            state.erasure_request_id = request_id
        # Every processing after the earliest erasure is re-judged with the new count of erasures [12].
        activities = state.activities
        enforcement = self.enforcement
        for index in range(bisect.bisect_right(activities, state.erasure_fulfilled_at, key=_TIME), len(activities)):
            after_erasure = enforcement.erasure_verdict(state, activities[index])
            if after_erasure is not None:
                changes.append((VIOLATIONS, after_erasure))
        changes.add_all(ERASURE_NOTICES, erasure_notices(state, self.registry, self.policy))
        return changes
