"""API keys and the roles they carry: who may ask the HTTP API what.

Four roles, each allowed a set of actions:

* ``dpo``: everything (the DPO's questions, the auditor's checks, the collector, the metrics);
* ``auditor``: read every answer, replay and verify;
* ``operator``: nothing but the API's own metrics (``/metrics``, for a Prometheus server): counts and latencies
  by route, which name no subject, so the key a scraper keeps in its configuration reads no one's data;
* ``service``: nothing but the collector (an upstream emitter such as the cookie banner), and only as
  the service it is named after: the ledger keeps each consent's ``source_service`` as evidence [6],
  so one service's key must not speak for another (``may_emit_as``); and only the topics, purposes and
  channels its scope names (``key_scopes``), which every service key states.

The key file is TOML and holds only SHA-256 hashes of the keys, never the keys
themselves: a leaked file does not let anyone in. ``consentflow api-key add``
writes an entry and prints the key once::

    [[keys]]
    name = "dpo-laptop"
    role = "dpo"
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

For tests and throwaway setups ``CONSENTFLOW_API_KEYS`` may hold plain keys
instead, ``role:key`` or ``role@name:key`` pairs separated by commas (a service
key needs its service's name, and its scope in brackets: ``service@cookie-banner[topics=cookie+consent;
purposes=cookies_*;channels=cookie_banner]:key`` or ``service@name[any]:key``); they are hashed on reading.
A presented key is hashed and compared with every stored hash in constant time
(``hmac.compare_digest``), so timing tells nothing about how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from consentflow.http.key_scopes import SCOPE_FIELDS, EmitScope, ScopeError, parse_scope_text, read_scope
from consentflow.http.private_file import UnsafeFile, read_private, write_private

#: The environment variable holding plain ``role:key`` / ``role@name:key`` pairs (tests, throwaway setups).
KEYS_ENV = "CONSENTFLOW_API_KEYS"
#: Shortest key accepted: 128 bits of a random key's URL-safe text is 22 characters.
MIN_KEY_LENGTH = 22
_HASH = re.compile(r"^[0-9a-f]{64}$")
_SCOPED = re.compile(r"^([^\[\]]*)(?:\[([^\[\]]*)\])?$")  # who[scope], in CONSENTFLOW_API_KEYS
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Keys travel in a header and a cookie: printable ASCII without separators keeps both simple.
_KEY = re.compile(rf"^[A-Za-z0-9_\-.~+/=]{{{MIN_KEY_LENGTH},256}}$")


class Role(StrEnum):
    """Who holds a key."""

    DPO = "dpo"
    AUDITOR = "auditor"
    SERVICE = "service"
    OPERATOR = "operator"


class Action(StrEnum):
    """What a request does; each endpoint needs one."""

    READ = "read"  # the DPO's questions, the lineage page, the access export, the record of processing
    AUDIT = "audit"  # replay and verify
    COLLECT = "collect"  # events from emitters that cannot speak Kafka
    DESCRIBE = "describe"  # the OpenAPI document: every role needs it to call what it may call
    METRICS = "metrics"  # the API's own counts and latencies, for Prometheus


#: The actions each role may take.
ALLOWED: dict[Role, frozenset[Action]] = {
    Role.DPO: frozenset(Action),
    Role.AUDITOR: frozenset({Action.READ, Action.AUDIT, Action.DESCRIBE}),
    Role.SERVICE: frozenset({Action.COLLECT, Action.DESCRIBE}),
    Role.OPERATOR: frozenset({Action.METRICS, Action.DESCRIBE}),
}


class KeyFileError(ValueError):
    """The key file (or the environment variable) is malformed; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its name (for logs and the key file), role, SHA-256 hash and, for a service key, what it may emit."""

    name: str
    role: Role
    sha256: str
    scope: EmitScope | None = None


def key_hash(key: str) -> str:
    """The SHA-256 of a key, as the key file stores it (hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key: 32 bytes from the OS's CSPRNG as URL-safe text."""
    return secrets.token_urlsafe(32)


def allows(role: Role, action: Action) -> bool:
    """Whether ``role`` may take ``action``."""
    return action in ALLOWED[role]


def may_emit_as(role: Role, key_name: str, source_service: str) -> bool:
    """Whether a key may send events naming ``source_service``: a service key only as the service it is named
    after (``source_service`` is the evidence of where a consent came from [6]); the DPO's key as any."""
    return role is not Role.SERVICE or source_service == key_name


class KeyRing:
    """The keys the server accepts."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def named(self, name: str) -> ApiKey | None:
        """The key called ``name``, or None (a page session is looked up by its key's name on every use)."""
        return next((key for key in self.keys if key.name == name), None)

    def find(self, presented: str) -> ApiKey | None:
        """The stored key matching ``presented``, or None.

        Every stored hash is compared, in constant time each, whatever matched
        first: how long this takes depends only on how many keys there are.
        """
        digest = key_hash(presented).encode()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256.encode()):
                found = key
        return found


def _checked_scope(role: Role, scope: EmitScope | None, where: str, fix: str) -> EmitScope | None:
    """A service key states its scope (``fix`` says how); no other role has one."""
    if role is Role.SERVICE and scope is None:
        raise KeyFileError(f"{where}: a service key names what it may emit: {fix}")
    if role is not Role.SERVICE and scope is not None:
        raise KeyFileError(f"{where}: only a service key has a scope ({', '.join(SCOPE_FIELDS)}); a {role.value} key has none")
    return scope


def _role(text: object, where: str) -> Role:
    try:
        return Role(str(text))
    except ValueError:
        raise KeyFileError(f"{where}: role {text!r} is not one of {', '.join(r.value for r in Role)}") from None


def read_key_file(path: Path, *, private: bool = False) -> list[ApiKey]:
    """The ``[[keys]]`` entries of a TOML key file; raises ``KeyFileError`` naming the first bad entry, or, when
    ``private`` (the server's start), a file someone else could write (``private_file``)."""
    try:
        document = tomllib.loads(read_private(path) if private else path.read_text(encoding="utf-8"))
    except UnsafeFile as exc:
        raise KeyFileError(str(exc)) from None
    except OSError as exc:
        raise KeyFileError(f"key file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"key file {path}: not TOML: {exc}") from None
    entries = document.get("keys", [])
    if not isinstance(entries, list):
        raise KeyFileError(f"key file {path}: 'keys' must be an array of tables ([[keys]])")
    keys: list[ApiKey] = []
    for index, entry in enumerate(entries, start=1):
        where = f"key file {path}, key {index}"
        if not isinstance(entry, dict):
            raise KeyFileError(f"{where}: not a table")
        unknown = sorted(set(entry) - {"name", "role", "sha256", *SCOPE_FIELDS})
        if unknown:
            raise KeyFileError(
                f"{where}: unknown field(s) {', '.join(unknown)} (a key file stores name, role, sha256 and a service's scope only)"
            )
        name, digest = entry.get("name"), entry.get("sha256")
        if not isinstance(name, str) or not _NAME.match(name):
            raise KeyFileError(f"{where}: name {name!r} must be 1-64 of letters, digits, . _ -")
        if not isinstance(digest, str) or not _HASH.match(digest):
            raise KeyFileError(f"{where} ({name}): sha256 must be 64 lowercase hex digits, the hash of the key")
        role = _role(entry.get("role"), f"{where} ({name})")
        try:
            scope = read_scope(entry)
        except ScopeError as exc:
            raise KeyFileError(f"{where} ({name}): {exc}") from None
        fix = 'add topics = [...] (with purposes and channels for consent), or scopes = "any" to let it emit anything as before'
        keys.append(ApiKey(name, role, digest, _checked_scope(role, scope, f"{where} ({name})", fix)))
    names = [k.name for k in keys]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise KeyFileError(f"key file {path}: the name {duplicate!r} is used twice")
    return keys


def parse_key_env(text: str) -> list[ApiKey]:
    """``role:key`` or ``role@name:key`` pairs, comma-separated (plain keys, hashed here); raises ``KeyFileError``
    naming the bad pair."""
    keys = []
    for index, pair in enumerate((p.strip() for p in text.split(",") if p.strip()), start=1):
        who, sep, key = pair.partition(":")
        where = f"{KEYS_ENV}, pair {index}"
        if not sep:
            raise KeyFileError(f"{where}: expected role:key or role@name:key")
        scoped = _SCOPED.match(who)
        if scoped is None:
            raise KeyFileError(f"{where}: expected role@name[scope]:key, one pair of brackets")
        role_text, named, name = scoped.group(1).partition("@")
        if not named:
            name = f"env-{index}-{role_text}"
        elif not _NAME.match(name):
            raise KeyFileError(f"{where}: name {name!r} must be 1-64 of letters, digits, . _ -")
        check_key_text(key, where)
        role = _role(role_text, where)
        try:
            scope = None if scoped.group(2) is None else parse_scope_text(scoped.group(2))
        except ScopeError as exc:
            raise KeyFileError(f"{where}: {exc}") from None
        fix = "service@NAME[topics=cookie+consent;purposes=cookies_*;channels=cookie_banner]:KEY, or service@NAME[any]:KEY"
        keys.append(ApiKey(name, role, key_hash(key), _checked_scope(role, scope, where, fix)))
    return keys


def check_key_text(key: str, where: str) -> str:
    """A key as the server accepts it: at least 22 characters of URL-safe or base64 text."""
    if not _KEY.match(key):
        raise KeyFileError(f"{where}: a key must be {MIN_KEY_LENGTH}-256 characters of A-Z a-z 0-9 _ - . ~ + / =")
    return key


def load_keys(path: Path | None, environ: dict[str, str] | None = None) -> KeyRing:
    """The keys from ``path`` (when given; refused if group or others may write it) and ``CONSENTFLOW_API_KEYS``; raises
    ``KeyFileError`` when there are none."""
    env = os.environ if environ is None else environ
    keys = read_key_file(path, private=True) if path is not None else []
    keys += parse_key_env(env.get(KEYS_ENV, ""))
    if not keys:
        raise KeyFileError(f"no API keys: give --keys FILE (create one with `consentflow api-key add`) or set {KEYS_ENV}")
    return KeyRing(keys)


def add_key(path: Path, name: str, role: Role, scope: EmitScope | None = None) -> str:
    """Append a new key's hash (and a service key's scope) to the key file (created if missing; written anew with mode
    0600) and return the key, which is stored nowhere."""
    existing = read_key_file(path) if path.exists() else []
    if not _NAME.match(name):
        raise KeyFileError(f"name {name!r} must be 1-64 of letters, digits, . _ -")
    if any(k.name == name for k in existing):
        raise KeyFileError(f"key file {path}: a key named {name!r} exists already")
    fix = "give --topics (and --purposes and --channels for consent)"
    _checked_scope(role, scope, f"key {name}", fix)
    key = new_key()
    entry = f'\n[[keys]]\nname = "{name}"\nrole = "{role.value}"\nsha256 = "{key_hash(key)}"\n'
    for field, value in ({} if scope is None else scope.fields()).items():
        entry += f"{field} = {json.dumps(value)}\n"  # JSON strings and arrays of these symbols are TOML too
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    write_private(path, before + entry)  # the whole file anew, 0600, renamed into place
    return key
