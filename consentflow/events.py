"""``consentflow.events``, kept for the imports written before the package took its layout (issue 20):
the typed constructors of the input events, now in ``consentflow.contracts.events``."""

from consentflow.contracts.events import (
    ID_RULE,
    Event,
    MechanismPeriod,
    Record,
    consent_event,
    consent_granted,
    consent_refused,
    consent_withdrawn,
    cookie_accessed,
    data_disclosed,
    incident_event,
    is_pseudonymous_id,
    message_sent,
    new_event_id,
    newsletter_sent,
    profile_event,
    recipient_registered,
    rights_event,
)

__all__ = [
    "ID_RULE",
    "Event",
    "MechanismPeriod",
    "Record",
    "consent_event",
    "consent_granted",
    "consent_refused",
    "consent_withdrawn",
    "cookie_accessed",
    "data_disclosed",
    "incident_event",
    "is_pseudonymous_id",
    "message_sent",
    "new_event_id",
    "newsletter_sent",
    "profile_event",
    "recipient_registered",
    "rights_event",
]
