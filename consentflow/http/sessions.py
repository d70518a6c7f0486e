"""The browser pages' sessions: a random id in the cookie, the key's name and role in this process.

``/login`` checks a key once and starts a session; the cookie then carries
only the session's id (``secrets.token_urlsafe``), never the key. A session
ends when it has been idle too long, when it reaches its absolute limit, when
"Forget key" ends it (``/logout``), when its key is no longer in the key ring
or has another role (the key is looked up on every use), and when the server
stops (sessions live in this process only). The store keeps the ids' SHA-256
hashes, so its contents would not let anyone in either.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from consentflow.http.api_keys import ApiKey, KeyRing, Role

#: Minutes a session may go unused before it ends (``serve --session-idle-minutes``).
DEFAULT_IDLE_MINUTES = 30.0
#: Hours a session lasts at most, however busy (``serve --session-max-hours``).
DEFAULT_MAX_HOURS = 12.0
#: Sessions kept at once; past this the least recently used ends (a key holder cannot fill the memory).
DEFAULT_MOST = 10_000


@dataclass(frozen=True)
class SessionLimits:
    """How long a session lasts: idle and absolute limits in seconds, and how many are kept at once."""

    idle: float = DEFAULT_IDLE_MINUTES * 60
    lifetime: float = DEFAULT_MAX_HOURS * 3600
    most: int = DEFAULT_MOST
    # Seconds on a clock that never goes back; a test may give its own to pass an hour at once.
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)


@dataclass
class _Session:
    key_name: str
    role: Role
    started: float
    used: float


def _stored(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", errors="replace")).hexdigest()


class Sessions:
    """The sessions of one running server: start, look up, end. Safe to use from several threads."""

    def __init__(self, limits: SessionLimits | None = None) -> None:
        self.limits = limits or SessionLimits()
        self._by_hash: dict[str, _Session] = {}  # insertion order is use order: the first is the least recently used
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_hash)

    def start(self, key_name: str, role: Role) -> str:
        """A new session for the key named ``key_name`` with ``role``; returns its id, for the cookie only."""
        session_id = secrets.token_urlsafe(32)
        now = self.limits.clock()
        with self._lock:
            self._drop_expired(now)
            while len(self._by_hash) >= self.limits.most:
                del self._by_hash[next(iter(self._by_hash))]
            self._by_hash[_stored(session_id)] = _Session(key_name, role, now, now)
        return session_id

    def look_up(self, session_id: str, keys: KeyRing) -> ApiKey | None:
        """The key a live session stands for, as ``keys`` holds it now; None, and the session ended, when it has
        expired or its key is gone or has another role."""
        stored = _stored(session_id)
        now = self.limits.clock()
        with self._lock:
            session = self._by_hash.pop(stored, None)
            if session is None or self._expired(session, now):
                return None
            key = keys.named(session.key_name)
            if key is None or key.role is not session.role:
                return None
            session.used = now
            self._by_hash[stored] = session  # back at the end: the most recently used
            return key

    def end(self, session_id: str) -> bool:
        """End a session ("Forget key"); whether it was live."""
        with self._lock:
            return self._by_hash.pop(_stored(session_id), None) is not None

    def _expired(self, session: _Session, now: float) -> bool:
        return now - session.used > self.limits.idle or now - session.started > self.limits.lifetime

    def _drop_expired(self, now: float) -> None:
        for stored in [s for s, session in self._by_hash.items() if self._expired(session, now)]:
            del self._by_hash[stored]
