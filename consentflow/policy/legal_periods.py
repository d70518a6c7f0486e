"""Legal periods in calendar time, as EU law counts them [2.3].

The policy states its retention periods in years ("three years after your last
use", "one year after the closure", "between one and three years following the
suspension" [2.3.1, 2.3.3]; ten years of accounting records [2.3.2], French Code
de commerce art. L123-22). The policy file writes them as ISO 8601 durations
(``P3Y``), and they are counted by Regulation (EEC, Euratom) No 1182/71
determining the rules applicable to periods, dates and time limits, Art. 3:

* Art. 3(1): the day during which the event a period runs from occurs does not
  count; the period starts on the next day;
* Art. 3(2)(b): a period in days ends with the expiry of the last hour of its
  last day;
* Art. 3(2)(c): a period in weeks, months or years ends with the expiry of the
  last hour of the day, in the last week, month or year, that is the same day of
  the week or bears the same date as the day the period runs from; when that
  date does not exist in the last month (29 February plus a year), it ends with
  the expiry of the last hour of the last day of that month (28 February).

* Art. 3(4): a period other than in hours whose last day is a public holiday,
  a Sunday or a Saturday ends with the expiry of the last hour of the following
  working day. Public holidays are those of the Member State where the act is
  to be done (Art. 2(1)): the controller's country (``LegalCalendar.country``,
  FR for the policy of 2020-11-14), from the maintained ``holidays`` package.
  Applied to time limits for an act (``LegalCalendar.time_limit_due``: the
  answer to a rights request, GDPR Art. 12(3)), not to retention periods: data
  is kept through a period's last day, and keeping it over a weekend longer is
  no time limit for the controller to act within [2.3].

Days are the controller's calendar days (``LegalCalendar.zone``, Europe/Paris
for the policy of 2020-11-14), not UTC's. An action falls due when the period
has expired: at 00:00 on the day after its last day, in that zone
(``LegalCalendar.due``), returned as the UTC instant; the data is kept through
the whole last day.

Plain, I/O-free functions; a period end is cached per local start date, since
many subjects share one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

# ISO 8601 durations of calendar time: years, months, weeks, days (no time part).
_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")
_MONTH_DAY = re.compile(r"(\d\d)-(\d\d)")
_ONE_DAY = timedelta(days=1)
#: No retention period of the policy comes near it; longer ones would run past the calendar's year 9999.
_MAX_YEARS = 100


class PeriodError(ValueError):
    """A period, time zone or month-day that cannot be counted as Regulation 1182/71 counts periods."""


@dataclass(frozen=True)
class Period:
    """A legal period: whole months (years count as twelve) or whole days (weeks as seven), never both.

    Regulation 1182/71 counts the two differently (Art. 3(2)(b) and (c)), so a
    period is one or the other; ``text`` is the ISO 8601 duration as written.
    """

    months: int
    days: int
    text: str = field(compare=False)  # P1Y and P12M are one period

    def __str__(self) -> str:
        return self.text

    def covers(self, other: Period) -> bool:
        """Whether this period ends no earlier than ``other`` from every start (both counted in the same unit)."""
        if (self.months > 0) != (other.months > 0):
            raise PeriodError(f"{self} and {other} are counted in different units (months or years against days)")
        return (self.months, self.days) >= (other.months, other.days)


def parse_period(text: object, key: str) -> Period:
    """The ISO 8601 duration ``text`` (``P3Y``, ``P18M``, ``P2W``, ``P30D``) as a ``Period``; ``key`` names it in errors."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text == "P":
        raise PeriodError(f"{key}: {text!r} is not an ISO 8601 duration in years, months, weeks or days (e.g. 'P3Y')")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    in_months, in_days = 12 * years + months, 7 * weeks + days
    if in_months and in_days:
        raise PeriodError(
            f"{key}: {text!r} mixes years or months with weeks or days, which Regulation 1182/71 Art. 3 counts "
            "differently; write it in one unit"
        )
    if not in_months and not in_days:
        raise PeriodError(f"{key}: {text!r} is an empty period")
    if in_months > 12 * _MAX_YEARS or in_days > 366 * _MAX_YEARS:
        raise PeriodError(f"{key}: {text!r} is longer than {_MAX_YEARS} years")
    return Period(in_months, in_days, str(text))


def last_day(start: date, period: Period) -> date:
    """The last day of ``period`` running from the day ``start`` (Regulation 1182/71 Art. 3(1), 3(2)(b), 3(2)(c)).

    ``start`` itself does not count (Art. 3(1)). In days, the period's last day
    is ``start`` plus that many days. In months or years, it is the day bearing
    the same date as ``start`` in the last month, or that month's last day when
    the date does not exist there (29 February plus a year: 28 February).
    """
    if period.days:
        return start + timedelta(days=period.days)
    index = start.month - 1 + period.months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, _days_in_month(year, month)))


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - _ONE_DAY).day


