"""The privacy policy's vocabulary, as typed enums.

Every symbol below is named in the words of the platform's privacy policy
(version of November 14, 2020); the section it comes from is quoted beside it.
The Avro contracts in ``schemas/`` carry the same symbols (a test keeps the two
in step), each enum with ``unknown`` as its Avro ``default`` so that a reader of
an older schema survives a symbol added later.
"""

from __future__ import annotations

from enum import StrEnum

#: The policy version every event of this release is collected under.
POLICY_VERSION_2020_11_14 = "2020-11-14"
CURRENT_POLICY_VERSION = POLICY_VERSION_2020_11_14


class DataCategory(StrEnum):
    """Categories of personal data [2.1, 2.2, 2.3.2, 5]. Never the values."""

    IDENTITY = "identity"  # names, birth date and place, gender [2.1.1]
    CONTACT = "contact"  # email, phone [2.1.1]
    CREDENTIALS = "credentials"  # password [2.1.1, 10]
    BANKING = "banking"  # routing and account numbers [2.1.1]
    FINANCIAL_TRANSACTIONS = "financial_transactions"  # payments, reimbursements [2.3.2]
    PROFESSIONAL_CV = "professional_cv"  # diplomas, certifications, employers [2.1.1]
    HARD_SKILLS = "hard_skills"  # [2.1.1]
    SOFT_SKILLS = "soft_skills"  # [2.1.1]
    EXTRA_PROFESSIONAL = "extra_professional"  # mad skills, hobbies, associations [2.1.1]
    PHOTO = "photo"  # [2.1.1, 2.1.2]
    RESIDENCE = "residence"  # town/city and country [2.1.3]
    CORRESPONDENCE = "correspondence"  # [2.1.4]
    VISIT_HISTORY = "visit_history"  # visits and content accessed [2.1.5]
    QUESTIONNAIRE_ANSWERS = "questionnaire_answers"  # [2.1.6]
    SUPPORT_REQUESTS = "support_requests"  # [2.1.7]
    GEOLOCATION = "geolocation"  # [2.1.8], only once accepted
    IDENTITY_DOCUMENTS = "identity_documents"  # passport, licence, ID card [2.1.9]
    DEVICE_NETWORK = "device_network"  # IP, browser, plugins, ad ID, path, searches [2.2.1]
    USAGE_DATA = "usage_data"  # frequency, interactions, introductions [2.2.3]
    USER_MESSAGES = "user_messages"  # messages between users [5]
    USER_CONTENT = "user_content"  # comments, opinions, ratings [2.3.2]
    UNKNOWN = "unknown"


class Purpose(StrEnum):
    """Purposes of processing [3, 4.4.7, 5, 6], plus the consent scopes of 2.1 and 2.2.1."""

    PROFILE_MATCHING = "profile_matching"  # [3.1]
    CONTRACT_INTRODUCTIONS = "contract_introductions"  # [3.2]
    SERVICE_INFORMATION = "service_information"  # [3.3]
    PROFILE_PERSONALISATION = "profile_personalisation"  # [3.4]
    USER_COMMUNICATION = "user_communication"  # [3.5]
    SUPPORT = "support"  # [3.6]
    COMPLIANCE_TERMS_ENFORCEMENT = "compliance_terms_enforcement"  # [3.7]
    MARKETING = "marketing"  # offers, newsletters, event invitations [3.8, 6]
    SERVICE_CHANGE_NOTICES = "service_change_notices"  # [3.9]
    IDENTITY_VERIFICATION = "identity_verification"  # litigation, complaints, requests [3.10]
    TECHNICAL_OPERATIONS_ANALYTICS = "technical_operations_analytics"  # [3.11]
    SITE_OPTIMISATION = "site_optimisation"  # [3.12]
    EXPERIENCE_IMPROVEMENT = "experience_improvement"  # [3.13]
    SECURITY_FRAUD_PREVENTION = "security_fraud_prevention"  # [3.14, 5]
    MESSAGE_MODERATION = "message_moderation"  # [5]
    PARTNER_AGGREGATION = "partner_aggregation"  # [4.4.7]
    GEOLOCATION_SERVICES = "geolocation_services"  # location data once accepted [2.1.8]
    OPTIONAL_PROFILE_FIELDS = "optional_profile_fields"  # photo, hobbies, mad skills [2.1.1]
    COOKIES_PREFERENCES = "cookies_preferences"  # non-essential cookies [2.2.1, 9]
    COOKIES_ANALYTICS = "cookies_analytics"  # [2.2.1, 4.4.2]
    COOKIES_ADVERTISING = "cookies_advertising"  # [2.2.1, 4.4.7]
    COOKIES_SOCIAL_MEDIA = "cookies_social_media"  # [2.2.1, 4.3]
    LEGAL_OBLIGATION_COMPLIANCE = "legal_obligation_compliance"  # judicial requests, accounting [2.3.2, 4.4.4]
    UNKNOWN = "unknown"


