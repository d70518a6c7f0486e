"""``consentflow registry load``: a YAML registry to the compacted topic or the recipients table, or refused whole.

Expectations come from the YAML text as the test parses it (plain PyYAML) and
from the generator's registry dataclasses, not from the loader under test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consentflow.cli import main
from consentflow.contracts.codec import SingleObjectCodec
from consentflow.contracts.topics import RECIPIENTS
from consentflow.generator.registry import REGISTRY
from consentflow.kafka.lag import end_offsets
from consentflow.policy.geography import in_eea
from consentflow.sinks.clickhouse import ClickHouseSink
from consentflow.sinks.verification import stored_rows
from tests.support.kafka_topics import fresh_topics
from tests.support.paths import DEPLOY

EXAMPLE = DEPLOY / "registry.example.yaml"
SIMULATION_START = datetime(2021, 1, 4, tzinfo=UTC)  # the generator's default start, which the example was made for

GOOD = """
recipients:
  - recipient_id: postwave
    name: Postwave Inc.
    kind: emailing_provider
    country: US
    since: 2021-01-03T00:00:00Z
    allowed_purposes: [marketing, service_information]
    transfer_mechanisms:
      - {mechanism: scc, valid_from: 2020-03-10T00:00:00Z, valid_until: 2023-03-10T00:00:00Z}
      - {mechanism: adequacy, valid_from: 2023-07-10}
  - recipient_id: cloudnest
    name: CloudNest Ireland Ltd
    kind: technical_subcontractor
    country: IE
    since: 2021-01-03
    allowed_purposes: [technical_operations_analytics]
  - recipient_id: postwave
    name: Postwave Inc.
    kind: emailing_provider
    country: US
    since: 2024-01-01T00:00:00+01:00
    allowed_purposes: [marketing]
    active: false
"""


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def instant(value: Any) -> datetime:
    """A YAML time or date (or ISO 8601 text) as the UTC instant the file means."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    assert isinstance(value, date)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def expected_versions(text: str) -> list[dict[str, Any]]:
    """What each entry of a registry file says, in the contract's words."""
    return [
        {
            "recipient_id": e["recipient_id"],
            "name": e["name"],
            "kind": e["kind"],
            "country": e["country"],
            "occurred_at": instant(e["since"]),
            "allowed_purposes": list(e["allowed_purposes"]),
            "transfer_mechanisms": [
                (m["mechanism"], instant(m["valid_from"]), instant(m["valid_until"]) if "valid_until" in m else None)
                for m in e.get("transfer_mechanisms", [])
            ],
            "active": e.get("active", True),
        }
        for e in yaml.safe_load(text)["recipients"]
    ]


def as_version(record: dict[str, Any]) -> dict[str, Any]:
    """A decoded RecipientRecord in the shape of ``expected_versions``."""
    keys = ("recipient_id", "name", "kind", "country", "occurred_at", "allowed_purposes", "active")
    version = {k: record[k] for k in keys}
    version["transfer_mechanisms"] = [(m["mechanism"], m["valid_from"], m["valid_until"]) for m in record["transfer_mechanisms"]]
    return version


