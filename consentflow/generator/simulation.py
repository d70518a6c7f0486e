"""A year of a recruiting platform, subject by subject, in event-time order.

Applicants and customer users register, update profiles, grant and withdraw
consents by every channel, receive newsletters and SMS through US providers
under SCCs, accept or refuse cookie categories, are shown to corporate
customers, pay or are reimbursed, pass identity verification, are transferred
to group entities inside and outside the EU, receive negative decisions, close
accounts and exercise their rights: access, rectification, erasure, restriction,
portability, objection, consent withdrawal and post-mortem directives, each
request handled on the law's clock (GDPR Art. 12(3)): answered within the
month, after an extension notified in time, after an identity check, or
refused within the month.

Legitimate events respect the policy by construction; a configurable share of
injected events breaks exactly one rule each, and every injected event is
reported as a ``TruthRecord`` so detection can be scored.

When the timeline crosses the day a policy version takes effect that asks some
consents again [13], each subject holding such a consent meets it at its first
activity from that day: most renew it (a new grant naming the new version), the
others leave it to lapse and are treated as not consenting, and an injected
newsletter on a lapsed consent is a ``consent_not_renewed`` case. Every event
names the policy version in force at its time (``policy_version``).

Memory is bounded by the number of subjects, not events: a heap holds one
entry per subject (its next activity time) and events are yielded as they are
made. One ``random.Random`` drives everything in heap order, so the same seed
gives the same events.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from consentflow.contracts import events as ev
from consentflow.contracts.events import Event
from consentflow.core.requests import ONE_MONTH, clock_of
from consentflow.generator import registry as reg
from consentflow.policy.legal_periods import Period
from consentflow.policy.versions import Policy, load_history, load_policy
from consentflow.policy.vocabulary import (
    CURRENT_POLICY_VERSION,
    RULE_SECTIONS,
    AccountKind,
    ConsentChannel,
    CookieAccess,
    CookieCategory,
    DataCategory,
    LegalBasis,
    MessageChannel,
    MessageKind,
    ProfileAction,
    Purpose,
    RequestStatus,
    Right,
    Rule,
)

C = DataCategory
P = Purpose
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = 1_000_000
_HOUR = 3_600 * _SECOND
_DAY = 86_400 * _SECOND
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # version and variant bits
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant

#: Consent-gated purposes the simulation toggles, each one bit of ``Subject.consents``.
CONSENT_PURPOSES: tuple[Purpose, ...] = (
    P.MARKETING,
    P.PARTNER_AGGREGATION,
    P.GEOLOCATION_SERVICES,
    P.OPTIONAL_PROFILE_FIELDS,
    P.COOKIES_PREFERENCES,
    P.COOKIES_ANALYTICS,
    P.COOKIES_ADVERTISING,
    P.COOKIES_SOCIAL_MEDIA,
)
_BIT = {p: 1 << i for i, p in enumerate(CONSENT_PURPOSES)}
#: Share of subjects granting each consent at registration.
_GRANT_AT_REGISTRATION = {
    P.MARKETING: 0.55,
    P.PARTNER_AGGREGATION: 0.2,
    P.GEOLOCATION_SERVICES: 0.3,
    P.OPTIONAL_PROFILE_FIELDS: 0.45,
    P.COOKIES_PREFERENCES: 0.6,
    P.COOKIES_ANALYTICS: 0.5,
    P.COOKIES_ADVERTISING: 0.3,
    P.COOKIES_SOCIAL_MEDIA: 0.25,
}
_COOKIE_VENDOR = {
    CookieCategory.PREFERENCES: reg.PREFERENCE_COOKIES.recipient_id,
    CookieCategory.ANALYTICS: reg.ANALYTICS_COOKIES.recipient_id,
    CookieCategory.ADVERTISING: reg.ADVERTISING_COOKIES.recipient_id,
    CookieCategory.SOCIAL_MEDIA: reg.SOCIAL_COOKIES.recipient_id,
}
_PROFILE_CATEGORIES = (
    C.IDENTITY,
    C.CONTACT,
    C.CREDENTIALS,
    C.BANKING,
    C.PROFESSIONAL_CV,
    C.HARD_SKILLS,
    C.SOFT_SKILLS,
    C.RESIDENCE,
)
_OPTIONAL_CATEGORIES = (C.PHOTO, C.EXTRA_PROFESSIONAL)
#: Share of subjects who renew a consent a new policy version asks again [13].
_RENEW_AT_POLICY_CHANGE = 0.6


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. ``violation_share`` is the chance that an activity is an injected violation."""

    subjects: int
    days: int
    seed: int
    start: datetime = datetime(2021, 1, 4, tzinfo=UTC)
    violation_share: float = 0.002
    activities_per_year: float = 30.0
    customer_user_share: float = 0.15

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError(f"subjects must be at least 1, got {self.subjects}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if not 0.0 <= self.violation_share <= 0.5:
            raise ValueError(f"violation share must be between 0 and 0.5, got {self.violation_share}")
        if self.start.tzinfo is None:
            raise ValueError("start must be a UTC instant")


@dataclass(frozen=True)
class TruthRecord:
    """An injected violation: which event breaks which rule."""

    event_id: str
    subject_id: str
    rule: Rule
    occurred_at: datetime
    recipient_id: str | None

    def as_json(self) -> dict[str, str | None]:
        """The ground-truth line for this violation."""
        return {
            "event_id": self.event_id,
            "subject_id": self.subject_id,
            "rule": self.rule.value,
            "policy_section": RULE_SECTIONS[self.rule],
            "occurred_at": self.occurred_at.isoformat(),
            "recipient_id": self.recipient_id,
        }


@dataclass(slots=True)
class Subject:
    """What the simulation remembers of one subject between activities."""

    index: int
    subject_id: str
    kind: AccountKind
    consents: int = 0  # bit set over CONSENT_PURPOSES: consent in force
    registered: bool = False
    closed: bool = False
    suspended: bool = False
    erasure_requested: bool = False
    erased: bool = False
    # A rights request awaiting its outcome: (right, request id), and its next steps (time, status, months, reason),
    # each a later activity of the subject [GDPR Art. 12(3)].
    pending: tuple[Right, str] | None = None
    steps: list[tuple[int, RequestStatus, int | None, str | None]] = field(default_factory=list)
    post_erasure_violation: bool = False
    # Policy versions asking consents again [13]: how many of the run's changes this subject has met, and the
    # consents (bits over CONSENT_PURPOSES) it left to lapse, granted under an older notice and never renewed.
    policy_changes_met: int = 0
    lapsed: int = 0

    def has(self, purpose: Purpose) -> bool:
        """Whether consent for ``purpose`` is in force."""
        return bool(self.consents & _BIT[purpose])

    def lapsed_for(self, purpose: Purpose) -> bool:
        """Whether a grant for ``purpose`` stopped counting when a policy version asked it again [13]."""
        return bool(self.lapsed & _BIT[purpose])


@dataclass
class Stats:
    """Counts of what was generated."""

    events: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)


