"""The key file kept private: written whole with mode 0600, read only when nobody else can write it (issue 21).

Whoever can write the key file can add a ``dpo`` key. ``write_private`` makes
the new contents in a temporary file created 0600 beside it (``mkstemp``: the mode
is set by the ``open`` that creates it, whatever the umask, never widened then
narrowed) and renames it over the old one, so no reader ever sees a
half-written file or a moment of wider permissions. ``read_private`` refuses,
as ssh does for its keys, a file that group or others may write, or that
someone else owns, in one line saying how to fix it; it checks the file it has
opened (``fstat``), not a name that could be swapped in between.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

#: Permission bits that let someone other than the owner change the file.
_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


class UnsafeFile(ValueError):
    """A file others could have changed; the message says which and how to fix it, on one line."""


def read_private(path: Path) -> str:
    """The text of ``path`` (UTF-8), if only its owner (you, or root) may write it; else ``UnsafeFile``.
    ``OSError`` when it cannot be read."""
    with path.open("rb") as file:
        status = os.fstat(file.fileno())
        mode = stat.S_IMODE(status.st_mode)
        if mode & _WRITABLE_BY_OTHERS:
            who = " and ".join(w for w, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if mode & bit)
            raise UnsafeFile(
                f"key file {path} is writable by {who} (mode {mode:04o}): anyone who can write it can add a dpo key; "
                f"run chmod 600 {path}"
            )
        if status.st_uid not in (os.getuid(), 0):
            raise UnsafeFile(
                f"key file {path} is owned by uid {status.st_uid}, not by you or root: its owner can add a dpo key; chown it"
            )
        return file.read().decode("utf-8")


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) at once, as a file of mode 0600."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())  # the rename must not expose an empty file after a crash
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
