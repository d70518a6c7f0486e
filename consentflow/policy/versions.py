"""The privacy policy as data, one TOML file per version under ``policies/``.

Processors and the generator read their rules from here, never from literals:
which purposes need consent, the legal basis of the others, which categories
other users may see [4.1], what identity documents may serve [2.1.9, 3.10],
and the retention periods [2.3].

Each file states the day its version takes effect (``effective_from``) and the
purposes whose consent it asks again (``reconsent``) [13]. ``PolicyHistory``
orders the versions by that day and says which one is in force at an instant:
every processing is judged under the version in force at its event time, never
under the version its event names. An event's ``policy_version`` is the notice
the emitting service showed when it collected the event; a consent keeps it in
the ledger as the text the subject agreed to [6, 13].
"""

from __future__ import annotations

import bisect
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cache, cached_property
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
    # The controller's calendar day this version takes effect, and the purposes whose consent it asks again [13].
    effective_from: date
    reconsent: frozenset[Purpose]
    rights: RightsClock = field(default_factory=RightsClock)  # [8.2; GDPR Art. 12(3)]

    @property
    def effective_at(self) -> datetime:
        """The instant this version takes effect: 00:00 of ``effective_from`` in the controller's time zone (the
        retention calendar's, [1]), as a UTC instant; a day is the controller's day, as for retention [2.3]."""
        return self.retention.calendar.next_day_start(self.effective_from - timedelta(days=1))

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


def _day(value: Any, where: str) -> date:
    """A TOML date (``2027-01-01``, bare or quoted) as a ``date``."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PolicyError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")


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
        consent_required = frozenset(consent)
        reconsent = frozenset(_symbols(Purpose, data.get("reconsent", []), "reconsent"))
        if not reconsent <= consent_required:
            extra = ", ".join(sorted(reconsent - consent_required))
            raise PolicyError(f"reconsent: {extra} needs no consent in this version (consent.required) [13]")
        return Policy(
            version=str(data["version"]),
            storage_countries=frozenset(str(c) for c in data["storage_countries"]),
            consent_required=consent_required,
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
            effective_from=_day(data["effective_from"], "effective_from"),
            reconsent=reconsent,
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
    policy = parse_policy(tomllib.loads(path.read_text(encoding="utf-8")))
    if policy.version != version:
        raise PolicyError(f"policy file {version}.toml says version {policy.version!r}; a file is named by its version")
    return policy


def shipped_versions() -> tuple[str, ...]:
    """The versions shipped in ``consentflow/policy/policies/``, by name."""
    folder = resources.files("consentflow.policy.policies")
    return tuple(sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")))


@dataclass(frozen=True)
class Renewal:
    """A version that asks a purpose's consent again [13]: from ``since`` on, a consent given earlier no longer counts
    unless it answered this version or a later one (its recorded ``policy_version`` is one of ``answered_by``)."""

    version: str  # the version that asks again
    since: datetime  # its effective instant
    answered_by: frozenset[str]  # that version and every later one

    def stale(self, given_at: datetime, given_under: str) -> bool:
        """Whether a consent given at ``given_at``, under the notice ``given_under``, stopped counting at ``since``.

        A consent given at or after ``since`` counts, whatever notice it names (the service asked again after the
        change); one given before counts only if it answered the new text, which a service may show ahead of the
        day, as [13] has users informed before a change.
        """
        return given_at < self.since and given_under not in self.answered_by


@dataclass(frozen=True)
class PolicyHistory:
    """The policy versions ordered by the day each takes effect; which is in force at an instant [13].

    An instant before the first version's day falls under the first version: it is the oldest text the controller
    has, and the one events predating it were collected under.
    """

    versions: tuple[Policy, ...]

    def __post_init__(self) -> None:
        if not self.versions:
            raise PolicyError("a policy history needs at least one version")
        days = [p.effective_from for p in self.versions]
        if days != sorted(days) or len(set(days)) != len(days):
            order = ", ".join(f"{p.version} from {p.effective_from}" for p in self.versions)
            raise PolicyError(f"policy versions must take effect on distinct days, in order: {order}")
        names = [p.version for p in self.versions]
        if len(set(names)) != len(names):
            raise PolicyError(f"policy versions named twice: {', '.join(names)}")

    @classmethod
    def of(cls, policies: Iterable[Policy]) -> PolicyHistory:
        """The history of ``policies``, in any order."""
        return cls(tuple(sorted(policies, key=lambda p: p.effective_from)))

    @cached_property
    def starts(self) -> tuple[datetime, ...]:
        """Each version's effective instant, in order."""
        return tuple(p.effective_at for p in self.versions)

    @property
    def latest(self) -> Policy:
        """The version that takes effect last."""
        return self.versions[-1]

    def index_in_force(self, instant: datetime) -> int:
        """The position in ``versions`` of the version in force at ``instant``."""
        return max(0, bisect.bisect_right(self.starts, instant) - 1)

    def in_force(self, instant: datetime) -> Policy:
        """The version in force at ``instant`` (a UTC instant)."""
        return self.versions[self.index_in_force(instant)]

    def get(self, version: str) -> Policy:
        """The version named ``version``; ``PolicyError`` naming the known ones otherwise."""
        for policy in self.versions:
            if policy.version == version:
                return policy
        known = ", ".join(p.version for p in self.versions)
        raise PolicyError(f"no policy version {version!r} (known: {known})")

    def renewals(self, index: int) -> Mapping[str, Renewal]:
        """For the version at ``index``: each purpose whose consent it, or an earlier version, asked again, with the
        latest version that did (a consent given before that one's day stops counting there) [13]."""
        return self._renewals[index]

    @cached_property
    def _renewals(self) -> tuple[Mapping[str, Renewal], ...]:
        return tuple(self._renewals_of(index) for index in range(len(self.versions)))

    def _renewals_of(self, index: int) -> Mapping[str, Renewal]:
        found: dict[str, Renewal] = {}
        for k in range(index + 1):
            policy = self.versions[k]
            later = frozenset(p.version for p in self.versions[k:])
            for purpose in policy.reconsent:
                found[purpose.value] = Renewal(policy.version, policy.effective_at, later)
        return found

    def renewal_at(self, purpose: str, instant: datetime) -> Renewal | None:
        """The latest version in force by ``instant`` that asks ``purpose``'s consent again, if any [13]."""
        return self.renewals(self.index_in_force(instant)).get(purpose)


@cache
def load_history() -> PolicyHistory:
    """Every version shipped in ``consentflow/policy/policies/``, ordered by the day it takes effect."""
    return PolicyHistory.of(load_policy(version) for version in shipped_versions())
