"""What changed between two policy versions, rule by rule, each change with the section it comes from [13].

Plain data for ``consentflow policy diff A B``: which purposes need consent, the legal basis of the others, the
purpose each cookie category serves, what other users may see and what identity documents may serve (the policy's
word on recipients: the registry lists the recipients themselves), where data is stored, the retention periods,
and which consents B asks again of a subject who gave them under A.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from consentflow.policy.versions import PERIOD_KEYS, Policy, PolicyHistory


@dataclass(frozen=True)
class Change:
    """One rule that differs: ``what`` (the rule), ``item`` (the purpose, category or key), its value under each
    version (None: the version does not say it), and the section of the policy the rule comes from."""

    what: str
    item: str
    before: str | None
    after: str | None
    section: str


@dataclass(frozen=True)
class VersionSummary:
    """A version as ``policy versions`` lists it."""

    version: str
    effective_from: date
    reconsent: tuple[str, ...]


@dataclass(frozen=True)
class PolicyDiff:
    """The changes from version ``before`` to version ``after``; ``reconsent``: the purposes whose consent, given
    under ``before``, the versions up to ``after`` ask again (a consent given before their day stops counting) [13]."""

    before: VersionSummary
    after: VersionSummary
    reconsent: tuple[str, ...]
    changes: tuple[Change, ...]


def summary(policy: Policy) -> VersionSummary:
    """``policy``'s name, effective day and reconsent purposes."""
    return VersionSummary(policy.version, policy.effective_from, tuple(sorted(p.value for p in policy.reconsent)))


def _membership(what: str, section: str, a: Iterable[str], b: Iterable[str]) -> list[Change]:
    """A set each version lists: one change per member in one and not the other ("yes" / "no")."""
    left, right = set(a), set(b)
    return [
        Change(what, item, "yes" if item in left else "no", "yes" if item in right else "no", section)
        for item in sorted(left ^ right)
    ]


def _mapping(what: str, section: str, a: Mapping[str, str], b: Mapping[str, str]) -> list[Change]:
    """A table each version holds: one change per key whose value differs or that one version lacks."""
    return [Change(what, key, a.get(key), b.get(key), section) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _retention(a: Policy, b: Policy) -> list[Change]:
    """The retention periods that differ (P1Y and P12M are one period), the time zone and the financial year end."""
    ra, rb = a.retention, b.retention
    changes = [
        Change("retention", key, str(getattr(ra, key)), str(getattr(rb, key)), "2.3")
        for key in PERIOD_KEYS
        if getattr(ra, key) != getattr(rb, key)
    ]
    for key, before, after in (
        ("time_zone", ra.calendar.zone.key, rb.calendar.zone.key),
        ("financial_year_end", str(ra.calendar.financial_year_end), str(rb.calendar.financial_year_end)),
    ):
        if before != after:
            changes.append(Change("retention", key, before, after, "2.3"))
    return changes


def policy_diff(history: PolicyHistory, before: str, after: str) -> PolicyDiff:
    """The changes from version ``before`` to version ``after`` (``PolicyError`` for a version the history lacks)."""
    a, b = history.get(before), history.get(after)
    changes = [
        *_membership("needs consent", "3.8, 6, 2.1.8, 2.2.1, 4.4.7", _values(a.consent_required), _values(b.consent_required)),
        *_mapping("legal basis", "3", _values_map(a.legal_basis), _values_map(b.legal_basis)),
        *_mapping("cookie purpose", "2.2.1, 9", _values_map(a.cookie_purpose), _values_map(b.cookie_purpose)),
        *_membership("visible to other users", "4.1", _values(a.visible_to_other_users), _values(b.visible_to_other_users)),
        *_mapping(
            "category needs consent of",
            "2.1.1, 2.1.8",
            _values_map(a.consent_gated_categories),
            _values_map(b.consent_gated_categories),
        ),
        *_membership(
            "identity documents may serve",
            "2.1.9, 3.10",
            _values(a.identity_documents_allowed_purposes),
            _values(b.identity_documents_allowed_purposes),
        ),
        *_membership("kept for the accounting period", "2.3.2", _values(a.financial_categories), _values(b.financial_categories)),
        *_membership("anonymised, not deleted", "2.3.2", _values(a.anonymised_not_deleted), _values(b.anonymised_not_deleted)),
        *_membership("storage country", "7", a.storage_countries, b.storage_countries),
        *_retention(a, b),
        *_membership("asks consent again", "13", _values(a.reconsent), _values(b.reconsent)),
    ]
    # Versions after ``before`` up to ``after`` ask these again of a consent given under ``before``.
    between = [p for p in history.versions if a.effective_from < p.effective_from <= b.effective_from]
    reconsent = tuple(sorted({purpose.value for p in between for purpose in p.reconsent}))
    return PolicyDiff(summary(a), summary(b), reconsent, tuple(changes))


def _values(symbols: Iterable[str]) -> list[str]:
    return [str(s) for s in symbols]


def _values_map(table: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in table.items()}
