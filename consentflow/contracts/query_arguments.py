"""The arguments of the DPO's questions, validated at the edge: instants, ids, purposes, rules.

The command line and the HTTP API both parse what a reader typed here, so the
same input is accepted or refused the same way, with the same one-line reason.
The query layer (``sinks/*_queries.py``) takes only what these functions return.
"""

from __future__ import annotations

from datetime import UTC, datetime

from consentflow.contracts.events import ID_RULE, is_pseudonymous_id
from consentflow.policy.vocabulary import Purpose, Rule

#: The instants ClickHouse's DateTime64(6) holds, with room to spare; outside them a time is a typo.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_EXAMPLE = "e.g. 2021-03-01, 2021-03-01T12:00:00Z or 2021-03-01T13:00:00+01:00"


class ArgumentError(ValueError):
    """An argument a reader gave is not well-formed; the message names it and says why, on one line."""


def parse_instant(text: str, name: str = "time") -> datetime:
    """An ISO-8601 time or date as a UTC instant; a time without zone (or a date, at midnight) is taken as UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError, AttributeError):
        raise ArgumentError(f"{name}: {text!r} is not an ISO-8601 time ({_EXAMPLE})") from None
    if not EARLIEST <= when < LATEST:
        raise ArgumentError(f"{name}: {text!r} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return when


def now_unless(at: datetime | None) -> datetime:
    """``at``, or the present instant: a subject's answers (consent, who-has, the access export) speak of now unless a
    reader names another instant, so a fact dated in the future never decides today's answer."""
    return datetime.now(UTC) if at is None else at


def check_id(text: str, name: str) -> str:
    """A pseudonymous id (subject, recipient...), by the rule every event id field follows; SQL metacharacters never pass."""
    if not is_pseudonymous_id(text):
        raise ArgumentError(f"{name}: {text!r} is not a well-formed id ({ID_RULE})")
    return text


def check_subject_id(text: str) -> str:
    """A subject id as the events carry it."""
    return check_id(text, "subject id")


def check_recipient_id(text: str) -> str:
    """A recipient id as the registry carries it."""
    return check_id(text, "recipient id")


def parse_purpose(text: str) -> Purpose:
    """A purpose of processing in the policy's words [3, 4.4.7, 5, 6]."""
    try:
        purpose = Purpose(text)
    except ValueError:
        purpose = Purpose.UNKNOWN
    if purpose is Purpose.UNKNOWN:  # "unknown" is the Avro fallback, not a purpose anyone asks about
        known = ", ".join(p.value for p in Purpose if p is not Purpose.UNKNOWN)
        raise ArgumentError(f"purpose: {text!r} is not a purpose (one of {known})")
    return purpose


def parse_rule(text: str) -> Rule:
    """A policy rule whose breach is a violation."""
    try:
        rule = Rule(text)
    except ValueError:
        rule = Rule.UNKNOWN
    if rule is Rule.UNKNOWN:
        known = ", ".join(r.value for r in Rule if r is not Rule.UNKNOWN)
        raise ArgumentError(f"rule: {text!r} is not a rule (one of {known})")
    return rule


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """A half-open window ``[start, end)`` that is not empty."""
    if end <= start:
        raise ArgumentError(f"window: the end ({end.isoformat()}) must come after the start ({start.isoformat()})")
    return start, end
