"""The edge checks every input passes, once: the rules themselves, in one place.

The event constructors (``consentflow.contracts.events``) call these functions on what an
emitter hands them; the gate (``consentflow.contracts.gate``) calls the same functions on
what a worker, the embedded runner, a replay, ``produce`` or the collector reads,
so a rule cannot differ between the ways in. Each raises ``ContractError``
naming the topic, the field and what is wrong, and names a value only when it
is a symbol, an id or a time (metadata), never a personal data value.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard, TypeVar

from consentflow.contracts.errors import ContractError
from consentflow.contracts.uuids import UUID_TEXT
from consentflow.policy.vocabulary import Purpose

T = TypeVar("T")

#: The Avro default an old reader falls back to for a symbol it does not know: a reader's word, never a fact.
UNKNOWN_SYMBOL = "unknown"

# Pseudonymous ids only: letters, digits and . _ : - (no "@", no spaces), so an
# email address or a name cannot pass for an id and leak into the pipeline.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_POLICY_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REASON_CODE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
# A cookie name is an RFC 6265 token (``_ga``, ``__Secure-id``...), not an id of a person.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
# The Arabic letter mark, left-to-right and right-to-left marks, embeddings, overrides and isolates (Unicode's bidirectional controls).
_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})

#: What a pseudonymous id may be, in words, for error messages.
ID_RULE = "1-128 of A-Z a-z 0-9 . _ : -, starting alphanumeric"


def is_pseudonymous_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a pseudonymous id (``ID_RULE``): what every id field, and every id a reader asks about, must be."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None  # fullmatch: "$" alone lets a trailing newline through


def pseudonymous_id(topic: str, field: str, value: object) -> str:
    """``value`` if it is a pseudonymous id, else ``ContractError`` naming ``field``."""
    if not is_pseudonymous_id(value):
        raise ContractError(topic, f"{value!r} is not a pseudonymous id ({ID_RULE})", field)
    return value


def event_id(topic: str, field: str, value: object) -> str:
    """The canonical text of a UUID given as text (canonical text passes as is)."""
    if isinstance(value, str) and UUID_TEXT.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(value))  # type: ignore[arg-type]  # anything else is refused just below
    except (ValueError, TypeError, AttributeError):
        raise ContractError(topic, f"{value!r} is not a UUID", field) from None


def service_name(topic: str, field: str, value: object) -> str:
    """A emitting service's name: lowercase letters, digits and -."""
    if not isinstance(value, str) or not _SERVICE.fullmatch(value):
        raise ContractError(topic, f"{value!r} is not a service name (lowercase, digits, -)", field)
    return value


def policy_version(topic: str, field: str, value: object) -> str:
    """The version of the privacy policy an event was collected under, as its date."""
    if not isinstance(value, str) or not _POLICY_VERSION.fullmatch(value):
        raise ContractError(topic, f"{value!r} is not a policy version (YYYY-MM-DD)", field)
    return value


def cookie_name(topic: str, field: str, value: object) -> str:
    """A cookie's name [2.2.1]: an RFC 6265 token."""
    if not isinstance(value, str) or not _COOKIE_NAME.fullmatch(value):
        raise ContractError(topic, f"{value!r} is not a cookie name (RFC 6265 token, 1-128 characters)", field)
    return value


def country(topic: str, field: str, value: object) -> str:
    """A recipient's country [7]: an ISO 3166-1 alpha-2 code."""
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
        raise ContractError(topic, f"{value!r} is not an ISO 3166-1 alpha-2 country code", field)
    return value


