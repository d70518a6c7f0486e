"""The key ring of a running server follows its key file: a key removed from the file stops working at once.

``serve --keys FILE`` reads the file at start; afterwards every lookup first
checks whether the file changed (its inode, size and modification time: one
``stat``) and reads it again when it did. A key removed, or given another
role, then no longer opens anything, and a page session started with it ends
(``sessions`` looks the key up on every use). A file that no longer reads, or
that group or others may now write, is not believed: the keys as last read
stay, and the server logs why once per change.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from consentflow.http.api_keys import KEYS_ENV, ApiKey, KeyFileError, KeyRing, load_keys, parse_key_env, read_key_file

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        facts = path.stat()
    except OSError:
        return None
    return (facts.st_ino, facts.st_size, facts.st_mtime_ns)


class FollowedKeyRing(KeyRing):
    """The keys of a key file as it is now, and those of ``CONSENTFLOW_API_KEYS`` as they were at start."""

    def __init__(self, path: Path, environ: dict[str, str] | None = None) -> None:
        self.path = path
        self._stamp = _stamp(path)
        self._fixed = tuple(parse_key_env((os.environ if environ is None else environ).get(KEYS_ENV, "")))
        super().__init__(load_keys(path, environ).keys)  # at start a bad file is refused, as without following
        self._lock = threading.Lock()

    def _follow(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self.keys = (*read_key_file(self.path, private=True), *self._fixed)
            except KeyFileError as exc:
                log.warning("key file changed but is not used, the keys as last read stay: %s", exc)
                return
            log.info("key file %s read again: %d keys", self.path, len(self.keys))

    def named(self, name: str) -> ApiKey | None:
        """The key called ``name`` as the file holds it now, or None."""
        self._follow()
        return super().named(name)

    def find(self, presented: str) -> ApiKey | None:
        """The key matching ``presented`` as the file holds it now, or None."""
        self._follow()
        return super().find(presented)
