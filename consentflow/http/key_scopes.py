"""What a service key may emit through the collector: its topics, and for consent events its purposes and channels.

A service key speaks for one upstream service (``api_keys.may_emit_as``), and a
service emits only some events: the cookie banner records consent to cookies,
given on the banner, and cookie accesses; it never discloses data, closes an
account or records a marketing consent given on the registration form (issue 21).
The key file says so per key::

    [[keys]]
    name = "cookie-banner"
    role = "service"
    sha256 = "..."
    topics = ["cookie", "consent"]
    purposes = ["cookies_*"]        # consent events only; shell-style patterns over the policy's purposes
    channels = ["cookie_banner"]    # consent events only

``purposes`` and ``channels`` are required when ``consent`` is among the topics,
and refused otherwise. A service key that may emit anything must say so with
``scopes = "any"`` (keys from before scopes existed): a service key that says
neither is refused when the key file is read, so no key is unrestricted by
omission. The DPO's keys are never scoped; auditors' keys do not emit.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from consentflow.contracts.edge_checks import known_symbols
from consentflow.contracts.json_events import CONSTRUCTORS
from consentflow.contracts.topics import CONSENT
from consentflow.policy.vocabulary import ConsentChannel, Purpose

#: The value of ``scopes`` that lets a service key emit anything.
ANY = "any"
#: The key file's fields that scope a key.
SCOPE_FIELDS = ("topics", "purposes", "channels", "scopes")
#: The topics the collector takes, the only ones a scope may name.
COLLECTED_TOPICS = tuple(topic.short_name for topic in CONSTRUCTORS)
_PURPOSES = tuple(known_symbols(Purpose))
_CHANNELS = tuple(known_symbols(ConsentChannel))
# A pattern is a symbol with shell wildcards; nothing else, so it can never be read as anything but a pattern.
_PATTERN = re.compile(r"^[a-z0-9_*?]{1,64}$")


class ScopeError(ValueError):
    """A scope that cannot be read; the message names the field and what is wrong."""


@dataclass(frozen=True)
class EmitScope:
    """What a service key may emit: ``topics`` None for anything (``scopes = "any"``), else those topics, and consent
    events only for a purpose matching one of ``purposes`` given through a channel matching one of ``channels``."""

    topics: frozenset[str] | None
    purposes: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()

    def fields(self) -> dict[str, object]:
        """The key file's fields for this scope, as ``read_scope`` reads them back."""
        if self.topics is None:
            return {"scopes": ANY}
        ordered = [t for t in COLLECTED_TOPICS if t in self.topics]
        written: dict[str, object] = {"topics": ordered}
        if CONSENT.short_name in self.topics:
            written |= {"purposes": list(self.purposes), "channels": list(self.channels)}
        return written


#: The scope of a service key that may emit anything: only ever written out explicitly.
UNRESTRICTED = EmitScope(None)


@dataclass(frozen=True)
class Refusal:
    """Why a scope refuses an event: the field at fault and one line naming what is not allowed."""

    field: str
    detail: str


def _patterns(field: str, values: Iterable[object], symbols: tuple[str, ...], kind: str) -> tuple[str, ...]:
    patterns = []
    for value in values:
        if not isinstance(value, str) or not _PATTERN.match(value):
            raise ScopeError(f"{field}: {value!r} is not a {kind} or a pattern of them (lowercase, digits, _, * and ?)")
        if not any(fnmatch.fnmatchcase(symbol, value) for symbol in symbols):
            raise ScopeError(f"{field}: {value!r} matches no {kind} (one of {', '.join(symbols)})")
        patterns.append(value)
    if not patterns:
        raise ScopeError(f"{field}: name at least one {kind} or pattern")
    return tuple(patterns)


