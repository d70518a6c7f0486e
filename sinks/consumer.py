"""The sink process: output topics (and the registry) from Kafka into ClickHouse.

Offsets are committed only after ClickHouse holds the batch, so a crash at any
point redelivers what was not yet written; the tables absorb the redelivery.
With a notary (``notary.follower.LogFollower``) the batch's ledger entries and
erasure notices become leaves after its rows are written and before its offsets
are committed: a leaf never precedes its row, and a redelivered message the log
already holds is skipped by its offset.
While ClickHouse is unreachable the sink pauses and retries (see
``ClickHouseSink``): messages wait in Kafka, nothing is lost. A stop asked
meanwhile gives the batch up uncommitted and ends the process (75); the broker
away is one line when it goes and one when it is back (``Outage``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from consentflow.contracts.codec import Codec
from consentflow.contracts.dead_letters import dead_letter
from consentflow.contracts.errors import ContractError
from consentflow.contracts.gate import Gate
from consentflow.contracts.topics import DEAD_LETTER, INCIDENTS, OUTPUT_TOPICS, RECIPIENTS, Topic, TopicRole
from consentflow.kafka.broker_check import BrokerCheck
from consentflow.kafka.clients import client_config
from consentflow.kafka.group_membership import SESSION_TIMEOUT, librdkafka_membership
from consentflow.runtime.bounded_stop import StopRequest, abandon_stop
from consentflow.runtime.outage import Outage, describe, is_transient
from consentflow.runtime.redaction import redacted_dsn
from consentflow.sinks.clickhouse import ClickHouseSink, RetryAbandoned
from consentflow.sinks.stall_check import QUIET_FOR, StallCheck, waiting_work

if TYPE_CHECKING:  # prometheus_client loads only in a process that reports metrics
    from consentflow.runtime.metrics import SinkMetrics


class Notary(Protocol):
    """What the consumer asks of a notary (``notary.follower.LogFollower``; named here, not imported: the notary is
    built on the sinks)."""

    @property
    def pending(self) -> int:
        """Leaves noted and not yet appended."""

    def note(self, topic_name: str, partition: int, offset: int, short_name: str, record: Mapping[str, Any]) -> None:
        """Keep a consumed output as a leaf of its partition's log."""

    def write_due(self, max_leaves: int, max_seconds: float) -> bool:
        """Whether enough leaves wait, or one waited long enough."""

    def write(self) -> int:
        """Append the pending leaves and sign what is due."""

    def sign_due(self) -> int:
        """Sign the logs whose unsigned leaves waited long enough."""

    def sign_unsigned(self) -> int:
        """Sign every log with unsigned leaves."""

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the logs of revoked partitions, pending leaves included."""


log = logging.getLogger(__name__)

# The broker refusing the sink's group settings: librdkafka retries every two seconds, but nothing changes by waiting.
_REFUSED = frozenset(
    {
        KafkaError.INVALID_SESSION_TIMEOUT,
        KafkaError.INCONSISTENT_GROUP_PROTOCOL,
        KafkaError.INVALID_GROUP_ID,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }
)


#: Seconds a stuck consumer's close may take (it leaves the group) before the sink goes on without it.
CLOSE_WITHIN = 10.0


def _still() -> None:
    """No heartbeat to tell."""


class SinkConsumer:
    """Consumes the output topics and the registry topic into a ``ClickHouseSink``.

    ``kafka_outage`` is the broker as the sink's consumer sees it (``.away``), ``sink.clickhouse_outage`` ClickHouse.
    A consumer that delivers nothing for ``stall_after`` seconds while its group has work waiting is replaced
    (``consentflow.sinks.stall_check``). ``notary``, when given, makes each ledger entry and erasure notice a leaf.
    ``metrics``, when given, counts the dead letters (rows and inserts: the ``ClickHouseSink``'s own).
    """

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        codec: Codec,
        sink: ClickHouseSink,
        *,
        group_id: str = "consentflow-sink",
        kafka_outage: Outage | None = None,
        session_timeout: float = SESSION_TIMEOUT,
        stall_after: float = QUIET_FOR,
        notary: Notary | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.codec = codec
        self.notary = notary
        self.topics: dict[str, Topic] = {t.name(prefix): t for t in self.followed_topics()}
        # Back-off at most 5 s: while away, a probe at each back-off notices the broker back with no message to read.
        self.kafka_outage = kafka_outage or Outage(f"Kafka at {redacted_dsn(bootstrap)}", max_backoff=5.0)
        self.bootstrap = bootstrap
        self.group_id = group_id
        self._config = client_config(
            bootstrap,
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.min.bytes": 65536,
                "error_cb": self.on_kafka_error,  # the broker away, reported at each reconnection: one line per outage
                "on_commit": self.on_commit,
                # A killed sink's partitions move when its session expires (librdkafka's default: 45 s); a stopped
                # one leaves the group in close(), as a dynamic member (no group.instance.id: group_membership).
                **librdkafka_membership(session_timeout),
            },
        )
        self.consumer = self._subscribed()
        self.stall = StallCheck(stall_after)
        self.replaced = 0  # consumers replaced because they were stuck
        self._members: set[str] = set()  # this process's member ids, the stuck consumers' too (their partitions are ours)
        self._broker_check: BrokerCheck | None = None
        self.gate = Gate()  # the registry and the incidents are input topics: their records pass the gate, as in a replay
        self.consumed = 0
        self.undecodable = 0
        # Messages taken since the last commit, rows or not: a skipped one is committed too, or its lag would look
        # like work waiting to the stall check for ever.
        self._uncommitted = False
        self._stop = False

    def followed_topics(self) -> tuple[Topic, ...]:
        """The topics this consumer reads: every output, the registry and the breach register's incidents."""
        return (*OUTPUT_TOPICS, RECIPIENTS, INCIDENTS)

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch, flush, commit and return."""
        self._stop = True

    def run(
        self, *, idle_exit: float | None = None, should_stop: Callable[[], bool] | None = None, beat: Callable[[], None] = _still
    ) -> None:
        """Consume until stopped (or ``idle_exit`` seconds without messages), then flush, commit and leave the group;
        ``beat`` on every turn.

        A stop while ClickHouse is away raises ``RetryAbandoned`` from the flush (when the sink was given the same
        ``should_stop``): the batch stays uncommitted, for the next sink of the group.
        """
        idle_since = time.monotonic()
        try:
            while not self._stop and not (should_stop and should_stop()):
                beat()
                messages = self.consumer.consume(num_messages=5_000, timeout=0.5)
                if messages:
                    idle_since = time.monotonic()
                    self.stall.heard()
                for message in messages:
                    self.take(message)
                if self.kafka_outage.check_due():
                    self._probe_kafka()
                if self._batch_due() or (not messages and (self._holding or self._uncommitted)):
                    self._flush_and_commit()
                    self.stall.heard()  # a long write (ClickHouse away) is not the consumer's quiet
                elif not messages and self.stall.due():
                    self._check_stalled()
                if not messages and self.notary is not None:
                    self.notary.sign_due()  # a quiet log is signed too, within its interval
                if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                    break
            self._flush_and_commit(wait=True)  # before leaving the group: the successor starts where this one ended
            if self.notary is not None:
                self.notary.sign_unsigned()  # a stopped notary's logs are signed to their end
        finally:
            self.consumer.close()  # leaves the group (commits nothing): the next sink takes over at once

    def on_kafka_error(self, error: KafkaError) -> None:
        """A consumer error: the broker away starts or extends the outage; a fatal one ends the process (71);
        any other is logged."""
        exc = KafkaException(error)
        if is_transient(exc) or error.fatal() or error.code() in _REFUSED:
            self.kafka_outage.reported(exc, "consuming")  # a sign, perhaps stale (served late): the probe confirms it
        else:
            log.warning("consumer error: %s", describe(exc))

    def _probe_kafka(self) -> None:
        """Ask the broker for one topic's metadata: the outage ends when it answers, even with nothing to read; a
        consumer error reported while up starts one only when this fails too.

        When the consumer's own request fails while a client of the sink's own reaches the broker, the broker is
        back and the consumer is what is stuck: the outage ends, and the stall check asks at once.
        """
        try:
            self.consumer.list_topics(next(iter(self.topics)), timeout=1.0)
        except KafkaException as exc:
            if self._broker_answers():
                self.kafka_outage.succeeded()
                self.stall.suspect()
            else:
                self.kafka_outage.failed(exc, "consuming")
        else:
            self.kafka_outage.succeeded()

    def _broker_answers(self) -> bool:
        """Whether the broker answers a metadata request from a client other than the consumer."""
        if self._broker_check is None:
            self._broker_check = BrokerCheck(self.bootstrap, timeout=1.0)
        try:
            self._broker_check.ask()
        except KafkaException:
            return False
        return True

    def _subscribed(self) -> Consumer:
        """A new consumer of the sink's group, subscribed to its topics."""
        consumer = Consumer(self._config)
        if self.notary is None:
            consumer.subscribe(sorted(self.topics))
        else:
            consumer.subscribe(sorted(self.topics), on_revoke=self._on_revoke)
        return consumer

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions moving to another member: the notary forgets their logs, so that it never appends to a log
        another process now extends (their uncommitted messages go to the new owner with the partitions)."""
        if self.notary is not None:
            self.notary.forget((str(tp.topic), int(tp.partition)) for tp in partitions)

    def _check_stalled(self) -> None:
        """Quiet for ``stall_after`` seconds: ask the broker whether work waits for this consumer; if so, replace it."""
        quiet = self.stall.quiet()
        self._members.add(self.consumer.memberid() or "")
        waiting = waiting_work(self.bootstrap, self.group_id, self.topics, self._members)
        if self.stall.stuck(waiting):
            log.warning(
                "Kafka consumer delivered nothing for %.0f s while %d messages wait for it: stuck, recreating its consumer",
                quiet,
                waiting,
            )
            self._replace_consumer()

    def _replace_consumer(self) -> None:
        """Close the stuck consumer (abandoned if its close does not return within the session) and subscribe a new
        one in the same group: it starts from the group's committed offsets, so nothing is skipped."""
        if self._holding:
            self._flush_and_commit()
        stuck = self.consumer
        closing = threading.Thread(target=stuck.close, name="close-stuck-consumer", daemon=True)
        closing.start()
        closing.join(CLOSE_WITHIN)
        if closing.is_alive():
            log.warning("the stuck consumer did not close within %.0f s; left behind", CLOSE_WITHIN)
        self.consumer = self._subscribed()
        self.replaced += 1

    def take(self, message: Message) -> None:
        """Add one consumed message to the sink: a record, a registry removal (a tombstone), or a dead letter for one
        that breaks its contract; a broker notice goes to ``on_kafka_error``, an output's null value is skipped."""
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                self.on_kafka_error(error)
            return
        self._uncommitted = True
        topic = self.topics.get(str(message.topic()))
        value = message.value()
        if topic is None or (value is None and topic.role is TopicRole.OUTPUT):
            return
        record: Mapping[str, Any]
        try:
            if topic.role is TopicRole.INPUT:  # read as the workers and a replay read it (a registry tombstone: a removal)
                record = self.gate.admit(
                    self.codec,
                    topic,
                    value,
                    int(message.timestamp()[1]),
                    name=str(message.topic()),
                    partition=int(message.partition() or 0),
                    offset=int(message.offset() or 0),
                    key=message.key(),
                )
            else:
                assert value is not None  # an output's null value returned above
                record = self.codec.decode(topic, value)
        except ContractError as exc:
            # An output we cannot read, or an input the gate refuses, is kept as a dead letter, not dropped.
            self.undecodable += 1
            letter = dead_letter(
                str(message.topic()),
                str(exc),
                exc,
                partition=message.partition(),
                offset=message.offset(),
                key=message.key(),
                value=value,
            )
            self.refused(message, letter)
            return
        self.keep(message, topic, record)
        self.consumed += 1

    def keep(self, message: Message, topic: Topic, record: Mapping[str, Any]) -> None:
        """A decoded record: to the sink, then to the notary (a leaf if it is a ledger entry or an erasure notice)."""
        self.sink.add(topic.short_name, record)
        if self.notary is not None:
            self.notary.note(
                str(message.topic()), int(message.partition() or 0), int(message.offset() or 0), topic.short_name, record
            )

    def refused(self, message: Message, letter: Mapping[str, Any]) -> None:
        """A message that breaks its contract, as a dead letter: kept in its table, not dropped."""
        self.sink.add(DEAD_LETTER.short_name, letter)
        if self.metrics is not None:
            self.metrics.dead_letters.labels(str(letter["error_type"])).inc()

    @property
    def _holding(self) -> bool:
        """Whether rows or leaves wait to be written."""
        return bool(self.sink.pending or (self.notary is not None and self.notary.pending))

    def _batch_due(self) -> bool:
        """Whether the sink's rows, or the notary's leaves, are many or old enough to write."""
        if self.sink.flush_due():
            return True
        return self.notary is not None and self.notary.write_due(self.sink.max_rows, self.sink.max_seconds)

    def _flush_and_commit(self, *, wait: bool = False) -> None:
        """The delivery order: the rows into ClickHouse, then their leaves into the log (and its checkpoints onto
        their topic), then the offsets (``wait``: until the broker has them, else asynchronously). A crash at any step
        redelivers the batch: the tables absorb the rows, the log skips the offsets it holds."""
        if self.sink.pending:
            self.sink.flush()  # returns only when ClickHouse has the rows; a stop while it is away raises, uncommitted
        if self.notary is not None:
            self.notary.write()
        self._uncommitted = False
        try:
            # In the loop the commit is asynchronous: a synchronous one can wait for ever on a coordinator its own
            # consumer must rejoin (confluent-kafka-python #1801), and the sink then consumed nothing more. Its result
            # comes to ``on_commit`` from a later ``consume``; the last one, before leaving the group, is awaited.
            if wait:
                self.consumer.commit(asynchronous=False)
            else:
                self.consumer.commit(asynchronous=True)
        except KafkaException as exc:
            self.commit_failed(exc)
        else:
            if wait:
                self.kafka_outage.succeeded()

    def on_commit(self, error: KafkaError | None, _partitions: list[TopicPartition]) -> None:
        """The result of an asynchronous commit (served by ``consume``): the broker answered, or why it did not."""
        if error is None:
            self.kafka_outage.succeeded()
        else:
            self.commit_failed(KafkaException(error))

    def commit_failed(self, exc: KafkaException) -> None:
        """A commit that did not go through: its batch is redelivered and absorbed by the tables."""
        error = exc.args[0]
        if error.code() == KafkaError._NO_OFFSET:  # nothing consumed since the last commit
            return
        if is_transient(exc):  # the broker away
            self.kafka_outage.failed(exc, "committing offsets")
        else:  # e.g. the group rebalanced under the batch
            log.warning("offset commit failed (the batch will be redelivered and absorbed): %s", describe(exc))


def run_sink(consumer: SinkConsumer, stopping: StopRequest | None = None, beat: Callable[[], None] = _still) -> None:
    """Run until SIGTERM/SIGINT, then flush, commit and return; ``beat`` on every turn of the loop (a health probe's
    heartbeat). ``stopping`` bounds the stop (made before the ``ClickHouseSink``, whose retries read it, when
    ClickHouse may be away). A stop while ClickHouse is away gives the batch up uncommitted and ends the process (75)."""
    if stopping is None:
        stopping = StopRequest("Kafka or ClickHouse away?").on_signals()
    try:
        consumer.run(should_stop=stopping, beat=beat)
    except RetryAbandoned as exc:
        abandon_stop(str(exc))