def _sorted(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(versions, key=lambda v: (v["recipient_id"], v["occurred_at"]))


# -- the shipped example --------------------------------------------------------------------------------


def test_the_example_file_is_the_generators_registry() -> None:
    versions = {v["recipient_id"]: v for v in expected_versions(EXAMPLE.read_text())}
    assert set(versions) == {r.recipient_id for r in REGISTRY}
    for recipient in REGISTRY:
        version = versions[recipient.recipient_id]
        assert (version["name"], version["kind"], version["country"]) == (recipient.name, recipient.kind.value, recipient.country)
        assert version["allowed_purposes"] == [p.value for p in recipient.purposes]
        assert version["occurred_at"] == SIMULATION_START - timedelta(days=1)
        if in_eea(recipient.country):
            assert [m[0] for m in version["transfer_mechanisms"]] == ["within_eea"]
        else:
            assert version["transfer_mechanisms"] == [
                (m.value, SIMULATION_START + timedelta(days=d), None) for m, d in recipient.mechanisms
            ]


# -- embedded: into the recipients table ------------------------------------------------------------------


def _recipients_table(chdb_dsn: str, database: str) -> list[dict[str, Any]]:
    rows = ClickHouseSink(chdb_dsn, database).reader.query(
        "SELECT recipient_id, name, kind, country, since, allowed_purposes, mechanisms, mechanism_from, mechanism_until, active "
        "FROM {db:Identifier}.recipients FINAL"
    )
    utc = lambda t: None if t is None else t.replace(tzinfo=UTC)  # noqa: E731 -- ClickHouse hands UTC back without a zone
    return [
        {
            "recipient_id": r[0],
            "name": r[1],
            "kind": r[2],
            "country": r[3],
            "occurred_at": utc(r[4]),
            "allowed_purposes": list(r[5]),
            "transfer_mechanisms": [(m, utc(f), utc(u)) for m, f, u in zip(r[6], r[7], r[8], strict=True)],
            "active": bool(r[9]),
        }
        for r in rows
    ]


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(GOOD)
    return path


def test_embedded_load_fills_the_recipients_table_and_a_second_load_changes_nothing(
    good_file: Path, chdb_dsn: str, database: str
) -> None:
    result = cli("registry", "load", str(good_file), "--embedded", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code == 0, result.output
    assert "loaded 3 registry records" in result.output
    assert _sorted(_recipients_table(chdb_dsn, database)) == _sorted(expected_versions(GOOD))
    again = cli("registry", "load", str(good_file), "--embedded", "--dsn", chdb_dsn, "--database", database)
    assert again.exit_code == 0, again.output
    assert ClickHouseSink(chdb_dsn, database).reader.query("SELECT count() FROM {db:Identifier}.recipients FINAL")[0][0] == 3


def test_the_example_loads_cleanly(chdb_dsn: str, database: str) -> None:
    result = cli("registry", "load", str(EXAMPLE), "--embedded", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code == 0, result.output
    assert _sorted(_recipients_table(chdb_dsn, database)) == _sorted(expected_versions(EXAMPLE.read_text()))


# -- refused whole, with the entry and the field named ----------------------------------------------------

VALID_ENTRY = {
    "recipient_id": "quickpay",
    "name": "Quickpay SAS",
    "kind": "payment_provider",
    "country": "FR",
    "since": "2021-01-03T00:00:00Z",
    "allowed_purposes": ["contract_introductions"],
}
ABROAD = {**VALID_ENTRY, "recipient_id": "textrelay", "country": "US"}


def _mechanisms(*periods: dict[str, Any]) -> dict[str, Any]:
    return {**ABROAD, "transfer_mechanisms": list(periods)}


BAD_ENTRIES = [
    ({**VALID_ENTRY, "kind": "data_broker"}, "field kind: 'data_broker' is not a RecipientKind"),
    (
        _mechanisms({"mechanism": "handshake", "valid_from": "2021-01-01T00:00:00Z"}),
        "field transfer_mechanisms[0].mechanism: 'handshake' is not a TransferMechanism",
    ),
    ({**VALID_ENTRY, "allowed_purposes": ["profile_matching", "resale"]}, "field allowed_purposes: 'resale' is not a Purpose"),
    ({**VALID_ENTRY, "country": "UK"}, "field country: 'UK' is not an ISO 3166-1 alpha-2 country code"),
    ({**VALID_ENTRY, "country": "fr"}, "field country: 'fr' is not an ISO 3166-1 alpha-2 country code"),
    (
        _mechanisms({"mechanism": "scc", "valid_from": "2022-01-01T00:00:00Z", "valid_until": "2021-01-01T00:00:00Z"}),
        "field transfer_mechanisms[0].valid_until: 2021-01-01T00:00:00+00:00 is not after valid_from",
    ),
    ({k: v for k, v in VALID_ENTRY.items() if k != "name"}, "field name: missing (required)"),
    ({k: v for k, v in VALID_ENTRY.items() if k != "since"}, "field since: missing (required)"),
    ({**VALID_ENTRY, "since": "2021-01-03T10:00:00"}, "field since: 2021-01-03T10:00:00 has no time zone"),
    ({**VALID_ENTRY, "contact_email": "dpo@quickpay.example"}, "field contact_email: unknown field"),
    (
        _mechanisms({"mechanism": "within_eea", "valid_from": "2021-01-01"}),
        "field transfer_mechanisms[0].mechanism: within_eea is only for recipients in the EU/EEA",
    ),
    ({**VALID_ENTRY, "allowed_purposes": "marketing"}, "field allowed_purposes: expected a non-empty list"),
    ({**VALID_ENTRY, "since": "2021-01-03"}, "already has a version in force from 2021-01-03T00:00:00+00:00 (entry 1)"),
]


def _file_with_bad_third_entry(tmp_path: Path, bad: dict[str, Any]) -> Path:
    """Two valid entries, then the bad one: nothing of the valid ones may be published either."""
    entries = [VALID_ENTRY, {**VALID_ENTRY, "recipient_id": "verifid", "country": "DE"}, bad]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"recipients": entries}, sort_keys=False))
    return path


