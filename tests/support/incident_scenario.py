"""A breach at cloudnest [12; GDPR Art. 33, 34]: the subjects whose data it received in the window, one whose data it
received before, and a later event that moves the pipeline's clock past the 72 hours. The tests' own copy of the facts:
which subjects a breach concerns is written here, not computed by the code under test."""

from __future__ import annotations

from consentflow.contracts import events
from consentflow.contracts.events import Event
from consentflow.policy.vocabulary import LegalBasis, Purpose
from tests.support.builders import CLOUDNEST, SCENARIO_REGISTRY, at, disclose, eid

RECIPIENT = CLOUDNEST.recipient_id
WINDOW_FROM = at()
WINDOW_TO = at(days=10)
#: When the controller became aware: the authority is due 72 hours later.
AWARE = at(days=10)
#: Subjects whose data cloudnest received in the window, and the categories it received of each.
AFFECTED = {"subj-b1": ("contact",), "subj-b2": ("contact", "identity"), "subj-b3": ("identity",)}
#: A subject whose data cloudnest received before the window only.
BEFORE = "subj-b4"
#: The latest subject event: the pipeline's clock, 10 days after awareness.
CLOCK = at(days=20)


def scenario_events() -> list[Event]:
    """The registry, the disclosures to cloudnest (in the window and before it) and a later use of an account."""
    items: list[Event] = [spec.event() for spec in SCENARIO_REGISTRY]
    for n, (subject, categories) in enumerate(sorted(AFFECTED.items()), 1):
        items.append(
            disclose(
                subject,
                CLOUDNEST,
                list(categories),
                at(days=n),
                purpose=Purpose.SITE_OPTIMISATION,
                basis=LegalBasis.LEGITIMATE_INTEREST,
            )
        )
    items.append(
        disclose(
            BEFORE, CLOUDNEST, ["contact"], at(days=-5), purpose=Purpose.SITE_OPTIMISATION, basis=LegalBasis.LEGITIMATE_INTEREST
        )
    )
    items.append(
        events.profile_event(
            BEFORE, "used", account_kind="applicant", source_service="profile", occurred_at=CLOCK, event_id=eid(BEFORE, "used")
        )
    )
    return items
