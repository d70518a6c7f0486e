"""Retention: when each subject's data must be archived, anonymised or deleted [2.3].

* [2.3.1] archive three years after the last use while the account is open;
  after closure, one year, or two years after the most recent negative decision
  or notification, whichever is longest;
* [2.3.2] financial data kept for the legal accounting period (10 years in
  France, configurable) from the end of the financial year of the last
  transaction; user content anonymised, not deleted, at the end of the 2.3.1
  period;
* [2.3.3] suspended or blocked accounts kept between one and three years after
  the suspension (configurable within that range).

Periods are counted in calendar time, in the controller's time zone, as
Regulation 1182/71 Art. 3 counts them (``consentflow.policy.legal_periods``): an
action falls due at 00:00 on the day after the period's last day.
The clock is injected: ``due(state, now, plan)`` issues what is due at ``now``, and retracts what a
later-arriving fact moved or cancelled since it was issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consentflow.contracts.records import PlannedRetention, RetentionAction
from consentflow.core.state import CATEGORIES, EVENT_ID, ISSUED_ACTIVE, OCCURRED_AT, IssuedAction, SubjectState
from consentflow.policy.legal_periods import Period, PeriodError, parse_period
from consentflow.policy.versions import Policy
from consentflow.policy.vocabulary import RetentionActionKind


def action_id(subject_id: str, action: str, due: datetime) -> str:
    """The id of the retention ``action`` of a subject due at ``due`` (a UTC instant): the same from a plan and from
    the action emitted for it, so ``retention due`` can tell the two apart [2.3]."""
    return f"{subject_id}:{action}:{due.isoformat()}"


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two instants, either of which may be unknown (None)."""
    if a is None:
        return b
    return a if b is None or a <= b else b


@dataclass(frozen=True)
class ArchiveDate:
    """When a subject's data must be archived, the section that says so, and the event it runs from."""

    at: datetime
    section: str
    basis_event_time: datetime
    reason: str
    basis: str  # key of SubjectState.basis_events


class PlannedAction(PlannedRetention):
    """A retention action planned for a subject: a ``PlannedRetention`` with its id and subject, the fields of a
    ``RetentionAction`` but its revision and whether it is in force (given when it is issued)."""

    action_id: str
    subject_id: str


@dataclass(frozen=True)
class RetentionPlan:
    """A subject's retention as of everything known: categories held, the archive date, every action planned.

    Computed once (``RetentionSchedule.plan``) for whatever needs it at the same moment (due actions, the
    holdings record, the access export): each part walks the subject's whole history.
    """

    held: set[str]
    archive: ArchiveDate | None
    actions: list[PlannedAction]  # in due-date order