def time_zone(name: object, key: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Paris``); ``key`` names it in errors."""
    if not isinstance(name, str) or not name:
        raise PeriodError(f"{key}: {name!r} is not an IANA time zone name (e.g. 'Europe/Paris')")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"{key}: {name!r} is not a time zone of the tz database (e.g. 'Europe/Paris')") from None


@dataclass(frozen=True)
class MonthDay:
    """The last day of the financial year, as a month and a day (``12-31``) [2.3.2]."""

    month: int
    day: int

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"

    def year_end(self, day: date) -> date:
        """The last day of the financial year ``day`` falls in: this month-day, on or after ``day``."""
        end = date(day.year, self.month, self.day)
        return end if day <= end else date(day.year + 1, self.month, self.day)


def parse_month_day(text: object, key: str) -> MonthDay:
    """``MM-DD`` as a ``MonthDay``; 29 February is refused (a year end must exist every year)."""
    match = _MONTH_DAY.fullmatch(text) if isinstance(text, str) else None
    if match is not None:
        month, day = int(match.group(1)), int(match.group(2))
        if 1 <= month <= 12 and 1 <= day <= _days_in_month(2001, month):  # 2001: not a leap year
            return MonthDay(month, day)
    raise PeriodError(f"{key}: {text!r} is not a month and day that exists every year, as MM-DD (e.g. '12-31')")


def holiday_country(code: object, key: str) -> str:
    """``code`` (ISO 3166-1 alpha-2, e.g. ``FR``) when the ``holidays`` package knows its public holidays; ``key``
    names it in errors."""
    if not isinstance(code, str) or code not in holidays.list_supported_countries():
        raise PeriodError(f"{key}: {code!r} is not a country whose public holidays are known (ISO 3166-1 alpha-2, e.g. 'FR')")
    return code


@lru_cache(maxsize=512)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The public holidays of ``country`` in ``year`` (the ``holidays`` package's calendar of that country)."""
    return frozenset(holidays.country_holidays(country, years=year))


def is_working_day(day: date, country: str | None) -> bool:
    """Whether ``day`` is neither a Saturday, a Sunday nor a public holiday of ``country`` (none: weekends only)."""
    if day.weekday() >= 5:
        return False
    return country is None or day not in public_holidays(country, day.year)


def following_working_day(day: date, country: str | None) -> date:
    """``day`` when it is a working day, else the next one (Regulation 1182/71 Art. 3(4))."""
    while not is_working_day(day, country):
        day += _ONE_DAY
    return day


@dataclass(frozen=True)
class LegalCalendar:
    """Counts legal periods in the controller's calendar: its time zone, its financial year end [2.3.2], and the
    country whose public holidays end a time limit on the next working day (Regulation 1182/71 Art. 3(4))."""

    zone: ZoneInfo
    financial_year_end: MonthDay = MonthDay(12, 31)
    country: str | None = None  # None: only Saturdays and Sundays are non-working days

    def day_of(self, instant: datetime) -> date:
        """The controller's calendar day on which the UTC ``instant`` falls."""
        return instant.astimezone(self.zone).date()

    def due(self, start: datetime, period: Period) -> datetime:
        """When an action waiting for ``period`` to run from ``start`` falls due: the first instant after its last day,
        00:00 of the next day in the controller's zone, as a UTC instant (Regulation 1182/71 Art. 3)."""
        return _due(self.day_of(start), period, self.zone)

    def due_after_financial_year(self, transaction: datetime, period: Period) -> datetime:
        """When ``period`` (the accounting period [2.3.2]) has run from the end of the financial year of
        ``transaction``: French Code de commerce art. L123-22 keeps accounting records ten years from the close."""
        closed = self.financial_year_end.year_end(self.day_of(transaction))
        return _due(closed, period, self.zone)

    def time_limit_last_day(self, start: datetime, period: Period) -> date:
        """The last day of a time limit for an act running from ``start`` (e.g. receipt of a request, GDPR Art.
        12(3)): Art. 3(1) and 3(2), then Art. 3(4): a last day that is a Saturday, a Sunday or a public holiday of
        ``country`` moves to the following working day."""
        return following_working_day(last_day(self.day_of(start), period), self.country)

    def time_limit_due(self, start: datetime, period: Period) -> datetime:
        """When that time limit has expired: 00:00, in the controller's zone, of the day after its last day, as a UTC
        instant. An act at any instant before it is in time; at or after it, late."""
        return _next_day_start(self.time_limit_last_day(start, period), self.zone)

    def next_day_start(self, day: date) -> datetime:
        """00:00 of the day after ``day`` in the controller's zone, as a UTC instant."""
        return _next_day_start(day, self.zone)


@lru_cache(maxsize=65536)
def _due(start: date, period: Period, zone: ZoneInfo) -> datetime:
    return _next_day_start(last_day(start, period), zone)


def _next_day_start(day: date, zone: ZoneInfo) -> datetime:
    # fold=0: where a zone skips midnight, the earlier offset gives the instant the day begins.
    return datetime.combine(day + _ONE_DAY, time(0), tzinfo=zone).astimezone(UTC)
