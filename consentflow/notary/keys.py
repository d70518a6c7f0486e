"""The notary's key files (issue 22): the one place the signed-note keys touch a file system, so ``core.checkpoint``
keeps no I/O. The private key file is readable by its owner only; the public (verifier) key is what an auditor gets."""

from __future__ import annotations

import os
from pathlib import Path

from consentflow.core.checkpoint import NoteError, Signer, Verifier

PRIVATE_MODE = 0o600


def write_key_pair(name: str, private_path: Path, public_path: Path) -> Signer:
    """Generate a key and write it: the private key readable by its owner only (0600), never over an existing file,
    then the verifier key (the public one, for auditors)."""
    signer = Signer.generate(name)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(descriptor, "w") as out:
        os.fchmod(out.fileno(), PRIVATE_MODE)  # whatever the umask
        out.write(f"{signer}\n")
    public_path.write_text(f"{signer.verifier}\n")
    return signer


def read_signer(path: Path) -> Signer:
    """The private key in ``path``; refused if others may read it."""
    mode = path.stat().st_mode
    if mode & 0o077:
        raise NoteError(f"{path} may be read by others (mode {mode & 0o777:o}); chmod 600 it")
    return Signer.parse(path.read_text())


def read_verifier(path: Path) -> Verifier:
    """The verifier key in ``path``."""
    return Verifier.parse(path.read_text())
