"""The recipient registry as a YAML file [4, 7]: parsed and validated whole before anything is published.

A file lists registry versions::

    source_service: vendor-registry      # optional (default vendor-registry)
    policy_version: "2020-11-14"         # optional (default: the current policy)
    recipients:
      - recipient_id: postwave
        name: Postwave Inc.
        kind: emailing_provider
        country: US                      # ISO 3166-1 alpha-2, where the recipient processes the data [7]
        since: 2021-01-03T00:00:00Z      # this version is in force from then on
        allowed_purposes: [marketing, service_information]
        transfer_mechanisms:             # optional; valid_until optional (open-ended)
          - {mechanism: scc, valid_from: 2020-03-10T00:00:00Z}
        active: true                     # optional; false off-boards the recipient

Every entry goes through ``events.recipient_registered`` (the constructor
upstream services use), plus what only a file can get wrong: unknown keys, a
country code that is well formed but not a country (``UK``), ``within_eea``
for a recipient outside the EU/EEA [7], times without a zone, and the same
recipient twice from the same instant. The first problem rejects the whole
file with a message naming the entry and the field.

Event ids are derived from each entry's content, so loading the same file
again publishes the same records, which the registry and the ``recipients``
table absorb; a changed entry must come with a new ``since``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pycountry
import yaml

from consentflow.contracts.errors import ContractError
from consentflow.contracts.events import Event, MechanismPeriod, recipient_registered
from consentflow.policy.geography import in_eea
from consentflow.policy.vocabulary import CURRENT_POLICY_VERSION, TransferMechanism

DEFAULT_SOURCE_SERVICE = "vendor-registry"
_FILE_FIELDS = frozenset({"recipients", "source_service", "policy_version"})
_REQUIRED = ("recipient_id", "name", "kind", "country", "since", "allowed_purposes")
_OPTIONAL = ("transfer_mechanisms", "active", "event_id")
_PERIOD_REQUIRED = ("mechanism", "valid_from")
_PERIOD_OPTIONAL = ("valid_until",)
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_MECHANISMS = tuple(m.value for m in TransferMechanism if m is not TransferMechanism.UNKNOWN)  # unknown: a reader's fallback only
# Fixed namespace of the content-derived event ids: same entry, same id, on every machine.
_EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "consentflow:recipient-registry")


class RegistryFileError(ValueError):
    """A registry file that cannot be loaded; the message names the entry and the field."""


class _EntryError(Exception):
    """A problem in one entry: the field and what is wrong (the file error adds where)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def load_registry_file(path: str | Path) -> list[Event]:
    """Parse and validate a registry YAML file into registry events; raises ``RegistryFileError``."""
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryFileError(f"{origin}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RegistryFileError(f"{origin}: not valid YAML{at}: {problem}") from None
    return parse_registry(data, origin)


def parse_registry(data: object, origin: str = "registry") -> list[Event]:
    """Validate parsed YAML (``{recipients: [...]}``) into registry events; raises ``RegistryFileError``."""
    if not isinstance(data, Mapping):
        raise RegistryFileError(f"{origin}: expected a mapping with a 'recipients' list, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _FILE_FIELDS)
    if unknown:
        raise RegistryFileError(
            f"{origin}: unknown top-level key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_FILE_FIELDS))})"
        )
    entries = data.get("recipients")
    if not isinstance(entries, list) or not entries:
        raise RegistryFileError(f"{origin}: 'recipients' must be a non-empty list of registry entries")
    source_service = data.get("source_service", DEFAULT_SOURCE_SERVICE)
    policy_version = data.get("policy_version", CURRENT_POLICY_VERSION)
    if isinstance(policy_version, date):  # an unquoted 2020-11-14 is a YAML date
        policy_version = policy_version.isoformat()
    events: list[Event] = []
    seen: dict[tuple[str, datetime], int] = {}
    for number, entry in enumerate(entries, start=1):
        name = entry.get("recipient_id") if isinstance(entry, Mapping) else None
        where = f"{origin}: entry {number}" + (f" ({name})" if isinstance(name, str) else "")
        try:
            event = _entry_event(entry, source_service, policy_version)
        except _EntryError as exc:
            raise RegistryFileError(f"{where}: field {exc.field}: {exc.reason}") from None
        except ContractError as exc:
            field = f"field {exc.field}: " if exc.field else ""
            raise RegistryFileError(f"{where}: {field}{exc.reason}") from None
        version = (event.record["recipient_id"], event.record["occurred_at"])
        if version in seen:
            raise RegistryFileError(
                f"{where}: field since: {version[0]} already has a version in force from "
                f"{version[1].isoformat()} (entry {seen[version]}); give the new version a later since"
            )
        seen[version] = number
        events.append(event)
    return events


def _entry_event(entry: object, source_service: Any, policy_version: Any) -> Event:
    """One entry as a validated registry event."""
    if not isinstance(entry, Mapping):
        raise _EntryError("-", f"expected a mapping of {', '.join(_REQUIRED)}, got {type(entry).__name__}")
    _check_keys(entry, _REQUIRED, _OPTIONAL, "")
    country = entry["country"]
    if not isinstance(country, str) or not _COUNTRY.match(country) or pycountry.countries.get(alpha_2=country) is None:
        raise _EntryError("country", f"{country!r} is not an ISO 3166-1 alpha-2 country code")
    purposes = entry["allowed_purposes"]
    if not isinstance(purposes, list) or not purposes:
        raise _EntryError("allowed_purposes", f"expected a non-empty list of purposes, got {purposes!r}")
    active = entry.get("active", True)
    if not isinstance(active, bool):
        raise _EntryError("active", f"expected true or false, got {active!r}")
    periods = _periods(entry.get("transfer_mechanisms", []), country)
    event = recipient_registered(
        entry["recipient_id"],
        name=entry["name"],
        kind=entry["kind"],
        country=country,
        transfer_mechanisms=periods,
        allowed_purposes=purposes,
        active=active,
        source_service=source_service,
        occurred_at=_instant(entry["since"], "since"),
        event_id=entry.get("event_id"),
        policy_version=policy_version,
    )
    if entry.get("event_id") is not None:
        return event
    return Event(event.topic, {**event.record, "event_id": _content_event_id(event.record)})


def _check_keys(entry: Mapping[Any, Any], required: tuple[str, ...], optional: tuple[str, ...], prefix: str) -> None:
    """Every required key present, nothing unknown (a stray key could carry a personal data value)."""
    for key in required:
        if key not in entry or entry[key] is None:
            raise _EntryError(prefix + key, "missing (required)")
    unknown = sorted(str(k) for k in entry if k not in required and k not in optional)
    if unknown:
        raise _EntryError(prefix + unknown[0], f"unknown field (allowed: {', '.join((*required, *optional))})")


def _periods(value: object, country: str) -> list[MechanismPeriod]:
    """The transfer mechanisms with their dates [7]."""
    if not isinstance(value, list):
        raise _EntryError("transfer_mechanisms", f"expected a list of {{mechanism, valid_from, valid_until}}, got {value!r}")
    periods = []
    for index, item in enumerate(value):
        field = f"transfer_mechanisms[{index}]"
        if not isinstance(item, Mapping):
            raise _EntryError(field, f"expected a mapping of mechanism, valid_from, valid_until, got {item!r}")
        _check_keys(item, _PERIOD_REQUIRED, _PERIOD_OPTIONAL, f"{field}.")
        start = _instant(item["valid_from"], f"{field}.valid_from")
        end = None if item.get("valid_until") is None else _instant(item["valid_until"], f"{field}.valid_until")
        if end is not None and end <= start:
            raise _EntryError(f"{field}.valid_until", f"{end.isoformat()} is not after valid_from {start.isoformat()}")
        if item["mechanism"] not in _MECHANISMS:
            raise _EntryError(
                f"{field}.mechanism", f"{item['mechanism']!r} is not a TransferMechanism (one of {', '.join(_MECHANISMS)})"
            )
        if item["mechanism"] == TransferMechanism.WITHIN_EEA.value and not in_eea(country):
            raise _EntryError(f"{field}.mechanism", f"within_eea is only for recipients in the EU/EEA, and {country} is not [7]")
        periods.append(MechanismPeriod(mechanism=item["mechanism"], valid_from=start, valid_until=end))
    return periods


def _instant(value: object, field: str) -> datetime:
    """A UTC instant from a YAML timestamp, a date (midnight UTC) or ISO 8601 text; a time without a zone is refused."""
    if isinstance(value, str):
        try:
            # A date alone is a day, midnight UTC, as a YAML date is (fromisoformat would make it a naive time).
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise _EntryError(field, f"{value!r} is not an ISO 8601 date or time (e.g. 2021-01-03T00:00:00Z)") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _EntryError(
                field, f"{value.isoformat()} has no time zone; write it as a UTC instant, e.g. {value.isoformat()}Z"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise _EntryError(field, f"{value!r} is not a date or time")


def _content_event_id(record: Mapping[str, Any]) -> str:
    """A UUID derived from everything in the record but its event id."""
    content = {k: v for k, v in record.items() if k != "event_id"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=lambda t: t.isoformat())
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, canonical))


def registry_yaml(events: list[Event], *, source_service: str = DEFAULT_SOURCE_SERVICE) -> str:
    """Registry events written back as a registry file (how the shipped example is made from the generator's registry)."""
    entries = []
    for event in events:
        r = event.record
        entry: dict[str, Any] = {
            "recipient_id": r["recipient_id"],
            "name": r["name"],
            "kind": r["kind"],
            "country": r["country"],
            "since": r["occurred_at"],
            "allowed_purposes": list(r["allowed_purposes"]),
        }
        if r["transfer_mechanisms"]:
            entry["transfer_mechanisms"] = [
                {"mechanism": m["mechanism"], "valid_from": m["valid_from"]}
                | ({"valid_until": m["valid_until"]} if m["valid_until"] is not None else {})
                for m in r["transfer_mechanisms"]
            ]
        if not r["active"]:
            entry["active"] = False
        entries.append(entry)
    document = {"source_service": source_service, "recipients": entries}
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=120)


class _PlainDumper(yaml.SafeDumper):
    """Writes a shared value (the same instant in many entries) out each time: no anchors for a person to follow."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never an alias."""
        return True