class RetentionSchedule:
    """Applies the retention periods of a policy, with the suspension period chosen within 2.3.3's range."""

    def __init__(
        self, policy: Policy, *, after_suspension: Period | str | None = None, financial: Period | str | None = None
    ) -> None:
        """``after_suspension`` (default: the policy's maximum) and ``financial`` (default: the policy's) override the
        policy file's periods, as ``Period``s or ISO 8601 durations (``P2Y``); a suspension period outside the
        policy's range [2.3.3] is refused."""
        r = policy.retention
        self.policy = policy
        self.calendar = r.calendar
        self.after_suspension = _period(
            r.after_suspension_max if after_suspension is None else after_suspension, "after_suspension [2.3.3]"
        )
        low, high = r.after_suspension_min, r.after_suspension_max
        try:
            within = self.after_suspension.covers(low) and high.covers(self.after_suspension)
        except PeriodError:
            within = False
        if not within:
            raise ValueError(f"the suspension retention must be between {low} and {high} [2.3.3], got {self.after_suspension}")
        self.financial = _period(r.financial if financial is None else financial, "financial [2.3.2]")
        self._financial_categories = frozenset(c.value for c in policy.financial_categories)
        self._anonymised = frozenset(c.value for c in policy.anonymised_not_deleted)

    def archive_date(self, s: SubjectState) -> ArchiveDate | None:
        """The 2.3.1/2.3.3 date for ``s``, or None when nothing is known of its use yet: when the period has run, in
        calendar time (``LegalCalendar.due``: 00:00 in the controller's zone on the day after its last day)."""
        r, due = self.policy.retention, self.calendar.due
        suspended = s.suspension()
        if suspended is not None:
            return ArchiveDate(
                due(suspended, self.after_suspension), "2.3.3", suspended, "account suspended or blocked", "suspended"
            )
        if s.closed_at is not None:
            closure = ArchiveDate(due(s.closed_at, r.after_closure), "2.3.1", s.closed_at, "one year after closure", "closed")
            if s.last_negative is not None:
                # "whichever is longest" [2.3.1]: the later of the two ends, each counted in calendar time.
                negative = due(s.last_negative, r.after_negative_decision)
                if negative > closure.at:
                    return ArchiveDate(
                        negative,
                        "2.3.1",
                        s.last_negative,
                        "two years after the latest negative decision or notification",
                        "negative",
                    )
            return closure
        if s.last_use is not None:
            return ArchiveDate(
                due(s.last_use, r.after_last_use), "2.3.1", s.last_use, "three years after the last use", "last_use"
            )
        return None

    def holdings(self, s: SubjectState) -> tuple[set[str], datetime | None, str | None]:
        """Categories held (provided or processed), and the time and event of the last financial transaction."""
        held = set(s.held)
        last_financial: datetime | None = None
        financial_event: str | None = None
        financial = self._financial_categories
        for row in s.activities:  # in event-time order; the rows themselves (ProcessingRow), not a named view per tick
            categories = row[CATEGORIES]
            held.update(categories)
            if not financial.isdisjoint(categories):
                last_financial, financial_event = row[OCCURRED_AT], row[EVENT_ID]
        return held, last_financial, financial_event

    def plan(self, s: SubjectState) -> RetentionPlan:
        """Categories held, archive date and every action planned for ``s`` now, each computed once."""
        actions: list[PlannedAction] = []
        archive = self.archive_date(s)
        held, last_financial, financial_event = self.holdings(s)
        # Only data tied to a transaction is kept for the accounting period [2.3.2];
        # banking details never used for a payment are archived with the rest.
        kept = self._financial_categories if last_financial is not None else frozenset()
        financial = sorted(held & kept)
        anonymised = sorted(held & self._anonymised)
        archived = sorted(held - kept - self._anonymised)
        # [2.3.2] financial data follows the legal period from the end of the financial year of the last
        # transaction (Code de commerce art. L123-22), whenever it ends.
        end = (
            self.calendar.due_after_financial_year(last_financial, self.financial)
            if financial and last_financial is not None
            else None
        )
        if archive is not None:
            at, basis = archive.at, archive.basis
            if archived:
                actions.append(self._action(s, RetentionActionKind.ARCHIVE, archived, at, archive.section, archive.reason, basis))
            if anonymised:
                reason = "user content anonymised, not deleted"
                actions.append(self._action(s, RetentionActionKind.ANONYMISE, anonymised, at, "2.3.2", reason, basis))
            if financial and (end is None or end > at):
                reason = "kept for the legal accounting period"
                actions.append(self._action(s, RetentionActionKind.KEEP_FOR_LEGAL_PERIOD, financial, at, "2.3.2", reason, basis))
        if end is not None:
            reason = "end of the legal accounting period"  # from the close of the transaction's financial year
            action = self._action(s, RetentionActionKind.DELETE, financial, end, "2.3.2", reason, "financial")
            action["basis_event_id"] = financial_event
            actions.append(action)
        return RetentionPlan(held, archive, sorted(actions, key=lambda a: (a["due_at"], a["action"])))

    def due(self, s: SubjectState, now: datetime, plan: RetentionPlan) -> list[RetentionAction]:
        """The retention records to issue for ``s`` at ``now`` [2.3], given ``plan = plan(s)``; remembered in ``s``.

        * Each action of ``plan`` due at ``now`` whose record differs from the last one issued for its id (never
          issued, or its categories, basis or reason changed with later facts): ``active``.
        * Each action issued before and live that ``plan`` no longer holds, because a fact that arrived later moved
          its due date (a new id) or cancelled it: its record again, ``active`` false, a retraction.

        ``revision`` is the number of events known (``len(s.seen)``), as for holdings: the records of a subject
        change only when the events known do, so the latest record of an action id has the highest revision,
        whichever worker or run issued the others, and the whole input read at once issues the same live set.
        """
        issued = s.retention_issued
        revision = len(s.seen)
        out: list[RetentionAction] = []
        for action in plan.actions:  # in due-date order
            if action["due_at"] > now:
                break
            row = _issued_row(action, active=True)
            action_id = action["action_id"]
            if issued.get(action_id) != row:
                issued[action_id] = row
                out.append({**action, "revision": revision, "active": True})
        if len(issued) > len(out):  # something issued before may have been moved or cancelled since
            planned = {action["action_id"] for action in plan.actions}
            for action_id, last in list(issued.items()):
                if action_id in planned or (last is not None and not last[ISSUED_ACTIVE]):
                    continue
                retracted = last if last is not None else _migrated_row(s.subject_id, action_id)
                issued[action_id] = (*retracted[:ISSUED_ACTIVE], False)
                out.append(_record(s.subject_id, action_id, retracted, revision, active=False))
        return out

    def _action(
        self,
        s: SubjectState,
        kind: RetentionActionKind,
        categories: list[str],
        due: datetime,
        section: str,
        reason: str,
        basis: str,
    ) -> PlannedAction:
        return {
            "action_id": action_id(s.subject_id, kind.value, due),
            "subject_id": s.subject_id,
            "action": kind.value,
            "categories": categories,
            "due_at": due,
            "policy_section": section,
            "basis_event_id": s.basis_events.get(basis),
            "reason": reason,
        }


def _period(value: Period | str, name: str) -> Period:
    """``value`` as a ``Period``: an ISO 8601 duration is parsed, naming ``name`` when it is not one."""
    return value if isinstance(value, Period) else parse_period(value, name)


def _issued_row(action: PlannedAction, *, active: bool) -> IssuedAction:
    """What ``SubjectState.retention_issued`` keeps of an action record issued: its fields but the id and subject."""
    categories = tuple(action["categories"])
    return (
        action["action"],
        categories,
        action["due_at"],
        action["policy_section"],
        action["basis_event_id"],
        action["reason"],
        active,
    )


def _record(subject_id: str, action_id: str, row: IssuedAction, revision: int, *, active: bool) -> RetentionAction:
    """The ``RetentionAction`` record of ``row`` (v2: with its revision and whether it is in force)."""
    kind, categories, due_at, section, basis, reason, _ = row
    return {
        "action_id": action_id,
        "subject_id": subject_id,
        "action": kind,
        "categories": list(categories),
        "due_at": due_at,
        "policy_section": section,
        "basis_event_id": basis,
        "reason": reason,
        "revision": revision,
        "active": active,
    }


def _migrated_row(subject_id: str, action_id: str) -> IssuedAction:
    """The record of an action id a state written before retractions existed kept without its record: the kind and
    due date its id names (``subject:kind:due``), nothing else known."""
    kind, _, due = action_id[len(subject_id) + 1 :].partition(":")
    return (kind, (), datetime.fromisoformat(due), "", None, "", True)
