"""UUIDs as the pipeline keeps them: canonical lowercase text, also how fastavro reads and writes ``uuid`` fields.

Apart from the released contracts (``consentflow.contracts.releases``) so that the decoding plans
(``consentflow.contracts.avro_plan``), which the releases make, can use them without importing the releases back.
"""

from __future__ import annotations

import re
from uuid import UUID

import fastavro.read
import fastavro.write

#: A UUID's canonical text, whole (``fullmatch``: ``$`` would let a trailing newline through).
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CANONICAL_UUID = UUID_TEXT.fullmatch


def uuid_text(value: object) -> str:
    """Canonical lowercase text of a UUID given as text or ``uuid.UUID``."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str) and _CANONICAL_UUID(value):
        return value
    if isinstance(value, str):
        try:
            return str(UUID(value))
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a UUID")


# fastavro writes any string under logicalType uuid but refuses to read back a
# malformed one, and returns uuid.UUID objects; the pipeline keeps ids as text.
# Custom logical readers/writers are fastavro's documented extension point.
fastavro.write.LOGICAL_WRITERS["string-uuid"] = lambda datum, *_: uuid_text(datum)


def read_uuid(datum: object, *_: object) -> str:
    """fastavro's logical reader for ``uuid``: the canonical text. Called for every id decoded, so canonical
    text, the common case, is answered in one regex call."""
    if type(datum) is str and _CANONICAL_UUID(datum):
        return datum
    return uuid_text(datum)


fastavro.read.LOGICAL_READERS["string-uuid"] = read_uuid
