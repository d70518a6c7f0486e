"""The privacy policy as data, one TOML file per version under ``policies/``.

Processors and the generator read their rules from here, never from literals:
which purposes need consent, the legal basis of the others, which categories
other users may see [4.1], what identity documents may serve [2.1.9, 3.10],
and the retention periods [2.3].
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Any

from consentflow.vocabulary import CURRENT_POLICY_VERSION, CookieCategory, DataCategory, LegalBasis, Purpose


class PolicyError(ValueError):
    """A policy file that is missing, malformed or names an unknown symbol."""


@dataclass(frozen=True)
class Retention:
    """Retention periods [2.3]."""

    after_last_use: timedelta  # [2.3.1]
    after_closure: timedelta  # [2.3.1]
    after_negative_decision: timedelta  # [2.3.1]
    financial: timedelta  # [2.3.2]
    after_suspension_min: timedelta  # [2.3.3]
    after_suspension_max: timedelta  # [2.3.3]


@dataclass(frozen=True)
class Policy:
    """One version of the privacy policy, as the processors apply it."""

    version: str
    storage_countries: frozenset[str]
    consent_required: frozenset[Purpose]
    legal_basis: dict[str, LegalBasis]  # keyed by Purpose (a str)
    cookie_purpose: dict[CookieCategory, Purpose]  # the purpose each cookie category serves
    visible_to_other_users: frozenset[DataCategory]
    consent_gated_categories: dict[DataCategory, Purpose]
    identity_documents_allowed_purposes: frozenset[Purpose]
    financial_categories: frozenset[DataCategory]
    anonymised_not_deleted: frozenset[DataCategory]
    retention: Retention

    def needs_consent(self, purpose: Purpose | str) -> bool:
        """Whether processing for ``purpose`` needs consent."""
        return purpose in self.consent_required

    def basis_of(self, purpose: Purpose | str) -> LegalBasis:
        """The legal basis the policy gives ``purpose`` (a ``Purpose`` or its value)."""
        if purpose in self.consent_required:
            return LegalBasis.CONSENT
        return self.legal_basis.get(purpose, LegalBasis.UNKNOWN)


def _symbols(kind: Any, values: Any, where: str) -> list[Any]:
    if not isinstance(values, list):
        raise PolicyError(f"{where}: expected a list, got {values!r}")
    out = []
    for value in values:
        try:
            out.append(kind(value))
        except ValueError:
            raise PolicyError(f"{where}: {value!r} is not a {kind.__name__}") from None
    return out


def parse_policy(data: dict[str, Any]) -> Policy:
    """Build a ``Policy`` from a parsed TOML document, naming any bad entry."""
    try:
        consent = _symbols(Purpose, data["consent"]["required"], "consent.required")
        bases: dict[str, LegalBasis] = {Purpose(p): LegalBasis(b) for p, b in data["legal_basis"].items()}
        cookies = {CookieCategory(c): Purpose(p) for c, p in data["cookies"].items()}
        cats = data["categories"]
        gated = {DataCategory(c): Purpose(p) for c, p in cats["consent_gated"].items()}
        r = data["retention"]
        retention = Retention(
            timedelta(days=int(r["after_last_use_days"])),
            timedelta(days=int(r["after_closure_days"])),
            timedelta(days=int(r["after_negative_decision_days"])),
            timedelta(days=int(r["financial_days"])),
            timedelta(days=int(r["after_suspension_min_days"])),
            timedelta(days=int(r["after_suspension_max_days"])),
        )
        return Policy(
            version=str(data["version"]),
            storage_countries=frozenset(str(c) for c in data["storage_countries"]),
            consent_required=frozenset(consent),
            legal_basis=bases,
            cookie_purpose=cookies,
            visible_to_other_users=frozenset(
                _symbols(DataCategory, cats["visible_to_other_users"], "categories.visible_to_other_users")
            ),
            consent_gated_categories=gated,
            identity_documents_allowed_purposes=frozenset(
                _symbols(Purpose, cats["identity_documents_allowed_purposes"], "categories.identity_documents_allowed_purposes")
            ),
            financial_categories=frozenset(_symbols(DataCategory, cats["financial"], "categories.financial")),
            anonymised_not_deleted=frozenset(
                _symbols(DataCategory, cats["anonymised_not_deleted"], "categories.anonymised_not_deleted")
            ),
            retention=retention,
        )
    except KeyError as exc:
        raise PolicyError(f"policy file lacks {exc.args[0]!r}") from None
    except ValueError as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"policy file names an unknown symbol: {exc}") from None


@cache
def load_policy(version: str = CURRENT_POLICY_VERSION) -> Policy:
    """The policy of ``version`` shipped in ``consentflow/policies/``."""
    path = resources.files("consentflow.policies") / f"{version}.toml"
    if not path.is_file():
        raise PolicyError(f"no policy file for version {version!r}")
    return parse_policy(tomllib.loads(path.read_text(encoding="utf-8")))
