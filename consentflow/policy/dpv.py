"""Our vocabulary in the terms of the W3C Data Privacy Vocabulary (DPV) and its GDPR extension.

Exports meant for other systems (the subject's access and portability export
[8.1, 12; GDPR Art. 15, 20], ISO/IEC TS 27560 consent records) speak DPV: consent
states as ``dpv:`` concepts, lawful bases and transfer safeguards as the GDPR
articles they come from (``eu-gdpr:``, https://w3id.org/dpv/legal/eu/gdpr#).
Every member of the mapped enums has an entry, so a symbol added to the
vocabulary cannot be exported unmapped (``tests/unit/policy/test_dpv.py``); ``None`` says the
concept has no counterpart (no third-country transfer, nothing framing one).
"""

from __future__ import annotations

from consentflow.policy.vocabulary import ConsentAction, ConsentState, LegalBasis, TransferMechanism

#: Prefixes of the compact terms below.
PREFIXES = {"dpv": "https://w3id.org/dpv#", "eu-gdpr": "https://w3id.org/dpv/legal/eu/gdpr#"}

CONSENT_GIVEN = "dpv:ConsentGiven"
CONSENT_WITHDRAWN = "dpv:ConsentWithdrawn"
CONSENT_REFUSED = "dpv:ConsentRefused"
CONSENT_UNKNOWN = "dpv:ConsentUnknown"

#: Where a purpose's consent stands [6]; a purpose never asked about has no known consent.
CONSENT_STATE_TERMS: dict[ConsentState, str] = {
    ConsentState.GRANTED: CONSENT_GIVEN,
    ConsentState.WITHDRAWN: CONSENT_WITHDRAWN,
    ConsentState.REFUSED: CONSENT_REFUSED,
    ConsentState.NEVER_ASKED: CONSENT_UNKNOWN,
}

#: The state a consent event leaves [6, 13]; ``unknown`` is the Avro fallback of a newer action.
CONSENT_ACTION_TERMS: dict[ConsentAction, str] = {
    ConsentAction.GRANTED: CONSENT_GIVEN,
    ConsentAction.WITHDRAWN: CONSENT_WITHDRAWN,
    ConsentAction.REFUSED: CONSENT_REFUSED,
    ConsentAction.UNKNOWN: CONSENT_UNKNOWN,
}

#: Lawful bases, GDPR Art. 6(1) (a) to (f).
LEGAL_BASIS_TERMS: dict[LegalBasis, str | None] = {
    LegalBasis.CONSENT: "eu-gdpr:A6-1-a",
    LegalBasis.CONTRACT: "eu-gdpr:A6-1-b",
    LegalBasis.LEGAL_OBLIGATION: "eu-gdpr:A6-1-c",
    LegalBasis.VITAL_INTEREST: "eu-gdpr:A6-1-d",
    LegalBasis.LEGITIMATE_INTEREST: "eu-gdpr:A6-1-f",
    LegalBasis.UNKNOWN: None,  # no basis the policy names
}

#: What frames a transfer outside the EU/EEA, GDPR Chapter V [7].
TRANSFER_MECHANISM_TERMS: dict[TransferMechanism, str | None] = {
    TransferMechanism.ADEQUACY: "eu-gdpr:A45-3",  # adequacy decision
    TransferMechanism.SCC: "eu-gdpr:A46-2-c",  # standard contractual clauses of the Commission [7]
    TransferMechanism.BCR: "eu-gdpr:A46-2-b",  # binding corporate rules (approved under Art. 47)
    TransferMechanism.DEROGATION: "eu-gdpr:A49-1",  # derogations for specific situations
    TransferMechanism.WITHIN_EEA: None,  # no third-country transfer: Chapter V does not arise
    TransferMechanism.NONE: None,  # nothing frames the transfer
    TransferMechanism.UNKNOWN: None,  # an unregistered recipient: nobody can say
}

#: Every term this module can produce, for the export's JSON Schema enums.
CONSENT_TERMS = tuple(sorted(set(CONSENT_STATE_TERMS.values()) | set(CONSENT_ACTION_TERMS.values())))
LEGAL_BASIS_VALUES = tuple(sorted({t for t in LEGAL_BASIS_TERMS.values() if t is not None}))
TRANSFER_VALUES = tuple(sorted({t for t in TRANSFER_MECHANISM_TERMS.values() if t is not None}))


def consent_state_term(state: str) -> str:
    """The DPV consent status of a ``ConsentState`` value; anything else (a newer symbol) is unknown."""
    try:
        return CONSENT_STATE_TERMS[ConsentState(state)]
    except ValueError:
        return CONSENT_UNKNOWN


def consent_action_term(action: str) -> str:
    """The DPV consent status a ``ConsentAction`` value leaves."""
    try:
        return CONSENT_ACTION_TERMS[ConsentAction(action)]
    except ValueError:
        return CONSENT_UNKNOWN


def legal_basis_term(basis: str) -> str | None:
    """The GDPR Art. 6(1) point of a ``LegalBasis`` value, None when there is none."""
    try:
        return LEGAL_BASIS_TERMS[LegalBasis(basis)]
    except ValueError:
        return None


def transfer_term(mechanism: str) -> str | None:
    """The GDPR Chapter V provision framing a transfer under a ``TransferMechanism`` value, None when none does."""
    try:
        return TRANSFER_MECHANISM_TERMS[TransferMechanism(mechanism)]
    except ValueError:
        return None
