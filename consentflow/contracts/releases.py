"""The Avro contracts in ``schemas/``: every released version, found by name or fingerprint.

Layout: ``schemas/<RecordName>/v<N>.avsc``. A released file is never edited;
a change is a new ``v<N+1>.avsc`` beside it, so anyone holding ``schemas/`` can
decode any message ever written (the registry-free framing finds the writer
schema by its CRC-64-AVRO fingerprint).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
import fastavro.write
from fastavro.schema import fingerprint, to_parsing_canonical_form

import consentflow.contracts.uuids  # noqa: F401  # registers fastavro's uuid reader and writer: ids decode as canonical text
from consentflow.contracts.avro_plan import RecordPlan, record_plan

_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")

# fastavro writes a naive datetime as *local* time (time.mktime): on a host not
# set to UTC the instant would silently shift. Event times are UTC instants.
_fastavro_timestamp_micros = fastavro.write.LOGICAL_WRITERS["long-timestamp-micros"]


def is_naive(value: object) -> bool:
    """Whether ``value`` is a datetime without a time zone (not an instant)."""
    return isinstance(value, datetime) and value.utcoffset() is None


def _utc_micros(datum: Any, *args: Any) -> Any:
    if is_naive(datum):
        raise ValueError(f"{datum.isoformat()} has no time zone; timestamps are UTC instants")
    return _fastavro_timestamp_micros(datum, *args)


fastavro.write.LOGICAL_WRITERS["long-timestamp-micros"] = _utc_micros


@dataclass(frozen=True)
class Contract:
    """One released version of one record schema."""

    name: str  # record name without namespace, e.g. "ConsentEvent"
    version: int
    path: Path
    schema: dict[str, Any]  # the JSON document as written
    parsed: Any  # fastavro's parsed form
    canonical: str  # Avro Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as single-object encoding writes it

    @cached_property
    def full_name(self) -> str:
        """Namespace-qualified record name (read for every message decoded: made once)."""
        return f"{self.schema.get('namespace', '')}.{self.name}".lstrip(".")

    @cached_property
    def plan(self) -> RecordPlan | None:
        """How records of this contract are written and read without fastavro (``avro_plan``), made at the first
        one; None when the schema holds a type the plan does not know (fastavro then does it all)."""
        return record_plan(self.parsed)


class ContractStore:
    """All contracts found under a ``schemas/`` directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, list[Contract]] = {}
        self._by_fingerprint: dict[bytes, Contract] = {}
        for record_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
            versions = []
            for file in record_dir.iterdir():
                match = _VERSION_FILE.match(file.name)
                if match:
                    versions.append(_load(record_dir.name, int(match.group(1)), file))
            if not versions:
                continue
            versions.sort(key=lambda c: c.version)
            self._by_name[record_dir.name] = versions
            for contract in versions:
                self._by_fingerprint[contract.fingerprint] = contract

    def names(self) -> list[str]:
        """Record names with at least one released version."""
        return sorted(self._by_name)

    def versions(self, name: str) -> list[Contract]:
        """Every released version of a record, oldest first."""
        try:
            return list(self._by_name[name])
        except KeyError:
            raise KeyError(f"no contract named {name!r} under {self.root}") from None

    def latest(self, name: str) -> Contract:
        """The newest version of a record: the reader schema for decoding (asked for every message: no copy)."""
        try:
            return self._by_name[name][-1]
        except KeyError:
            raise KeyError(f"no contract named {name!r} under {self.root}") from None

    def by_fingerprint(self, fp: bytes) -> Contract | None:
        """The contract with this CRC-64-AVRO fingerprint, if it was ever released."""
        return self._by_fingerprint.get(fp)

    def all(self) -> list[Contract]:
        """Every version of every record."""
        return [c for versions in self._by_name.values() for c in versions]


def _load(name: str, version: int, path: Path) -> Contract:
    schema = json.loads(path.read_text(encoding="utf-8"))
    if schema.get("name") != name:
        raise ValueError(f"{path}: record name {schema.get('name')!r} does not match its folder {name!r}")
    # _write_hint=False keeps fastavro from adding keys to our dict; a fresh copy is parsed anyway.
    parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    canonical = to_parsing_canonical_form(schema)
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return Contract(name, version, path, schema, parsed, canonical, fp)


def schemas_root() -> Path:
    """The ``schemas/`` folder shipped with the package."""
    return Path(str(resources.files("consentflow.schemas")))


@cache
def default_store() -> ContractStore:
    """The contracts shipped with this installation (loaded once per process)."""
    return ContractStore(schemas_root())