class LegalBasis(StrEnum):
    """Lawful bases (GDPR Art. 6(1)) the policy relies on."""

    CONSENT = "consent"  # [2.1.8, 2.2.1, 3.8, 4.4.7, 6]
    CONTRACT = "contract"  # [3.2, 4.4.1]
    LEGAL_OBLIGATION = "legal_obligation"  # [2.3.2, 4.4.4]
    LEGITIMATE_INTEREST = "legitimate_interest"  # [3.14, 5]
    VITAL_INTEREST = "vital_interest"  # [4.4.4 (iv)]
    UNKNOWN = "unknown"


class RecipientKind(StrEnum):
    """Who receives personal data [4, 7]."""

    OTHER_USERS = "other_users"  # professional profile only [4.1]
    CORPORATE_CUSTOMER = "corporate_customer"  # introductions [3.1, 3.2, 4.1]
    GROUP_ENTITY = "group_entity"  # inside and outside the EU [4.2, 7]
    SOCIAL_NETWORK = "social_network"  # [4.3]
    TECHNICAL_SUBCONTRACTOR = "technical_subcontractor"  # [4.3, 4.4.1]
    PAYMENT_PROVIDER = "payment_provider"  # [4.3]
    IDENTITY_VERIFICATION_PROVIDER = "identity_verification_provider"  # [4.3, 3.10]
    ANALYTICS_PROVIDER = "analytics_provider"  # [4.3, 4.4.2]
    SEARCH_ENGINE_PROVIDER = "search_engine_provider"  # [4.4.2]
    COLLECTION_AGENCY = "collection_agency"  # [4.3]
    CREDIT_AGENCY = "credit_agency"  # [4.3]
    AUTHORITY = "authority"  # authorities and courts [4.4.4]
    ACQUIRER = "acquirer"  # [4.4.5, 4.4.6]
    BUSINESS_PARTNER = "business_partner"  # aggregated data [4.4.7]
    EMAILING_PROVIDER = "emailing_provider"  # US subcontractors [7]
    SMS_PROVIDER = "sms_provider"  # [7]
    MARKETING_PROVIDER = "marketing_provider"  # [7]
    UNKNOWN = "unknown"


class TransferMechanism(StrEnum):
    """What frames a transfer outside the EU/EEA [7] (GDPR Chapter V)."""

    WITHIN_EEA = "within_eea"  # no third-country transfer: data stays in the EU/EEA [7]
    ADEQUACY = "adequacy"  # Art. 45 adequacy decision
    SCC = "scc"  # Art. 46(2)(c) standard contractual clauses [7]
    BCR = "bcr"  # Art. 47 binding corporate rules
    DEROGATION = "derogation"  # Art. 49 derogations
    NONE = "none"  # nothing frames the transfer
    UNKNOWN = "unknown"


