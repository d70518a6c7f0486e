"""The continuous mode of the OpenLineage export: follow the lineage topic, emit each batch's processings [3, 4, 7].

Its own consumer group on the lineage topic (the sink's offsets stay the sink's); the registry read whole beside it
(``streams.registry_feed``) for recipients' names and the periods of their transfer mechanisms. Each batch (``step``)
is folded (``consentflow.openlineage.folding``) and emitted, a run per processing in the batch; the offsets are
committed after the transport took every event: at least once, and a batch read again gives the same run ids (they
come from the content).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException
from openlineage.client.transport import Transport

from consentflow.contracts.codec import Codec
from consentflow.contracts.errors import ContractError
from consentflow.contracts.topics import LINEAGE
from consentflow.kafka.clients import client_config
from consentflow.openlineage.events import DEFAULT_NAMESPACE, lineage_events
from consentflow.openlineage.folding import fold
from consentflow.openlineage.transports import send
from consentflow.streams.registry_feed import RegistryFeed

log = logging.getLogger(__name__)

#: The follower's consumer group when none is given.
DEFAULT_GROUP = "consentflow-openlineage"


class LineageFollower:
    """Reads the lineage topic in batches and sends each batch's run events through ``transport``."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        transport: Transport,
        *,
        group: str = DEFAULT_GROUP,
        namespace: str = DEFAULT_NAMESPACE,
        max_edges: int = 5000,
    ) -> None:
        self.topic = LINEAGE.name(prefix)
        self.codec = codec
        self.transport = transport
        self.namespace = namespace
        self.max_edges = max_edges
        self.registry = RegistryFeed(bootstrap, prefix, codec)
        self.sent = 0
        self.edges = 0
        self.errors = 0
        self._consumer = Consumer(
            client_config(bootstrap, {"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        )
        self._consumer.subscribe([self.topic])

    def _decoded(self, messages: list[Any]) -> list[dict[str, Any]]:
        edges = []
        for message in messages:
            if message.error() is not None:
                continue
            try:
                edges.append(self.codec.decode(LINEAGE, message.value()))
            except ContractError as exc:  # a record our processors did not write: left out, named once
                self.errors += 1
                log.warning("lineage record at %s[%s]@%s left out: %s", self.topic, message.partition(), message.offset(), exc)
        return edges

    def step(self, interval: float) -> int:
        """Read one batch, emit its processings, commit; how many messages it held (0: none came in half a second).

        A batch ends at ``max_edges``, ``interval`` seconds after its first message, or when the topic has nothing more
        for half a second: a follower that has caught up sends what it read at once.
        """
        messages: list[Any] = []
        deadline: float | None = None
        while len(messages) < self.max_edges:
            got = self._consumer.consume(num_messages=self.max_edges - len(messages), timeout=0.5)
            if not got:
                break
            messages += got
            deadline = deadline or time.monotonic() + interval
            if time.monotonic() >= deadline:
                break
        if not messages:
            return 0
        self.registry.poll_new()  # the registry as far as it has been written: names and periods as of now
        edges = self._decoded(messages)
        self.sent += send(self.transport, lineage_events(fold(edges, self.registry.registry), self.namespace))
        self._consumer.commit(asynchronous=False)  # after the transport took every event: at least once
        self.edges += len(edges)
        return len(messages)

    def run(self, interval: float, *, idle_exit: float | None = None, stop: Callable[[], bool] = lambda: False) -> None:
        """Batches until ``stop()``, or until nothing arrived for ``idle_exit`` seconds when given."""
        idle_since = time.monotonic()
        while not stop():
            try:
                taken = self.step(interval)
            except KafkaException as exc:  # the broker away: the consumer reconnects, the batch is read again
                log.warning("lineage topic %s: %s", self.topic, exc)
                taken = 0
            now = time.monotonic()
            if taken or not self._consumer.assignment():  # joining the group is not being idle
                idle_since = now
            elif idle_exit is not None and now - idle_since >= idle_exit:
                return

    def close(self) -> None:
        """Leave the group and release the registry's consumer."""
        self._consumer.close()
        self.registry.close()
