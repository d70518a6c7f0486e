"""Rights of the data subject: erasure notices to recipients, and what each recipient received [8, 12].

* Erasure [12; GDPR Art. 17, 19]: once an erasure is carried out, every
  recipient that received the subject's data before it gets a notice naming the
  categories to erase; what a legal obligation keeps (financial data for the
  accounting period [2.3.2]) is named as retained. "Other users" are no single
  party that can be notified [4.1], so they get none.
* Access and portability [8.1, 12; GDPR Art. 15, 20]: the export is read from the
  tables (``sinks/subject_access.py``); ``received_by_recipient`` is what the subject's
  state says each recipient received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from consentflow.contracts.records import ErasureNotice
from consentflow.core.recipients import RecipientRegistry
from consentflow.core.state import SubjectState
from consentflow.policy.versions import Policy
from consentflow.policy.vocabulary import RecipientKind


@dataclass(slots=True)
class Received:
    """What one recipient received of the subject: each category with the first time it was sent."""

    first_sent: dict[str, datetime] = field(default_factory=dict)
    purposes: set[str] = field(default_factory=set)
    last_sent: datetime | None = None
    processings: int = 0  # how many processings sent it data


def received_by_recipient(state: SubjectState, until: datetime | None = None) -> dict[str, Received]:
    """What each recipient received (up to ``until``), from the subject's processings (in event-time order)."""
    out: dict[str, Received] = {}
    for p in state.processings():
        if until is not None and p.occurred_at > until:
            break
        if p.recipient_id is None:
            continue
        received = out.get(p.recipient_id)
        if received is None:
            received = out[p.recipient_id] = Received()
        for category in p.categories:
            received.first_sent.setdefault(category, p.occurred_at)
        received.purposes.add(p.purpose)
        received.last_sent = p.occurred_at
        received.processings += 1
    return out


def erasure_notices(state: SubjectState, registry: RecipientRegistry, policy: Policy) -> list[ErasureNotice]:
    """Notices for the subject's fulfilled erasure whose revision moved since they were last sent; updates ``state.notices``.

    A notice's revision counts the facts it rests on: the erasure requests and
    fulfilments known (high bits), then the processings to that recipient up to
    the erasure (low bits). Both only grow as facts arrive, whatever their order
    and whichever worker saw them, so the highest revision of a notice id is the
    notice on everything known [12; GDPR Art. 19]; a notice is re-issued whenever
    its revision moves, even with the same categories, so that it overwrites one
    a crashed worker issued on less.
    """
    erased = state.erasure_fulfilled_at
    if erased is None or state.erasure_request_id is None:
        return []
    financial = frozenset(c.value for c in policy.financial_categories)
    out: list[ErasureNotice] = []
    for recipient_id, received in sorted(received_by_recipient(state, erased).items()):
        categories = frozenset(received.first_sent)
        if not categories:
            continue
        version = registry.at(recipient_id, erased) or registry.latest(recipient_id)
        if version is not None and version.kind is RecipientKind.OTHER_USERS:
            continue
        revision = (state.erasure_events << 32) | received.processings
        sent = state.notices.get(recipient_id)
        if sent is not None and sent[1] == revision:
            continue
        state.notices[recipient_id] = (categories, revision)
        out.append(
            {
                "notice_id": f"{state.erasure_request_id}:{recipient_id}",
                "subject_id": state.subject_id,
                "recipient_id": recipient_id,
                "categories": sorted(categories - financial),
                "retained_categories": sorted(categories & financial),
                "request_id": state.erasure_request_id,
                "requested_at": state.erasure_requested_at or erased,
                "fulfilled_at": erased,
                "revision": revision,
            }
        )
    return out
