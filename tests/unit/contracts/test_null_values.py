"""Null values on input topics, decided once (``consentflow.contracts.null_values``) for every driver [issue 19; 4, 7].

A subject topic's null value is a dead letter "null value"; the registry's is the removal of the recipient its key
names, from the message's timestamp on: the processors then judge a disclosure to it as one to an unregistered
recipient, what came before keeps the version then in force, and the removal survives the ``recipients`` table
(what a continued embedded run and the DPO's questions read back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consentflow.contracts import events
from consentflow.contracts.errors import ContractError
from consentflow.contracts.null_values import NULL_VALUE, null_value
from consentflow.contracts.topics import INPUT_TOPICS, RECIPIENTS
from consentflow.core.processor import Processor
from consentflow.core.recipients import RecipientRegistry, RecipientVersion
from consentflow.policy.vocabulary import Rule
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.consumer import SinkConsumer
from consentflow.sinks.registry_reading import registry_from_tables
from consentflow.streams.embedded import run_events
from consentflow.streams.registry_feed import RegistryFeed

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TOMBSTONE_MS = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def registered(recipient_id: str = "rcpt-1", when: datetime = T0 - timedelta(days=30)) -> dict[str, Any]:
    return events.recipient_registered(
        recipient_id, name="Mailer Inc", kind="other_users", country="US", allowed_purposes=["marketing"],
        source_service="registry", occurred_at=when,
    ).record  # fmt: skip


@pytest.mark.parametrize("topic", [t for t in INPUT_TOPICS if t is not RECIPIENTS], ids=lambda t: t.short_name)
def test_a_null_value_on_a_subject_topic_is_refused_naming_topic_partition_offset_and_key(topic: Any) -> None:
    with pytest.raises(ContractError) as refused:
        null_value(topic, f"cf.{topic.short_name}", 4, 17, b"subj-0000042", TOMBSTONE_MS)
    assert str(refused.value).startswith(f"{topic.short_name}: {NULL_VALUE} at cf.{topic.short_name}[4]@17, key 'subj-0000042'")


def test_a_key_that_is_no_id_is_not_shown() -> None:
    for topic in (INPUT_TOPICS[0], RECIPIENTS):
        with pytest.raises(ContractError) as refused:
            null_value(topic, "cf.x", 0, 3, b"jane.doe@example.com", TOMBSTONE_MS)
        assert "example" not in str(refused.value) and "20 bytes, not a pseudonymous id" in str(refused.value)
    with pytest.raises(ContractError, match="key none: a tombstone that names no recipient"):
        null_value(RECIPIENTS, "cf.recipients", 0, 3, None, TOMBSTONE_MS)
    with pytest.raises(ContractError, match="without a timestamp"):
        null_value(RECIPIENTS, "cf.recipients", 0, 3, b"rcpt-1", -1)


def test_a_registry_tombstone_is_the_same_removal_whoever_reads_it() -> None:
    first = null_value(RECIPIENTS, "cf.recipients", 0, 5, b"rcpt-1", TOMBSTONE_MS)
    again = null_value(RECIPIENTS, "other.recipients", 2, 9, b"rcpt-1", TOMBSTONE_MS)
    assert first == again  # an id of the recipient and the instant: a second read is a duplicate
    assert first["occurred_at"] == T0 and first["active"] is False and first["recipient_id"] == "rcpt-1"
    assert null_value(RECIPIENTS, "cf.recipients", 0, 5, b"rcpt-1", TOMBSTONE_MS + 1)["event_id"] != first["event_id"]


def _disclosure(when: datetime) -> dict[str, Any]:
    return events.data_disclosed(
        "subj-1", "rcpt-1", ["contact"], purpose="contract_introductions", legal_basis="contract",
        source_service="matching", occurred_at=when,
    ).record  # fmt: skip


def test_after_a_tombstone_the_processors_judge_the_recipient_unregistered_and_before_it_as_it_was() -> None:
    processor = Processor()
    processor.process("recipients", registered())
    processor.process("recipients", null_value(RECIPIENTS, "cf.recipients", 0, 1, b"rcpt-1", TOMBSTONE_MS))
    before = processor.process("disclosure", _disclosure(T0 - timedelta(seconds=1)))
    after = processor.process("disclosure", _disclosure(T0))  # in force from the tombstone's instant itself
    rules = [{r["rule"] for t, r in changes if t == "violations" and r["active"]} for changes in (before, after)]
    assert Rule.UNREGISTERED_RECIPIENT not in rules[0]
    assert Rule.UNREGISTERED_RECIPIENT in rules[1]
    edges = [r for t, r in after if t == "lineage"]
    assert edges and edges[0]["transfer_mechanism"] == "unknown"


def test_the_registry_describes_a_removed_recipient_by_its_last_named_version_inactive() -> None:
    registry = RecipientRegistry()
    registry.add(RecipientVersion.from_record(registered()))
    registry.add(RecipientVersion.from_record(null_value(RECIPIENTS, "cf.recipients", 0, 1, b"rcpt-1", TOMBSTONE_MS)))
    latest = registry.latest("rcpt-1")
    assert latest is not None and (latest.name, latest.kind.value, latest.country, latest.active) == (
        "Mailer Inc", "other_users", "US", False,
    )  # fmt: skip
    assert latest.since == T0 and registry.at("rcpt-1", T0) is None
    assert registry.at("rcpt-1", T0 - timedelta(microseconds=1)) is not None
    # A tombstone for a recipient never registered describes nobody.
    registry.add(RecipientVersion.from_record(null_value(RECIPIENTS, "cf.recipients", 0, 2, b"rcpt-2", TOMBSTONE_MS)))
    assert registry.latest("rcpt-2") is None and registry.at("rcpt-2", T0 + timedelta(days=1)) is None


def test_the_removal_survives_the_recipients_table(chdb_dsn: str, database: str) -> None:
    sink = ClickHouseSink(chdb_dsn, database)
    removal = null_value(RECIPIENTS, "cf.recipients", 0, 1, b"rcpt-1", TOMBSTONE_MS)
    run_events([(RECIPIENTS, registered()), (RECIPIENTS, removal)], Processor(), sink)
    registry = registry_from_tables(sink.reader)
    assert registry.at("rcpt-1", T0 - timedelta(days=1)) is not None and registry.at("rcpt-1", T0) is None
    latest = registry.latest("rcpt-1")
    assert latest is not None and latest.name == "Mailer Inc" and not latest.active


@dataclass
class Tombstone:
    """A null-value message as confluent-kafka hands it over."""

    topic_name: str
    key_bytes: bytes | None

    def error(self) -> None:
        return None

    def value(self) -> None:
        return None

    def key(self) -> bytes | None:
        return self.key_bytes

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7

    def timestamp(self) -> tuple[int, int]:
        return (1, TOMBSTONE_MS)


class Rows:
    """Collects what a sink consumer adds."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def add(self, table: str, record: dict[str, Any]) -> None:
        self.rows.append((table, record))


def test_the_registry_feed_and_the_sink_take_a_tombstone_as_the_removal() -> None:
    expected = null_value(RECIPIENTS, "cf.recipients", 0, 7, b"rcpt-1", TOMBSTONE_MS)
    feed = RegistryFeed("127.0.0.1:1", "cf", codec=None)  # type: ignore[arg-type]  # a tombstone is never decoded
    try:
        feed.registry.add(RecipientVersion.from_record(registered()))
        assert feed.take(Tombstone("cf.recipients", b"rcpt-1")) == 1  # type: ignore[arg-type]
        assert feed.registry.at("rcpt-1", T0) is None and feed.registry.at("rcpt-1", T0 - timedelta(days=1)) is not None
    finally:
        feed.close()
    rows = Rows()
    consumer = SinkConsumer("127.0.0.1:1", "cf", None, rows)  # type: ignore[arg-type]
    try:
        consumer.take(Tombstone("cf.recipients", b"rcpt-1"))  # type: ignore[arg-type]
        consumer.take(Tombstone("cf.ledger", b"subj-1"))  # type: ignore[arg-type]  # an output: nothing
    finally:
        consumer.consumer.close()
    assert rows.rows == [("recipients", expected)]
