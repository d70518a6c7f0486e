"""Signed checkpoints of the consent log (issue 22): C2SP ``tlog-checkpoint`` notes in the C2SP ``signed-note`` format,
Ed25519 (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint).

A checkpoint's text is the origin, the tree size, the base64 root hash, then extension lines (ours: ``time`` and the
UTC instant it was signed, RFC 3339 in µs); a blank line; then ``— <key name> base64(key ID ‖ signature)`` lines.
The key ID is ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`` (0x01: Ed25519). An auditor is given the verifier key
``<name>+<hex key ID>+base64(0x01 ‖ public key)``; the private key file is Go's ``golang.org/x/mod/sumdb/note``
signer key, ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 ‖ seed)``, so other note tools read both.

Parsing refuses, naming the fault, what the specs forbid; a note counts only once a signature by the trusted key
(name and key ID both) verifies; a signature by that key that fails refuses the note. No I/O: the key files are
``notary.keys``'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from consentflow.core.merkle import HASH_SIZE

ED25519 = b"\x01"  # signed-note's signature type byte for Ed25519
SIGNATURE_SIZE = 64
#: More signatures than this refuse a note (signed-note: at least 16 must be accepted).
MAX_SIGNATURES = 64
TIME_EXTENSION = "time "
_SIGNATURE_LINE = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A note, checkpoint or key refused; the message names what is wrong."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise NoteError(f"{what} is not standard base64: {text[:40]!r}") from error


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, with no spaces and no '+'")


def key_id(name: str, public_key: bytes) -> int:
    """signed-note's key ID of an Ed25519 key: ``SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]``, big-endian."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key with its note name and key ID."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Read a verifier key ``<name>+<hex key ID>+base64(0x01 ‖ public key)``."""
        parts = vkey.strip().split("+", 2)  # base64 may hold '+'; a name may not
        if len(parts) != 3:
            raise NoteError("a verifier key is <name>+<hex key ID>+<base64 key>, three parts separated by '+'")
        name, hex_id, encoded = parts
        _check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError(f"verifier key ID {hex_id!r} is not 8 lowercase hex digits")
        material = _b64decode(encoded, "the verifier key")
        if material[:1] != ED25519:
            raise NoteError(f"verifier key type 0x{material[:1].hex() or '??'} is not Ed25519 (0x01)")
        if len(material) != 33:
            raise NoteError(f"an Ed25519 public key is 32 bytes, this one {len(material) - 1}")
        public_key = material[1:]
        if key_id(name, public_key) != int(hex_id, 16):
            raise NoteError(f"verifier key ID {hex_id} does not match the key and name {name!r}")
        return cls(name, int(hex_id, 16), public_key)

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(ED25519 + self.public_key).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with its note name."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new key named ``name`` (a schema-less URL is recommended, e.g. ``consentflow.example/log``)."""
        _check_key_name(name)
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Read a signer key ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 ‖ seed)``."""
        text = skey.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise NoteError("a private key starts with PRIVATE+KEY+")
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError("a private key is PRIVATE+KEY+<name>+<hex key ID>+<base64 key>")
        name, hex_id, encoded = parts
        _check_key_name(name)
        material = _b64decode(encoded, "the private key")
        if material[:1] != ED25519 or len(material) != 33:
            raise NoteError("the private key is not a 32-byte Ed25519 seed of type 0x01")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(material[1:]))
        if f"{signer.verifier.key_id:08x}" != hex_id:
            raise NoteError(f"private key ID {hex_id!r} does not match the key and name {name!r}")
        return signer

    @property
    def verifier(self) -> Verifier:
        """The matching verifier (the public key an auditor is given)."""
        public_key = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, key_id(self.name, public_key), public_key)

    def __str__(self) -> str:
        seed = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.key_id:08x}+{base64.b64encode(ED25519 + seed).decode()}"

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``."""
        return self.private_key.sign(message)


def sign_note(text: str, signer: Signer) -> str:
    """A signed note: ``text`` (ending in a newline), a blank line, the signature line."""
    _check_text(text)
    signature = signer.verifier.key_id.to_bytes(4, "big") + signer.sign(text.encode())
    return f"{text}\n{_SIGNATURE_LINE}{signer.name} {base64.b64encode(signature).decode()}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("a note's text must end with a newline")
    bad = next((c for c in text if c < " " and c != "\n"), None)
    if bad is not None:
        raise NoteError(f"a note may hold no control character but newline, found 0x{ord(bad):02x}")


