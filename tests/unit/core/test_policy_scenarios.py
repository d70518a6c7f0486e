"""Scenarios written from the privacy policy of November 14, 2020 (``../shared/privacy-policy.txt``).

Each test quotes the section it checks. The registry is fed through ``Processor.process("recipients", ...)``
(see ``tests/support/builders.py``: each recipient is registered for exactly the purposes a scenario needs, so a
scenario breaks the one rule it is about). A violation must name its rule, the policy section, the subject,
and its evidence: the offending event first, then — for the consent rules — the consent decision it ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from consentflow.contracts import events
from consentflow.contracts.events import Event, MechanismPeriod
from consentflow.core.processor import Changes
from consentflow.policy.vocabulary import (
    ConsentAction,
    ConsentChannel,
    CookieCategory,
    DataCategory,
    LegalBasis,
    MessageChannel,
    MessageKind,
    Purpose,
    RequestStatus,
    Right,
    Rule,
    TransferMechanism,
)
from tests.support.builders import (
    CLOUDNEST,
    CUSTOMER,
    EXPIRED_SCC,
    GROUP_DE,
    LATE_REGISTERED,
    LATE_SCC,
    METRICLY,
    NO_MECHANISM,
    OTHER_USERS,
    PARTNER,
    POSTWAVE,
    QUICKPAY,
    TRIBUNAL,
    VERIFID,
    RecipientSpec,
    active_verdicts,
    at,
    consent,
    disclose,
    eid,
    feed,
    final_verdicts,
    newsletter,
    processor_with,
    scc_from,
)

SUBJECT = "cand-000042"
C = DataCategory
GRANTED, WITHDRAWN, REFUSED = ConsentAction.GRANTED, ConsentAction.WITHDRAWN, ConsentAction.REFUSED
LI = LegalBasis.LEGITIMATE_INTEREST


def the_violation(
    changes: Changes | Sequence[Mapping[str, Any]], rule: Rule, offending: Event, section: str, ignored: Event | None = None
) -> Mapping[str, Any]:
    """The one active violation in ``changes``: of ``rule``, citing ``section``, about the offending event's subject."""
    records = changes.violations if isinstance(changes, Changes) else changes
    active = active_verdicts(records)
    assert len(active) == 1, f"expected one {rule} violation, got {[r['rule'] for r in active.values()]}"
    (record,) = active.values()
    assert record["rule"] == rule.value
    cited = re.findall(r"\d+(?:\.\d+)*", record["policy_section"])
    assert all(part in cited for part in section.split(", ")), (section, record["policy_section"])
    assert record["subject_id"] == offending.record["subject_id"]
    assert record["occurred_at"] == offending.record["occurred_at"]
    evidence = record["evidence_event_ids"]
    assert evidence[0] == offending.record["event_id"], "the offending event comes first"
    if ignored is not None:
        assert evidence == [offending.record["event_id"], ignored.record["event_id"]]
    return record


def no_violation(changes: Changes | Sequence[Mapping[str, Any]]) -> None:
    """Nothing active."""
    records = changes.violations if isinstance(changes, Changes) else changes
    active = active_verdicts(records)
    assert not active, [(r["rule"], r["detail"]) for r in active.values()]


def cookie(subject: str, vendor: RecipientSpec | str, category: CookieCategory, when: datetime) -> Event:
    """A cookie set for a vendor [2.2.1]."""
    vendor_id = vendor if isinstance(vendor, str) else vendor.recipient_id
    return events.cookie_accessed(
        subject,
        vendor_id,
        category,
        cookie_name=f"_{category.value}",
        source_service="web",
        occurred_at=when,
        event_id=eid(subject, "cookie", vendor_id, category, when.isoformat()),
    )


def erasure(subject: str, status: RequestStatus, when: datetime, request: str = "req-1") -> Event:
    """An erasure request or its fulfilment [12]."""
    return events.rights_event(
        subject,
        Right.ERASURE,
        status,
        request_id=request,
        source_service="support",
        occurred_at=when,
        event_id=eid(subject, "rights", request, status, when.isoformat()),
    )


# ------------------------------------------------------------------ marketing [3.8, 6]