def scope_of(topics: Iterable[object], purposes: Iterable[object] | None, channels: Iterable[object] | None) -> EmitScope:
    """The scope naming ``topics`` (collector topics) and, when ``consent`` is one, ``purposes`` and ``channels``
    (policy symbols or shell-style patterns of them); ``ScopeError`` naming the field at fault."""
    named = []
    for topic in topics:
        if topic not in COLLECTED_TOPICS:
            raise ScopeError(f"topics: {topic!r} is not a topic the collector takes (one of {', '.join(COLLECTED_TOPICS)})")
        named.append(str(topic))
    if not named:
        raise ScopeError(f"topics: name at least one of {', '.join(COLLECTED_TOPICS)}")
    if CONSENT.short_name not in named:
        if purposes is not None or channels is not None:
            raise ScopeError("purposes and channels scope consent events: add consent to the topics or leave them out")
        return EmitScope(frozenset(named))
    if purposes is None or channels is None:
        missing = " and ".join(f for f, v in (("purposes", purposes), ("channels", channels)) if v is None)
        raise ScopeError(f"{missing}: a key that may emit consent events names the purposes and channels it may record")
    return EmitScope(
        frozenset(named),
        _patterns("purposes", purposes, _PURPOSES, "purpose"),
        _patterns("channels", channels, _CHANNELS, "channel"),
    )


def _list(entry: Mapping[str, object], field: str) -> list[object] | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ScopeError(f'{field}: expected a list of strings, e.g. {field} = ["..."]')
    return value


def read_scope(entry: Mapping[str, object]) -> EmitScope | None:
    """The scope a key file entry gives: ``scopes = "any"``, or ``topics`` (and ``purposes``, ``channels``); None when
    it gives none. ``ScopeError`` naming the field at fault."""
    if "scopes" in entry:
        if entry["scopes"] != ANY:
            raise ScopeError(f'scopes: {entry["scopes"]!r} is not "{ANY}" (name topics, purposes and channels instead)')
        others = [f for f in SCOPE_FIELDS if f != "scopes" and f in entry]
        if others:
            raise ScopeError(f'scopes = "{ANY}" and {", ".join(others)} exclude each other')
        return UNRESTRICTED
    topics = _list(entry, "topics")
    if topics is None:
        if "purposes" in entry or "channels" in entry:
            raise ScopeError("purposes and channels scope consent events: name the topics too")
        return None
    return scope_of(topics, _list(entry, "purposes"), _list(entry, "channels"))


def parse_scope_text(text: str) -> EmitScope:
    """A scope as ``CONSENTFLOW_API_KEYS`` spells it between brackets: ``any``, or
    ``topics=cookie+consent;purposes=cookies_*;channels=cookie_banner``."""
    if text == ANY:
        return UNRESTRICTED
    entry: dict[str, object] = {}
    for part in (p for p in text.split(";") if p):
        field, sep, values = part.partition("=")
        if not sep or field not in SCOPE_FIELDS[:3]:
            raise ScopeError(f"scope {text!r}: expected {ANY}, or topics=a+b;purposes=p+q;channels=c")
        entry[field] = [v for v in values.split("+") if v]
    scope = read_scope(entry)
    if scope is None:
        raise ScopeError(f"scope {text!r}: name the topics")
    return scope


def refusal(scope: EmitScope | None, topic: str, record: Mapping[str, object]) -> Refusal | None:
    """Why a service key's ``scope`` does not allow the event ``record`` of ``topic`` (a collector topic's short name);
    None if it does. A service key without a scope emits nothing (the key file readers refuse one)."""
    if scope is None:
        return Refusal(
            "topic", f'states no scope: it may emit nothing until the key file names its topics or says scopes = "{ANY}"'
        )
    if scope.topics is None:
        return None
    if topic not in scope.topics:
        allowed = ", ".join(t for t in COLLECTED_TOPICS if t in scope.topics)
        return Refusal("topic", f"may not emit to topic {topic} (its topics: {allowed})")
    if topic != CONSENT.short_name:
        return None
    purpose, channel = str(record.get("purpose")), str(record.get("channel"))
    if not any(fnmatch.fnmatchcase(purpose, pattern) for pattern in scope.purposes):
        return Refusal("purpose", f"may not record consent for purpose {purpose} (its purposes: {', '.join(scope.purposes)})")
    if not any(fnmatch.fnmatchcase(channel, pattern) for pattern in scope.channels):
        return Refusal(
            "channel", f"may not record consent given through channel {channel} (its channels: {', '.join(scope.channels)})"
        )
    return None