def open_note(note: str | bytes, verifier: Verifier) -> str:
    """The text of ``note`` once a signature by ``verifier`` verifies; raises ``NoteError`` naming what is wrong."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NoteError(f"the note is not valid UTF-8 (byte {error.start})") from error
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    lines = block.split("\n")[:-1]
    if not lines:
        raise NoteError("the note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    found: list[str] = []
    verified = False
    for number, line in enumerate(lines, 1):
        if not line.startswith(_SIGNATURE_LINE):
            raise NoteError(f"signature line {number} does not start with an em dash and a space: {line[:40]!r}")
        name, _, encoded = line[len(_SIGNATURE_LINE) :].partition(" ")
        _check_key_name(name)
        signature = _b64decode(encoded, f"signature line {number}")
        if len(signature) < 5:
            raise NoteError(f"signature line {number} is too short to hold a key ID and a signature")
        signed_by = int.from_bytes(signature[:4], "big")
        found.append(f"{name}+{signed_by:08x}")
        if (name, signed_by) != (verifier.name, verifier.key_id):
            continue  # another key's signature: a witness's, or an older key's
        if len(signature) != 4 + SIGNATURE_SIZE or not verifier.verify(text.encode(), signature[4:]):
            raise NoteError(f"the signature by {name}+{signed_by:08x} does not verify: the note was altered")
        verified = True
    if not verified:
        raise NoteError(
            f"no signature by the trusted key {verifier.name}+{verifier.key_id:08x} (signed by {', '.join(found)}): "
            "signed with another key"
        )
    return text


def split_notes(text: str) -> list[str]:
    """The signed notes of ``text``, which holds one or more, each after the previous one's signature lines and a blank
    line (as ``consentflow checkpoint latest`` prints the notes of several logs). A note's parts are not checked here:
    ``open_note`` names what is wrong with each."""
    notes: list[str] = []
    current: list[str] = []
    signatures = False  # past the blank line that ends a note's text
    for line in text.splitlines(keepends=True):
        if signatures and not line.startswith(_SIGNATURE_LINE):
            notes.append("".join(current))
            current, signatures = [], False
            if not line.strip():
                continue  # the blank line between two notes
        elif line == "\n" and current:
            signatures = True
        current.append(line)
    if current:
        notes.append("".join(current))
    return notes


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and root hash, and extension lines (ours: the signing time)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The checkpoint's note text (tlog-checkpoint)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @property
    def time(self) -> datetime | None:
        """The signing time from the ``time`` extension line, if any."""
        for line in self.extensions:
            if line.startswith(TIME_EXTENSION):
                value = line[len(TIME_EXTENSION) :]
                try:
                    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                except ValueError as error:
                    raise NoteError(f"the time extension {value!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ") from error
        return None

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint's note text (signatures already checked and removed by ``open_note``)."""
        if not text.endswith("\n"):
            raise NoteError("a checkpoint's text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"a checkpoint has an origin, a size and a root hash: {len(lines)} line(s) found")
        origin, size, root, *extensions = lines
        if not origin:
            raise NoteError("the checkpoint's origin line is empty")
        if not _DECIMAL.fullmatch(size):
            raise NoteError(f"the checkpoint's tree size {size!r} is not a decimal without leading zeros")
        digest = _b64decode(root, "the checkpoint's root hash")
        if len(digest) != HASH_SIZE:
            raise NoteError(f"the checkpoint's root hash is {len(digest)} bytes, not {HASH_SIZE}")
        if any(not line for line in extensions):
            raise NoteError("the checkpoint has an empty extension line")
        checkpoint = cls(origin, int(size), digest, tuple(extensions))
        _ = checkpoint.time  # a malformed time line is refused here, not at first use
        return checkpoint


def time_extension(t: datetime) -> str:
    """The ``time`` extension line for instant ``t`` (UTC, µs)."""
    return TIME_EXTENSION + t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(note: str | bytes, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """The checkpoint in ``note`` once its signature verifies, and (if given) its origin is ``origin``."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
