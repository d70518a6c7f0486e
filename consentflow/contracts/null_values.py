"""A message whose value is null (a Kafka tombstone) on an input topic: one decision for every driver.

Whoever reads an input topic (a faust worker, its read-backs, a replay, the
workers' registry feed, the sink's copy of the registry) calls ``null_value``
and nothing else for such a message, so live and replayed tables agree:

- On a subject topic (profile, consent, cookie, message, disclosure, rights) a
  null value holds no event: it raises ``ContractError`` with the reason
  "null value", naming topic, partition, offset and key, and the driver makes
  it a dead letter as it does any message the gate refuses.
- On the compacted registry (``recipients``) it is a tombstone: the recipient
  its key names is removed from the registry from the message's Kafka
  timestamp on [4, 7]. The removal is a ``RecipientRecord`` with ``active``
  false, in force from that instant (``occurred_at``), with an event id
  derived from the recipient and the instant (so every driver, and a second
  read, make the same one), and no name: a registry record always has one,
  so an empty name marks a removal (``RecipientVersion.removal``). It goes
  where any registry record goes: into the processors' registry, where from
  then on the recipient resolves as unregistered (a disclosure to it is an
  ``unregistered_recipient`` violation [4.3, 4.4], its transfers have no
  mechanism [7]), and into the ``recipients`` table. What happened before the
  instant keeps the version then in force. A tombstone without a recipient id
  for key, or without a timestamp, removes nothing and is a dead letter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from consentflow.contracts.edge_checks import is_pseudonymous_id
from consentflow.contracts.errors import ContractError
from consentflow.contracts.records import RecipientRecord
from consentflow.contracts.topics import RECIPIENTS, Topic
from consentflow.policy.vocabulary import CURRENT_POLICY_VERSION

#: The reason a subject topic's null value is a dead letter, as its ``reason`` begins after the topic.
NULL_VALUE = "null value"
#: Who "emitted" a removal: nobody did, the broker's tombstone stands for it (a service name, as the contract wants).
REMOVAL_SOURCE = "registry-tombstone"
#: Removals' event ids: uuid5 under this namespace of "recipient id@timestamp in ms".
REMOVAL_NAMESPACE = uuid.UUID("5f0c1d2e-7a43-4b8e-9c61-0d3f2b9a8e17")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def null_value(topic: Topic, name: str, partition: int, offset: int, key: bytes | None, timestamp_ms: int) -> RecipientRecord:
    """The record a null-value message at ``name[partition]@offset`` stands for: on the registry, the removal of the
    recipient ``key`` names from ``timestamp_ms`` on; elsewhere ``ContractError`` with the reason "null value"."""
    where = f"{name}[{partition}]@{offset}"
    recipient_id = _key_text(key)
    if topic is not RECIPIENTS:
        raise ContractError(
            topic.short_name,
            f"{NULL_VALUE} at {where}, key {_shown(key, recipient_id)}: a tombstone holds no event "
            "(only the compacted registry takes them)",
        )
    if recipient_id is None:
        raise ContractError(
            topic.short_name, f"{NULL_VALUE} at {where}, key {_shown(key, recipient_id)}: a tombstone that names no recipient"
        )
    if timestamp_ms < 0:
        raise ContractError(
            topic.short_name,
            f"{NULL_VALUE} at {where}, key {recipient_id!r}: a tombstone without a timestamp (no instant to remove from)",
        )
    return removal(recipient_id, timestamp_ms)


def removal(recipient_id: str, timestamp_ms: int) -> RecipientRecord:
    """The ``RecipientRecord`` that removes ``recipient_id`` from the registry from ``timestamp_ms`` (Kafka time) on."""
    return {
        "event_id": str(uuid.uuid5(REMOVAL_NAMESPACE, f"{recipient_id}@{timestamp_ms}")),
        "occurred_at": _EPOCH + timedelta(milliseconds=timestamp_ms),
        "source_service": REMOVAL_SOURCE,
        "policy_version": CURRENT_POLICY_VERSION,
        "recipient_id": recipient_id,
        "name": "",
        "kind": "unknown",
        "country": "",
        "transfer_mechanisms": [],
        "allowed_purposes": [],
        "active": False,
    }


def _key_text(key: bytes | None) -> str | None:
    """The key as a pseudonymous id, or None when it is none."""
    if key is None:
        return None
    try:
        text = key.decode()
    except UnicodeDecodeError:
        return None
    return text if is_pseudonymous_id(text) else None


def _shown(key: bytes | None, text: str | None) -> str:
    """The key as an error names it: an id, never other bytes (they might be personal data)."""
    if text is not None:
        return repr(text)
    return "none" if key is None else f"of {len(key)} bytes, not a pseudonymous id"


__all__ = ["NULL_VALUE", "null_value", "removal"]