def recipient_name(topic: str, field: str, value: object) -> str:
    """A recipient's name [4], without surrounding blanks: 1-200 characters of printable text (``unprintable``)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ContractError(topic, f"{value!r} is not a recipient name (1-200 characters)", field)
    found = unprintable(value)
    if found is not None:
        raise ContractError(topic, f"a recipient name holds {found}; names are printable text", field)
    return value.strip()


def unprintable(text: str) -> str | None:
    """The first character of ``text`` a name must not hold, described (``U+202E, a bidirectional override, at 4``),
    or None: control characters (NUL, tab, line breaks), line and paragraph separators, and the bidirectional
    overrides, isolates and marks, which make a name read differently from what it is (a spoof on a page or export)."""
    for index, character in enumerate(text):
        code = ord(character)
        if code in _BIDI:
            kind = "a bidirectional control"
        elif unicodedata.category(character) in ("Cc", "Cs", "Zl", "Zp"):
            kind = "a control character"
        else:
            continue
        return f"U+{code:04X}, {kind}, at {index}"
    return None


def instant(topic: str, field: str, value: object) -> datetime:
    """A UTC instant: a datetime with a time zone, returned in UTC."""
    if not isinstance(value, datetime):
        raise ContractError(topic, f"{value!r} is not a datetime", field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ContractError(topic, f"{value.isoformat()} has no time zone; event times are UTC instants", field)
    return value.astimezone(UTC)


def known_symbols(symbols: Iterable[T]) -> dict[str, T]:
    """The symbols a value may take, by text: every one but the reader's ``unknown``.

    ``unknown`` is the Avro default an old reader falls back to for a newer symbol;
    an emitter that does not know the value must say so by failing, and a symbol
    a contract does not know is never stored as a fact.
    """
    return {str(s): s for s in symbols if str(s) != UNKNOWN_SYMBOL}


def symbol(topic: str, field: str, kind: str, members: Mapping[str, T], value: object) -> T:
    """The member of ``members`` (``known_symbols``) that ``value`` names, else ``ContractError`` naming ``field``."""
    member = members.get(value) if isinstance(value, str) else None
    if member is None:
        why = " ('unknown' stands for a symbol the contract does not know)" if value == UNKNOWN_SYMBOL else ""
        raise ContractError(topic, f"{value!r} is not a {kind} (one of {', '.join(members)}){why}", field)
    return member


def symbols(topic: str, field: str, kind: str, members: Mapping[str, T], values: object) -> list[T]:
    """Each value of a list named by ``symbol``, duplicates dropped, in order."""
    if isinstance(values, str):
        raise ContractError(topic, f"expected a list of {kind}, got the string {values!r}", field)
    if not isinstance(values, Iterable):
        raise ContractError(topic, f"expected a list of {kind}, got {values!r}", field)
    out: list[T] = []
    for value in values:
        item = symbol(topic, field, kind, members, value)
        if item not in out:
            out.append(item)
    return out


def names_a_category(topic: str, field: str, categories: list[Any]) -> None:
    """A disclosure hands over some data: it names at least one category [4, 7]."""
    if not categories:
        raise ContractError(topic, "a disclosure names at least one data category", field)


def period_order(topic: str, field: str, start: Any, end: Any) -> None:
    """A transfer mechanism's period [7] ends after it starts (``end`` None: open-ended)."""
    if end is not None and end <= start:
        shown = end.isoformat() if isinstance(end, datetime) else str(end)
        raise ContractError(topic, f"period ends ({shown}) before it starts", field)


def reason_code(topic: str, field: str, value: object) -> str:
    """A reason the controller writes as a short code (``complexity``), never free text: metadata only."""
    if not isinstance(value, str) or not _REASON_CODE.fullmatch(value):
        raise ContractError(topic, f"{value!r} is not a reason code (1-64 of a-z 0-9 _ . -, starting with a letter)", field)
    return value


def integer(topic: str, field: str, value: object) -> int:
    """An Avro ``int``: a Python int (not a bool) of 32 bits."""
    if type(value) is not int or not -(2**31) <= value < 2**31:
        raise ContractError(topic, f"{value!r} is not a 32-bit integer", field)
    return value


