"""The notary's key files: keygen writes a private key only its owner reads, and both keys read back."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from consentflow.core.checkpoint import NoteError
from consentflow.notary.keys import read_signer, read_verifier, write_key_pair

ORIGIN = "consentflow.example/consent-log"


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    private, public = tmp_path / "notary.key", tmp_path / "notary.pub"
    signer = write_key_pair(ORIGIN, private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert read_signer(private).verifier == signer.verifier == read_verifier(public)
    assert private.read_text().startswith(f"PRIVATE+KEY+{ORIGIN}+{signer.verifier.key_id:08x}+")
    with pytest.raises(FileExistsError):
        write_key_pair(ORIGIN, private, tmp_path / "other.pub")
    private.chmod(0o644)
    with pytest.raises(NoteError, match=re.escape("may be read by others (mode 644); chmod 600 it")):
        read_signer(private)
