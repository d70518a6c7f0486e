"""Every symbol of our vocabulary that an export carries has its W3C DPV / GDPR term, and the right one."""

from __future__ import annotations

from enum import StrEnum

import pytest

from consentflow.policy import dpv
from consentflow.policy.vocabulary import ConsentAction, ConsentState, LegalBasis, TransferMechanism


@pytest.mark.parametrize(
    ("enum", "mapping"),
    [
        (ConsentState, dpv.CONSENT_STATE_TERMS),
        (ConsentAction, dpv.CONSENT_ACTION_TERMS),
        (LegalBasis, dpv.LEGAL_BASIS_TERMS),
        (TransferMechanism, dpv.TRANSFER_MECHANISM_TERMS),
    ],
)
def test_every_member_of_the_vocabulary_is_mapped(enum: type[StrEnum], mapping: dict[StrEnum, str | None]) -> None:
    """A member added to the vocabulary fails here until it is given its DPV term (or an explicit None)."""
    assert set(mapping) == set(enum)


def test_terms_are_prefixed_names_of_the_two_vocabularies() -> None:
    terms = [*dpv.CONSENT_STATE_TERMS.values(), *dpv.CONSENT_ACTION_TERMS.values()]
    terms += [t for t in (*dpv.LEGAL_BASIS_TERMS.values(), *dpv.TRANSFER_MECHANISM_TERMS.values()) if t is not None]
    assert terms and all(t.split(":", 1)[0] in dpv.PREFIXES for t in terms)


def test_consent_states_and_the_actions_that_leave_them_agree() -> None:
    """A fact's action and the state it leaves carry the same DPV status [6]."""
    for action in (ConsentAction.GRANTED, ConsentAction.WITHDRAWN, ConsentAction.REFUSED):
        assert dpv.consent_action_term(action) == dpv.consent_state_term(ConsentState(action.value))
    # What the GDPR and DPV call these (Art. 4(11), 7(3)); "never asked" is no known consent.
    assert dpv.consent_state_term("granted") == "dpv:ConsentGiven"
    assert dpv.consent_state_term("withdrawn") == "dpv:ConsentWithdrawn"
    assert dpv.consent_state_term("refused") == "dpv:ConsentRefused"
    assert dpv.consent_state_term("never_asked") == "dpv:ConsentUnknown"
    assert dpv.consent_action_term("a-symbol-from-a-newer-schema") == "dpv:ConsentUnknown"


def test_lawful_bases_are_the_points_of_article_6_1() -> None:
    assert [
        dpv.legal_basis_term(b) for b in ("consent", "contract", "legal_obligation", "vital_interest", "legitimate_interest")
    ] == [
        "eu-gdpr:A6-1-a",
        "eu-gdpr:A6-1-b",
        "eu-gdpr:A6-1-c",
        "eu-gdpr:A6-1-d",
        "eu-gdpr:A6-1-f",
    ]
    assert dpv.legal_basis_term("unknown") is None


def test_only_mechanisms_of_chapter_v_frame_a_transfer() -> None:
    """[7] SCCs are Art. 46(2)(c); inside the EU/EEA, or with nothing in force, no Chapter V provision applies."""
    assert dpv.transfer_term("scc") == "eu-gdpr:A46-2-c"
    assert dpv.transfer_term("adequacy") == "eu-gdpr:A45-3"
    assert dpv.transfer_term("bcr") == "eu-gdpr:A46-2-b"
    assert dpv.transfer_term("derogation") == "eu-gdpr:A49-1"
    assert [dpv.transfer_term(m) for m in ("within_eea", "none", "unknown", "not-a-mechanism")] == [None] * 4
