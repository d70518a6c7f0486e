"""Legal periods as Regulation (EEC, Euratom) No 1182/71, Art. 3 counts them, and the policy file's periods [2.3].

Expected days and instants are written out by hand from the calendar (Paris is UTC+1 in winter, UTC+2 in summer).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from consentflow.policy.legal_periods import LegalCalendar, MonthDay, Period, last_day, parse_month_day, parse_period
from consentflow.policy.versions import PolicyError, parse_policy

PARIS = LegalCalendar(ZoneInfo("Europe/Paris"))


def policy_data() -> dict[str, Any]:
    """The shipped policy file, parsed as TOML only."""
    return tomllib.loads((resources.files("consentflow.policy.policies") / "2020-11-14.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("text", "months", "days"),
    [("P3Y", 36, 0), ("P1Y", 12, 0), ("P10Y", 120, 0), ("P18M", 18, 0), ("P1Y6M", 18, 0), ("P2W", 0, 14), ("P30D", 0, 30)],
)
def test_iso_8601_durations_in_calendar_units(text: str, months: int, days: int) -> None:
    period = parse_period(text, "k")
    assert (period.months, period.days, str(period)) == (months, days, text)


@pytest.mark.parametrize("text", ["", "P", "3Y", "P3", "P-1Y", "PT24H", "P1DT1H", "p3y", "P3Y ", "P1.5Y", 1095, None])
def test_what_is_not_a_duration_in_calendar_units_is_refused_naming_the_key(text: object) -> None:
    with pytest.raises(ValueError, match=r"^retention\.after_last_use: .* ISO 8601 duration"):
        parse_period(text, "retention.after_last_use")


@pytest.mark.parametrize("text", ["P0Y", "P0D", "P1Y2D", "P1M1W", "P101Y", "P9999999D"])
def test_empty_and_mixed_periods_are_refused(text: str) -> None:
    """Art. 3(2)(b) counts days, 3(2)(c) months and years: a period is one or the other, not empty, and within a
    century (a longer one would run off the calendar)."""
    with pytest.raises(ValueError, match=r"^k: "):
        parse_period(text, "k")


@pytest.mark.parametrize(
    ("start", "period", "last"),
    [
        (date(2022, 6, 1), "P3Y", date(2025, 6, 1)),  # the same date three years later
        (date(2020, 5, 1), "P10Y", date(2030, 5, 1)),
        (date(2024, 2, 29), "P1Y", date(2025, 2, 28)),  # no 29 February in 2025: the month's last day
        (date(2024, 2, 29), "P4Y", date(2028, 2, 29)),  # 2028 has one
        (date(2023, 1, 31), "P1M", date(2023, 2, 28)),
        (date(2024, 1, 31), "P1M", date(2024, 2, 29)),
        (date(2023, 8, 31), "P18M", date(2025, 2, 28)),
        (date(2023, 12, 15), "P1M", date(2024, 1, 15)),
        (date(2024, 2, 28), "P2W", date(2024, 3, 13)),  # the same day of the week, two weeks later
        (date(2024, 2, 28), "P2D", date(2024, 3, 1)),  # the start's day does not count (Art. 3(1))
    ],
)
def test_the_last_day_of_a_period(start: date, period: str, last: date) -> None:
    """Art. 3(2)(c): the day bearing the same date in the last year or month, or that month's last day."""
    assert last_day(start, parse_period(period, "k")) == last


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (datetime(2022, 6, 1, 21, 59, 59, tzinfo=UTC), datetime(2025, 6, 1, 22, tzinfo=UTC)),  # 1 June in Paris
        (datetime(2022, 6, 1, 22, 0, 0, tzinfo=UTC), datetime(2025, 6, 2, 22, tzinfo=UTC)),  # 2 June in Paris
        (datetime(2022, 1, 10, 22, 59, 59, tzinfo=UTC), datetime(2025, 1, 10, 23, tzinfo=UTC)),  # winter
        (datetime(2022, 1, 10, 23, 0, 0, tzinfo=UTC), datetime(2025, 1, 11, 23, tzinfo=UTC)),
        # Through 30 March 2025, the day Paris moves to summer time: 00:00 on 31 March is 22:00 UTC.
        (datetime(2022, 3, 30, 12, tzinfo=UTC), datetime(2025, 3, 30, 22, tzinfo=UTC)),
        (datetime(2022, 3, 25, 12, tzinfo=UTC), datetime(2025, 3, 25, 23, tzinfo=UTC)),
    ],
)
def test_an_action_falls_due_at_midnight_paris_after_the_last_day(start: datetime, due: datetime) -> None:
    """The data is kept through the period's last day in Paris; the action falls due at 00:00 Paris on the next."""
    got = PARIS.due(start, parse_period("P3Y", "k"))
    assert got == due and got.tzinfo == UTC


