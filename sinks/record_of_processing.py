"""The record of processing activities (GDPR Art. 30), from the policy, the registry and the observed lineage.

One row per purpose and recipient: what the policy says of the purpose (legal
basis, consent, retention [2.3]), what the registry says of the recipient (kind,
country, transfer safeguards with their dates [7], the purposes it may serve
[4.3, 4.4]), and what the lineage shows actually happened (categories received,
countries, mechanisms in force, subjects, first and last transfer). A purpose
with no recipient gets one row of its own (internal processing). Observed
processing the policy or the registry does not describe is flagged in
``findings``, so the DPO sees where the record and reality part.

JSON and CSV carry the same rows (``ropa_csv``): lists in CSV cells are joined
with ``"; "``. Ids, categories, purposes, recipients and times only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consentflow.core.recipients import FRAMING_MECHANISMS, RecipientRegistry, RecipientVersion
from consentflow.policy.dpv import legal_basis_term, transfer_term
from consentflow.policy.geography import in_eea
from consentflow.policy.versions import Policy, load_policy
from consentflow.policy.vocabulary import AccountKind, Purpose
from consentflow.sinks.answers import jsonable
from consentflow.sinks.csv_cells import spreadsheet_safe
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc
from consentflow.sinks.registry_reading import registry_from_tables
from consentflow.sinks.transfers_filter import OUTSIDE_EEA, outside_eea_parameters

#: Where each purpose comes from in the policy.
PURPOSE_SECTIONS: dict[Purpose, str] = {
    Purpose.PROFILE_MATCHING: "3.1",
    Purpose.CONTRACT_INTRODUCTIONS: "3.2",
    Purpose.SERVICE_INFORMATION: "3.3",
    Purpose.PROFILE_PERSONALISATION: "3.4",
    Purpose.USER_COMMUNICATION: "3.5",
    Purpose.SUPPORT: "3.6",
    Purpose.COMPLIANCE_TERMS_ENFORCEMENT: "3.7",
    Purpose.MARKETING: "3.8, 6",
    Purpose.SERVICE_CHANGE_NOTICES: "3.9",
    Purpose.IDENTITY_VERIFICATION: "3.10",
    Purpose.TECHNICAL_OPERATIONS_ANALYTICS: "3.11",
    Purpose.SITE_OPTIMISATION: "3.12",
    Purpose.EXPERIENCE_IMPROVEMENT: "3.13",
    Purpose.SECURITY_FRAUD_PREVENTION: "3.14, 5",
    Purpose.MESSAGE_MODERATION: "5",
    Purpose.PARTNER_AGGREGATION: "4.4.7",
    Purpose.GEOLOCATION_SERVICES: "2.1.8",
    Purpose.OPTIONAL_PROFILE_FIELDS: "2.1.1, 2.1.2",
    Purpose.COOKIES_PREFERENCES: "2.2.1, 9",
    Purpose.COOKIES_ANALYTICS: "2.2.1, 4.4.2",
    Purpose.COOKIES_ADVERTISING: "2.2.1, 4.4.7",
    Purpose.COOKIES_SOCIAL_MEDIA: "2.2.1, 4.3",
    Purpose.LEGAL_OBLIGATION_COMPLIANCE: "2.3.2, 4.4.4",
    Purpose.UNKNOWN: "",
}

#: What the flags in ``findings`` mean.
FINDINGS = {
    "purpose_not_in_policy": "data was processed for a purpose the policy does not describe",
    "recipient_not_registered": "data reached a recipient the registry does not list [4.3, 4.4]",
    "purpose_not_registered_for_recipient": "the registry does not allow this recipient this purpose [4.4]",
    "transfer_without_safeguard": "data left the EU/EEA while no mechanism framed the transfer [7]",
    "legal_basis_differs": "processing ran under another legal basis than the policy gives the purpose",
}

#: The columns of a row, in CSV order.
COLUMNS = (
    "purpose",
    "policy_sections",
    "legal_basis",
    "gdpr_legal_basis",
    "consent_required",
    "data_subjects",
    "storage_countries",
    "retention",
    "recipient_id",
    "recipient_name",
    "recipient_kind",
    "registered",
    "purpose_registered",
    "country",
    "in_eea",
    "safeguards",
    "observed",
    "categories",
    "observed_countries",
    "observed_mechanisms",
    "observed_legal_bases",
    "subjects",
    "transfers",
    "transfers_without_safeguard",
    "first_transfer",
    "last_transfer",
    "findings",
)

_OBSERVED = f"""
SELECT purpose, recipient_id,
       argMax(recipient_kind, (occurred_at, edge_id)),
       arraySort(groupUniqArrayArray(categories)),
       arraySort(groupUniqArray(country)),
       arraySort(groupUniqArray(transfer_mechanism)),
       arraySort(groupUniqArray(legal_basis)),
       uniqExact(subject_id),
       count(),
       countIf({OUTSIDE_EEA} AND transfer_mechanism NOT IN {{framing:Array(String)}}),
       min(occurred_at),
       max(occurred_at)
