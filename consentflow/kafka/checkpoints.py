"""The consent log's signed checkpoints onto their topic (issue 22), for whoever follows the log from Kafka: each
value a C2SP signed note as UTF-8 text, keyed by its log's id, so one log's checkpoints stay in order on one partition;
its headers say so (``consentflow.schema: c2sp.org/tlog-checkpoint``, ``consentflow.encoding: c2sp.org/signed-note``).

The checkpoints table holds every note first; the topic is its published copy. A note the broker does not take in
time is said in one line and left to the table (the next checkpoint of its log goes out as usual): a notary does
not stop following the log because the broker was away.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.headers import CHECKPOINT_HEADERS
from consentflow.contracts.topics import checkpoints_topic
from consentflow.kafka.clients import client_config
from consentflow.kafka.producer import DeliveryError, EventProducer

log = logging.getLogger(__name__)

#: Seconds a published note may take to be acknowledged before it is left to the checkpoints table.
DELIVER_WITHIN = 30.0


def missing_topic(bootstrap: str, prefix: str, timeout: float = 5.0) -> str | None:
    """Why the checkpoints topic cannot be published to, in a line, when the broker answers without it (an older
    ``topics create``); None when it exists, or when the broker does not answer now (the notary waits for it)."""
    name = checkpoints_topic(prefix)
    try:
        topics = AdminClient(client_config(bootstrap)).list_topics(timeout=timeout).topics
    except KafkaException:
        return None
    if name in topics:
        return None
    return f"topic {name} does not exist: create it with `consentflow topics create --prefix {prefix}`"


class CheckpointPublisher:
    """Produces signed notes to ``<prefix>.checkpoints`` on an idempotent producer, each flushed before it returns
    (so before the driver commits the offsets whose leaves the note signs)."""

    def __init__(self, bootstrap: str, prefix: str, *, deliver_within: float = DELIVER_WITHIN) -> None:
        self.topic = checkpoints_topic(prefix)
        self.deliver_within = deliver_within
        self._producer = EventProducer(bootstrap, codec=SingleObjectCodec(), prefix=prefix)  # raw bytes: no codec used
        self.published = 0

    def __call__(self, log_id: str, note: str) -> None:
        """Publish ``note``, the signed checkpoint of ``log_id``, and wait until the broker has it."""
        self._producer.send_bytes(self.topic, log_id.encode(), note.encode(), headers=CHECKPOINT_HEADERS)
        try:
            self._producer.flush(self.deliver_within)
        except DeliveryError as exc:
            log.warning("checkpoint of log %s not published to %s (kept in the checkpoints table): %s", log_id, self.topic, exc)
        else:
            self.published += 1