def test_a_zone_that_skips_midnight_begins_its_day_at_the_transition() -> None:
    """America/Santiago moved from 00:00 -04 to 01:00 -03 on 12 August 2018: that day began at 04:00 UTC."""
    santiago = LegalCalendar(ZoneInfo("America/Santiago"))
    assert santiago.next_day_start(date(2018, 8, 11)) == datetime(2018, 8, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("year_end", "paid", "due"),
    [
        ("12-31", datetime(2020, 5, 1, 10, tzinfo=UTC), datetime(2030, 12, 31, 23, tzinfo=UTC)),
        ("12-31", datetime(2020, 12, 31, 22, 59, 59, tzinfo=UTC), datetime(2030, 12, 31, 23, tzinfo=UTC)),
        ("12-31", datetime(2020, 12, 31, 23, tzinfo=UTC), datetime(2031, 12, 31, 23, tzinfo=UTC)),
        ("06-30", datetime(2020, 5, 1, 10, tzinfo=UTC), datetime(2030, 6, 30, 22, tzinfo=UTC)),
        ("06-30", datetime(2020, 6, 30, 21, 59, 59, tzinfo=UTC), datetime(2030, 6, 30, 22, tzinfo=UTC)),
        ("06-30", datetime(2020, 6, 30, 22, tzinfo=UTC), datetime(2031, 6, 30, 22, tzinfo=UTC)),
        ("02-28", datetime(2024, 2, 29, 10, tzinfo=UTC), datetime(2035, 2, 28, 23, tzinfo=UTC)),
    ],
)
def test_ten_years_from_the_end_of_the_financial_year(year_end: str, paid: datetime, due: datetime) -> None:
    """[2.3.2] Code de commerce art. L123-22: ten years from the close of the financial year the transaction is in."""
    calendar = LegalCalendar(ZoneInfo("Europe/Paris"), parse_month_day(year_end, "k"))
    assert calendar.due_after_financial_year(paid, parse_period("P10Y", "k")) == due


@pytest.mark.parametrize("text", ["02-29", "13-01", "04-31", "1231", "12/31", "", 1231])
def test_a_financial_year_end_that_does_not_exist_every_year_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"^retention\.financial_year_end: "):
        parse_month_day(text, "retention.financial_year_end")


def test_the_shipped_policy_states_its_periods_as_the_policy_words_them() -> None:
    """[2.3.1] three years, one year, two years; [2.3.2] ten years from the financial year's end (31 December);
    [2.3.3] between one and three years; in Paris, where the controller is [1]."""
    r = parse_policy(policy_data()).retention
    assert (r.after_last_use, r.after_closure, r.after_negative_decision) == (
        Period(36, 0, ""),
        Period(12, 0, ""),
        Period(24, 0, ""),
    )
    assert (r.financial, r.after_suspension_min, r.after_suspension_max) == (
        Period(120, 0, ""),
        Period(12, 0, ""),
        Period(36, 0, ""),
    )
    assert (r.calendar.zone.key, r.calendar.financial_year_end) == ("Europe/Paris", MonthDay(12, 31))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("after_last_use", 1095, r"retention\.after_last_use: 1095 is not an ISO 8601 duration"),
        ("after_closure", "P1Y2D", r"retention\.after_closure: 'P1Y2D' mixes"),
        ("financial", "PT87600H", r"retention\.financial: 'PT87600H' is not"),
        ("after_suspension_max", "P6M", r"retention\.after_suspension_max: P6M does not cover .*P1Y .*\[2\.3\.3\]"),
        ("after_suspension_max", "P1095D", r"retention\.after_suspension_max: P1095D does not cover"),
        ("time_zone", "Europe/Atlantis", r"retention\.time_zone: 'Europe/Atlantis' is not a time zone"),
        ("time_zone", "", r"retention\.time_zone: '' is not an IANA time zone"),
        ("financial_year_end", "02-29", r"retention\.financial_year_end: '02-29'"),
    ],
)
def test_a_bad_period_in_the_policy_file_names_its_key(key: str, value: object, message: str) -> None:
    data = policy_data()
    data["retention"][key] = value
    with pytest.raises(PolicyError, match=message):
        parse_policy(data)


def test_a_policy_file_counting_in_days_is_refused_with_the_keys_it_lacks() -> None:
    """The keys of the days era (``after_last_use_days = 1095``) are no longer read: the file must state durations."""
    data = policy_data()
    data["retention"] = {"after_last_use_days": 1095, "time_zone": "Europe/Paris"}
    with pytest.raises(PolicyError, match=r"lacks retention\.after_last_use, retention\.after_closure, .*ISO 8601"):
        parse_policy(data)


def test_the_financial_year_ends_on_31_december_unless_the_file_says_otherwise() -> None:
    data = policy_data()
    del data["retention"]["financial_year_end"]
    assert parse_policy(data).retention.calendar.financial_year_end == MonthDay(12, 31)