def test_newsletter_to_a_subject_never_asked_is_a_violation() -> None:
    """[3.8] "send you, ... with your consent where required by legislation, offers, news ..." and [6] "with your
    consent where required, we may ... send you our newsletters": no consent given, no newsletter."""
    p = processor_with()
    sent = newsletter(SUBJECT, at(1))
    record = the_violation(feed(p, sent), Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6")
    assert record["evidence_event_ids"] == [sent.record["event_id"]]  # no consent event to cite
    assert record["purpose"] == Purpose.MARKETING.value
    assert p.state_at(SUBJECT, "marketing", at(1)) == "never_asked"


@pytest.mark.parametrize("kind", [MessageKind.NEWSLETTER, MessageKind.EVENT_INVITATION, MessageKind.MARKETING_OFFER])
def test_every_kind_of_promotional_message_needs_marketing_consent(kind: MessageKind) -> None:
    """[6] business development: "(i) to send you our newsletters, and (ii) to send you invitations to our events";
    [3.8] "offers, news"."""
    p = processor_with()
    sent = events.message_sent(
        SUBJECT,
        kind,
        channel=MessageChannel.EMAIL,
        purpose=Purpose.MARKETING,
        processor_id=POSTWAVE.recipient_id,
        source_service="mailing",
        occurred_at=at(1),
        event_id=eid(SUBJECT, kind),
    )
    the_violation(feed(p, sent), Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6")


def test_newsletter_after_an_unsubscribe_is_a_violation_citing_the_withdrawal() -> None:
    """[6] "You can withdraw your consent at any time by ... (ii) clicking on the 'unsubscribe' link provided in each
    of our messages": a newsletter after that is sent without consent."""
    p = processor_with()
    granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(-24), channel=ConsentChannel.REGISTRATION_FORM)
    unsubscribed = consent(SUBJECT, Purpose.MARKETING, WITHDRAWN, at(0), channel=ConsentChannel.UNSUBSCRIBE_LINK)
    sent = newsletter(SUBJECT, at(1))
    changes = feed(p, granted, unsubscribed, sent)
    record = the_violation(changes, Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6", ignored=unsubscribed)
    assert "unsubscribe_link" in record["detail"]


def test_newsletter_with_consent_in_force_is_allowed_and_a_later_withdrawal_does_not_change_that() -> None:
    """[6] consent in force when the newsletter is sent makes it lawful; a withdrawal "at any time" counts from then on."""
    p = processor_with()
    granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(-24), channel=ConsentChannel.ACCOUNT_SETTINGS)
    sent = newsletter(SUBJECT, at(1, minutes=5))
    later = consent(SUBJECT, Purpose.MARKETING, WITHDRAWN, at(1, minutes=10), channel=ConsentChannel.UNSUBSCRIBE_LINK)
    changes = feed(p, granted, sent, later)
    no_violation(changes)
    # The newsletter reached the emailing provider: a lineage edge, framed by SCCs [7].
    (edge,) = changes.lineage
    assert (edge["recipient_id"], edge["purpose"], edge["legal_basis"]) == ("postwave", "marketing", "consent")


def test_newsletter_after_a_refusal_is_a_violation_citing_the_refusal() -> None:
    """[3.8] "with your consent where required": a subject who declined when asked has not consented."""
    p = processor_with()
    refused = consent(SUBJECT, Purpose.MARKETING, REFUSED, at(-1), channel=ConsentChannel.REGISTRATION_FORM)
    sent = newsletter(SUBJECT, at(0))
    the_violation(feed(p, refused, sent), Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6", ignored=refused)


def test_withdrawal_arriving_after_a_newsletter_sent_later_makes_it_a_violation() -> None:
    """[6] withdrawal "at any time": a withdrawal at 10:00 that reaches us only after the 10:05 newsletter was
    processed still means the newsletter went out without consent."""
    p = processor_with()
    granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(-1), channel=ConsentChannel.REGISTRATION_FORM)
    sent = newsletter(SUBJECT, at(1, minutes=5))  # 10:05
    withdrawn = consent(SUBJECT, Purpose.MARKETING, WITHDRAWN, at(1), channel=ConsentChannel.UNSUBSCRIBE_LINK)  # 10:00
    no_violation(feed(p, granted, sent))
    late = feed(p, withdrawn)
    record = the_violation(late, Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6", ignored=withdrawn)
    assert record["active"] is True
    assert p.state_at(SUBJECT, "marketing", at(1, minutes=5)) == "withdrawn"


@pytest.mark.parametrize("no", [WITHDRAWN, REFUSED])
def test_a_grant_and_a_withdrawal_or_refusal_at_the_same_instant_leave_no_consent(no: ConsentAction) -> None:
    """[6] "You can withdraw your consent at any time", and GDPR Art. 7(1): the controller must be able to demonstrate
    consent. A grant withdrawn or refused at the very same instant demonstrates none: whatever the event ids and the
    arrival order, the refusal is in force and a newsletter sent then is a violation citing it."""
    id_orders = set()
    for pair in range(8):
        granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(0), name=f"grant-{pair}")
        refusal = consent(SUBJECT, Purpose.MARKETING, no, at(0), channel=ConsentChannel.UNSUBSCRIBE_LINK, name=f"no-{pair}")
        id_orders.add(granted.record["event_id"] < refusal.record["event_id"])
        sent = newsletter(SUBJECT, at(0, minutes=30), name=f"sent-{pair}")
        for order in ((granted, refusal, sent), (refusal, granted, sent), (sent, granted, refusal), (sent, refusal, granted)):
            p = processor_with()
            the_violation(feed(p, *order), Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6", ignored=refusal)
            assert p.state_at(SUBJECT, Purpose.MARKETING.value, at(0)) == no.value
            assert p.state_at(SUBJECT, Purpose.MARKETING.value, at(-1)) == "never_asked"
    assert id_orders == {True, False}, "both event id orders were tried"


def test_grant_arriving_after_a_newsletter_sent_later_retracts_the_violation() -> None:
    """[6] consent given at 09:00 covers a 10:05 newsletter even when it reaches us after the newsletter: the earlier
    verdict is retracted (active=False, a higher revision of the same violation)."""
    p = processor_with()
    sent = newsletter(SUBJECT, at(1, minutes=5))
    first = feed(p, sent)
    flagged = the_violation(first, Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6")
    granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(0), channel=ConsentChannel.ACCOUNT_SETTINGS)
    second = feed(p, granted)
    (retraction,) = second.violations
    assert retraction["violation_id"] == flagged["violation_id"]
    assert retraction["active"] is False
    assert retraction["revision"] > flagged["revision"]
    assert retraction["rule"] == Rule.MARKETING_WITHOUT_CONSENT.value
    no_violation([*first.violations, *second.violations])


def test_marketing_consent_does_not_depend_on_other_purposes() -> None:
    """[2.2.1, 6] consents are per purpose: cookie consent does not allow a newsletter."""
    p = processor_with()
    other = consent(SUBJECT, Purpose.COOKIES_ANALYTICS, GRANTED, at(-1), channel=ConsentChannel.COOKIE_BANNER)
    sent = newsletter(SUBJECT, at(0))
    the_violation(feed(p, other, sent), Rule.MARKETING_WITHOUT_CONSENT, sent, "3.8, 6")


def test_service_information_needs_no_marketing_consent() -> None:
    """[3.3] "send you information about our services" and [3.9] service changes execute the contract: no consent."""
    p = processor_with()
    sent = events.message_sent(
        SUBJECT,
        MessageKind.SERVICE_INFORMATION,
        channel=MessageChannel.EMAIL,
        purpose=Purpose.SERVICE_INFORMATION,
        processor_id=POSTWAVE.recipient_id,
        source_service="mailing",
        occurred_at=at(0),
        event_id=eid(SUBJECT, "service-information"),
    )
    no_violation(feed(p, sent))


# ------------------------------------------------------------------ cookies [2.2.1, 9]


def test_non_essential_cookie_without_consent_for_its_category_is_a_violation() -> None:
    """[2.2.1] "in accordance with applicable legislation and with your consent, we may collect information about the
    devices ... we use cookies": an analytics cookie needs consent for analytics cookies."""
    p = processor_with()
    set_cookie = cookie(SUBJECT, METRICLY, CookieCategory.ANALYTICS, at(0))
    record = the_violation(feed(p, set_cookie), Rule.COOKIE_WITHOUT_CONSENT, set_cookie, "2.2.1")
    assert record["evidence_event_ids"] == [set_cookie.record["event_id"]]


def test_cookie_after_the_banner_was_refused_cites_the_refusal() -> None:
    """[2.2.1, 9] a category refused on the cookie banner may not be set."""
    p = processor_with()
    refused = consent(SUBJECT, Purpose.COOKIES_ANALYTICS, REFUSED, at(-1), channel=ConsentChannel.COOKIE_BANNER)
    set_cookie = cookie(SUBJECT, METRICLY, CookieCategory.ANALYTICS, at(0))
    the_violation(feed(p, refused, set_cookie), Rule.COOKIE_WITHOUT_CONSENT, set_cookie, "2.2.1", ignored=refused)


def test_consent_for_one_cookie_category_does_not_cover_another() -> None:
    """[2.2.1] consent is given per category: accepting analytics cookies does not allow advertising ones."""
    p = processor_with()
    analytics = consent(SUBJECT, Purpose.COOKIES_ANALYTICS, GRANTED, at(-1), channel=ConsentChannel.COOKIE_BANNER)
    allowed = cookie(SUBJECT, METRICLY, CookieCategory.ANALYTICS, at(0))
    advertising = cookie(SUBJECT, "adnexus", CookieCategory.ADVERTISING, at(0, minutes=1))
    no_violation(feed(p, analytics, allowed))
    the_violation(feed(p, advertising), Rule.COOKIE_WITHOUT_CONSENT, advertising, "2.2.1")


def test_strictly_necessary_cookie_needs_no_consent() -> None:
    """[2.2.1, 9] only non-essential cookies need consent; a strictly necessary one is set without asking."""
    p = processor_with()
    no_violation(feed(p, cookie(SUBJECT, CLOUDNEST, CookieCategory.STRICTLY_NECESSARY, at(0))))
    assert p.state_at(SUBJECT, Purpose.COOKIES_PREFERENCES.value, at(0)) == "never_asked"


# ------------------------------------------------------------------ transfers outside the EU/EEA [7]


def marketing_offer(subject: str, recipient: RecipientSpec, when: datetime) -> Event:
    """A marketing offer delivered by a (non-EU) provider."""
    return events.message_sent(
        subject,
        MessageKind.MARKETING_OFFER,
        channel=MessageChannel.EMAIL,
        purpose=Purpose.MARKETING,
        processor_id=recipient.recipient_id,
        source_service="mailing",
        occurred_at=when,
        event_id=eid(subject, "offer", recipient.recipient_id, when.isoformat()),
    )


def test_transfer_before_the_sccs_are_signed_is_a_violation_and_after_is_not() -> None:
    """[7] "Should this type of transfer occur, we ensure that ... it is framed by the standard contractual clauses of
    the European Commission": SCCs signed on day 10 do not frame a transfer on day 1."""
    p = processor_with()
    granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(-1))
    early = marketing_offer(SUBJECT, LATE_SCC, at(days=1))
    late = marketing_offer(SUBJECT, LATE_SCC, at(days=11))
    feed(p, granted)
    record = the_violation(feed(p, early), Rule.TRANSFER_WITHOUT_MECHANISM, early, "7")
    assert record["recipient_id"] == LATE_SCC.recipient_id
    no_violation(feed(p, late))


def test_transfer_after_the_sccs_expired_is_a_violation() -> None:
    """[7] the clauses must frame the transfer when it happens: SCCs valid until yesterday frame nothing today."""
    p = processor_with()
    before = disclose(
        SUBJECT, EXPIRED_SCC, [C.CONTACT], at(days=-2), purpose=Purpose.SERVICE_INFORMATION, basis=LegalBasis.CONTRACT
    )
    after = disclose(SUBJECT, EXPIRED_SCC, [C.CONTACT], at(0), purpose=Purpose.SERVICE_INFORMATION, basis=LegalBasis.CONTRACT)
    no_violation(feed(p, before))
    the_violation(feed(p, after), Rule.TRANSFER_WITHOUT_MECHANISM, after, "7")


def test_validity_period_of_a_mechanism_is_half_open() -> None:
    """[7] a mechanism holds from ``valid_from`` (included) until ``valid_until`` (excluded)."""
    start, end = at(days=-30), at(days=30)
    spec = RecipientSpec("framed", GROUP_DE.kind, "US", (Purpose.CONTRACT_INTRODUCTIONS,), scc_from(start, end))
    p = processor_with([spec])

    def send(when: datetime) -> Changes:
        return feed(
            p, disclose(SUBJECT, spec, [C.CONTACT], when, purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT)
        )

    tiny = timedelta(microseconds=1)
    assert [bool(active_verdicts(send(t).violations)) for t in (start - tiny, start, end - tiny, end)] == [
        True,
        False,
        False,
        True,
    ]


def test_transfer_to_a_country_outside_the_eea_with_no_mechanism_at_all_is_a_violation() -> None:
    """[7] data transferred outside the European Union must be framed by a mechanism; this recipient has none."""
    p = processor_with()
    sent = disclose(SUBJECT, NO_MECHANISM, [C.USAGE_DATA], at(0), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI)
    record = the_violation(feed(p, sent), Rule.TRANSFER_WITHOUT_MECHANISM, sent, "7")
    assert record["evidence_event_ids"][0] == sent.record["event_id"]


def test_transfer_within_the_eea_needs_no_mechanism() -> None:
    """[7] "We keep your Personal Data in the European Union": sending data to a group entity in Germany [4.2] is no
    third-country transfer."""
    p = processor_with()
    sent = disclose(
        SUBJECT, GROUP_DE, [C.IDENTITY, C.CONTACT], at(0), purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT
    )
    changes = feed(p, sent)
    no_violation(changes)
    assert changes.lineage[0]["transfer_mechanism"] == "within_eea"


def test_transfer_framed_by_valid_sccs_is_allowed() -> None:
    """[7] "subcontractors located outside the European Union, particularly in the United States ... to provide
    emailing": framed by standard contractual clauses valid at that instant."""
    p = processor_with()
    granted = consent(SUBJECT, Purpose.MARKETING, GRANTED, at(-1))
    changes = feed(p, granted, newsletter(SUBJECT, at(0)))
    no_violation(changes)
    assert changes.lineage[0]["transfer_mechanism"] == "scc"


@pytest.mark.parametrize(
    ("mechanism", "framed"),
    [
        (TransferMechanism.SCC, True),
        (TransferMechanism.ADEQUACY, True),
        (TransferMechanism.BCR, True),
        (TransferMechanism.DEROGATION, True),
        (TransferMechanism.WITHIN_EEA, False),  # a US recipient is not in the EEA because its entry says so
        (TransferMechanism.NONE, False),
    ],
)
def test_only_a_chapter_v_mechanism_frames_a_transfer_outside_the_eea(mechanism: TransferMechanism, framed: bool) -> None:
    """[7] transfers outside the EU must be "framed" (standard contractual clauses, or another GDPR Chapter V ground);
    a registry entry claiming "within_eea" or "none" for a US recipient frames nothing."""
    spec = RecipientSpec(
        "us-affiliate",
        GROUP_DE.kind,
        "US",
        (Purpose.CONTRACT_INTRODUCTIONS,),
        (MechanismPeriod(mechanism, at(days=-100)),),
    )
    p = processor_with([spec])
    sent = disclose(SUBJECT, spec, [C.CONTACT], at(0), purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT)
    changes = feed(p, sent)
    if framed:
        no_violation(changes)
        assert changes.lineage[0]["transfer_mechanism"] == mechanism.value
    else:
        the_violation(changes, Rule.TRANSFER_WITHOUT_MECHANISM, sent, "7")
        assert changes.lineage[0]["transfer_mechanism"] == "none"


# ------------------------------------------------------------------ other users and corporate customers [4.1]


@pytest.mark.parametrize("recipient", [OTHER_USERS, CUSTOMER], ids=lambda r: r.recipient_id)
def test_non_professional_categories_shown_to_users_are_a_violation(recipient: RecipientSpec) -> None:
    """[4.1] "some of your information is transmitted to other users through your profile: this involves professional
    information ... No other information is shared among users."""
    p = processor_with()
    shown = disclose(
        SUBJECT,
        recipient,
        [C.PROFESSIONAL_CV, C.HARD_SKILLS, C.CONTACT, C.EXTRA_PROFESSIONAL],
        at(0),
        purpose=Purpose.PROFILE_MATCHING,
        basis=LegalBasis.CONTRACT,
    )
    record = the_violation(feed(p, shown), Rule.NON_PROFESSIONAL_DATA_TO_USERS, shown, "4.1")
    assert record["recipient_id"] == recipient.recipient_id
    assert "contact" in record["detail"] and "extra_professional" in record["detail"]


@pytest.mark.parametrize("recipient", [OTHER_USERS, CUSTOMER], ids=lambda r: r.recipient_id)
def test_professional_profile_shown_to_users_is_allowed(recipient: RecipientSpec) -> None:
    """[4.1] professional information "helpful for optimizing an application" may be shown; [2.1.1] CV and skills."""
    p = processor_with()
    shown = disclose(
        SUBJECT,
        recipient,
        [C.PROFESSIONAL_CV, C.HARD_SKILLS, C.SOFT_SKILLS],
        at(0),
        purpose=Purpose.PROFILE_MATCHING,
        basis=LegalBasis.CONTRACT,
    )
    no_violation(feed(p, shown))


def test_the_users_rule_does_not_apply_to_group_entities() -> None:
    """[4.1] limits what other users see; [4.2] group entities may receive personal data within this policy."""
    p = processor_with()
    sent = disclose(
        SUBJECT, GROUP_DE, [C.IDENTITY, C.CONTACT], at(0), purpose=Purpose.PROFILE_MATCHING, basis=LegalBasis.CONTRACT
    )
    no_violation(feed(p, sent))


# ------------------------------------------------------------------ identity documents [2.1.9, 3.10]


def test_identity_documents_used_for_anything_else_are_a_violation() -> None:
    """[2.1.9] a copy of your passport ... "to prove your identity in the event of litigation" and [3.10] "verify the
    information contained in your passport ... if needed (litigation, complaints, administrative and/or legal
    requests)": not to improve the experience."""
    p = processor_with()
    misuse = disclose(SUBJECT, CLOUDNEST, [C.IDENTITY_DOCUMENTS], at(0), purpose=Purpose.EXPERIENCE_IMPROVEMENT, basis=LI)
    record = the_violation(feed(p, misuse), Rule.IDENTITY_DOCUMENT_MISUSE, misuse, "2.1.9, 3.10")
    assert record["evidence_event_ids"] == [misuse.record["event_id"]]


@pytest.mark.parametrize(
    ("recipient", "purpose", "basis"),
    [
        (VERIFID, Purpose.IDENTITY_VERIFICATION, LI),
        (TRIBUNAL, Purpose.LEGAL_OBLIGATION_COMPLIANCE, LegalBasis.LEGAL_OBLIGATION),
    ],
    ids=["identity-verification", "legal-request"],
)
def test_identity_documents_for_identity_verification_or_a_legal_obligation_are_allowed(
    recipient: RecipientSpec, purpose: Purpose, basis: LegalBasis
) -> None:
    """[3.10] identity verification; [4.4.4 (ii)] "for complying with any judicial requests"."""
    p = processor_with()
    no_violation(feed(p, disclose(SUBJECT, recipient, [C.IDENTITY, C.IDENTITY_DOCUMENTS], at(0), purpose=purpose, basis=basis)))


# ------------------------------------------------------------------ geolocation [2.1.8]


def test_geolocation_without_consent_is_a_violation() -> None:
    """[2.1.8] "Data related to your location, once you have accepted that we collect and process this data"."""
    p = processor_with()
    located = disclose(SUBJECT, CLOUDNEST, [C.GEOLOCATION], at(0), purpose=Purpose.GEOLOCATION_SERVICES, basis=LegalBasis.CONSENT)
    the_violation(feed(p, located), Rule.GEOLOCATION_WITHOUT_CONSENT, located, "2.1.8")


def test_geolocation_data_needs_its_consent_whatever_the_purpose() -> None:
    """[2.1.8] location data is collected only once accepted, even when processed for technical operations [3.11]."""
    p = processor_with()
    located = disclose(
        SUBJECT, CLOUDNEST, [C.USAGE_DATA, C.GEOLOCATION], at(0), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI
    )
    the_violation(feed(p, located), Rule.GEOLOCATION_WITHOUT_CONSENT, located, "2.1.8")


def test_geolocation_with_consent_is_allowed_and_after_withdrawal_is_not() -> None:
    """[2.1.8] accepted: allowed; [6] consent may be withdrawn at any time, after which it no longer covers."""
    p = processor_with()
    accepted = consent(SUBJECT, Purpose.GEOLOCATION_SERVICES, GRANTED, at(-2))
    during = disclose(SUBJECT, CLOUDNEST, [C.GEOLOCATION], at(-1), purpose=Purpose.GEOLOCATION_SERVICES, basis=LegalBasis.CONSENT)
    withdrawn = consent(SUBJECT, Purpose.GEOLOCATION_SERVICES, WITHDRAWN, at(0))
    after = disclose(SUBJECT, CLOUDNEST, [C.GEOLOCATION], at(1), purpose=Purpose.GEOLOCATION_SERVICES, basis=LegalBasis.CONSENT)
    no_violation(feed(p, accepted, during, withdrawn))
    the_violation(feed(p, after), Rule.GEOLOCATION_WITHOUT_CONSENT, after, "2.1.8", ignored=withdrawn)


# ------------------------------------------------------------------ recipients and their purposes [4.3, 4.4]


def test_disclosure_to_a_recipient_missing_from_the_registry_is_a_violation() -> None:
    """[4.3] "third-party companies, which may have access to your Personal Data" and [4.4] "We only share your data
    with the third parties mentioned in 4.3": a recipient nobody registered is none of them."""
    p = processor_with()
    sent = disclose(SUBJECT, "ghost-crm", [C.CONTACT], at(0), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI)
    changes = feed(p, sent)
    record = the_violation(changes, Rule.UNREGISTERED_RECIPIENT, sent, "4.3, 4.4")
    assert record["evidence_event_ids"] == [sent.record["event_id"]]
    assert record["recipient_id"] == "ghost-crm"
    assert changes.lineage[0]["recipient_id"] == "ghost-crm"  # the data still went there: the graph shows it


def test_disclosure_before_the_recipient_was_registered_is_a_violation_and_after_is_not() -> None:
    """[4.3, 4.4] the registry as of the event's time decides: a recipient registered on day 5 was no listed third
    party on day 1."""
    p = processor_with()
    early = disclose(
        SUBJECT, LATE_REGISTERED, [C.USAGE_DATA], at(days=1), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI
    )
    later = disclose(
        SUBJECT, LATE_REGISTERED, [C.USAGE_DATA], at(days=6), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI
    )
    the_violation(feed(p, early), Rule.UNREGISTERED_RECIPIENT, early, "4.3, 4.4")
    no_violation(feed(p, later))


def test_disclosure_after_the_recipient_was_off_boarded_is_a_violation() -> None:
    """[4.4] a third party receives data only while it is one of those the policy names; off-boarded, it is not."""
    off = RecipientSpec(
        CLOUDNEST.recipient_id, CLOUDNEST.kind, CLOUDNEST.country, CLOUDNEST.purposes, since=at(days=3), active=False
    )
    p = processor_with([CLOUDNEST, off])
    before = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(days=2), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    after = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(days=4), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    no_violation(feed(p, before))
    the_violation(feed(p, after), Rule.UNREGISTERED_RECIPIENT, after, "4.3, 4.4")


def test_purpose_the_recipient_is_not_registered_for_is_a_violation() -> None:
    """[4.4] "We only share your data with the third parties mentioned in 4.3 above in the following cases": a payment
    provider engaged for payments [4.3, 4.4.1] gets no data to improve the experience."""
    p = processor_with()
    allowed = disclose(
        SUBJECT,
        QUICKPAY,
        [C.BANKING, C.FINANCIAL_TRANSACTIONS],
        at(0),
        purpose=Purpose.CONTRACT_INTRODUCTIONS,
        basis=LegalBasis.CONTRACT,
    )
    misused = disclose(SUBJECT, QUICKPAY, [C.FINANCIAL_TRANSACTIONS], at(1), purpose=Purpose.EXPERIENCE_IMPROVEMENT, basis=LI)
    no_violation(feed(p, allowed))
    record = the_violation(feed(p, misused), Rule.PURPOSE_NOT_REGISTERED, misused, "4.4")
    assert record["purpose"] == Purpose.EXPERIENCE_IMPROVEMENT.value


# ------------------------------------------------------------------ partner aggregation [4.4.7]


def test_partner_aggregation_without_consent_is_a_violation() -> None:
    """[4.4.7] "with your consent where required, we may aggregate data concerning you that we receive or send to our
    business partners"."""
    p = processor_with()
    shared = disclose(
        SUBJECT, PARTNER, [C.USAGE_DATA, C.PROFESSIONAL_CV], at(0), purpose=Purpose.PARTNER_AGGREGATION, basis=LegalBasis.CONSENT
    )
    the_violation(feed(p, shared), Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT, shared, "4.4.7")


def test_partner_aggregation_with_consent_is_allowed_and_after_withdrawal_is_not() -> None:
    """[4.4.7] with consent: allowed; [6] once withdrawn, not any more."""
    p = processor_with()
    granted = consent(SUBJECT, Purpose.PARTNER_AGGREGATION, GRANTED, at(-2))
    ok = disclose(SUBJECT, PARTNER, [C.USAGE_DATA], at(-1), purpose=Purpose.PARTNER_AGGREGATION, basis=LegalBasis.CONSENT)
    withdrawn = consent(SUBJECT, Purpose.PARTNER_AGGREGATION, WITHDRAWN, at(0), channel=ConsentChannel.CONTACT_REQUEST)
    late = disclose(SUBJECT, PARTNER, [C.USAGE_DATA], at(1), purpose=Purpose.PARTNER_AGGREGATION, basis=LegalBasis.CONSENT)
    no_violation(feed(p, granted, ok))
    the_violation(feed(p, withdrawn, late), Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT, late, "4.4.7", ignored=withdrawn)


# ------------------------------------------------------------------ erasure [12]


def test_processing_after_erasure_is_a_violation_citing_the_erasure() -> None:
    """[12] "We guarantee the right to erasure ... upon their first request": once erased, the data is not processed."""
    p = processor_with()
    requested = erasure(SUBJECT, RequestStatus.REQUESTED, at(-2))
    fulfilled = erasure(SUBJECT, RequestStatus.FULFILLED, at(0))
    before = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(-1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    after = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    no_violation(feed(p, requested, before, fulfilled))
    record = the_violation(feed(p, after), Rule.PROCESSING_AFTER_ERASURE, after, "12")
    assert record["evidence_event_ids"] == [after.record["event_id"], fulfilled.record["event_id"]]


def test_a_request_alone_does_not_stop_processing() -> None:
    """[12] the erasure is carried out on request; until it is fulfilled, processing goes on."""
    p = processor_with()
    requested = erasure(SUBJECT, RequestStatus.REQUESTED, at(0))
    after = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    no_violation(feed(p, requested, after))


def test_processing_a_legal_obligation_requires_continues_after_erasure() -> None:
    """[2.3.2] financial data "retained for the duration required by applicable legislation" and [4.4.4] "When we are
    legally obligated to do so ... (ii) for complying with any judicial requests": exempt from erasure."""
    p = processor_with()
    fulfilled = erasure(SUBJECT, RequestStatus.FULFILLED, at(0))
    court = disclose(
        SUBJECT,
        TRIBUNAL,
        [C.IDENTITY, C.CORRESPONDENCE],
        at(1),
        purpose=Purpose.LEGAL_OBLIGATION_COMPLIANCE,
        basis=LegalBasis.LEGAL_OBLIGATION,
    )
    accounting = disclose(
        SUBJECT,
        QUICKPAY,
        [C.FINANCIAL_TRANSACTIONS],
        at(2),
        purpose=Purpose.LEGAL_OBLIGATION_COMPLIANCE,
        basis=LegalBasis.LEGAL_OBLIGATION,
    )
    no_violation(feed(p, fulfilled, court, accounting))


def test_late_erasure_fulfilment_flags_later_processing_that_arrived_earlier() -> None:
    """[12] the erasure was carried out at 09:00; processing at 10:00 that reached us before the fulfilment event is
    still processing after erasure."""
    p = processor_with()
    after = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    legal = disclose(
        SUBJECT, TRIBUNAL, [C.IDENTITY], at(2), purpose=Purpose.LEGAL_OBLIGATION_COMPLIANCE, basis=LegalBasis.LEGAL_OBLIGATION
    )
    before = disclose(SUBJECT, CLOUDNEST, [C.DEVICE_NETWORK], at(-1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    no_violation(feed(p, after, legal, before))
    fulfilled = erasure(SUBJECT, RequestStatus.FULFILLED, at(0))
    late = feed(p, fulfilled)
    record = the_violation(late, Rule.PROCESSING_AFTER_ERASURE, after, "12")
    assert record["evidence_event_ids"] == [after.record["event_id"], fulfilled.record["event_id"]]


def test_an_earlier_fulfilment_arriving_late_moves_the_erasure_back() -> None:
    """[12] what counts is when the data was erased: a fulfilment at 09:00 arriving after one at 11:00 makes
    processing at 10:00 a violation, now citing the 09:00 fulfilment."""
    p = processor_with()
    second = erasure(SUBJECT, RequestStatus.FULFILLED, at(2), request="req-2")
    between = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    after_both = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(3), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    first = erasure(SUBJECT, RequestStatus.FULFILLED, at(0), request="req-1")
    changes = feed(p, second, between, after_both, first)
    active = active_verdicts(changes.violations)
    assert {r["evidence_event_ids"][0]: r["evidence_event_ids"][1] for r in active.values()} == {
        between.record["event_id"]: first.record["event_id"],
        after_both.record["event_id"]: first.record["event_id"],
    }


# ------------------------------------------------------------------ every violation names what a DPO needs


def test_every_rule_is_reachable_and_every_violation_is_complete() -> None:
    """[3.8, 6, 2.2.1, 7, 4.1, 2.1.9, 3.10, 2.1.8, 4.3, 4.4, 4.4.7, 12]: one offending event per rule, all about one
    subject, in one run; each violation carries rule, section, subject, time, recipient and evidence."""
    p = processor_with()
    offending = {
        Rule.MARKETING_WITHOUT_CONSENT: newsletter(SUBJECT, at(0)),
        Rule.COOKIE_WITHOUT_CONSENT: cookie(SUBJECT, METRICLY, CookieCategory.ANALYTICS, at(0)),
        Rule.TRANSFER_WITHOUT_MECHANISM: disclose(
            SUBJECT, NO_MECHANISM, [C.USAGE_DATA], at(0), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI
        ),
        Rule.NON_PROFESSIONAL_DATA_TO_USERS: disclose(
            SUBJECT, OTHER_USERS, [C.CONTACT], at(0), purpose=Purpose.PROFILE_MATCHING, basis=LegalBasis.CONTRACT
        ),
        Rule.IDENTITY_DOCUMENT_MISUSE: disclose(
            SUBJECT, CLOUDNEST, [C.IDENTITY_DOCUMENTS], at(0), purpose=Purpose.SECURITY_FRAUD_PREVENTION, basis=LI, name="id-docs"
        ),
        Rule.GEOLOCATION_WITHOUT_CONSENT: disclose(
            SUBJECT, CLOUDNEST, [C.GEOLOCATION], at(0), purpose=Purpose.GEOLOCATION_SERVICES, basis=LegalBasis.CONSENT, name="geo"
        ),
        Rule.UNREGISTERED_RECIPIENT: disclose(
            SUBJECT, "ghost-crm", [C.CONTACT], at(0), purpose=Purpose.TECHNICAL_OPERATIONS_ANALYTICS, basis=LI
        ),
        Rule.PURPOSE_NOT_REGISTERED: disclose(
            SUBJECT, QUICKPAY, [C.FINANCIAL_TRANSACTIONS], at(0), purpose=Purpose.EXPERIENCE_IMPROVEMENT, basis=LI
        ),
        Rule.PARTNER_AGGREGATION_WITHOUT_CONSENT: disclose(
            SUBJECT, PARTNER, [C.USAGE_DATA], at(0), purpose=Purpose.PARTNER_AGGREGATION, basis=LegalBasis.CONSENT
        ),
        Rule.PROCESSING_AFTER_ERASURE: disclose(
            SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(days=2), purpose=Purpose.SITE_OPTIMISATION, basis=LI
        ),
    }
    # Issue 24's rules judge no single processing: request_overdue a request at a tick (tests/unit/core/test_requests.py),
    # consent_not_renewed a consent across a policy change, after this subject's erasure (test_policy_transition.py) [13].
    assert set(offending) == set(Rule) - {Rule.UNKNOWN, Rule.REQUEST_OVERDUE, Rule.CONSENT_NOT_RENEWED}
    changes = feed(p, *offending.values(), erasure(SUBJECT, RequestStatus.FULFILLED, at(days=1)))
    final = final_verdicts(changes.violations)
    by_event = {(r["rule"], r["evidence_event_ids"][0]): r for r in final.values() if r["active"]}
    assert set(by_event) == {(rule.value, e.record["event_id"]) for rule, e in offending.items()}
    for record in final.values():
        assert record["subject_id"] == SUBJECT
        assert record["policy_section"] and record["detail"]
        assert len(set(record["evidence_event_ids"])) == len(record["evidence_event_ids"])
    for rule, event in offending.items():
        record = by_event[(rule.value, event.record["event_id"])]
        assert record["occurred_at"] == event.record["occurred_at"]
        expected_recipient = event.record.get("recipient_id") or event.record.get("processor_id") or event.record.get("vendor_id")
        assert record["recipient_id"] == expected_recipient
