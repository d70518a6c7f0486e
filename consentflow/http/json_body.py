"""JSON request bodies read with a bound on nesting: a deep ``[[[[...`` is a 422 naming the depth, never a 500.

Python's parser recurses once per level and fails with ``RecursionError`` a
thousand levels down; an event or a replay request is a few levels deep. The
depth is counted first, by a scan that skips strings, so the parser never
meets a document deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from consentflow.http.errors import ApiError

#: The deepest nesting a body may have (an event is an object of scalars and arrays: depth 2 or 3).
MAX_DEPTH = 32
# A JSON string (skipped whole: brackets inside it are text), or one bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nesting_depth(raw: bytes, stop_after: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in ``raw``; counting stops once past ``stop_after``."""
    depth = deepest = 0
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def too_deep(raw: bytes) -> ApiError | None:
    """The refusal for a body nested deeper than ``MAX_DEPTH``, or None."""
    if nesting_depth(raw) > MAX_DEPTH:
        return ApiError(422, f"body: JSON nested more than {MAX_DEPTH} levels deep (arrays and objects in each other)", "body")
    return None


def json_body(raw: bytes) -> Any:
    """The JSON document ``raw`` holds; a 422 naming the body when it is too deep or not JSON."""
    refusal = too_deep(raw)
    if refusal is not None:
        raise refusal
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(422, f"body: not JSON ({exc})", "body") from None