@pytest.mark.parametrize(("bad", "expected"), BAD_ENTRIES)
def test_a_bad_entry_rejects_the_whole_file_naming_entry_and_field(
    tmp_path: Path, chdb_dsn: str, database: str, bad: dict[str, Any], expected: str
) -> None:
    path = _file_with_bad_third_entry(tmp_path, bad)
    result = cli("registry", "load", str(path), "--embedded", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code != 0
    (message,) = [line for line in result.output.splitlines() if line.strip()]
    assert message.startswith(f"Error: {path}: entry 3 ({bad['recipient_id']}): ")
    assert expected in message
    assert stored_rows(chdb_dsn, database) == {}, "nothing loaded, not even the valid entries"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("recipients: [\n", "not valid YAML at line 2"),
        ("- recipient_id: x\n", "expected a mapping with a 'recipients' list"),
        ("recipients: []\n", "'recipients' must be a non-empty list"),
        ("recipients: [{recipient_id: x}]\nowner: someone\n", "unknown top-level key(s) owner"),
    ],
)
def test_a_malformed_file_is_refused_in_one_line(tmp_path: Path, chdb_dsn: str, database: str, text: str, expected: str) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    result = cli("registry", "load", str(path), "--embedded", "--dsn", chdb_dsn, "--database", database)
    assert result.exit_code != 0
    assert expected in result.output and len(result.output.strip().splitlines()) == 1


# -- Kafka: onto the compacted registry topic ----------------------------------------------------------------


@pytest.fixture(scope="module")
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    with fresh_topics(kafka_bootstrap, "rl") as name:
        yield name


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    """End offset per partition, once the new topic's partitions have their leaders."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return {p: end for (_, p), end in end_offsets(bootstrap, [topic]).items()}
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every (key, decoded record) of the topic, read from the beginning with a plain consumer."""
    ends = _ends(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    codec = SingleObjectCodec()
    out: list[tuple[bytes, dict[str, Any]]] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end])
        wanted = sum(ends.values())
        deadline = time.monotonic() + 30
        while len(out) < wanted and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or (message.error() and message.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert message.error() is None, message.error()
            out.append((message.key(), codec.decode(RECIPIENTS, message.value())))
    finally:
        consumer.close()
    assert len(out) == sum(ends.values())
    return out


@pytest.mark.kafka
def test_load_publishes_every_entry_to_the_registry_topic_keyed_by_recipient(
    good_file: Path, kafka_bootstrap: str, prefix: str
) -> None:
    result = cli("registry", "load", str(good_file), "--bootstrap", kafka_bootstrap, "--prefix", prefix)
    assert result.exit_code == 0, result.output
    topic = RECIPIENTS.name(prefix)
    assert f"published 3 registry records to {topic}" in result.output
    published = _read_topic(kafka_bootstrap, topic)
    assert all(key == record["recipient_id"].encode() for key, record in published)
    assert _sorted([as_version(record) for _, record in published]) == _sorted(expected_versions(GOOD))
    assert len({record["event_id"] for _, record in published}) == 3


@pytest.mark.kafka
def test_a_bad_file_publishes_nothing_and_a_missing_topic_is_named(tmp_path: Path, kafka_bootstrap: str) -> None:
    with fresh_topics(kafka_bootstrap, "rl", partitions=1) as fresh:
        path = _file_with_bad_third_entry(tmp_path, {**VALID_ENTRY, "country": "XX"})
        result = cli("registry", "load", str(path), "--bootstrap", kafka_bootstrap, "--prefix", fresh)
        assert result.exit_code != 0 and "entry 3 (quickpay): field country" in result.output
        assert sum(_ends(kafka_bootstrap, RECIPIENTS.name(fresh)).values()) == 0
    missing = cli("registry", "load", str(EXAMPLE), "--bootstrap", kafka_bootstrap, "--prefix", f"nope{uuid.uuid4().hex[:6]}")
    assert missing.exit_code != 0 and "does not exist; create it with consentflow topics create" in missing.output