class Simulation:
    """Generates events for ``config``; iterate ``events()`` once."""

    def __init__(self, config: GeneratorConfig, policy: Policy | None = None) -> None:
        self.config = config
        self.policy = policy or load_policy()
        self.rng = random.Random(config.seed)
        self.start_us = _micros(config.start)
        self.end_us = self.start_us + config.days * _DAY
        self.late_scc_from = _micros(reg.MARKETING_LATE_SCC.mechanism_from(config.start) or config.start)
        self.truth: list[TruthRecord] = []  # drained by the caller as it goes
        self.stats = Stats()
        self.subjects: list[Subject] = []
        self._requests = 0
        self._mean_gap = 365 * _DAY / config.activities_per_year
        # The policy versions that take effect inside the run, with the consents each asks again [13].
        self.history = load_history()
        self._policy_changes = [
            (_micros(v.effective_at), v.version, tuple(p for p in CONSENT_PURPOSES if p in v.reconsent))
            for v in self.history.versions
            if self.start_us < _micros(v.effective_at) < self.end_us
        ]
        self._version_from = [(v.effective_at, v.version) for v in self.history.versions]

    # -- helpers -----------------------------------------------------------------

    def _id(self) -> str:
        # A version-4 UUID from the seeded generator, formatted directly (uuid.UUID is slow here).
        h = f"{(self.rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _at(self, t: int) -> datetime:
        return _EPOCH + timedelta(microseconds=t)

    def _emit(self, event: Event) -> Event:
        record = event.record
        if record["policy_version"] == CURRENT_POLICY_VERSION:  # the service shows the notice in force [13]
            record["policy_version"] = self._version_at(record["occurred_at"])
        self.stats.events += 1
        name = event.topic.short_name
        self.stats.by_topic[name] = self.stats.by_topic.get(name, 0) + 1
        return event

    def _inject(self, event: Event, subject: Subject, rule: Rule, recipient_id: str | None) -> Event:
        """Record ``event`` (already emitted) as an injected violation of ``rule``."""
        record = event.record
        self.truth.append(TruthRecord(record["event_id"], subject.subject_id, rule, record["occurred_at"], recipient_id))
        self.stats.injected[rule.value] = self.stats.injected.get(rule.value, 0) + 1
        return event

    def _version_at(self, when: datetime) -> str:
        """The policy version in force at ``when`` (the first one before every version's day)."""
        version = self._version_from[0][1]
        for start, name in self._version_from:
            if start <= when:
                version = name
        return version

    def sync_marker(self) -> bytes:
        """Container-file sync marker derived from the seed, so the same seed gives the same bytes."""
        return random.Random(f"sync-{self.config.seed}").getrandbits(128).to_bytes(16, "big")

    # -- the run -----------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Every event, registry first, then subjects' activities in event-time order."""
        rng = self.rng
        yield from (self._emit(e) for e in reg.registry_events(self.config.start, [self._id() for _ in reg.REGISTRY]))
        heap: list[tuple[int, int]] = []
        registration_window = max(1, int(self.config.days * 0.8)) * _DAY
        for index in range(self.config.subjects):
            kind = AccountKind.CUSTOMER_USER if rng.random() < self.config.customer_user_share else AccountKind.APPLICANT
            self.subjects.append(Subject(index, f"subj-{index:07d}", kind))
            heap.append((self.start_us + rng.randrange(registration_window), index))
        heapq.heapify(heap)
        while heap:
            t, index = heapq.heappop(heap)
            if t >= self.end_us:
                continue
            subject = self.subjects[index]
            made = self._policy_change(subject, t) + self._activity(subject, t)
            yield from made
            if subject.steps:  # a request's next step comes at its own time
                heapq.heappush(heap, (subject.steps[0][0], index))
            elif self._still_active(subject):
                gap = int(rng.expovariate(1.0 / self._mean_gap)) + (len(made) + 1) * _SECOND
                heapq.heappush(heap, (t + gap, index))

    def _policy_change(self, s: Subject, t: int) -> list[Event]:
        """At a subject's first activity after a policy version took effect: each consent it asks again is renewed
        (a grant at ``t`` naming the new version) or left to lapse [13]. Nothing before then, nor for an erased
        subject, nor when the run crosses no such day."""
        out: list[Event] = []
        while s.policy_changes_met < len(self._policy_changes) and self._policy_changes[s.policy_changes_met][0] <= t:
            _, version, purposes = self._policy_changes[s.policy_changes_met]
            s.policy_changes_met += 1
            if not s.registered or s.erased:
                continue
            for purpose in purposes:
                if not s.has(purpose):
                    continue
                if self.rng.random() >= _RENEW_AT_POLICY_CHANGE:
                    s.consents &= ~_BIT[purpose]
                    s.lapsed |= _BIT[purpose]
                    continue
                cookie = purpose.value.startswith("cookies_")
                out.append(
                    self._emit(
                        ev.consent_granted(
                            s.subject_id,
                            purpose,
                            channel=ConsentChannel.COOKIE_BANNER if cookie else ConsentChannel.ACCOUNT_SETTINGS,
                            source_service="cookie-banner" if cookie else "profile",
                            notice_id=f"notice-{purpose.value}-{version}",
                            occurred_at=self._at(t),
                            event_id=self._id(),
                            policy_version=version,
                        )
                    )
                )
        return out

    def _still_active(self, subject: Subject) -> bool:
        if subject.erased:
            return subject.post_erasure_violation
        return not (subject.closed and subject.pending is None and subject.erasure_requested)

    def _activity(self, s: Subject, t: int) -> list[Event]:
        if not s.registered:
            return self._register(s, t)
        if s.erased:
            s.post_erasure_violation = False
            return [self._processing_after_erasure(s, t)]
        if s.pending is not None:
            return self._request_step(s, t)
        if s.closed:
            return self._after_closure(s, t)
        if s.suspended:
            return self._end_suspension(s, t)
        if self.rng.random() < self.config.violation_share:
            injected = self._injected_violation(s, t)
            if injected is not None:
                return [injected]
        return self._everyday(s, t)

    # -- lifecycle ---------------------------------------------------------------

    def _register(self, s: Subject, t: int) -> list[Event]:
        rng = self.rng
        s.registered = True
        out = [
            self._emit(
                ev.profile_event(
                    s.subject_id,
                    ProfileAction.REGISTERED,
                    account_kind=s.kind,
                    categories=_PROFILE_CATEGORIES,
                    source_service="registration",
                    occurred_at=self._at(t),
                    event_id=self._id(),
                )
            )
        ]
        for i, purpose in enumerate(CONSENT_PURPOSES, start=1):
            channel = ConsentChannel.COOKIE_BANNER if purpose.value.startswith("cookies_") else ConsentChannel.REGISTRATION_FORM
            granted = rng.random() < _GRANT_AT_REGISTRATION[purpose]
            if granted:
                s.consents |= _BIT[purpose]
            elif channel is ConsentChannel.REGISTRATION_FORM and rng.random() < 0.5:
                continue  # an unticked optional box: never asked, no event
            make = ev.consent_granted if granted else ev.consent_refused
            out.append(
                self._emit(
                    make(
                        s.subject_id,
                        purpose,
                        channel=channel,
                        source_service="cookie-banner" if channel is ConsentChannel.COOKIE_BANNER else "registration",
                        notice_id=f"notice-{purpose.value}-v1",
                        occurred_at=self._at(t + i * _SECOND),
                        event_id=self._id(),
                    )
                )
            )
        if s.has(P.OPTIONAL_PROFILE_FIELDS):
            out.append(self._profile(s, t + 10 * _SECOND, ProfileAction.UPDATED, _OPTIONAL_CATEGORIES))
        return out

    def _profile(self, s: Subject, t: int, action: ProfileAction, categories: tuple[DataCategory, ...] = ()) -> Event:
        return self._emit(
            ev.profile_event(
                s.subject_id,
                action,
                account_kind=s.kind,
                categories=categories,
                source_service="profile",
                occurred_at=self._at(t),
                event_id=self._id(),
            )
        )

    def _rights(
        self,
        s: Subject,
        t: int,
        right: Right,
        status: RequestStatus,
        request_id: str,
        *,
        purpose: Purpose | None = None,
        months: int | None = None,
        reason: str | None = None,
    ) -> Event:
        return self._emit(
            ev.rights_event(
                s.subject_id,
                right,
                status,
                request_id=request_id,
                source_service="support",
                occurred_at=self._at(t),
                event_id=self._id(),
                purpose=purpose,
                extension_months=months,
                reason_code=reason,
            )
        )

    def _request(self, s: Subject, t: int, right: Right, purpose: Purpose | None = None) -> list[Event]:
        """A rights request received now: on the one-month clock, with its later steps planned; at once, with the
        consent event that carries it out [Art. 7(3), 21(3)]; or recorded [8.3]. A request the simulation's end would
        leave open is not made (it would fall due at whatever clock a reader picks), so none is open at the end."""
        one_month = clock_of(right.value, None if purpose is None else purpose.value) == ONE_MONTH
        plan: list[tuple[int, RequestStatus, int | None, str | None]] = []
        late_from: int | None = None
        if one_month:
            plan, late_from = self._request_plan(t, right)
            if plan[-1][0] >= self.end_us:
                return []
        self._requests += 1
        request_id = f"req-{self.config.seed}-{self._requests:08d}"
        received = self._rights(s, t, right, RequestStatus.REQUESTED, request_id, purpose=purpose)
        if not one_month:
            # A withdrawal or an objection to marketing acts at once through the ledger [Art. 7(3), 21(3)]: the consent
            # event sent with it; post-mortem directives are recorded [8.3].
            if purpose is None or not s.has(purpose):
                return [received]
            s.consents &= ~_BIT[purpose]
            withdrawal = ev.consent_withdrawn(
                s.subject_id,
                purpose,
                channel=ConsentChannel.CONTACT_REQUEST,
                source_service="support",
                notice_id=f"notice-{purpose.value}-v1",
                occurred_at=self._at(t + _SECOND),
                event_id=self._id(),
            )
            return [received, self._emit(withdrawal)]
        if late_from is not None:  # every step comes before the end: the request is late whatever the clock
            # Late from its first due date, the time the pipeline's verdict carries.
            overdue = TruthRecord(received.record["event_id"], s.subject_id, Rule.REQUEST_OVERDUE, self._at(late_from), None)
            self.truth.append(overdue)
            self.stats.injected[Rule.REQUEST_OVERDUE.value] = self.stats.injected.get(Rule.REQUEST_OVERDUE.value, 0) + 1
        s.pending = (right, request_id)
        if right is Right.ERASURE:
            s.erasure_requested = True
        s.steps = plan
        return [received]

    def _request_plan(self, t: int, right: Right) -> tuple[list[tuple[int, RequestStatus, int | None, str | None]], int | None]:
        """The steps of a request received at ``t`` on the one-month clock [GDPR Art. 12(3), 12(4), 12(6)], each within
        its limit; or, injected, a step at or after the first due date (a late answer, an extension notified too late,
        a late refusal), with that due date."""
        rng = self.rng
        calendar, limit = self.policy.retention.calendar, self.policy.rights.time_limit
        due = _micros(calendar.time_limit_due(self._at(t), limit))
        fulfilled, rejected, extended = RequestStatus.FULFILLED, RequestStatus.REJECTED, RequestStatus.EXTENDED
        if rng.random() < min(1.0, self.config.violation_share * 10):
            kind = rng.randrange(3)
            late = due + rng.randrange(0, 10 * _DAY)
            if kind == 0:
                return [(late, fulfilled, None, None)], due
            if kind == 1:  # an extension notified after the first due date is not honoured
                return [(late, extended, 2, "complexity"), (late + rng.randrange(_DAY, 20 * _DAY), fulfilled, None, None)], due
            return [(late, rejected, None, "manifestly_unfounded")], due  # a refusal is due within the month, Art. 12(4)
        roll = rng.random()
        if roll < 0.1:  # the identity asked for stops the clock; it runs afresh from the verification [Art. 12(6)]
            asked = t + rng.randrange(_HOUR, 3 * _DAY)
            verified = asked + rng.randrange(_HOUR, 10 * _DAY)
            return [
                (asked, RequestStatus.IDENTITY_REQUESTED, None, None),
                (verified, RequestStatus.IDENTITY_VERIFIED, None, None),
                (verified + rng.randrange(_HOUR, 26 * _DAY), fulfilled, None, None),
            ], None
        if roll < 0.25:  # extended within the first month, answered within the extension [Art. 12(3)]
            notified = t + rng.randrange(_HOUR, 20 * _DAY)
            months = rng.choice((1, 2))
            total = limit.months + months
            extended_due = _micros(calendar.time_limit_due(self._at(t), Period(total, 0, f"P{total}M")))
            answer = notified + rng.randrange(_HOUR, extended_due - notified - _DAY)
            reason = rng.choice(("complexity", "number_of_requests"))
            return [(notified, extended, months, reason), (answer, fulfilled, None, None)], None
        if roll < 0.35 and right is not Right.ERASURE:  # refused, with its reasons, within the month [Art. 12(4)]
            return [(t + rng.randrange(_HOUR, 26 * _DAY), rejected, None, "manifestly_unfounded")], None
        return [(t + rng.randrange(_HOUR, 26 * _DAY), fulfilled, None, None)], None

    def _request_step(self, s: Subject, t: int) -> list[Event]:
        """The request's next step, due now; its outcome ends it (an erasure carried out ends the account [12])."""
        assert s.pending is not None and s.steps
        right, request_id = s.pending
        _, status, months, reason = s.steps.pop(0)
        out = [self._rights(s, t, right, status, request_id, months=months, reason=reason)]
        if status not in (RequestStatus.FULFILLED, RequestStatus.REJECTED):
            return out
        s.pending = None
        s.steps = []
        if right is Right.ERASURE and status is RequestStatus.FULFILLED:
            s.erased = True
            s.closed = True
            # A processor that keeps going after erasure [12; GDPR Art. 17].
            s.post_erasure_violation = self.rng.random() < min(1.0, self.config.violation_share * 50)
        return out

    def _after_closure(self, s: Subject, t: int) -> list[Event]:
        if not s.erasure_requested and self.rng.random() < 0.3:
            return self._request(s, t, Right.ERASURE)
        s.erasure_requested = True  # nothing more will happen: stop scheduling
        return []

    def _end_suspension(self, s: Subject, t: int) -> list[Event]:
        s.suspended = False
        if self.rng.random() < 0.3:
            s.closed = True
            return [self._profile(s, t, ProfileAction.BLOCKED)]
        return [self._profile(s, t, ProfileAction.REINSTATED)]

    # -- everyday activity -------------------------------------------------------

    def _everyday(self, s: Subject, t: int) -> list[Event]:
        rng = self.rng
        roll = rng.random() * 100
        applicant = s.kind is AccountKind.APPLICANT
        for weight, action in self._menu(applicant):
            roll -= weight
            if roll < 0:
                return action(s, t)
        return self._visit(s, t)

    def _menu(self, applicant: bool) -> list[tuple[float, Callable[[Subject, int], list[Event]]]]:
        return [
            (28, self._visit),
            (9, self._newsletter),
            (3, self._sms_invitation),
            (3, self._marketing_offer),
            (4, self._service_information),
            (1, self._service_change_notice),
            (6, self._profile_update),
            (5, self._consent_change),
            (9 if applicant else 1, self._shown_to_customer),
            (4 if applicant else 1, self._shown_to_users),
            (5, self._user_message),
            (3, self._group_transfer),
            (3, self._geolocation),
            (2, self._partner_aggregation),
            (2 if applicant else 6, self._payment),
            (0.4, self._identity_verification),
            (0.1, self._authority_request),
            (2 if applicant else 0, self._negative_decision),
            (1, self._notification),
            (2, self._support),
            (3, self._hosting),
            (0.4, lambda s, t: self._request(s, t, Right.ACCESS)),
            (0.15, lambda s, t: self._request(s, t, Right.PORTABILITY)),
            (0.15, lambda s, t: self._request(s, t, Right.RECTIFICATION)),
            (0.25, lambda s, t: self._request(s, t, Right.ERASURE)),
            (0.05, lambda s, t: self._request(s, t, Right.RESTRICTION)),
            (0.05, lambda s, t: self._request(s, t, Right.OBJECTION)),
            (0.1, self._marketing_request),
            (0.02, lambda s, t: self._request(s, t, Right.POST_MORTEM_DIRECTIVES)),
            (0.5, self._close),
            (0.15, self._suspend),
        ]

    def _marketing_request(self, s: Subject, t: int) -> list[Event]:
        """A withdrawal of the marketing consent, or an objection to direct marketing, by contacting us [6 (iii);
        GDPR Art. 7(3), 21(3)]: it acts at once through the consent ledger."""
        if not s.has(P.MARKETING):
            return self._visit(s, t)
        right = Right.CONSENT_WITHDRAWAL if self.rng.random() < 0.5 else Right.OBJECTION
        return self._request(s, t, right, P.MARKETING)

    def _visit(self, s: Subject, t: int) -> list[Event]:
        out = [self._profile(s, t, ProfileAction.USED, (C.VISIT_HISTORY, C.USAGE_DATA, C.DEVICE_NETWORK))]
        out.append(self._cookie(s, t + _SECOND, CookieCategory.STRICTLY_NECESSARY, reg.HOSTING.recipient_id))
        for i, (category, purpose) in enumerate(self.policy.cookie_purpose.items(), start=2):
            if self.policy.needs_consent(purpose) and s.has(purpose):
                out.append(self._cookie(s, t + i * _SECOND, category, _COOKIE_VENDOR[category]))
        return out

    def _cookie(self, s: Subject, t: int, category: CookieCategory, vendor: str) -> Event:
        return self._emit(
            ev.cookie_accessed(
                s.subject_id,
                vendor,
                category,
                cookie_name=f"{vendor}_{category.value}",
                access=CookieAccess.SET if self.rng.random() < 0.5 else CookieAccess.READ,
                source_service="web",
                occurred_at=self._at(t),
                event_id=self._id(),
            )
        )

    def _message(
        self, s: Subject, t: int, kind: MessageKind, channel: MessageChannel, purpose: Purpose, processor: str | None, **kw: str
    ) -> Event:
        return self._emit(
            ev.message_sent(
                s.subject_id,
                kind,
                channel=channel,
                purpose=purpose,
                processor_id=processor,
                categories=(C.CONTACT, C.IDENTITY) if processor else (C.USER_MESSAGES,),
                source_service="mailing" if processor else "messaging",
                occurred_at=self._at(t),
                event_id=self._id(),
                **kw,
            )
        )

    def _campaign(self, t: int) -> str:
        return f"camp-{(t - self.start_us) // (7 * _DAY):03d}"

    def _newsletter(self, s: Subject, t: int) -> list[Event]:
        if not s.has(P.MARKETING):
            return self._visit(s, t)
        kind = MessageKind.NEWSLETTER if self.rng.random() < 0.8 else MessageKind.EVENT_INVITATION
        return [
            self._message(s, t, kind, MessageChannel.EMAIL, P.MARKETING, reg.EMAILING.recipient_id, campaign_id=self._campaign(t))
        ]

    def _sms_invitation(self, s: Subject, t: int) -> list[Event]:
        if not s.has(P.MARKETING):
            return self._visit(s, t)
        return [self._message(s, t, MessageKind.EVENT_INVITATION, MessageChannel.SMS, P.MARKETING, reg.SMS.recipient_id)]

    def _marketing_offer(self, s: Subject, t: int) -> list[Event]:
        if not s.has(P.MARKETING) or t < self.late_scc_from:
            return self._visit(s, t)  # no consent, or the provider's SCCs are not signed yet [7]
        return [
            self._message(
                s,
                t,
                MessageKind.MARKETING_OFFER,
                MessageChannel.EMAIL,
                P.MARKETING,
                reg.MARKETING_LATE_SCC.recipient_id,
                campaign_id=self._campaign(t),
            )
        ]

    def _service_information(self, s: Subject, t: int) -> list[Event]:
        return [
            self._message(
                s, t, MessageKind.SERVICE_INFORMATION, MessageChannel.EMAIL, P.SERVICE_INFORMATION, reg.EMAILING.recipient_id
            )
        ]

    def _service_change_notice(self, s: Subject, t: int) -> list[Event]:
        channel = MessageChannel.SMS if self.rng.random() < 0.3 else MessageChannel.EMAIL
        processor = reg.SMS.recipient_id if channel is MessageChannel.SMS else reg.EMAILING.recipient_id
        return [self._message(s, t, MessageKind.SERVICE_CHANGE_NOTICE, channel, P.SERVICE_CHANGE_NOTICES, processor)]

    def _support(self, s: Subject, t: int) -> list[Event]:
        return [
            self._profile(s, t, ProfileAction.UPDATED, (C.SUPPORT_REQUESTS, C.CORRESPONDENCE)),
            self._message(s, t + _SECOND, MessageKind.SUPPORT_REPLY, MessageChannel.EMAIL, P.SUPPORT, reg.EMAILING.recipient_id),
        ]

    def _profile_update(self, s: Subject, t: int) -> list[Event]:
        pool: tuple[DataCategory, ...] = (
            C.PROFESSIONAL_CV,
            C.HARD_SKILLS,
            C.SOFT_SKILLS,
            C.CONTACT,
            C.RESIDENCE,
            C.QUESTIONNAIRE_ANSWERS,
            C.USER_CONTENT,
        )
        if s.has(P.OPTIONAL_PROFILE_FIELDS):
            pool += _OPTIONAL_CATEGORIES
        picked = tuple(sorted(set(self.rng.sample(pool, self.rng.randint(1, 3)))))
        return [self._profile(s, t, ProfileAction.UPDATED, picked)]

    def _consent_change(self, s: Subject, t: int) -> list[Event]:
        rng = self.rng
        purpose = rng.choice(CONSENT_PURPOSES)
        cookie = purpose.value.startswith("cookies_")
        if s.has(purpose):
            s.consents &= ~_BIT[purpose]
            if cookie:
                channel = ConsentChannel.COOKIE_BANNER
            elif purpose is P.MARKETING:
                channel = rng.choice(
                    (ConsentChannel.UNSUBSCRIBE_LINK, ConsentChannel.ACCOUNT_SETTINGS, ConsentChannel.CONTACT_REQUEST)
                )
            else:
                channel = rng.choice((ConsentChannel.ACCOUNT_SETTINGS, ConsentChannel.CONTACT_REQUEST))
            make = ev.consent_withdrawn
        else:
            s.consents |= _BIT[purpose]
            s.lapsed &= ~_BIT[purpose]  # asked again and given: it counts [13]
            channel = ConsentChannel.COOKIE_BANNER if cookie else ConsentChannel.ACCOUNT_SETTINGS
            make = ev.consent_granted
        service = {ConsentChannel.COOKIE_BANNER: "cookie-banner", ConsentChannel.CONTACT_REQUEST: "support"}.get(
            channel, "profile"
        )
        return [
            self._emit(
                make(
                    s.subject_id,
                    purpose,
                    channel=channel,
                    source_service=service,
                    notice_id=f"notice-{purpose.value}-v1",
                    occurred_at=self._at(t),
                    event_id=self._id(),
                )
            )
        ]

    def _disclose(
        self,
        s: Subject,
        t: int,
        recipient: str,
        categories: tuple[DataCategory, ...],
        purpose: Purpose,
        basis: LegalBasis,
        service: str,
    ) -> Event:
        return self._emit(
            ev.data_disclosed(
                s.subject_id,
                recipient,
                categories,
                purpose=purpose,
                legal_basis=basis,
                source_service=service,
                occurred_at=self._at(t),
                event_id=self._id(),
            )
        )

    def _visible(self) -> tuple[DataCategory, ...]:
        return tuple(sorted(self.policy.visible_to_other_users))

    def _shown_to_customer(self, s: Subject, t: int) -> list[Event]:
        customer = self.rng.choice(reg.CUSTOMERS).recipient_id
        return [self._disclose(s, t, customer, self._visible(), P.PROFILE_MATCHING, LegalBasis.CONTRACT, "matching")]

    def _shown_to_users(self, s: Subject, t: int) -> list[Event]:
        return [
            self._disclose(s, t, reg.USERS.recipient_id, self._visible(), P.PROFILE_MATCHING, LegalBasis.CONTRACT, "matching")
        ]

    def _user_message(self, s: Subject, t: int) -> list[Event]:
        other = self.subjects[self.rng.randrange(len(self.subjects))]
        if other is s or not other.registered or other.closed:
            return self._visit(s, t)
        return [
            self._message(
                s,
                t,
                MessageKind.USER_TO_USER,
                MessageChannel.IN_APP,
                P.USER_COMMUNICATION,
                None,
                counterpart_subject_id=other.subject_id,
            )
        ]

    def _group_transfer(self, s: Subject, t: int) -> list[Event]:
        entity = self.rng.choice((reg.GROUP_FR, reg.GROUP_DE, reg.GROUP_US, reg.GROUP_MA)).recipient_id
        categories = (C.IDENTITY, C.CONTACT, C.PROFESSIONAL_CV, C.HARD_SKILLS)
        return [self._disclose(s, t, entity, categories, P.CONTRACT_INTRODUCTIONS, LegalBasis.CONTRACT, "matching")]

    def _geolocation(self, s: Subject, t: int) -> list[Event]:
        if not s.has(P.GEOLOCATION_SERVICES):
            return self._visit(s, t)
        return [
            self._disclose(s, t, reg.HOSTING.recipient_id, (C.GEOLOCATION,), P.GEOLOCATION_SERVICES, LegalBasis.CONSENT, "web")
        ]

    def _partner_aggregation(self, s: Subject, t: int) -> list[Event]:
        if not s.has(P.PARTNER_AGGREGATION):
            return self._visit(s, t)
        categories = (C.USAGE_DATA, C.PROFESSIONAL_CV)
        return [self._disclose(s, t, reg.PARTNER.recipient_id, categories, P.PARTNER_AGGREGATION, LegalBasis.CONSENT, "partners")]

    def _payment(self, s: Subject, t: int) -> list[Event]:
        categories = (C.BANKING, C.FINANCIAL_TRANSACTIONS)
        out = [
            self._disclose(s, t, reg.PAYMENT.recipient_id, categories, P.CONTRACT_INTRODUCTIONS, LegalBasis.CONTRACT, "payments")
        ]
        if s.kind is AccountKind.CUSTOMER_USER and self.rng.random() < 0.03:
            # An unpaid invoice goes to collection [4.3].
            out.append(
                self._disclose(
                    s,
                    t + _SECOND,
                    reg.COLLECTION.recipient_id,
                    (C.IDENTITY, C.CONTACT, C.FINANCIAL_TRANSACTIONS),
                    P.CONTRACT_INTRODUCTIONS,
                    LegalBasis.CONTRACT,
                    "payments",
                )
            )
        return out

    def _identity_verification(self, s: Subject, t: int) -> list[Event]:
        categories = (C.IDENTITY, C.IDENTITY_DOCUMENTS)
        recipient = reg.ID_VERIFICATION.recipient_id
        return [self._disclose(s, t, recipient, categories, P.IDENTITY_VERIFICATION, LegalBasis.LEGITIMATE_INTEREST, "support")]

    def _authority_request(self, s: Subject, t: int) -> list[Event]:
        categories = (C.IDENTITY, C.IDENTITY_DOCUMENTS, C.CORRESPONDENCE)
        recipient = reg.AUTHORITY.recipient_id
        return [self._disclose(s, t, recipient, categories, P.LEGAL_OBLIGATION_COMPLIANCE, LegalBasis.LEGAL_OBLIGATION, "legal")]

    def _hosting(self, s: Subject, t: int) -> list[Event]:
        categories = (C.USAGE_DATA, C.DEVICE_NETWORK)
        purpose = self.rng.choice((P.TECHNICAL_OPERATIONS_ANALYTICS, P.SITE_OPTIMISATION, P.SECURITY_FRAUD_PREVENTION))
        return [self._disclose(s, t, reg.HOSTING.recipient_id, categories, purpose, LegalBasis.LEGITIMATE_INTEREST, "web")]

    def _negative_decision(self, s: Subject, t: int) -> list[Event]:
        return [self._profile(s, t, ProfileAction.NEGATIVE_DECISION)]

    def _notification(self, s: Subject, t: int) -> list[Event]:
        return [self._profile(s, t, ProfileAction.NOTIFICATION)]

    def _close(self, s: Subject, t: int) -> list[Event]:
        s.closed = True
        return [self._profile(s, t, ProfileAction.CLOSED)]

    def _suspend(self, s: Subject, t: int) -> list[Event]:
        s.suspended = True
        return [self._profile(s, t, ProfileAction.SUSPENDED)]

    # -- injected violations: each breaks exactly one rule ---------------------------

    def _injected_violation(self, s: Subject, t: int) -> Event | None:
        rng = self.rng
        candidates: list[Rule] = [
            Rule.TRANSFER_WITHOUT_MECHANISM,
            Rule.NON_PROFESSIONAL_DATA_TO_USERS,
            Rule.IDENTITY_DOCUMENT_MISUSE,
            Rule.UNREGISTERED_RECIPIENT,
            Rule.PURPOSE_NOT_REGISTERED,
        ]
        # A lapsed consent is judged consent_not_renewed, not as never given [13].
        if not s.has(P.MARKETING) and not s.lapsed_for(P.MARKETING):
            candidates.append(Rule.MARKETING_WITHOUT_CONSENT)
        if s.lapsed_for(P.MARKETING):
            # The likeliest slip after a change: a mailing list that kept the old subscribers [13].
            candidates.extend([Rule.CONSENT_NOT_RENEWED] * 3)
        if not s.has(P.GEOLOCATION_SERVICES) and not s.lapsed_for(P.GEOLOCATION_SERVICES):
            candidates.append(Rule.GEOLOCATION_WITHOUT_CONSENT)
        if not s.has(P.PARTNER_AGGREGATION) and not s.lapsed_for(P.PARTNER_AGGREGATION):
            candidates.append(Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT)
        refused_cookies = [
            c
            for c, p in self.policy.cookie_purpose.items()
            if self.policy.needs_consent(p) and not s.has(p) and not s.lapsed_for(p)
        ]
        if refused_cookies:
            candidates.append(Rule.COOKIE_WITHOUT_CONSENT)
        rule = rng.choice(candidates)
        li = LegalBasis.LEGITIMATE_INTEREST
        if rule is Rule.MARKETING_WITHOUT_CONSENT or rule is Rule.CONSENT_NOT_RENEWED:
            event = self._message(s, t, MessageKind.NEWSLETTER, MessageChannel.EMAIL, P.MARKETING, reg.EMAILING.recipient_id)
            return self._inject(event, s, rule, reg.EMAILING.recipient_id)
        if rule is Rule.COOKIE_WITHOUT_CONSENT:
            category = rng.choice(refused_cookies)
            vendor = _COOKIE_VENDOR[category]
            return self._inject(self._cookie(s, t, category, vendor), s, rule, vendor)
        if rule is Rule.TRANSFER_WITHOUT_MECHANISM:
            if s.has(P.MARKETING) and t < self.late_scc_from:
                recipient = reg.MARKETING_LATE_SCC.recipient_id
                event = self._message(s, t, MessageKind.MARKETING_OFFER, MessageChannel.EMAIL, P.MARKETING, recipient)
            else:
                recipient = reg.NO_MECHANISM.recipient_id
                event = self._disclose(s, t, recipient, (C.USAGE_DATA,), P.TECHNICAL_OPERATIONS_ANALYTICS, li, "web")
            return self._inject(event, s, rule, recipient)
        if rule is Rule.NON_PROFESSIONAL_DATA_TO_USERS:
            recipient = rng.choice((reg.USERS, *reg.CUSTOMERS)).recipient_id
            categories = (*self._visible(), C.CONTACT)
            event = self._disclose(s, t, recipient, categories, P.PROFILE_MATCHING, LegalBasis.CONTRACT, "matching")
            return self._inject(event, s, rule, recipient)
        if rule is Rule.IDENTITY_DOCUMENT_MISUSE:
            recipient = reg.HOSTING.recipient_id
            event = self._disclose(s, t, recipient, (C.IDENTITY_DOCUMENTS,), P.EXPERIENCE_IMPROVEMENT, li, "web")
            return self._inject(event, s, rule, recipient)
        if rule is Rule.GEOLOCATION_WITHOUT_CONSENT:
            recipient = reg.HOSTING.recipient_id
            event = self._disclose(s, t, recipient, (C.GEOLOCATION,), P.GEOLOCATION_SERVICES, LegalBasis.CONSENT, "web")
            return self._inject(event, s, rule, recipient)
        if rule is Rule.UNREGISTERED_RECIPIENT:
            recipient = reg.UNREGISTERED_ID
            event = self._disclose(s, t, recipient, (C.CONTACT,), P.TECHNICAL_OPERATIONS_ANALYTICS, li, "crm")
            return self._inject(event, s, rule, recipient)
        if rule is Rule.PURPOSE_NOT_REGISTERED:
            recipient = reg.PAYMENT.recipient_id
            event = self._disclose(s, t, recipient, (C.FINANCIAL_TRANSACTIONS,), P.EXPERIENCE_IMPROVEMENT, li, "payments")
            return self._inject(event, s, rule, recipient)
        if rule is Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT:
            recipient = reg.PARTNER.recipient_id
            event = self._disclose(s, t, recipient, (C.USAGE_DATA,), P.PARTNER_AGGREGATION, LegalBasis.CONSENT, "partners")
            return self._inject(event, s, rule, recipient)
        return None

    def _processing_after_erasure(self, s: Subject, t: int) -> Event:
        recipient = reg.HOSTING.recipient_id
        event = self._disclose(
            s, t, recipient, (C.USAGE_DATA,), P.TECHNICAL_OPERATIONS_ANALYTICS, LegalBasis.LEGITIMATE_INTEREST, "web"
        )
        return self._inject(event, s, Rule.PROCESSING_AFTER_ERASURE, recipient)


def _micros(when: datetime) -> int:
    delta = when.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _SECOND + delta.microseconds
