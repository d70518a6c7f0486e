"""The one error a producer, a consumer or an auditor sees for input that breaks a contract."""

from __future__ import annotations


class ContractError(ValueError):
    """A record or message bytes that break a topic's contract.

    ``topic`` is the topic concerned, ``field`` the offending field when one can
    be named, ``reason`` what is wrong. Raised at encode time for records that
    violate the schema or the edge checks, and at decode time for bad bytes
    (wrong magic, unknown fingerprint or schema id, truncated payload).
    """

    def __init__(self, topic: str, reason: str, field: str | None = None) -> None:
        self.topic = topic
        self.reason = reason
        self.field = field
        where = f"{topic}: field {field}" if field else topic
        super().__init__(f"{where}: {reason}")