def purpose_name(topic: str, field: str, value: object) -> str:
    """A purpose of the policy's vocabulary, given as its symbol (a string field, e.g. a rights request's purpose)."""
    return str(symbol(topic, field, "Purpose", _PURPOSES, value))


_PURPOSES: Final = known_symbols(Purpose)

#: The rights whose request may name a purpose: a consent withdrawal [6; Art. 7(3)] and an objection [Art. 21].
PURPOSE_RIGHTS = frozenset({"consent_withdrawal", "objection"})
#: How many further months an extension may add [GDPR Art. 12(3): "by two further months"].
EXTENSION_MONTHS = (1, 2)


def rights_request(topic: str, record: Mapping[str, Any]) -> None:
    """The fields of a rights event that go together (RightsEvent v2): ``extension_months`` (1 or 2) exactly with the
    status ``extended`` [Art. 12(3)], a ``purpose`` only for a consent withdrawal or an objection."""
    status, months = record.get("status"), record.get("extension_months")
    if status == "extended":
        if months not in EXTENSION_MONTHS or type(months) is not int:
            raise ContractError(
                topic, f"an extension names 1 or 2 further months (GDPR Art. 12(3)), got {months!r}", "extension_months"
            )
    elif months is not None:
        raise ContractError(
            topic, f"only an extension (status extended) names further months; status is {status!r}", "extension_months"
        )
    if record.get("purpose") is not None and record.get("right") not in PURPOSE_RIGHTS:
        raise ContractError(
            topic, f"only a consent withdrawal or an objection names a purpose; right is {record.get('right')!r}", "purpose"
        )


#: The longest delay reason a notification may carry [GDPR Art. 33(1)]: a code or a short line, never a narrative.
REASON_LENGTH = 160

# The fields each kind of incident event carries (the others stay empty) [12; GDPR Art. 33, 34].
_OPENED_FIELDS = ("recipient_id", "window_from", "window_to", "aware_at", "risk")
_ONLY_ON = {
    "recipient_id": "opened",
    "window_from": "opened",
    "window_to": "opened",
    "aware_at": "opened",
    "risk": "opened",
    "subject_id": "subject_notified",
    "delay_reason": "authority_notified",
}


def reason_line(topic: str, field: str, value: object) -> str:
    """A delay's reason [GDPR Art. 33(1)]: one line of 1-``REASON_LENGTH`` printable characters (a code the controller
    writes, such as ``forensics-pending``); not shown in errors, as any free text might hold what it should not."""
    if not isinstance(value, str) or not value.strip() or len(value) > REASON_LENGTH:
        raise ContractError(topic, f"a reason is one line of 1-{REASON_LENGTH} characters", field)
    found = unprintable(value)
    if found is not None:
        raise ContractError(topic, f"a reason holds {found}; a reason is one printable line", field)
    return value.strip()


def incident_shape(topic: str, record: Mapping[str, Any]) -> None:
    """An incident event carries the fields of its kind and only those: an opening names the recipient, the window
    (ending after it starts), the moment of awareness and the risk; a subject's notification names the subject
    [12; GDPR Art. 33, 34]. ``ContractError`` names the first field at fault."""
    kind = record.get("kind")
    needed = _OPENED_FIELDS if kind == "opened" else ("subject_id",) if kind == "subject_notified" else ()
    for name in needed:
        if record.get(name) is None:
            raise ContractError(topic, f"required by an incident event of kind {kind}", name)
    for name, only_on in _ONLY_ON.items():
        if kind != only_on and record.get(name) is not None:
            raise ContractError(topic, f"only an incident event of kind {only_on} carries it, not {kind}", name)
    if kind != "opened" and record.get("categories"):
        raise ContractError(topic, f"only an incident event of kind opened carries it, not {kind}", "categories")
    if kind == "opened" and record["window_to"] <= record["window_from"]:  # both datetimes, or both Avro's µs
        raise ContractError(topic, "the breach window must end after it starts", "window_to")