FROM {{db:Identifier}}.lineage_edges FINAL
GROUP BY purpose, recipient_id
ORDER BY purpose, recipient_id
"""


@dataclass(frozen=True)
class Observed:
    """What the lineage shows for one purpose and recipient."""

    kind: str
    categories: tuple[str, ...]
    countries: tuple[str, ...]  # "" for a recipient outside the registry
    mechanisms: tuple[str, ...]
    legal_bases: tuple[str, ...]
    subjects: int
    transfers: int
    unframed: int  # transfers out of the EU/EEA that nothing framed
    first: datetime
    last: datetime


def observed_processing(reader: TableReader) -> dict[tuple[str, str], Observed]:
    """Per (purpose, recipient), what the lineage edges show; a redelivered edge counts once (``FINAL``)."""
    rows = reader.query(_OBSERVED, {**outside_eea_parameters(), "framing": sorted(m.value for m in FRAMING_MECHANISMS)})
    return {
        (purpose, recipient_id): Observed(
            kind,
            tuple(categories),
            tuple(countries),
            tuple(mechanisms),
            tuple(bases),
            int(subjects),
            int(edges),
            int(unframed),
            utc(first),
            utc(last),
        )
        for purpose, recipient_id, kind, categories, countries, mechanisms, bases, subjects, edges, unframed, first, last in rows
    }


def record_of_processing(reader: TableReader) -> dict[str, Any]:
    """The Art. 30 record: every purpose of the policy, each with every recipient the registry allows it or the lineage shows.

    Returns JSON-ready data: ``{"policy_version", "generated_at", "findings", "rows": [...]}``,
    each row with the ``COLUMNS`` keys, times as ISO-8601 UTC.
    """
    policy = load_policy()
    registry = registry_from_tables(reader)
    observed = observed_processing(reader)
    current = {r: v for r in registry.recipient_ids() if (v := registry.latest(r)) is not None and v.active}

    described = {p.value for p in policy.consent_required} | set(policy.legal_basis)
    purposes = sorted(described | {purpose for purpose, _ in observed})
    rows = []
    for purpose in purposes:
        recipients = {r for r, v in current.items() if purpose in v.allowed_purposes}
        recipients |= {r for p, r in observed if p == purpose}
        if not recipients:  # processed in house only: the purpose still has its row
            rows.append(_row(policy, registry, purpose, purpose in described, None, None))
        for recipient_id in sorted(recipients):
            seen = observed.get((purpose, recipient_id))
            rows.append(_row(policy, registry, purpose, purpose in described, recipient_id, seen))
    record = {"policy_version": policy.version, "generated_at": datetime.now(UTC), "findings": FINDINGS, "rows": rows}
    result: dict[str, Any] = jsonable(record)
    return result


def _row(
    policy: Policy, registry: RecipientRegistry, purpose: str, described: bool, recipient_id: str | None, seen: Observed | None
) -> dict[str, Any]:
    """One purpose and recipient (None: the purpose alone) as a record row, with its findings."""
    basis = policy.basis_of(purpose)
    version = None if recipient_id is None else registry.latest(recipient_id)
    registered = version is not None and version.active
    purpose_registered = registered and version is not None and purpose in version.allowed_purposes
    findings = []
    if seen is not None:
        if not described:
            findings.append("purpose_not_in_policy")
        if version is None:
            findings.append("recipient_not_registered")
        elif not purpose_registered:
            findings.append("purpose_not_registered_for_recipient")
        if seen.unframed:
            findings.append("transfer_without_safeguard")
        if policy.basis_differs(purpose, seen.legal_bases):
            findings.append("legal_basis_differs")
    country = version.country if version is not None else None
    return {
        "purpose": purpose,
        "policy_sections": _sections(purpose),
        "legal_basis": basis.value,
        "gdpr_legal_basis": legal_basis_term(basis),
        "consent_required": policy.needs_consent(purpose),
        "data_subjects": sorted(k.value for k in AccountKind if k is not AccountKind.UNKNOWN),  # [1, 3.1, 3.13]
        "storage_countries": sorted(policy.storage_countries),  # [7]
        "retention": _retention(policy, seen.categories if seen else ()),
        "recipient_id": recipient_id,
        "recipient_name": version.name if version else None,
        "recipient_kind": version.kind.value if version else (seen.kind if seen else None),
        "registered": registered if recipient_id is not None else None,
        "purpose_registered": purpose_registered if recipient_id is not None else None,
        "country": country,
        "in_eea": None if country is None else in_eea(country),
        "safeguards": _safeguards(version) if version is not None else [],
        "observed": seen is not None,
        "categories": list(seen.categories) if seen else [],
        "observed_countries": [c or "unknown" for c in seen.countries] if seen else [],
        "observed_mechanisms": [_mechanism(m) for m in seen.mechanisms] if seen else [],
        "observed_legal_bases": list(seen.legal_bases) if seen else [],
        "subjects": seen.subjects if seen else 0,
        "transfers": seen.transfers if seen else 0,
        "transfers_without_safeguard": seen.unframed if seen else 0,
        "first_transfer": seen.first if seen else None,
        "last_transfer": seen.last if seen else None,
        "findings": findings,
    }


def _sections(purpose: str) -> str:
    """The policy sections a purpose comes from; none for a symbol the vocabulary lacks."""
    try:
        return PURPOSE_SECTIONS[Purpose(purpose)]
    except ValueError:
        return ""


def _mechanism(mechanism: str) -> str:
    """A mechanism with the GDPR provision that frames it, e.g. ``scc (eu-gdpr:A46-2-c)``."""
    term = transfer_term(mechanism)
    return mechanism if term is None else f"{mechanism} ({term})"


def _safeguards(version: RecipientVersion) -> list[str]:
    """The registry's transfer mechanisms of a recipient with their validity [7]; none needed inside the EU/EEA."""
    if not version.outside_eea:
        return []
    return [
        f"{_mechanism(w.mechanism)} from {w.valid_from.isoformat()}"
        + (f" until {w.valid_until.isoformat()}" if w.valid_until else "")
        for w in version.mechanisms
    ]


