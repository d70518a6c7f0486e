"""Signed checkpoints (issue 22): C2SP signed notes and tlog checkpoints, Ed25519. Held against the signed-note
specification's own example, and against PyNaCl (libsodium), a second Ed25519 implementation, both ways; every
malformed note, key or checkpoint is refused with its fault named."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

import nacl.encoding
import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentflow.core.checkpoint import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    split_notes,
    time_extension,
)
from consentflow.core.merkle import MerkleTree

ORIGIN = "consentflow.example/consent-log"
SIGNED_AT = datetime(2026, 12, 6, 12, 0, 0, 250_000, tzinfo=UTC)
# c2sp.org/signed-note, "Example": this verifier key verifies this note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate(ORIGIN)


def checkpoint(size: int = 3) -> Checkpoint:
    tree = MerkleTree()
    tree.extend(b"leaf %d" % i for i in range(size))
    return Checkpoint(ORIGIN, size, tree.root(), (time_extension(SIGNED_AT),))


def test_the_specifications_example_verifies() -> None:
    verifier = Verifier.parse(SPEC_VKEY)
    assert open_note(SPEC_NOTE, verifier) == "This is an example message.\n"
    assert str(verifier) == SPEC_VKEY


def test_a_checkpoint_is_written_as_tlog_checkpoint_says(signer: Signer) -> None:
    cp = checkpoint()
    note = sign_checkpoint(cp, signer)
    root = base64.b64encode(cp.root).decode()
    text, signatures = note.split("\n\n")
    assert text == f"{ORIGIN}\n3\n{root}\ntime 2026-12-06T12:00:00.250000Z"
    name, encoded = signatures.removeprefix("— ").removesuffix("\n").split(" ")
    assert name == ORIGIN
    signature = base64.b64decode(encoded)
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + signer.verifier.public_key).digest()[:4]
    assert signature[:4] == expected_id and len(signature) == 68
    opened = open_checkpoint(note, signer.verifier, origin=ORIGIN)
    assert opened == cp and opened.time == SIGNED_AT


LINE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


@given(origin=LINE, size=st.integers(0, 2**63), root=st.binary(min_size=32, max_size=32), extensions=st.lists(LINE, max_size=3))
def test_any_checkpoint_reads_back_as_signed(signer: Signer, origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    """Whatever the origin (UTF-8, spaces, dashes) and the extension lines, a signed checkpoint opens as it was."""
    cp = Checkpoint(origin, size, root, tuple(e for e in extensions if not e.startswith("time ")))
    assert open_checkpoint(sign_checkpoint(cp, signer).encode(), signer.verifier, origin=origin) == cp


def test_pynacl_verifies_our_signatures_and_we_verify_its(signer: Signer) -> None:
    note = sign_checkpoint(checkpoint(), signer)
    text, _, line = note.rpartition("\n\n")
    signature = base64.b64decode(line.split(" ")[-1])
    nacl.signing.VerifyKey(signer.verifier.public_key).verify((text + "\n").encode(), signature[4:])

    theirs = nacl.signing.SigningKey.generate()
    public_key = theirs.verify_key.encode()
    material = base64.b64encode(b"\x01" + public_key).decode()
    vkey = f"{ORIGIN}+{key_id(ORIGIN, public_key):08x}+{material}"
    body = checkpoint(5).text()
    signed = theirs.sign(body.encode()).signature
    their_note = f"{body}\n— {ORIGIN} {base64.b64encode(key_id(ORIGIN, public_key).to_bytes(4, 'big') + signed).decode()}\n"
    assert open_checkpoint(their_note, Verifier.parse(vkey)).size == 5


def test_other_keys_signatures_are_ignored(signer: Signer) -> None:
    """signed-note: a witness's cosignature or an old key's beside ours does not stop the note."""
    witness = Signer.generate("witness.example")
    note = sign_checkpoint(checkpoint(), signer)
    cosigned = note + sign_note(checkpoint().text(), witness).rpartition("\n\n")[2]
    assert open_checkpoint(cosigned, signer.verifier) == checkpoint()
    assert open_checkpoint(cosigned, witness.verifier) == checkpoint()


def test_a_note_signed_with_another_key_is_refused(signer: Signer) -> None:
    forger = Signer.generate(ORIGIN)  # same name, another key: another key ID
    with pytest.raises(NoteError, match=r"no signature by the trusted key .* signed with another key"):
        open_checkpoint(sign_checkpoint(checkpoint(), forger), signer.verifier)


def test_an_altered_checkpoint_is_refused(signer: Signer) -> None:
    note = sign_checkpoint(checkpoint(3), signer)
    altered = note.replace(f"{ORIGIN}\n3\n", f"{ORIGIN}\n4\n")
    with pytest.raises(NoteError, match=r"signature by .*\+[0-9a-f]{8} does not verify: the note was altered"):
        open_checkpoint(altered, signer.verifier)


def test_a_checkpoint_of_another_log_is_refused(signer: Signer) -> None:
    with pytest.raises(NoteError, match=re.escape("is of log 'consentflow.example/consent-log', not 'other.example/log'")):
        open_checkpoint(sign_checkpoint(checkpoint(), signer), signer.verifier, origin="other.example/log")


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line before its signatures"),
        (lambda n: n.rstrip("\n"), "must end with a newline"),
        (lambda n: n.replace("\n\n", "\r\n\n"), "no control character but newline, found 0x0d"),
        (lambda n: n.replace("— ", "- "), "does not start with an em dash"),
        (lambda n: n[: n.rindex(" ") + 1] + "not*base64\n", "signature line 1 is not standard base64"),
        (lambda n: n[: n.rindex(" ") + 1] + "AAAA\n", "too short to hold a key ID"),
        (lambda n: n[: n.index("\n\n") + 2], "no signature lines"),
        (lambda n: n.replace("— consentflow", "— consent+flow"), "must be non-empty, with no spaces and no '\\+'"),
    ],
)
def test_malformed_notes_are_refused(signer: Signer, mangle: object, reason: str) -> None:
    note = sign_checkpoint(checkpoint(), signer)
    with pytest.raises(NoteError, match=reason):
        open_note(mangle(note), signer.verifier)  # type: ignore[operator]


def test_a_note_that_is_not_utf8_is_refused(signer: Signer) -> None:
    with pytest.raises(NoteError, match=re.escape("not valid UTF-8 (byte 3)")):
        open_note(b"abc\xff\n\n", signer.verifier)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{ORIGIN}\n3\n", "an origin, a size and a root hash: 2 line"),
        ("\n3\nAAAA\n", "origin line is empty"),
        (f"{ORIGIN}\n03\n{'A' * 43}=\n", "tree size '03' is not a decimal without leading zeros"),
        (f"{ORIGIN}\n-3\n{'A' * 43}=\n", "tree size '-3'"),
        (f"{ORIGIN}\n3\nAAAA\n", "root hash is 3 bytes, not 32"),
        (f"{ORIGIN}\n3\n{'A' * 43}=\n\n", "an empty extension line"),
        (f"{ORIGIN}\n3\n{'A' * 43}=\ntime yesterday\n", "time extension 'yesterday' is not"),
        (f"{ORIGIN}\n3\n{'A' * 43}=", "must end with a newline"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("example.com/foo+530d903a", "three parts"),
        ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not 8 lowercase hex digits"),
        ("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match the key and name"),
        ("example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match the key and name"),
        ("example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "type 0x02 is not Ed25519"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYc", "32 bytes, this one 26"),
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Verifier.parse(vkey)


def test_keys_whose_base64_holds_a_plus_are_read() -> None:
    """Standard base64 has '+': only the name and the key ID are split off at the first two."""
    signers = [Signer.generate(ORIGIN) for _ in range(40)]
    plus = [s for s in signers if "+" in str(s.verifier).split("+", 2)[2]]
    assert plus, "no key of 40 had a '+' in its base64"
    for s in plus:
        assert Verifier.parse(str(s.verifier)) == s.verifier
        assert Signer.parse(str(s)).verifier == s.verifier


def test_a_private_key_naming_another_key_id_is_refused(signer: Signer) -> None:
    text = str(signer)
    wrong = text.replace(f"+{signer.verifier.key_id:08x}+", "+00000000+")
    with pytest.raises(NoteError, match="private key ID '00000000' does not match"):
        Signer.parse(wrong)
    assert Signer.parse(text).verifier == signer.verifier
    with pytest.raises(NoteError, match=r"starts with PRIVATE\+KEY\+"):
        Signer.parse(str(signer.verifier))


def test_split_notes_gives_back_each_note_of_a_file_that_holds_several() -> None:
    """`checkpoint latest` prints a note a log, one after another; a note with a witness's second signature stays one."""
    signer, witness = Signer.generate("log.example/a"), Signer.generate("witness.example")
    first = sign_checkpoint(Checkpoint("log.example/a/ledger/0", 3, bytes(32)), signer)
    second = sign_checkpoint(Checkpoint("log.example/a/ledger/1", 5, bytes(range(32))), signer)
    cosigned = second + sign_note(open_note(second, signer.verifier), witness).rsplit("\n\n", 1)[1]
    assert split_notes(first) == [first]
    assert split_notes(first + "\n" + cosigned) == [first, cosigned]
    assert [open_checkpoint(note, signer.verifier).size for note in split_notes(first + "\n" + cosigned)] == [3, 5]
    assert split_notes("") == []
