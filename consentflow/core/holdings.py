"""What the platform holds of a subject, and until when: the ``SubjectHoldings`` record [2.3; GDPR Art. 15(1)(b), (d)].

An access answer must name the categories of personal data concerned and how
long they are kept. No other output says that whole: lineage edges name what
recipients received, retention actions only what is due at the pipeline's
clock. The record holds the categories the subject provided [2.1] or whose
processing is known [2.2, 4, 5], the account's lifecycle instants that the
periods run from, the archive date [2.3.1, 2.3.3] and every retention action
planned, due or not [2.3.1, 2.3.2, 2.3.3]. Metadata only: ids, categories and
times, never values.

Its revision is the number of events known for the subject (``len(state.seen)``).
The record is a function of that set of events, never of a clock, and the set
only grows: the highest revision of a subject is the record on everything known,
whichever worker issued the others. A worker killed before saving its state may
have issued records on fewer events; its successor's last tick outranks them,
and two workers that know the same events write the same record.
"""

from __future__ import annotations

from consentflow.contracts.records import PlannedRetention, SubjectHoldings
from consentflow.core.retention import PlannedAction, RetentionPlan
from consentflow.core.state import SubjectState


def needs_holdings(state: SubjectState) -> bool:
    """Whether the subject's knowledge changed since the last holdings record it got."""
    return state.holdings_revision != len(state.seen)


def subject_holdings(state: SubjectState, plan: RetentionPlan) -> SubjectHoldings:
    """The ``SubjectHoldings`` record of ``state``, whose retention ``plan`` is ``RetentionSchedule.plan(state)``;
    remembers its revision in ``state.holdings_revision``."""
    revision = len(state.seen)
    held, archive = plan.held, plan.archive
    state.holdings_revision = revision
    return {
        "subject_id": state.subject_id,
        "revision": revision,
        "latest_event_at": state.latest_event_at,  # type: ignore[typeddict-item]  # set by the first event a state sees
        "account_kind": state.account_kind,
        "categories_held": sorted(held),
        "registered_at": state.registered_at,
        "last_use": state.last_use,
        "closed_at": state.closed_at,
        "last_negative": state.last_negative,
        "suspended_at": state.suspension(),  # a suspension a later reinstatement lifted is no longer in force
        "archive_at": archive.at if archive else None,
        "archive_section": archive.section if archive else None,
        "archive_reason": archive.reason if archive else None,
        "planned": [_planned(action) for action in plan.actions],
    }


def _planned(action: PlannedAction) -> PlannedRetention:
    """What the record carries of a planned action: its fields but its id and subject (the id is derived from them)."""
    return {
        "action": action["action"],
        "categories": action["categories"],
        "due_at": action["due_at"],
        "policy_section": action["policy_section"],
        "reason": action["reason"],
        "basis_event_id": action["basis_event_id"],
    }