class ConsentAction(StrEnum):
    """What a subject did about a consent [6, 13]."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"  # at any time [6]
    REFUSED = "refused"  # asked and declined
    UNKNOWN = "unknown"


class ConsentChannel(StrEnum):
    """How consent was given or withdrawn [2.1, 6, 9]."""

    REGISTRATION_FORM = "registration_form"  # [2.1]
    ACCOUNT_SETTINGS = "account_settings"  # checkbox in the account [6 (i)]
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # in each message [6 (ii)]
    CONTACT_REQUEST = "contact_request"  # contacting us [6 (iii), 14]
    COOKIE_BANNER = "cookie_banner"  # [2.2.1, 9]
    UNKNOWN = "unknown"


class Right(StrEnum):
    """Rights of the data subject [6, 8, 12]."""

    ACCESS = "access"  # a copy of the data [8.1]
    RECTIFICATION = "rectification"  # [8.2, 12]
    ERASURE = "erasure"  # [8.2, 12]
    PORTABILITY = "portability"  # [12]
    CONSENT_WITHDRAWAL = "consent_withdrawal"  # [6]
    POST_MORTEM_DIRECTIVES = "post_mortem_directives"  # [8.3]
    RESTRICTION = "restriction"  # GDPR Art. 18 (RightsEvent v2)
    OBJECTION = "objection"  # GDPR Art. 21; to direct marketing: Art. 21(3) (RightsEvent v2)
    UNKNOWN = "unknown"


class RequestStatus(StrEnum):
    """Where a rights request stands [8.2]."""

    REQUESTED = "requested"
    FULFILLED = "fulfilled"
    REJECTED = "rejected"  # a refusal, with its reasons (Art. 12(4)), e.g. identity not verified [8.1 (i)]
    IDENTITY_REQUESTED = "identity_requested"  # more information asked to confirm identity [8.1 (i); Art. 12(6)] (v2)
    IDENTITY_VERIFIED = "identity_verified"  # identity confirmed (v2)
    EXTENDED = "extended"  # the time limit extended by further months, the subject told why [Art. 12(3)] (v2)
    UNKNOWN = "unknown"


class AccountKind(StrEnum):
    """Who the subject is on the platform [1, 3.1, 3.13]."""

    APPLICANT = "applicant"
    CUSTOMER_USER = "customer_user"  # a user acting for a corporate customer
    UNKNOWN = "unknown"


class ProfileAction(StrEnum):
    """Lifecycle of an account, as retention needs it [2.3]."""

    REGISTERED = "registered"  # [2.1.1]
    UPDATED = "updated"  # [8.2]
    USED = "used"  # a visit or use of the Sites: "last use" [2.3.1]
    CLOSED = "closed"  # [2.3.1, 8.2]
    SUSPENDED = "suspended"  # [2.3.3, 3.7]
    BLOCKED = "blocked"  # [2.3.3]
    REINSTATED = "reinstated"
    NEGATIVE_DECISION = "negative_decision"  # [2.3.1]
    NOTIFICATION = "notification"  # [2.3.1]
    UNKNOWN = "unknown"


class CookieCategory(StrEnum):
    """Cookie categories [2.2.1, 9]; only strictly necessary ones need no consent."""

    STRICTLY_NECESSARY = "strictly_necessary"
    PREFERENCES = "preferences"
    ANALYTICS = "analytics"
    ADVERTISING = "advertising"
    SOCIAL_MEDIA = "social_media"
    UNKNOWN = "unknown"


class CookieAccess(StrEnum):
    """A cookie written or read for a vendor [2.2.1]."""

    SET = "set"
    READ = "read"
    UNKNOWN = "unknown"


class MessageKind(StrEnum):
    """What a message is [3.3, 3.5, 3.6, 3.8, 3.9, 5, 6]."""

    NEWSLETTER = "newsletter"  # [6 (i)]
    EVENT_INVITATION = "event_invitation"  # [6 (ii)]
    MARKETING_OFFER = "marketing_offer"  # [3.8]
    SERVICE_INFORMATION = "service_information"  # [3.3]
    SERVICE_CHANGE_NOTICE = "service_change_notice"  # [3.9]
    SUPPORT_REPLY = "support_reply"  # [3.6]
    USER_TO_USER = "user_to_user"  # [3.5, 5]
    UNKNOWN = "unknown"


class MessageChannel(StrEnum):
    """How a message travels [3.3, 6, 7]."""

    EMAIL = "email"
    SMS = "sms"
    IN_APP = "in_app"
    UNKNOWN = "unknown"


class Rule(StrEnum):
    """Policy rules whose breach is a violation; each names its section in ``RULE_SECTIONS``."""

    MARKETING_WITHOUT_CONSENT = "marketing_without_consent"
    COOKIE_WITHOUT_CONSENT = "cookie_without_consent"
    TRANSFER_WITHOUT_MECHANISM = "transfer_without_mechanism"
    NON_PROFESSIONAL_DATA_TO_USERS = "non_professional_data_to_users"
    IDENTITY_DOCUMENT_MISUSE = "identity_document_misuse"
    GEOLOCATION_WITHOUT_CONSENT = "geolocation_without_consent"
    UNREGISTERED_RECIPIENT = "unregistered_recipient"
    PURPOSE_NOT_REGISTERED = "purpose_not_registered"
    PARTNER_AGGREGATION_WITHOUT_CONSENT = "partner_aggregation_without_consent"
    PROCESSING_AFTER_ERASURE = "processing_after_erasure"
    REQUEST_OVERDUE = "request_overdue"  # a rights request still open after its due date (Violation v2)
    CONSENT_NOT_RENEWED = "consent_not_renewed"  # consent given under a version that asks it again (Violation v2)
    UNKNOWN = "unknown"


#: The policy section (or GDPR article) each rule comes from.
RULE_SECTIONS: dict[Rule, str] = {
    Rule.MARKETING_WITHOUT_CONSENT: "3.8, 6",
    Rule.COOKIE_WITHOUT_CONSENT: "2.2.1, 9",
    Rule.TRANSFER_WITHOUT_MECHANISM: "7",
    Rule.NON_PROFESSIONAL_DATA_TO_USERS: "4.1",
    Rule.IDENTITY_DOCUMENT_MISUSE: "2.1.9, 3.10",
    Rule.GEOLOCATION_WITHOUT_CONSENT: "2.1.8",
    Rule.UNREGISTERED_RECIPIENT: "4.3, 4.4",
    Rule.PURPOSE_NOT_REGISTERED: "4.4",
    Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT: "4.4.7",
    Rule.PROCESSING_AFTER_ERASURE: "12 (GDPR Art. 17)",
    Rule.REQUEST_OVERDUE: "8.2 (GDPR Art. 12(3))",
    Rule.CONSENT_NOT_RENEWED: "13 (GDPR Art. 7)",
    Rule.UNKNOWN: "",
}


class RetentionActionKind(StrEnum):
    """What retention requires at a due date [2.3]."""

    ARCHIVE = "archive"  # [2.3.1]
    ANONYMISE = "anonymise"  # user content [2.3.2]
    KEEP_FOR_LEGAL_PERIOD = "keep_for_legal_period"  # financial data [2.3.2]
    DELETE = "delete"  # end of the legal period
    UNKNOWN = "unknown"


class ConsentState(StrEnum):
    """Where a subject's consent for a purpose stands at an instant [6]."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    REFUSED = "refused"
    NEVER_ASKED = "never_asked"  # consent-required purposes default to no consent


class IncidentEventKind(StrEnum):
    """What a fact of the breach register records [12; GDPR Art. 33, 34]."""

    OPENED = "opened"  # the incident recorded: recipient, window, awareness, risk
    AUTHORITY_NOTIFIED = "authority_notified"  # the supervisory authority notified [GDPR Art. 33(1)]
    SUBJECT_NOTIFIED = "subject_notified"  # one data subject told [GDPR Art. 34(1)]
    CLOSED = "closed"
    UNKNOWN = "unknown"


class IncidentRisk(StrEnum):
    """The risk a breach poses to the rights and freedoms of natural persons [GDPR Art. 33(1), 34(1)]."""

    LOW = "low"  # the authority is notified; the subjects need not be told
    HIGH = "high"  # the subjects are told without undue delay [GDPR Art. 34(1)]
    UNKNOWN = "unknown"
