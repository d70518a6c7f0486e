"""The one-month time limit of a rights request [8.2; GDPR Art. 12(3)], counted as Regulation 1182/71 counts periods.

Art. 3(1): the day of receipt does not count; Art. 3(2)(c): the period ends on the day bearing the same date one month
later, or that month's last day; Art. 3(4): a last day that is a Saturday, a Sunday or a public holiday moves to the
following working day (French public holidays: the controller is French [1]). Expected days are written out by hand.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from consentflow.policy.legal_periods import LegalCalendar, PeriodError, following_working_day, holiday_country, parse_period
from consentflow.policy.versions import PolicyError, load_policy, parse_policy

PARIS = ZoneInfo("Europe/Paris")
FRANCE = LegalCalendar(PARIS, country="FR")
ONE_MONTH = parse_period("P1M", "rights.time_limit")


def received(day: str, hour: int = 10) -> datetime:
    """A receipt at ``hour`` o'clock Paris time on ``day``."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=PARIS).astimezone(UTC)


@pytest.mark.parametrize(
    ("receipt", "last"),
    [
        ("2023-01-31", "2023-02-28"),  # Art. 3(2)(c): no 31 February, the month's last day (a Tuesday)
        ("2024-01-31", "2024-02-29"),  # a leap year (a Thursday)
        ("2024-03-15", "2024-04-15"),  # the same date, a Monday
    ],
)
def test_one_month_from_receipt_ends_on_the_same_date_or_the_months_last_day(receipt: str, last: str) -> None:
    assert FRANCE.time_limit_last_day(received(receipt), ONE_MONTH) == date.fromisoformat(last)


@pytest.mark.parametrize(
    ("receipt", "last", "why"),
    [
        ("2024-02-10", "2024-03-11", "10 March 2024 is a Sunday"),
        ("2024-02-09", "2024-03-11", "9 March 2024 is a Saturday"),
        ("2025-04-01", "2025-05-02", "1 May, Labour Day"),
        ("2025-06-14", "2025-07-15", "14 July, the national day (a Monday)"),
        ("2025-04-29", "2025-05-30", "29 May 2025, Ascension"),
        ("2026-04-08", "2026-05-11", "8 May 2026 (a Friday), then the weekend"),
        ("2025-10-01", "2025-11-03", "1 November 2025, All Saints' Day and a Saturday, then a Sunday"),
    ],
)
def test_a_last_day_on_a_weekend_or_a_french_public_holiday_moves_to_the_next_working_day(
    receipt: str, last: str, why: str
) -> None:
    """Regulation 1182/71 Art. 3(4), with the controller's country's public holidays (Art. 2(1))."""
    assert FRANCE.time_limit_last_day(received(receipt), ONE_MONTH) == date.fromisoformat(last), why


def test_without_a_country_only_weekends_move_the_end() -> None:
    assert LegalCalendar(PARIS).time_limit_last_day(received("2025-04-01"), ONE_MONTH) == date(2025, 5, 1)
    assert following_working_day(date(2024, 3, 10), None) == date(2024, 3, 11)


def test_the_day_of_receipt_is_the_controllers_day_and_does_not_count() -> None:
    """Art. 3(1): 15 March 23:30 in Paris runs from 15 March; 15 March 23:30 UTC is already 16 March in Paris."""
    late_evening = datetime(2024, 3, 15, 22, 30, tzinfo=UTC)  # 23:30 Paris (UTC+1)
    assert FRANCE.time_limit_last_day(late_evening, ONE_MONTH) == date(2024, 4, 15)
    past_midnight = datetime(2024, 3, 15, 23, 30, tzinfo=UTC)  # 00:30 Paris, 16 March
    assert FRANCE.time_limit_last_day(past_midnight, ONE_MONTH) == date(2024, 4, 16)


def test_the_limit_expires_at_midnight_after_its_last_day_in_the_controllers_zone() -> None:
    """An answer any time on the last day is in time; at 00:00 Paris the next day it is late."""
    assert FRANCE.time_limit_due(received("2023-01-31"), ONE_MONTH) == datetime(2023, 2, 28, 23, 0, tzinfo=UTC)
    # Summer time: 00:00 Paris on 16 July is 22:00 UTC on the 15th.
    assert FRANCE.time_limit_due(received("2025-06-14"), ONE_MONTH) == datetime(2025, 7, 15, 22, 0, tzinfo=UTC)


def test_an_extended_limit_counts_the_further_months_from_receipt() -> None:
    """One month plus two further months [Art. 12(3)]: three months from receipt, then Art. 3(4)."""
    three = parse_period("P3M", "k")
    assert FRANCE.time_limit_last_day(received("2024-01-31"), three) == date(2024, 4, 30)
    assert FRANCE.time_limit_last_day(received("2025-04-14"), three) == date(2025, 7, 15)  # 14 July moves it


def policy_data() -> dict[str, Any]:
    """The shipped policy file, parsed as TOML only."""
    return tomllib.loads((resources.files("consentflow.policy.policies") / "2020-11-14.toml").read_text(encoding="utf-8"))


def test_the_policy_of_2020_11_14_counts_a_month_in_french_days() -> None:
    policy = load_policy("2020-11-14")
    assert policy.retention.calendar.country == "FR"
    assert (str(policy.rights.time_limit), str(policy.rights.extension_max)) == ("P1M", "P2M")


def test_a_policy_without_a_rights_table_takes_the_defaults() -> None:
    data = policy_data()
    del data["rights"]
    policy = parse_policy(data)
    assert policy.retention.calendar.country == "FR"
    assert str(policy.rights.time_limit) == "P1M"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("country", "XX", r"rights\.country: 'XX' is not a country whose public holidays are known"),
        ("country", "fr", r"rights\.country"),
        ("time_limit", "P30D", r"rights\.time_limit: P30D is not in months"),
        ("extension_max", "P2", r"rights\.extension_max"),
    ],
)
def test_a_bad_rights_entry_is_refused_naming_it(key: str, value: str, message: str) -> None:
    data = policy_data()
    data["rights"][key] = value
    with pytest.raises(PolicyError, match=message):
        parse_policy(data)


def test_holiday_country_names_the_key() -> None:
    assert holiday_country("DE", "k") == "DE"
    with pytest.raises(PeriodError, match=r"^k: "):
        holiday_country(None, "k")
