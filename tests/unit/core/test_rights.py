"""Rights of the data subject [8, 12]: erasure notices to recipients, and the access export.

Erasure [12; GDPR Art. 17, 19]: once an erasure is carried out, every recipient that received the subject's
data before it is told which categories to erase; financial data kept for the legal period [2.3.2] is named
as retained; "other users" [4.1] are no single party to notify. Access [8.1; GDPR Art. 15, 20]: everything
known about the subject, with the evidence of every consent decision: computed by the tests' reference model
(``tests/support/access_export.py``), which ``tests/unit/sinks/test_reference_models.py`` holds the product's export against.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consentflow.contracts import events
from consentflow.contracts.events import Event, MechanismPeriod
from consentflow.core.processor import Processor
from consentflow.policy.vocabulary import (
    AccountKind,
    ConsentAction,
    ConsentChannel,
    DataCategory,
    LegalBasis,
    ProfileAction,
    Purpose,
    RecipientKind,
    RequestStatus,
    Right,
    TransferMechanism,
)
from tests.support.access_export import access_export_of
from tests.support.builders import (
    CLOUDNEST,
    CUSTOMER,
    GROUP_DE,
    LATE_SCC,
    OTHER_USERS,
    POSTWAVE,
    QUICKPAY,
    TRIBUNAL,
    RecipientSpec,
    at,
    consent,
    crash_and_replay,
    disclose,
    eid,
    feed,
    highest_revisions,
    newsletter,
    processor_with,
)

SUBJECT = "cand-000777"
C = DataCategory
LI = LegalBasis.LEGITIMATE_INTEREST
REQUESTED_AT = at(days=-3)
FULFILLED_AT = at(days=0)
REGISTRY = (POSTWAVE, CLOUDNEST, QUICKPAY, OTHER_USERS, CUSTOMER, GROUP_DE, TRIBUNAL, LATE_SCC)


def rights(right: Right, status: RequestStatus, when: datetime, request: str = "req-erase-1") -> Event:
    """A rights request or its outcome."""
    return events.rights_event(
        SUBJECT,
        right,
        status,
        request_id=request,
        source_service="support",
        occurred_at=when,
        event_id=eid(SUBJECT, "rights", request, status),
    )


def history() -> list[Event]:
    """The subject's life before the erasure: registration, marketing consent, disclosures to seven recipients."""
    return [
        events.profile_event(
            SUBJECT,
            ProfileAction.REGISTERED,
            account_kind=AccountKind.APPLICANT,
            categories=[C.IDENTITY, C.CONTACT, C.PROFESSIONAL_CV, C.BANKING],
            source_service="registration",
            occurred_at=at(days=-60),
            event_id=eid(SUBJECT, "registered"),
        ),
        consent(SUBJECT, Purpose.MARKETING, ConsentAction.GRANTED, at(days=-60), channel=ConsentChannel.REGISTRATION_FORM),
        newsletter(SUBJECT, at(days=-30)),  # contact, to postwave
        disclose(
            SUBJECT,
            CUSTOMER,
            [C.PROFESSIONAL_CV, C.HARD_SKILLS],
            at(days=-20),
            purpose=Purpose.PROFILE_MATCHING,
            basis=LegalBasis.CONTRACT,
        ),
        disclose(
            SUBJECT, OTHER_USERS, [C.PROFESSIONAL_CV], at(days=-20), purpose=Purpose.PROFILE_MATCHING, basis=LegalBasis.CONTRACT
        ),
        disclose(
            SUBJECT,
            QUICKPAY,
            [C.BANKING, C.FINANCIAL_TRANSACTIONS],
            at(days=-10),
            purpose=Purpose.CONTRACT_INTRODUCTIONS,
            basis=LegalBasis.CONTRACT,
        ),
        disclose(SUBJECT, QUICKPAY, [C.IDENTITY], at(days=-9), purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT),
        disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA, C.DEVICE_NETWORK], at(days=-5), purpose=Purpose.SITE_OPTIMISATION, basis=LI),
        rights(Right.ERASURE, RequestStatus.REQUESTED, REQUESTED_AT),
    ]