def _retention(policy: Policy, categories: Sequence[str]) -> list[str]:
    """The time limits for erasure [2.3] (GDPR Art. 30(1)(f)) that apply to the categories processed, with the periods
    as the policy file states them (ISO 8601 durations, counted in the controller's calendar by Regulation 1182/71
    Art. 3: due at 00:00 on the day after the period's last day)."""
    r = policy.retention
    calendar = r.calendar
    zone = f"days counted in {calendar.zone.key}, due the day after the period's last day"
    limits = [
        f"archived {r.after_last_use} after the last use of an open account, or {r.after_closure} after "
        f"closure ({r.after_negative_decision} after the latest negative decision or notification if that is "
        f"longer) [2.3.1]; {zone}",
        f"suspended or blocked accounts kept {r.after_suspension_min} to {r.after_suspension_max} [2.3.3]",
    ]
    held = set(categories)
    financial = sorted(c.value for c in policy.financial_categories if c.value in held)
    if financial:
        limits.append(
            f"{', '.join(financial)} kept {r.financial} after the end of the financial year (ending "
            f"{calendar.financial_year_end}) of the last transaction [2.3.2]"
        )
    anonymised = sorted(c.value for c in policy.anonymised_not_deleted if c.value in held)
    if anonymised:
        limits.append(f"{', '.join(anonymised)} anonymised, not deleted, at the end of the 2.3.1 period [2.3.2]")
    return limits


def ropa_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The record's rows as CSV with a header line; lists joined by ``"; "``, None as an empty cell, a cell that
    starts like a formula quoted for spreadsheets (``csv_cells``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([spreadsheet_safe(_cell(row[column])) for column in COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    """One CSV cell; no item of a list carries the separator (``"; "``), so a reader can split it back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return str(value)
