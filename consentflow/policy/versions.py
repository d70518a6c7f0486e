"""The privacy policy as data, one TOML file per version under ``policies/``.

Processors and the generator read their rules from here, never from literals:
which purposes need consent, the legal basis of the others, which categories
other users may see [4.1], what identity documents may serve [2.1.9, 3.10],
and the retention periods [2.3].
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from consentflow.policy.legal_periods import (
    LegalCalendar,
    Period,
    PeriodError,
    holiday_country,
    parse_month_day,
    parse_period,
    time_zone,
)
from consentflow.policy.vocabulary import CURRENT_POLICY_VERSION, CookieCategory, DataCategory, LegalBasis, Purpose


class PolicyError(ValueError):
    """A policy file that is missing, malformed or names an unknown symbol."""


@dataclass(frozen=True)
class Retention:
    """Retention periods [2.3], ISO 8601 durations counted in the controller's calendar (``consentflow.policy.legal_periods``)."""

    after_last_use: Period  # [2.3.1]
    after_closure: Period  # [2.3.1]
    after_negative_decision: Period  # [2.3.1]
    financial: Period  # [2.3.2], from the end of the financial year of the transaction
    after_suspension_min: Period  # [2.3.3]
    after_suspension_max: Period  # [2.3.3]
    calendar: LegalCalendar  # the controller's time zone and financial year end


#: The keys of ``[retention]`` that hold periods, by ``Retention`` field.
PERIOD_KEYS = (
    "after_last_use",
    "after_closure",
    "after_negative_decision",
    "financial",
    "after_suspension_min",
    "after_suspension_max",
)


def _retention(r: dict[str, Any]) -> Retention:
    """The ``[retention]`` table: every period an ISO 8601 duration, the suspension range ordered [2.3.3]."""
    missing = [f"retention.{name}" for name in (*PERIOD_KEYS, "time_zone") if name not in r]
    if missing:
        raise PolicyError(f"policy file lacks {', '.join(missing)} (periods as ISO 8601 durations, e.g. 'P3Y')")
    p = {name: parse_period(r[name], f"retention.{name}") for name in PERIOD_KEYS}
    low, high = p["after_suspension_min"], p["after_suspension_max"]
    if (low.months > 0) != (high.months > 0) or not high.covers(low):
        raise PeriodError(
            f"retention.after_suspension_max: {high} does not cover retention.after_suspension_min {low} "
            "(both in years or months, or both in days) [2.3.3]"
        )
    calendar = LegalCalendar(
        time_zone(r["time_zone"], "retention.time_zone"),
        parse_month_day(r.get("financial_year_end", "12-31"), "retention.financial_year_end"),
    )
    return Retention(p["after_last_use"], p["after_closure"], p["after_negative_decision"], p["financial"], low, high, calendar)


#: The controller's country when a policy file names none: the controller of the policy of 2020-11-14 is French [1].
DEFAULT_COUNTRY = "FR"


@dataclass(frozen=True)
class RightsClock:
    """The time limits of a rights request [8.2; GDPR Art. 12(3)], counted by ``LegalCalendar.time_limit_due``."""

    time_limit: Period = field(default_factory=lambda: parse_period("P1M", "rights.time_limit"))  # Art. 12(3): one month
    extension_max: Period = field(default_factory=lambda: parse_period("P2M", "rights.extension_max"))  # "two further months"


def _rights(r: dict[str, Any], calendar: LegalCalendar) -> tuple[RightsClock, LegalCalendar]:
    """The optional ``[rights]`` table: the time limit and the longest extension (months), and the controller's country
    whose public holidays move a time limit's end (Regulation 1182/71 Art. 3(4)); the calendar gains that country."""
    clock = RightsClock()
    limit = parse_period(r.get("time_limit", str(clock.time_limit)), "rights.time_limit")
    extension = parse_period(r.get("extension_max", str(clock.extension_max)), "rights.extension_max")
    for key, period in (("rights.time_limit", limit), ("rights.extension_max", extension)):
        if not period.months:
            raise PeriodError(f"{key}: {period} is not in months (GDPR Art. 12(3) counts months)")
    country = holiday_country(r.get("country", DEFAULT_COUNTRY), "rights.country")
    return RightsClock(limit, extension), replace(calendar, country=country)


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
    rights: RightsClock = field(default_factory=RightsClock)  # [8.2; GDPR Art. 12(3)]

    def needs_consent(self, purpose: Purpose | str) -> bool:
        """Whether processing for ``purpose`` needs consent."""
        return purpose in self.consent_required

    def basis_of(self, purpose: Purpose | str) -> LegalBasis:
        """The legal basis the policy gives ``purpose`` (a ``Purpose`` or its value)."""
        if purpose in self.consent_required:
            return LegalBasis.CONSENT
        return self.legal_basis.get(purpose, LegalBasis.UNKNOWN)

    def basis_differs(self, purpose: Purpose | str, recorded: Iterable[str]) -> bool:
        """Whether processing for ``purpose`` recorded under the bases ``recorded`` ran under another legal basis than
        the policy gives it [3; GDPR Art. 6(1)]; never for a purpose the policy gives none (nothing to differ from)."""
        basis = self.basis_of(purpose)
        return basis is not LegalBasis.UNKNOWN and set(recorded) != {basis.value}


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
        retention = _retention(data["retention"])
        rights, calendar = _rights(data.get("rights", {}), retention.calendar)
        retention = replace(retention, calendar=calendar)
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
            rights=rights,
        )
    except KeyError as exc:
        raise PolicyError(f"policy file lacks {exc.args[0]!r}") from None
    except PeriodError as exc:
        raise PolicyError(f"policy file: {exc}") from None
    except ValueError as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"policy file names an unknown symbol: {exc}") from None


@cache
def load_policy(version: str = CURRENT_POLICY_VERSION) -> Policy:
    """The policy of ``version`` shipped in ``consentflow/policy/policies/``."""
    path = resources.files("consentflow.policy.policies") / f"{version}.toml"
    if not path.is_file():
        raise PolicyError(f"no policy file for version {version!r}")
    return parse_policy(tomllib.loads(path.read_text(encoding="utf-8")))
