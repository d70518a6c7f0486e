"""The policy's vocabulary in plain words, for the pages a person reads (the lineage page, the access export's HTML).

The symbols (``policy.vocabulary``) and their DPV and GDPR terms (``policy.dpv``)
are for machines and stay in the JSON; a DPO or a subject reads these labels,
taken from the wording of the privacy policy (version of November 14, 2020),
the section quoted beside each. Every member of every labelled enum has a label
(``tests/unit/http/test_page_labels.py``), so a symbol added to the vocabulary
cannot reach a page as a bare code; a value no enum knows (a newer symbol read
by an older release) is shown as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pycountry

from consentflow.policy.dpv import LEGAL_BASIS_TERMS, legal_basis_term, transfer_term
from consentflow.policy.vocabulary import (
    ConsentAction,
    ConsentChannel,
    ConsentState,
    DataCategory,
    LegalBasis,
    Purpose,
    RecipientKind,
    RetentionActionKind,
    Rule,
    TransferMechanism,
)

CATEGORY_LABELS: dict[DataCategory, str] = {
    DataCategory.IDENTITY: "Identity (names, birth date and place, gender)",  # [2.1.1]
    DataCategory.CONTACT: "Contact details (email, phone)",  # [2.1.1]
    DataCategory.CREDENTIALS: "Password",  # [2.1.1, 10]
    DataCategory.BANKING: "Bank details (routing and account numbers)",  # [2.1.1]
    DataCategory.FINANCIAL_TRANSACTIONS: "Payments and reimbursements",  # [2.3.2]
    DataCategory.PROFESSIONAL_CV: "CV (diplomas, certifications, employers)",  # [2.1.1]
    DataCategory.HARD_SKILLS: "Hard skills",  # [2.1.1]
    DataCategory.SOFT_SKILLS: "Soft skills",  # [2.1.1]
    DataCategory.EXTRA_PROFESSIONAL: "Mad skills, hobbies and associations",  # [2.1.1]
    DataCategory.PHOTO: "Photo",  # [2.1.1, 2.1.2]
    DataCategory.RESIDENCE: "Town and country of residence",  # [2.1.3]
    DataCategory.CORRESPONDENCE: "Correspondence with us",  # [2.1.4]
    DataCategory.VISIT_HISTORY: "Visits and content viewed",  # [2.1.5]
    DataCategory.QUESTIONNAIRE_ANSWERS: "Answers to questionnaires",  # [2.1.6]
    DataCategory.SUPPORT_REQUESTS: "Support requests",  # [2.1.7]
    DataCategory.GEOLOCATION: "Location",  # [2.1.8]
    DataCategory.IDENTITY_DOCUMENTS: "Identity documents (passport, driving licence, ID card)",  # [2.1.9]
    DataCategory.DEVICE_NETWORK: "Device and connection data (IP address, browser, advertising ID, searches)",  # [2.2.1]
    DataCategory.USAGE_DATA: "How you use the site",  # [2.2.3]
    DataCategory.USER_MESSAGES: "Messages between users",  # [5]
    DataCategory.USER_CONTENT: "Comments, opinions and ratings",  # [2.3.2]
    DataCategory.UNKNOWN: "Unknown category",
}

PURPOSE_LABELS: dict[Purpose, str] = {
    Purpose.PROFILE_MATCHING: "Your profile and matching with offers",  # [3.1]
    Purpose.CONTRACT_INTRODUCTIONS: "Contracts and introductions",  # [3.2]
    Purpose.SERVICE_INFORMATION: "Information about the service",  # [3.3]
    Purpose.PROFILE_PERSONALISATION: "Personalising your profile",  # [3.4]
    Purpose.USER_COMMUNICATION: "Messages between users",  # [3.5]
    Purpose.SUPPORT: "Support",  # [3.6]
    Purpose.COMPLIANCE_TERMS_ENFORCEMENT: "Compliance and enforcing our terms",  # [3.7]
    Purpose.MARKETING: "Offers, newsletters and event invitations",  # [3.8, 6]
    Purpose.SERVICE_CHANGE_NOTICES: "Notices of changes to the service",  # [3.9]
    Purpose.IDENTITY_VERIFICATION: "Checking your identity (litigation, complaints, requests)",  # [3.10]
    Purpose.TECHNICAL_OPERATIONS_ANALYTICS: "Running the site and statistics",  # [3.11]
    Purpose.SITE_OPTIMISATION: "Improving the site",  # [3.12]
    Purpose.EXPERIENCE_IMPROVEMENT: "Improving your experience",  # [3.13]
    Purpose.SECURITY_FRAUD_PREVENTION: "Security and fraud prevention",  # [3.14, 5]
    Purpose.MESSAGE_MODERATION: "Moderating messages",  # [5]
    Purpose.PARTNER_AGGREGATION: "Aggregated data for business partners",  # [4.4.7]
    Purpose.GEOLOCATION_SERVICES: "Services that use your location",  # [2.1.8]
    Purpose.OPTIONAL_PROFILE_FIELDS: "Optional profile fields (photo, hobbies, mad skills)",  # [2.1.1]
    Purpose.COOKIES_PREFERENCES: "Preference cookies",  # [2.2.1, 9]
    Purpose.COOKIES_ANALYTICS: "Analytics cookies",  # [2.2.1, 4.4.2]
    Purpose.COOKIES_ADVERTISING: "Advertising cookies",  # [2.2.1, 4.4.7]
    Purpose.COOKIES_SOCIAL_MEDIA: "Social media cookies",  # [2.2.1, 4.3]
    Purpose.LEGAL_OBLIGATION_COMPLIANCE: "Legal obligations (accounting, judicial requests)",  # [2.3.2, 4.4.4]
    Purpose.UNKNOWN: "Unknown purpose",
}

LEGAL_BASIS_LABELS: dict[LegalBasis, str] = {
    LegalBasis.CONSENT: "your consent",
    LegalBasis.CONTRACT: "our contract with you",
    LegalBasis.LEGAL_OBLIGATION: "a legal obligation",
    LegalBasis.LEGITIMATE_INTEREST: "our legitimate interest",
    LegalBasis.VITAL_INTEREST: "vital interests",
    LegalBasis.UNKNOWN: "no basis the policy names",
}

CONSENT_STATE_LABELS: dict[ConsentState, str] = {
    ConsentState.GRANTED: "given",
    ConsentState.WITHDRAWN: "withdrawn",
    ConsentState.REFUSED: "refused",
    ConsentState.NEVER_ASKED: "never asked",
}

CONSENT_ACTION_LABELS: dict[ConsentAction, str] = {
    ConsentAction.GRANTED: "gave consent",
    ConsentAction.WITHDRAWN: "withdrew consent",
    ConsentAction.REFUSED: "refused consent",
    ConsentAction.UNKNOWN: "unknown action",
}

CHANNEL_LABELS: dict[ConsentChannel, str] = {
    ConsentChannel.REGISTRATION_FORM: "the registration form",  # [2.1]
    ConsentChannel.ACCOUNT_SETTINGS: "the checkbox in your account",  # [6 (i)]
    ConsentChannel.UNSUBSCRIBE_LINK: "the unsubscribe link in a message",  # [6 (ii)]
    ConsentChannel.CONTACT_REQUEST: "contacting us",  # [6 (iii), 14]
    ConsentChannel.COOKIE_BANNER: "the cookie banner",  # [2.2.1, 9]
    ConsentChannel.UNKNOWN: "an unknown channel",
}

MECHANISM_LABELS: dict[TransferMechanism, str] = {
    TransferMechanism.WITHIN_EEA: "stays in the EU/EEA",
    TransferMechanism.ADEQUACY: "adequacy decision",  # Art. 45
    TransferMechanism.SCC: "standard contractual clauses",  # Art. 46(2)(c) [7]
    TransferMechanism.BCR: "binding corporate rules",  # Art. 47
    TransferMechanism.DEROGATION: "derogation for a specific situation",  # Art. 49
    TransferMechanism.NONE: "nothing frames the transfer",
    TransferMechanism.UNKNOWN: "unknown (recipient not in the registry)",
}

RECIPIENT_KIND_LABELS: dict[RecipientKind, str] = {
    RecipientKind.OTHER_USERS: "other users",  # [4.1]
    RecipientKind.CORPORATE_CUSTOMER: "corporate customer",  # [3.1, 3.2]
    RecipientKind.GROUP_ENTITY: "group company",  # [4.2]
    RecipientKind.SOCIAL_NETWORK: "social network",  # [4.3]
    RecipientKind.TECHNICAL_SUBCONTRACTOR: "technical subcontractor",  # [4.3]
    RecipientKind.PAYMENT_PROVIDER: "payment provider",  # [4.3]
    RecipientKind.IDENTITY_VERIFICATION_PROVIDER: "identity verification provider",  # [4.3]
    RecipientKind.ANALYTICS_PROVIDER: "analytics provider",  # [4.4.2]
    RecipientKind.SEARCH_ENGINE_PROVIDER: "search engine",  # [4.4.2]
    RecipientKind.COLLECTION_AGENCY: "collection agency",  # [4.3]
    RecipientKind.CREDIT_AGENCY: "credit agency",  # [4.3]
    RecipientKind.AUTHORITY: "authority or court",  # [4.4.4]
    RecipientKind.ACQUIRER: "acquirer",  # [4.4.5]
    RecipientKind.BUSINESS_PARTNER: "business partner",  # [4.4.7]
    RecipientKind.EMAILING_PROVIDER: "emailing provider",  # [7]
    RecipientKind.SMS_PROVIDER: "SMS provider",  # [7]
    RecipientKind.MARKETING_PROVIDER: "marketing provider",  # [7]
    RecipientKind.UNKNOWN: "unknown kind",
}

RETENTION_ACTION_LABELS: dict[RetentionActionKind, str] = {
    RetentionActionKind.ARCHIVE: "archive",  # [2.3.1]
    RetentionActionKind.ANONYMISE: "anonymise",  # [2.3.2]
    RetentionActionKind.KEEP_FOR_LEGAL_PERIOD: "keep for the legal period",  # [2.3.2]
    RetentionActionKind.DELETE: "delete",
    RetentionActionKind.UNKNOWN: "unknown action",
}

RULE_LABELS: dict[Rule, str] = {
    Rule.MARKETING_WITHOUT_CONSENT: "marketing without consent",
    Rule.COOKIE_WITHOUT_CONSENT: "cookie without consent",
    Rule.TRANSFER_WITHOUT_MECHANISM: "transfer outside the EU/EEA with nothing framing it",
    Rule.NON_PROFESSIONAL_DATA_TO_USERS: "non-professional data shown to other users",
    Rule.IDENTITY_DOCUMENT_MISUSE: "identity document used outside litigation",
    Rule.GEOLOCATION_WITHOUT_CONSENT: "location used without consent",
    Rule.UNREGISTERED_RECIPIENT: "recipient not in the registry",
    Rule.PURPOSE_NOT_REGISTERED: "purpose the policy does not name",
    Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT: "partner aggregation without consent",
    Rule.PROCESSING_AFTER_ERASURE: "processing after erasure",
    Rule.REQUEST_OVERDUE: "rights request answered late or not at all",
    Rule.CONSENT_NOT_RENEWED: "consent not asked again after a policy change",
    Rule.UNKNOWN: "unknown rule",
}

#: Every labelled enum and its labels, for the test that none is missing.
LABELS: dict[type[StrEnum], Mapping[Any, str]] = {
    DataCategory: CATEGORY_LABELS,
    Purpose: PURPOSE_LABELS,
    LegalBasis: LEGAL_BASIS_LABELS,
    ConsentState: CONSENT_STATE_LABELS,
    ConsentAction: CONSENT_ACTION_LABELS,
    ConsentChannel: CHANNEL_LABELS,
    TransferMechanism: MECHANISM_LABELS,
    RecipientKind: RECIPIENT_KIND_LABELS,
    RetentionActionKind: RETENTION_ACTION_LABELS,
    Rule: RULE_LABELS,
}

_DPV_STATES = {
    "dpv:ConsentGiven": ConsentState.GRANTED,
    "dpv:ConsentWithdrawn": ConsentState.WITHDRAWN,
    "dpv:ConsentRefused": ConsentState.REFUSED,
    "dpv:ConsentUnknown": ConsentState.NEVER_ASKED,
}


def label(kind: type[StrEnum], value: str) -> str:
    """The plain words for ``value`` of the enum ``kind``; the value itself when the enum does not know it."""
    try:
        return LABELS[kind][kind(value)]
    except (KeyError, ValueError):
        return value


def category(value: str) -> str:
    """A data category in plain words [2.1, 2.2]."""
    return label(DataCategory, value)


def purpose(value: str) -> str:
    """A purpose in plain words [3]."""
    return label(Purpose, value)


def legal_basis(value: str) -> str:
    """A lawful basis (``LegalBasis`` value) in plain words with its GDPR Art. 6(1) point: ``your consent (Art. 6(1)(a))``."""
    term = legal_basis_term(value)
    words = label(LegalBasis, value)
    return words if term is None else f"{words} ({gdpr_article(term)})"


def mechanism(value: str) -> str:
    """A transfer mechanism in plain words, with the GDPR provision framing it when one does [7]."""
    term = transfer_term(value)
    words = label(TransferMechanism, value)
    return words if term is None else f"{words} ({gdpr_article(term)})"


def consent_state(term_or_value: str) -> str:
    """A consent state in plain words, from a ``ConsentState`` value or its DPV term (``dpv:ConsentGiven``)."""
    state = _DPV_STATES.get(term_or_value)
    return label(ConsentState, state if state is not None else term_or_value)


def gdpr_article(term: str) -> str:
    """A DPV GDPR term as people cite it: ``eu-gdpr:A46-2-c`` -> ``GDPR Art. 46(2)(c)``; any other term as it is."""
    if not term.startswith("eu-gdpr:A"):
        return term
    article, *points = term.removeprefix("eu-gdpr:A").split("-")
    return f"GDPR Art. {article}" + "".join(f"({p})" for p in points)


_BASIS_OF_TERM = {term: basis for basis, term in LEGAL_BASIS_TERMS.items() if term is not None}


def legal_basis_of_term(term: str | None) -> str:
    """A lawful basis given as its DPV GDPR term (``eu-gdpr:A6-1-a``, as the export's JSON has it) in plain words."""
    if term is None:
        return LEGAL_BASIS_LABELS[LegalBasis.UNKNOWN]
    basis = _BASIS_OF_TERM.get(term)
    return legal_basis(basis.value) if basis is not None else gdpr_article(term)


def channel(value: str) -> str:
    """How a consent was given or withdrawn, in plain words [6]."""
    return label(ConsentChannel, value)


def country(code: str | None) -> str:
    """``United States (US)``: a country's ISO 3166-1 name with its code; the code alone when unknown, "unknown" for none."""
    if not code:
        return "unknown country"
    found = pycountry.countries.get(alpha_2=code)
    return f"{found.name} ({code})" if found is not None else code