def after_erasure() -> list[Event]:
    """What happens after the erasure: a court order (exempt) and a disclosure to a recipient that never had data."""
    return [
        disclose(
            SUBJECT,
            TRIBUNAL,
            [C.IDENTITY],
            at(days=2),
            purpose=Purpose.LEGAL_OBLIGATION_COMPLIANCE,
            basis=LegalBasis.LEGAL_OBLIGATION,
        ),
    ]


def sent_before(items: list[Event], recipient: str, erased: datetime) -> int:
    """How many of ``items`` sent the subject's data to ``recipient`` at or before ``erased``."""
    return sum(
        1
        for e in items
        if e.record["occurred_at"] <= erased
        and recipient in (e.record.get("recipient_id"), e.record.get("processor_id"), e.record.get("vendor_id"))
    )


def notices_by_recipient(records: list[dict[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest notice per recipient (highest revision)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for notice in records:
        known = latest.get(notice["recipient_id"])
        if known is None or notice["revision"] > known["revision"]:
            latest[notice["recipient_id"]] = notice
    return latest


def test_erasure_sends_one_notice_per_recipient_that_received_data_before_it() -> None:
    """[12] "We guarantee the right to erasure" and "We undertake to ensure that any subcontractors we work with can
    comply with these measures": every recipient of the subject's data before the erasure is told what to erase;
    [4.1] other users are no party to notify; [2.3.2] financial data is retained for the legal period."""
    p = processor_with(REGISTRY)
    feed(p, *history())
    fulfilled = feed(p, rights(Right.ERASURE, RequestStatus.FULFILLED, FULFILLED_AT))
    notices = fulfilled.erasure_notices
    by_recipient = {n["recipient_id"]: n for n in notices}
    assert len(by_recipient) == len(notices), "one notice per recipient"
    assert sorted(by_recipient) == sorted(["postwave", CUSTOMER.recipient_id, "quickpay", "cloudnest"])
    expected = {
        "postwave": (["contact"], []),
        CUSTOMER.recipient_id: (["hard_skills", "professional_cv"], []),
        "quickpay": (["identity"], ["banking", "financial_transactions"]),
        "cloudnest": (["device_network", "usage_data"], []),
    }
    for recipient, (erase, retained) in expected.items():
        notice = by_recipient[recipient]
        assert (sorted(notice["categories"]), sorted(notice["retained_categories"])) == (erase, retained), recipient
        assert notice["subject_id"] == SUBJECT
        assert notice["request_id"] == "req-erase-1"
        assert notice["requested_at"] == REQUESTED_AT
        assert notice["fulfilled_at"] == FULFILLED_AT
        # The revision counts what the notice rests on: two erasure events (request, fulfilment),
        # then the recipient's processings up to the erasure.
        assert divmod(notice["revision"], 2**32) == (2, sent_before(history(), recipient, FULFILLED_AT)), recipient
    assert len({n["notice_id"] for n in notices}) == len(notices)
    # After the erasure: the exempt court order is no processing after erasure and earns no notice.
    later = feed(p, *after_erasure())
    assert not later.erasure_notices and not [v for v in later.violations if v["active"]]


def test_categories_sent_after_the_erasure_are_not_in_the_notice() -> None:
    """[12] the notice covers what the recipient received before the erasure was carried out."""
    p = processor_with(REGISTRY)
    feed(p, *history())
    after = disclose(SUBJECT, CLOUDNEST, [C.CORRESPONDENCE], at(days=1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    changes = feed(p, after, rights(Right.ERASURE, RequestStatus.FULFILLED, FULFILLED_AT))
    (cloudnest,) = [n for n in changes.erasure_notices if n["recipient_id"] == "cloudnest"]
    assert sorted(cloudnest["categories"]) == ["device_network", "usage_data"]


def test_a_late_disclosure_from_before_the_erasure_widens_that_recipients_notice() -> None:
    """[12; GDPR Art. 19] a disclosure made before the erasure that reaches us after it: the recipient must erase that
    too — the same notice again (same id) with a higher revision and the wider categories."""
    p = processor_with(REGISTRY)
    feed(p, *history())
    first = notices_by_recipient(feed(p, rights(Right.ERASURE, RequestStatus.FULFILLED, FULFILLED_AT)).erasure_notices)
    late = disclose(
        SUBJECT, CLOUDNEST, [C.CORRESPONDENCE, C.USAGE_DATA], at(days=-1), purpose=Purpose.SITE_OPTIMISATION, basis=LI
    )
    changes = feed(p, late)
    (widened,) = changes.erasure_notices
    assert widened["recipient_id"] == "cloudnest"
    assert widened["notice_id"] == first["cloudnest"]["notice_id"]
    assert widened["revision"] > first["cloudnest"]["revision"]
    assert sorted(widened["categories"]) == ["correspondence", "device_network", "usage_data"]
    assert not [v for v in changes.violations if v["active"]]  # before the erasure: allowed
    # Re-delivered, it changes nothing.
    assert not feed(p, late)
    # A late disclosure that adds no category re-issues the same notice with a higher revision: a notice a
    # crashed worker issued on fewer facts can never outrank the one on everything known.
    same = disclose(SUBJECT, CLOUDNEST, [C.USAGE_DATA], at(days=-2), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    (reissued,) = feed(p, same).erasure_notices
    assert reissued["notice_id"] == widened["notice_id"]
    assert sorted(reissued["categories"]) == sorted(widened["categories"])
    assert reissued["revision"] == widened["revision"] + 1


def test_a_late_disclosure_to_a_new_recipient_gets_its_own_notice() -> None:
    """[12; GDPR Art. 19] a recipient we learn about only after the erasure is notified as well."""
    p = processor_with(REGISTRY)
    feed(p, *history(), rights(Right.ERASURE, RequestStatus.FULFILLED, FULFILLED_AT))
    late = disclose(
        SUBJECT, GROUP_DE, [C.IDENTITY, C.CONTACT], at(days=-4), purpose=Purpose.CONTRACT_INTRODUCTIONS, basis=LegalBasis.CONTRACT
    )
    (notice,) = feed(p, late).erasure_notices
    assert (notice["recipient_id"], sorted(notice["categories"]), notice["revision"]) == (
        GROUP_DE.recipient_id,
        ["contact", "identity"],
        (2 << 32) | 1,  # two erasure events (request, fulfilment); one processing to it before the erasure
    )


def test_no_notice_before_the_erasure_is_carried_out() -> None:
    """[12] a request alone is not yet an erasure: recipients are told once it is done."""
    p = processor_with(REGISTRY)
    assert not feed(p, *history()).erasure_notices


# ------------------------------------------------------------------------------- access [8.1]


def test_access_export_holds_consent_history_with_evidence_recipients_and_retention() -> None:
    """[8.1] "you have the right to obtain a copy of your personal data that we hold"; [7] "the list of countries where
    we store your data and those where it is occasionally sent"; [6] every consent decision with its evidence."""
    p = processor_with(REGISTRY)
    withdrawn = events.consent_withdrawn(
        SUBJECT,
        Purpose.MARKETING,
        channel=ConsentChannel.UNSUBSCRIBE_LINK,
        source_service="mailing",
        notice_id="notice-marketing-v1",
        occurred_at=at(days=-15),
        event_id=eid(SUBJECT, "unsubscribe"),
    )
    early_offer = events.message_sent(
        SUBJECT,
        "marketing_offer",
        channel="email",
        purpose=Purpose.MARKETING,
        processor_id=LATE_SCC.recipient_id,
        source_service="mailing",
        occurred_at=at(days=-40),
        event_id=eid(SUBJECT, "offer"),
    )
    life = history()
    feed(p, withdrawn, *life[:3], early_offer, *life[3:])  # the withdrawal arrives first
    export = access_export_of(p, SUBJECT, as_of=at(days=1))
    assert export is not None
    assert export["subject_id"] == SUBJECT
    assert export["as_of"] == at(days=1)
    marketing = export["consents"]["marketing"]
    granted_event = life[1]
    assert [(c["event_id"], c["action"]) for c in marketing] == [
        (granted_event.record["event_id"], "granted"),
        (withdrawn.record["event_id"], "withdrawn"),
    ]  # in event time, whatever the arrival order
    assert (
        marketing[1]["occurred_at"],
        marketing[1]["channel"],
        marketing[1]["policy_version"],
        marketing[1]["source_service"],
    ) == (
        at(days=-15),
        "unsubscribe_link",
        "2020-11-14",
        "mailing",
    )
    assert marketing[0]["channel"] == "registration_form" and marketing[0]["notice_id"] == "notice-marketing-v1"

    recipients = {r["recipient_id"]: r for r in export["recipients"]}
    assert set(recipients) == {"postwave", CUSTOMER.recipient_id, "other-users", "quickpay", "cloudnest", LATE_SCC.recipient_id}
    assert (recipients["postwave"]["country"], recipients["postwave"]["transfer_mechanism"]) == ("US", "scc")
    assert (recipients["cloudnest"]["country"], recipients["cloudnest"]["transfer_mechanism"]) == ("IE", "within_eea")
    # Sent before its SCCs were signed: nothing framed that transfer [7].
    assert (recipients[LATE_SCC.recipient_id]["country"], recipients[LATE_SCC.recipient_id]["transfer_mechanism"]) == (
        "US",
        "none",
    )
    assert sorted(recipients["quickpay"]["categories"]) == ["banking", "financial_transactions", "identity"]
    assert (recipients["quickpay"]["first_sent"], recipients["quickpay"]["last_sent"]) == (at(days=-10), at(days=-9))
    assert recipients["quickpay"]["purposes"] == ["contract_introductions"]
    # Stored: the policy's country, and CloudNest's, a technical subcontractor hosting the platform [7, 4.3].
    assert export["countries"] == {"stored": ["FR", CLOUDNEST.country], "sent": ["DE", "FR", "IE", "US"]}

    assert {"identity", "contact", "professional_cv", "banking", "usage_data"} <= set(export["categories_held"])
    # [2.3.1] open account: archived three years after the last use, the registration here (7 March 2024): kept
    # through 7 March 2027 in Paris, archived at 00:00 Paris (23:00 UTC) on the day after.
    assert at(days=-60) == datetime(2024, 3, 7, 9, tzinfo=UTC)
    assert export["retention"]["archive_at"] == datetime(2027, 3, 7, 23, tzinfo=UTC)
    assert export["retention"]["section"] == "2.3.1"
    assert {a["action"] for a in export["retention"]["planned"]} == {"archive", "keep_for_legal_period", "delete"}
    assert [(r["request_id"], r["right"]) for r in export["requests"]] == [("req-erase-1", "erasure")]


def test_access_export_names_the_mechanism_that_framed_the_last_transfer() -> None:
    """[7] a recipient's registry entry was later replaced (new SCCs from day 20): the export says what framed the
    transfers when they happened, as the lineage graph does, not what the newest entry says about that day."""
    first = RecipientSpec(
        "renewco",
        RecipientKind.TECHNICAL_SUBCONTRACTOR,
        "US",
        (Purpose.SITE_OPTIMISATION,),
        (MechanismPeriod(TransferMechanism.SCC, at(days=-100)),),
    )
    renewed = RecipientSpec(
        "renewco",
        RecipientKind.TECHNICAL_SUBCONTRACTOR,
        "US",
        (Purpose.SITE_OPTIMISATION,),
        (MechanismPeriod(TransferMechanism.SCC, at(days=20)),),
        since=at(days=20),
    )
    p = processor_with([first, renewed])
    changes = feed(p, disclose(SUBJECT, "renewco", [C.USAGE_DATA], at(days=5), purpose=Purpose.SITE_OPTIMISATION, basis=LI))
    assert changes.lineage[0]["transfer_mechanism"] == "scc"
    export = access_export_of(p, SUBJECT, as_of=at(days=30))
    assert export is not None
    (recipient,) = export["recipients"]
    assert (recipient["country"], recipient["transfer_mechanism"]) == ("US", "scc")


def test_access_export_of_an_unknown_subject_is_none() -> None:
    """[8.1] nothing held, nothing to export."""
    p = processor_with(REGISTRY)
    feed(p, *history())
    assert access_export_of(p, "cand-999999", as_of=at(0)) is None
    assert access_export_of(Processor(), SUBJECT, as_of=at(0)) is None


def test_access_export_as_of_a_past_instant_shows_what_stood_then() -> None:
    """[8.1] a copy of the data "that we hold": asked as of a past instant, the export shows the consent history and the
    recipients up to that instant, not what came later."""
    p = processor_with(REGISTRY)
    withdrawn = events.consent_withdrawn(
        SUBJECT,
        Purpose.MARKETING,
        channel=ConsentChannel.UNSUBSCRIBE_LINK,
        source_service="mailing",
        occurred_at=at(days=-15),
        event_id=eid(SUBJECT, "unsubscribe-as-of"),
    )
    feed(p, *history(), withdrawn)
    then = at(days=-20)
    export = access_export_of(p, SUBJECT, as_of=then)
    assert export is not None
    assert [c["action"] for c in export["consents"]["marketing"]] == ["granted"]
    assert all(c["occurred_at"] <= then for facts in export["consents"].values() for c in facts)
    now = access_export_of(p, SUBJECT, as_of=at(days=1))
    assert now is not None
    assert [c["action"] for c in now["consents"]["marketing"]] == ["granted", "withdrawn"]
    # quickpay first received data at day -10: unknown as of day -20.
    assert "quickpay" not in {r["recipient_id"] for r in export["recipients"]}
    assert "quickpay" in {r["recipient_id"] for r in now["recipients"]}
    assert all(r["last_sent"] <= then for r in export["recipients"])


# ------------------------------------------------------------------------------- crash and replay


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_notices_issued_by_a_crashed_worker_never_outrank_the_notice_on_everything(data: st.DataObject) -> None:
    """[12; GDPR Art. 19] A worker is killed part-way (its state saved a little earlier); a successor replays the rest
    in another order. For every notice id, the notices at the highest revision agree, and equal the notice a single
    uninterrupted run ends with."""
    late = disclose(SUBJECT, CLOUDNEST, [C.CORRESPONDENCE], at(days=-1), purpose=Purpose.SITE_OPTIMISATION, basis=LI)
    everything = [
        *history(),
        late,
        rights(Right.ERASURE, RequestStatus.FULFILLED, FULFILLED_AT),
        *after_erasure(),
    ]
    reference = processor_with(REGISTRY)
    final: dict[str, Mapping[str, Any]] = {}
    for notice in feed(reference, *everything).erasure_notices:
        final[notice["notice_id"]] = notice  # one run: each re-issue supersedes the one before

    issued = crash_and_replay(REGISTRY, everything, data.draw).erasure_notices
    top = highest_revisions(issued, "notice_id")
    content = ("categories", "retained_categories", "request_id", "requested_at", "fulfilled_at", "recipient_id")
    for notices in top.values():
        assert len({tuple(str(n[f]) for f in content) for n in notices}) == 1, notices
    assert {nid: tuple(str(ns[0][f]) for f in content) for nid, ns in top.items()} == {
        nid: tuple(str(n[f]) for f in content) for nid, n in final.items()
    }
