"""What a refusal repeats of the input it refuses: a short prefix, never the whole value.

A refusal names the offending value so a reader sees the typo; a 100 KB id
repeated whole would make every refusal as large as the attack. ``echoed``
quotes a value by its prefix and length; ``shortened_echoes`` does the same to
every quoted value in a finished message (the HTTP API passes every refusal
through it, whichever layer wrote the words).
"""

from __future__ import annotations

import re

#: The characters of an offending value a refusal repeats.
ECHO_LIMIT = 40
#: The longest refusal, whatever it echoes (a long list or mapping is cut here).
MESSAGE_LIMIT = 600
# A quoted value as repr() writes it (single or double quotes, backslash escapes inside), not an apostrophe in a word.
_QUOTED = re.compile(r"""(?<!\w)(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")(?!\w)""", re.DOTALL)


def echoed(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, or, past ``limit`` characters, the repr of its prefix and how long the value was."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(value)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def _shortened(match: re.Match[str]) -> str:
    quoted = match.group()
    inside = len(quoted) - 2
    if inside <= ECHO_LIMIT:
        return quoted
    return f"{quoted[: ECHO_LIMIT + 1]}{quoted[0]}… ({inside:,} characters)"


def shortened_echoes(message: str) -> str:
    """``message`` with every quoted value longer than ``ECHO_LIMIT`` cut to its prefix, and at most ``MESSAGE_LIMIT``
    characters in all."""
    message = _QUOTED.sub(_shortened, message)
    if len(message) > MESSAGE_LIMIT:
        message = f"{message[:MESSAGE_LIMIT]}… ({len(message):,} characters)"
    return message
