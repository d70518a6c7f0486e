"""The Kafka topics of the pipeline and the record each one carries [DESIGN: Topics]."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TopicRole(StrEnum):
    """Whether a topic is fed by upstream services or by the pipeline."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class Topic:
    """A topic, its record contract and what keys its messages."""

    short_name: str
    record: str  # contract name under schemas/
    key_field: str  # field of the record used as the Kafka key
    role: TopicRole
    compacted: bool = False

    def name(self, prefix: str = "consentflow") -> str:
        """Full topic name, e.g. ``consentflow.consent``."""
        return f"{prefix}.{self.short_name}" if prefix else self.short_name


PROFILE = Topic("profile", "ProfileEvent", "subject_id", TopicRole.INPUT)
CONSENT = Topic("consent", "ConsentEvent", "subject_id", TopicRole.INPUT)
COOKIE = Topic("cookie", "CookieEvent", "subject_id", TopicRole.INPUT)
MESSAGE = Topic("message", "MessageEvent", "subject_id", TopicRole.INPUT)
DISCLOSURE = Topic("disclosure", "DisclosureEvent", "subject_id", TopicRole.INPUT)
RIGHTS = Topic("rights", "RightsEvent", "subject_id", TopicRole.INPUT)
# The registry is compacted: the latest record per recipient is the registry;
# the processors keep every version they have seen, since SCCs have dates [7].
RECIPIENTS = Topic("recipients", "RecipientRecord", "recipient_id", TopicRole.INPUT, compacted=True)
# The breach register [12; GDPR Art. 33, 34]: the controller's incident events, keyed by incident (not compacted: every
# event is a fact Art. 33(5) documents). Not a subject's event: no worker processes it, the sink and the embedded runner
# store each one gated, and the register is computed from them when read (core/incidents.py).
INCIDENTS = Topic("incidents", "IncidentEvent", "incident_id", TopicRole.INPUT)

LEDGER = Topic("ledger", "LedgerEntry", "subject_id", TopicRole.OUTPUT)
LINEAGE = Topic("lineage", "LineageEdge", "subject_id", TopicRole.OUTPUT)
VIOLATIONS = Topic("violations", "Violation", "subject_id", TopicRole.OUTPUT)
RETENTION = Topic("retention", "RetentionAction", "subject_id", TopicRole.OUTPUT)
ERASURE_NOTICES = Topic("erasure-notices", "ErasureNotice", "subject_id", TopicRole.OUTPUT)
# What the platform holds of each subject and until when [2.3; GDPR Art. 15(1)(b), (d)].
HOLDINGS = Topic("holdings", "SubjectHoldings", "subject_id", TopicRole.OUTPUT)
DEAD_LETTER = Topic("dead-letter", "DeadLetter", "topic", TopicRole.OUTPUT)
# Each rights request as a tracked object, with its time limit [8.2; GDPR Art. 12(3)] (issue 24).
REQUESTS = Topic("requests", "RightsRequest", "subject_id", TopicRole.OUTPUT)

INPUT_TOPICS: tuple[Topic, ...] = (PROFILE, CONSENT, COOKIE, MESSAGE, DISCLOSURE, RIGHTS, RECIPIENTS, INCIDENTS)
OUTPUT_TOPICS: tuple[Topic, ...] = (LEDGER, LINEAGE, VIOLATIONS, RETENTION, ERASURE_NOTICES, HOLDINGS, DEAD_LETTER)
OUTPUT_TOPICS += (REQUESTS,)  # issue 24: rights requests as tracked objects
ALL_TOPICS: tuple[Topic, ...] = INPUT_TOPICS + OUTPUT_TOPICS

#: The consent log's signed checkpoints (issue 22), beside the outputs: not an Avro contract, each value a C2SP signed
#: note as UTF-8 text (what any tlog tool reads), keyed by its log's id; kept forever, like the outputs.
CHECKPOINTS_SHORT_NAME = "checkpoints"


def checkpoints_topic(prefix: str = "consentflow") -> str:
    """The checkpoints topic's full name, e.g. ``consentflow.checkpoints``."""
    return f"{prefix}.{CHECKPOINTS_SHORT_NAME}" if prefix else CHECKPOINTS_SHORT_NAME


_BY_SHORT_NAME = {t.short_name: t for t in ALL_TOPICS}
_BY_RECORD = {t.record: t for t in ALL_TOPICS}


def topic_named(short_name: str) -> Topic:
    """The topic with this short name (``consent``, ``dead-letter``...)."""
    try:
        return _BY_SHORT_NAME[short_name]
    except KeyError:
        known = ", ".join(sorted(_BY_SHORT_NAME))
        raise KeyError(f"unknown topic {short_name!r}; known topics: {known}") from None


def topic_for_record(record: str) -> Topic:
    """The topic that carries a record contract."""
    return _BY_RECORD[record]
