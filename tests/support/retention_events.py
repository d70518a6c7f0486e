"""A candidate's account and payments, dated from ``T0``: the events the retention tests [2.3] build on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.policy.vocabulary import AccountKind, DataCategory, LegalBasis, ProfileAction, Purpose
from tests.support.builders import QUICKPAY, T0, disclose, eid

SUBJECT = "cand-000321"
C = DataCategory
PROFILE = (C.IDENTITY, C.CONTACT, C.PROFESSIONAL_CV)


def profile(action: ProfileAction, when: datetime, categories: Sequence[DataCategory] = (), subject: str = SUBJECT) -> Event:
    """A step of the account's life [2.3]."""
    return events.profile_event(
        subject,
        action,
        account_kind=AccountKind.APPLICANT,
        categories=categories,
        source_service="profile",
        occurred_at=when,
        event_id=eid(subject, "profile", action, when.isoformat()),
    )


def day(n: float) -> datetime:
    """T0 plus ``n`` days."""
    return T0 + timedelta(days=n)


def payment(when: datetime, subject: str = SUBJECT) -> Event:
    """A payment through the payment provider [2.3.2 "payments, reimbursements"]."""
    return disclose(
        subject,
        QUICKPAY,
        [C.BANKING, C.FINANCIAL_TRANSACTIONS],
        when,
        purpose=Purpose.CONTRACT_INTRODUCTIONS,
        basis=LegalBasis.CONTRACT,
    )
