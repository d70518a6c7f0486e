"""The recipient registry that ships with the generator [4, 7].

EU and non-EU processors and subcontractors, group entities inside and outside
the EU, corporate customers and other users; one US marketing provider whose
standard contractual clauses start late, and one non-EU analytics vendor with
no transfer mechanism at all, so transfers to it are always violations [7].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from consentflow.contracts.events import Event, MechanismPeriod, recipient_registered
from consentflow.policy.geography import in_eea
from consentflow.policy.vocabulary import Purpose as P
from consentflow.policy.vocabulary import RecipientKind as K
from consentflow.policy.vocabulary import TransferMechanism as M


@dataclass(frozen=True)
class Recipient:
    """A registry entry as the generator knows it."""

    recipient_id: str
    name: str
    kind: K
    country: str
    purposes: tuple[P, ...]
    # (mechanism, days after the simulation start it holds from; negative = before the start)
    mechanisms: tuple[tuple[M, int], ...] = field(default=())

    def mechanism_from(self, start: datetime) -> datetime | None:
        """First instant a transfer mechanism holds, or None when there is none."""
        return min((start + timedelta(days=d) for _, d in self.mechanisms), default=None)


USERS = Recipient("other-users", "Other users of the platform", K.OTHER_USERS, "FR", (P.PROFILE_MATCHING, P.USER_COMMUNICATION))
CUSTOMERS = (
    Recipient("customer-acier-lyon", "Acier Lyon SA", K.CORPORATE_CUSTOMER, "FR", (P.PROFILE_MATCHING, P.CONTRACT_INTRODUCTIONS)),
    Recipient("customer-nordlicht", "Nordlicht GmbH", K.CORPORATE_CUSTOMER, "DE", (P.PROFILE_MATCHING, P.CONTRACT_INTRODUCTIONS)),
    Recipient("customer-tulipa", "Tulipa BV", K.CORPORATE_CUSTOMER, "NL", (P.PROFILE_MATCHING, P.CONTRACT_INTRODUCTIONS)),
    Recipient("customer-sol-madrid", "Sol Madrid SL", K.CORPORATE_CUSTOMER, "ES", (P.PROFILE_MATCHING, P.CONTRACT_INTRODUCTIONS)),
)
GROUP_FR = Recipient("valumen-france", "Valumen France SAS", K.GROUP_ENTITY, "FR", (P.CONTRACT_INTRODUCTIONS, P.PROFILE_MATCHING))
GROUP_DE = Recipient(
    "valumen-deutschland", "Valumen Deutschland GmbH", K.GROUP_ENTITY, "DE", (P.CONTRACT_INTRODUCTIONS, P.PROFILE_MATCHING)
)
GROUP_US = Recipient(
    "valumen-usa", "Valumen USA Inc.", K.GROUP_ENTITY, "US", (P.CONTRACT_INTRODUCTIONS, P.PROFILE_MATCHING), ((M.SCC, -400),)
)
GROUP_MA = Recipient(
    "valumen-maroc", "Valumen Maroc SARL", K.GROUP_ENTITY, "MA", (P.CONTRACT_INTRODUCTIONS, P.PROFILE_MATCHING), ((M.SCC, -200),)
)
EMAILING = Recipient(
    "postwave",
    "Postwave Inc.",
    K.EMAILING_PROVIDER,
    "US",
    (P.MARKETING, P.SERVICE_INFORMATION, P.SERVICE_CHANGE_NOTICES, P.SUPPORT),
    ((M.SCC, -300),),
)
SMS = Recipient(
    "textrelay",
    "TextRelay LLC",
    K.SMS_PROVIDER,
    "US",
    (P.MARKETING, P.SERVICE_INFORMATION, P.SERVICE_CHANGE_NOTICES),
    ((M.SCC, -250),),
)
# Its SCCs are signed 90 days into the simulation: transfers before are violations [7].
MARKETING_LATE_SCC = Recipient("brightfunnel", "Brightfunnel Inc.", K.MARKETING_PROVIDER, "US", (P.MARKETING,), ((M.SCC, 90),))
HOSTING = Recipient(
    "cloudnest",
    "CloudNest Ireland Ltd",
    K.TECHNICAL_SUBCONTRACTOR,
    "IE",
    (
        P.TECHNICAL_OPERATIONS_ANALYTICS,
        P.SITE_OPTIMISATION,
        P.EXPERIENCE_IMPROVEMENT,
        P.SECURITY_FRAUD_PREVENTION,
        P.GEOLOCATION_SERVICES,
    ),
)
PAYMENT = Recipient(
    "quickpay", "Quickpay SAS", K.PAYMENT_PROVIDER, "FR", (P.CONTRACT_INTRODUCTIONS, P.LEGAL_OBLIGATION_COMPLIANCE)
)
ID_VERIFICATION = Recipient("verifid", "VerifID GmbH", K.IDENTITY_VERIFICATION_PROVIDER, "DE", (P.IDENTITY_VERIFICATION,))
ANALYTICS_COOKIES = Recipient(
    "metricly", "Metricly Inc.", K.ANALYTICS_PROVIDER, "US", (P.COOKIES_ANALYTICS, P.SITE_OPTIMISATION), ((M.SCC, -500),)
)
ADVERTISING_COOKIES = Recipient("adnexus", "AdNexus Ireland Ltd", K.MARKETING_PROVIDER, "IE", (P.COOKIES_ADVERTISING,))
PREFERENCE_COOKIES = Recipient(
    "cloudnest-prefs", "CloudNest Ireland Ltd (preferences)", K.TECHNICAL_SUBCONTRACTOR, "IE", (P.COOKIES_PREFERENCES,)
)
SOCIAL_COOKIES = Recipient("linkbook", "Linkbook Inc.", K.SOCIAL_NETWORK, "US", (P.COOKIES_SOCIAL_MEDIA,), ((M.SCC, -600),))
PARTNER = Recipient("partner-talentmap", "TalentMap SAS", K.BUSINESS_PARTNER, "FR", (P.PARTNER_AGGREGATION,))
COLLECTION = Recipient("recouvra", "Recouvra SARL", K.COLLECTION_AGENCY, "FR", (P.CONTRACT_INTRODUCTIONS,))
AUTHORITY = Recipient(
    "tribunal-paris", "Tribunal judiciaire de Paris", K.AUTHORITY, "FR", (P.LEGAL_OBLIGATION_COMPLIANCE, P.IDENTITY_VERIFICATION)
)
# Outside the EU/EEA with no mechanism at all: every transfer to it is a violation [7].
NO_MECHANISM = Recipient("shadowstats", "ShadowStats Pvt Ltd", K.ANALYTICS_PROVIDER, "IN", (P.TECHNICAL_OPERATIONS_ANALYTICS,))
# Not in the registry at all: the generator uses it only for injected violations.
UNREGISTERED_ID = "ghost-crm"

REGISTRY: tuple[Recipient, ...] = (
    USERS,
    *CUSTOMERS,
    GROUP_FR,
    GROUP_DE,
    GROUP_US,
    GROUP_MA,
    EMAILING,
    SMS,
    MARKETING_LATE_SCC,
    HOSTING,
    PAYMENT,
    ID_VERIFICATION,
    ANALYTICS_COOKIES,
    ADVERTISING_COOKIES,
    PREFERENCE_COOKIES,
    SOCIAL_COOKIES,
    PARTNER,
    COLLECTION,
    AUTHORITY,
    NO_MECHANISM,
)


def registry_events(start: datetime, event_ids: list[str]) -> list[Event]:
    """Registry records, all in force a day before ``start``; ``event_ids`` gives one id each."""
    at = start - timedelta(days=1)
    events = []
    for recipient, event_id in zip(REGISTRY, event_ids, strict=True):
        if in_eea(recipient.country):
            periods = [MechanismPeriod(mechanism=M.WITHIN_EEA, valid_from=start - timedelta(days=3650))]
        else:
            periods = [MechanismPeriod(mechanism=m, valid_from=start + timedelta(days=d)) for m, d in recipient.mechanisms]
        events.append(
            recipient_registered(
                recipient.recipient_id,
                name=recipient.name,
                kind=recipient.kind,
                country=recipient.country,
                transfer_mechanisms=periods,
                allowed_purposes=recipient.purposes,
                source_service="vendor-registry",
                occurred_at=at,
                event_id=event_id,
            )
        )
    return events
