"""The recipient registry read back from the ``recipients`` table, as the processors hold it [4, 7].

Every version is kept in the table; rebuilt into a ``RecipientRegistry``, it
answers "who was this recipient, where, under which mechanism, at that instant"
exactly as the processors did when they wrote the lineage.
"""

from __future__ import annotations

from consentflow.core.recipients import RecipientRegistry, RecipientVersion
from consentflow.sinks.reader import TableReader
from consentflow.sinks.reading import utc, utc_or_none

_VERSIONS = """
SELECT recipient_id, event_id, since, name, kind, country, mechanisms, mechanism_from, mechanism_until,
       allowed_purposes, active
FROM {db:Identifier}.recipients FINAL
ORDER BY recipient_id, since, event_id
"""


def registry_from_tables(reader: TableReader) -> RecipientRegistry:
    """Every registry version in the ``recipients`` table, as a ``RecipientRegistry``.

    The rows were written from decoded ``RecipientRecord``s, whose symbols the
    reader schema already resolved, so each row reads back as its record did.
    """
    registry = RecipientRegistry()
    for recipient_id, event_id, since, name, kind, country, mechanisms, starts, ends, purposes, active in reader.query(_VERSIONS):
        record = {
            "recipient_id": recipient_id,
            "event_id": event_id,
            "occurred_at": utc(since),
            "name": name,
            "kind": kind,
            "country": country,
            "transfer_mechanisms": [
                {"mechanism": m, "valid_from": utc(start), "valid_until": utc_or_none(end)}
                for m, start, end in zip(mechanisms, starts, ends, strict=True)
            ],
            "allowed_purposes": list(purposes),
            "active": bool(active),
        }
        registry.add(RecipientVersion.from_record(record))
    return registry
