"""RFC 9162 §2.1, transcribed as the RFC writes it (recursive, over whole leaf lists), for the tests to hold
``consentflow.core.merkle`` against; and the test vectors of transparency-dev/merkle (tests/data/merkle)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from tests.support.paths import DATA

VECTORS = DATA / "merkle" / "transparency_dev_vectors.json"

#: A leaf range ``(start, end)``: MTH(D[start:end]).
Range = tuple[int, int]


def vectors() -> dict[str, Any]:
    """transparency-dev/merkle's testdata: inclusion and consistency probes, and its reference tree."""
    loaded: dict[str, Any] = json.loads(VECTORS.read_text())
    return loaded


def b64(text: str) -> bytes:
    """Standard base64, as the vectors write hashes."""
    return base64.b64decode(text)


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) (§2.1.1)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path_ranges(m: int, start: int, end: int) -> list[Range]:
    """PATH(m, D[start:end]) (§2.1.3.1), as the ranges whose MTH each hash is."""
    if end - start == 1:
        return []
    k = _k(end - start)
    if m < k:
        return [*path_ranges(m, start, start + k), (start + k, end)]
    return [*path_ranges(m - k, start + k, end), (start, start + k)]


def subproof_ranges(m: int, start: int, end: int, b: bool) -> list[Range]:
    """SUBPROOF(m, D[start:end], b) (§2.1.4.1), as ranges."""
    n = end - start
    if m == n:
        return [] if b else [(start, end)]
    k = _k(n)
    if m <= k:
        return [*subproof_ranges(m, start, start + k, b), (start + k, end)]
    return [*subproof_ranges(m - k, start + k, end, False), (start, start + k)]


def proof_ranges(m: int, n: int) -> list[Range]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) (§2.1.4.1), as ranges."""
    return subproof_ranges(m, 0, n, True)
